//! This process among the others sharing the store: what lets any process see, cancel and
//! follow any run, and what keeps a crash from leaving runs RUNNING forever.
//!
//! - **Owners.** A process that executes runs registers itself (`processes`) and
//!   heartbeats every quarter of the owner timeout ([`Settings::owner_timeout`], 5 s by
//!   default, `AGENTOS_OWNER_TIMEOUT_SECS`); each run it begins or takes up again records
//!   it as its owner, and ending the run clears it. A live owner's runs are never touched.
//!   Heartbeats and silences are measured by the store's clock: the machine's for SQLite
//!   (one machine), the database's `now()` for PostgreSQL, so clock skew between machines
//!   never settles a live owner's runs. A process that stalled past the timeout and comes
//!   back finds its runs settled: it does not overwrite them (the store refuses, and the
//!   engine logs it). Heartbeats have a task and a store connection of their own
//!   (SQLite: a thread beside the writer's queue; PostgreSQL: a pool beside the one runs
//!   use), so a busy process's heartbeat never waits behind its own work.
//! - **Takeover.** Every process, at start-up and as often as it heartbeats (in a task of
//!   its own), settles the runs of processes silent for longer than the timeout: they
//!   are stored `ERROR`, saying the process running them stopped, with the content
//!   their journal holds (`recover.rs`). The write that settles a run checks the owner's
//!   silence again, so an owner that heartbeated after it was found silent keeps its runs.
//! - **Journals.** The events of each top-level run still going are written to the store
//!   in batches, every [`Settings::flush_interval`] (100 ms by default,
//!   `AGENTOS_FLUSH_INTERVAL_MS`; `0` turns journals off), and at once when a run's
//!   unwritten events reach [`journal::BATCH_BYTES`] (256 KiB): a crash loses at most
//!   that window, and other processes follow the run from there (`journal.rs`). A run
//!   that ends within its first interval is not journaled (followers read the events it
//!   stored), unless it is a background run, whose client follows it from the store.
//! - **Cancel from anywhere.** A cancel for a run this process does not execute is
//!   recorded on the run; its owner cancels the run as a local cancel would, woken by
//!   the database's notice (PostgreSQL) or by looking every [`CANCEL_POLL`] (SQLite). A
//!   cancel of a background run still waiting in the queue is recorded on its queue row:
//!   the process that takes it up stores it CANCELLED without calling a model.

pub mod follow;
pub mod journal;
mod recover;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub use journal::{Journal, JournalSink};
pub use recover::{INTERRUPTED, is_terminal};

use crate::cancel::CancelToken;
use crate::run::unix_now;
use crate::store::backend::Notice;
use crate::store::{ProcessInfo, Store, StoreResult};

/// How often the owner of runs looks for cancel requests from other processes.
pub const CANCEL_POLL: Duration = Duration::from_millis(50);
/// The same, as a fallback beside the notices of a database that pushes them.
const NOTICED_POLL: Duration = Duration::from_secs(1);
/// How long a finished run's journal stays for late followers.
const JOURNAL_KEEP_SECS: i64 = 60;

/// Variables that tune presence.
pub const OWNER_TIMEOUT_ENV: &str = "AGENTOS_OWNER_TIMEOUT_SECS";
pub const FLUSH_INTERVAL_ENV: &str = "AGENTOS_FLUSH_INTERVAL_MS";
/// The owner timeout when [`OWNER_TIMEOUT_ENV`] does not set one.
const DEFAULT_OWNER_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest time between two heartbeats, whatever the timeout: a quarter of the
/// default timeout.
const MAX_HEARTBEAT_EVERY: Duration =
    Duration::from_millis(DEFAULT_OWNER_TIMEOUT.as_millis() as u64 / 4);

/// How a process takes part.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// Silence after which another process takes a process for dead.
    pub owner_timeout: Duration,
    /// How often live runs' events are written to their journals; zero: never.
    pub flush_interval: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            owner_timeout: DEFAULT_OWNER_TIMEOUT,
            flush_interval: Duration::from_millis(100),
        }
    }
}

impl Settings {
    /// The defaults, overridden by [`OWNER_TIMEOUT_ENV`] and [`FLUSH_INTERVAL_ENV`].
    pub fn from_env() -> Result<Settings, String> {
        Settings::from_values(
            env(OWNER_TIMEOUT_ENV).as_deref(),
            env(FLUSH_INTERVAL_ENV).as_deref(),
        )
    }

