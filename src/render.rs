//! The terminal sink: turns run events into what a person or a pipe sees.
//!
//! - text mode: the answer goes to stdout as it arrives: the content deltas of the run
//!   itself (an agent's or a team leader's), or a workflow's final content when it
//!   completes. Progress (tool calls, team members at work, workflow steps) goes to stderr
//!   only when stderr is a terminal, with an indicatif spinner until the first token, and
//!   so does the model's reasoning, dimmed;
//! - `--jsonl`: every event as one compact JSON line;
//! - `--json`: nothing while running; the caller prints the final run object.
//!
//! A closed stdout stops output and is remembered, so the caller can cancel the run and
//! exit quietly.

use std::io::{self, IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use crate::event::{Event, EventData};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputMode {
    Text,
    Jsonl,
    Json,
}

impl OutputMode {
    pub fn from_flags(json: bool, jsonl: bool) -> Self {
        if json {
            OutputMode::Json
        } else if jsonl {
            OutputMode::Jsonl
        } else {
            OutputMode::Text
        }
    }
}

pub struct TerminalSink {
    mode: OutputMode,
    out: io::Stdout,
    spinner: Option<ProgressBar>,
    /// Text mode: whether the last byte written was a newline (or nothing was written).
    at_line_start: bool,
    pipe_closed: bool,
    error: Option<io::Error>,
    /// Reasoning is being shown on stderr and needs a line end before anything else.
    in_reasoning: bool,
    /// The workflow was cancelled: its closing content is the cancel's reason, not an
    /// answer for stdout.
    workflow_cancelled: bool,
}

impl TerminalSink {
    pub fn new(mode: OutputMode, agent_name: &str) -> Self {
        let spinner = io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}") {
                bar.set_style(style);
            }
            bar.set_message(format!("{agent_name} is thinking…"));
            bar.enable_steady_tick(Duration::from_millis(80));
            bar
        });
        TerminalSink {
            mode,
            out: io::stdout(),
            spinner,
            at_line_start: true,
            pipe_closed: false,
            error: None,
            in_reasoning: false,
            workflow_cancelled: false,
        }
    }

    /// True once stdout was found closed; the run should stop.
    pub fn pipe_closed(&self) -> bool {
        self.pipe_closed
    }

    /// A write error other than a closed pipe, if one happened.
    pub fn take_error(&mut self) -> Option<io::Error> {
        self.error.take()
    }

    fn clear_spinner(&mut self) {
        if let Some(bar) = self.spinner.take() {
            bar.finish_and_clear();
        }
    }

    pub fn handle(&mut self, event: &Event) {
        if self.pipe_closed || self.error.is_some() {
            return;
        }
        let result = match self.mode {
            OutputMode::Json => Ok(()),
            OutputMode::Jsonl => {
                self.clear_spinner();
                let mut lock = self.out.lock();
                writeln!(lock, "{}", event.to_json()).and_then(|_| lock.flush())
            }
            OutputMode::Text => self.text(event),
        };
        if let Err(err) = result {
            if err.kind() == io::ErrorKind::BrokenPipe {
                self.pipe_closed = true;
            } else {
                self.error = Some(err);
            }
        }
    }

    fn text(&mut self, event: &Event) -> io::Result<()> {
        let nested = event.source.is_nested();
        if !nested && matches!(event.data, EventData::WorkflowCancelled { .. }) {
            self.workflow_cancelled = true;
        }
        if nested || is_workflow_progress(&event.data) {
            self.progress(event);
            return Ok(());
        }
        let content = match &event.data {
            EventData::RunContent {
                content,
                reasoning_content,
                ..
            } => {
                self.reasoning(reasoning_content);
                content
            }
            EventData::WorkflowCompleted {
                content: Some(content),
                ..
            } if !self.workflow_cancelled => content,
            EventData::ToolCallStarted { .. }
            | EventData::ToolCallCompleted { .. }
            | EventData::ToolCallError { .. }
                if !io::stderr().is_terminal() =>
            {
                return Ok(());
            }
            EventData::ToolCallStarted { tool } => {
                self.clear_spinner();
                eprintln!("⚙ {}({})", tool.tool_name, compact_args(&tool.tool_args));
                return Ok(());
            }
            EventData::ToolCallCompleted { tool, .. } => {
                let secs = tool.metrics.as_ref().map_or(0.0, |m| m.duration);
                eprintln!("✓ {} done in {secs:.3}s", tool.tool_name);
                return Ok(());
            }
            EventData::ToolCallError { tool, error } => {
                let first = error.lines().next().unwrap_or("");
                eprintln!("✗ {} failed: {first}", tool.tool_name);
                return Ok(());
            }
            _ => return Ok(()),
        };
        let text = match content {
            Value::String(s) if s.is_empty() => return Ok(()),
            Value::String(s) => s.clone(),
            other => serde_json::to_string_pretty(other).unwrap_or_default(),
        };
        self.clear_spinner();
        self.end_reasoning();
        let mut lock = self.out.lock();
        lock.write_all(text.as_bytes())?;
        lock.flush()?;
        self.at_line_start = text.ends_with('\n');
        Ok(())
    }

    /// Reasoning text, dimmed on stderr, only when stderr is a terminal (piped output and
    /// `--json` carry the answer alone; `--jsonl` has the reasoning in its events).
    fn reasoning(&mut self, text: &str) {
        if text.is_empty() || !io::stderr().is_terminal() {
            return;
        }
        self.clear_spinner();
        let mut err = io::stderr().lock();
        let _ = write!(err, "\x1b[2m{text}\x1b[0m");
        let _ = err.flush();
        self.in_reasoning = true;
    }

    /// Closes the reasoning line before the answer begins.
    fn end_reasoning(&mut self) {
        if std::mem::take(&mut self.in_reasoning) {
            eprintln!();
        }
    }

    /// Member and step progress on stderr, only on a terminal.
    fn progress(&mut self, event: &Event) {
        if !io::stderr().is_terminal() {
            return;
        }
        let who = event.source.name();
        let line = match &event.data {
            EventData::RunStarted { .. } => {
                if let Some(bar) = &self.spinner {
                    bar.set_message(format!("{who} is working…"));
                }
                return;
            }
            EventData::RunCompleted { .. } => format!("✓ {who} done"),
            EventData::RunError { content, .. } => format!("✗ {who} failed: {content}"),
            EventData::StepStarted { step_name, .. } => {
                if let Some(bar) = &self.spinner {
                    bar.set_message(format!("step {step_name}…"));
                }
                return;
            }
            EventData::StepCompleted { step_name, .. } => format!("✓ step {step_name}"),
            EventData::StepError {
                step_name, error, ..
            } => format!("✗ step {step_name} failed: {error}"),
            _ => return,
        };
        match &self.spinner {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    /// Ends the output: clears the spinner and closes an unfinished text line.
    pub fn finish(&mut self) -> io::Result<()> {
        self.clear_spinner();
        self.end_reasoning();
        if self.mode == OutputMode::Text && !self.at_line_start && !self.pipe_closed {
            let mut lock = self.out.lock();
            writeln!(lock)?;
            lock.flush()?;
            self.at_line_start = true;
        }
        Ok(())
    }
}

/// Workflow and step events, shown as progress rather than as the answer.
fn is_workflow_progress(data: &EventData) -> bool {
    matches!(
        data,
        EventData::StepStarted { .. }
            | EventData::StepCompleted { .. }
            | EventData::StepError { .. }
    )
}

/// Tool arguments on one line, cut to a readable length.
fn compact_args(args: &Value) -> String {
    let text = match args {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}={s:?}"),
                other => format!("{k}={other}"),
            })
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    };
    if text.chars().count() > 120 {
        let cut: String = text.chars().take(117).collect();
        format!("{cut}...")
    } else {
        text
    }
}

impl Drop for TerminalSink {
    fn drop(&mut self) {
        self.clear_spinner();
    }
}
