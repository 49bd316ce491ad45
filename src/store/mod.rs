//! The store of sessions and runs, shared by `agentos run` and every `agentos serve` on
//! the same database.
//!
//! [`Store`] is the async interface the engine and the server use; it knows nothing about
//! HTTP or the terminal, and callers shape its typed rows into AgentOS responses. The
//! SQLite backend (`sqlite.rs`) runs on threads of its own ([`pool`]), so no store call
//! ever blocks a runtime thread or waits behind a run: one writer thread with the write
//! connection, and reader threads with read connections of their own, which WAL lets
//! read while the writer writes.
//!
//! # Layout
//!
//! One `sessions` row per session and one `runs` row per run. A run row holds the whole run
//! object as JSON plus the columns that are filtered, ordered or summed on (status, input,
//! token counts, a per-database sequence number). Writing a run touches only its own row
//! and its session's `updated_at`/`session_state`, so a long session never has earlier runs
//! rewritten, and reading history only loads the runs it returns.
//!
//! # History
//!
//! The messages of completed runs, keyed by their sequence number (which never changes and
//! is never reused), are kept in a bounded in-memory cache: the next run of a long session
//! reads only the runs it has not seen, rather than parsing its whole history again.

pub mod backend;
mod codec;
mod migrations;
mod ownership;
mod pool;
pub mod postgres;
mod sqlite;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use backend::Backend;
pub use ownership::{
    CancelOutcome, JournalBatch, JournalRead, Orphan, ProcessInfo, QueuedRun, RunListing, RunQuery,
};
pub use pool::Pending;

/// A session's summary and every run of it, oldest first.
pub type SessionWithRuns = (SessionSummary, Vec<StoredRun>);
pub use sqlite::{BUSY_TIMEOUT, SqliteStore};

use crate::kind::Kind;
use crate::run::{AnyRun, Message, RunRecord as _, RunStatus};

/// A session row.
#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    pub session_id: String,
    pub session_type: Kind,
    /// The agent, team or workflow id.
    pub component_id: String,
    pub user_id: Option<String>,
    /// The name given by a rename; `None` until then.
    pub session_name: Option<String>,
    /// JSON object.
    pub session_state: Value,
    pub metadata: Option<Value>,
    /// Free-form per-session data for later features (summaries, workflow data).
    pub session_data: Option<Value>,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: i64,
}

impl Session {
    /// Whether a request naming `user_id` may see this session: with no user id, anyone;
    /// with one, only the session's owner. Every endpoint that takes a session id and a
    /// user id applies this one rule, answering 404 when it fails. (Starting a run in an
    /// existing session is stricter, as in AgentOS: an owned session only takes runs from
    /// its owner.)
    pub fn visible_to(&self, user_id: Option<&str>) -> bool {
        visible(self.user_id.as_deref(), user_id)
    }
}

/// The rule of [`Session::visible_to`], for what belongs to `owner`'s session (a session,
/// or a queued run whose session does not exist yet).
pub(crate) fn visible(owner: Option<&str>, user_id: Option<&str>) -> bool {
    user_id.is_none_or(|u| owner == Some(u))
}

/// Filter and paging for [`Store::list_sessions`].
#[derive(Clone, Debug, PartialEq)]
pub struct SessionQuery {
    pub session_type: Option<Kind>,
    pub component_id: Option<String>,
    pub user_id: Option<String>,
    /// Case-insensitive (ASCII) substring of the display name: the session name, or the
    /// first message when it has none.
    pub session_name: Option<String>,
    pub sort_by: SessionSort,
    pub descending: bool,
    /// 1-based page and page size (`limit` ≥ 1). `0` is read as `1` for both.
    pub page: u32,
    pub limit: u32,
}

impl Default for SessionQuery {
    fn default() -> Self {
        SessionQuery {
            session_type: None,
            component_id: None,
            user_id: None,
            session_name: None,
            sort_by: SessionSort::CreatedAt,
            descending: true,
            page: 1,
            limit: 20,
        }
    }
}

