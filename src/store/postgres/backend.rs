//! The PostgreSQL store as a [`Backend`]: reads on pooled connections, writes queued for
//! the writer (see `mod.rs`).

use std::time::Duration;

use serde_json::Value;
use tokio::sync::broadcast;

use super::{PgStore, WRITERS, queries as q, writer_of};
use crate::kind::Kind;
use crate::run::{AnyRun, RunRecord, RunStatus};
use crate::store::backend::{Backend, HistoryFetch, Notice};
use crate::store::{
    CancelOutcome, JournalBatch, JournalRead, Orphan, Pending, ProcessInfo, QueuedRun, RunListing,
    RunQuery, Session, SessionQuery, SessionSummary, SessionWithRuns, StoredRun,
};

impl Backend for PgStore {
    fn describe(&self) -> String {
        PgStore::describe(self)
    }

    fn notices(&self) -> Option<broadcast::Receiver<Notice>> {
        Some(PgStore::notices(self))
    }

    fn get_session(&self, id: String) -> Pending<Option<Session>> {
        self.read(move |c| Box::pin(async move { q::get_session(&*c, &id).await }))
    }

    fn create_session(&self, session: Session) -> Pending<()> {
        self.write_to(writer_of(&session.session_id), move |c| {
            Box::pin(async move { q::create_session(&*c, &session).await })
        })
    }

    fn rename_session(&self, id: String, name: String) -> Pending<bool> {
        self.write_to(writer_of(&id), move |c| {
            Box::pin(async move { q::rename_session(&*c, &id, &name).await })
        })
    }

    fn update_session(
        &self,
        id: String,
        name: Option<String>,
        state: Option<Value>,
        metadata: Option<Value>,
    ) -> Pending<Option<Session>> {
        self.write_to(writer_of(&id), move |c| {
            Box::pin(async move {
                q::update_session(&*c, &id, name.as_deref(), state.as_ref(), metadata.as_ref())
                    .await
            })
        })
    }

    fn delete_session(&self, id: String) -> Pending<bool> {
        self.write_to(writer_of(&id), move |c| {
            Box::pin(async move { q::delete_session(&*c, &id).await })
        })
    }

    fn delete_sessions(&self, ids: Vec<String>, types: Option<Vec<Kind>>) -> Pending<u64> {
        self.write(move |c| {
            Box::pin(async move { q::delete_sessions(c, &ids, types.as_deref()).await })
        })
    }

    fn session_summary(&self, id: String) -> Pending<Option<SessionSummary>> {
        self.read(move |c| Box::pin(async move { q::session_summary(c, &id).await }))
    }

    fn list_sessions(&self, query: SessionQuery) -> Pending<(Vec<SessionSummary>, u64)> {
        self.read(move |c| Box::pin(async move { q::list_sessions(c, &query).await }))
    }

    fn list_sessions_with_runs(&self, query: SessionQuery) -> Pending<(Vec<SessionWithRuns>, u64)> {
        self.read(move |c| Box::pin(async move { q::list_sessions_with_runs(c, &query).await }))
    }

    fn begin_run(&self, session: Session, run: AnyRun, kind: Kind) -> Pending<()> {
        let owner = self.owner();
        self.write_to(writer_of(run.run_id()), move |c| {
            Box::pin(async move { q::begin_run(c, &session, &run, kind, owner.as_deref()).await })
        })
    }

    fn finish_run(&self, run: AnyRun, events: Vec<Value>, state: Value) -> Pending<()> {
        let owner = self.owner();
        self.write_to(writer_of(run.run_id()), move |c| {
            Box::pin(async move { q::finish_run(c, &run, &events, &state, owner.as_deref()).await })
        })
    }

    fn update_run_status(&self, id: String, status: RunStatus) -> Pending<bool> {
        self.write_to(writer_of(&id), move |c| {
            Box::pin(async move { q::update_run_status(c, &id, status).await })
        })
    }

    fn transition_run(
        &self,
        id: String,
        from: RunStatus,
        to: RunStatus,
        stage: Option<String>,
    ) -> Pending<bool> {
        let owner = self.owner();
        self.write_to(writer_of(&id), move |c| {
            Box::pin(async move {
                q::transition_run(c, &id, from, to, stage.as_deref(), owner.as_deref()).await
            })
        })
    }

    fn get_run(&self, id: String) -> Pending<Option<StoredRun>> {
        self.read(move |c| Box::pin(async move { q::get_run(&*c, &id).await }))
    }

    fn list_runs_filtered(
        &self,
        id: String,
        statuses: Vec<RunStatus>,
        after: Option<i64>,
        before: Option<i64>,
    ) -> Pending<Vec<StoredRun>> {
        self.read(move |c| {
            Box::pin(async move { q::list_runs_filtered(&*c, &id, &statuses, after, before).await })
        })
    }

    fn session_with_runs(&self, id: String) -> Pending<Option<(Session, Vec<StoredRun>)>> {
        self.read(move |c| Box::pin(async move { q::session_with_runs(c, &id).await }))
    }

    fn history(&self, id: String, n: usize, exclude: Option<String>) -> Pending<Vec<AnyRun>> {
        self.read(move |c| {
            Box::pin(async move { q::history(&*c, &id, n, exclude.as_deref()).await })
        })
    }

