//! `agentos agents [list|show ID]`: the agents, teams and workflows of the agents file.

use std::io::Write;

use super::Context;
use crate::cli::AgentsCommand;
use crate::config::{
    AgentDef, Config, DEFAULT_TOOL_CALL_LIMIT, MemberRef, RouteBy, StepDef, StepKind, TeamDef,
    WorkflowDef,
};
use crate::error::UsageError;
use crate::limits::DEFAULT_MAX_ANSWER_BYTES;

pub fn run(command: Option<AgentsCommand>, ctx: &Context) -> anyhow::Result<()> {
    let config = ctx.config()?;
    let mut out = std::io::stdout().lock();
    match command.unwrap_or(AgentsCommand::List) {
        AgentsCommand::List => out.write_all(list(&config).as_bytes())?,
        AgentsCommand::Show { id } => {
            let text = if let Some(agent) = config.agent(&id) {
                show_agent(agent)
            } else if let Some(team) = config.team(&id) {
                show_team(team)
            } else if let Some(workflow) = config.workflow(&id) {
                show_workflow(workflow)
            } else {
                return Err(UsageError(format!(
                    "'{id}' is not an agent, team or workflow id (see `agentos agents`)"
                ))
                .into());
            };
            out.write_all(text.as_bytes())?;
        }
    }
    out.flush()?;
    Ok(())
}

/// One line per agent, then per team and per workflow: the id first, then the model (or
/// what the entry is), then the description.
fn list(config: &Config) -> String {
    let ids = config
        .agents
        .iter()
        .map(|a| &a.id)
        .chain(config.teams.iter().map(|t| &t.id))
        .chain(config.workflows.iter().map(|w| &w.id));
    let width = ids.map(String::len).max().unwrap_or(0);
    let mut out = String::new();
    let mut line = |id: &str, what: &str, description: Option<&str>| {
        let line = format!("{id:width$}  {what:24}  {}", description.unwrap_or(""));
        out.push_str(line.trim_end());
        out.push('\n');
    };
    for agent in &config.agents {
        line(&agent.id, &agent.model, agent.description.as_deref());
    }
    for team in &config.teams {
        let what = format!("team ({})", team.mode);
        line(&team.id, &what, team.description.as_deref());
    }
    for workflow in &config.workflows {
        let count = workflow.steps.len();
        let what = format!(
            "workflow ({count} step{})",
            if count == 1 { "" } else { "s" }
        );
        line(&workflow.id, &what, workflow.description.as_deref());
    }
    out
}

fn history(on: bool, runs: usize) -> String {
    if on {
        format!("last {runs} runs")
    } else {
        "off".to_string()
    }
}

fn show_agent(agent: &AgentDef) -> String {
    let mut out = String::new();
    out.push_str(&format!("id:           {}\n", agent.id));
    out.push_str(&format!("name:         {}\n", agent.name));
    if let Some(d) = &agent.description {
        out.push_str(&format!("description:  {d}\n"));
    }
    out.push_str(&format!("model:        {}\n", agent.model));
    out.push_str(&format!("markdown:     {}\n", agent.markdown));
    out.push_str(&format!(
        "history:      {}\n",
        history(agent.add_history_to_context, agent.num_history_runs)
    ));
    if let Some(t) = agent.temperature {
        out.push_str(&format!("temperature:  {t}\n"));
    }
    if let Some(m) = agent.max_tokens {
        out.push_str(&format!("max_tokens:   {m}\n"));
    }
    if let Some(schema) = &agent.output_schema {
        out.push_str(&format!("output_schema: {schema}\n"));
    }
    let options = &agent.model_options;
    if !options.fallback_models.is_empty() {
        out.push_str(&format!(
            "fallbacks:    {}\n",
            options.fallback_models.join(", ")
        ));
    }
    if let Some(budget) = options.thinking_budget {
        out.push_str(&format!("thinking:     {budget} tokens\n"));
    }
    if options.cache_prompt {
        out.push_str("cache_prompt: true\n");
    }
    if !agent.tools.is_empty() {
        let tools: Vec<String> = agent.tools.iter().map(ToString::to_string).collect();
        out.push_str(&format!("tools:        {}\n", tools.join(", ")));
        if agent.tool_call_limit != DEFAULT_TOOL_CALL_LIMIT {
            out.push_str(&format!("tool_call_limit: {}\n", agent.tool_call_limit));
        }
    }
    if agent.max_answer_bytes != DEFAULT_MAX_ANSWER_BYTES {
        out.push_str(&format!("max_answer_bytes: {}\n", agent.max_answer_bytes));
    }
    if !agent.dependencies.is_empty() {
        out.push_str(&format!(
            "dependencies: {}\n",
            serde_json::Value::Object(agent.dependencies.clone())
        ));
    }
    out.push_str("instructions:\n");
    for line in &agent.instructions {
        out.push_str(&format!("  {line}\n"));
    }
    out
}

