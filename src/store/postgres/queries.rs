//! Every store operation in PostgreSQL's SQL, with the same meaning as SQLite's
//! (`../sqlite.rs` documents each). Run objects are written and read with the shared
//! codec; a run's status is changed in its object in Rust, since `jsonb` would reorder
//! the object's keys.

use std::collections::HashMap;
use std::time::Duration;

use deadpool_postgres::{GenericClient, Transaction};
use serde_json::Value;
use tokio_postgres::IsolationLevel;
use tokio_postgres::types::ToSql;

use super::{CANCEL_CHANNEL, Client, JOURNAL_CHANNEL, QUEUE_CHANNEL};
use crate::kind::Kind;
use crate::run::{AnyRun, Message, RunRecord, RunStatus, now_secs};
use crate::store::backend::HistoryFetch;
use crate::store::codec::{decode_or_report, pack, unpack};
use crate::store::{
    CancelOutcome, JournalBatch, JournalRead, Orphan, ProcessInfo, QueuedRun, RunListing, RunQuery,
    Session, SessionQuery, SessionSort, SessionSummary, SessionWithRuns, StoreError, StoreResult,
    StoredRun,
};

type Param = Box<dyn ToSql + Sync + Send>;

const SESSION_COLUMNS: &str = "session_id, session_type, component_id, user_id, session_name, \
     session_state, metadata, session_data, created_at, updated_at";

/// A session's display name: its name, else its first top-level run's input.
const DISPLAY_NAME: &str = "COALESCE(NULLIF(sessions.session_name, ''), \
     (SELECT r.input FROM runs r WHERE r.session_id = sessions.session_id \
      AND r.parent_run_id IS NULL ORDER BY r.seq LIMIT 1), '')";

const RUN_COLUMNS: &str = "r.run, r.events, r.updated_at, s.session_type, r.run_id";

const STATS: &str = "SELECT COUNT(*) FILTER (WHERE parent_run_id IS NULL), \
     COALESCE(SUM(input_tokens), 0)::BIGINT, COALESCE(SUM(output_tokens), 0)::BIGINT, \
     COALESCE(SUM(total_tokens), 0)::BIGINT FROM runs WHERE session_id = $1";

fn refs(params: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

fn kind(text: &str) -> StoreResult<Kind> {
    Kind::parse(text).ok_or_else(|| StoreError::Corrupt(format!("unknown session type '{text}'")))
}

fn status(text: &str) -> StoreResult<RunStatus> {
    RunStatus::parse(text)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown run status '{text}'")))
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

async fn snapshot(client: &mut Client) -> StoreResult<Transaction<'_>> {
    Ok(client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?)
}

async fn notify(c: &impl GenericClient, channel: &str, run_id: &str) -> StoreResult<()> {
    let stmt = c.prepare_cached("SELECT pg_notify($1, $2)").await?;
    c.query(&stmt, &[&channel, &run_id]).await?;
    Ok(())
}

// ----- sessions -----

fn session_at(row: &tokio_postgres::Row, at: usize) -> StoreResult<Session> {
    let id: String = row.get(at);
    let parse = |text: Option<String>, column: &str| -> Option<Value> {
        decode_or_report(&text?, &format!("the {column} of session"), &id)
    };
    let state: String = row.get(at + 5);
    let session_state = decode_or_report(&state, "the session_state of session", &id)
        .unwrap_or_else(|| Value::Object(serde_json::Map::new()));
    Ok(Session {
        session_type: kind(row.get(at + 1))?,
        component_id: row.get(at + 2),
        user_id: row.get(at + 3),
        session_name: row.get(at + 4),
        session_state,
        metadata: parse(row.get(at + 6), "metadata"),
        session_data: parse(row.get(at + 7), "session_data"),
        created_at: row.get(at + 8),
        updated_at: row.get(at + 9),
        session_id: id.clone(),
    })
}

struct SessionJson {
    state: String,
    metadata: Option<String>,
    data: Option<String>,
}

fn session_json(session: &Session) -> StoreResult<SessionJson> {
    Ok(SessionJson {
        state: serde_json::to_string(&session.session_state)?,
        metadata: session
            .metadata
            .as_ref()
            .map(serde_json::to_string)
            .transpose()?,
        data: session
            .session_data
            .as_ref()
            .map(serde_json::to_string)
            .transpose()?,
    })
}

pub(super) async fn get_session(c: &impl GenericClient, id: &str) -> StoreResult<Option<Session>> {
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE session_id = $1"
        ))
        .await?;
    c.query_opt(&stmt, &[&id])
        .await?
        .map(|row| session_at(&row, 0))
        .transpose()
}

pub(super) async fn create_session(c: &impl GenericClient, session: &Session) -> StoreResult<()> {
    let json = session_json(session)?;
    let stmt = c
        .prepare_cached(&format!(
            "INSERT INTO sessions ({SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, \
             $9, $10) ON CONFLICT (session_id) DO NOTHING"
        ))
        .await?;
    let inserted = c
        .execute(
            &stmt,
            &[
                &session.session_id,
                &session.session_type.as_str(),
                &session.component_id,
                &session.user_id,
                &session.session_name,
                &json.state,
                &json.metadata,
                &json.data,
                &session.created_at,
                &session.updated_at,
            ],
        )
        .await?;
    if inserted == 0 {
        return Err(StoreError::SessionExists(session.session_id.clone()));
    }
    Ok(())
}

