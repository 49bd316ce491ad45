//! The runs a server is executing, and recently finished background runs: what makes
//! cancel, `--max-runs` and `resume` possible.
//!
//! - [`Registry::reserve`] takes a place under `--max-runs` before a run starts; the
//!   [`Slot`] gives it back if the run never starts.
//! - A background run's SSE frames are kept in its [`LiveRun`] log, numbered with
//!   `event_index`, for clients that resume it. The log is bounded in bytes (oldest frames
//!   go first), and so are all finished logs together.
//! - Followers read the log themselves ([`follow`]), each at its own pace: a slow follower
//!   never holds up the run or the others.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{Notify, mpsc};

use crate::cancel::CancelToken;
use crate::kind::Kind;
use crate::run::RunStatus;

/// Bytes of SSE frames kept per background run.
const LOG_BYTES: usize = 1024 * 1024;
/// Bytes of SSE frames kept over all finished background runs.
const FINISHED_BYTES: usize = 64 * 1024 * 1024;
/// Finished background runs kept for `resume`, at most.
const KEEP_FINISHED: usize = 256;
/// Cancel requests remembered for runs that have not started (cancel before start).
const KEEP_EARLY_CANCELS: usize = 4096;

/// Runs in flight, and recently finished background runs, by run id.
#[derive(Default)]
pub struct Registry {
    inner: Mutex<Inner>,
    /// Woken when a run ends (a place under `--max-runs` came free).
    freed: Notify,
}

#[derive(Default)]
struct Inner {
    live: HashMap<String, Arc<LiveRun>>,
    /// Runs admitted under the in-flight limit but not yet executing.
    reserved: usize,
    early_cancels: HashSet<String>,
    early_order: VecDeque<String>,
    finished: VecDeque<Arc<LiveRun>>,
    finished_bytes: usize,
}

/// One run the server is executing (or executed in the background).
pub struct LiveRun {
    pub run_id: String,
    pub component: Kind,
    /// The agent, team or workflow id.
    pub component_id: String,
    pub session_id: String,
    pub cancel: CancelToken,
    pub background: bool,
    log: Mutex<RunLog>,
    /// Woken whenever the log grows or closes.
    changed: Notify,
}

#[derive(Default)]
struct RunLog {
    /// The frames kept, oldest first; the first has `event_index` `first`.
    frames: VecDeque<Bytes>,
    first: usize,
    bytes: usize,
    /// Set when the run is over.
    status: Option<RunStatus>,
}

/// What a follower finds in a log: the frames from where it asked (or the oldest kept),
/// the index after them, how many frames there are in all, and whether the run is over.
pub struct Snapshot {
    pub frames: Vec<Bytes>,
    pub next: usize,
    pub total: usize,
    pub status: Option<RunStatus>,
}

impl LiveRun {
    fn log(&self) -> MutexGuard<'_, RunLog> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends a frame (the next `event_index`) and wakes the followers.
    pub fn publish(&self, frame: Bytes) {
        {
            let mut log = self.log();
            log.bytes += frame.len();
            log.frames.push_back(frame);
            while log.bytes > LOG_BYTES && log.frames.len() > 1 {
                if let Some(old) = log.frames.pop_front() {
                    log.bytes -= old.len();
                    log.first += 1;
                }
            }
        }
        self.changed.notify_waiters();
    }

    fn close(&self, status: RunStatus) {
        self.log().status = Some(status);
        self.changed.notify_waiters();
    }

    /// The frames from index `from` on (from the oldest kept, when older ones are gone).
    pub fn snapshot(&self, from: usize) -> Snapshot {
        let log = self.log();
        let total = log.first + log.frames.len();
        let start = from.max(log.first).min(total);
        Snapshot {
            frames: log.frames.iter().skip(start - log.first).cloned().collect(),
            next: total,
            total,
            status: log.status,
        }
    }

    fn bytes(&self) -> usize {
        self.log().bytes
    }
}

/// Sends the frames of `live` from index `from` on to `tx`, following the run until it
/// ends or the receiver goes away.
pub async fn follow(live: Arc<LiveRun>, mut from: usize, tx: mpsc::Sender<Bytes>) {
    loop {
        let changed = live.changed.notified();
        tokio::pin!(changed);
        // Registered before the log is read, so a frame published meanwhile wakes it.
        changed.as_mut().enable();
        let snapshot = live.snapshot(from);
        for frame in snapshot.frames {
            if tx.send(frame).await.is_err() {
                return;
            }
        }
        from = snapshot.next;
        if snapshot.status.is_some() {
            return;
        }
        changed.await;
    }
}

impl Registry {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Resolves when a run ends.
    pub async fn freed(&self) {
        self.freed.notified().await;
    }

    /// Runs executing now.
    pub fn in_flight(&self) -> usize {
        self.inner().live.len()
    }

    /// Whether a place under the in-flight limit is free now (without taking it).
    pub fn has_room(&self, limit: usize) -> bool {
        let inner = self.inner();
        inner.live.len() + inner.reserved < limit
    }

    /// Takes a place under the in-flight limit; `None` when none is left. The place is
    /// given back when the [`Slot`] is dropped before [`Registry::admit`] takes it over.
    pub fn reserve(self: &Arc<Self>, limit: usize) -> Option<Slot> {
        let mut inner = self.inner();
        if inner.live.len() + inner.reserved >= limit {
            return None;
        }
        inner.reserved += 1;
        Some(Slot(Some(self.clone())))
    }

