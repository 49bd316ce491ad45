//! Running the tool calls a model asked for: concurrently, each failure or timeout turned
//! into a tool error the model sees, with AgentOS's events and stored objects.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use super::Engine;
use super::execute::Emitter;
use super::team::TeamLeader;
use crate::cancel::CancelToken;
use crate::event::EventData;
use crate::run::{Message, Role, ToolCall, ToolExecution, ToolMetrics, new_id, now_secs};
use crate::tools::Toolbox;

/// The state a round of tool calls updates.
pub(super) struct ToolRound<'a> {
    pub toolbox: &'a Toolbox,
    /// For a team's leader: the engine, the leader and the team run id, to run delegations.
    pub delegate: Option<(&'a Engine, &'a TeamLeader, &'a str)>,
    pub cancel: &'a CancelToken,
    /// The conversation sent to the model.
    pub messages: &'a mut Vec<Message>,
    /// The run's own stored messages.
    pub own: &'a mut Vec<Message>,
    /// The run's tool executions (`tools[]`).
    pub executions: &'a mut Vec<ToolExecution>,
}

/// A new execution record for a call, before it runs.
pub(super) fn new_execution(call: &ToolCall, toolbox: &Toolbox) -> ToolExecution {
    // Arguments too deep to store stay the text the model sent (and fail as invalid).
    let tool_args = serde_json::from_str::<Value>(&call.arguments)
        .ok()
        .filter(|v| crate::limits::check_depth(v).is_ok())
        .unwrap_or_else(|| Value::String(call.arguments.clone()));
    let confirm = toolbox
        .get(&call.name)
        .is_some_and(|t| t.spec().requires_confirmation);
    ToolExecution {
        tool_call_id: call.id.clone(),
        tool_name: call.name.clone(),
        tool_args,
        created_at: now_secs(),
        requires_confirmation: confirm.then_some(true),
        ..ToolExecution::default()
    }
}

/// `requirements[]` of a paused run: one per tool call waiting for a decision.
pub(super) fn pause_requirements(paused: &[ToolExecution]) -> Vec<Value> {
    let created_at = iso_micros(SystemTime::now());
    paused
        .iter()
        .map(|t| serde_json::json!({"id": new_id(), "created_at": created_at, "tool_execution": t}))
        .collect()
}

