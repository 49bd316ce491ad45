//! The SQLite store as a [`Backend`]: each call a job on the pool's threads (writes on
//! the writer, reads on the readers).

use std::time::Duration;

use serde_json::Value;
use tokio::sync::broadcast;

use crate::kind::Kind;
use crate::run::{AnyRun, RunStatus};
use crate::store::backend::{Backend, HistoryFetch, Notice};
use crate::store::pool::Pool;
use crate::store::sqlite::{EncodedRun, EncodedSession};
use crate::store::{
    CancelOutcome, JournalBatch, JournalRead, Orphan, Pending, ProcessInfo, QueuedRun, RunListing,
    RunQuery, Session, SessionQuery, SessionSummary, SessionWithRuns, StoredRun,
};

impl Backend for Pool {
    fn describe(&self) -> String {
        format!("SQLite {}", self.path().display())
    }

    fn notices(&self) -> Option<broadcast::Receiver<Notice>> {
        None
    }

    fn get_session(&self, id: String) -> Pending<Option<Session>> {
        self.read(move |db| db.get_session(&id))
    }

    fn create_session(&self, session: Session) -> Pending<()> {
        self.write(move |db| db.create_session(&session))
    }

    fn rename_session(&self, id: String, name: String) -> Pending<bool> {
        self.write(move |db| db.rename_session(&id, &name))
    }

    fn update_session(
        &self,
        id: String,
        name: Option<String>,
        state: Option<Value>,
        metadata: Option<Value>,
    ) -> Pending<Option<Session>> {
        self.write(move |db| {
            db.update_session(&id, name.as_deref(), state.as_ref(), metadata.as_ref())
        })
    }

    fn delete_session(&self, id: String) -> Pending<bool> {
        self.write(move |db| db.delete_session(&id))
    }

    fn delete_sessions(&self, ids: Vec<String>, types: Option<Vec<Kind>>) -> Pending<u64> {
        self.write(move |db| db.delete_sessions(&ids, types.as_deref()))
    }

    fn session_summary(&self, id: String) -> Pending<Option<SessionSummary>> {
        self.read(move |db| db.session_summary(&id))
    }

    fn list_sessions(&self, query: SessionQuery) -> Pending<(Vec<SessionSummary>, u64)> {
        self.read(move |db| db.list_sessions(&query))
    }

    fn list_sessions_with_runs(&self, query: SessionQuery) -> Pending<(Vec<SessionWithRuns>, u64)> {
        self.read(move |db| {
            let (summaries, total) = db.list_sessions(&query)?;
            let mut out = Vec::with_capacity(summaries.len());
            for summary in summaries {
                let runs = db.list_runs(&summary.session.session_id)?;
                out.push((summary, runs));
            }
            Ok((out, total))
        })
    }

    // The JSON of a run is encoded here, in the caller's task, not on the one writer
    // thread: encoding is most of a write's work, and the writer serves every run.
    fn begin_run(&self, session: Session, run: AnyRun, kind: Kind) -> Pending<()> {
        let encoded =
            EncodedRun::new(&run, &[]).and_then(|r| Ok((EncodedSession::new(&session)?, r)));
        match encoded {
            Ok((session, run)) => self.write(move |db| db.begin_encoded_run(&session, &run, kind)),
            Err(err) => Pending::ready(Err(err)),
        }
    }

    fn finish_run(&self, run: AnyRun, events: Vec<Value>, state: Value) -> Pending<()> {
        let encoded =
            EncodedRun::new(&run, &events).and_then(|r| Ok((r, serde_json::to_string(&state)?)));
        match encoded {
            Ok((run, state)) => self.write(move |db| db.finish_encoded_run(&run, &state)),
            Err(err) => Pending::ready(Err(err)),
        }
    }

    fn update_run_status(&self, id: String, status: RunStatus) -> Pending<bool> {
        self.write(move |db| db.update_run_status(&id, status))
    }

    fn transition_run(
        &self,
        id: String,
        from: RunStatus,
        to: RunStatus,
        stage: Option<String>,
    ) -> Pending<bool> {
        self.write(move |db| db.transition_run(&id, from, to, stage.as_deref()))
    }

    fn get_run(&self, id: String) -> Pending<Option<StoredRun>> {
        self.read(move |db| db.get_run(&id))
    }