    /// The defaults, overridden by the values of the two variables when set.
    fn from_values(
        owner_timeout: Option<&str>,
        flush_interval: Option<&str>,
    ) -> Result<Settings, String> {
        let mut settings = Settings::default();
        if let Some(raw) = owner_timeout {
            let secs: f64 = raw
                .parse()
                .ok()
                .filter(|s: &f64| s.is_finite() && (0.2..=3600.0).contains(s))
                .ok_or_else(|| {
                    format!("{OWNER_TIMEOUT_ENV}={raw}: expected seconds from 0.2 to 3600")
                })?;
            settings.owner_timeout = Duration::from_secs_f64(secs);
        }
        if let Some(raw) = flush_interval {
            let ms: u64 = raw.parse().ok().filter(|ms| *ms <= 60_000).ok_or_else(|| {
                format!("{FLUSH_INTERVAL_ENV}={raw}: expected milliseconds from 0 to 60000")
            })?;
            settings.flush_interval = Duration::from_millis(ms);
        }
        Ok(settings)
    }

    /// A quarter of the timeout, and never longer than a quarter of the default one: each
    /// process judges the others' silence by its own timeout, so one configured with a
    /// long timeout still beats often enough for processes left at the default (or at any
    /// timeout of a few seconds) sharing its store.
    fn heartbeat_every(&self) -> Duration {
        (self.owner_timeout / 4).min(MAX_HEARTBEAT_EVERY)
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// This process, registered in the store. See the module documentation.
pub struct Presence {
    store: Store,
    info: ProcessInfo,
    settings: Settings,
    /// Cancel tokens of the top-level runs this process executes, by run id.
    tokens: Mutex<HashMap<String, CancelToken>>,
    /// Journals of those runs.
    journals: Mutex<HashMap<String, Arc<Journal>>>,
    /// Runs about to begin whose journals are written however short they are.
    eager: Mutex<std::collections::HashSet<String>>,
    stopped: CancelToken,
}

impl Presence {
    /// Registers this process (`kind` is `serve` or `run`), makes it the owner of the runs
    /// `store` begins, settles the runs of processes that stopped, and starts the
    /// heartbeat, the cancel watch and the journal flusher on the current runtime.
    pub async fn start(
        store: Store,
        kind: &str,
        address: Option<String>,
        settings: Settings,
    ) -> StoreResult<Arc<Presence>> {
        let now = unix_now();
        let info = ProcessInfo {
            process_id: crate::run::new_id(),
            kind: kind.to_string(),
            pid: std::process::id(),
            host: hostname(),
            address,
            started_at: now as i64,
            heartbeat_at: now,
        };
        store.register_process(info.clone()).await?;
        store.set_owner(&info.process_id).await?;
        let presence = Arc::new(Presence {
            store,
            info,
            settings,
            tokens: Mutex::new(HashMap::new()),
            journals: Mutex::new(HashMap::new()),
            eager: Mutex::new(std::collections::HashSet::new()),
            stopped: CancelToken::new(),
        });
        if let Err(err) = presence.settle_orphans().await {
            tracing::warn!("could not settle the runs of stopped processes: {err}");
        }
        tokio::spawn(presence.clone().heartbeats());
        tokio::spawn(presence.clone().settler());
        tokio::spawn(presence.clone().cancel_watch());
        if !settings.flush_interval.is_zero() {
            tokio::spawn(presence.clone().flusher());
        }
        Ok(presence)
    }

    pub fn process_id(&self) -> &str {
        &self.info.process_id
    }

    pub fn settings(&self) -> Settings {
        self.settings
    }

    /// Writes what the journals hold (and waits for those writes, whichever of the store's
    /// writers carries them), stops the background tasks and removes this process from
    /// the store. Runs still live stay owned by it until another process takes them over
    /// (a clean shutdown cancels them first).
    pub async fn stop(&self) {
        for written in self.flush_all() {
            if let Err(err) = written.await {
                tracing::warn!("could not write a run's journal: {err}");
            }
        }
        self.stopped.cancel();
        let _ = self.store.forget_process(&self.info.process_id).await;
    }

    /// Lets other processes cancel the run `run_id` through `token` until the guard drops.
    pub fn track(self: &Arc<Self>, run_id: &str, token: &CancelToken) -> Tracked {
        lock(&self.tokens).insert(run_id.to_string(), token.clone());
        Tracked {
            presence: self.clone(),
            run_id: run_id.to_string(),
        }
    }

    /// Journals the run `run_id`, about to begin, however short it turns out: its client
    /// follows it from the store (a background run).
    pub fn journal_from_start(&self, run_id: &str) {
        if !self.settings.flush_interval.is_zero() {
            lock(&self.eager).insert(run_id.to_string());
        }
    }

    /// Forgets a [`Presence::journal_from_start`] for a run that did not begin.
    pub fn forget_journal_from_start(&self, run_id: &str) {
        lock(&self.eager).remove(run_id);
    }

    /// A journal for the top-level run `run_id`, flushed with the others until it is
    /// closed; `continued` for a run taken up again under its id, whose earlier journal
    /// is dropped first. `None` when journals are off.
    pub fn journal(self: &Arc<Self>, run_id: &str, continued: bool) -> Option<Arc<Journal>> {
        if self.settings.flush_interval.is_zero() {
            return None;
        }
        let eager = lock(&self.eager).remove(run_id);
        let journal = Arc::new(Journal::new(
            run_id,
            self.store.clone(),
            eager,
            self.settings.flush_interval,
        ));
        lock(&self.journals).insert(run_id.to_string(), journal.clone());
        // A continued run starts a new event stream under the same id.
        if continued {
            drop(self.store.reset_journal(run_id));
        }
        Some(journal)
    }

    /// Writes what the journal of the top-level run `run_id` holds, if it is journaled: the
    /// run is about to store its outcome, and its followers get its last events first.
    pub fn flush_journal(&self, run_id: &str) {
        let journal = lock(&self.journals).get(run_id).cloned();
        if let Some(journal) = journal {
            journal.finish();
        }
    }

    /// Stops flushing a journal (its run ended; its last events were written as the run
    /// stored its outcome).
    pub fn close_journal(&self, journal: &Journal) {
        lock(&self.journals).remove(journal.run_id());
    }

    /// Writes what every journal holds; gives the writes.
    fn flush_all(&self) -> Vec<crate::store::Pending<()>> {
        let journals: Vec<Arc<Journal>> = lock(&self.journals).values().cloned().collect();
        journals
            .iter()
            .filter_map(|journal| journal.flush())
            .collect()
    }

    /// Every flush interval: batches the new events of every run that has lived an
    /// interval, then hands all batches to the store as one write. The journals stay
    /// locked while their batches are handed over, so a run's own last batch (written as
    /// it ends) can never reach the store before them.
    fn flush_tick(&self) {
        let journals: Vec<Arc<Journal>> = lock(&self.journals).values().cloned().collect();
        for journal in &journals {
            journal.prepare(self.settings.flush_interval);
        }
        let mut states: Vec<_> = journals.iter().map(|j| j.state()).collect();
        let batches: Vec<_> = states
            .iter_mut()
            .flat_map(|state| Journal::take_batches(state))
            .collect();
        if !batches.is_empty() {
            drop(self.store.append_journal(batches));
        }
    }

    async fn flusher(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.settings.flush_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = self.stopped.cancelled() => return,
                _ = tick.tick() => self.flush_tick(),
            }
        }
    }

