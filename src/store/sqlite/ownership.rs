//! Processes, the runs they own, and cancel requests between them (see `presence.rs` for
//! the rules).

use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, raw_run};
use crate::run::{RunRecord, RunStatus};
use crate::store::{
    CancelOutcome, Orphan, ProcessInfo, RunListing, RunQuery, StoreResult, StoredRun,
};

/// The columns of a process row, in the order [`process`] reads them.
const PROCESS_COLUMNS: &str = "process_id, kind, pid, host, address, started_at, heartbeat_at";

fn process(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<ProcessInfo> {
    Ok(ProcessInfo {
        process_id: row.get(at)?,
        kind: row.get(at + 1)?,
        pid: row.get(at + 2)?,
        host: row.get(at + 3)?,
        address: row.get(at + 4)?,
        started_at: row.get(at + 5)?,
        heartbeat_at: row.get(at + 6)?,
    })
}

impl SqliteStore {
    /// Records a process (or refreshes it, when its id is already there). Its heartbeat is
    /// stamped with this machine's clock, as every heartbeat is: the processes sharing a
    /// SQLite file share a machine.
    pub fn register_process(&self, info: &ProcessInfo) -> StoreResult<()> {
        let now = crate::run::unix_now();
        self.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO processes (process_id, kind, pid, host, address, started_at, \
                 heartbeat_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                 ON CONFLICT (process_id) DO UPDATE SET heartbeat_at = ?7, address = ?5",
            )?
            .execute(params![
                info.process_id,
                info.kind,
                info.pid,
                info.host,
                info.address,
                info.started_at,
                now,
            ])?;
            Ok(())
        })
    }

    /// Refreshes a process's heartbeat. False when its row is gone (another process took
    /// it for dead).
    pub fn heartbeat(&self, process_id: &str) -> StoreResult<bool> {
        self.write(|tx| {
            // Read once the write lock is held: waiting for it must not age the beat.
            let now = crate::run::unix_now();
            let changed = tx
                .prepare_cached("UPDATE processes SET heartbeat_at = ?2 WHERE process_id = ?1")?
                .execute(params![process_id, now])?;
            Ok(changed > 0)
        })
    }

    /// Forgets processes: one that stopped cleanly, or (with `silent_for`) dead ones whose
    /// runs were settled, as long as they are still silent.
    pub fn forget_processes(
        &self,
        ids: &[String],
        silent_for: Option<std::time::Duration>,
    ) -> StoreResult<()> {
        let cutoff = silent_for.map(|t| crate::run::unix_now() - t.as_secs_f64());
        self.write(|tx| {
            let mut delete = tx.prepare_cached(
                "DELETE FROM processes WHERE process_id = ?1 AND (?2 IS NULL OR heartbeat_at < ?2)",
            )?;
            for id in ids {
                delete.execute(params![id, cutoff])?;
            }
            Ok(())
        })
    }

    /// The processes silent for longer than `timeout` (other than `alive`), and the runs
    /// left RUNNING or PENDING by a process that is not alive: one of those, one with no
    /// process row at all, or no owner (a run begun by an agentos before owners were
    /// recorded) untouched for longer than `timeout`. Each orphan comes with the journal
    /// of the top-level run it belongs to.
    pub fn orphans(
        &self,
        alive: &str,
        timeout: std::time::Duration,
    ) -> StoreResult<(Vec<String>, Vec<Orphan>)> {
        let cutoff = crate::run::unix_now() - timeout.as_secs_f64();
        self.read(|tx| {
            let dead: Vec<String> = tx
                .prepare_cached(
                    "SELECT process_id FROM processes WHERE heartbeat_at < ?1 AND process_id != ?2",
                )?
                .query_map(params![cutoff, alive], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            let rows = tx
                .prepare_cached(concat!(
                    "SELECT ",
                    run_columns!(),
                    ", r.owner, r.parent_run_id FROM runs r \
                     JOIN sessions s ON s.session_id = r.session_id \
                     LEFT JOIN processes p ON p.process_id = r.owner \
                     WHERE r.status IN ('RUNNING', 'PENDING') AND ( \
                       (r.owner IS NULL AND r.updated_at < ?2) \
                       OR (r.owner IS NOT NULL AND r.owner != ?1 \
                           AND (p.process_id IS NULL OR p.heartbeat_at < ?3)))"
                ))?
                .query_map(params![alive, cutoff as i64, cutoff], |row| {
                    Ok((
                        raw_run(row)?,
                        row.get::<_, Option<String>>(5)?,
                        row.get::<_, Option<String>>(6)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            // Each run's top-level run among the orphans (its parent runs in the same
            // process, so it is one too).
            let parents: std::collections::HashMap<String, Option<String>> = rows
                .iter()
                .map(|(raw, _, parent)| (raw.run_id.clone(), parent.clone()))
                .collect();
            let root_of = |id: &str| {
                let mut current = id.to_string();
                for _ in 0..64 {
                    match parents.get(&current) {
                        Some(Some(parent)) if parents.contains_key(parent) => {
                            current.clone_from(parent)
                        }
                        _ => break,
                    }
                }
                current
            };
            let mut owners = tx.prepare_cached(&format!(
                "SELECT {PROCESS_COLUMNS} FROM processes WHERE process_id = ?1"
            ))?;
            let mut orphans = Vec::new();
            for (raw, owner_id, _) in rows {
                let root = root_of(&raw.run_id);
                let Some(run) = raw.into_stored() else {
                    continue;
                };
                let owner = match &owner_id {
                    Some(id) => owners.query_row([id], |row| process(row, 0)).optional()?,
                    None => None,
                };
                let journal = super::journal::lines(tx, &root, 0)?;
                orphans.push(Orphan {
                    run,
                    owner_id,
                    owner,
                    journal,
                });
            }
            Ok((dead, orphans))
        })
    }

    /// Stores an orphan as it was settled (interrupted), unless it is no longer a live run
    /// of `owner` (it ended, or another process settled it first). True when it was stored.
    pub fn settle_orphan(
        &self,
        run: &StoredRun,
        events: &[serde_json::Value],
        owner: Option<&str>,
        silent_for: std::time::Duration,
    ) -> StoreResult<bool> {
        let columns = super::RunColumns::new(&run.run, events)?;
        let cutoff = crate::run::unix_now() - silent_for.as_secs_f64();
        self.write(|tx| {
            let changed = tx
                .prepare_cached(
                    "UPDATE runs SET status = ?2, content = ?3, run = ?4, events = ?5, \
                     owner = NULL, cancel_requested = 0, updated_at = max(updated_at, ?6) \
                     WHERE run_id = ?1 AND status IN ('RUNNING', 'PENDING') AND owner IS ?7 \
                     AND NOT EXISTS (SELECT 1 FROM processes \
                                     WHERE process_id = ?7 AND heartbeat_at >= ?8)",
                )?
                .execute(params![
                    run.run.run_id(),
                    run.run.status(),
                    columns.content,
                    columns.run,
                    columns.events,
                    crate::run::now_secs(),
                    owner,
                    cutoff,
                ])?;
            Ok(changed > 0)
        })
    }

    /// Asks for a run to be cancelled by the process running it, or, for a queued run
    /// not yet begun, by the process that takes it up.
    pub fn request_cancel(&self, run_id: &str) -> StoreResult<CancelOutcome> {
        self.write(|tx| {
            let found: Option<(RunStatus, Option<String>)> = tx
                .prepare_cached("SELECT status, owner FROM runs WHERE run_id = ?1")?
                .query_row([run_id], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()?;
            Ok(match found {
                None => {
                    let queued = tx
                        .prepare_cached(
                            "UPDATE run_queue SET cancel_requested = 1 WHERE run_id = ?1",
                        )?
                        .execute([run_id])?;
                    if queued > 0 {
                        CancelOutcome::Queued
                    } else {
                        CancelOutcome::Unknown
                    }
                }
                Some((status @ (RunStatus::Running | RunStatus::Pending), owner)) => {
                    tx.prepare_cached("UPDATE runs SET cancel_requested = 1 WHERE run_id = ?1")?
                        .execute([run_id])?;
                    CancelOutcome::Requested { status, owner }
                }
                Some((status, _)) => CancelOutcome::Ended(status),
            })
        })
    }

    /// The runs of `owner` another process asked to cancel.
    pub fn cancel_requests(&self, owner: &str) -> StoreResult<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("SELECT run_id FROM runs WHERE owner = ?1 AND cancel_requested = 1")?;
        let ids = stmt
            .query_map([owner], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(ids)
    }

    /// Runs across all processes, newest first, with their owners.
    pub fn list_all_runs(&self, query: &RunQuery) -> StoreResult<Vec<RunListing>> {
        // A run's kind is its session's, but for a member run: a team's member is an agent
        // or a team (whose run object names its `team_id`).
        const MEMBER_KIND: &str = "CASE WHEN r.parent_run_id IS NULL THEN s.session_type \
             WHEN json_extract(r.run, '$.team_id') IS NOT NULL THEN 'team' ELSE 'agent' END";
        use rusqlite::types::Value as Sql;
        let mut sql = format!(
            "SELECT r.run_id, {MEMBER_KIND}, r.component_id, r.session_id, r.parent_run_id, \
             r.status, r.created_at, r.updated_at, r.owner, {} \
             FROM runs r JOIN sessions s ON s.session_id = r.session_id \
             LEFT JOIN processes p ON p.process_id = r.owner WHERE 1 = 1",
            PROCESS_COLUMNS
                .split(", ")
                .map(|c| format!("p.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut args: Vec<Sql> = Vec::new();
        if !query.statuses.is_empty() {
            sql.push_str(" AND r.status IN (");
            for (i, status) in query.statuses.iter().enumerate() {
                sql.push_str(if i == 0 { "?" } else { ", ?" });
                args.push(Sql::Text(status.as_str().to_string()));
            }
            sql.push(')');
        }
        if !query.include_members {
            sql.push_str(" AND r.parent_run_id IS NULL");
        }
        sql.push_str(" ORDER BY r.seq DESC LIMIT ?");
        args.push(Sql::Integer(i64::try_from(query.limit).unwrap_or(i64::MAX)));
        let conn = self.conn();
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args), |row| {
                let owner_id: Option<String> = row.get(8)?;
                let has_row: Option<String> = row.get(9)?;
                Ok(RunListing {
                    run_id: row.get(0)?,
                    kind: row.get(1)?,
                    component_id: row.get(2)?,
                    session_id: row.get(3)?,
                    parent_run_id: row.get(4)?,
                    status: row.get(5)?,
                    created_at: row.get(6)?,
                    updated_at: row.get(7)?,
                    owner: match has_row {
                        Some(_) => Some(process(row, 9)?),
                        None => None,
                    },
                    owner_id,
                    queued: false,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        if !(query.statuses.is_empty() || query.statuses.contains(&RunStatus::Pending)) {
            return Ok(rows);
        }
        let queued = conn
            .prepare_cached(
                "SELECT run_id, kind, component_id, session_id, accepted_at FROM run_queue \
                 ORDER BY accepted_at DESC LIMIT ?1",
            )?
            .query_map([i64::try_from(query.limit).unwrap_or(i64::MAX)], |row| {
                let at: f64 = row.get(4)?;
                Ok(RunListing {
                    run_id: row.get(0)?,
                    kind: row.get(1)?,
                    component_id: row.get(2)?,
                    session_id: row.get(3)?,
                    parent_run_id: None,
                    status: RunStatus::Pending,
                    created_at: at as i64,
                    updated_at: at as i64,
                    owner_id: None,
                    owner: None,
                    queued: true,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RunListing::merge(rows, queued, query.limit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kind::Kind;
    use crate::run::AnyRun;
    use crate::store::{Session, SqliteStore};
    use serde_json::json;

    fn process(id: &str, heartbeat_at: f64) -> ProcessInfo {
        ProcessInfo {
            process_id: id.into(),
            kind: "serve".into(),
            pid: 42,
            host: "box".into(),
            address: Some("127.0.0.1:7777".into()),
            started_at: 1,
            heartbeat_at,
        }
    }

    fn begin(store: &SqliteStore, run_id: &str) {
        let session = Session {
            session_id: "s1".into(),
            session_type: Kind::Agent,
            component_id: "a".into(),
            user_id: None,
            session_name: None,
            session_state: json!({}),
            metadata: None,
            session_data: None,
            created_at: 1,
            updated_at: 1,
        };
        let run = super::super::tests::run("s1", run_id, "hi");
        store
            .begin_run(&session, &AnyRun::Agent(run), Kind::Agent)
            .unwrap();
    }

    #[test]
    fn runs_of_silent_processes_are_orphans_and_settle_once() {
        let store = SqliteStore::open_in_memory().unwrap();
        store.register_process(&process("dead", 100.0)).unwrap();
        store.register_process(&process("alive", 1000.0)).unwrap();
        store.set_owner("dead");
        begin(&store, "r-dead");
        begin(&store, "r-alive");
        store
            .conn()
            .execute(
                "UPDATE runs SET owner = 'alive' WHERE run_id = 'r-alive'",
                [],
            )
            .unwrap();
        store
            .append_journal(&[crate::store::JournalBatch {
                run_id: "r-dead".into(),
                first_seq: 0,
                count: 1,
                events: r#"{"event":"RunContent","run_id":"r-dead","content":"par"}"#.into(),
            }])
            .unwrap();
        assert!(store.heartbeat("alive").unwrap());
        assert!(!store.heartbeat("gone").unwrap());
        // Heartbeats are stamped by the store: "dead" last beat long ago.
        store
            .conn()
            .execute(
                "UPDATE processes SET heartbeat_at = 100 WHERE process_id = 'dead'",
                [],
            )
            .unwrap();
        let timeout = std::time::Duration::from_secs(60);

        let (dead, orphans) = store.orphans("me", timeout).unwrap();
        assert_eq!(dead, ["dead"]);
        assert_eq!(orphans.len(), 1, "the live owner's run is not touched");
        let orphan = &orphans[0];
        assert_eq!(orphan.run.run.run_id(), "r-dead");
        assert_eq!(orphan.owner_id.as_deref(), Some("dead"));
        assert_eq!(orphan.owner.as_ref().unwrap().pid, 42);
        assert_eq!(orphan.journal.len(), 1);

        let mut settled = orphan.run.clone();
        if let AnyRun::Agent(r) = &mut settled.run {
            r.status = RunStatus::Error;
        }
        assert!(
            !store
                .settle_orphan(
                    &settled,
                    &[],
                    Some("dead"),
                    std::time::Duration::from_secs(4_000_000_000)
                )
                .unwrap(),
            "an owner that heartbeated within the timeout keeps its run"
        );
        assert!(
            store
                .settle_orphan(&settled, &[], Some("dead"), timeout)
                .unwrap()
        );
        assert!(
            !store
                .settle_orphan(&settled, &[], Some("dead"), timeout)
                .unwrap(),
            "a second settler finds nothing to do"
        );
        assert_eq!(store.orphans("me", timeout).unwrap().1.len(), 0);
        store
            .forget_processes(&["alive".into()], Some(timeout))
            .unwrap();
        store
            .forget_processes(&["dead".into()], Some(timeout))
            .unwrap();
        assert!(
            store.heartbeat("alive").unwrap(),
            "a live process is not forgotten"
        );
        assert!(!store.heartbeat("dead").unwrap());

        // Cancel requests reach the owner; ended and unknown runs say so.
        assert_eq!(
            store.request_cancel("r-alive").unwrap(),
            CancelOutcome::Requested {
                status: RunStatus::Running,
                owner: Some("alive".into())
            }
        );
        assert_eq!(store.cancel_requests("alive").unwrap(), ["r-alive"]);
        assert_eq!(
            store.request_cancel("r-dead").unwrap(),
            CancelOutcome::Ended(RunStatus::Error)
        );
        assert_eq!(
            store.request_cancel("nope").unwrap(),
            CancelOutcome::Unknown
        );

        let listed = store
            .list_all_runs(&RunQuery {
                statuses: vec![RunStatus::Running],
                include_members: false,
                limit: 10,
            })
            .unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].run_id, "r-alive");
        assert_eq!(listed[0].owner.as_ref().unwrap().process_id, "alive");
    }
}
