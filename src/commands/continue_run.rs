//! `agentos continue RUN_ID --approve|--reject`: resume a run paused for confirmation.

use std::sync::Arc;

use super::Context;
use super::run::{Terminal, paused_tools};
use crate::cli::ContinueArgs;
use crate::engine::{Engine, EngineError, ToolDecision};
use crate::render::OutputMode;

pub fn run(args: ContinueArgs, ctx: &Context) -> anyhow::Result<()> {
    let config = Arc::new(ctx.config()?);
    let engine = Engine::new(config, ctx.store()?);
    let stored = engine
        .store()
        .get_run(&args.run_id)?
        .ok_or_else(|| EngineError::RunNotFound(args.run_id.clone()))?;
    let decisions: Vec<ToolDecision> = paused_tools(&stored.run)
        .map(|t| ToolDecision {
            tool_call_id: t.tool_call_id.clone(),
            confirmed: args.approve,
            note: args.note.clone(),
        })
        .collect();
    let mode = OutputMode::from_flags(args.json, args.jsonl);
    let terminal = Terminal::new(&engine, &stored.run.agent_id, mode)?;
    let pending = engine.continue_run(
        &stored.run.agent_id,
        &args.run_id,
        Some(&stored.run.session_id),
        &decisions,
        true,
    )?;
    terminal.drive(pending, true)
}