pub(super) async fn rename_session(
    c: &impl GenericClient,
    id: &str,
    name: &str,
) -> StoreResult<bool> {
    let stmt = c
        .prepare_cached(
            "UPDATE sessions SET session_name = $2, updated_at = GREATEST(updated_at, $3) \
             WHERE session_id = $1",
        )
        .await?;
    Ok(c.execute(&stmt, &[&id, &name, &now_secs()]).await? > 0)
}

pub(super) async fn update_session(
    c: &impl GenericClient,
    id: &str,
    name: Option<&str>,
    state: Option<&Value>,
    metadata: Option<&Value>,
) -> StoreResult<Option<Session>> {
    let state = state.map(serde_json::to_string).transpose()?;
    let metadata = metadata.map(serde_json::to_string).transpose()?;
    let stmt = c
        .prepare_cached(&format!(
            "UPDATE sessions SET session_name = COALESCE($2, session_name), \
             session_state = COALESCE($3, session_state), metadata = COALESCE($4, metadata), \
             updated_at = GREATEST(updated_at, $5) WHERE session_id = $1 \
             RETURNING {SESSION_COLUMNS}"
        ))
        .await?;
    c.query_opt(&stmt, &[&id, &name, &state, &metadata, &now_secs()])
        .await?
        .map(|row| session_at(&row, 0))
        .transpose()
}

/// Deletes the sessions `gone` selects, and the background runs queued into them that no
/// process has taken up yet (they would bring the session back).
const DELETE_SESSIONS_AND_QUEUED: &str = "WITH gone AS ({gone} RETURNING session_id), \
     queued AS (DELETE FROM run_queue WHERE claimed_by IS NULL \
                AND session_id IN (SELECT session_id FROM gone)) \
     SELECT count(*) FROM gone";

pub(super) async fn delete_session(c: &impl GenericClient, id: &str) -> StoreResult<bool> {
    let stmt = c
        .prepare_cached(
            &DELETE_SESSIONS_AND_QUEUED
                .replace("{gone}", "DELETE FROM sessions WHERE session_id = $1"),
        )
        .await?;
    let deleted: i64 = c.query_one(&stmt, &[&id]).await?.get(0);
    Ok(deleted > 0)
}

pub(super) async fn delete_sessions(
    client: &mut Client,
    ids: &[String],
    types: Option<&[Kind]>,
) -> StoreResult<u64> {
    let types: Option<Vec<&str>> = types
        .filter(|t| !t.is_empty())
        .map(|t| t.iter().map(|k| k.as_str()).collect());
    let tx = client.transaction().await?;
    let row = match types {
        Some(types) => {
            tx.query_one(
                &DELETE_SESSIONS_AND_QUEUED.replace(
                    "{gone}",
                    "DELETE FROM sessions WHERE session_id = ANY($1) AND session_type = ANY($2)",
                ),
                &[&ids, &types],
            )
            .await?
        }
        None => {
            tx.query_one(
                &DELETE_SESSIONS_AND_QUEUED
                    .replace("{gone}", "DELETE FROM sessions WHERE session_id = ANY($1)"),
                &[&ids],
            )
            .await?
        }
    };
    tx.commit().await?;
    Ok(to_u64(row.get(0)))
}

async fn summarize(
    c: &impl GenericClient,
    session: Session,
    display_name: String,
) -> StoreResult<SessionSummary> {
    let stmt = c.prepare_cached(STATS).await?;
    let row = c.query_one(&stmt, &[&session.session_id]).await?;
    Ok(SessionSummary {
        session,
        display_name,
        run_count: to_u64(row.get(0)),
        input_tokens: to_u64(row.get(1)),
        output_tokens: to_u64(row.get(2)),
        total_tokens: to_u64(row.get(3)),
    })
}

pub(super) async fn session_summary(
    client: &mut Client,
    id: &str,
) -> StoreResult<Option<SessionSummary>> {
    let tx = snapshot(client).await?;
    let stmt = tx
        .prepare_cached(&format!(
            "SELECT {SESSION_COLUMNS}, {DISPLAY_NAME} FROM sessions WHERE session_id = $1"
        ))
        .await?;
    let Some(row) = tx.query_opt(&stmt, &[&id]).await? else {
        return Ok(None);
    };
    let summary = summarize(&tx, session_at(&row, 0)?, row.get(10)).await?;
    tx.commit().await?;
    Ok(Some(summary))
}

