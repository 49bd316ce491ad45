//! The threads the SQLite store runs on: one writer thread owning the write connection,
//! and reader threads owning read connections (opened on first use). Async callers hand a
//! job to the right queue and await its result, so a store call never blocks a runtime
//! thread, and reads never queue behind writes.
//!
//! Heartbeats have a thread and a connection of their own ([`Pool::control`]): a busy
//! process's heartbeat never waits behind its queue of writes (other processes would take
//! it for stopped); it waits at most for the write lock, held by one transaction at a time.
//!
//! A job whose caller went away (a cancelled request) still runs to its end: a write is
//! never left half done. Writes queued together are committed in one transaction
//! ([`write_jobs`]), each in a savepoint of its own.

use std::path::Path;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::{SqliteStore, StoreError, StoreResult};

/// A call: runs on a connection and gives back how to answer its caller, which happens
/// once what it wrote is committed (given the commit's error, if it failed).
type Job = Box<dyn FnOnce(&SqliteStore) -> Reply + Send>;
type Reply = Box<dyn FnOnce(Option<&str>) + Send>;

/// The most queued writes committed in one transaction.
const MAX_BATCH: usize = 64;

pub(crate) struct Pool {
    path: std::path::PathBuf,
    writer: Sender<Job>,
    /// `None` when reads share the writer's connection (an in-memory database).
    readers: Option<Sender<Job>>,
    /// Heartbeats; `None` with an in-memory database (the writer takes them).
    control: Option<Sender<Job>>,
}

impl Pool {
    /// Starts the writer thread on `writer` and `readers` reader threads on `path`.
    pub(super) fn new(writer: SqliteStore, path: &Path, readers: usize) -> Pool {
        let (writer_tx, writer_rx) = channel::<Job>();
        spawn("agentos-store-writer", move || {
            write_jobs(&writer, &writer_rx)
        });
        let readers = (readers > 0).then(|| {
            let (tx, rx) = channel::<Job>();
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
        let control = readers.is_some().then(|| {
            let (tx, rx) = channel::<Job>();
            let rx = Mutex::new(rx);
            let path = path.to_path_buf();
            let fallback = writer_tx.clone();
            spawn("agentos-store-heartbeat", move || {
                read_jobs(&rx, &path, &fallback);
            });
            tx
        });
        Pool {
            path: path.to_path_buf(),
            writer: writer_tx,
            readers,
            control,
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

    /// Queues `f` (a small write that must not wait behind the writer's queue: a
    /// heartbeat) for the control connection.
    pub(super) fn control<T, F>(&self, f: F) -> Pending<T>
    where
        T: Send + 'static,
        F: FnOnce(&SqliteStore) -> StoreResult<T> + Send + 'static,
    {
        queue(self.control.as_ref().unwrap_or(&self.writer), f)
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
    match queue.send(job) {
        Ok(()) => Pending(Some(rx)),
        Err(_) => Pending(None),
    }
}

/// The result of a store call, once its thread (or task) has run it.
pub struct Pending<T>(Option<oneshot::Receiver<StoreResult<T>>>);

impl<T> Pending<T> {
    /// The result a queued call will send.
    pub(crate) fn from_receiver(rx: oneshot::Receiver<StoreResult<T>>) -> Self {
        Pending(Some(rx))
    }

    /// A call that could not be queued: it fails with "stopped".
    pub(crate) fn stopped() -> Self {
        Pending(None)
    }

    /// A result known already.
    pub(crate) fn ready(result: StoreResult<T>) -> Self {
        let (tx, rx) = oneshot::channel();
        let _ = tx.send(result);
        Pending(Some(rx))
    }
}

impl Pending<()> {
    /// The calls of `all`, already queued, as one: done when each is, failing with the
    /// first failure.
    pub(crate) fn all(mut all: Vec<Pending<()>>) -> Pending<()> {
        if all.len() <= 1 {
            return all.pop().unwrap_or_else(|| Pending::ready(Ok(())));
        }
        let (tx, rx) = oneshot::channel();
        tokio::spawn(async move {
            let mut result = Ok(());
            for pending in all {
                if let Err(err) = pending.await
                    && result.is_ok()
                {
                    result = Err(err);
                }
            }
            let _ = tx.send(result);
        });
        Pending::from_receiver(rx)
    }
}

impl<T> std::future::Future for Pending<T> {
    type Output = StoreResult<T>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let Some(rx) = self.0.as_mut() else {
            return std::task::Poll::Ready(Err(stopped()));
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
fn write_jobs(db: &SqliteStore, jobs: &Receiver<Job>) {
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    while let Ok(job) = jobs.recv() {
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

/// A reader thread (or the control thread): opens its connection on the first job, then
/// runs jobs until the queue closes. Without a connection, jobs go to the writer.
fn read_jobs(rx: &Mutex<Receiver<Job>>, path: &Path, fallback: &Sender<Job>) {
    let mut db: Option<SqliteStore> = None;
    loop {
        let job = {
            let rx = rx.lock().unwrap_or_else(|e| e.into_inner());
            match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        if db.is_none() {
            match SqliteStore::open_reader(path) {
                Ok(opened) => db = Some(opened),
                Err(err) => {
                    tracing::warn!("store: a read connection could not be opened: {err}");
                    if fallback.send(job).is_err() {
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