fn unix_f64(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// `2026-11-29T01:21:07.390470+00:00`, the form AgentOS gives requirement timestamps.
fn iso_micros(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:06}+00:00",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_micros()
    )
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `get_weather(city=Berlin)`: the call as AgentOS prints it in `ToolCallCompleted`.
fn call_label(exec: &ToolExecution) -> String {
    let args = match &exec.tool_args {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect::<Vec<_>>()
            .join(", "),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    format!("{}({args})", exec.tool_name)
}

/// How one call went.
struct CallResult {
    result: Result<String, String>,
    start: SystemTime,
    end: SystemTime,
    duration: f64,
    /// The member run a delegation started.
    child_run_id: Option<String>,
}

impl ToolRound<'_> {
    /// Runs a round of calls concurrently and records their results. Member runs of
    /// delegations forward their events through `out` as they happen.
    pub(super) async fn run_calls(&mut self, calls: Vec<ToolExecution>, out: &Emitter<'_>) {
        for call in &calls {
            out.emit(EventData::ToolCallStarted {
                tool: Box::new(call.clone()),
            })
            .await;
        }
        let results: Vec<CallResult> = {
            let this = &*self;
            futures_util::future::join_all(calls.iter().map(|call| this.call_one(call, out))).await
        };
        if self.cancel.is_cancelled() {
            // The run ends cancelled; calls cut short are not reported as results.
            return;
        }
        for (mut exec, r) in calls.into_iter().zip(results) {
            let CallResult {
                result,
                start,
                end,
                duration,
                child_run_id,
            } = r;
            exec.child_run_id = child_run_id;
            exec.metrics = Some(ToolMetrics {
                start_time: unix_f64(start),
                end_time: unix_f64(end),
                duration,
            });
            self.record(&mut exec, result, out, Some(duration)).await;
        }
    }

    async fn call_one(&self, call: &ToolExecution, out: &Emitter<'_>) -> CallResult {
        let start = SystemTime::now();
        let clock = Instant::now();
        if let Some((engine, leader, team_run_id)) = self.delegate
            && leader.handles(&call.tool_name)
        {
            let (result, child_run_id) = leader
                .delegate(engine, team_run_id, call, self.cancel, out)
                .await;
            return CallResult {
                result,
                start,
                end: SystemTime::now(),
                duration: clock.elapsed().as_secs_f64(),
                child_run_id,
            };
        }
        let no_arguments = Value::Object(Map::new());
        let result = match self.toolbox.get(&call.tool_name) {
            None => Err(format!("tool `{}` does not exist", call.tool_name)),
            Some(tool) => match &call.tool_args {
                Value::Object(_) => tool.call(&call.tool_args, self.cancel).await,
                Value::Null => tool.call(&no_arguments, self.cancel).await,
                other => Err(format!(
                    "invalid arguments (expected a JSON object): {other}"
                )),
            },
        };
        CallResult {
            result,
            start,
            end: SystemTime::now(),
            duration: clock.elapsed().as_secs_f64(),
            child_run_id: None,
        }
    }

    /// Stores a finished call: execution record, event and the tool message.
    async fn record(
        &mut self,
        exec: &mut ToolExecution,
        result: Result<String, String>,
        out: &Emitter<'_>,
        duration: Option<f64>,
    ) {
        let (content, failed) = match result {
            Ok(text) => (text, false),
            Err(error) => (error, true),
        };
        exec.tool_call_error = Some(failed);
        if failed {
            if exec.confirmed != Some(false) {
                exec.result = Some(content.clone());
            }
            out.emit(EventData::ToolCallError {
                tool: Box::new(exec.clone()),
                error: content.clone(),
            })
            .await;
        } else {
            exec.result = Some(content.clone());
            out.emit(EventData::ToolCallCompleted {
                content: format!(
                    "{} completed in {:.4}s. ",
                    call_label(exec),
                    duration.unwrap_or(0.0)
                ),
                tool: Box::new(exec.clone()),
            })
            .await;
        }
        let message = Message {
            id: new_id(),
            content: Some(content),
            role: Role::Tool,
            tool_call_id: Some(exec.tool_call_id.clone()),
            tool_name: Some(exec.tool_name.clone()),
            tool_args: Some(exec.tool_args.clone()),
            tool_call_error: Some(failed),
            created_at: now_secs(),
            ..Message::default()
        };
        self.own.push(message.clone());
        self.messages.push(message);
        match self
            .executions
            .iter_mut()
            .find(|e| e.tool_call_id == exec.tool_call_id)
        {
            Some(slot) => *slot = exec.clone(),
            None => self.executions.push(exec.clone()),
        }
    }

    /// Continues a paused round: confirmed calls run, rejected ones become tool errors
    /// whose text is the confirmation note.
    pub(super) async fn run_decided(&mut self, decided: Vec<ToolExecution>, out: &Emitter<'_>) {
        let mut confirmed = Vec::new();
        for mut exec in decided {
            if exec.confirmed == Some(true) {
                confirmed.push(exec);
            } else {
                exec.confirmed = Some(false);
                exec.requires_confirmation = Some(false);
                let note = exec
                    .confirmation_note
                    .clone()
                    .unwrap_or_else(|| "The user rejected this tool call.".to_string());
                self.record(&mut exec, Err(note), out, None).await;
            }
        }
        if !confirmed.is_empty() {
            for exec in &mut confirmed {
                exec.requires_confirmation = Some(false);
            }
            self.run_calls(confirmed, out).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_micros_formats_like_agentos() {
        let t = UNIX_EPOCH + std::time::Duration::from_micros(1_795_915_267_390_470);
        assert_eq!(iso_micros(t), "2026-11-29T01:21:07.390470+00:00");
    }

    #[test]
    fn call_label_lists_arguments() {
        let exec = ToolExecution {
            tool_name: "get_weather".into(),
            tool_args: serde_json::json!({"city": "Berlin", "days": 2}),
            ..ToolExecution::default()
        };
        assert_eq!(call_label(&exec), "get_weather(city=Berlin, days=2)");
    }
}
