//! `agentos runs list`, `agentos runs follow` and `agentos cancel`: runs across every
//! process sharing the store. Each first settles the runs of processes that stopped (see
//! `presence`), so what they show is current.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{Value, json};

use super::Context;
use crate::cli::{CancelArgs, RunsCommand, RunsFollowArgs, RunsListArgs};
use crate::error::{EXIT_CANCELLED, EXIT_FAILURE, EXIT_PAUSED, SilentExit, UsageError};
use crate::event::EventKind;
use crate::presence::{self, Settings, follow};
use crate::run::{RunRecord, RunStatus};
use crate::server::schemas::iso8601;
use crate::store::{CancelOutcome, RunQuery, Store};

pub fn run(cmd: RunsCommand, ctx: &Context) -> anyhow::Result<()> {
    let store = ctx.existing_store()?;
    super::block_on(async move {
        settle(&store).await?;
        match cmd {
            RunsCommand::List(args) => list(&store, &args).await,
            RunsCommand::Follow(args) => follow_run(&store, &args).await,
        }
    })
}

pub fn cancel(args: CancelArgs, ctx: &Context) -> anyhow::Result<()> {
    if !(args.wait_secs.is_finite() && args.wait_secs >= 0.0) {
        return Err(UsageError("--wait-secs must be a number of seconds, 0 or more".into()).into());
    }
    let store = ctx.existing_store()?;
    super::block_on(async move {
        settle(&store).await?;
        cancel_run(&store, &args).await
    })
}

/// Settles the runs of processes that stopped, as any process does at start-up.
async fn settle(store: &Store) -> anyhow::Result<()> {
    let settings = Settings::from_env().map_err(|e| anyhow::Error::new(UsageError(e)))?;
    presence::settle_orphans(store, "", settings.owner_timeout)
        .await
        .context("could not settle the runs of stopped processes")?;
    Ok(())
}

fn fail(message: String) -> anyhow::Error {
    eprintln!("agentos: {message}");
    SilentExit(EXIT_FAILURE).into()
}

