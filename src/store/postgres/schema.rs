//! The PostgreSQL schema's history: an append-only list of migrations, the version kept
//! in `agentos_schema`. As with SQLite's, released entries are never edited; a change is
//! a new entry. Migrations run in one transaction under an advisory lock, so servers
//! starting together apply each exactly once; a database written by a newer agentos is
//! refused.
//!
//! The tables mirror SQLite's (`../migrations.rs`): JSON is stored as text, exactly as
//! serde_json wrote it, so both backends read and write the same objects.

use crate::store::{StoreError, StoreResult};

/// An arbitrary key for `pg_advisory_xact_lock`, the same in every agentos.
const MIGRATION_LOCK: i64 = 0x6167_656e_746f_7331; // "agentos1"

/// The migrations, oldest first. Append only.
const MIGRATIONS: &[&str] = &[
    // 1: sessions, runs, processes and run journals (SQLite's versions 1 and 2).
    r#"
    CREATE TABLE sessions (
        seq           BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
        session_id    TEXT   NOT NULL PRIMARY KEY,
        session_type  TEXT   NOT NULL CHECK (session_type IN ('agent', 'team', 'workflow')),
        component_id  TEXT   NOT NULL,
        user_id       TEXT,
        session_name  TEXT,
        session_state TEXT   NOT NULL DEFAULT '{}',
        metadata      TEXT,
        session_data  TEXT,
        created_at    BIGINT NOT NULL,
        updated_at    BIGINT NOT NULL
    );
    CREATE INDEX sessions_type_component ON sessions (session_type, component_id);
    CREATE INDEX sessions_user ON sessions (user_id);
    CREATE INDEX sessions_created ON sessions (created_at);
    CREATE INDEX sessions_updated ON sessions (updated_at);

    CREATE TABLE runs (
        seq              BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        run_id           TEXT    NOT NULL UNIQUE,
        session_id       TEXT    NOT NULL REFERENCES sessions (session_id) ON DELETE CASCADE,
        parent_run_id    TEXT,
        component_id     TEXT    NOT NULL,
        user_id          TEXT,
        status           TEXT    NOT NULL,
        input            TEXT    NOT NULL DEFAULT '',
        content          TEXT,
        run              TEXT    NOT NULL,
        events           TEXT    NOT NULL DEFAULT '[]',
        input_tokens     BIGINT  NOT NULL DEFAULT 0,
        output_tokens    BIGINT  NOT NULL DEFAULT 0,
        total_tokens     BIGINT  NOT NULL DEFAULT 0,
        created_at       BIGINT  NOT NULL,
        updated_at       BIGINT  NOT NULL,
        owner            TEXT,
        cancel_requested BOOLEAN NOT NULL DEFAULT FALSE
    );
    CREATE INDEX runs_session_seq ON runs (session_id, seq);
    CREATE INDEX runs_parent ON runs (parent_run_id) WHERE parent_run_id IS NOT NULL;
    CREATE INDEX runs_owner ON runs (owner) WHERE owner IS NOT NULL;
    CREATE INDEX runs_live ON runs (status) WHERE status IN ('RUNNING', 'PENDING');

    CREATE TABLE processes (
        process_id   TEXT             NOT NULL PRIMARY KEY,
        kind         TEXT             NOT NULL,
        pid          BIGINT           NOT NULL,
        host         TEXT             NOT NULL,
        address      TEXT,
        started_at   BIGINT           NOT NULL,
        heartbeat_at DOUBLE PRECISION NOT NULL
    );

    CREATE TABLE run_journal (
        run_id    TEXT   NOT NULL,
        first_seq BIGINT NOT NULL,
        count     BIGINT NOT NULL,
        events    TEXT   NOT NULL,
        PRIMARY KEY (run_id, first_seq)
    );
    "#,
    // 2: background runs waiting for a process (SQLite's version 3).
    r#"
    CREATE TABLE run_queue (
        run_id       TEXT             NOT NULL PRIMARY KEY,
        kind         TEXT             NOT NULL,
        component_id TEXT             NOT NULL,
        session_id   TEXT             NOT NULL,
        request      TEXT             NOT NULL,
        accepted_by  TEXT,
        accepted_at  DOUBLE PRECISION NOT NULL,
        claimed_by   TEXT,
        claimed_at   DOUBLE PRECISION
    );
    CREATE INDEX run_queue_accepted ON run_queue (accepted_at);
    "#,
    // 3: a cancel of a queued run (SQLite's version 4).
    r#"
    ALTER TABLE run_queue ADD COLUMN cancel_requested BOOLEAN NOT NULL DEFAULT FALSE;
    "#,
];

/// The schema version this binary writes and understands.
pub(super) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database up to [`SCHEMA_VERSION`], or refuses a newer one.
pub(super) async fn migrate(client: &mut tokio_postgres::Client) -> StoreResult<()> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS agentos_schema (
             id      INTEGER PRIMARY KEY CHECK (id = 1),
             version BIGINT  NOT NULL
         );
         INSERT INTO agentos_schema (id, version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;",
    )
    .await?;
    let current: i64 = tx
        .query_one("SELECT version FROM agentos_schema WHERE id = 1", &[])
        .await?
        .get(0);
    if current > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found: current,
            supported: SCHEMA_VERSION,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        tx.batch_execute(sql).await?;
        tx.execute(
            "UPDATE agentos_schema SET version = $1 WHERE id = 1",
            &[&(index as i64 + 1)],
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