/// The order of [`Store::list_sessions`]. Ties keep creation order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionSort {
    CreatedAt,
    UpdatedAt,
    /// By display name, case-insensitively (ASCII).
    SessionName,
}

/// A session as listed: the row plus figures derived from its runs.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionSummary {
    pub session: Session,
    /// Stored name, else the input of the session's first top-level run (a team's or
    /// workflow's own run, not a member's), else "".
    pub display_name: String,
    /// Top-level runs (member runs of a team are not counted).
    pub run_count: u64,
    /// Token sums over all runs of the session, member runs included (as AgentOS).
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
}

/// A stored run with its bookkeeping columns.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredRun {
    pub run: AnyRun,
    /// The type of the session the run belongs to.
    pub session_type: Kind,
    /// The run's events as emitted (JSON objects), in order.
    pub events: Vec<Value>,
    /// Unix seconds of the last write to the run.
    pub updated_at: i64,
}

/// Store failures callers branch on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("session '{0}' not found")]
    SessionNotFound(String),
    #[error("session '{0}' already exists")]
    SessionExists(String),
    #[error("run '{0}' already exists")]
    RunExists(String),
    /// A run was finished that was never begun.
    #[error("run '{0}' not found")]
    RunNotFound(String),
    /// A run was finished that is no longer a live run of this process: another process
    /// settled it (stored with `status`) while this one was stalled.
    #[error("run '{run_id}' was settled by another process meanwhile (stored {})", status.as_str())]
    NotLive { run_id: String, status: RunStatus },
    /// The run contradicts the session it was begun in.
    #[error("invalid run: {0}")]
    InvalidRun(String),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// With the server's own words (`database "x" does not exist`), which tokio-postgres
    /// keeps as the error's cause behind a bare `db error`.
    #[error("database error: {}", crate::logging::error_chain(.0))]
    Postgres(tokio_postgres::Error),
    #[error("no database connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// The reason is part of the message, not a separate cause: printed as a chain, the
    /// reasons of SQLite and PostgreSQL errors would repeat themselves and the path.
    #[error("could not open database {path}: {reason}")]
    Open {
        path: String,
        reason: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The database was written by a newer agentos.
    #[error(
        "database schema version {found} is newer than this agentos supports ({supported}); \
         upgrade agentos or use another database file"
    )]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("corrupt stored JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A stored value agentos never writes.
    #[error("corrupt database: {0}")]
    Corrupt(String),
}

/// The result of every store call.
pub type StoreResult<T> = Result<T, StoreError>;

/// The sessions and runs database, for async callers. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    backend: Box<dyn Backend>,
    history: Mutex<HistoryCache>,
}

/// By hand rather than `#[from]`: the message already holds the error's causes, which
/// `#[from]` would also make its source (and an error chain would print them twice).
impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError::Postgres(e)
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

/// Reader threads (and connections) beside the writer.
const READERS: usize = 3;
/// Bytes of history messages kept in memory, over all sessions.
const HISTORY_CACHE_BYTES: usize = 64 * 1024 * 1024;
/// How long deleting a session waits for its runs in progress to end once cancelled: a
/// live owner notices a cancel within 100 ms.
const DELETE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// How often deleting a session looks again at its cancelled runs.
const DELETE_POLL: std::time::Duration = std::time::Duration::from_millis(20);

impl Store {
    /// Opens (creating it and its parent directories if needed) the database at `path`,
    /// brings its schema up to date and starts its threads.
    pub fn open(path: &Path) -> StoreResult<Store> {
        let writer = SqliteStore::open(path)?;
        let in_memory = path == Path::new(":memory:");
        let readers = if in_memory { 0 } else { READERS };
        Ok(Store::with_pool(pool::Pool::new(writer, path, readers)))
    }

    /// The PostgreSQL database at `url`, its schema brought up to date, with `pool_size`
    /// connections for reads.
    pub fn open_postgres(url: &str, pool_size: usize) -> StoreResult<Store> {
        Ok(Store::with_backend(Box::new(postgres::PgStore::open(
            url, pool_size,
        )?)))
    }

