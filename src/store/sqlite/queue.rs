//! The queue of background runs waiting for a process. The write lock serializes
//! claims, so two processes never take up the same run.

use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use crate::store::{QueuedRun, StoreResult};

const QUEUE_COLUMNS: &str =
    "run_id, kind, component_id, session_id, request, accepted_by, accepted_at";

fn queued(row: &rusqlite::Row<'_>) -> rusqlite::Result<(QueuedRun, String)> {
    Ok((
        QueuedRun {
            run_id: row.get(0)?,
            kind: row.get(1)?,
            component_id: row.get(2)?,
            session_id: row.get(3)?,
            request: serde_json::Value::Null,
            accepted_by: row.get(5)?,
            accepted_at: row.get(6)?,
        },
        row.get(4)?,
    ))
}

fn with_request((mut run, request): (QueuedRun, String)) -> StoreResult<QueuedRun> {
    run.request = serde_json::from_str(&request)?;
    Ok(run)
}

impl SqliteStore {
    /// Queues a run; `claimed`: taken up at once by the process that accepted it.
    pub fn enqueue_run(&self, run: &QueuedRun, claimed: bool) -> StoreResult<()> {
        let request = serde_json::to_string(&run.request)?;
        let (claimed_by, claimed_at) = if claimed {
            (run.accepted_by.clone(), Some(crate::run::unix_now()))
        } else {
            (None, None)
        };
        self.write(|tx| {
            tx.prepare_cached(&format!(
                "INSERT INTO run_queue ({QUEUE_COLUMNS}, claimed_by, claimed_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
            ))?
            .execute(params![
                run.run_id,
                run.kind,
                run.component_id,
                run.session_id,
                request,
                run.accepted_by,
                run.accepted_at,
                claimed_by,
                claimed_at,
            ])?;
            Ok(())
        })
    }

    pub fn claim_run(
        &self,
        claimer: &str,
        run_id: Option<&str>,
        timeout: std::time::Duration,
    ) -> StoreResult<Option<QueuedRun>> {
        let now = crate::run::unix_now();
        let cutoff = now - timeout.as_secs_f64();
        let found = self.write(|tx| {
            Ok(tx
                .prepare_cached(&format!(
                    "UPDATE run_queue SET claimed_by = ?1, claimed_at = ?2 WHERE run_id = ( \
                       SELECT q.run_id FROM run_queue q \
                       LEFT JOIN processes p ON p.process_id = q.claimed_by \
                       WHERE (?3 IS NULL OR q.run_id = ?3) AND (q.claimed_by IS NULL \
                         OR (q.claimed_by != ?1 AND (p.process_id IS NULL OR p.heartbeat_at < ?4))) \
                       ORDER BY q.accepted_at LIMIT 1) \
                     RETURNING {QUEUE_COLUMNS}"
                ))?
                .query_row(params![claimer, now, run_id, cutoff], queued)
                .optional()?)
        })?;
        found.map(with_request).transpose()
    }

    pub fn release_run(&self, run_id: &str) -> StoreResult<()> {
        self.write(|tx| {
            tx.prepare_cached(
                "UPDATE run_queue SET claimed_by = NULL, claimed_at = NULL WHERE run_id = ?1",
            )?
            .execute([run_id])?;
            Ok(())
        })
    }

    /// Takes a run out of the queue; true when a cancel was requested while it waited.
    pub fn dequeue_run(&self, run_id: &str) -> StoreResult<bool> {
        self.write(|tx| {
            let cancelled: Option<bool> = tx
                .prepare_cached(
                    "DELETE FROM run_queue WHERE run_id = ?1 RETURNING cancel_requested",
                )?
                .query_row([run_id], |row| row.get(0))
                .optional()?;
            Ok(cancelled.unwrap_or(false))
        })
    }

    pub fn queued_run(&self, run_id: &str) -> StoreResult<Option<QueuedRun>> {
        let found = self
            .conn()
            .prepare_cached(&format!(
                "SELECT {QUEUE_COLUMNS} FROM run_queue WHERE run_id = ?1"
            ))?
            .query_row([run_id], queued)
            .optional()?;
        found.map(with_request).transpose()
    }
}

#[cfg(test)]
mod tests {
    use crate::kind::Kind;
    use crate::store::{ProcessInfo, QueuedRun, SqliteStore};

    fn run(id: &str, at: f64) -> QueuedRun {
        QueuedRun {
            run_id: id.into(),
            kind: Kind::Agent,
            component_id: "a".into(),
            session_id: "s1".into(),
            request: serde_json::json!({"message": "hi"}),
            accepted_by: Some("p1".into()),
            accepted_at: at,
        }
    }

    #[test]
    fn queued_runs_are_claimed_once_and_again_after_their_claimer_stops() {
        let store = SqliteStore::open_in_memory().unwrap();
        store.enqueue_run(&run("r2", 2.0), false).unwrap();
        store.enqueue_run(&run("r1", 1.0), false).unwrap();
        assert_eq!(
            store.queued_run("r1").unwrap().unwrap().request["message"],
            "hi"
        );
        // The oldest first; a claimed run is not claimed again while its claimer lives.
        let live = ProcessInfo {
            process_id: "p1".into(),
            kind: "serve".into(),
            pid: 1,
            host: "h".into(),
            address: None,
            started_at: 1,
            heartbeat_at: 1000.0,
        };
        store.register_process(&live).unwrap();
        let timeout = std::time::Duration::from_secs(60);
        assert_eq!(
            store
                .claim_run("p1", None, timeout)
                .unwrap()
                .unwrap()
                .run_id,
            "r1"
        );
        assert_eq!(
            store
                .claim_run("p2", None, timeout)
                .unwrap()
                .unwrap()
                .run_id,
            "r2"
        );
        assert!(store.claim_run("p2", None, timeout).unwrap().is_none());
        // p1 goes silent: its claim can be taken over.
        store
            .conn()
            .execute(
                "UPDATE processes SET heartbeat_at = 1 WHERE process_id = 'p1'",
                [],
            )
            .unwrap();
        assert_eq!(
            store
                .claim_run("p2", Some("r1"), timeout)
                .unwrap()
                .unwrap()
                .run_id,
            "r1"
        );
        assert!(!store.dequeue_run("r1").unwrap(), "no cancel was asked for");
        assert!(store.queued_run("r1").unwrap().is_none());
        // A cancel of a queued run is kept on its row for the process that takes it up.
        assert_eq!(
            store.request_cancel("r2").unwrap(),
            crate::store::CancelOutcome::Queued
        );
        assert!(store.dequeue_run("r2").unwrap());
    }
}
