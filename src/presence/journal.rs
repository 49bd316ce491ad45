//! The journal of a live top-level run: every event it sends, written to the store in
//! batches so other processes can follow the run and a crash loses only the last batch.
//!
//! Events are kept as they are sent ([`JournalSink`]) and written by the process's
//! flusher once the run has lived a flush interval, then with every interval. Until then
//! they are kept as events, not JSON: most runs end sooner and are never journaled, and
//! pay nothing for it. When the
//! run ends its last events are written just before its outcome is stored, so a follower
//! that finds the run ended finds its whole journal. Batches are bounded
//! in size too: once a run's unwritten events reach [`BATCH_BYTES`], they are written at
//! once, without waiting for the next interval. A journal opened `eager` (a background
//! run, whose client follows it from the store) is written from its first interval and
//! when it ends, however short the run. Each journal's batches reach the store's writer
//! queue in the order of their events, so a reader never sees a later batch before an
//! earlier one.

use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use futures_util::future::BoxFuture;
use serde_json::Value;

use crate::event::{Event, EventSink};
use crate::store::{JournalBatch, Store};

/// Bytes of unwritten events (as JSON) at which a run's journal is written at once.
pub const BATCH_BYTES: usize = 256 * 1024;

/// One run's journal. See the module documentation.
pub struct Journal {
    run_id: String,
    store: Store,
    started: Instant,
    /// Written however short the run (its client follows it from the store).
    eager: bool,
    /// Age from which the run is journaled: the flush interval.
    min_age: std::time::Duration,
    state: Mutex<State>,
}

#[derive(Default)]
pub(super) struct State {
    /// Events sent while the run was younger than the flush interval: as they were sent,
    /// or as JSON for the few whose size cannot be told without encoding them.
    young: Vec<Young>,
    /// How many bytes of JSON `young` makes, at most about.
    young_bytes: usize,
    /// Events sent and not yet turned into a batch, as JSON lines.
    pending: String,
    pending_count: u64,
    /// Batches made and not yet handed to the store.
    unqueued: Vec<JournalBatch>,
    /// The position of the next event to batch.
    next_seq: u64,
    /// Some batch was made: the run is journaled.
    written: bool,
}