    /// A private database that lives as long as the store (tests, `--db :memory:`). Reads
    /// and writes share its one connection.
    pub fn open_in_memory() -> StoreResult<Store> {
        let writer = SqliteStore::open_in_memory()?;
        Ok(Store::with_pool(pool::Pool::new(
            writer,
            Path::new(":memory:"),
            0,
        )))
    }

    fn with_pool(pool: pool::Pool) -> Store {
        Store::with_backend(Box::new(pool))
    }

    fn with_backend(backend: Box<dyn Backend>) -> Store {
        Store {
            inner: Arc::new(Inner {
                backend,
                history: Mutex::new(HistoryCache::default()),
            }),
        }
    }

    /// Where the database lives unless `--db` or `AGENTOS_DB` say otherwise: the platform
    /// data directory (`$XDG_DATA_HOME/agentos/agentos.db`, by default
    /// `~/.local/share/agentos/agentos.db` on Linux), or `./agentos.db` without a home.
    pub fn default_path() -> PathBuf {
        directories::ProjectDirs::from("", "", "agentos").map_or_else(
            || PathBuf::from("agentos.db"),
            |dirs| dirs.data_dir().join("agentos.db"),
        )
    }

    fn backend(&self) -> &dyn Backend {
        self.inner.backend.as_ref()
    }

    /// What the store is, for messages: `SQLite /path` or `PostgreSQL host/db`.
    pub fn describe(&self) -> String {
        self.backend().describe()
    }

    /// Notices pushed by the database when another process cancels a run or a journal
    /// grows (PostgreSQL); `None` when they must be polled for (SQLite).
    pub fn notices(&self) -> Option<tokio::sync::broadcast::Receiver<backend::Notice>> {
        self.backend().notices()
    }

    // ----- sessions -----

    /// The session with this id.
    pub fn get_session(&self, session_id: &str) -> Pending<Option<Session>> {
        self.backend().get_session(session_id.to_string())
    }

    /// Inserts a new session; [`StoreError::SessionExists`] if the id is taken.
    pub fn create_session(&self, session: Session) -> Pending<()> {
        self.backend().create_session(session)
    }

    /// Sets a session's name. False if there is no such session.
    pub fn rename_session(&self, session_id: &str, name: &str) -> Pending<bool> {
        self.backend()
            .rename_session(session_id.to_string(), name.to_string())
    }

    /// Replaces the given parts of a session (`None` keeps the stored value) and returns
    /// the updated session, or `None` if there is no such session.
    pub fn update_session(
        &self,
        session_id: &str,
        session_name: Option<String>,
        session_state: Option<Value>,
        metadata: Option<Value>,
    ) -> Pending<Option<Session>> {
        self.backend().update_session(
            session_id.to_string(),
            session_name,
            session_state,
            metadata,
        )
    }

    /// Deletes a session and its runs. False if there was no such session. Its runs still
    /// in progress are cancelled first (see [`Store::end_live_runs`]).
    pub async fn delete_session(&self, session_id: &str) -> StoreResult<bool> {
        self.end_live_runs(&[session_id.to_string()]).await?;
        self.backend().delete_session(session_id.to_string()).await
    }

    /// Deletes the sessions with these ids (and their runs), keeping those whose type is
    /// not in `types` when `types` is given and not empty. Returns how many were deleted.
    /// Runs in progress in the sessions deleted are cancelled first.
    pub async fn delete_sessions(
        &self,
        session_ids: Vec<String>,
        types: Option<Vec<Kind>>,
    ) -> StoreResult<u64> {
        let mut doomed = Vec::with_capacity(session_ids.len());
        for id in &session_ids {
            let deleted = match types.as_deref() {
                None | Some([]) => true,
                Some(types) => self
                    .get_session(id)
                    .await?
                    .is_some_and(|s| types.contains(&s.session_type)),
            };
            if deleted {
                doomed.push(id.clone());
            }
        }
        self.end_live_runs(&doomed).await?;
        self.backend().delete_sessions(session_ids, types).await
    }