    fn history_fetch(
        &self,
        id: String,
        n: usize,
        exclude: Option<String>,
        known: Vec<i64>,
    ) -> Pending<HistoryFetch> {
        self.read(move |c| {
            Box::pin(async move { q::history_fetch(c, &id, n, exclude.as_deref(), &known).await })
        })
    }

    fn set_owner(&self, id: String) -> Pending<()> {
        PgStore::set_owner(self, id);
        Pending::ready(Ok(()))
    }

    fn register_process(&self, info: ProcessInfo) -> Pending<()> {
        self.write(move |c| Box::pin(async move { q::register_process(&*c, &info).await }))
    }

    /// On the control connection, neither behind the writer's backlog nor waiting for a
    /// connection the runs hold: a busy server must not be taken for dead.
    fn heartbeat(&self, id: String) -> Pending<bool> {
        self.control(move |c| Box::pin(async move { q::heartbeat(&*c, &id).await }))
    }

    fn forget_processes(&self, ids: Vec<String>, silent_for: Option<Duration>) -> Pending<()> {
        self.write(move |c| {
            Box::pin(async move { q::forget_processes(&*c, &ids, silent_for).await })
        })
    }

    fn orphans(&self, alive: String, timeout: Duration) -> Pending<(Vec<String>, Vec<Orphan>)> {
        self.read(move |c| Box::pin(async move { q::orphans(c, &alive, timeout).await }))
    }

    fn settle_orphan(
        &self,
        run: StoredRun,
        events: Vec<Value>,
        owner: Option<String>,
        silent_for: Duration,
    ) -> Pending<bool> {
        self.write_to(writer_of(run.run.run_id()), move |c| {
            Box::pin(async move {
                q::settle_orphan(c, &run, &events, owner.as_deref(), silent_for).await
            })
        })
    }

    fn request_cancel(&self, id: String) -> Pending<CancelOutcome> {
        self.write_to(writer_of(&id), move |c| {
            Box::pin(async move { q::request_cancel(c, &id).await })
        })
    }

    fn cancel_requests(&self, owner: String) -> Pending<Vec<String>> {
        self.read(move |c| Box::pin(async move { q::cancel_requests(&*c, &owner).await }))
    }

    fn list_all_runs(&self, query: RunQuery) -> Pending<Vec<RunListing>> {
        self.read(move |c| Box::pin(async move { q::list_all_runs(&*c, &query).await }))
    }

    /// Each run's batches go to that run's writer, behind its earlier writes and before
    /// its outcome; the result is the first failure, if any.
    fn append_journal(&self, batches: Vec<JournalBatch>) -> Pending<()> {
        let mut by_writer: Vec<Vec<JournalBatch>> = (0..WRITERS).map(|_| Vec::new()).collect();
        for batch in batches {
            by_writer[writer_of(&batch.run_id)].push(batch);
        }
        let written: Vec<Pending<()>> = by_writer
            .into_iter()
            .enumerate()
            .filter(|(_, batches)| !batches.is_empty())
            .map(|(writer, batches)| {
                self.write_to(writer, move |c| {
                    Box::pin(async move { q::append_journal(c, &batches).await })
                })
            })
            .collect();
        Pending::all(written)
    }

    fn reset_journal(&self, id: String) -> Pending<()> {
        self.write_to(writer_of(&id), move |c| {
            Box::pin(async move { q::reset_journal(&*c, &id).await })
        })
    }

    fn read_journal(&self, id: String, from: u64) -> Pending<JournalRead> {
        self.read(move |c| Box::pin(async move { q::read_journal(c, &id, from).await }))
    }

    fn clean_journals(&self, cutoff: i64) -> Pending<u64> {
        self.write(move |c| Box::pin(async move { q::clean_journals(&*c, cutoff).await }))
    }

    fn enqueue_run(&self, run: QueuedRun, claimed: bool) -> Pending<()> {
        self.write_to(writer_of(&run.run_id), move |c| {
            Box::pin(async move { q::enqueue_run(c, &run, claimed).await })
        })
    }

    /// On a pooled connection rather than the writer: a claim is one statement, and
    /// claims from many servers should not wait behind this one's writes.
    fn claim_run(
        &self,
        claimer: String,
        run_id: Option<String>,
        timeout: Duration,
    ) -> Pending<Option<QueuedRun>> {
        self.read(move |c| {
            Box::pin(async move { q::claim_run(&*c, &claimer, run_id.as_deref(), timeout).await })
        })
    }

    fn release_run(&self, run_id: String) -> Pending<()> {
        self.write_to(writer_of(&run_id), move |c| {
            Box::pin(async move { q::release_run(c, &run_id).await })
        })
    }

    fn dequeue_run(&self, run_id: String) -> Pending<bool> {
        self.write_to(writer_of(&run_id), move |c| {
            Box::pin(async move { q::dequeue_run(&*c, &run_id).await })
        })
    }

    fn queued_run(&self, run_id: String) -> Pending<Option<QueuedRun>> {
        self.read(move |c| Box::pin(async move { q::queued_run(&*c, &run_id).await }))
    }
}