impl Journal {
    pub(super) fn new(
        run_id: &str,
        store: Store,
        eager: bool,
        min_age: std::time::Duration,
    ) -> Journal {
        Journal {
            run_id: run_id.to_string(),
            store,
            started: Instant::now(),
            eager,
            min_age,
            state: Mutex::new(State::default()),
        }
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    pub(super) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps an event; writes what is held at once when it reached [`BATCH_BYTES`].
    fn push(&self, event: &Event) {
        let mut state = self.state();
        if !self.eager && self.started.elapsed() < self.min_age {
            let young = match size_bound(event) {
                Some(bytes) => {
                    state.young_bytes += bytes;
                    Young::Event(Box::new(event.clone()))
                }
                None => {
                    let line = event.to_json();
                    state.young_bytes += line.len();
                    Young::Line(line)
                }
            };
            state.young.push(young);
            if state.young_bytes < BATCH_BYTES {
                return;
            }
        } else {
            state.encode_young();
            state.push_line(&event.to_json());
        }
        if state.pending.len() >= BATCH_BYTES || state.young_bytes >= BATCH_BYTES {
            drop(self.write(&mut state));
        }
    }

    /// Turns the pending events into a batch, once the run has lived `min_age` (at once
    /// for an eager journal).
    pub(super) fn prepare(&self, min_age: std::time::Duration) {
        if !self.eager && self.started.elapsed() < min_age {
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

    /// Batches what is pending and hands every batch made to the store, with the state
    /// locked; gives the write, which nobody need await: it is queued already.
    fn write(&self, state: &mut State) -> Option<crate::store::Pending<()>> {
        state.batch(&self.run_id);
        let batches = Self::take_batches(state);
        (!batches.is_empty()).then(|| self.store.append_journal(batches))
    }

    /// Writes everything held now (the process is stopping); gives the write.
    pub(super) fn flush(&self) -> Option<crate::store::Pending<()>> {
        self.write(&mut self.state())
    }

    /// The run ended: its last events are written if it is journaled (a run that never
    /// lived a flush interval stays unjournaled, unless its journal is eager).
    pub fn finish(&self) {
        let mut state = self.state();
        if !state.written && !self.eager {
            return;
        }
        drop(self.write(&mut state));
    }
}

/// An event kept while its run is young.
enum Young {
    Event(Box<Event>),
    Line(String),
}

/// A bound on the size of an event's JSON, without making it, for the events a run sends
/// most and whose size lies in their text: content deltas, and a run's end. `None` for the
/// others (tool results, team members' runs, workflow steps can be large), which are
/// encoded at once.
fn size_bound(event: &Event) -> Option<usize> {
    use crate::event::EventData;
    // Ids, names, timestamps, keys; text counted twice for escapes.
    const FIELDS: usize = 600;
    let text = |s: &str| 2 * s.len();
    match &event.data {
        EventData::RunContent {
            content,
            reasoning_content,
            model_provider_data,
            ..
        } => Some(
            FIELDS
                + value_bound(content)
                + text(reasoning_content)
                + model_provider_data.as_ref().map_or(0, value_bound),
        ),
        EventData::RunCompleted {
            content,
            reasoning_content,
            model_provider_data,
            session_state,
            metadata,
            member_responses: None,
            ..
        } => Some(
            FIELDS
                + content.as_ref().map_or(0, value_bound)
                + reasoning_content.as_deref().map_or(0, text)
                + [model_provider_data, session_state, metadata]
                    .into_iter()
                    .map(|v| v.as_ref().map_or(0, value_bound))
                    .sum::<usize>(),
        ),
        EventData::RunStarted { .. }
        | EventData::ModelRequestStarted { .. }
        | EventData::ModelRequestCompleted { .. }
        | EventData::RunContentCompleted {}
        | EventData::RunContinued {} => Some(FIELDS),
        _ => None,
    }
}

/// A bound on the size of a JSON value once written: its text counted twice for escapes,
/// and a few bytes for every other token.
fn value_bound(value: &Value) -> usize {
    match value {
        Value::String(s) => 2 * s.len() + 2,
        Value::Array(items) => 2 + items.iter().map(|v| value_bound(v) + 1).sum::<usize>(),
        Value::Object(map) => {
            2 + map
                .iter()
                .map(|(k, v)| 2 * k.len() + 4 + value_bound(v))
                .sum::<usize>()
        }
        _ => 24,
    }
}

impl State {
    fn push_line(&mut self, line: &str) {
        if self.pending_count > 0 {
            self.pending.push('\n');
        }
        self.pending.push_str(line);
        self.pending_count += 1;
    }

    /// Turns the events kept as events into JSON lines, in order.
    fn encode_young(&mut self) {
        for young in std::mem::take(&mut self.young) {
            match young {
                Young::Event(event) => self.push_line(&event.to_json()),
                Young::Line(line) => self.push_line(&line),
            }
        }
        self.young_bytes = 0;
    }

    fn batch(&mut self, run_id: &str) {
        self.encode_young();
        if self.pending_count == 0 {
            return;
        }
        let count = std::mem::take(&mut self.pending_count);
        self.unqueued.push(JournalBatch {
            run_id: run_id.to_string(),
            first_seq: self.next_seq,
            count,
            events: std::mem::take(&mut self.pending),
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::event::{AgentSource, EventData, EventSource};

    const MINUTE: std::time::Duration = std::time::Duration::from_secs(60);

    fn content(text: &str) -> Event {
        let source = Arc::new(EventSource::Agent(AgentSource {
            run_id: "r1".into(),
            ..AgentSource::default()
        }));
        Event::new(
            &source,
            EventData::RunContent {
                content: serde_json::Value::String(text.into()),
                workflow_agent: None,
                content_type: "str".into(),
                reasoning_content: String::new(),
                model_provider_data: None,
            },
        )
    }

    #[tokio::test]
    async fn a_journal_is_written_once_its_events_reach_the_byte_bound() {
        let store = Store::open_in_memory().unwrap();
        let journal = Journal::new("r1", store.clone(), false, MINUTE);
        journal.push(&content("small"));
        assert!(!store.read_journal("r1", 0).await.unwrap().journaled);
        let piece = "x".repeat(BATCH_BYTES / 2);
        journal.push(&content(&piece));
        journal.push(&content(&piece));
        // Past the bound: written before any flush interval went by.
        let read = store.read_journal("r1", 0).await.unwrap();
        assert_eq!(read.events.len(), 3);
        assert_eq!(read.events[2].0, 2);
        journal.push(&content("last"));
        journal.finish();
        let read = store.read_journal("r1", 3).await.unwrap();
        assert_eq!(read.events.len(), 1, "the rest is written as the run ends");

        // An eager journal is written when its run ends, however short it was.
        let eager = Journal::new("r2", store.clone(), true, MINUTE);
        eager.push(&content("only"));
        eager.finish();
        assert_eq!(store.read_journal("r2", 0).await.unwrap().events.len(), 1);
        let lazy = Journal::new("r3", store.clone(), false, MINUTE);
        lazy.push(&content("only"));
        lazy.finish();
        assert!(!store.read_journal("r3", 0).await.unwrap().journaled);
    }
}
