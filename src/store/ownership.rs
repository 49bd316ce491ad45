//! What the store knows about the processes executing runs: who owns which run, cancel
//! requests between processes, the journals of live runs, and runs left behind by a
//! process that stopped. The rules these serve are in `presence.rs`.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use super::{Pending, Store, StoredRun};
use crate::kind::Kind;
use crate::run::RunStatus;

/// An agentos process that executes runs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProcessInfo {
    pub process_id: String,
    /// `serve` or `run`.
    pub kind: String,
    pub pid: u32,
    pub host: String,
    /// Where a server listens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    pub started_at: i64,
    /// Fractional Unix seconds of its last heartbeat, as the store stamped it (SQLite:
    /// the machine's clock; PostgreSQL: the database's). Ignored when registering.
    pub heartbeat_at: f64,
}

impl ProcessInfo {
    /// `agentos serve (pid 4242 on host, 127.0.0.1:7777)`.
    pub fn describe(&self) -> String {
        let address = self
            .address
            .as_deref()
            .map_or_else(String::new, |a| format!(", {a}"));
        format!(
            "agentos {} (pid {} on {}{address})",
            self.kind, self.pid, self.host
        )
    }
}

/// A run left RUNNING by a process that stopped.
#[derive(Debug)]
pub struct Orphan {
    pub run: StoredRun,
    /// The process id the run names as its owner.
    pub owner_id: Option<String>,
    /// That process, when its row is still there.
    pub owner: Option<ProcessInfo>,
    /// The journal of the top-level run it belongs to, as JSON lines.
    pub journal: Vec<String>,
}

/// What a cancel request found.
#[derive(Clone, Debug, PartialEq)]
pub enum CancelOutcome {
    /// No run has this id.
    Unknown,
    /// The run had already ended with this status.
    Ended(RunStatus),
    /// The run is live; its owner was asked to cancel it.
    Requested {
        status: RunStatus,
        owner: Option<String>,
    },
    /// The run is a background run waiting in the queue: whichever process takes it up
    /// stores it CANCELLED without running it.
    Queued,
}

/// Which runs [`Store::list_all_runs`] lists.
#[derive(Clone, Debug)]
pub struct RunQuery {
    /// Any status when empty.
    pub statuses: Vec<RunStatus>,
    /// Team members' runs too.
    pub include_members: bool,
    pub limit: usize,
}

/// A run as `agentos runs list` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunListing {
    pub run_id: String,
    pub kind: Kind,
    pub component_id: String,
    pub session_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_run_id: Option<String>,
    pub status: RunStatus,
    pub created_at: i64,
    pub updated_at: i64,
    /// The process running it (live runs only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<ProcessInfo>,
    /// A background run still waiting in the queue for a process to take it up
    /// (`PENDING`, no row of its own yet; `created_at` is when it was accepted).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub queued: bool,
}

impl RunListing {
    /// `runs` (newest first) and the `queued` runs that have no row yet, together newest
    /// first (a queued run by when it was accepted), at most `limit` of them.
    pub(crate) fn merge(
        mut runs: Vec<RunListing>,
        queued: Vec<RunListing>,
        limit: usize,
    ) -> Vec<RunListing> {
        let known: std::collections::HashSet<String> =
            runs.iter().map(|r| r.run_id.clone()).collect();
        // The runs keep their order (the store's, newest first); each queued run goes
        // before the first run begun earlier than it was accepted.
        for q in queued.into_iter().filter(|q| !known.contains(&q.run_id)) {
            let at = runs
                .iter()
                .position(|r| !r.queued && r.created_at < q.created_at)
                .unwrap_or(runs.len());
            runs.insert(at, q);
        }
        runs.truncate(limit);
        runs
    }
}

/// Events of one run to append to its journal.
#[derive(Clone, Debug)]
pub struct JournalBatch {
    pub run_id: String,
    /// The position of the first event in the run's event stream.
    pub first_seq: u64,
    pub count: u64,
    /// The events as JSON lines.
    pub events: String,
}

/// A background run accepted and not yet begun.
#[derive(Clone, Debug, PartialEq)]
pub struct QueuedRun {
    pub run_id: String,
    pub kind: Kind,
    pub component_id: String,
    pub session_id: String,
    /// The run's form fields, as a JSON array of `[name, value]` string pairs.
    pub request: Value,
    /// The process that accepted it.
    pub accepted_by: Option<String>,
    pub accepted_at: f64,
}

impl QueuedRun {
    /// The first value of the form field `name`, as the form gives it.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.request.as_array()?.iter().find_map(|pair| {
            (pair.get(0)?.as_str()? == name).then_some(())?;
            pair.get(1)?.as_str()
        })
    }

    /// Whether a request naming `user_id` may see this run: the rule of
    /// [`super::Session::visible_to`], with the user id the run will give its session.
    pub fn visible_to(&self, user_id: Option<&str>) -> bool {
        super::visible(self.field("user_id").filter(|u| !u.is_empty()), user_id)
    }
}

