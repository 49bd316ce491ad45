//! `agentos continue RUN_ID --approve|--reject`: resume a run paused for confirmation.

use std::sync::Arc;

use super::Context;
use super::run::{Terminal, paused_tools};
use crate::cli::ContinueArgs;
use crate::engine::{Engine, EngineError, ToolDecision};
use crate::render::OutputMode;
use crate::run::AnyRun;

pub fn run(args: ContinueArgs, ctx: &Context) -> anyhow::Result<()> {
    let config = Arc::new(ctx.config()?);
    let engine = Engine::new(config, ctx.store()?);
    super::block_on(super::as_owner(&engine, continue_run(&engine, &args)))
}

async fn continue_run(engine: &Engine, args: &ContinueArgs) -> anyhow::Result<()> {
    let stored = engine
        .store()
        .get_run(&args.run_id)
        .await?
        .ok_or_else(|| EngineError::RunNotFound(args.run_id.clone()))?;
    let Some(run) = stored.run.as_agent() else {
        anyhow::bail!(
            "run {} is a {} run; only agent runs pause for confirmation",
            args.run_id,
            if matches!(stored.run, AnyRun::Team(_)) {
                "team"
            } else {
                "workflow"
            }
        );
    };
    let decisions: Vec<ToolDecision> = paused_tools(run)
        .map(|t| ToolDecision {
            tool_call_id: t.tool_call_id.clone(),
            confirmed: args.approve,
            note: args.note.clone(),
        })
        .collect();
    let mode = OutputMode::from_flags(args.json, args.jsonl);
    let terminal = Terminal::new(engine, &run.agent_id, mode)?;
    let pending = engine
        .continue_run(
            &run.agent_id,
            &args.run_id,
            (Some(&run.session_id), None),
            &decisions,
            true,
        )
        .await?;
    terminal.drive(pending, true).await
}