async fn list_sessions_in(
    tx: &Transaction<'_>,
    query: &SessionQuery,
) -> StoreResult<(Vec<SessionSummary>, u64)> {
    let mut conditions: Vec<String> = Vec::new();
    let mut params: Vec<Param> = Vec::new();
    let arg = |params: &mut Vec<Param>, value: Param| {
        params.push(value);
        format!("${}", params.len())
    };
    if let Some(t) = query.session_type {
        let at = arg(&mut params, Box::new(t.as_str().to_string()));
        conditions.push(format!("session_type = {at}"));
    }
    if let Some(c) = &query.component_id {
        let at = arg(&mut params, Box::new(c.clone()));
        conditions.push(format!("component_id = {at}"));
    }
    if let Some(u) = &query.user_id {
        let at = arg(&mut params, Box::new(u.clone()));
        conditions.push(format!("user_id = {at}"));
    }
    if let Some(n) = &query.session_name {
        // ASCII case folding, as SQLite's.
        let at = arg(&mut params, Box::new(n.to_ascii_lowercase()));
        conditions.push(format!(
            "strpos(translate({DISPLAY_NAME}, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', \
             'abcdefghijklmnopqrstuvwxyz'), {at}) > 0"
        ));
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };
    let direction = if query.descending { "DESC" } else { "ASC" };
    let key: &str = match query.sort_by {
        SessionSort::CreatedAt => "created_at",
        SessionSort::UpdatedAt => "updated_at",
        // PostgreSQL takes a select alias alone in ORDER BY, not inside an expression.
        SessionSort::SessionName => &format!(
            "translate({DISPLAY_NAME}, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', \
             'abcdefghijklmnopqrstuvwxyz') COLLATE \"C\""
        ),
    };
    let limit = i64::from(query.limit.max(1));
    let offset = i64::from(query.page.max(1) - 1).saturating_mul(limit);
    let total: i64 = tx
        .query_one(
            &format!("SELECT COUNT(*) FROM sessions{filter}"),
            &refs(&params),
        )
        .await?
        .get(0);
    let limit_at = arg(&mut params, Box::new(limit));
    let offset_at = arg(&mut params, Box::new(offset));
    let rows = tx
        .query(
            &format!(
                "SELECT {SESSION_COLUMNS}, {DISPLAY_NAME} AS display_name FROM sessions{filter} \
                 ORDER BY {key} {direction}, seq {direction} LIMIT {limit_at} OFFSET {offset_at}"
            ),
            &refs(&params),
        )
        .await?;
    let mut summaries = Vec::with_capacity(rows.len());
    for row in rows {
        summaries.push(summarize(tx, session_at(&row, 0)?, row.get(10)).await?);
    }
    Ok((summaries, to_u64(total)))
}

pub(super) async fn list_sessions(
    client: &mut Client,
    query: &SessionQuery,
) -> StoreResult<(Vec<SessionSummary>, u64)> {
    let tx = snapshot(client).await?;
    let page = list_sessions_in(&tx, query).await?;
    tx.commit().await?;
    Ok(page)
}

pub(super) async fn list_sessions_with_runs(
    client: &mut Client,
    query: &SessionQuery,
) -> StoreResult<(Vec<SessionWithRuns>, u64)> {
    let tx = snapshot(client).await?;
    let (summaries, total) = list_sessions_in(&tx, query).await?;
    let mut out = Vec::with_capacity(summaries.len());
    for summary in summaries {
        let runs = runs_filtered(&tx, &summary.session.session_id, &[], None, None).await?;
        out.push((summary, runs));
    }
    tx.commit().await?;
    Ok((out, total))
}

// ----- runs -----

struct RunColumns {
    run: String,
    events: String,
    tokens: (i64, i64, i64),
}

fn run_columns(run: &impl RunRecord, events: &[Value]) -> StoreResult<RunColumns> {
    let (input, output, total) = run.tokens();
    let (run, events) = pack(run, events)?;
    Ok(RunColumns {
        run,
        events,
        tokens: (to_i64(input), to_i64(output), to_i64(total)),
    })
}

fn stored_at(row: &tokio_postgres::Row) -> StoreResult<Option<StoredRun>> {
    let run: String = row.get(0);
    let events: String = row.get(1);
    let run_id: String = row.get(4);
    let session_type = kind(row.get(3))?;
    Ok(
        unpack(&run, &events, &run_id).map(|(run, events)| StoredRun {
            run,
            session_type,
            events,
            updated_at: row.get(2),
        }),
    )
}

