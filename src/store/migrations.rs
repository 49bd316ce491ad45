//! The store's schema history: an append-only list of SQL migrations keyed on
//! `PRAGMA user_version`.
//!
//! Entry `i` moves a database from `user_version = i` to `i + 1`. Released entries are
//! never edited or reordered; a schema change is a new entry at the end. All pending
//! entries run inside one IMMEDIATE transaction together with the version bump, so a
//! crash leaves the database at the old version, and two processes opening a fresh file at
//! once apply each migration exactly once (the second waits for the first's write lock,
//! then finds nothing left to do).
//!
//! A database written by a newer agentos (a higher `user_version`) is refused rather than
//! used with a schema this binary does not understand.

use rusqlite::{Connection, TransactionBehavior};

use super::{StoreError, StoreResult};

/// The migrations, oldest first. Append only.
const MIGRATIONS: &[&str] = &[
    // 1: sessions and runs.
    //
    // `sessions` holds one row per agent/team/workflow session. JSON columns hold text
    // produced by serde_json. Timestamps are Unix seconds. The implicit rowid orders
    // sessions created within the same second.
    //
    // `runs` holds one row per run; writing a run never touches another run's row.
    // `seq` (the rowid, AUTOINCREMENT so it is never reused) orders runs within a
    // session, since `created_at` only has whole seconds. `run_id` is the public key
    // (UNIQUE NOT NULL). `run` is the whole run object (`RunOutput`) as JSON; the other
    // columns duplicate the parts that are filtered, sorted or summed on, so listing
    // never parses run JSON. `content` is the run's text, or its JSON for structured
    // output. `events` is a JSON array of the events emitted while the run was live.
    r#"
    CREATE TABLE sessions (
        session_id    TEXT    NOT NULL PRIMARY KEY,
        session_type  TEXT    NOT NULL CHECK (session_type IN ('agent', 'team', 'workflow')),
        component_id  TEXT    NOT NULL,
        user_id       TEXT,
        session_name  TEXT,
        session_state TEXT    NOT NULL DEFAULT '{}',
        metadata      TEXT,
        session_data  TEXT,
        created_at    INTEGER NOT NULL,
        updated_at    INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX sessions_type_component ON sessions (session_type, component_id);
    CREATE INDEX sessions_user ON sessions (user_id);
    CREATE INDEX sessions_created ON sessions (created_at);
    CREATE INDEX sessions_updated ON sessions (updated_at);

    CREATE TABLE runs (
        seq           INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id        TEXT    NOT NULL UNIQUE,
        session_id    TEXT    NOT NULL REFERENCES sessions (session_id) ON DELETE CASCADE,
        parent_run_id TEXT,
        component_id  TEXT    NOT NULL,
        user_id       TEXT,
        status        TEXT    NOT NULL,
        input         TEXT    NOT NULL DEFAULT '',
        content       TEXT,
        run           TEXT    NOT NULL,
        events        TEXT    NOT NULL DEFAULT '[]',
        input_tokens  INTEGER NOT NULL DEFAULT 0,
        output_tokens INTEGER NOT NULL DEFAULT 0,
        total_tokens  INTEGER NOT NULL DEFAULT 0,
        created_at    INTEGER NOT NULL,
        updated_at    INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX runs_session_seq ON runs (session_id, seq);
    CREATE INDEX runs_parent ON runs (parent_run_id) WHERE parent_run_id IS NOT NULL;
    "#,
    // 2: processes own runs; journals make live runs durable and followable.
    //
    // `processes` has one row per agentos process that executes runs (a server, an
    // `agentos run`), kept fresh by its heartbeat (`heartbeat_at`, fractional Unix
    // seconds). `runs.owner` is the process executing a RUNNING run (NULL once it ended);
    // `cancel_requested` is set by a cancel from another process and read by the owner.
    //
    // `run_journal` holds the events of runs still going (and, for a minute, of runs just
    // ended), in batches: `first_seq` is the position of the batch's first event in the
    // run's event stream, `events` the `count` events as JSON lines.
    r#"
    CREATE TABLE processes (
        process_id   TEXT    NOT NULL PRIMARY KEY,
        kind         TEXT    NOT NULL,
        pid          INTEGER NOT NULL,
        host         TEXT    NOT NULL,
        address      TEXT,
        started_at   INTEGER NOT NULL,
        heartbeat_at REAL    NOT NULL
    ) STRICT;

    ALTER TABLE runs ADD COLUMN owner TEXT;
    ALTER TABLE runs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX runs_owner ON runs (owner) WHERE owner IS NOT NULL;
    CREATE INDEX runs_live ON runs (status) WHERE status IN ('RUNNING', 'PENDING');

    CREATE TABLE run_journal (
        run_id    TEXT    NOT NULL,
        first_seq INTEGER NOT NULL,
        count     INTEGER NOT NULL,
        events    TEXT    NOT NULL,
        PRIMARY KEY (run_id, first_seq)
    ) STRICT, WITHOUT ROWID;
    "#,
    // 3: background runs waiting for a process to execute them. `request` is the run's
    // form fields as a JSON object; `claimed_by` the process that took it up (the row
    // goes once the run has begun, or comes back to the queue if that process stops).
    r#"
    CREATE TABLE run_queue (
        run_id       TEXT NOT NULL PRIMARY KEY,
        kind         TEXT NOT NULL,
        component_id TEXT NOT NULL,
        session_id   TEXT NOT NULL,
        request      TEXT NOT NULL,
        accepted_by  TEXT,
        accepted_at  REAL NOT NULL,
        claimed_by   TEXT,
        claimed_at   REAL
    ) STRICT;
    CREATE INDEX run_queue_accepted ON run_queue (accepted_at);
    "#,
    // 4: a cancel of a queued run, recorded on its queue row for the process that takes it
    // up (which stores it CANCELLED without running it).
    r#"
    ALTER TABLE run_queue ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
    "#,
];

/// The schema version this binary writes and understands.
pub(super) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database up to [`SCHEMA_VERSION`], or refuses a newer one.
pub(super) fn migrate(conn: &mut Connection) -> StoreResult<()> {
    // The common case (already current) takes no write lock, so opening the store from the
    // CLI while the server is writing does not queue behind it.
    if check_version(conn)? == SCHEMA_VERSION {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Re-read under the write lock: another process may have migrated meanwhile.
    let current = check_version(&tx)?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", index as i64 + 1)?;
    }
    tx.commit()?;
    Ok(())
}

/// Reads `user_version`, failing when it is newer than this binary knows.
fn check_version(conn: &Connection) -> StoreResult<i64> {
    let found: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    // A negative version was not written by agentos; treat it as corrupt.
    if found < 0 {
        return Err(StoreError::Corrupt(format!(
            "database user_version is {found}"
        )));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrate_twice_is_a_no_op() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
    }

    #[test]
    fn newer_schema_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        match migrate(&mut conn) {
            Err(StoreError::SchemaTooNew { found, supported }) => {
                assert_eq!(found, SCHEMA_VERSION + 1);
                assert_eq!(supported, SCHEMA_VERSION);
            }
            other => panic!("expected SchemaTooNew, got {other:?}"),
        }
    }
}