    /// Only heartbeats: nothing else this process does may delay them, or other
    /// processes would take it for stopped.
    async fn heartbeats(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.settings.heartbeat_every());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = self.stopped.cancelled() => return,
                _ = tick.tick() => {}
            }
            match self.store.heartbeat(&self.info.process_id).await {
                Ok(true) => {}
                Ok(false) => {
                    // Taken for dead (this process stalled past the timeout): come back.
                    tracing::warn!("this process was taken for stopped; registering again");
                    let _ = self.store.register_process(self.info.clone()).await;
                }
                Err(err) => tracing::warn!("heartbeat failed: {err}"),
            }
        }
    }

    /// Settles the runs of stopped processes as often as heartbeats go, and now and then
    /// cleans old journals.
    async fn settler(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.settings.heartbeat_every());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        let mut beats: u64 = 0;
        loop {
            tokio::select! {
                () = self.stopped.cancelled() => return,
                _ = tick.tick() => {}
            }
            beats += 1;
            if let Err(err) = self.settle_orphans().await {
                tracing::warn!("could not settle the runs of stopped processes: {err}");
            }
            if beats % 16 == 0 {
                let cutoff = crate::run::now_secs() - JOURNAL_KEEP_SECS;
                if let Err(err) = self.store.clean_journals(cutoff).await {
                    tracing::warn!("could not clean run journals: {err}");
                }
            }
        }
    }

    /// Cancels tracked runs that another process asked to cancel: on the database's
    /// notices where it pushes them, with a slow poll beside them in case one is lost;
    /// by polling every [`CANCEL_POLL`] otherwise.
    async fn cancel_watch(self: Arc<Self>) {
        let mut notices = self.store.notices();
        let poll = if notices.is_some() {
            NOTICED_POLL
        } else {
            CANCEL_POLL
        };
        let mut tick = tokio::time::interval(poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let noticed = async {
                match notices.as_mut() {
                    Some(rx) => Some(rx.recv().await),
                    None => std::future::pending().await,
                }
            };
            let check = tokio::select! {
                () = self.stopped.cancelled() => return,
                _ = tick.tick() => None,
                notice = noticed => notice,
            };
            match check {
                // One run, by name: no need to read the store.
                Some(Ok(Notice::Cancel(run_id))) => {
                    if let Some(token) = lock(&self.tokens).get(&run_id)
                        && !token.is_cancelled()
                    {
                        tracing::info!(run_id = %run_id, "cancelled from another process");
                        token.cancel();
                    }
                }
                Some(Ok(Notice::Journal(_) | Notice::Queued(_))) => {}
                Some(Err(tokio::sync::broadcast::error::RecvError::Closed)) => notices = None,
                // Missed notices (a reconnect, or too many at once), or the poll: look.
                Some(Ok(Notice::Resync) | Err(_)) | None => self.poll_cancels().await,
            }
        }
    }

    async fn poll_cancels(&self) {
        if lock(&self.tokens).is_empty() {
            return;
        }
        match self.store.cancel_requests(&self.info.process_id).await {
            Ok(ids) => {
                let tokens = lock(&self.tokens);
                for id in ids {
                    if let Some(token) = tokens.get(&id)
                        && !token.is_cancelled()
                    {
                        tracing::info!(run_id = %id, "cancelled from another process");
                        token.cancel();
                    }
                }
            }
            Err(err) => tracing::warn!("could not read cancel requests: {err}"),
        }
    }

    /// Settles the runs of processes silent for longer than the owner timeout.
    pub async fn settle_orphans(&self) -> StoreResult<usize> {
        settle_orphans(
            &self.store,
            &self.info.process_id,
            self.settings.owner_timeout,
        )
        .await
    }
}