pub(super) async fn begin_run(
    client: &mut Client,
    session: &Session,
    run: &AnyRun,
    session_type: Kind,
    owner: Option<&str>,
) -> StoreResult<()> {
    if run.session_id() != session.session_id {
        return Err(StoreError::InvalidRun(format!(
            "run '{}' belongs to session '{}', not '{}'",
            run.run_id(),
            run.session_id(),
            session.session_id
        )));
    }
    let json = session_json(session)?;
    let columns = run_columns(run, &[])?;
    let now = now_secs();
    let tx = client.transaction().await?;
    let stmt = tx
        .prepare_cached(&format!(
            "INSERT INTO sessions ({SESSION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, \
             $9, $10) ON CONFLICT (session_id) DO UPDATE \
             SET updated_at = GREATEST(sessions.updated_at, $11)"
        ))
        .await?;
    tx.execute(
        &stmt,
        &[
            &session.session_id,
            &session_type.as_str(),
            &session.component_id,
            &session.user_id,
            &session.session_name,
            &json.state,
            &json.metadata,
            &json.data,
            &session.created_at,
            &session.updated_at,
            &now,
        ],
    )
    .await?;
    let stmt = tx
        .prepare_cached(
            "INSERT INTO runs (run_id, session_id, parent_run_id, component_id, user_id, status, \
             input, content, run, events, input_tokens, output_tokens, total_tokens, \
             created_at, updated_at, owner) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8, $9, $10, $11, $12, $13, $14, $15) \
             ON CONFLICT (run_id) DO NOTHING",
        )
        .await?;
    let inserted = tx
        .execute(
            &stmt,
            &[
                &run.run_id(),
                &run.session_id(),
                &run.parent_run_id(),
                &run.component_id(),
                &run.user_id(),
                &run.status().as_str(),
                &run.input_content(),
                &columns.run,
                &columns.events,
                &columns.tokens.0,
                &columns.tokens.1,
                &columns.tokens.2,
                &run.created_at(),
                &now,
                &owner,
            ],
        )
        .await?;
    if inserted == 0 {
        return Err(StoreError::RunExists(run.run_id().to_string()));
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn finish_run(
    client: &mut Client,
    run: &AnyRun,
    events: &[Value],
    session_state: &Value,
    owner: Option<&str>,
) -> StoreResult<()> {
    let columns = run_columns(run, events)?;
    let state = serde_json::to_string(session_state)?;
    let now = now_secs();
    let tx = client.transaction().await?;
    // The session's row first, then the run's: the order beginning a run and deleting a
    // session take them in, so two writers never wait for each other in a circle. (Both
    // are undone below when the run is not this process's live run.)
    let stmt = tx
        .prepare_cached(
            "UPDATE sessions SET session_state = $2, updated_at = GREATEST(updated_at, $3) \
             WHERE session_id = $1",
        )
        .await?;
    tx.execute(&stmt, &[&run.session_id(), &state, &now])
        .await?;
    let stmt = tx
        .prepare_cached(
            "UPDATE runs SET status = $2, content = NULL, run = $3, events = $4, \
             input_tokens = $5, output_tokens = $6, total_tokens = $7, \
             updated_at = GREATEST(updated_at, $8), owner = NULL, cancel_requested = FALSE \
             WHERE run_id = $1 AND status IN ('RUNNING', 'PENDING') \
             AND (owner IS NULL OR owner = $9)",
        )
        .await?;
    let updated = tx
        .execute(
            &stmt,
            &[
                &run.run_id(),
                &run.status().as_str(),
                &columns.run,
                &columns.events,
                &columns.tokens.0,
                &columns.tokens.1,
                &columns.tokens.2,
                &now,
                &owner,
            ],
        )
        .await?;
    if updated == 0 {
        let found = tx
            .query_opt(
                "SELECT status FROM runs WHERE run_id = $1",
                &[&run.run_id()],
            )
            .await?;
        return Err(match found {
            None => StoreError::RunNotFound(run.run_id().to_string()),
            Some(row) => StoreError::NotLive {
                run_id: run.run_id().to_string(),
                status: status(row.get(0))?,
            },
        });
    }
    // Followers elsewhere look at the run again.
    notify(&tx, JOURNAL_CHANNEL, run.run_id()).await?;
    tx.commit().await?;
    Ok(())
}

/// Sets `status` (and, when given, `cancellation_stage`) in a run's object text, keeping
/// its keys in order.
fn with_status(run: &str, status: RunStatus, stage: Option<Option<&str>>) -> StoreResult<String> {
    let mut object: Value = crate::store::codec::decode(run)?;
    if let Some(map) = object.as_object_mut() {
        map.insert("status".into(), Value::String(status.as_str().into()));
        if let Some(stage) = stage {
            map.insert(
                "cancellation_stage".into(),
                stage.map_or(Value::Null, |s| Value::String(s.into())),
            );
        }
    }
    Ok(serde_json::to_string(&object)?)
}

pub(super) async fn update_run_status(
    client: &mut Client,
    id: &str,
    status: RunStatus,
) -> StoreResult<bool> {
    let tx = client.transaction().await?;
    let Some(row) = tx
        .query_opt("SELECT run FROM runs WHERE run_id = $1 FOR UPDATE", &[&id])
        .await?
    else {
        return Ok(false);
    };
    let run = with_status(row.get(0), status, None)?;
    tx.execute(
        "UPDATE runs SET status = $2, run = $3, updated_at = GREATEST(updated_at, $4) \
         WHERE run_id = $1",
        &[&id, &status.as_str(), &run, &now_secs()],
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn transition_run(
    client: &mut Client,
    id: &str,
    from: RunStatus,
    to: RunStatus,
    stage: Option<&str>,
    owner: Option<&str>,
) -> StoreResult<bool> {
    let tx = client.transaction().await?;
    let Some(row) = tx
        .query_opt(
            "SELECT run FROM runs WHERE run_id = $1 AND status = $2 FOR UPDATE",
            &[&id, &from.as_str()],
        )
        .await?
    else {
        return Ok(false);
    };
    let run = with_status(row.get(0), to, Some(stage))?;
    // A run taken up again is this process's; one that stops is nobody's.
    let owner = if to == RunStatus::Running {
        owner
    } else {
        None
    };
    tx.execute(
        "UPDATE runs SET status = $2, run = $3, updated_at = GREATEST(updated_at, $4), \
         owner = $5, cancel_requested = FALSE WHERE run_id = $1",
        &[&id, &to.as_str(), &run, &now_secs(), &owner],
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn get_run(c: &impl GenericClient, id: &str) -> StoreResult<Option<StoredRun>> {
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {RUN_COLUMNS} FROM runs r JOIN sessions s ON s.session_id = r.session_id \
             WHERE r.run_id = $1"
        ))
        .await?;
    match c.query_opt(&stmt, &[&id]).await? {
        Some(row) => stored_at(&row),
        None => Ok(None),
    }
}

async fn runs_filtered(
    c: &impl GenericClient,
    session_id: &str,
    statuses: &[RunStatus],
    after: Option<i64>,
    before: Option<i64>,
) -> StoreResult<Vec<StoredRun>> {
    let statuses: Vec<&str> = statuses.iter().map(|s| s.as_str()).collect();
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {RUN_COLUMNS} FROM runs r JOIN sessions s ON s.session_id = r.session_id \
             WHERE r.session_id = $1 AND (cardinality($2::TEXT[]) = 0 OR r.status = ANY($2)) \
             AND ($3::BIGINT IS NULL OR r.created_at >= $3) \
             AND ($4::BIGINT IS NULL OR r.created_at <= $4) ORDER BY r.seq"
        ))
        .await?;
    let rows = c
        .query(&stmt, &[&session_id, &statuses, &after, &before])
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        if let Some(run) = stored_at(&row)? {
            out.push(run);
        }
    }
    Ok(out)
}

pub(super) async fn list_runs_filtered(
    c: &impl GenericClient,
    session_id: &str,
    statuses: &[RunStatus],
    after: Option<i64>,
    before: Option<i64>,
) -> StoreResult<Vec<StoredRun>> {
    runs_filtered(c, session_id, statuses, after, before).await
}

pub(super) async fn session_with_runs(
    client: &mut Client,
    id: &str,
) -> StoreResult<Option<(Session, Vec<StoredRun>)>> {
    let tx = snapshot(client).await?;
    let Some(session) = get_session(&tx, id).await? else {
        return Ok(None);
    };
    let runs = runs_filtered(&tx, id, &[], None, None).await?;
    tx.commit().await?;
    Ok(Some((session, runs)))
}

/// `column` of the last `num_runs` completed top-level runs of a session, oldest first.
async fn history_rows(
    c: &impl GenericClient,
    column: &str,
    session_id: &str,
    num_runs: usize,
    exclude: Option<&str>,
) -> StoreResult<Vec<tokio_postgres::Row>> {
    if num_runs == 0 {
        return Ok(Vec::new());
    }
    let limit = i64::try_from(num_runs).unwrap_or(i64::MAX);
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {column} FROM runs WHERE session_id = $1 AND parent_run_id IS NULL \
             AND status = 'COMPLETED' AND run_id IS DISTINCT FROM $2 \
             ORDER BY seq DESC LIMIT $3"
        ))
        .await?;
    let mut rows = c.query(&stmt, &[&session_id, &exclude, &limit]).await?;
    rows.reverse();
    Ok(rows)
}