    /// Asks every process running a run of these sessions to cancel it, and waits (at most
    /// [`DELETE_WAIT`]) for those runs to end, so that none goes on with no row to finish
    /// in. A run whose process does not answer in time (stalled, or stopped and not yet
    /// settled) is deleted all the same; its process logs that its outcome was not stored.
    async fn end_live_runs(&self, session_ids: &[String]) -> StoreResult<()> {
        let live_statuses = || vec![RunStatus::Running, RunStatus::Pending];
        let mut live = Vec::new();
        for id in session_ids {
            for stored in self
                .list_runs_filtered(id, live_statuses(), None, None)
                .await?
            {
                let run_id = stored.run.run_id().to_string();
                self.request_cancel(&run_id).await?;
                live.push(run_id);
            }
        }
        let deadline = tokio::time::Instant::now() + DELETE_WAIT;
        while !live.is_empty() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(DELETE_POLL).await;
            let mut still = Vec::with_capacity(live.len());
            for run_id in live {
                let status = self.get_run(&run_id).await?.map(|s| s.run.status());
                if matches!(status, Some(RunStatus::Running | RunStatus::Pending)) {
                    still.push(run_id);
                }
            }
            live = still;
        }
        Ok(())
    }

    /// One session with its display name and run figures.
    pub fn session_summary(&self, session_id: &str) -> Pending<Option<SessionSummary>> {
        self.backend().session_summary(session_id.to_string())
    }

    /// A page of sessions matching `query`, and how many match in all.
    pub fn list_sessions(&self, query: SessionQuery) -> Pending<(Vec<SessionSummary>, u64)> {
        self.backend().list_sessions(query)
    }

    /// A page of sessions with every run of each (oldest first), in one snapshot, and
    /// how many sessions match in all.
    pub fn list_sessions_with_runs(
        &self,
        query: SessionQuery,
    ) -> Pending<(Vec<SessionWithRuns>, u64)> {
        self.backend().list_sessions_with_runs(query)
    }

    // ----- runs -----

    /// Records the start of a run: creates its session unless it exists (otherwise bumps
    /// its `updated_at`) and inserts the run with the status it carries, in one
    /// transaction, owned by this process (see `presence`). [`StoreError::RunExists`] if
    /// the run id is taken.
    pub fn begin_run(&self, session: Session, run: AnyRun, kind: Kind) -> Pending<()> {
        self.backend().begin_run(session, run, kind)
    }

    /// Records the end of a run begun with [`Store::begin_run`]: its final object, events
    /// and token counts, plus its session's state, in one transaction.
    pub fn finish_run(&self, run: AnyRun, events: Vec<Value>, session_state: Value) -> Pending<()> {
        self.backend().finish_run(run, events, session_state)
    }

    /// Sets a run's status (in its column and its stored object). False if there is no
    /// such run.
    pub fn update_run_status(&self, run_id: &str, status: RunStatus) -> Pending<bool> {
        self.backend().update_run_status(run_id.to_string(), status)
    }

    /// Moves a run from `from` to `to` only if it is still `from` (compare and set).
    /// `stage` sets the run object's `cancellation_stage`. A run moved to RUNNING is this
    /// process's to execute.
    pub fn transition_run(
        &self,
        run_id: &str,
        from: RunStatus,
        to: RunStatus,
        stage: Option<&str>,
    ) -> Pending<bool> {
        self.backend()
            .transition_run(run_id.to_string(), from, to, stage.map(str::to_string))
    }

    /// The run with this id.
    pub fn get_run(&self, run_id: &str) -> Pending<Option<StoredRun>> {
        self.backend().get_run(run_id.to_string())
    }

    /// Every run of a session (member runs included), oldest first.
    pub fn list_runs(&self, session_id: &str) -> Pending<Vec<StoredRun>> {
        self.backend()
            .list_runs_filtered(session_id.to_string(), Vec::new(), None, None)
    }

    /// A session and every run of it, in one snapshot.
    pub fn session_with_runs(
        &self,
        session_id: &str,
    ) -> Pending<Option<(Session, Vec<StoredRun>)>> {
        self.backend().session_with_runs(session_id.to_string())
    }

    /// The runs of a session with one of `statuses` (any when empty), created within the
    /// inclusive Unix-second bounds, oldest first.
    pub fn list_runs_filtered(
        &self,
        session_id: &str,
        statuses: Vec<RunStatus>,
        created_after: Option<i64>,
        created_before: Option<i64>,
    ) -> Pending<Vec<StoredRun>> {
        self.backend().list_runs_filtered(
            session_id.to_string(),
            statuses,
            created_after,
            created_before,
        )
    }

    /// The last `num_runs` COMPLETED top-level runs of a session, oldest first, leaving
    /// out `exclude_run_id`.
    pub fn history(
        &self,
        session_id: &str,
        num_runs: usize,
        exclude_run_id: Option<&str>,
    ) -> Pending<Vec<AnyRun>> {
        self.backend().history(
            session_id.to_string(),
            num_runs,
            exclude_run_id.map(str::to_string),
        )
    }

    /// The conversation of the runs [`Store::history`] selects, oldest first, without
    /// system prompts: what goes into the next prompt. Runs already read are taken from
    /// the history cache; only the others are read and decoded.
    pub async fn history_messages(
        &self,
        session_id: &str,
        num_runs: usize,
        exclude_run_id: Option<&str>,
    ) -> StoreResult<Vec<Message>> {
        if num_runs == 0 {
            return Ok(Vec::new());
        }
        let known: Vec<i64> = self
            .inner
            .history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .seqs(session_id);
        let (seqs, fetched) = self
            .backend()
            .history_fetch(
                session_id.to_string(),
                num_runs,
                exclude_run_id.map(str::to_string),
                known,
            )
            .await?;
        let mut cache = self.inner.history.lock().unwrap_or_else(|e| e.into_inner());
        for (seq, messages) in fetched {
            cache.insert(session_id, seq, messages);
        }
        Ok(cache.messages(session_id, &seqs))
    }
}

