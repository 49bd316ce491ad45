//! The threads the SQLite store runs on: one writer thread owning the write connection,
//! and reader threads owning read connections (opened on first use). Async callers hand a
//! job to the right queue and await its result, so a store call never blocks a runtime
//! thread, and reads never queue behind writes.
//!
//! The queues are bounded ([`QUEUE_JOBS`] each). A call is queued at once when there is
//! room; when its queue is full, the job waits for room inside the caller's [`Pending`]
//! future (never blocking a thread), so a store that falls behind slows its callers
//! instead of growing without limit. A job that was queued runs to its end even when its
//! caller went away (a cancelled request): a write is never left half done. Writes queued
//! together are committed in one transaction ([`write_jobs`]), each in a savepoint of its
//! own. A job runs inside the tracing span of the call that queued it, so what it logs
//! carries the run's ids.

use std::path::Path;
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use tokio::sync::mpsc::{Receiver, Sender, channel, error::TrySendError};
use tokio::sync::oneshot;

use super::{SqliteStore, StoreError, StoreResult};

/// A call: runs on a connection and gives back how to answer its caller, which happens
/// once what it wrote is committed (given the commit's error, if it failed).
type Job = Box<dyn FnOnce(&SqliteStore) -> Reply + Send>;
type Reply = Box<dyn FnOnce(Option<&str>) + Send>;

/// The most queued writes committed in one transaction.
const MAX_BATCH: usize = 64;

/// The most jobs each queue (the writer's, the readers') holds; past it callers wait.
pub(crate) const QUEUE_JOBS: usize = 4096;

pub(crate) struct Pool {
    path: std::path::PathBuf,
    writer: Sender<Job>,
    /// `None` when reads share the writer's connection (an in-memory database).
    readers: Option<Sender<Job>>,
}

impl Pool {
    /// Starts the writer thread on `writer` and `readers` reader threads on `path`.
    pub(super) fn new(writer: SqliteStore, path: &Path, readers: usize) -> Pool {
        let (writer_tx, mut writer_rx) = channel::<Job>(QUEUE_JOBS);
        spawn("agentos-store-writer", move || {
            write_jobs(&writer, &mut writer_rx)
        });
        let readers = (readers > 0).then(|| {
            let (tx, rx) = channel::<Job>(QUEUE_JOBS);
            let rx = Arc::new(Mutex::new(rx));
            for n in 0..readers {
                let rx = rx.clone();
                let path = path.to_path_buf();
                let fallback = writer_tx.clone();
                spawn(&format!("agentos-store-reader-{n}"), move || {
                    read_jobs(&rx, &path, &fallback);
                });
            }
            tx
        });
        Pool {
            path: path.to_path_buf(),
            writer: writer_tx,
            readers,
        }
    }

    /// The database file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Queues `f` for a reader connection.
    pub(super) fn read<T, F>(&self, f: F) -> Pending<T>
    where
        T: Send + 'static,
        F: FnOnce(&SqliteStore) -> StoreResult<T> + Send + 'static,
    {
        queue(self.readers.as_ref().unwrap_or(&self.writer), f)
    }

    /// Queues `f` for the writer connection.
    pub(super) fn write<T, F>(&self, f: F) -> Pending<T>
    where
        T: Send + 'static,
        F: FnOnce(&SqliteStore) -> StoreResult<T> + Send + 'static,
    {
        queue(&self.writer, f)
    }
}

/// Hands `f` to a queue at once; the caller awaits only its result, so what a store call
/// carries never takes room in the caller's future.
fn queue<T, F>(queue: &Sender<Job>, f: F) -> Pending<T>
where
    T: Send + 'static,
    F: FnOnce(&SqliteStore) -> StoreResult<T> + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    let span = tracing::Span::current();
    let job: Job = Box::new(move |db| {
        let result = span.in_scope(|| f(db));
        Box::new(move |commit_error: Option<&str>| {
            let result = match commit_error {
                None => result,
                Some(e) => Err(StoreError::Corrupt(format!(
                    "the write was not committed: {e}"
                ))),
            };
            let _ = tx.send(result);
        })
    });
    match queue.try_send(job) {
        Ok(()) => Pending::from_receiver(rx),
        Err(TrySendError::Closed(_)) => Pending::stopped(),
        Err(TrySendError::Full(job)) => {
            let queue = queue.clone();
            Pending {
                queueing: Some(Box::pin(async move { queue.send(job).await.is_ok() })),
                reply: Some(rx),
            }
        }
    }
}

/// The result of a store call, once its thread (or task) has run it.
pub struct Pending<T> {
    /// Sends the job when its queue was full; gives whether it was queued.
    queueing: Option<BoxFuture<'static, bool>>,
    /// `None` when the call could not be queued.
    reply: Option<oneshot::Receiver<StoreResult<T>>>,
}

