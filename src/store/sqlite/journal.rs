//! The journal of live runs: their events in batches, for followers in other processes
//! and for what an interrupted run had produced.

use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use crate::run::RunStatus;
use crate::store::{JournalBatch, JournalRead, StoreResult};

/// The events of `run_id`'s journal from position `from` on, as JSON lines.
pub(super) fn lines(tx: &Connection, run_id: &str, from: u64) -> StoreResult<Vec<String>> {
    Ok(read(tx, run_id, from)?
        .into_iter()
        .map(|(_, line)| line)
        .collect())
}

/// `(position, JSON line)` of the journal's events from position `from` on.
fn read(tx: &Connection, run_id: &str, from: u64) -> StoreResult<Vec<(u64, String)>> {
    let from = i64::try_from(from).unwrap_or(i64::MAX);
    let mut stmt = tx.prepare_cached(
        "SELECT first_seq, events FROM run_journal \
         WHERE run_id = ?1 AND first_seq + count > ?2 ORDER BY first_seq",
    )?;
    let batches = stmt
        .query_map(params![run_id, from], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::new();
    for (first, events) in batches {
        for (i, line) in events.lines().enumerate() {
            let seq = first + i as i64;
            if seq >= from {
                out.push((seq as u64, line.to_string()));
            }
        }
    }
    Ok(out)
}

impl SqliteStore {
    /// Appends batches of events to their runs' journals, all in one transaction.
    pub fn append_journal(&self, batches: &[JournalBatch]) -> StoreResult<()> {
        self.write(|tx| {
            let mut insert = tx.prepare_cached(
                "INSERT INTO run_journal (run_id, first_seq, count, events) \
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (run_id, first_seq) DO NOTHING",
            )?;
            for batch in batches {
                insert.execute(params![
                    batch.run_id,
                    i64::try_from(batch.first_seq).unwrap_or(i64::MAX),
                    i64::try_from(batch.count).unwrap_or(i64::MAX),
                    batch.events,
                ])?;
            }
            Ok(())
        })
    }

    /// Empties a run's journal (a continued run starts a new event stream).
    pub fn reset_journal(&self, run_id: &str) -> StoreResult<()> {
        self.write(|tx| {
            tx.prepare_cached("DELETE FROM run_journal WHERE run_id = ?1")?
                .execute([run_id])?;
            Ok(())
        })
    }

    /// What a follower of `run_id` finds: the journal's events from position `from` on,
    /// whether the run has a journal at all, and the run's status, in one snapshot.
    pub fn read_journal(&self, run_id: &str, from: u64) -> StoreResult<JournalRead> {
        self.read(|tx| {
            let status: Option<RunStatus> = tx
                .prepare_cached("SELECT status FROM runs WHERE run_id = ?1")?
                .query_row([run_id], |row| row.get(0))
                .optional()?;
            let journaled = tx
                .prepare_cached("SELECT 1 FROM run_journal WHERE run_id = ?1 LIMIT 1")?
                .exists([run_id])?;
            Ok(JournalRead {
                events: read(tx, run_id, from)?,
                journaled,
                status,
            })
        })
    }

    /// Drops the journals of runs that ended before `cutoff` (Unix seconds), and of runs
    /// that no longer exist.
    pub fn clean_journals(&self, cutoff: i64) -> StoreResult<u64> {
        self.write(|tx| {
            let deleted = tx
                .prepare_cached(
                    "DELETE FROM run_journal WHERE run_id IN ( \
                       SELECT DISTINCT j.run_id FROM run_journal j \
                       LEFT JOIN runs r ON r.run_id = j.run_id \
                       WHERE r.run_id IS NULL \
                          OR (r.status NOT IN ('RUNNING', 'PENDING') AND r.updated_at < ?1))",
                )?
                .execute([cutoff])?;
            Ok(deleted as u64)
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::store::{JournalBatch, SqliteStore};

    fn batch(first: u64, lines: &[&str]) -> JournalBatch {
        JournalBatch {
            run_id: "r1".into(),
            first_seq: first,
            count: lines.len() as u64,
            events: lines.join("\n"),
        }
    }

    #[test]
    fn journals_read_from_a_position_and_are_cleaned() {
        let store = SqliteStore::open_in_memory().unwrap();
        store
            .append_journal(&[batch(0, &["a", "b"]), batch(2, &["c"])])
            .unwrap();
        // A batch written twice (a retried flush) is kept once.
        store.append_journal(&[batch(2, &["c"])]).unwrap();
        let read = store.read_journal("r1", 1).unwrap();
        assert!(read.journaled);
        assert_eq!(read.status, None, "no such run in the runs table");
        assert_eq!(read.events, [(1, "b".to_string()), (2, "c".to_string())]);
        assert!(store.read_journal("r1", 3).unwrap().events.is_empty());
        assert!(!store.read_journal("r2", 0).unwrap().journaled);
        // The run does not exist: its journal (two batches) goes.
        assert_eq!(store.clean_journals(0).unwrap(), 2);
        store.append_journal(&[batch(0, &["a"])]).unwrap();
        store.reset_journal("r1").unwrap();
        assert!(!store.read_journal("r1", 0).unwrap().journaled);
    }
}