async fn list(store: &Store, args: &RunsListArgs) -> anyhow::Result<()> {
    let statuses = args
        .status
        .iter()
        .map(|s| {
            RunStatus::parse(s).ok_or_else(|| {
                UsageError(format!(
                    "--status {s}: expected running, pending, completed, paused, cancelled or \
                     error"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let runs = store
        .list_all_runs(RunQuery {
            statuses,
            include_members: args.all,
            limit: args.limit as usize,
        })
        .await?;
    let mut out = io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &runs)?;
        writeln!(out)?;
        return Ok(());
    }
    if runs.is_empty() {
        writeln!(out, "no runs")?;
        return Ok(());
    }
    let component_width = runs
        .iter()
        .map(|r| r.component_id.len())
        .max()
        .unwrap_or(0)
        .max("COMPONENT".len());
    writeln!(
        out,
        "{:36}  {:8}  {:component_width$}  {:9}  {:20}  OWNER",
        "RUN", "KIND", "COMPONENT", "STATUS", "STARTED"
    )?;
    for run in &runs {
        let owner = match (&run.owner, &run.owner_id) {
            (Some(process), _) => process.describe(),
            (None, Some(_)) => "a process that stopped".to_string(),
            (None, None) if run.queued => "queued, waiting for a process".to_string(),
            (None, None) => String::new(),
        };
        let line = format!(
            "{:36}  {:8}  {:component_width$}  {:9}  {:20}  {owner}",
            run.run_id,
            run.kind.as_str(),
            run.component_id,
            run.status.as_str(),
            iso8601(run.created_at),
        );
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

async fn follow_run(store: &Store, args: &RunsFollowArgs) -> anyhow::Result<()> {
    let run_id = args.run_id.as_str();
    let Some(stored) = store.get_run(run_id).await? else {
        // A background run waiting in the queue is followed from when it begins.
        if store.queued_run(run_id).await?.is_some() {
            return follow_events(store, args).await;
        }
        return Err(fail(format!("no run {run_id}")));
    };
    let live = matches!(stored.run.status(), RunStatus::Running | RunStatus::Pending);
    if !live && !args.jsonl {
        let from = args.after.map_or(0, |n| n.saturating_add(1));
        if !follow::start(store, run_id, from).await?.journaled {
            // Ended without a journal: its stored events hold no content deltas, its
            // answer is what it stored.
            let text = stored.run.content_text();
            if !text.is_empty() {
                writeln!(io::stdout(), "{text}")?;
            }
            return exit_for(store, run_id).await;
        }
    }
    follow_events(store, args).await
}

/// Writes the followed run's events (`--jsonl`) or its answer text as they come, then
/// exits as the run ended.
async fn follow_events(store: &Store, args: &RunsFollowArgs) -> anyhow::Result<()> {
    let run_id = args.run_id.clone();
    let from = args.after.map_or(0, |n| n.saturating_add(1));
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let following = tokio::spawn(follow::follow(store.clone(), run_id.clone(), from, tx));
    let mut out = io::stdout();
    let mut at_line_start = true;
    let mut terminal = None;
    while let Some((seq, mut event)) = rx.recv().await {
        let written = if args.jsonl {
            event["event_index"] = json!(seq);
            writeln!(out, "{event}").and_then(|()| out.flush())
        } else {
            match own_text(&event, &run_id) {
                Some(text) => {
                    at_line_start = text.ends_with('\n');
                    out.write_all(text.as_bytes()).and_then(|()| out.flush())
                }
                None => Ok(()),
            }
        };
        if let Err(err) = written {
            if err.kind() == io::ErrorKind::BrokenPipe {
                return Ok(());
            }
            return Err(err).context("could not write to stdout");
        }
        if presence::is_terminal(&event, &run_id) {
            terminal = Some(event);
        }
    }
    if !args.jsonl && !at_line_start {
        writeln!(out)?;
    }
    following.await.context("the follower stopped")??;
    match terminal {
        // How the run ended, as its last event says (its stored row may lag behind).
        Some(event) => exit_for_event(&event),
        None => exit_for(store, &run_id).await,
    }
}

/// The exit status for a run's terminal event, as `agentos run` has it.
fn exit_for_event(event: &Value) -> anyhow::Result<()> {
    match EventKind::of(event) {
        Some(EventKind::RunCancelled | EventKind::WorkflowCancelled) => {
            Err(SilentExit(EXIT_CANCELLED).into())
        }
        Some(EventKind::RunPaused) => Err(SilentExit(EXIT_PAUSED).into()),
        Some(EventKind::RunError | EventKind::WorkflowError) => {
            let message = event["content"]
                .as_str()
                .or_else(|| event["error"].as_str())
                .unwrap_or_default();
            Err(fail(format!("run failed: {message}")))
        }
        _ => Ok(()),
    }
}

/// The answer text an event adds to the followed run: its own content deltas, or a
/// workflow's final content.
fn own_text(event: &Value, run_id: &str) -> Option<String> {
    if event["run_id"] != run_id {
        return None;
    }
    let content = &event["content"];
    match EventKind::of(event)? {
        EventKind::RunContent | EventKind::WorkflowCompleted => match content {
            Value::String(text) if !text.is_empty() => Some(text.clone()),
            Value::Null | Value::String(_) => None,
            other => serde_json::to_string_pretty(other).ok(),
        },
        _ => None,
    }
}

/// The exit status for how the run ended, as `agentos run` has it.
async fn exit_for(store: &Store, run_id: &str) -> anyhow::Result<()> {
    let status = store
        .get_run(run_id)
        .await?
        .map(|s| (s.run.status(), s.run.content_text()));
    match status {
        Some((RunStatus::Completed, _)) => Ok(()),
        Some((RunStatus::Cancelled, _)) => Err(SilentExit(EXIT_CANCELLED).into()),
        Some((RunStatus::Paused, _)) => Err(SilentExit(EXIT_PAUSED).into()),
        Some((RunStatus::Running | RunStatus::Pending, _)) => Err(fail(format!(
            "run {run_id} is still running, but its events stopped arriving"
        ))),
        Some((RunStatus::Error, text)) => Err(fail(format!("run failed: {text}"))),
        None => Err(fail(format!("run {run_id} was deleted"))),
    }
}

async fn cancel_run(store: &Store, args: &CancelArgs) -> anyhow::Result<()> {
    let run_id = &args.run_id;
    match store.request_cancel(run_id).await? {
        CancelOutcome::Unknown => Err(fail(format!("no run {run_id}"))),
        CancelOutcome::Queued => {
            writeln!(
                io::stdout(),
                "cancelled run {run_id} (it was queued: the server that takes it up stores it \
                 CANCELLED without running it)"
            )?;
            Ok(())
        }
        CancelOutcome::Ended(RunStatus::Paused) => {
            if store
                .transition_run(
                    run_id,
                    RunStatus::Paused,
                    RunStatus::Cancelled,
                    Some("PAUSED"),
                )
                .await?
            {
                writeln!(io::stdout(), "cancelled run {run_id} (it was paused)")?;
                Ok(())
            } else {
                Err(fail(format!("run {run_id} is no longer paused")))
            }
        }
        CancelOutcome::Ended(status) => Err(fail(format!(
            "run {run_id} already ended ({})",
            status.as_str()
        ))),
        CancelOutcome::Requested { .. } => {
            let wait = Duration::from_secs_f64(args.wait_secs.min(86_400.0));
            if wait.is_zero() {
                writeln!(io::stdout(), "asked for run {run_id} to be cancelled")?;
                return Ok(());
            }
            let deadline = Instant::now() + wait;
            loop {
                let status = store.get_run(run_id).await?.map(|s| s.run.status());
                match status {
                    Some(RunStatus::Cancelled) => {
                        writeln!(io::stdout(), "cancelled run {run_id}")?;
                        return Ok(());
                    }
                    Some(RunStatus::Running | RunStatus::Pending) => {}
                    Some(other) => {
                        return Err(fail(format!(
                            "run {run_id} ended {} before it could be cancelled",
                            other.as_str()
                        )));
                    }
                    None => return Err(fail(format!("run {run_id} was deleted"))),
                }
                if Instant::now() >= deadline {
                    return Err(fail(format!(
                        "asked for run {run_id} to be cancelled, but it is still running after \
                         {} s",
                        args.wait_secs
                    )));
                }
                tokio::time::sleep(presence::CANCEL_POLL).await;
            }
        }
    }
}
