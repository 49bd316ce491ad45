//! The one interface both stores implement: SQLite (`sqlite.rs`, on threads of its own)
//! and PostgreSQL (`postgres/`). [`super::Store`] is the facade callers use; it adds the
//! history cache and hands everything else to its backend.
//!
//! Every call is queued at once and returns a [`Pending`] result: dropping it does not
//! undo or stop the call. Writes of one process reach the database in the order they
//! were made.

use std::time::Duration;

use serde_json::Value;
use tokio::sync::broadcast;

use super::{
    CancelOutcome, JournalBatch, JournalRead, Orphan, Pending, ProcessInfo, QueuedRun, RunListing,
    RunQuery, Session, SessionQuery, SessionSummary, SessionWithRuns, StoredRun,
};
use crate::kind::Kind;
use crate::run::{AnyRun, Message, RunStatus};

/// What another process did that this one may be waiting for.
#[derive(Clone, Debug, PartialEq)]
pub enum Notice {
    /// A cancel was requested for this run.
    Cancel(String),
    /// This run's journal grew, or the run ended.
    Journal(String),
    /// A background run was queued.
    Queued(String),
    /// Notices may have been missed (the listener reconnected): look again.
    Resync,
}

/// A history read: the sequence numbers of the runs selected, and the messages of those
/// not already known.
pub type HistoryFetch = (Vec<i64>, Vec<(i64, Vec<Message>)>);

pub trait Backend: Send + Sync {
    /// `SQLite /path/to/agentos.db` or `PostgreSQL host/db`, for messages.
    fn describe(&self) -> String;

    /// Notices from other processes, when the database pushes them (PostgreSQL's
    /// LISTEN/NOTIFY); `None` when they must be polled for.
    fn notices(&self) -> Option<broadcast::Receiver<Notice>>;

    // ----- sessions -----
    fn get_session(&self, session_id: String) -> Pending<Option<Session>>;
    fn create_session(&self, session: Session) -> Pending<()>;
    fn rename_session(&self, session_id: String, name: String) -> Pending<bool>;
    fn update_session(
        &self,
        session_id: String,
        session_name: Option<String>,
        session_state: Option<Value>,
        metadata: Option<Value>,
    ) -> Pending<Option<Session>>;
    fn delete_session(&self, session_id: String) -> Pending<bool>;
    fn delete_sessions(&self, session_ids: Vec<String>, types: Option<Vec<Kind>>) -> Pending<u64>;
    fn session_summary(&self, session_id: String) -> Pending<Option<SessionSummary>>;
    fn list_sessions(&self, query: SessionQuery) -> Pending<(Vec<SessionSummary>, u64)>;
    fn list_sessions_with_runs(&self, query: SessionQuery) -> Pending<(Vec<SessionWithRuns>, u64)>;

    // ----- runs -----
    fn begin_run(&self, session: Session, run: AnyRun, kind: Kind) -> Pending<()>;
    /// Only a live run of this process (or of no process) is finished:
    /// [`super::StoreError::NotLive`] otherwise.
    fn finish_run(&self, run: AnyRun, events: Vec<Value>, session_state: Value) -> Pending<()>;
    fn update_run_status(&self, run_id: String, status: RunStatus) -> Pending<bool>;
    fn transition_run(
        &self,
        run_id: String,
        from: RunStatus,
        to: RunStatus,
        stage: Option<String>,
    ) -> Pending<bool>;
    fn get_run(&self, run_id: String) -> Pending<Option<StoredRun>>;
    fn list_runs_filtered(
        &self,
        session_id: String,
        statuses: Vec<RunStatus>,
        created_after: Option<i64>,
        created_before: Option<i64>,
    ) -> Pending<Vec<StoredRun>>;
    fn session_with_runs(&self, session_id: String) -> Pending<Option<(Session, Vec<StoredRun>)>>;
    fn history(
        &self,
        session_id: String,
        num_runs: usize,
        exclude_run_id: Option<String>,
    ) -> Pending<Vec<AnyRun>>;
    /// The runs [`Backend::history`] selects, by sequence number, with the messages of
    /// those not in `known` (sorted).
    fn history_fetch(
        &self,
        session_id: String,
        num_runs: usize,
        exclude_run_id: Option<String>,
        known: Vec<i64>,
    ) -> Pending<HistoryFetch>;

    // ----- processes, ownership, journals -----
    fn set_owner(&self, process_id: String) -> Pending<()>;
    fn register_process(&self, info: ProcessInfo) -> Pending<()>;
    /// Stamps the heartbeat with the store's clock: the machine's (SQLite) or the
    /// database's (PostgreSQL), never a caller's.
    fn heartbeat(&self, process_id: String) -> Pending<bool>;
    /// With `silent_for`, only those of `ids` still silent that long (by the heartbeat
    /// clock) when the row is deleted.
    fn forget_processes(&self, ids: Vec<String>, silent_for: Option<Duration>) -> Pending<()>;
    /// Silence is measured with the same clock as heartbeats.
    fn orphans(&self, alive: String, timeout: Duration) -> Pending<(Vec<String>, Vec<Orphan>)>;
    /// Only while the run is still live, still `owner`'s, and `owner` still silent for
    /// `silent_for` at the moment of the write.
    fn settle_orphan(
        &self,
        run: StoredRun,
        events: Vec<Value>,
        owner: Option<String>,
        silent_for: Duration,
    ) -> Pending<bool>;
    fn request_cancel(&self, run_id: String) -> Pending<CancelOutcome>;
    fn cancel_requests(&self, owner: String) -> Pending<Vec<String>>;
    fn list_all_runs(&self, query: RunQuery) -> Pending<Vec<RunListing>>;
    fn append_journal(&self, batches: Vec<JournalBatch>) -> Pending<()>;
    fn reset_journal(&self, run_id: String) -> Pending<()>;
    fn read_journal(&self, run_id: String, from: u64) -> Pending<JournalRead>;
    fn clean_journals(&self, cutoff: i64) -> Pending<u64>;

    // ----- the queue of background runs -----
    /// `claimed`: taken up at once by the process that accepted it (`accepted_by`).
    fn enqueue_run(&self, run: QueuedRun, claimed: bool) -> Pending<()>;
    fn claim_run(
        &self,
        claimer: String,
        run_id: Option<String>,
        timeout: Duration,
    ) -> Pending<Option<QueuedRun>>;
    fn release_run(&self, run_id: String) -> Pending<()>;
    fn dequeue_run(&self, run_id: String) -> Pending<bool>;
    fn queued_run(&self, run_id: String) -> Pending<Option<QueuedRun>>;
}