    fn list_runs_filtered(
        &self,
        id: String,
        statuses: Vec<RunStatus>,
        after: Option<i64>,
        before: Option<i64>,
    ) -> Pending<Vec<StoredRun>> {
        self.read(move |db| db.list_runs_filtered(&id, &statuses, after, before))
    }

    fn session_with_runs(&self, id: String) -> Pending<Option<(Session, Vec<StoredRun>)>> {
        self.read(move |db| {
            let Some(session) = db.get_session(&id)? else {
                return Ok(None);
            };
            Ok(Some((session, db.list_runs(&id)?)))
        })
    }

    fn history(&self, id: String, n: usize, exclude: Option<String>) -> Pending<Vec<AnyRun>> {
        self.read(move |db| db.history(&id, n, exclude.as_deref()))
    }

    fn history_fetch(
        &self,
        id: String,
        n: usize,
        exclude: Option<String>,
        known: Vec<i64>,
    ) -> Pending<HistoryFetch> {
        self.read(move |db| {
            let seqs = db.history_seqs(&id, n, exclude.as_deref())?;
            let missing: Vec<i64> = seqs
                .iter()
                .copied()
                .filter(|s| known.binary_search(s).is_err())
                .collect();
            let fetched = db.run_messages(&id, &missing)?;
            Ok((seqs, fetched))
        })
    }

    fn set_owner(&self, id: String) -> Pending<()> {
        self.write(move |db| {
            db.set_owner(&id);
            Ok(())
        })
    }

    fn register_process(&self, info: ProcessInfo) -> Pending<()> {
        self.write(move |db| db.register_process(&info))
    }

    fn heartbeat(&self, id: String) -> Pending<bool> {
        self.control(move |db| db.heartbeat(&id))
    }

    fn forget_processes(&self, ids: Vec<String>, silent_for: Option<Duration>) -> Pending<()> {
        self.write(move |db| db.forget_processes(&ids, silent_for))
    }

    fn orphans(&self, alive: String, timeout: Duration) -> Pending<(Vec<String>, Vec<Orphan>)> {
        self.read(move |db| db.orphans(&alive, timeout))
    }

    fn settle_orphan(
        &self,
        run: StoredRun,
        events: Vec<Value>,
        owner: Option<String>,
        silent_for: Duration,
    ) -> Pending<bool> {
        self.write(move |db| db.settle_orphan(&run, &events, owner.as_deref(), silent_for))
    }

    fn request_cancel(&self, id: String) -> Pending<CancelOutcome> {
        self.write(move |db| db.request_cancel(&id))
    }

    fn cancel_requests(&self, owner: String) -> Pending<Vec<String>> {
        self.read(move |db| db.cancel_requests(&owner))
    }

    fn list_all_runs(&self, query: RunQuery) -> Pending<Vec<RunListing>> {
        self.read(move |db| db.list_all_runs(&query))
    }

    fn append_journal(&self, batches: Vec<JournalBatch>) -> Pending<()> {
        self.write(move |db| db.append_journal(&batches))
    }

    fn reset_journal(&self, id: String) -> Pending<()> {
        self.write(move |db| db.reset_journal(&id))
    }

    fn read_journal(&self, id: String, from: u64) -> Pending<JournalRead> {
        self.read(move |db| db.read_journal(&id, from))
    }

    fn clean_journals(&self, cutoff: i64) -> Pending<u64> {
        self.write(move |db| db.clean_journals(cutoff))
    }

    fn enqueue_run(&self, run: QueuedRun, claimed: bool) -> Pending<()> {
        self.write(move |db| db.enqueue_run(&run, claimed))
    }

    fn claim_run(
        &self,
        claimer: String,
        run_id: Option<String>,
        timeout: Duration,
    ) -> Pending<Option<QueuedRun>> {
        self.write(move |db| db.claim_run(&claimer, run_id.as_deref(), timeout))
    }

    fn release_run(&self, run_id: String) -> Pending<()> {
        self.write(move |db| db.release_run(&run_id))
    }

    fn dequeue_run(&self, run_id: String) -> Pending<bool> {
        self.write(move |db| db.dequeue_run(&run_id))
    }

    fn queued_run(&self, run_id: String) -> Pending<Option<QueuedRun>> {
        self.read(move |db| db.queued_run(&run_id))
    }
}
