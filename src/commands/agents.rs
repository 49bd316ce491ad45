//! `agentos agents [list|show ID]`.

use std::io::Write;

use super::Context;
use crate::cli::AgentsCommand;
use crate::error::UsageError;

pub fn run(command: Option<AgentsCommand>, ctx: &Context) -> anyhow::Result<()> {
    let config = ctx.config()?;
    let mut out = std::io::stdout().lock();
    match command.unwrap_or(AgentsCommand::List) {
        AgentsCommand::List => {
            let width = config.agents.iter().map(|a| a.id.len()).max().unwrap_or(0);
            for agent in &config.agents {
                let description = agent.description.as_deref().unwrap_or("");
                writeln!(
                    out,
                    "{:width$}  {:24}  {}",
                    agent.id, agent.model, description
                )?;
            }
        }
        AgentsCommand::Show { id } => {
            let agent = config
                .agent(&id)
                .ok_or_else(|| UsageError(format!("agent '{id}' not found")))?;
            writeln!(out, "id:           {}", agent.id)?;
            writeln!(out, "name:         {}", agent.name)?;
            if let Some(d) = &agent.description {
                writeln!(out, "description:  {d}")?;
            }
            writeln!(out, "model:        {}", agent.model)?;
            writeln!(out, "markdown:     {}", agent.markdown)?;
            writeln!(
                out,
                "history:      {}",
                if agent.add_history_to_context {
                    format!("last {} runs", agent.num_history_runs)
                } else {
                    "off".to_string()
                }
            )?;
            if let Some(t) = agent.temperature {
                writeln!(out, "temperature:  {t}")?;
            }
            if let Some(m) = agent.max_tokens {
                writeln!(out, "max_tokens:   {m}")?;
            }
            if let Some(schema) = &agent.output_schema {
                writeln!(out, "output_schema: {schema}")?;
            }
            writeln!(out, "instructions:")?;
            for line in &agent.instructions {
                writeln!(out, "  {line}")?;
            }
        }
    }
    out.flush()?;
    Ok(())
}