/// What a follower finds in the store.
#[derive(Clone, Debug)]
pub struct JournalRead {
    /// `(position, JSON)` of the journal's events from the position asked for on.
    pub events: Vec<(u64, String)>,
    /// Whether the run has a journal at all (it lived past its first flush).
    pub journaled: bool,
    /// The run's status; `None` when there is no such run.
    pub status: Option<RunStatus>,
}

impl Store {
    /// Runs begun through this store from now on are owned by `process_id`.
    pub fn set_owner(&self, process_id: &str) -> Pending<()> {
        self.backend().set_owner(process_id.to_string())
    }

    pub fn register_process(&self, info: ProcessInfo) -> Pending<()> {
        self.backend().register_process(info)
    }

    /// Stamps the process's heartbeat with the store's clock. False when the process's
    /// row is gone (it was taken for dead).
    pub fn heartbeat(&self, process_id: &str) -> Pending<bool> {
        self.backend().heartbeat(process_id.to_string())
    }

    /// Removes a process that stops cleanly.
    pub fn forget_process(&self, id: &str) -> Pending<()> {
        self.backend().forget_processes(vec![id.to_string()], None)
    }

    /// Removes processes found silent, unless one heartbeats again before the removal:
    /// those still silent for `timeout` by the store's clock.
    pub fn forget_silent_processes(&self, ids: Vec<String>, timeout: Duration) -> Pending<()> {
        self.backend().forget_processes(ids, Some(timeout))
    }

    /// Processes silent for longer than `timeout` by the store's clock (other than
    /// `alive`) and the runs they left live.
    pub fn orphans(&self, alive: &str, timeout: Duration) -> Pending<(Vec<String>, Vec<Orphan>)> {
        self.backend().orphans(alive.to_string(), timeout)
    }

    /// Stores a settled orphan unless, meanwhile, it stopped being a live run of `owner`
    /// or `owner` heartbeated again (within `timeout` by the store's clock): checked in
    /// the write itself, so a live owner's run is never settled.
    pub fn settle_orphan(
        &self,
        run: StoredRun,
        events: Vec<Value>,
        owner: Option<String>,
        timeout: Duration,
    ) -> Pending<bool> {
        self.backend().settle_orphan(run, events, owner, timeout)
    }

    pub fn request_cancel(&self, run_id: &str) -> Pending<CancelOutcome> {
        self.backend().request_cancel(run_id.to_string())
    }

    /// The runs of `owner` that another process asked to cancel.
    pub fn cancel_requests(&self, owner: &str) -> Pending<Vec<String>> {
        self.backend().cancel_requests(owner.to_string())
    }

    pub fn list_all_runs(&self, query: RunQuery) -> Pending<Vec<RunListing>> {
        self.backend().list_all_runs(query)
    }

    pub fn append_journal(&self, batches: Vec<JournalBatch>) -> Pending<()> {
        self.backend().append_journal(batches)
    }

    pub fn reset_journal(&self, run_id: &str) -> Pending<()> {
        self.backend().reset_journal(run_id.to_string())
    }

    pub fn read_journal(&self, run_id: &str, from: u64) -> Pending<JournalRead> {
        self.backend().read_journal(run_id.to_string(), from)
    }

    /// Puts a background run in the queue for any process to take up.
    pub fn enqueue_run(&self, run: QueuedRun) -> Pending<()> {
        self.backend().enqueue_run(run, false)
    }

    /// Puts a background run in the queue already taken up by the process that accepted
    /// it (it has room): no other process takes it while that one lives, and it is in the
    /// queue, so it is run elsewhere if that process stops before beginning it.
    pub fn enqueue_claimed_run(&self, run: QueuedRun) -> Pending<()> {
        self.backend().enqueue_run(run, true)
    }

    /// Takes up a queued run for `claimer`: `run_id`, or the oldest one. A run claimed by
    /// a process silent for longer than `timeout` (or gone) can be claimed again.
    pub fn claim_run(
        &self,
        claimer: &str,
        run_id: Option<&str>,
        timeout: Duration,
    ) -> Pending<Option<QueuedRun>> {
        self.backend()
            .claim_run(claimer.to_string(), run_id.map(str::to_string), timeout)
    }

    /// Gives a claimed run back to the queue.
    pub fn release_run(&self, run_id: &str) -> Pending<()> {
        self.backend().release_run(run_id.to_string())
    }

    /// Takes a run out of the queue (it has begun); true when a cancel was requested
    /// while it waited.
    pub fn dequeue_run(&self, run_id: &str) -> Pending<bool> {
        self.backend().dequeue_run(run_id.to_string())
    }

    /// The queued run with this id.
    pub fn queued_run(&self, run_id: &str) -> Pending<Option<QueuedRun>> {
        self.backend().queued_run(run_id.to_string())
    }

    /// Drops journals of runs that ended before `cutoff` (Unix seconds).
    pub fn clean_journals(&self, cutoff: i64) -> Pending<u64> {
        self.backend().clean_journals(cutoff)
    }
}