fn show_team(team: &TeamDef) -> String {
    let mut out = String::new();
    out.push_str(&format!("id:           {}\n", team.id));
    out.push_str(&format!("name:         {}\n", team.name));
    if let Some(d) = &team.description {
        out.push_str(&format!("description:  {d}\n"));
    }
    out.push_str(&format!("model:        {}\n", team.model));
    out.push_str(&format!("mode:         {}\n", team.mode));
    let members: Vec<String> = team
        .members
        .iter()
        .map(|m| match m {
            MemberRef::Agent(id) => id.clone(),
            MemberRef::Team(id) => format!("{id} (team)"),
        })
        .collect();
    out.push_str(&format!("members:      {}\n", members.join(", ")));
    out.push_str(&format!("markdown:     {}\n", team.markdown));
    out.push_str(&format!(
        "history:      {}\n",
        history(team.add_history_to_context, team.num_history_runs)
    ));
    if let Some(t) = team.temperature {
        out.push_str(&format!("temperature:  {t}\n"));
    }
    if let Some(m) = team.max_tokens {
        out.push_str(&format!("max_tokens:   {m}\n"));
    }
    out.push_str("instructions:\n");
    for line in &team.instructions {
        out.push_str(&format!("  {line}\n"));
    }
    out
}

fn show_workflow(workflow: &WorkflowDef) -> String {
    let mut out = String::new();
    out.push_str(&format!("id:           {}\n", workflow.id));
    out.push_str(&format!("name:         {}\n", workflow.name));
    if let Some(d) = &workflow.description {
        out.push_str(&format!("description:  {d}\n"));
    }
    out.push_str("steps:\n");
    show_steps(&mut out, &workflow.steps, 1);
    out
}

/// The steps as an indented tree, one line per step.
fn show_steps(out: &mut String, steps: &[StepDef], depth: usize) {
    let indent = "  ".repeat(depth);
    for step in steps {
        let skip = |skip_on_failure: bool| {
            if skip_on_failure {
                " (skipped on failure)"
            } else {
                ""
            }
        };
        let what = match &step.kind {
            StepKind::Agent {
                id,
                skip_on_failure,
            } => format!("agent {id}{}", skip(*skip_on_failure)),
            StepKind::Team {
                id,
                skip_on_failure,
            } => format!("team {id}{}", skip(*skip_on_failure)),
            StepKind::Parallel(_) => "parallel".to_string(),
            StepKind::Condition { when, .. } => format!("condition, when {when}"),
            StepKind::Loop {
                max_iterations,
                until: None,
                ..
            } => format!("loop, {max_iterations} times"),
            StepKind::Loop {
                max_iterations,
                until: Some(until),
                ..
            } => format!("loop, at most {max_iterations} times, until {until}"),
            StepKind::Router {
                route: RouteBy::Expr(route),
                ..
            } => format!("router, by {route}"),
            StepKind::Router {
                route: RouteBy::Model { model, .. },
                ..
            } => format!("router, by model {model}"),
        };
        out.push_str(&format!("{indent}{}: {what}\n", step.name));
        if let Some(d) = &step.description {
            out.push_str(&format!("{indent}  {d}\n"));
        }
        match &step.kind {
            StepKind::Agent { .. } | StepKind::Team { .. } => {}
            StepKind::Parallel(steps) | StepKind::Loop { steps, .. } => {
                show_steps(out, steps, depth + 1)
            }
            StepKind::Router { choices, .. } => show_steps(out, choices, depth + 1),
            StepKind::Condition {
                steps, else_steps, ..
            } => {
                show_steps(out, steps, depth + 1);
                if !else_steps.is_empty() {
                    out.push_str(&format!("{indent}else:\n"));
                    show_steps(out, else_steps, depth + 1);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"
[[agents]]
id = "writer"
model = "test"
description = "Writes"

[[teams]]
id = "editors"
model = "test"
mode = "broadcast"
members = ["writer"]
description = "Edit together"

[[workflows]]
id = "pipeline"
[[workflows.steps]]
name = "draft"
agent = "writer"
skip_on_failure = true
[[workflows.steps]]
name = "review"
type = "condition"
when = "input.size() > 10"
steps = [{ name = "edit", team = "editors" }]
else = [{ name = "keep", type = "parallel", steps = [{ name = "k", agent = "writer" }] }]
[[workflows.steps]]
name = "polish"
type = "loop"
max_iterations = 2
until = "all_success"
steps = [{ name = "p", agent = "writer" }]
[[workflows.steps]]
name = "pick"
type = "router"
model = "test"
steps = [{ name = "a", agent = "writer" }, { name = "b", agent = "writer" }]
"#;

    fn config() -> Config {
        Config::from_toml_str(TEXT, std::path::Path::new("agents.toml")).unwrap()
    }

    #[test]
    fn list_has_one_line_per_id() {
        assert_eq!(
            list(&config()),
            "writer    test                      Writes\n\
             editors   team (broadcast)          Edit together\n\
             pipeline  workflow (4 steps)\n"
        );
    }

    #[test]
    fn show_team_and_workflow() {
        let config = config();
        let team = show_team(config.team("editors").unwrap());
        assert!(team.contains("mode:         broadcast\n"), "{team}");
        assert!(team.contains("members:      writer\n"), "{team}");
        assert_eq!(
            show_workflow(config.workflow("pipeline").unwrap()),
            "id:           pipeline\n\
             name:         pipeline\n\
             steps:\n  \
               draft: agent writer (skipped on failure)\n  \
               review: condition, when input.size() > 10\n    \
                 edit: team editors\n  \
               else:\n    \
                 keep: parallel\n      \
                   k: agent writer\n  \
               polish: loop, at most 2 times, until all_success\n    \
                 p: agent writer\n  \
               pick: router, by model test\n    \
                 a: agent writer\n    \
                 b: agent writer\n"
        );
    }
}