/// Settles the runs left live by processes silent for longer than `timeout` (any process
/// but `alive`), and forgets those processes. Returns how many runs were settled. Silence
/// is measured by the store's clock (see [`Store::heartbeat`]).
pub async fn settle_orphans(store: &Store, alive: &str, timeout: Duration) -> StoreResult<usize> {
    let (dead, orphans) = store.orphans(alive, timeout).await?;
    let mut settled = 0;
    for orphan in orphans {
        let owner_id = orphan.owner_id.clone();
        let run_id = orphan.run.run.run_id().to_string();
        // Only a top-level run's journal is its own.
        let orphan_journal_len = (orphan.run.run.parent_run_id().is_none()
            && !orphan.journal.is_empty())
        .then_some(orphan.journal.len() as u64);
        let (run, events) = recover::interrupted(orphan);
        let tail = journal_tail(&orphan_journal_len, &run_id, &events);
        if store.settle_orphan(run, events, owner_id, timeout).await? {
            // Followers of the run end with its error event.
            if let Some(batch) = tail {
                drop(store.append_journal(vec![batch]));
            }
            tracing::info!(run_id = %run_id, "settled a run whose process stopped");
            settled += 1;
        }
    }
    if !dead.is_empty() {
        store.forget_silent_processes(dead, timeout).await?;
    }
    Ok(settled)
}

/// The journal batch holding an interrupted run's error event (the last of `events`),
/// for a run that has a journal of `len` events.
fn journal_tail(
    len: &Option<u64>,
    run_id: &str,
    events: &[serde_json::Value],
) -> Option<crate::store::JournalBatch> {
    let len = (*len)?;
    let error = events.last()?;
    Some(crate::store::JournalBatch {
        run_id: run_id.to_string(),
        first_seq: len,
        count: 1,
        events: error.to_string(),
    })
}

/// A run other processes can cancel, until dropped.
pub struct Tracked {
    presence: Arc<Presence>,
    run_id: String,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        lock(&self.presence.tokens).remove(&self.run_id);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// This machine's name, as `agentos runs list` shows owners.
fn hostname() -> String {
    let name = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .trim()
        .to_string();
    if name.is_empty() {
        "localhost".into()
    } else {
        name
    }
}

use crate::run::RunRecord as _;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_from_the_environment() {
        assert_eq!(Settings::from_values(None, None), Ok(Settings::default()));
        let s = Settings::from_values(Some("1.5"), Some("0")).unwrap();
        assert_eq!(s.owner_timeout, Duration::from_millis(1500));
        assert!(s.flush_interval.is_zero());
        assert_eq!(s.heartbeat_every(), Duration::from_millis(375));
        let long = Settings::from_values(Some("30"), None).unwrap();
        assert_eq!(long.heartbeat_every(), Duration::from_millis(1250));
        let err = Settings::from_values(Some("0"), None).unwrap_err();
        assert!(err.starts_with("AGENTOS_OWNER_TIMEOUT_SECS=0"), "{err}");
        let err = Settings::from_values(None, Some("fast")).unwrap_err();
        assert!(err.starts_with("AGENTOS_FLUSH_INTERVAL_MS=fast"), "{err}");
    }
}
