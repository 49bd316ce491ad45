//! The SQLite store: one file shared by every agentos process on a machine.
//!
//! [`SqliteStore`] is one connection and every query on it, synchronous. The [`Store`]
//! facade runs it on threads of its own: one writer connection, and reader connections
//! beside it (WAL lets readers run while the writer writes).
//!
//! # Concurrency
//!
//! Several processes (the CLI and servers) may use the same file at once: the journal is
//! WAL, so readers never block the writer, and writers wait up to [`BUSY_TIMEOUT`] for one
//! another. Every write is one IMMEDIATE transaction, which takes the write lock up front
//! so a read-then-write can never fail with `SQLITE_BUSY` halfway. Reads of more than one
//! statement run in one transaction to see one snapshot. WAL needs shared memory between
//! processes, so the file must not live on a network filesystem (NFS, SMB); opening fails
//! if WAL cannot be enabled.
//!
//! # Compatibility
//!
//! Migrations are append-only and keyed on `PRAGMA user_version` (`migrations.rs`). A
//! database written by a newer agentos is refused with [`StoreError::SchemaTooNew`]
//! rather than misread.
//!
//! [`Store`]: super::Store

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::{
    Connection, OptionalExtension, Row, ToSql, TransactionBehavior, params, params_from_iter,
};
use serde_json::Value;

use super::codec::{decode_or_report, pack, unpack};
use super::migrations;
use super::{
    Session, SessionQuery, SessionSort, SessionSummary, StoreError, StoreResult, StoredRun,
};
use crate::kind::Kind;
use crate::run::{AnyRun, Message, Role, RunRecord, RunStatus, now_secs};

/// How long a statement waits for another connection's write lock before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The columns of a session row, in the order [`raw_session`] reads them.
macro_rules! session_columns {
    () => {
        "session_id, session_type, component_id, user_id, session_name, session_state, \
         metadata, session_data, created_at, updated_at"
    };
}

/// A session's display name: its stored name, else the input of its first top-level run.
/// Used in the select list, the name filter and the name sort of session listings.
macro_rules! display_name_expr {
    () => {
        "COALESCE(NULLIF(sessions.session_name, ''), \
         (SELECT r.input FROM runs r \
          WHERE r.session_id = sessions.session_id AND r.parent_run_id IS NULL \
          ORDER BY r.seq LIMIT 1), '')"
    };
}

/// The columns of a run as [`raw_run`] reads them (runs `r` joined to sessions `s`).
macro_rules! run_columns {
    () => {
        "r.run, r.events, r.updated_at, s.session_type, r.run_id"
    };
}

/// Sums over one session's runs: top-level run count, then input, output and total tokens.
const SESSION_STATS_SQL: &str = "SELECT COALESCE(SUM(parent_run_id IS NULL), 0), \
     COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0), \
     COALESCE(SUM(total_tokens), 0) FROM runs WHERE session_id = ?1";