/// The messages of completed runs by session and sequence number, bounded in bytes; the
/// least recently used sessions go first.
#[derive(Default)]
struct HistoryCache {
    sessions: HashMap<String, CachedSession>,
    bytes: usize,
    clock: u64,
}

#[derive(Default)]
struct CachedSession {
    runs: BTreeMap<i64, Arc<[Message]>>,
    bytes: usize,
    used: u64,
}

impl HistoryCache {
    /// The sequence numbers cached for a session, sorted.
    fn seqs(&self, session_id: &str) -> Vec<i64> {
        self.sessions
            .get(session_id)
            .map(|s| s.runs.keys().copied().collect())
            .unwrap_or_default()
    }

    fn insert(&mut self, session_id: &str, seq: i64, messages: Vec<Message>) {
        let size: usize = messages.iter().map(message_bytes).sum();
        if size > HISTORY_CACHE_BYTES / 4 {
            return;
        }
        self.clock += 1;
        let entry = self.sessions.entry(session_id.to_string()).or_default();
        entry.used = self.clock;
        if entry.runs.insert(seq, messages.into()).is_none() {
            entry.bytes += size;
            self.bytes += size;
        }
        while self.bytes > HISTORY_CACHE_BYTES {
            let Some(oldest) = self
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.used)
                .map(|(id, _)| id.clone())
            else {
                break;
            };
            if let Some(gone) = self.sessions.remove(&oldest) {
                self.bytes -= gone.bytes;
            }
        }
    }

    /// The messages of these runs, in their order, from the cache.
    fn messages(&mut self, session_id: &str, seqs: &[i64]) -> Vec<Message> {
        self.clock += 1;
        let Some(session) = self.sessions.get_mut(session_id) else {
            return Vec::new();
        };
        session.used = self.clock;
        seqs.iter()
            .filter_map(|seq| session.runs.get(seq))
            .flat_map(|run| run.iter().cloned())
            .collect()
    }
}