pub(super) async fn history(
    c: &impl GenericClient,
    session_id: &str,
    num_runs: usize,
    exclude: Option<&str>,
) -> StoreResult<Vec<AnyRun>> {
    let rows = history_rows(c, "run", session_id, num_runs, exclude).await?;
    Ok(rows
        .iter()
        .filter_map(|row| unpack(row.get(0), "[]", session_id).map(|(run, _)| run))
        .collect())
}

pub(super) async fn history_fetch(
    client: &mut Client,
    session_id: &str,
    num_runs: usize,
    exclude: Option<&str>,
    known: &[i64],
) -> StoreResult<HistoryFetch> {
    let tx = snapshot(client).await?;
    let seqs: Vec<i64> = history_rows(&tx, "seq", session_id, num_runs, exclude)
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let missing: Vec<i64> = seqs
        .iter()
        .copied()
        .filter(|s| known.binary_search(s).is_err())
        .collect();
    let mut fetched = Vec::with_capacity(missing.len());
    if !missing.is_empty() {
        let stmt = tx
            .prepare_cached(
                "SELECT seq, COALESCE((run::json -> 'messages')::TEXT, '[]') FROM runs \
                 WHERE seq = ANY($1) AND session_id = $2",
            )
            .await?;
        let rows = tx.query(&stmt, &[&missing, &session_id]).await?;
        let mut by_seq: HashMap<i64, String> =
            rows.iter().map(|row| (row.get(0), row.get(1))).collect();
        for seq in missing {
            let Some(text) = by_seq.remove(&seq) else {
                continue;
            };
            let Some(messages) =
                decode_or_report::<Vec<Message>>(&text, "a run of session", session_id)
            else {
                continue;
            };
            fetched.push((
                seq,
                messages
                    .into_iter()
                    .filter(|m| m.role != crate::run::Role::System && !m.from_history)
                    .collect(),
            ));
        }
    }
    tx.commit().await?;
    Ok((seqs, fetched))
}

// ----- processes, ownership, journals -----

const PROCESS_COLUMNS: &str = "p.process_id, p.kind, p.pid, p.host, p.address, p.started_at, \
     p.heartbeat_at";

fn process_at(row: &tokio_postgres::Row, at: usize) -> Option<ProcessInfo> {
    let id: Option<String> = row.get(at);
    Some(ProcessInfo {
        process_id: id?,
        kind: row.get(at + 1),
        pid: u32::try_from(row.get::<_, i64>(at + 2)).unwrap_or(0),
        host: row.get(at + 3),
        address: row.get(at + 4),
        started_at: row.get(at + 5),
        heartbeat_at: row.get(at + 6),
    })
}

/// The database's clock, in fractional Unix seconds: every heartbeat and every silence
/// is measured with it, so the clocks of the machines running agentos never matter.
const DB_NOW: &str = "EXTRACT(EPOCH FROM now())::DOUBLE PRECISION";

