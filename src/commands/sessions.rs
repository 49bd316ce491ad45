//! `agentos sessions list|show|delete|rename`.

use crate::kind::Kind;
use std::io::Write;

use serde_json::json;

use super::Context;
use crate::cli::{SessionsCommand, SessionsListArgs};
use crate::error::UsageError;
use crate::run::{AnyRun, Role, RunRecord, RunStatus};
use crate::store::{SessionQuery, Store};

pub fn run(command: SessionsCommand, ctx: &Context) -> anyhow::Result<()> {
    let store = ctx.existing_store()?;
    super::block_on(async move {
        match command {
            SessionsCommand::List(args) => list(&store, &args).await,
            SessionsCommand::Show { id, json } => show(&store, &id, json).await,
            SessionsCommand::Delete { id } => {
                if !store.delete_session(&id).await? {
                    return Err(not_found(&id));
                }
                writeln!(std::io::stdout(), "deleted session {id}")?;
                Ok(())
            }
            SessionsCommand::Rename { id, name } => {
                if !store.rename_session(&id, &name).await? {
                    return Err(not_found(&id));
                }
                writeln!(std::io::stdout(), "renamed session {id} to {name}")?;
                Ok(())
            }
        }
    })
}

fn not_found(id: &str) -> anyhow::Error {
    UsageError(format!("session '{id}' not found")).into()
}

async fn list(store: &Store, args: &SessionsListArgs) -> anyhow::Result<()> {
    let query = SessionQuery {
        session_type: args.agent.as_ref().map(|_| Kind::Agent),
        component_id: args.agent.clone(),
        user_id: args.user.clone(),
        limit: args.limit,
        ..SessionQuery::default()
    };
    let (sessions, total) = store.list_sessions(query).await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        for s in &sessions {
            let line = json!({
                "session_id": s.session.session_id,
                "session_type": s.session.session_type.as_str(),
                "agent_id": s.session.component_id,
                "user_id": s.session.user_id,
                "session_name": s.display_name,
                "runs": s.run_count,
                "total_tokens": s.total_tokens,
                "created_at": s.session.created_at,
                "updated_at": s.session.updated_at,
            });
            writeln!(out, "{line}")?;
        }
    } else {
        for s in &sessions {
            let name: String = s.display_name.chars().take(50).collect();
            writeln!(
                out,
                "{}  {:16}  {:10}  {:>4} runs  {}",
                s.session.session_id,
                s.session.component_id,
                s.session.user_id.as_deref().unwrap_or("-"),
                s.run_count,
                name.replace('\n', " ")
            )?;
        }
        if total as usize > sessions.len() {
            writeln!(
                out,
                "({} of {total} sessions; use -n to see more)",
                sessions.len()
            )?;
        }
    }
    out.flush()?;
    Ok(())
}

async fn show(store: &Store, id: &str, as_json: bool) -> anyhow::Result<()> {
    let Some((_, runs)) = store.session_with_runs(id).await? else {
        return Err(not_found(id));
    };
    let mut out = std::io::stdout().lock();
    if as_json {
        let runs: Vec<_> = runs.iter().map(|r| &r.run).collect();
        serde_json::to_writer_pretty(&mut out, &runs)?;
        writeln!(out)?;
    } else {
        // Member runs of a team are part of their team run's answer.
        for stored in runs.iter().filter(|r| r.run.parent_run_id().is_none()) {
            let run = &stored.run;
            if let AnyRun::Workflow(w) = run {
                writeln!(out, "── user\n{}", w.input)?;
                writeln!(out, "── {}\n{}", w.workflow_id, run.content_text())?;
            }
            for m in run.messages() {
                let who = match m.role {
                    Role::System => continue,
                    Role::User => "user",
                    Role::Assistant => run.component_id(),
                    Role::Tool => "tool",
                };
                writeln!(out, "── {who}")?;
                writeln!(out, "{}", m.content.as_deref().unwrap_or(""))?;
            }
            if run.status() != RunStatus::Completed {
                writeln!(out, "   [{}]", run.status().as_str())?;
            }
            writeln!(out)?;
        }
    }
    out.flush()?;
    Ok(())
}