    /// Registers a run about to execute, taking over its slot; a cancel that arrived
    /// first cancels it at once.
    pub fn admit(
        &self,
        mut slot: Slot,
        run_id: &str,
        (component, component_id): (Kind, &str),
        session_id: &str,
        background: bool,
    ) -> Arc<LiveRun> {
        slot.0 = None;
        let live = Arc::new(LiveRun {
            run_id: run_id.to_string(),
            component,
            component_id: component_id.to_string(),
            session_id: session_id.to_string(),
            cancel: CancelToken::new(),
            background,
            log: Mutex::new(RunLog::default()),
            changed: Notify::new(),
        });
        let mut inner = self.inner();
        inner.reserved = inner.reserved.saturating_sub(1);
        if inner.early_cancels.remove(run_id) {
            live.cancel.cancel();
        }
        inner.live.insert(run_id.to_string(), live.clone());
        live
    }

    /// Takes a run out of the in-flight set; background runs stay resumable for a while.
    pub fn finish(&self, live: &Arc<LiveRun>, status: RunStatus) {
        live.close(status);
        self.freed.notify_one();
        let mut inner = self.inner();
        inner.live.remove(&live.run_id);
        if live.background {
            // A continued run reuses its id: keep only the newest entry.
            if let Some(pos) = inner.finished.iter().position(|r| r.run_id == live.run_id) {
                if let Some(old) = inner.finished.remove(pos) {
                    inner.finished_bytes -= old.bytes();
                }
            }
            inner.finished_bytes += live.bytes();
            inner.finished.push_back(live.clone());
            while inner.finished.len() > KEEP_FINISHED || inner.finished_bytes > FINISHED_BYTES {
                match inner.finished.pop_front() {
                    Some(old) => inner.finished_bytes -= old.bytes(),
                    None => break,
                }
            }
        }
    }

    /// Whether a run with this id is executing now.
    pub fn is_live(&self, run_id: &str) -> bool {
        self.inner().live.contains_key(run_id)
    }

    /// Cancels a running run, or remembers the request for a run that has not started.
    /// Returns whether the run was executing.
    pub fn cancel(&self, run_id: &str) -> bool {
        let mut inner = self.inner();
        if let Some(live) = inner.live.get(run_id) {
            let live = live.clone();
            drop(inner);
            live.cancel.cancel();
            return true;
        }
        if inner.early_cancels.insert(run_id.to_string()) {
            inner.early_order.push_back(run_id.to_string());
            while inner.early_order.len() > KEEP_EARLY_CANCELS {
                if let Some(old) = inner.early_order.pop_front() {
                    inner.early_cancels.remove(&old);
                }
            }
        }
        false
    }

    /// The run with this id, executing or recently finished in the background.
    pub fn find(&self, run_id: &str) -> Option<Arc<LiveRun>> {
        let inner = self.inner();
        inner
            .live
            .get(run_id)
            .cloned()
            .or_else(|| inner.finished.iter().find(|r| r.run_id == run_id).cloned())
    }

    /// Cancels every run in flight (server shutdown).
    pub fn cancel_all(&self) {
        let live: Vec<_> = self.inner().live.values().cloned().collect();
        for run in live {
            run.cancel.cancel();
        }
    }

    /// Waits until no run is in flight, at most `grace`.
    pub async fn wait_idle(&self, grace: Duration) {
        let deadline = Instant::now() + grace;
        while self.in_flight() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// A place under `--max-runs` held for a run that is starting.
pub struct Slot(Option<Arc<Registry>>);

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(registry) = self.0.take() {
            let mut inner = registry.inner();
            inner.reserved = inner.reserved.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(registry: &Arc<Registry>, id: &str) -> Arc<LiveRun> {
        let slot = registry.reserve(10).expect("a place");
        registry.admit(slot, id, (Kind::Agent, "a"), "s", true)
    }

    #[test]
    fn logs_are_bounded_in_bytes_and_keep_their_numbering() {
        let registry = Arc::new(Registry::default());
        let run = live(&registry, "r1");
        let frame = Bytes::from(vec![b'x'; 100 * 1024]);
        for _ in 0..30 {
            run.publish(frame.clone());
        }
        let all = run.snapshot(0);
        assert_eq!(all.total, 30);
        assert!(all.frames.len() * frame.len() <= LOG_BYTES);
        assert_eq!(all.frames.len(), 10);
        let tail = run.snapshot(28);
        assert_eq!(tail.frames.len(), 2);
        assert_eq!(tail.next, 30);
    }

    #[tokio::test]
    async fn followers_get_every_frame_then_the_end() {
        let registry = Arc::new(Registry::default());
        let run = live(&registry, "r1");
        run.publish(Bytes::from_static(b"a"));
        let (tx, mut rx) = mpsc::channel(1);
        let follower = tokio::spawn(follow(run.clone(), 0, tx));
        assert_eq!(rx.recv().await.as_deref(), Some(&b"a"[..]));
        run.publish(Bytes::from_static(b"b"));
        run.publish(Bytes::from_static(b"c"));
        registry.finish(&run, RunStatus::Completed);
        assert_eq!(rx.recv().await.as_deref(), Some(&b"b"[..]));
        assert_eq!(rx.recv().await.as_deref(), Some(&b"c"[..]));
        assert_eq!(rx.recv().await, None);
        follower.await.expect("follower");
        assert!(
            registry.find("r1").is_some(),
            "finished background runs stay resumable"
        );
    }

    #[test]
    fn places_come_back_when_a_start_is_abandoned() {
        let registry = Arc::new(Registry::default());
        let slot = registry.reserve(1).expect("a place");
        assert!(registry.reserve(1).is_none());
        drop(slot);
        assert!(registry.reserve(1).is_some());
    }
}