pub(super) async fn register_process(
    c: &impl GenericClient,
    info: &ProcessInfo,
) -> StoreResult<()> {
    c.execute(
        &format!(
            "INSERT INTO processes (process_id, kind, pid, host, address, started_at, \
             heartbeat_at) VALUES ($1, $2, $3, $4, $5, $6, {DB_NOW}) \
             ON CONFLICT (process_id) DO UPDATE \
             SET heartbeat_at = EXCLUDED.heartbeat_at, address = EXCLUDED.address"
        ),
        &[
            &info.process_id,
            &info.kind,
            &i64::from(info.pid),
            &info.host,
            &info.address,
            &info.started_at,
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn heartbeat(c: &impl GenericClient, id: &str) -> StoreResult<bool> {
    let stmt = c
        .prepare_cached(&format!(
            "UPDATE processes SET heartbeat_at = {DB_NOW} WHERE process_id = $1"
        ))
        .await?;
    Ok(c.execute(&stmt, &[&id]).await? > 0)
}

pub(super) async fn forget_processes(
    c: &impl GenericClient,
    ids: &[String],
    silent_for: Option<Duration>,
) -> StoreResult<()> {
    let silent_for = silent_for.map(|t| t.as_secs_f64());
    c.execute(
        &format!(
            "DELETE FROM processes WHERE process_id = ANY($1) \
             AND ($2::DOUBLE PRECISION IS NULL OR heartbeat_at < {DB_NOW} - $2)"
        ),
        &[&ids, &silent_for],
    )
    .await?;
    Ok(())
}

async fn journal_lines(
    c: &impl GenericClient,
    run_id: &str,
    from: u64,
) -> StoreResult<Vec<(u64, String)>> {
    let from = to_i64(from);
    let stmt = c
        .prepare_cached(
            "SELECT first_seq, events FROM run_journal \
             WHERE run_id = $1 AND first_seq + count > $2 ORDER BY first_seq",
        )
        .await?;
    let rows = c.query(&stmt, &[&run_id, &from]).await?;
    let mut out = Vec::new();
    for row in rows {
        let first: i64 = row.get(0);
        let events: String = row.get(1);
        for (i, line) in events.lines().enumerate() {
            let seq = first + i as i64;
            if seq >= from {
                out.push((to_u64(seq), line.to_string()));
            }
        }
    }
    Ok(out)
}

pub(super) async fn orphans(
    client: &mut Client,
    alive: &str,
    timeout: Duration,
) -> StoreResult<(Vec<String>, Vec<Orphan>)> {
    let tx = snapshot(client).await?;
    // One cutoff for the whole snapshot, on the database's clock.
    let cutoff: f64 = tx
        .query_one(&format!("SELECT {DB_NOW} - $1"), &[&timeout.as_secs_f64()])
        .await?
        .get(0);
    let dead: Vec<String> = tx
        .query(
            "SELECT process_id FROM processes WHERE heartbeat_at < $1 AND process_id != $2",
            &[&cutoff, &alive],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let rows = tx
        .query(
            &format!(
                "SELECT {RUN_COLUMNS}, r.owner, r.parent_run_id, {PROCESS_COLUMNS} FROM runs r \
                 JOIN sessions s ON s.session_id = r.session_id \
                 LEFT JOIN processes p ON p.process_id = r.owner \
                 WHERE r.status IN ('RUNNING', 'PENDING') AND ( \
                   (r.owner IS NULL AND r.updated_at < $2) \
                   OR (r.owner IS NOT NULL AND r.owner != $1 \
                       AND (p.process_id IS NULL OR p.heartbeat_at < $3)))"
            ),
            &[&alive, &(cutoff as i64), &cutoff],
        )
        .await?;
    let parents: HashMap<String, Option<String>> = rows
        .iter()
        .map(|row| (row.get::<_, String>(4), row.get::<_, Option<String>>(6)))
        .collect();
    let root_of = |id: &str| {
        let mut current = id.to_string();
        for _ in 0..64 {
            match parents.get(&current) {
                Some(Some(parent)) if parents.contains_key(parent) => current.clone_from(parent),
                _ => break,
            }
        }
        current
    };
    let mut orphans = Vec::new();
    for row in &rows {
        let run_id: String = row.get(4);
        let Some(run) = stored_at(row)? else {
            continue;
        };
        let journal = journal_lines(&tx, &root_of(&run_id), 0)
            .await?
            .into_iter()
            .map(|(_, line)| line)
            .collect();
        orphans.push(Orphan {
            run,
            owner_id: row.get(5),
            owner: process_at(row, 7),
            journal,
        });
    }
    tx.commit().await?;
    Ok((dead, orphans))
}

pub(super) async fn settle_orphan(
    client: &mut Client,
    run: &StoredRun,
    events: &[Value],
    owner: Option<&str>,
    silent_for: Duration,
) -> StoreResult<bool> {
    let columns = run_columns(&run.run, events)?;
    let tx = client.transaction().await?;
    let changed = tx
        .execute(
            &format!(
                "UPDATE runs SET status = $2, content = NULL, run = $3, events = $4, \
                 owner = NULL, cancel_requested = FALSE, updated_at = GREATEST(updated_at, $5) \
                 WHERE run_id = $1 AND status IN ('RUNNING', 'PENDING') \
                 AND owner IS NOT DISTINCT FROM $6 \
                 AND NOT EXISTS (SELECT 1 FROM processes \
                                 WHERE process_id = $6 AND heartbeat_at >= {DB_NOW} - $7)"
            ),
            &[
                &run.run.run_id(),
                &run.run.status().as_str(),
                &columns.run,
                &columns.events,
                &now_secs(),
                &owner,
                &silent_for.as_secs_f64(),
            ],
        )
        .await?;
    if changed > 0 {
        notify(&tx, JOURNAL_CHANNEL, run.run.run_id()).await?;
    }
    tx.commit().await?;
    Ok(changed > 0)
}

/// Marks the run's queue row first (a claimer's `dequeue_run` then waits for this
/// transaction and reads the mark), then looks at the run: a queued run whose row is gone
/// has begun, and its `runs` row is there for the second statement to see.
pub(super) async fn request_cancel(client: &mut Client, id: &str) -> StoreResult<CancelOutcome> {
    let tx = client.transaction().await?;
    let queued = tx
        .execute(
            "UPDATE run_queue SET cancel_requested = TRUE WHERE run_id = $1",
            &[&id],
        )
        .await?;
    let found = tx
        .query_opt(
            "SELECT status, owner FROM runs WHERE run_id = $1 FOR UPDATE",
            &[&id],
        )
        .await?;
    let outcome = match found {
        None if queued > 0 => CancelOutcome::Queued,
        None => CancelOutcome::Unknown,
        Some(row) => match status(row.get(0))? {
            live @ (RunStatus::Running | RunStatus::Pending) => {
                tx.execute(
                    "UPDATE runs SET cancel_requested = TRUE WHERE run_id = $1",
                    &[&id],
                )
                .await?;
                notify(&tx, CANCEL_CHANNEL, id).await?;
                CancelOutcome::Requested {
                    status: live,
                    owner: row.get(1),
                }
            }
            ended => CancelOutcome::Ended(ended),
        },
    };
    tx.commit().await?;
    Ok(outcome)
}

pub(super) async fn cancel_requests(
    c: &impl GenericClient,
    owner: &str,
) -> StoreResult<Vec<String>> {
    let stmt = c
        .prepare_cached("SELECT run_id FROM runs WHERE owner = $1 AND cancel_requested")
        .await?;
    Ok(c.query(&stmt, &[&owner])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect())
}

/// Every run, newest first; a member run's kind is its own (an agent, or a team whose
/// run object names its `team_id`), not its session's.
pub(super) async fn list_all_runs(
    c: &impl GenericClient,
    query: &RunQuery,
) -> StoreResult<Vec<RunListing>> {
    let statuses: Vec<&str> = query.statuses.iter().map(|s| s.as_str()).collect();
    let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
    let rows = c
        .query(
            &format!(
                "SELECT r.run_id, CASE WHEN r.parent_run_id IS NULL THEN s.session_type \
                 WHEN (r.run::jsonb ->> 'team_id') IS NOT NULL THEN 'team' ELSE 'agent' END, \
                 r.component_id, r.session_id, r.parent_run_id, \
                 r.status, r.created_at, r.updated_at, r.owner, {PROCESS_COLUMNS} \
                 FROM runs r JOIN sessions s ON s.session_id = r.session_id \
                 LEFT JOIN processes p ON p.process_id = r.owner \
                 WHERE (cardinality($1::TEXT[]) = 0 OR r.status = ANY($1)) \
                 AND ($2 OR r.parent_run_id IS NULL) ORDER BY r.seq DESC LIMIT $3"
            ),
            &[&statuses, &query.include_members, &limit],
        )
        .await?;
    let runs = rows
        .iter()
        .map(|row| {
            Ok(RunListing {
                run_id: row.get(0),
                kind: kind(row.get(1))?,
                component_id: row.get(2),
                session_id: row.get(3),
                parent_run_id: row.get(4),
                status: status(row.get(5))?,
                created_at: row.get(6),
                updated_at: row.get(7),
                owner_id: row.get(8),
                owner: process_at(row, 9),
                queued: false,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    if !(query.statuses.is_empty() || query.statuses.contains(&RunStatus::Pending)) {
        return Ok(runs);
    }
    let queued = c
        .query(
            "SELECT run_id, kind, component_id, session_id, accepted_at FROM run_queue \
             ORDER BY accepted_at DESC LIMIT $1",
            &[&limit],
        )
        .await?
        .iter()
        .map(|row| {
            let at: f64 = row.get(4);
            Ok(RunListing {
                run_id: row.get(0),
                kind: kind(row.get(1))?,
                component_id: row.get(2),
                session_id: row.get(3),
                parent_run_id: None,
                status: RunStatus::Pending,
                created_at: at as i64,
                updated_at: at as i64,
                owner_id: None,
                owner: None,
                queued: true,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(RunListing::merge(runs, queued, query.limit))
}

pub(super) async fn append_journal(
    client: &mut Client,
    batches: &[JournalBatch],
) -> StoreResult<()> {
    let tx = client.transaction().await?;
    let stmt = tx
        .prepare_cached(
            "INSERT INTO run_journal (run_id, first_seq, count, events) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (run_id, first_seq) DO NOTHING",
        )
        .await?;
    for batch in batches {
        tx.execute(
            &stmt,
            &[
                &batch.run_id,
                &to_i64(batch.first_seq),
                &to_i64(batch.count),
                &batch.events,
            ],
        )
        .await?;
    }
    let mut notified: Vec<&str> = Vec::new();
    for batch in batches {
        if !notified.contains(&batch.run_id.as_str()) {
            notify(&tx, JOURNAL_CHANNEL, &batch.run_id).await?;
            notified.push(&batch.run_id);
        }
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn reset_journal(c: &impl GenericClient, run_id: &str) -> StoreResult<()> {
    c.execute("DELETE FROM run_journal WHERE run_id = $1", &[&run_id])
        .await?;
    Ok(())
}

pub(super) async fn read_journal(
    client: &mut Client,
    run_id: &str,
    from: u64,
) -> StoreResult<JournalRead> {
    let tx = snapshot(client).await?;
    let stmt = tx
        .prepare_cached("SELECT status FROM runs WHERE run_id = $1")
        .await?;
    let found = tx
        .query_opt(&stmt, &[&run_id])
        .await?
        .map(|row| status(row.get(0)))
        .transpose()?;
    let stmt = tx
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM run_journal WHERE run_id = $1)")
        .await?;
    let journaled: bool = tx.query_one(&stmt, &[&run_id]).await?.get(0);
    let events = journal_lines(&tx, run_id, from).await?;
    tx.commit().await?;
    Ok(JournalRead {
        events,
        journaled,
        status: found,
    })
}

pub(super) async fn clean_journals(c: &impl GenericClient, cutoff: i64) -> StoreResult<u64> {
    Ok(c.execute(
        "DELETE FROM run_journal j WHERE NOT EXISTS ( \
           SELECT 1 FROM runs r WHERE r.run_id = j.run_id \
           AND (r.status IN ('RUNNING', 'PENDING') OR r.updated_at >= $1))",
        &[&cutoff],
    )
    .await?)
}

// ----- the queue of background runs -----

const QUEUE_COLUMNS: &str =
    "run_id, kind, component_id, session_id, request, accepted_by, accepted_at";

fn queued_at(row: &tokio_postgres::Row) -> StoreResult<QueuedRun> {
    let request: String = row.get(4);
    Ok(QueuedRun {
        run_id: row.get(0),
        kind: kind(row.get(1))?,
        component_id: row.get(2),
        session_id: row.get(3),
        request: serde_json::from_str(&request)?,
        accepted_by: row.get(5),
        accepted_at: row.get(6),
    })
}

/// Queues a run; `claimed`: taken up at once by the process that accepted it, so the
/// other servers are not told of it (they would only find it taken).
pub(super) async fn enqueue_run(
    client: &mut Client,
    run: &QueuedRun,
    claimed: bool,
) -> StoreResult<()> {
    let request = serde_json::to_string(&run.request)?;
    let claimed_by = if claimed {
        run.accepted_by.clone()
    } else {
        None
    };
    let tx = client.transaction().await?;
    tx.execute(
        &format!(
            "INSERT INTO run_queue ({QUEUE_COLUMNS}, claimed_by, claimed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, CASE WHEN $8::TEXT IS NULL THEN NULL \
             ELSE {DB_NOW} END)"
        ),
        &[
            &run.run_id,
            &run.kind.as_str(),
            &run.component_id,
            &run.session_id,
            &request,
            &run.accepted_by,
            &run.accepted_at,
            &claimed_by,
        ],
    )
    .await?;
    if claimed_by.is_none() {
        notify(&tx, QUEUE_CHANNEL, &run.run_id).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Claims with `FOR UPDATE SKIP LOCKED`: servers claiming at once each take a different
/// run, none waiting for another's.
pub(super) async fn claim_run(
    c: &impl GenericClient,
    claimer: &str,
    run_id: Option<&str>,
    timeout: Duration,
) -> StoreResult<Option<QueuedRun>> {
    let stmt = c
        .prepare_cached(&format!(
            "UPDATE run_queue SET claimed_by = $1, claimed_at = {DB_NOW} WHERE run_id = ( \
               SELECT q.run_id FROM run_queue q \
               WHERE ($2::TEXT IS NULL OR q.run_id = $2) AND (q.claimed_by IS NULL \
                 OR (q.claimed_by != $1 AND NOT EXISTS (SELECT 1 FROM processes p \
                     WHERE p.process_id = q.claimed_by AND p.heartbeat_at >= {DB_NOW} - $3))) \
               ORDER BY q.accepted_at LIMIT 1 FOR UPDATE SKIP LOCKED) \
             RETURNING {QUEUE_COLUMNS}"
        ))
        .await?;
    c.query_opt(&stmt, &[&claimer, &run_id, &timeout.as_secs_f64()])
        .await?
        .map(|row| queued_at(&row))
        .transpose()
}

pub(super) async fn release_run(client: &mut Client, run_id: &str) -> StoreResult<()> {
    let tx = client.transaction().await?;
    tx.execute(
        "UPDATE run_queue SET claimed_by = NULL, claimed_at = NULL WHERE run_id = $1",
        &[&run_id],
    )
    .await?;
    notify(&tx, QUEUE_CHANNEL, run_id).await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn dequeue_run(c: &impl GenericClient, run_id: &str) -> StoreResult<bool> {
    let stmt = c
        .prepare_cached("DELETE FROM run_queue WHERE run_id = $1 RETURNING cancel_requested")
        .await?;
    Ok(c.query_opt(&stmt, &[&run_id])
        .await?
        .is_some_and(|row| row.get::<_, bool>(0)))
}

pub(super) async fn queued_run(
    c: &impl GenericClient,
    run_id: &str,
) -> StoreResult<Option<QueuedRun>> {
    let stmt = c
        .prepare_cached(&format!(
            "SELECT {QUEUE_COLUMNS} FROM run_queue WHERE run_id = $1"
        ))
        .await?;
    c.query_opt(&stmt, &[&run_id])
        .await?
        .map(|row| queued_at(&row))
        .transpose()
}
