//! The journal of a live top-level run: every event it sends, written to the store in
//! batches so other processes can follow the run and a crash loses only the last batch.
//!
//! Events are kept as they are sent ([`JournalSink`]) and written by the process's
//! flusher once the run has lived a flush interval, then with every interval; when the
//! run ends its last events are written after its outcome was stored. Each journal's
//! batches reach the store's writer queue in the order of their events, so a reader never
//! sees a later batch before an earlier one.

use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use futures_util::future::BoxFuture;

use crate::event::{Event, EventSink};
use crate::store::{JournalBatch, Store};

/// One run's journal. See the module documentation.
pub struct Journal {
    run_id: String,
    store: Store,
    started: Instant,
    state: Mutex<State>,
}

#[derive(Default)]
pub(super) struct State {
    /// Events sent and not yet turned into a batch.
    pending: Vec<Event>,
    /// Batches made and not yet handed to the store.
    unqueued: Vec<JournalBatch>,
    /// The position of the next event to batch.
    next_seq: u64,
    /// Some batch was made: the run is journaled.
    written: bool,
}

impl Journal {
    pub(super) fn new(run_id: &str, store: Store) -> Journal {
        Journal {
            run_id: run_id.to_string(),
            store,
            started: Instant::now(),
            state: Mutex::new(State::default()),
        }
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    pub(super) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, event: &Event) {
        self.state().pending.push(event.clone());
    }

    /// Turns the pending events into a batch, once the run has lived `min_age`.
    pub(super) fn prepare(&self, min_age: std::time::Duration) {
        if self.started.elapsed() < min_age {
            return;
        }
        let mut state = self.state();
        state.batch(&self.run_id);
    }

    /// Hands the batches made so far to the store, in order. Called with the state
    /// locked, so no later batch of this journal can overtake them.
    pub(super) fn take_batches(state: &mut State) -> Vec<JournalBatch> {
        std::mem::take(&mut state.unqueued)
    }

    /// Writes everything held now (the process is stopping).
    pub(super) fn flush(&self) {
        let mut state = self.state();
        state.batch(&self.run_id);
        let batches = Self::take_batches(&mut state);
        if !batches.is_empty() {
            drop(self.store.append_journal(batches));
        }
    }

    /// The run ended: its last events are written if it is journaled (a run that never
    /// lived a flush interval stays unjournaled).
    pub fn finish(&self) {
        let mut state = self.state();
        if !state.written {
            return;
        }
        state.batch(&self.run_id);
        let batches = Self::take_batches(&mut state);
        if !batches.is_empty() {
            drop(self.store.append_journal(batches));
        }
    }
}

impl State {
    fn batch(&mut self, run_id: &str) {
        if self.pending.is_empty() {
            return;
        }
        let events = std::mem::take(&mut self.pending);
        let mut lines = String::new();
        for (i, event) in events.iter().enumerate() {
            if i > 0 {
                lines.push('\n');
            }
            lines.push_str(&event.to_json());
        }
        let count = events.len() as u64;
        self.unqueued.push(JournalBatch {
            run_id: run_id.to_string(),
            first_seq: self.next_seq,
            count,
            events: lines,
        });
        self.next_seq += count;
        self.written = true;
    }
}

/// Passes a run's events on to `inner`, keeping each in the run's journal.
pub struct JournalSink<'a> {
    pub journal: &'a Journal,
    pub inner: &'a dyn EventSink,
}

impl EventSink for JournalSink<'_> {
    fn send<'a>(&'a self, event: &'a Event) -> BoxFuture<'a, ()> {
        self.journal.push(event);
        self.inner.send(event)
    }
}
