//! `agentos run <agent>`: one run, streamed to the terminal.

use std::io::{self, IsTerminal, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use serde_json::{Map, Value};

use super::Context;
use crate::cancel::CancelToken;
use crate::cli::RunArgs;
use crate::engine::{Engine, PendingRun, RunRequest, ToolDecision};
use crate::error::{EXIT_CANCELLED, EXIT_FAILURE, EXIT_PAUSED, SilentExit, UsageError};
use crate::event::{Event, FnSink};
use crate::render::{OutputMode, TerminalSink};
use crate::run::{AnyRun, RunOutput, RunRecord, RunStatus, ToolExecution};
use crate::schema::OutputSchema;

pub fn run(args: RunArgs, ctx: &Context) -> anyhow::Result<()> {
    let config = Arc::new(ctx.config()?);
    check_flags(&args, &config)?;
    let request = build_request(&args)?;
    let engine = Engine::new(config.clone(), ctx.store()?);
    engine.validate(&request)?;
    let mode = OutputMode::from_flags(args.json, args.jsonl);
    let terminal = Terminal::new(&engine, &request.agent_id, mode)?;
    let stream = request.stream;
    super::block_on(super::as_owner(&engine, async {
        let pending = engine.start_any(request).await?;
        terminal.drive(pending, stream).await
    }))
}

/// Runs in the terminal: output, Ctrl-C, confirmation prompts and exit codes.
pub(super) struct Terminal<'a> {
    engine: &'a Engine,
    agent_id: String,
    agent_name: String,
    mode: OutputMode,
    cancel: CancelToken,
    interrupted: Arc<AtomicBool>,
}

impl<'a> Terminal<'a> {
    pub(super) fn new(
        engine: &'a Engine,
        agent_id: &str,
        mode: OutputMode,
    ) -> anyhow::Result<Self> {
        let config = engine.config();
        let agent_name = config
            .agent(agent_id)
            .map(|a| a.name.clone())
            .or_else(|| config.team(agent_id).map(|t| t.name.clone()))
            .or_else(|| config.workflow(agent_id).map(|w| w.name.clone()))
            .unwrap_or_else(|| agent_id.to_string());
        let cancel = CancelToken::new();
        let interrupted = Arc::new(AtomicBool::new(false));
        {
            let cancel = cancel.clone();
            let interrupted = interrupted.clone();
            // The first Ctrl-C cancels the run (stored CANCELLED); a second one leaves at once.
            ctrlc::set_handler(move || {
                if interrupted.swap(true, Ordering::SeqCst) {
                    std::process::exit(i32::from(EXIT_CANCELLED));
                }
                cancel.cancel();
            })
            .context("could not install the Ctrl-C handler")?;
        }
        Ok(Terminal {
            engine,
            agent_id: agent_id.to_string(),
            agent_name,
            mode,
            cancel,
            interrupted,
        })
    }

    /// Executes a started run to its end, asking for confirmations on a terminal, and
    /// turns its status into the exit code.
    pub(super) async fn drive(&self, mut pending: PendingRun, stream: bool) -> anyhow::Result<()> {
        loop {
            let terminal = Mutex::new(TerminalSink::new(self.mode, &self.agent_name));
            let cancel = &self.cancel;
            let sink = FnSink(|event: &Event| {
                let mut terminal = terminal.lock().unwrap_or_else(|e| e.into_inner());
                terminal.handle(event);
                if terminal.pipe_closed() {
                    cancel.cancel();
                }
            });
            let run = self.engine.execute(pending, cancel, &sink).await;
            let _ = sink;
            let run = run?;
            let mut sink = terminal.into_inner().unwrap_or_else(|e| e.into_inner());
            if let Some(err) = sink.take_error() {
                return Err(err).context("could not write to stdout");
            }
            if sink.pipe_closed() {
                return Ok(());
            }
            sink.finish().context("could not write to stdout")?;
            drop(sink);

            if let Some(paused) = run.as_agent().filter(|r| r.status == RunStatus::Paused)
                && self.mode == OutputMode::Text
                && interactive()
            {
                let decisions = ask_confirmations(paused)?;
                pending = self
                    .engine
                    .continue_run(
                        &self.agent_id,
                        &paused.run_id,
                        (Some(&paused.session_id), None),
                        &decisions,
                        stream,
                    )
                    .await?;
                continue;
            }
            return self.finish(&run);
        }
    }