impl<T> Pending<T> {
    /// The result a queued call will send.
    pub(crate) fn from_receiver(rx: oneshot::Receiver<StoreResult<T>>) -> Self {
        Pending {
            queueing: None,
            reply: Some(rx),
        }
    }

    /// A call that could not be queued: it fails with "stopped".
    pub(crate) fn stopped() -> Self {
        Pending {
            queueing: None,
            reply: None,
        }
    }

    /// A result known already.
    pub(crate) fn ready(result: StoreResult<T>) -> Self {
        let (tx, rx) = oneshot::channel();
        let _ = tx.send(result);
        Pending::from_receiver(rx)
    }
}

impl<T> std::future::Future for Pending<T> {
    type Output = StoreResult<T>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        use std::task::Poll;
        if let Some(queueing) = self.queueing.as_mut() {
            match queueing.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(queued) => {
                    self.queueing = None;
                    if !queued {
                        self.reply = None;
                    }
                }
            }
        }
        let Some(rx) = self.reply.as_mut() else {
            return Poll::Ready(Err(stopped()));
        };
        std::pin::Pin::new(rx)
            .poll(cx)
            .map(|reply| reply.unwrap_or_else(|_| Err(stopped())))
    }
}

fn stopped() -> StoreError {
    StoreError::Corrupt("the store's threads have stopped".into())
}

/// The writer thread. Writes queued together are committed together (group commit):
/// each in a savepoint of one transaction, their callers answered after the commit. Under
/// load one commit then carries many runs' writes, instead of each paying its own.
fn write_jobs(db: &SqliteStore, jobs: &mut Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Some(job) = jobs.blocking_recv() {
        batch.push(job);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if batch.len() == 1 || db.begin_batch().is_err() {
            for job in batch.drain(..) {
                job(db)(None);
            }
            continue;
        }
        let replies: Vec<Reply> = batch.drain(..).map(|job| job(db)).collect();
        let committed = db.end_batch().err().map(|e| e.to_string());
        for reply in replies {
            reply(committed.as_deref());
        }
    }
}

/// A reader thread: opens its connection on the first job, then runs jobs until the
/// queue closes. Without a connection, jobs go to the writer.
fn read_jobs(rx: &Mutex<Receiver<Job>>, path: &Path, fallback: &Sender<Job>) {
    let mut db: Option<SqliteStore> = None;
    loop {
        let job = {
            let mut rx = rx.lock().unwrap_or_else(|e| e.into_inner());
            match rx.blocking_recv() {
                Some(job) => job,
                None => return,
            }
        };
        if db.is_none() {
            match SqliteStore::open_reader(path) {
                Ok(opened) => db = Some(opened),
                Err(err) => {
                    tracing::warn!("store: a read connection could not be opened: {err}");
                    // A reader thread may wait for room in the writer's queue.
                    if fallback.blocking_send(job).is_err() {
                        return;
                    }
                    continue;
                }
            }
        }
        if let Some(db) = &db {
            job(db)(None);
        }
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) {
    if let Err(err) = std::thread::Builder::new().name(name.to_string()).spawn(f) {
        // Without the thread its queue has no receiver: every call on it fails cleanly.
        tracing::error!("store: could not start thread {name}: {err}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::block_on;

    #[test]
    fn a_full_queue_makes_callers_wait_then_runs_every_job_in_order() {
        let pool = Pool::new(
            SqliteStore::open_in_memory().unwrap(),
            Path::new(":memory:"),
            0,
        );
        // Hold the writer until the queue is full.
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let blocker = pool.write(move |_| {
            started_tx.send(()).unwrap();
            release_rx.recv().unwrap();
            Ok(usize::MAX)
        });
        started_rx.recv().unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let calls: Vec<Pending<usize>> = (0..QUEUE_JOBS + 100)
            .map(|i| {
                let order = order.clone();
                pool.write(move |_| {
                    order.lock().unwrap().push(i);
                    Ok(i)
                })
            })
            .collect();
        let waiting = calls.iter().filter(|c| c.queueing.is_some()).count();
        assert_eq!(waiting, 100, "the queue holds {QUEUE_JOBS} jobs");
        release_tx.send(()).unwrap();
        let results = block_on(async {
            let mut results = vec![blocker.await.unwrap()];
            for call in calls {
                results.push(call.await.unwrap());
            }
            results
        });
        assert_eq!(results.len(), QUEUE_JOBS + 101);
        assert!(results[1..].iter().enumerate().all(|(i, r)| *r == i));
        let order = order.lock().unwrap();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "jobs ran in order");
    }
}