/// One connection to the sessions and runs database. See the module documentation.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    /// The process whose runs this connection begins (see `presence.rs`), once known.
    owner: std::sync::OnceLock<String>,
    /// A batch transaction is open: calls run in savepoints of it.
    batch: AtomicBool,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating it and its parent directories if needed) the database at `path`
    /// and brings its schema up to date.
    pub fn open(path: &Path) -> StoreResult<SqliteStore> {
        let open_error = |source: Box<dyn std::error::Error + Send + Sync>| StoreError::Open {
            path: path.display().to_string(),
            reason: source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                open_error(format!("cannot create its directory {}: {e}", parent.display()).into())
            })?;
        }
        let conn = Connection::open(path).map_err(|e| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::CannotOpen) => open_error(
                "cannot open or create the file (is its directory writable by this user?)".into(),
            ),
            _ => open_error(Box::new(e)),
        })?;
        let in_memory = path == Path::new(":memory:");
        SqliteStore::from_connection(conn, in_memory, &path.display().to_string())
    }

    /// A private database that lives as long as the store (tests, `--db :memory:`).
    pub fn open_in_memory() -> StoreResult<SqliteStore> {
        let conn = Connection::open_in_memory().map_err(|e| StoreError::Open {
            path: ":memory:".into(),
            reason: Box::new(e),
        })?;
        SqliteStore::from_connection(conn, true, ":memory:")
    }

    /// Another connection to a database [`SqliteStore::open`] has opened (and migrated):
    /// for reading beside the writer.
    pub fn open_reader(path: &Path) -> StoreResult<SqliteStore> {
        let conn = Connection::open(path).map_err(|e| StoreError::Open {
            path: path.display().to_string(),
            reason: Box::new(e),
        })?;
        Self::configure(conn, false, &path.display().to_string())
    }

    /// Applies the connection settings every agentos process relies on, then migrates.
    fn from_connection(conn: Connection, in_memory: bool, path: &str) -> StoreResult<SqliteStore> {
        let store = Self::configure(conn, in_memory, path)?;
        migrations::migrate(&mut store.conn())?;
        Ok(store)
    }

    /// Applies the connection settings every agentos process relies on.
    fn configure(conn: Connection, in_memory: bool, path: &str) -> StoreResult<SqliteStore> {
        let open_error = |source: Box<dyn std::error::Error + Send + Sync>| StoreError::Open {
            path: path.to_string(),
            reason: source,
        };
        // The busy timeout comes first: switching to WAL needs a lock another process may hold.
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| open_error(Box::new(e)))?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
            .map_err(|e| open_error(Box::new(e)))?;
        let expected = if in_memory { "memory" } else { "wal" };
        if !mode.eq_ignore_ascii_case(expected) {
            return Err(open_error(
                format!(
                    "could not enable the WAL journal (journal_mode is '{mode}'); \
                     is the file on a network filesystem?"
                )
                .into(),
            ));
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| open_error(Box::new(e)))?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(|e| open_error(Box::new(e)))?;
        // Listing queries vary with their filters; leave room for all shapes.
        conn.set_prepared_statement_cache_capacity(64);
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            owner: std::sync::OnceLock::new(),
            batch: AtomicBool::new(false),
        })
    }

    /// Records the process that owns the runs begun from now on.
    pub fn set_owner(&self, process_id: &str) {
        let _ = self.owner.set(process_id.to_string());
    }

    fn owner(&self) -> Option<&str> {
        self.owner.get().map(String::as_str)
    }

    /// The connection. A panic while it was held cannot leave a transaction open (the
    /// transaction rolls back as it unwinds), so a poisoned lock is safe to reuse.
    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` in one IMMEDIATE transaction, committing when it returns `Ok`; inside a
    /// batch ([`SqliteStore::begin_batch`]), in a savepoint of the batch's transaction.
    fn write<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let mut conn = self.conn();
        if self.batch.load(Ordering::Relaxed) {
            return in_savepoint(&conn, f);
        }
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }

    /// Runs `f` in one read transaction, so its statements see one snapshot (inside a
    /// batch, the batch's transaction is that snapshot).
    fn read<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let mut conn = self.conn();
        if self.batch.load(Ordering::Relaxed) {
            return f(&conn);
        }
        let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }

    /// Opens one transaction for the calls that follow, until [`SqliteStore::end_batch`]:
    /// the writer commits many runs' writes at once (each call in a savepoint of its
    /// own, so one failing call undoes only itself).
    pub(super) fn begin_batch(&self) -> StoreResult<()> {
        self.conn().execute_batch("BEGIN IMMEDIATE")?;
        self.batch.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Commits the batch opened by [`SqliteStore::begin_batch`].
    pub(super) fn end_batch(&self) -> StoreResult<()> {
        self.batch.store(false, Ordering::Relaxed);
        let conn = self.conn();
        match conn.execute_batch("COMMIT") {
            Ok(()) => Ok(()),
            Err(err) => {
                let _ = conn.execute_batch("ROLLBACK");
                Err(err.into())
            }
        }
    }

    // ----- sessions -----

    /// The session with this id.
    pub fn get_session(&self, session_id: &str) -> StoreResult<Option<Session>> {
        let conn = self.conn();
        get_session(&conn, session_id)
    }

    /// Inserts a new session; [`StoreError::SessionExists`] if the id is taken.
    pub fn create_session(&self, session: &Session) -> StoreResult<()> {
        self.write(|tx| {
            let json = SessionJson::new(session)?;
            let result = tx
                .prepare_cached(concat!(
                    "INSERT INTO sessions (",
                    session_columns!(),
                    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
                ))?
                .execute(params![
                    session.session_id,
                    session.session_type,
                    session.component_id,
                    session.user_id,
                    session.session_name,
                    json.state,
                    json.metadata,
                    json.data,
                    session.created_at,
                    session.updated_at,
                ]);
            match result {
                Ok(_) => Ok(()),
                Err(e) if is_constraint(&e) => {
                    Err(StoreError::SessionExists(session.session_id.clone()))
                }
                Err(e) => Err(e.into()),
            }
        })
    }

    /// Sets a session's name. False if there is no such session.
    pub fn rename_session(&self, session_id: &str, name: &str) -> StoreResult<bool> {
        self.write(|tx| {
            let changed = tx
                .prepare_cached(
                    "UPDATE sessions SET session_name = ?2, updated_at = max(updated_at, ?3) \
                     WHERE session_id = ?1",
                )?
                .execute(params![session_id, name, now_secs()])?;
            Ok(changed > 0)
        })
    }

    /// Replaces the given parts of a session (`None` keeps the stored value) and returns
    /// the updated session, or `None` if there is no such session.
    pub fn update_session(
        &self,
        session_id: &str,
        session_name: Option<&str>,
        session_state: Option<&Value>,
        metadata: Option<&Value>,
    ) -> StoreResult<Option<Session>> {
        let state = session_state.map(serde_json::to_string).transpose()?;
        let metadata = metadata.map(serde_json::to_string).transpose()?;
        let raw = self.write(|tx| {
            Ok(tx
                .prepare_cached(concat!(
                    "UPDATE sessions SET session_name = COALESCE(?2, session_name), \
                     session_state = COALESCE(?3, session_state), \
                     metadata = COALESCE(?4, metadata), \
                     updated_at = max(updated_at, ?5) \
                     WHERE session_id = ?1 RETURNING ",
                    session_columns!()
                ))?
                .query_row(
                    params![session_id, session_name, state, metadata, now_secs()],
                    raw_session,
                )
                .optional()?)
        })?;
        raw.map(RawSession::into_session).transpose()
    }

    /// Deletes a session and its runs. False if there was no such session.
    pub fn delete_session(&self, session_id: &str) -> StoreResult<bool> {
        self.write(|tx| delete_one_session(tx, session_id))
    }

    /// Deletes the sessions with these ids (and their runs) in one transaction, keeping
    /// those whose type is not in `types` when `types` is given and not empty. Unknown
    /// ids are skipped. Returns how many sessions were deleted.
    pub fn delete_sessions<S: AsRef<str>>(
        &self,
        session_ids: &[S],
        types: Option<&[Kind]>,
    ) -> StoreResult<u64> {
        let types = types.filter(|t| !t.is_empty());
        self.write(|tx| {
            let mut deleted = 0u64;
            for id in session_ids {
                let id = id.as_ref();
                if let Some(types) = types {
                    let found: Option<Kind> = tx
                        .prepare_cached("SELECT session_type FROM sessions WHERE session_id = ?1")?
                        .query_row([id], |row| row.get(0))
                        .optional()?;
                    if !found.is_some_and(|t| types.contains(&t)) {
                        continue;
                    }
                }
                deleted += u64::from(delete_one_session(tx, id)?);
            }
            Ok(deleted)
        })
    }

    /// One session with its display name and run figures.
    pub fn session_summary(&self, session_id: &str) -> StoreResult<Option<SessionSummary>> {
        self.read(|tx| {
            let row = tx
                .prepare_cached(concat!(
                    "SELECT ",
                    session_columns!(),
                    ", ",
                    display_name_expr!(),
                    " FROM sessions WHERE session_id = ?1"
                ))?
                .query_row([session_id], |row| Ok((raw_session(row)?, row.get(10)?)))
                .optional()?;
            match row {
                None => Ok(None),
                Some((raw, display_name)) => Ok(Some(summarize(tx, raw, display_name)?)),
            }
        })
    }

    /// A page of sessions matching `query`, and how many match in all.
    pub fn list_sessions(&self, query: &SessionQuery) -> StoreResult<(Vec<SessionSummary>, u64)> {
        use rusqlite::types::Value as Sql;

        let mut conditions: Vec<&str> = Vec::new();
        let mut args: Vec<Sql> = Vec::new();
        if let Some(t) = query.session_type {
            conditions.push("session_type = ?");
            args.push(Sql::Text(t.as_str().to_string()));
        }
        if let Some(c) = &query.component_id {
            conditions.push("component_id = ?");
            args.push(Sql::Text(c.clone()));
        }
        if let Some(u) = &query.user_id {
            conditions.push("user_id = ?");
            args.push(Sql::Text(u.clone()));
        }
        if let Some(n) = &query.session_name {
            conditions.push(concat!(
                "instr(lower(",
                display_name_expr!(),
                "), lower(?)) > 0"
            ));
            args.push(Sql::Text(n.clone()));
        }
        let filter = if conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conditions.join(" AND "))
        };
        let direction = if query.descending { "DESC" } else { "ASC" };
        let key = match query.sort_by {
            SessionSort::CreatedAt => "created_at",
            SessionSort::UpdatedAt => "updated_at",
            SessionSort::SessionName => "display_name COLLATE NOCASE",
        };
        let limit = i64::from(query.limit.max(1));
        // Saturates rather than wrapping: a page past the end is simply empty.
        let offset = i64::from(query.page.max(1) - 1).saturating_mul(limit);

        let count_sql = format!("SELECT COUNT(*) FROM sessions{filter}");
        let page_sql = format!(
            concat!(
                "SELECT ",
                session_columns!(),
                ", ",
                display_name_expr!(),
                " AS display_name FROM sessions{filter} \
                 ORDER BY {key} {direction}, rowid {direction} LIMIT ? OFFSET ?"
            ),
            filter = filter,
            key = key,
            direction = direction,
        );

        self.read(|tx| {
            let total: i64 = tx
                .prepare_cached(&count_sql)?
                .query_row(params_from_iter(args.iter()), |row| row.get(0))?;
            let mut page_args = args.clone();
            page_args.push(Sql::Integer(limit));
            page_args.push(Sql::Integer(offset));
            let rows = tx
                .prepare_cached(&page_sql)?
                .query_map(params_from_iter(page_args.iter()), |row| {
                    Ok((raw_session(row)?, row.get::<_, String>(10)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let mut summaries = Vec::with_capacity(rows.len());
            for (raw, display_name) in rows {
                summaries.push(summarize(tx, raw, display_name)?);
            }
            Ok((summaries, to_u64(total)))
        })
    }

    // ----- runs -----

    /// Records the start of a run: creates its session unless it exists (otherwise bumps
    /// the session's `updated_at`) and inserts the run with the status it carries
    /// (typically RUNNING), in one transaction. [`StoreError::RunExists`] if the run id is
    /// taken. A new session is stored with type `session_type`.
    pub fn begin_run(
        &self,
        session: &Session,
        run: &impl RunRecord,
        session_type: Kind,
    ) -> StoreResult<()> {
        let encoded = EncodedRun::new(run, &[])?;
        self.begin_encoded_run(&EncodedSession::new(session)?, &encoded, session_type)
    }

    /// [`SqliteStore::begin_run`] with the JSON already encoded (by the caller, off the
    /// writer thread).
    pub(crate) fn begin_encoded_run(
        &self,
        session: &EncodedSession,
        run: &EncodedRun,
        session_type: Kind,
    ) -> StoreResult<()> {
        let (session_json, session) = (&session.json, &session.session);
        if run.session_id != session.session_id {
            return Err(StoreError::InvalidRun(format!(
                "run '{}' belongs to session '{}', not '{}'",
                run.run_id, run.session_id, session.session_id
            )));
        }
        let columns = &run.columns;
        let now = now_secs();
        self.write(|tx| {
            tx.prepare_cached(concat!(
                "INSERT INTO sessions (",
                session_columns!(),
                ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
                 ON CONFLICT (session_id) DO UPDATE SET updated_at = max(updated_at, ?11)"
            ))?
            .execute(params![
                session.session_id,
                session_type,
                session.component_id,
                session.user_id,
                session.session_name,
                session_json.state,
                session_json.metadata,
                session_json.data,
                session.created_at,
                session.updated_at,
                now,
            ])?;
            let inserted = tx
                .prepare_cached(
                    "INSERT INTO runs (run_id, session_id, parent_run_id, component_id, user_id, \
                     status, input, content, run, events, input_tokens, output_tokens, \
                     total_tokens, created_at, updated_at, owner) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
                )?
                .execute(params![
                    run.run_id,
                    run.session_id,
                    run.parent_run_id,
                    run.component_id,
                    run.user_id,
                    run.status,
                    run.input_content,
                    columns.content,
                    columns.run,
                    columns.events,
                    columns.input_tokens,
                    columns.output_tokens,
                    columns.total_tokens,
                    run.created_at,
                    now,
                    self.owner(),
                ]);
            match inserted {
                Ok(_) => Ok(()),
                Err(e) if is_constraint(&e) => Err(StoreError::RunExists(run.run_id.clone())),
                Err(e) => Err(e.into()),
            }
        })
    }

    /// Records the end of a run begun with [`SqliteStore::begin_run`]: its final object, events
    /// and token counts, plus its session's state, in one transaction.
    /// [`StoreError::RunNotFound`] if the run was never begun; [`StoreError::NotLive`], and
    /// nothing written, if it is no longer a live run of this process (another process
    /// settled it as interrupted while this one was stalled).
    pub fn finish_run(
        &self,
        run: &impl RunRecord,
        events: &[Value],
        session_state: &Value,
    ) -> StoreResult<()> {
        let encoded = EncodedRun::new(run, events)?;
        self.finish_encoded_run(&encoded, &serde_json::to_string(session_state)?)
    }

    /// [`SqliteStore::finish_run`] with the JSON already encoded (by the caller, off the
    /// writer thread): the run and its events, and the session's state.
    pub(crate) fn finish_encoded_run(&self, run: &EncodedRun, state: &str) -> StoreResult<()> {
        let columns = &run.columns;
        let now = now_secs();
        self.write(|tx| {
            let session_id: Option<String> = tx
                .prepare_cached(
                    "UPDATE runs SET status = ?2, content = ?3, run = ?4, events = ?5, \
                     input_tokens = ?6, output_tokens = ?7, total_tokens = ?8, \
                     updated_at = max(updated_at, ?9), owner = NULL, cancel_requested = 0 \
                     WHERE run_id = ?1 AND status IN ('RUNNING', 'PENDING') \
                     AND (owner IS NULL OR owner IS ?10) RETURNING session_id",
                )?
                .query_row(
                    params![
                        run.run_id,
                        run.status,
                        columns.content,
                        columns.run,
                        columns.events,
                        columns.input_tokens,
                        columns.output_tokens,
                        columns.total_tokens,
                        now,
                        self.owner(),
                    ],
                    |row| row.get(0),
                )
                .optional()?;
            let Some(session_id) = session_id else {
                let status: Option<RunStatus> = tx
                    .prepare_cached("SELECT status FROM runs WHERE run_id = ?1")?
                    .query_row([&run.run_id], |row| row.get(0))
                    .optional()?;
                return Err(match status {
                    None => StoreError::RunNotFound(run.run_id.clone()),
                    Some(status) => StoreError::NotLive {
                        run_id: run.run_id.clone(),
                        status,
                    },
                });
            };
            tx.prepare_cached(
                "UPDATE sessions SET session_state = ?2, updated_at = max(updated_at, ?3) \
                 WHERE session_id = ?1",
            )?
            .execute(params![session_id, state, now])?;
            Ok(())
        })
    }

    /// Sets a run's status (in its column and its stored object). False if there is no
    /// such run.
    pub fn update_run_status(&self, run_id: &str, status: RunStatus) -> StoreResult<bool> {
        self.write(|tx| {
            let changed = tx
                .prepare_cached(
                    "UPDATE runs SET status = ?2, run = json_set(run, '$.status', ?2), \
                     updated_at = max(updated_at, ?3) WHERE run_id = ?1",
                )?
                .execute(params![run_id, status, now_secs()])?;
            Ok(changed > 0)
        })
    }

    /// Moves a run from `from` to `to` only if it is still `from` (compare and set), so
    /// two callers racing for the same transition cannot both win. `stage` sets the run
    /// object's `cancellation_stage`.
    pub fn transition_run(
        &self,
        run_id: &str,
        from: RunStatus,
        to: RunStatus,
        stage: Option<&str>,
    ) -> StoreResult<bool> {
        self.write(|tx| {
            let changed = tx
                .prepare_cached(
                    "UPDATE runs SET status = ?3, \
                     run = json_set(run, '$.status', ?3, '$.cancellation_stage', ?4), \
                     updated_at = max(updated_at, ?5), owner = ?6, cancel_requested = 0 \
                     WHERE run_id = ?1 AND status = ?2",
                )?
                .execute(params![
                    run_id,
                    from,
                    to,
                    stage,
                    now_secs(),
                    // A run taken up again is this process's; one that stops is nobody's.
                    if to == RunStatus::Running {
                        self.owner()
                    } else {
                        None
                    },
                ])?;
            Ok(changed > 0)
        })
    }

    /// The run with this id.
    pub fn get_run(&self, run_id: &str) -> StoreResult<Option<StoredRun>> {
        let raw = self
            .conn()
            .prepare_cached(concat!(
                "SELECT ",
                run_columns!(),
                " FROM runs r JOIN sessions s ON s.session_id = r.session_id WHERE r.run_id = ?1"
            ))?
            .query_row([run_id], raw_run)
            .optional()?;
        Ok(raw.and_then(RawRun::into_stored))
    }

    /// Every run of a session (member runs included), oldest first.
    pub fn list_runs(&self, session_id: &str) -> StoreResult<Vec<StoredRun>> {
        self.list_runs_filtered(session_id, &[], None, None)
    }

    /// The runs of a session with one of `statuses` (any when empty), created within the
    /// inclusive Unix-second bounds, oldest first.
    pub fn list_runs_filtered(
        &self,
        session_id: &str,
        statuses: &[RunStatus],
        created_after: Option<i64>,
        created_before: Option<i64>,
    ) -> StoreResult<Vec<StoredRun>> {
        use rusqlite::types::Value as Sql;

        let mut sql = String::from(concat!(
            "SELECT ",
            run_columns!(),
            " FROM runs r JOIN sessions s ON s.session_id = r.session_id WHERE r.session_id = ?"
        ));
        let mut args = vec![Sql::Text(session_id.to_string())];
        if !statuses.is_empty() {
            sql.push_str(" AND r.status IN (");
            for (i, status) in statuses.iter().enumerate() {
                sql.push_str(if i == 0 { "?" } else { ", ?" });
                args.push(Sql::Text(status.as_str().to_string()));
            }
            sql.push(')');
        }
        if let Some(after) = created_after {
            sql.push_str(" AND r.created_at >= ?");
            args.push(Sql::Integer(after));
        }
        if let Some(before) = created_before {
            sql.push_str(" AND r.created_at <= ?");
            args.push(Sql::Integer(before));
        }
        sql.push_str(" ORDER BY r.seq");

        let raws = self
            .conn()
            .prepare_cached(&sql)?
            .query_map(params_from_iter(args.iter()), raw_run)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(raws.into_iter().filter_map(RawRun::into_stored).collect())
    }

    /// The last `num_runs` COMPLETED top-level runs of a session, oldest first, leaving
    /// out `exclude_run_id` (the run being made). Only the returned runs are read, so the
    /// cost does not grow with the length of the session.
    pub fn history(
        &self,
        session_id: &str,
        num_runs: usize,
        exclude_run_id: Option<&str>,
    ) -> StoreResult<Vec<AnyRun>> {
        Ok(self
            .history_column("run", session_id, num_runs, exclude_run_id)?
            .iter()
            .filter_map(|text| unpack(text, "[]", session_id).map(|(run, _)| run))
            .collect())
    }

    /// The conversation of the same runs [`SqliteStore::history`] selects, oldest first, without
    /// system prompts: what goes into the next prompt. Reads only the messages of each run.
    pub fn history_messages(
        &self,
        session_id: &str,
        num_runs: usize,
        exclude_run_id: Option<&str>,
    ) -> StoreResult<Vec<Message>> {
        // A run without messages (a workflow run, in a session an agent also runs in)
        // adds none.
        let texts = self.history_column(
            "COALESCE(json_extract(run, '$.messages'), '[]')",
            session_id,
            num_runs,
            exclude_run_id,
        )?;
        let mut messages = Vec::new();
        for text in &texts {
            let Some(run) = decode_or_report::<Vec<Message>>(text, "a run of session", session_id)
            else {
                continue;
            };
            messages.extend(
                run.into_iter()
                    .filter(|m| m.role != Role::System && !m.from_history),
            );
        }
        Ok(messages)
    }

    /// The sequence numbers of the runs [`SqliteStore::history`] selects, oldest first. A
    /// run's number never changes nor is reused, so it keys caches of history.
    pub fn history_seqs(
        &self,
        session_id: &str,
        num_runs: usize,
        exclude_run_id: Option<&str>,
    ) -> StoreResult<Vec<i64>> {
        Ok(self
            .history_column("CAST(seq AS TEXT)", session_id, num_runs, exclude_run_id)?
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect())
    }

    /// The conversation messages (no system prompts, nothing sent as history) of the runs
    /// with these sequence numbers; a run that cannot be decoded is reported and left out.
    pub fn run_messages(
        &self,
        session_id: &str,
        seqs: &[i64],
    ) -> StoreResult<Vec<(i64, Vec<Message>)>> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached(
            "SELECT COALESCE(json_extract(run, '$.messages'), '[]') FROM runs \
             WHERE seq = ?1 AND session_id = ?2",
        )?;
        let mut out = Vec::with_capacity(seqs.len());
        for seq in seqs {
            let text: Option<String> = statement
                .query_row(params![seq, session_id], |row| row.get(0))
                .optional()?;
            let Some(run) = text
                .and_then(|t| decode_or_report::<Vec<Message>>(&t, "a run of session", session_id))
            else {
                continue;
            };
            out.push((
                *seq,
                run.into_iter()
                    .filter(|m| m.role != Role::System && !m.from_history)
                    .collect(),
            ));
        }
        Ok(out)
    }

    /// `column` of the last `num_runs` completed top-level runs of a session, oldest first.
    fn history_column(
        &self,
        column: &str,
        session_id: &str,
        num_runs: usize,
        exclude_run_id: Option<&str>,
    ) -> StoreResult<Vec<String>> {
        if num_runs == 0 {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(num_runs).unwrap_or(i64::MAX);
        let mut texts = self
            .conn()
            .prepare_cached(&format!(
                "SELECT {column} FROM runs \
                 WHERE session_id = ?1 AND parent_run_id IS NULL AND status = 'COMPLETED' \
                 AND run_id IS NOT ?2 \
                 ORDER BY seq DESC LIMIT ?3"
            ))?
            .query_map(params![session_id, exclude_run_id, limit], |row| {
                row.get::<_, String>(0)
            })?
            .collect::<Result<Vec<_>, _>>()?;
        texts.reverse();
        Ok(texts)
    }
}

/// `f` in a savepoint: released when it succeeds, rolled back when it fails.
fn in_savepoint<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> StoreResult<T>,
) -> StoreResult<T> {
    conn.execute_batch("SAVEPOINT call")?;
    match f(conn) {
        Ok(value) => {
            conn.execute_batch("RELEASE call")?;
            Ok(value)
        }
        Err(err) => {
            let _ = conn.execute_batch("ROLLBACK TO call; RELEASE call");
            Err(err)
        }
    }
}

// ----- row helpers -----

impl ToSql for Kind {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for Kind {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let text = value.as_str()?;
        Kind::parse(text)
            .ok_or_else(|| FromSqlError::Other(format!("unknown session type '{text}'").into()))
    }
}

impl ToSql for RunStatus {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for RunStatus {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let text = value.as_str()?;
        RunStatus::parse(text)
            .ok_or_else(|| FromSqlError::Other(format!("unknown run status '{text}'").into()))
    }
}

/// A session's JSON columns, serialized.
struct SessionJson {
    state: String,
    metadata: Option<String>,
    data: Option<String>,
}

impl SessionJson {
    fn new(session: &Session) -> StoreResult<Self> {
        Ok(SessionJson {
            state: serde_json::to_string(&session.session_state)?,
            metadata: session
                .metadata
                .as_ref()
                .map(serde_json::to_string)
                .transpose()?,
            data: session
                .session_data
                .as_ref()
                .map(serde_json::to_string)
                .transpose()?,
        })
    }
}

/// A session row before its JSON columns are parsed.
struct RawSession {
    session_id: String,
    session_type: Kind,
    component_id: String,
    user_id: Option<String>,
    session_name: Option<String>,
    session_state: String,
    metadata: Option<String>,
    session_data: Option<String>,
    created_at: i64,
    updated_at: i64,
}

/// Reads the columns of `session_columns!()` starting at index 0.
fn raw_session(row: &Row<'_>) -> rusqlite::Result<RawSession> {
    Ok(RawSession {
        session_id: row.get(0)?,
        session_type: row.get(1)?,
        component_id: row.get(2)?,
        user_id: row.get(3)?,
        session_name: row.get(4)?,
        session_state: row.get(5)?,
        metadata: row.get(6)?,
        session_data: row.get(7)?,
        created_at: row.get(8)?,
        updated_at: row.get(9)?,
    })
}

impl RawSession {
    /// The session, with any JSON column that cannot be decoded reported and left empty,
    /// so one bad row never makes a listing fail.
    fn into_session(self) -> StoreResult<Session> {
        let id = self.session_id.as_str();
        let parse = |text: Option<String>, column: &str| -> Option<Value> {
            decode_or_report(&text?, &format!("the {column} of session"), id)
        };
        let session_state =
            decode_or_report(&self.session_state, "the session_state of session", id)
                .unwrap_or_else(|| Value::Object(serde_json::Map::new()));
        Ok(Session {
            metadata: parse(self.metadata, "metadata"),
            session_data: parse(self.session_data, "session_data"),
            session_state,
            session_id: self.session_id,
            session_type: self.session_type,
            component_id: self.component_id,
            user_id: self.user_id,
            session_name: self.session_name,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

fn get_session(conn: &Connection, session_id: &str) -> StoreResult<Option<Session>> {
    let raw = conn
        .prepare_cached(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE session_id = ?1"
        ))?
        .query_row([session_id], raw_session)
        .optional()?;
    raw.map(RawSession::into_session).transpose()
}

/// Adds the run figures of a session to its row.
fn summarize(
    conn: &Connection,
    raw: RawSession,
    display_name: String,
) -> StoreResult<SessionSummary> {
    let (run_count, input_tokens, output_tokens, total_tokens) = conn
        .prepare_cached(SESSION_STATS_SQL)?
        .query_row([&raw.session_id], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, i64>(3)?,
            ))
        })?;
    Ok(SessionSummary {
        session: raw.into_session()?,
        display_name,
        run_count: to_u64(run_count),
        input_tokens: to_u64(input_tokens),
        output_tokens: to_u64(output_tokens),
        total_tokens: to_u64(total_tokens),
    })
}

/// A run as its row stores it, encoded: the JSON is made by whoever calls the store, so
/// the one writer thread only writes.
pub(crate) struct EncodedRun {
    run_id: String,
    session_id: String,
    parent_run_id: Option<String>,
    component_id: String,
    user_id: Option<String>,
    status: RunStatus,
    input_content: String,
    created_at: i64,
    columns: RunColumns,
}

impl EncodedRun {
    pub(crate) fn new(run: &impl RunRecord, events: &[Value]) -> StoreResult<Self> {
        Ok(EncodedRun {
            run_id: run.run_id().to_string(),
            session_id: run.session_id().to_string(),
            parent_run_id: run.parent_run_id().map(str::to_string),
            component_id: run.component_id().to_string(),
            user_id: run.user_id().map(str::to_string),
            status: run.status(),
            input_content: run.input_content().to_string(),
            created_at: run.created_at(),
            columns: RunColumns::new(run, events)?,
        })
    }
}

/// A session with its JSON columns encoded.
pub(crate) struct EncodedSession {
    session: Session,
    json: SessionJson,
}

impl EncodedSession {
    pub(crate) fn new(session: &Session) -> StoreResult<Self> {
        Ok(EncodedSession {
            json: SessionJson::new(session)?,
            session: session.clone(),
        })
    }
}

/// The derived columns of a run row.
struct RunColumns {
    content: Option<String>,
    run: String,
    events: String,
    input_tokens: i64,
    output_tokens: i64,
    total_tokens: i64,
}

impl RunColumns {
    fn new(run: &impl RunRecord, events: &[Value]) -> StoreResult<Self> {
        let (input, output, total) = run.tokens();
        let (run, events) = pack(run, events)?;
        Ok(RunColumns {
            // Kept empty: the text is in the run object's messages (see [`pack`]).
            content: None,
            run,
            events,
            input_tokens: to_i64(input),
            output_tokens: to_i64(output),
            total_tokens: to_i64(total),
        })
    }
}

/// A run row before its JSON columns are parsed.
struct RawRun {
    run: String,
    events: String,
    updated_at: i64,
    session_type: Kind,
    run_id: String,
}

/// Reads the columns of `run_columns!()` starting at index 0.
fn raw_run(row: &Row<'_>) -> rusqlite::Result<RawRun> {
    Ok(RawRun {
        run: row.get(0)?,
        events: row.get(1)?,
        updated_at: row.get(2)?,
        session_type: row.get(3)?,
        run_id: row.get(4)?,
    })
}

impl RawRun {
    /// The stored run, or `None` (reported) when its object cannot be decoded. Events that
    /// cannot be decoded are reported and left out.
    fn into_stored(self) -> Option<StoredRun> {
        let (run, events) = unpack(&self.run, &self.events, &self.run_id)?;
        Some(StoredRun {
            run,
            session_type: self.session_type,
            events,
            updated_at: self.updated_at,
        })
    }
}

/// True for a UNIQUE or PRIMARY KEY violation (the only constraints an insert of a new
/// id can break).
fn is_constraint(error: &rusqlite::Error) -> bool {
    matches!(
        error,
        rusqlite::Error::SqliteFailure(e, _)
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
    )
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

mod backend;
mod journal;
mod ownership;
mod queue;

/// Deletes a session (its runs go with it), and the background runs queued into it that
/// no process has taken up yet: they would bring the session back.
fn delete_one_session(tx: &rusqlite::Connection, session_id: &str) -> StoreResult<bool> {
    let deleted = tx
        .prepare_cached("DELETE FROM sessions WHERE session_id = ?1")?
        .execute([session_id])?;
    if deleted > 0 {
        tx.prepare_cached("DELETE FROM run_queue WHERE session_id = ?1 AND claimed_by IS NULL")?
            .execute([session_id])?;
    }
    Ok(deleted > 0)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::run::{Message, Metrics, Role, RunInput, RunOutput};

    fn session(id: &str, component: &str, user: Option<&str>, created_at: i64) -> Session {
        Session {
            session_id: id.into(),
            session_type: Kind::Agent,
            component_id: component.into(),
            user_id: user.map(Into::into),
            session_name: None,
            session_state: json!({}),
            metadata: None,
            session_data: None,
            created_at,
            updated_at: created_at,
        }
    }

    pub(super) fn run(session_id: &str, run_id: &str, input: &str) -> RunOutput {
        RunOutput {
            run_id: run_id.into(),
            agent_id: "writer".into(),
            agent_name: "Writer".into(),
            parent_run_id: None,
            session_id: session_id.into(),
            user_id: Some("u1".into()),
            content: None,
            content_type: "str".into(),
            model_provider_data: None,
            reasoning_content: None,
            model: "test".into(),
            model_provider: "Test".into(),
            session_state: json!({}),
            created_at: 1_700_000_000,
            status: RunStatus::Running,
            cancellation_stage: None,
            workflow_step_id: None,
            metrics: Metrics::default(),
            messages: vec![Message {
                id: format!("{run_id}-m1"),
                content: Some(input.into()),
                role: Role::User,
                created_at: 1_700_000_000,
                ..Message::default()
            }],
            metadata: None,
            tools: Some(Vec::new()),
            requirements: None,
            input: RunInput {
                input_content: input.into(),
            },
        }
    }

    /// Marks a run finished with the given status, content and token counts.
    fn finished(mut r: RunOutput, status: RunStatus, content: &str, tokens: u64) -> RunOutput {
        r.status = status;
        r.content = Some(Value::String(content.into()));
        r.metrics = Metrics {
            input_tokens: Some(tokens),
            output_tokens: Some(tokens * 2),
            total_tokens: Some(tokens * 3),
            duration: Some(0.25),
            ..Metrics::default()
        };
        r.messages.push(Message {
            id: format!("{}-m2", r.run_id),
            content: Some(content.into()),
            role: Role::Assistant,
            created_at: r.created_at,
            ..Message::default()
        });
        r
    }

    /// Begins and finishes one run in `s`.
    fn complete(store: &SqliteStore, s: &Session, run_id: &str, input: &str, status: RunStatus) {
        let r = run(&s.session_id, run_id, input);
        store.begin_run(s, &r, Kind::Agent).unwrap();
        let done = finished(r, status, &format!("answer to {input}"), 10);
        store.finish_run(&done, &[], &json!({})).unwrap();
    }

    fn raw_run_row(store: &SqliteStore, run_id: &str) -> (String, String, i64, i64) {
        store
            .conn()
            .query_row(
                "SELECT run, events, updated_at, seq FROM runs WHERE run_id = ?1",
                [run_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap()
    }

    #[test]
    fn store_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<SqliteStore>();
    }

    #[test]
    fn default_path_names_the_database_file() {
        assert!(super::super::Store::default_path().ends_with("agentos.db"));
    }

    #[test]
    fn open_creates_parent_dirs_uses_wal_and_reopens_idempotently() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/deeper/agentos.db");
        {
            let store = SqliteStore::open(&path).unwrap();
            let mode: String = store
                .conn()
                .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                .unwrap();
            assert_eq!(mode, "wal");
            let fk: i64 = store
                .conn()
                .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
                .unwrap();
            assert_eq!(fk, 1);
            let s = session("s1", "writer", None, 1);
            complete(&store, &s, "r1", "hello", RunStatus::Completed);
        }
        for _ in 0..2 {
            let store = SqliteStore::open(&path).unwrap();
            let version: i64 = store
                .conn()
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .unwrap();
            assert_eq!(version, migrations::SCHEMA_VERSION);
            assert_eq!(store.list_runs("s1").unwrap().len(), 1);
        }
    }

    #[test]
    fn newer_schema_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agentos.db");
        drop(SqliteStore::open(&path).unwrap());
        {
            let conn = Connection::open(&path).unwrap();
            conn.pragma_update(None, "user_version", migrations::SCHEMA_VERSION + 5)
                .unwrap();
        }
        let err = SqliteStore::open(&path).unwrap_err();
        assert!(
            matches!(err, StoreError::SchemaTooNew { found, .. } if found == migrations::SCHEMA_VERSION + 5),
            "{err:?}"
        );
        assert!(err.to_string().contains("newer than this agentos supports"));
    }

    #[test]
    fn begin_finish_round_trip_preserves_the_run() {
        let store = SqliteStore::open_in_memory().unwrap();
        let s = session("s1", "writer", Some("u1"), 100);
        let r = run("s1", "r1", "Tell me a story");
        store.begin_run(&s, &r, Kind::Agent).unwrap();

        let begun = store.get_run("r1").unwrap().unwrap();
        assert_eq!(begun.run, AnyRun::Agent(r.clone()));
        assert_eq!(begun.run.status(), RunStatus::Running);
        assert!(begun.events.is_empty());
        assert_eq!(begun.session_type, Kind::Agent);
        assert_eq!(
            store.get_session("s1").unwrap().unwrap().user_id.as_deref(),
            Some("u1")
        );

        let mut done = finished(r, RunStatus::Completed, "Once upon a time", 7);
        done.content = Some(json!({"title": "Story", "lines": [1, 2.5, "x"]}));
        done.content_type = "dict".into();
        done.metadata = Some(json!({"k": "v"}));
        done.model_provider_data = Some(json!({"id": "chatcmpl-1"}));
        done.session_state = json!({"count": 1});
        let events = vec![
            json!({"event": "RunStarted", "created_at": 1}),
            json!({"event": "RunCompleted", "content": "Once"}),
        ];
        store
            .finish_run(&done, &events, &json!({"count": 1}))
            .unwrap();

        let stored = store.get_run("r1").unwrap().unwrap();
        assert_eq!(stored.run, AnyRun::Agent(done.clone()));
        assert_eq!(
            serde_json::to_value(&stored.run).unwrap(),
            serde_json::to_value(&done).unwrap()
        );
        assert_eq!(stored.events, events);
        let sess = store.get_session("s1").unwrap().unwrap();
        assert_eq!(sess.session_state, json!({"count": 1}));
        assert!(sess.updated_at >= 100);

        let summary = store.session_summary("s1").unwrap().unwrap();
        assert_eq!(summary.run_count, 1);
        assert_eq!(summary.input_tokens, 7);
        assert_eq!(summary.output_tokens, 14);
        assert_eq!(summary.total_tokens, 21);
        assert_eq!(summary.display_name, "Tell me a story");
    }

    #[test]
    fn run_id_conflicts_and_unknown_runs_are_errors() {
        let store = SqliteStore::open_in_memory().unwrap();
        let s = session("s1", "writer", None, 1);
        let r = run("s1", "r1", "hi");
        store.begin_run(&s, &r, Kind::Agent).unwrap();
        assert!(matches!(
            store.begin_run(&s, &r, Kind::Agent),
            Err(StoreError::RunExists(id)) if id == "r1"
        ));
        let ghost = run("s1", "nope", "hi");
        assert!(matches!(
            store.finish_run(&ghost, &[], &json!({})),
            Err(StoreError::RunNotFound(id)) if id == "nope"
        ));
        let stray = run("other", "r2", "hi");
        assert!(matches!(
            store.begin_run(&s, &stray, Kind::Agent),
            Err(StoreError::InvalidRun(_))
        ));
        // The failed begin left nothing behind.
        assert!(store.get_run("r2").unwrap().is_none());
        assert!(store.get_session("other").unwrap().is_none());
    }

    #[test]
    fn begin_run_keeps_an_existing_session_and_bumps_updated_at() {
        let store = SqliteStore::open_in_memory().unwrap();
        let mut s = session("s1", "writer", None, 10);
        s.session_state = json!({"a": 1});
        store.create_session(&s).unwrap();
        assert!(matches!(
            store.create_session(&s),
            Err(StoreError::SessionExists(id)) if id == "s1"
        ));
        let mut stale = s.clone();
        stale.session_state = json!({"b": 2});
        store
            .begin_run(&stale, &run("s1", "r1", "x"), Kind::Agent)
            .unwrap();
        let got = store.get_session("s1").unwrap().unwrap();
        assert_eq!(got.session_state, json!({"a": 1}));
        assert_eq!(got.created_at, 10);
        assert!(got.updated_at >= now_secs() - 5);
    }

    #[test]
    fn history_returns_last_completed_top_level_runs_oldest_first() {
        let store = SqliteStore::open_in_memory().unwrap();
        let s = session("s1", "writer", None, 1);
        complete(&store, &s, "r1", "one", RunStatus::Completed);
        complete(&store, &s, "r2", "two", RunStatus::Completed);
        complete(&store, &s, "r3", "three", RunStatus::Error);
        complete(&store, &s, "r4", "four", RunStatus::Completed);
        complete(&store, &s, "r5", "five", RunStatus::Cancelled);
        // A member run (of a team) is never history of its own.
        let mut member = run("s1", "m1", "member");
        member.parent_run_id = Some("r4".into());
        store.begin_run(&s, &member, Kind::Agent).unwrap();
        store
            .finish_run(
                &finished(member, RunStatus::Completed, "m", 1),
                &[],
                &json!({}),
            )
            .unwrap();
        // A run still going is not history either.
        store
            .begin_run(&s, &run("s1", "r6", "six"), Kind::Agent)
            .unwrap();

        let ids = |runs: Vec<AnyRun>| {
            runs.iter()
                .map(|r| r.run_id().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(store.history("s1", 2, None).unwrap()), ["r2", "r4"]);
        assert_eq!(
            ids(store.history("s1", 10, None).unwrap()),
            ["r1", "r2", "r4"]
        );
        assert_eq!(
            ids(store.history("s1", 2, Some("r4")).unwrap()),
            ["r1", "r2"]
        );
        assert!(store.history("s1", 0, None).unwrap().is_empty());
        assert!(store.history("unknown", 3, None).unwrap().is_empty());
        let last = store.history("s1", 1, None).unwrap();
        assert_eq!(last[0].content().cloned(), Some(json!("answer to four")));
    }

    #[test]
    fn history_reads_through_the_session_seq_index() {
        let store = SqliteStore::open_in_memory().unwrap();
        let plan: Vec<String> = store
            .conn()
            .prepare(
                "EXPLAIN QUERY PLAN SELECT run FROM runs \
                 WHERE session_id = ?1 AND parent_run_id IS NULL AND status = 'COMPLETED' \
                 AND run_id IS NOT ?2 ORDER BY seq DESC LIMIT ?3",
            )
            .unwrap()
            .query_map(params!["s", None::<String>, 3], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let plan = plan.join("\n");
        assert!(plan.contains("runs_session_seq"), "{plan}");
        assert!(!plan.contains("TEMP B-TREE"), "{plan}");
    }

    #[test]
    fn history_of_a_long_session_only_loads_what_it_returns() {
        let store = SqliteStore::open_in_memory().unwrap();
        let s = session("s1", "writer", None, 1);
        for i in 0..400 {
            complete(
                &store,
                &s,
                &format!("r{i}"),
                &format!("q{i}"),
                RunStatus::Completed,
            );
        }
        let started = std::time::Instant::now();
        for _ in 0..100 {
            let h = store.history("s1", 5, None).unwrap();
            assert_eq!(h.len(), 5);
            assert_eq!(h[0].run_id(), "r395");
            assert_eq!(h[4].run_id(), "r399");
        }
        // 100 reads of 5 runs each; generous bound for slow debug builds.
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn writing_a_run_does_not_rewrite_earlier_runs() {
        let store = SqliteStore::open_in_memory().unwrap();
        let s = session("s1", "writer", None, 1);
        complete(&store, &s, "r1", "one", RunStatus::Completed);
        // Make run 1's stored timestamp distinguishable from any later write.
        store
            .conn()
            .execute("UPDATE runs SET updated_at = 42 WHERE run_id = 'r1'", [])
            .unwrap();
        let before = raw_run_row(&store, "r1");
        complete(&store, &s, "r2", "two", RunStatus::Completed);
        store.update_run_status("r2", RunStatus::Error).unwrap();
        let after = raw_run_row(&store, "r1");
        assert_eq!(before, after);
        assert_eq!(after.2, 42);
        assert!(raw_run_row(&store, "r2").3 > after.3, "seq grows");
    }

    #[test]
    fn failed_and_cancelled_runs_keep_status_and_partial_content() {
        let store = SqliteStore::open_in_memory().unwrap();
        let s = session("s1", "writer", None, 1);
        let r = run("s1", "err", "q");
        store.begin_run(&s, &r, Kind::Agent).unwrap();
        let mut failed = r.clone();
        failed.status = RunStatus::Error;
        failed.content = Some(json!("upstream 500: boom"));
        failed.tools = None;
        failed.messages.push(Message {
            id: "partial".into(),
            content: Some("Once upon".into()),
            role: Role::Assistant,
            ..Message::default()
        });
        let events = [json!({"event": "RunError", "content": "upstream 500: boom"})];
        store.finish_run(&failed, &events, &json!({})).unwrap();

        let c = run("s1", "cancel", "q2");
        store.begin_run(&s, &c, Kind::Agent).unwrap();
        let mut cancelled = c.clone();
        cancelled.status = RunStatus::Cancelled;
        cancelled.cancellation_stage = Some("EXECUTING".into());
        cancelled.content = Some(json!("partial answ"));
        store.finish_run(&cancelled, &[], &json!({})).unwrap();

        let got = store.get_run("err").unwrap().unwrap();
        assert_eq!(got.run, AnyRun::Agent(failed.clone()));
        assert_eq!(got.events, events);
        let got = store.get_run("cancel").unwrap().unwrap();
        assert_eq!(got.run.status(), RunStatus::Cancelled);
        assert_eq!(got.run.content_text(), "partial answ");
        let status: String = store
            .conn()
            .query_row("SELECT status FROM runs WHERE run_id = 'cancel'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(status, "CANCELLED");

        let errors = store
            .list_runs_filtered("s1", &[RunStatus::Error, RunStatus::Cancelled], None, None)
            .unwrap();
        assert_eq!(errors.len(), 2);
        assert!(store.history("s1", 5, None).unwrap().is_empty());
    }

    #[test]
    fn each_text_is_stored_once() {
        let store = SqliteStore::open_in_memory().unwrap();
        let s = session("s1", "writer", None, 1);
        let r = run("s1", "big", "tell me everything");
        store.begin_run(&s, &r, Kind::Agent).unwrap();
        let answer = format!("BEGIN {} END", "word ".repeat(20_000));
        let done = finished(r, RunStatus::Completed, &answer, 3);
        let events = vec![
            json!({"event": "RunStarted"}),
            json!({"event": "RunCompleted", "content": answer}),
        ];
        store.finish_run(&done, &events, &json!({})).unwrap();

        let (run_text, events_text, content): (String, String, Option<String>) = store
            .conn()
            .query_row(
                "SELECT run, events, content FROM runs WHERE run_id = 'big'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .unwrap();
        let copies = [
            run_text.as_str(),
            events_text.as_str(),
            content.as_deref().unwrap_or(""),
        ]
        .iter()
        .map(|t| t.matches("BEGIN word").count())
        .sum::<usize>();
        assert_eq!(copies, 1, "the answer is stored once");
        let stored = store.get_run("big").unwrap().unwrap();
        assert_eq!(stored.run, AnyRun::Agent(done));
        assert_eq!(stored.events, events, "events come back whole");
        let history = store.history("s1", 1, None).unwrap();
        assert_eq!(history[0].content_text(), answer);
    }

    #[test]
    fn rows_too_deep_for_serde_json_are_still_read() {
        let store = SqliteStore::open_in_memory().unwrap();
        // A session state nesting past serde_json's default limit of 128, as rows written
        // before agentos refused such input can hold.
        let deep = format!("{{\"x\":{}{}}}", "[".repeat(140), "]".repeat(140));
        let mut s = session("deep", "writer", None, 1);
        s.session_state = json!({});
        store.create_session(&s).unwrap();
        store
            .conn()
            .execute(
                "UPDATE sessions SET session_state = ?1 WHERE session_id = 'deep'",
                [&deep],
            )
            .unwrap();
        let read = store.get_session("deep").unwrap().unwrap();
        assert_eq!(crate::limits::json_depth(&read.session_state), 141);
        // Past what agentos reads at all: reported, left empty, and the listing still works.
        let deeper = format!("{{\"x\":{}{}}}", "[".repeat(600), "]".repeat(600));
        store
            .conn()
            .execute(
                "UPDATE sessions SET session_state = ?1 WHERE session_id = 'deep'",
                [&deeper],
            )
            .unwrap();
        let read = store.get_session("deep").unwrap().unwrap();
        assert_eq!(read.session_state, json!({}));
        let (list, total) = store.list_sessions(&SessionQuery::default()).unwrap();
        assert_eq!((list.len(), total), (1, 1));
        // A run object that cannot be decoded is left out of listings, the others stay.
        complete(&store, &s, "good", "hello", RunStatus::Completed);
        complete(&store, &s, "bad", "hello", RunStatus::Completed);
        store
            .conn()
            .execute("UPDATE runs SET run = '{not json' WHERE run_id = 'bad'", [])
            .unwrap();
        let runs = store.list_runs("deep").unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].run.run_id(), "good");
        assert!(store.get_run("bad").unwrap().is_none());
    }

    #[test]
    fn update_run_status_changes_column_and_object() {
        let store = SqliteStore::open_in_memory().unwrap();
        let s = session("s1", "writer", None, 1);
        let r = run("s1", "r1", "q");
        store.begin_run(&s, &r, Kind::Agent).unwrap();
        assert!(store.update_run_status("r1", RunStatus::Paused).unwrap());
        assert!(!store.update_run_status("zz", RunStatus::Paused).unwrap());
        let got = store.get_run("r1").unwrap().unwrap();
        let mut expected = r;
        expected.status = RunStatus::Paused;
        assert_eq!(got.run, AnyRun::Agent(expected));
        assert_eq!(
            store
                .list_runs_filtered("s1", &[RunStatus::Paused], None, None)
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn transition_run_is_compare_and_set() {
        let store = SqliteStore::open_in_memory().unwrap();
        let s = session("s1", "writer", None, 1);
        let r = run("s1", "r1", "q");
        store.begin_run(&s, &r, Kind::Agent).unwrap();
        store.update_run_status("r1", RunStatus::Paused).unwrap();
        let claim = || {
            store
                .transition_run("r1", RunStatus::Paused, RunStatus::Running, None)
                .unwrap()
        };
        assert!(claim(), "the first claim wins");
        assert!(!claim(), "the second finds the run no longer paused");
        store.update_run_status("r1", RunStatus::Paused).unwrap();
        assert!(
            store
                .transition_run(
                    "r1",
                    RunStatus::Paused,
                    RunStatus::Cancelled,
                    Some("PAUSED")
                )
                .unwrap()
        );
        let got = store.get_run("r1").unwrap().unwrap().run;
        let got = got.as_agent().unwrap();
        assert_eq!(got.status, RunStatus::Cancelled);
        assert_eq!(got.cancellation_stage.as_deref(), Some("PAUSED"));
    }

    #[test]
    fn list_runs_filters_by_status_and_time_oldest_first() {
        let store = SqliteStore::open_in_memory().unwrap();
        let s = session("s1", "writer", None, 1);
        for (i, status) in [
            RunStatus::Completed,
            RunStatus::Error,
            RunStatus::Completed,
            RunStatus::Cancelled,
        ]
        .into_iter()
        .enumerate()
        {
            let mut r = run("s1", &format!("r{i}"), "q");
            r.created_at = 1000 + i as i64 * 10;
            store.begin_run(&s, &r, Kind::Agent).unwrap();
            let mut done = r.clone();
            done.status = status;
            store.finish_run(&done, &[], &json!({})).unwrap();
        }
        let ids = |runs: Vec<StoredRun>| {
            runs.into_iter()
                .map(|r| r.run.run_id().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            ids(store.list_runs("s1").unwrap()),
            ["r0", "r1", "r2", "r3"]
        );
        assert_eq!(
            ids(store
                .list_runs_filtered("s1", &[RunStatus::Completed], None, None)
                .unwrap()),
            ["r0", "r2"]
        );
        assert_eq!(
            ids(store
                .list_runs_filtered("s1", &[], Some(1010), Some(1020))
                .unwrap()),
            ["r1", "r2"]
        );
        assert_eq!(
            ids(store
                .list_runs_filtered("s1", &[RunStatus::Completed], Some(1001), None)
                .unwrap()),
            ["r2"]
        );
        assert!(store.list_runs("nope").unwrap().is_empty());
    }

    #[test]
    fn list_sessions_filters_sorts_pages_and_counts() {
        let store = SqliteStore::open_in_memory().unwrap();
        // s0..s4: writer/u1 except s3 (reviewer) and s4 (team, u2).
        for i in 0..5 {
            let mut s = session(&format!("s{i}"), "writer", Some("u1"), 100 + i);
            if i == 3 {
                s.component_id = "reviewer".into();
            }
            if i == 4 {
                s.session_type = Kind::Team;
                s.component_id = "research-team".into();
                s.user_id = Some("u2".into());
            }
            store.create_session(&s).unwrap();
        }
        // s1 gets runs: the first input names it; s2 is renamed.
        let s1 = store.get_session("s1").unwrap().unwrap();
        complete(&store, &s1, "a", "Zebra facts", RunStatus::Completed);
        complete(&store, &s1, "b", "more", RunStatus::Completed);
        assert!(store.rename_session("s2", "apple pie").unwrap());
        // Keep updated_at deterministic for the sort test.
        for (i, id) in ["s0", "s1", "s2", "s3", "s4"].iter().enumerate() {
            store
                .conn()
                .execute(
                    "UPDATE sessions SET updated_at = ?2 WHERE session_id = ?1",
                    params![id, 500 - i as i64],
                )
                .unwrap();
        }

        let ids = |r: &(Vec<SessionSummary>, u64)| {
            r.0.iter()
                .map(|s| s.session.session_id.clone())
                .collect::<Vec<_>>()
        };
        let all = store.list_sessions(&SessionQuery::default()).unwrap();
        assert_eq!(ids(&all), ["s4", "s3", "s2", "s1", "s0"]);
        assert_eq!(all.1, 5);
        let s1_summary = &all.0[3];
        assert_eq!(s1_summary.display_name, "Zebra facts");
        assert_eq!(s1_summary.run_count, 2);
        assert_eq!(s1_summary.total_tokens, 60);
        assert_eq!(all.0[2].display_name, "apple pie");
        assert_eq!(all.0[0].display_name, "");

        let paged = store
            .list_sessions(&SessionQuery {
                descending: false,
                page: 2,
                limit: 2,
                ..SessionQuery::default()
            })
            .unwrap();
        assert_eq!(ids(&paged), ["s2", "s3"]);
        assert_eq!(paged.1, 5);
        let past_end = store
            .list_sessions(&SessionQuery {
                page: 9,
                limit: 2,
                ..SessionQuery::default()
            })
            .unwrap();
        assert!(past_end.0.is_empty());
        assert_eq!(past_end.1, 5);

        let agents_of_writer = store
            .list_sessions(&SessionQuery {
                session_type: Some(Kind::Agent),
                component_id: Some("writer".into()),
                user_id: Some("u1".into()),
                ..SessionQuery::default()
            })
            .unwrap();
        assert_eq!(ids(&agents_of_writer), ["s2", "s1", "s0"]);
        assert_eq!(agents_of_writer.1, 3);
        let teams = store
            .list_sessions(&SessionQuery {
                session_type: Some(Kind::Team),
                ..SessionQuery::default()
            })
            .unwrap();
        assert_eq!(ids(&teams), ["s4"]);

        let by_name = store
            .list_sessions(&SessionQuery {
                session_name: Some("ZEBRA".into()),
                ..SessionQuery::default()
            })
            .unwrap();
        assert_eq!(ids(&by_name), ["s1"]);
        assert_eq!(by_name.1, 1);

        let by_updated = store
            .list_sessions(&SessionQuery {
                sort_by: SessionSort::UpdatedAt,
                descending: true,
                ..SessionQuery::default()
            })
            .unwrap();
        assert_eq!(ids(&by_updated), ["s0", "s1", "s2", "s3", "s4"]);
        let by_name_asc = store
            .list_sessions(&SessionQuery {
                sort_by: SessionSort::SessionName,
                descending: false,
                ..SessionQuery::default()
            })
            .unwrap();
        // "" (s0, s3, s4 in creation order), "apple pie", "Zebra facts".
        assert_eq!(ids(&by_name_asc), ["s0", "s3", "s4", "s2", "s1"]);
    }

    #[test]
    fn rename_update_and_delete_cascade() {
        let store = SqliteStore::open_in_memory().unwrap();
        let s = session("s1", "writer", None, 1);
        complete(&store, &s, "r1", "one", RunStatus::Completed);
        complete(&store, &s, "r2", "two", RunStatus::Completed);
        assert!(store.rename_session("s1", "My chat").unwrap());
        assert!(!store.rename_session("nope", "x").unwrap());
        assert_eq!(
            store
                .get_session("s1")
                .unwrap()
                .unwrap()
                .session_name
                .as_deref(),
            Some("My chat")
        );

        let updated = store
            .update_session(
                "s1",
                None,
                Some(&json!({"n": 2})),
                Some(&json!({"tag": "x"})),
            )
            .unwrap()
            .unwrap();
        assert_eq!(updated.session_name.as_deref(), Some("My chat"));
        assert_eq!(updated.session_state, json!({"n": 2}));
        assert_eq!(updated.metadata, Some(json!({"tag": "x"})));
        assert_eq!(store.get_session("s1").unwrap().unwrap(), updated);
        let renamed = store
            .update_session("s1", Some("Other"), None, None)
            .unwrap()
            .unwrap();
        assert_eq!(renamed.session_name.as_deref(), Some("Other"));
        assert_eq!(renamed.session_state, json!({"n": 2}));
        assert!(
            store
                .update_session("nope", Some("x"), None, None)
                .unwrap()
                .is_none()
        );

        assert!(store.delete_session("s1").unwrap());
        assert!(!store.delete_session("s1").unwrap());
        assert!(store.get_session("s1").unwrap().is_none());
        assert!(store.get_run("r1").unwrap().is_none());
        let left: i64 = store
            .conn()
            .query_row("SELECT COUNT(*) FROM runs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0);
    }

    #[test]
    fn delete_sessions_in_bulk_with_type_filter() {
        let store = SqliteStore::open_in_memory().unwrap();
        for (id, t) in [
            ("a", Kind::Agent),
            ("b", Kind::Agent),
            ("t", Kind::Team),
            ("w", Kind::Workflow),
        ] {
            let mut s = session(id, "c", None, 1);
            s.session_type = t;
            store.create_session(&s).unwrap();
        }
        complete(
            &store,
            &store.get_session("a").unwrap().unwrap(),
            "ra",
            "x",
            RunStatus::Completed,
        );
        assert_eq!(
            store
                .delete_sessions(&["a", "t", "missing"], Some(&[Kind::Agent]))
                .unwrap(),
            1
        );
        assert!(store.get_session("t").unwrap().is_some());
        assert!(store.get_run("ra").unwrap().is_none());
        let ids = vec!["b".to_string(), "t".to_string()];
        assert_eq!(store.delete_sessions(&ids, None).unwrap(), 2);
        assert_eq!(store.delete_sessions(&["w"], Some(&[])).unwrap(), 1);
        assert_eq!(store.list_sessions(&SessionQuery::default()).unwrap().1, 0);
    }

    #[test]
    fn two_stores_on_one_file_write_concurrently() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared.db");
        let first = Arc::new(SqliteStore::open(&path).unwrap());
        let second = Arc::new(SqliteStore::open(&path).unwrap());
        let writers: Vec<_> = [("cli", first.clone()), ("server", second.clone())]
            .into_iter()
            .map(|(name, store)| {
                std::thread::spawn(move || {
                    for i in 0..40 {
                        let s = session(&format!("{name}-{}", i % 4), name, None, 1);
                        let r = run(&s.session_id, &format!("{name}-run-{i}"), "q");
                        store.begin_run(&s, &r, Kind::Agent).unwrap();
                        // Reads interleave with the other connection's writes.
                        store.history(&s.session_id, 3, Some(&r.run_id)).unwrap();
                        let done = finished(r, RunStatus::Completed, "a", 1);
                        store.finish_run(&done, &[], &json!({ "i": i })).unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        for store in [&first, &second] {
            let (sessions, total) = store
                .list_sessions(&SessionQuery {
                    limit: 100,
                    ..SessionQuery::default()
                })
                .unwrap();
            assert_eq!(total, 8);
            assert_eq!(sessions.iter().map(|s| s.run_count).sum::<u64>(), 80);
            for name in ["cli", "server"] {
                for i in 0..40 {
                    let got = store.get_run(&format!("{name}-run-{i}")).unwrap().unwrap();
                    assert_eq!(got.run.status(), RunStatus::Completed);
                }
                assert_eq!(store.list_runs(&format!("{name}-0")).unwrap().len(), 10);
            }
        }
    }

    #[test]
    fn threads_share_one_store() {
        let store = Arc::new(SqliteStore::open_in_memory().unwrap());
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let store = store.clone();
                std::thread::spawn(move || {
                    let s = session(&format!("s{t}"), "writer", None, 1);
                    for i in 0..10 {
                        complete(&store, &s, &format!("t{t}-{i}"), "q", RunStatus::Completed);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(store.list_sessions(&SessionQuery::default()).unwrap().1, 4);
        assert_eq!(store.history("s2", 100, None).unwrap().len(), 10);
    }
}