    fn finish(&self, run: &AnyRun) -> anyhow::Result<()> {
        if self.mode == OutputMode::Json {
            let mut out = io::stdout().lock();
            // The object `POST …/runs` answers with `stream=false`.
            serde_json::to_writer_pretty(&mut out, &crate::server::schemas::run_response(run))?;
            writeln!(out)?;
            out.flush()?;
        }
        if io::stderr().is_terminal() && self.mode == OutputMode::Text {
            eprintln!("session: {}", run.session_id());
        }
        match run.status() {
            RunStatus::Completed => Ok(()),
            RunStatus::Cancelled => {
                let by = if self.interrupted.load(Ordering::SeqCst) {
                    ""
                } else {
                    // `agentos cancel`, another server, or its session deleted.
                    " from elsewhere"
                };
                eprintln!("agentos: run {} cancelled{by}", run.run_id());
                Err(SilentExit(EXIT_CANCELLED).into())
            }
            RunStatus::Paused => {
                let names: Vec<String> = run
                    .as_agent()
                    .into_iter()
                    .flat_map(paused_tools)
                    .map(|t| format!("`{}`", t.tool_name))
                    .collect();
                eprintln!(
                    "agentos: run {} paused: {} needs confirmation; continue with \
                     `agentos continue {} --approve` or `--reject [--note TEXT]`",
                    run.run_id(),
                    names.join(", "),
                    run.run_id()
                );
                Err(SilentExit(EXIT_PAUSED).into())
            }
            _ => {
                eprintln!("agentos: run failed: {}", run.content_text());
                Err(SilentExit(EXIT_FAILURE).into())
            }
        }
    }
}

/// Whether a person can answer a prompt: stdin and stderr are terminals.
fn interactive() -> bool {
    io::stdin().is_terminal() && io::stderr().is_terminal()
}

/// The tool calls a paused run waits for.
pub(super) fn paused_tools(run: &RunOutput) -> impl Iterator<Item = &ToolExecution> {
    run.tools
        .iter()
        .flatten()
        .filter(|t| t.requires_confirmation == Some(true) && t.confirmed.is_none())
}

/// Asks y/n for each paused tool call on the terminal.
fn ask_confirmations(run: &RunOutput) -> anyhow::Result<Vec<ToolDecision>> {
    let mut decisions = Vec::new();
    for tool in paused_tools(run) {
        eprint!(
            "Run tool `{}` with {}? [y/N] ",
            tool.tool_name, tool.tool_args
        );
        io::stderr().flush()?;
        let mut answer = String::new();
        io::stdin().read_line(&mut answer)?;
        let confirmed = matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes");
        decisions.push(ToolDecision {
            tool_call_id: tool.tool_call_id.clone(),
            confirmed,
            note: (!confirmed).then(|| "The user declined this tool call.".to_string()),
        });
    }
    Ok(decisions)
}

/// Refuses flags that name nothing usable before stdin is read: a `--model` that is not a
/// model reference or names an unknown provider (said of the flag, not of the agents
/// file), and `--model` or `--output-schema` for a workflow, whose steps run their own
/// agents and teams.
fn check_flags(args: &RunArgs, config: &crate::config::Config) -> anyhow::Result<()> {
    if config.workflow(&args.agent).is_some() {
        let given = [
            ("--model", args.model.is_some()),
            ("--output-schema", args.output_schema.is_some()),
        ];
        if let Some((flag, _)) = given.iter().find(|(_, set)| *set) {
            return Err(UsageError(format!(
                "{flag} does not apply to workflow `{}`: each of its steps runs its own agent \
                 or team",
                args.agent
            ))
            .into());
        }
    }
    if let Some(spec) = &args.model {
        config
            .locate_model(spec, None)
            .map_err(|e| UsageError(format!("--model: {}", e.message)))?;
    }
    Ok(())
}