/// Roughly what a message costs in memory.
fn message_bytes(message: &Message) -> usize {
    std::mem::size_of::<Message>()
        + message.content.as_ref().map_or(0, String::len)
        + message
            .tool_calls
            .iter()
            .flatten()
            .map(|c| c.id.len() + c.name.len() + c.arguments.len())
            .sum::<usize>()
        + message
            .tool_args
            .as_ref()
            .map_or(0, |a| a.to_string().len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::{Metrics, Role, RunInput, RunOutput};
    use serde_json::json;

    fn session(id: &str) -> Session {
        Session {
            session_id: id.into(),
            session_type: Kind::Agent,
            component_id: "writer".into(),
            user_id: None,
            session_name: None,
            session_state: json!({}),
            metadata: None,
            session_data: None,
            created_at: 1,
            updated_at: 1,
        }
    }

    fn run(session_id: &str, run_id: &str, text: &str) -> RunOutput {
        let message = |role, content: &str| Message {
            id: format!("{run_id}-{content}"),
            content: Some(content.into()),
            role,
            created_at: 1,
            ..Message::default()
        };
        RunOutput {
            run_id: run_id.into(),
            agent_id: "writer".into(),
            agent_name: "Writer".into(),
            parent_run_id: None,
            session_id: session_id.into(),
            user_id: None,
            content: Some(json!(format!("answer {text}"))),
            content_type: "str".into(),
            model_provider_data: None,
            reasoning_content: None,
            model: "test".into(),
            model_provider: "Test".into(),
            session_state: json!({}),
            created_at: 1,
            status: RunStatus::Completed,
            cancellation_stage: None,
            workflow_step_id: None,
            metrics: Metrics::default(),
            messages: vec![
                message(Role::System, "system"),
                message(Role::User, text),
                message(Role::Assistant, &format!("answer {text}")),
            ],
            metadata: None,
            tools: None,
            requirements: None,
            input: RunInput {
                input_content: text.into(),
            },
        }
    }

    #[tokio::test]
    async fn history_reads_only_runs_it_has_not_seen() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("agentos.db")).unwrap();
        for n in 0..4 {
            let r = run("s1", &format!("r{n}"), &format!("q{n}"));
            let begun = RunOutput {
                status: RunStatus::Running,
                ..r.clone()
            };
            store
                .begin_run(session("s1"), AnyRun::Agent(begun), Kind::Agent)
                .await
                .unwrap();
            store
                .finish_run(AnyRun::Agent(r), Vec::new(), json!({}))
                .await
                .unwrap();
        }
        let texts = |messages: Vec<Message>| -> Vec<String> {
            messages.into_iter().filter_map(|m| m.content).collect()
        };
        let first = store.history_messages("s1", 2, None).await.unwrap();
        assert_eq!(texts(first), ["q2", "answer q2", "q3", "answer q3"]);
        assert_eq!(store.inner.history.lock().unwrap().seqs("s1").len(), 2);
        // A run changed behind the cache's back is not read again: rows of completed runs
        // never change, so the cached copy is what a read would give.
        let all = store.history_messages("s1", 10, Some("r0")).await.unwrap();
        assert_eq!(
            texts(all),
            ["q1", "answer q1", "q2", "answer q2", "q3", "answer q3"]
        );
        assert_eq!(store.inner.history.lock().unwrap().seqs("s1").len(), 3);
        // A deleted session has no history, whatever the cache holds.
        assert!(store.delete_session("s1").await.unwrap());
        assert!(
            store
                .history_messages("s1", 10, None)
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn the_cache_is_bounded() {
        let mut cache = HistoryCache::default();
        let big = Message {
            content: Some("x".repeat(HISTORY_CACHE_BYTES / 8)),
            ..Message::default()
        };
        for n in 0..20 {
            cache.insert(&format!("s{n}"), 1, vec![big.clone()]);
        }
        assert!(cache.bytes <= HISTORY_CACHE_BYTES);
        assert!(cache.sessions.contains_key("s19"));
        assert!(!cache.sessions.contains_key("s0"));
    }
}
