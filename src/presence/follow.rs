//! Following a run from the store, wherever it executes: its journal from a position on,
//! then each new batch as it is written, until the event that ends the run. A run that
//! ended without a journal (it ended within its first flush interval) is followed
//! through the events it stored (streaming runs store theirs), from the same position
//! on, to its terminal event.

use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;

use super::recover::is_terminal;
use crate::run::RunStatus;
use crate::store::backend::Notice;
use crate::store::{Store, StoreResult};
use tokio::sync::broadcast::error::RecvError;

/// How often a follower looks for new events.
pub const FOLLOW_POLL: Duration = Duration::from_millis(50);
/// The same, as a fallback beside the notices of a database that pushes them.
const NOTICED_POLL: Duration = Duration::from_secs(1);
/// How long a follower waits, after the run ended, for its last batch to arrive. (A run's
/// last batch is written before its outcome, so this is only a guard.)
const LAST_BATCH_WAIT: Duration = Duration::from_secs(2);

/// What the store has of a run when a follower starts.
#[derive(Clone, Debug)]
pub struct Start {
    /// The run's status; `None` when there is no such run.
    pub status: Option<RunStatus>,
    /// How many events the journal has from the position asked for on.
    pub missed: usize,
    /// The position after the journal's last event (or the one asked for).
    pub total: u64,
    pub journaled: bool,
}

/// Looks at the journal of `run_id` from position `from` on.
pub async fn start(store: &Store, run_id: &str, from: u64) -> StoreResult<Start> {
    let read = store.read_journal(run_id, from).await?;
    let total = read.events.last().map_or(from, |(seq, _)| seq + 1);
    Ok(Start {
        status: read.status,
        missed: read.events.len(),
        total,
        journaled: read.journaled,
    })
}

/// Sends `(position, event)` for the events of `run_id` from position `from` on, as
/// they are journaled, until the run's own terminal event (sent too, once) or the
/// receiver goes away. A run that ended without a journal (it ended within its first
/// flush interval) is replayed from the events it stored, from position `from` on, to its
/// terminal event.
pub async fn follow(
    store: Store,
    run_id: String,
    mut from: u64,
    tx: mpsc::Sender<(u64, Value)>,
) -> StoreResult<()> {
    let mut ended_at: Option<tokio::time::Instant> = None;
    // Where the database pushes notices, a batch wakes the follower at once; the poll
    // stays as the fallback for a lost notice.
    let mut notices = store.notices();
    let poll = if notices.is_some() {
        NOTICED_POLL
    } else {
        FOLLOW_POLL
    };
    loop {
        let read = store.read_journal(&run_id, from).await?;
        for (seq, line) in read.events {
            if seq < from {
                continue;
            }
            let Ok(event) = serde_json::from_str::<Value>(&line) else {
                from = seq + 1;
                continue;
            };
            from = seq + 1;
            let terminal = is_terminal(&event, &run_id);
            if tx.send((seq, event)).await.is_err() || terminal {
                return Ok(());
            }
        }
        // Not begun yet: a queued background run is waited for (it leaves the queue only
        // once its row exists).
        let live = matches!(
            read.status,
            None | Some(RunStatus::Running | RunStatus::Pending)
        );
        if read.status.is_none()
            && store.queued_run(&run_id).await?.is_none()
            && store.get_run(&run_id).await?.is_none()
        {
            return Ok(());
        }
        if !live {
            if !read.journaled {
                // Never journaled: what the run stored is all there is.
                if let Some(stored) = store.get_run(&run_id).await? {
                    replay_stored(&stored.events, &run_id, from, &tx).await;
                }
                return Ok(());
            }
            let since = *ended_at.get_or_insert_with(tokio::time::Instant::now);
            if since.elapsed() > LAST_BATCH_WAIT {
                return Ok(());
            }
        }
        let wait = if ended_at.is_some() {
            FOLLOW_POLL
        } else {
            poll
        };
        let sleep = tokio::time::sleep(wait);
        tokio::pin!(sleep);
        loop {
            let noticed = async {
                match notices.as_mut() {
                    Some(rx) => Some(rx.recv().await),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = tx.closed() => return Ok(()),
                () = &mut sleep => break,
                notice = noticed => match notice {
                    Some(Ok(Notice::Journal(id))) if id == run_id => break,
                    Some(Ok(Notice::Resync) | Err(RecvError::Lagged(_))) => break,
                    Some(Err(RecvError::Closed)) => notices = None,
                    _ => {}
                },
            }
        }
    }
}

/// Sends a run's stored events from position `from` on, up to and with its terminal
/// event, which is sent even when it lies before `from`: stored events leave out content
/// deltas, so a client counting the live stream's events may be past their end, and
/// still learns how the run ended (at position `from`).
async fn replay_stored(events: &[Value], run_id: &str, from: u64, tx: &mpsc::Sender<(u64, Value)>) {
    for (seq, event) in events.iter().enumerate() {
        let seq = seq as u64;
        let terminal = is_terminal(event, run_id);
        if seq < from && !terminal {
            continue;
        }
        if tx.send((seq.max(from), event.clone())).await.is_err() || terminal {
            return;
        }
    }
}