/// Turns the flags and piped stdin into a run request.
fn build_request(args: &RunArgs) -> anyhow::Result<RunRequest> {
    let piped = if io::stdin().is_terminal() {
        None
    } else {
        let mut text = String::new();
        io::stdin()
            .read_to_string(&mut text)
            .context("could not read stdin")?;
        Some(text)
    };
    let message = compose_message(args.message.as_deref(), piped.as_deref())?;
    let output_schema = match &args.output_schema {
        Some(raw) => {
            let text = match raw.strip_prefix('@') {
                Some(path) => std::fs::read_to_string(path)
                    .map_err(|e| UsageError(format!("--output-schema: cannot read {path}: {e}")))?,
                None => raw.clone(),
            };
            let value: Value = serde_json::from_str(&text)
                .map_err(|e| UsageError(format!("--output-schema: invalid JSON: {e}")))?;
            crate::limits::check_depth(&value)
                .map_err(|e| UsageError(format!("--output-schema: {e}")))?;
            Some(
                OutputSchema::from_schema(&value)
                    .map_err(|e| UsageError(format!("--output-schema: {e}")))?,
            )
        }
        None => None,
    };
    Ok(RunRequest {
        agent_id: args.agent.clone(),
        message,
        // Empty ids are no ids, as over HTTP: a new session, no user.
        session_id: args.session.clone().filter(|s| !s.is_empty()),
        user_id: args.user.clone().filter(|u| !u.is_empty()),
        run_id: None,
        session_state: json_object("--session-state", args.session_state.as_deref())?,
        dependencies: json_object("--dependencies", args.dependencies.as_deref())?,
        metadata: json_object("--metadata", args.metadata.as_deref())?,
        output_schema,
        model_override: args.model.clone(),
        add_history_to_context: None,
        stream: !args.no_stream,
    })
}

/// The message rule: `-m` text, piped text, or `-m` text, a blank line and the piped text.
fn compose_message(flag: Option<&str>, piped: Option<&str>) -> anyhow::Result<String> {
    let piped = piped
        .map(|p| p.trim_end_matches(['\n', '\r']))
        .filter(|p| !p.is_empty());
    let message = match (flag, piped) {
        (Some(m), Some(p)) => format!("{m}\n\n{p}"),
        (Some(m), None) => m.to_string(),
        (None, Some(p)) => p.to_string(),
        (None, None) => String::new(),
    };
    if message.trim().is_empty() {
        return Err(UsageError("no message: pass -m TEXT or pipe text on stdin".into()).into());
    }
    Ok(message)
}

fn json_object(flag: &str, raw: Option<&str>) -> anyhow::Result<Option<Map<String, Value>>> {
    let Some(raw) = raw else { return Ok(None) };
    let value = serde_json::from_str::<Value>(raw)
        .map_err(|e| UsageError(format!("{flag}: invalid JSON: {e}")))?;
    crate::limits::check_depth(&value).map_err(|e| UsageError(format!("{flag}: {e}")))?;
    match value {
        Value::Object(map) => Ok(Some(map)),
        _ => Err(UsageError(format!("{flag}: expected a JSON object")).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_rule() {
        assert_eq!(compose_message(Some("a"), None).unwrap(), "a");
        assert_eq!(compose_message(None, Some("b\n")).unwrap(), "b");
        assert_eq!(compose_message(Some("a"), Some("b\n")).unwrap(), "a\n\nb");
        assert_eq!(compose_message(Some("a"), Some("")).unwrap(), "a");
        assert!(compose_message(None, Some("\n")).is_err());
    }

    #[test]
    fn json_flags_must_be_objects() {
        assert!(json_object("--x", Some("[1]")).is_err());
        assert!(json_object("--x", Some("{")).is_err());
        assert_eq!(
            json_object("--x", Some(r#"{"a":1}"#)).unwrap().unwrap()["a"],
            1
        );
    }
}
