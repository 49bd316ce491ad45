//! Teams: a leader model that hands work to member agents and teams through delegation
//! tools, then answers (coordinate, broadcast) or returns one member's answer (route).
//!
//! The leader is an agent run with a team identity: its events are `Team*` events, its
//! system prompt lists the members, and its tools are the delegation tools. Member runs
//! share the team run's session and cancel token, so cancelling the team stops them at
//! once; their events reach the team's sink as they happen, marked by `parent_run_id`.

use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use super::{Engine, EngineError, PendingRun, RunContext, RunRequest};
use crate::cancel::CancelToken;
use crate::config::{AgentDef, MemberRef, TeamDef, TeamMode};
use crate::event::EventSink;
use crate::run::{AnyRun, RunOutput, RunRecord, RunStatus, TeamRunOutput, ToolExecution, new_id};
use crate::tools::ToolSpec;

/// The tool a coordinate or route leader delegates with.
pub const DELEGATE_ONE: &str = "delegate_task_to_member";
/// The tool a broadcast leader sends one task to every member with.
pub const DELEGATE_ALL: &str = "delegate_task_to_members";

/// A team's leader while its run executes: the members it may delegate to and the member
/// runs finished so far.
pub struct TeamLeader {
    pub team_id: String,
    pub team_name: String,
    pub mode: TeamMode,
    members: Vec<Member>,
    /// What members inherit from the team's request: user, session, dependencies, stream.
    base: RunRequest,
    /// The team run's own context; members run in it with the team run as their parent.
    context: RunContext,
    responses: Mutex<Vec<AnyRun>>,
}

struct Member {
    id: String,
    name: String,
    is_team: bool,
}

impl TeamLeader {
    /// Whether `tool` is one of this leader's delegation tools.
    pub(super) fn handles(&self, tool: &str) -> bool {
        match self.mode {
            TeamMode::Broadcast => tool == DELEGATE_ALL,
            TeamMode::Coordinate | TeamMode::Route => tool == DELEGATE_ONE,
        }
    }

    /// The delegation tool offered to the leader's model.
    pub(super) fn specs(&self) -> Vec<ToolSpec> {
        let ids: Vec<&str> = self.members.iter().map(|m| m.id.as_str()).collect();
        vec![delegation_spec(self.mode, &ids)]
    }

    /// The stored and returned team run object for the leader's working run.
    pub(super) fn team_run(&self, run: &RunOutput, member_responses: Vec<AnyRun>) -> AnyRun {
        AnyRun::Team(TeamRunOutput {
            run_id: run.run_id.clone(),
            team_id: self.team_id.clone(),
            team_name: self.team_name.clone(),
            session_id: run.session_id.clone(),
            parent_run_id: run.parent_run_id.clone(),
            user_id: run.user_id.clone(),
            content: run.content.clone(),
            content_type: run.content_type.clone(),
            model: run.model.clone(),
            model_provider: run.model_provider.clone(),
            model_provider_data: run.model_provider_data.clone(),
            reasoning_content: run.reasoning_content.clone(),
            session_state: (run.status == RunStatus::Cancelled).then(|| json!({})),
            created_at: run.created_at,
            workflow_step_id: run.workflow_step_id.clone(),
            metrics: run.metrics.clone(),
            status: run.status,
            cancellation_stage: run.cancellation_stage.clone(),
            messages: run.messages.clone(),
            metadata: run.metadata.clone(),
            member_responses,
            tools: run.tools.clone(),
            input: run.input.clone(),
        })
    }

    /// The member runs finished so far.
    pub(super) fn responses(&self) -> Vec<AnyRun> {
        self.responses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Runs one delegation call: the member runs, its events go to `events` as they
    /// happen, and its answer is the tool result. Returns the result and the member run's
    /// id. A broadcast runs every member concurrently.
    pub(super) async fn delegate(
        &self,
        engine: &Engine,
        team_run_id: &str,
        call: &ToolExecution,
        cancel: &CancelToken,
        events: &dyn EventSink,
    ) -> (Result<String, String>, Option<String>) {
        let arg = |name: &str| call.tool_args.get(name).and_then(Value::as_str);
        let Some(task) = arg("task").filter(|t| !t.trim().is_empty()) else {
            return (Err("the `task` argument is missing".into()), None);
        };
        if self.mode == TeamMode::Broadcast {
            let results: Vec<Result<String, String>> =
                futures_util::future::join_all(self.members.iter().map(|m| async move {
                    self.run_member(engine, team_run_id, m, task, cancel, events)
                        .await
                        .map(|(text, _)| text)
                }))
                .await;
            let text = self
                .members
                .iter()
                .zip(results)
                .map(|(m, r)| match r {
                    Ok(text) => format!("Agent {}: {text}", m.name),
                    Err(error) => format!("Agent {}: failed: {error}", m.name),
                })
                .collect::<Vec<_>>()
                .join("\n\n");
            return (Ok(text), None);
        }
        let member_id = arg("member_id").unwrap_or_default();
        let Some(member) = self.members.iter().find(|m| m.id == member_id) else {
            let roster: Vec<&str> = self.members.iter().map(|m| m.id.as_str()).collect();
            return (
                Err(format!(
                    "Member with ID {member_id} not found in the team. Choose one of: {}",
                    roster.join(", ")
                )),
                None,
            );
        };
        match self
            .run_member(engine, team_run_id, member, task, cancel, events)
            .await
        {
            Ok((text, run_id)) => (Ok(text), Some(run_id)),
            Err(error) => (Err(error), None),
        }
    }

    /// Runs a member to the end; its answer, or why there is none.
    async fn run_member(
        &self,
        engine: &Engine,
        team_run_id: &str,
        member: &Member,
        task: &str,
        cancel: &CancelToken,
        events: &dyn EventSink,
    ) -> Result<(String, String), String> {
        let req = RunRequest {
            agent_id: member.id.clone(),
            message: task.to_string(),
            session_id: self.base.session_id.clone(),
            user_id: self.base.user_id.clone(),
            dependencies: self.base.dependencies.clone(),
            add_history_to_context: Some(false),
            stream: self.base.stream,
            ..RunRequest::default()
        };
        let context = RunContext {
            parent_run_id: Some(team_run_id.to_string()),
            step: self.context.step.clone(),
            persist: self.context.persist,
        };
        let run = engine
            .run_component(&member.id, member.is_team, req, context, cancel, events)
            .await
            .map_err(|e| format!("member `{}` could not start: {e}", member.id))?;
        let text = run.content_text();
        let run_id = run.run_id().to_string();
        let status = run.status();
        self.responses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(run);
        match status {
            RunStatus::Completed if text.trim().is_empty() => {
                Ok(("No response from the member agent.".into(), run_id))
            }
            RunStatus::Completed => Ok((text, run_id)),
            RunStatus::Paused => Ok((
                format!(
                    "Member '{}' requires human input before continuing.",
                    member.name
                ),
                run_id,
            )),
            RunStatus::Cancelled => Err(format!("Member '{}' was cancelled.", member.name)),
            _ => Err(format!("Member '{}' failed: {text}", member.name)),
        }
    }
}

/// The delegation tool a leader in `mode` is offered, with the ids of its members: also
/// what `GET /teams/{id}` lists as the team's tool.
pub fn delegation_spec(mode: TeamMode, member_ids: &[&str]) -> ToolSpec {
    let task = |what: &str| {
        json!({"type": "string", "description": format!(
            "(str) A clear and concise description of the task {what}, including what \
             a good result looks like."
        )})
    };
    match mode {
        TeamMode::Broadcast => ToolSpec {
            name: DELEGATE_ALL.into(),
            description: "Use this function to send one task to every member agent and \
                              return their responses.\nOne call reaches all members; do not \
                              call it once per member."
                .into(),
            parameters: json!({
                "type": "object",
                "properties": {"task": task("to send to member agents")},
                "required": ["task"],
                "additionalProperties": false,
            }),
            requires_confirmation: false,
        },
        TeamMode::Coordinate | TeamMode::Route => ToolSpec {
            name: DELEGATE_ONE.into(),
            description: "Use this function to delegate a task to the selected team member.".into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "member_id": {
                        "type": "string",
                        "description": "(str) The ID of the member to delegate the task \
                                        to, exactly as it appears in <team_members>.",
                        "enum": member_ids,
                    },
                    "task": task("the member should achieve"),
                },
                "required": ["member_id", "task"],
                "additionalProperties": false,
            }),
            requires_confirmation: false,
        },
    }
}

/// The team block of the leader's system prompt: the roster and how to delegate.
fn team_prompt(team: &TeamDef, members: &[(String, String, Option<String>, bool)]) -> String {
    let mut roster = String::new();
    for (id, name, description, is_team) in members {
        let kind = if *is_team { " type=\"team\"" } else { "" };
        roster.push_str(&format!("<member id=\"{id}\" name=\"{name}\"{kind}>\n"));
        if let Some(d) = description {
            roster.push_str(&format!("  Description: {d}\n"));
        }
        roster.push_str("</member>\n");
    }
    let delegation = match team.mode {
        TeamMode::Coordinate => format!(
            "You work in coordinate mode: you hand sub-tasks to members with `{DELEGATE_ONE}` \
             and write the answer yourself.\n\n\
             - Match each sub-task to the member whose role and description fit it best. When \
             sub-tasks do not depend on each other, delegate them in the same turn instead of \
             one per turn.\n\
             - A member's output is evidence, not your answer. When a member fails, refuses, or \
             returns nothing, say so plainly.\n\
             - Write one answer. Never concatenate member outputs.\n\n\
             Members do not see this conversation. Each one gets only the text you write for \
             it, so carry over everything it needs.\n\
             Member ids are the ids shown in the roster above, used exactly as written."
        ),
        TeamMode::Route => format!(
            "You work in route mode: you hand the request to exactly one member with \
             `{DELEGATE_ONE}`, and its reply is returned to the user as written and ends the \
             run.\n\nMembers do not see this conversation: write the task so it stands on its \
             own.\nMember ids are the ids shown in the roster above, used exactly as written."
        ),
        TeamMode::Broadcast => format!(
            "You work in broadcast mode: one call to `{DELEGATE_ALL}` puts the same task to \
             every member, then you write the answer yourself from their replies.\n\nMembers \
             do not see this conversation: write the task so it stands on its own."
        ),
    };
    format!(
        "<team>\nYou coordinate this team to fulfill the user's request. You have a team of \
         specialists, listed below.\n\n<team_members>\n{roster}</team_members>\n\n\
         <delegation>\n{delegation}\n</delegation>\n</team>"
    )
}

impl Engine {
    /// Validates a team run request (`req.agent_id` is the team id) and stores the team
    /// run as RUNNING.
    pub async fn start_team(&self, req: RunRequest) -> Result<PendingRun, EngineError> {
        self.start_team_in(req, RunContext::top_level()).await
    }

    /// Starts a team run in `context` (top level, as a member of another team, or as a
    /// workflow step).
    pub(super) async fn start_team_in(
        &self,
        mut req: RunRequest,
        context: RunContext,
    ) -> Result<PendingRun, EngineError> {
        // Members share the team's session, so it is named before the run starts.
        req.session_id.get_or_insert_with(new_id);
        let team = self
            .config
            .team(&req.agent_id)
            .ok_or_else(|| EngineError::TeamNotFound(req.agent_id.clone()))?;
        let mut roster = Vec::new();
        let mut members = Vec::new();
        for member in &team.members {
            let (id, is_team) = match member {
                MemberRef::Agent(id) => (id, false),
                MemberRef::Team(id) => (id, true),
            };
            let (name, description) = if is_team {
                let t = self
                    .config
                    .team(id)
                    .ok_or_else(|| EngineError::TeamNotFound(id.clone()))?;
                (t.name.clone(), t.description.clone())
            } else {
                let a = self
                    .config
                    .agent(id)
                    .ok_or_else(|| EngineError::AgentNotFound(id.clone()))?;
                (a.name.clone(), a.description.clone())
            };
            roster.push((id.clone(), name.clone(), description, is_team));
            members.push(Member {
                id: id.clone(),
                name,
                is_team,
            });
        }
        let mut instructions = team.instructions.clone();
        if !instructions.is_empty() {
            instructions.push(String::new());
        }
        instructions.push(team_prompt(team, &roster));
        let leader_agent = AgentDef {
            id: team.id.clone(),
            name: team.name.clone(),
            description: team.description.clone(),
            model: team.model.clone(),
            instructions,
            markdown: team.markdown,
            add_history_to_context: team.add_history_to_context,
            num_history_runs: team.num_history_runs,
            output_schema: None,
            temperature: team.temperature,
            max_tokens: team.max_tokens,
            dependencies: team.dependencies.clone(),
            model_line: team.model_line,
            tools: Vec::new(),
            tool_call_limit: team.tool_call_limit,
            max_answer_bytes: team.max_answer_bytes,
            model_options: team.model_options.clone(),
        };
        let leader = Arc::new(TeamLeader {
            team_id: team.id.clone(),
            team_name: team.name.clone(),
            mode: team.mode,
            members,
            base: req.clone(),
            context: context.clone(),
            responses: Mutex::new(Vec::new()),
        });
        self.start_agent(&leader_agent, req, context, Some(leader))
            .await
    }

    /// Runs an agent or a team to the end in `context`: a team's member or a workflow step.
    /// Boxed, as the runs it starts may delegate and start runs in turn.
    pub(crate) fn run_component<'a>(
        &'a self,
        id: &'a str,
        is_team: bool,
        mut req: RunRequest,
        context: RunContext,
        cancel: &'a CancelToken,
        sink: &'a dyn EventSink,
    ) -> BoxFuture<'a, Result<AnyRun, EngineError>> {
        Box::pin(async move {
            req.agent_id = id.to_string();
            let pending = if is_team {
                self.start_team_in(req, context).await?
            } else {
                let agent = self
                    .config
                    .agent(id)
                    .ok_or_else(|| EngineError::AgentNotFound(id.to_string()))?;
                self.start_agent(agent, req, context, None).await?
            };
            self.execute(pending, cancel, sink).await
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::config::Config;
    use crate::event::Event;
    use crate::kind::Kind;
    use crate::store::Store;
    use crate::testing::{Collect, block_on};

    const CONFIG: &str = r#"
[[agents]]
id = "writer"
name = "Writer"
description = "Writes prose"
model = "test"
instructions = "You write."

[[agents]]
id = "checker"
name = "Checker"
model = "test"
instructions = "You check facts."

[[teams]]
id = "crew"
name = "Crew"
model = "test"
instructions = "Delegate to the right member."
members = ["writer", "checker"]

[[teams]]
id = "router"
model = "test"
mode = "route"
members = ["writer", "checker"]

[[teams]]
id = "all"
model = "test"
mode = "broadcast"
members = ["writer", "checker"]

[[teams]]
id = "outer"
model = "test"
members = ["crew", "writer"]
"#;

    fn engine() -> Engine {
        let config = Config::from_toml_str(CONFIG, Path::new("agents.toml")).expect("config");
        Engine::new(Arc::new(config), Store::open_in_memory().expect("store"))
    }

    fn request(team: &str, message: &str) -> RunRequest {
        RunRequest {
            agent_id: team.into(),
            message: message.into(),
            session_id: Some("s1".into()),
            stream: true,
            ..RunRequest::default()
        }
    }

    /// Runs a team, returning its run object and every event (name, run id, parent run id).
    fn run(engine: &Engine, team: &str, message: &str) -> (TeamRunOutput, Vec<Event>) {
        let events = Collect::default();
        let run = block_on(async {
            let pending = engine
                .start_team(request(team, message))
                .await
                .expect("start");
            engine
                .execute(pending, &CancelToken::new(), &events)
                .await
                .expect("execute")
        });
        let AnyRun::Team(run) = run else {
            panic!("not a team run")
        };
        (run, events.events())
    }

    fn names(events: &[Event]) -> Vec<&str> {
        events
            .iter()
            .filter(|e| !e.event.ends_with("RunContent"))
            .map(|e| e.event)
            .collect()
    }

    #[test]
    fn coordinate_delegates_and_answers_from_the_member_result() {
        let engine = engine();
        let (run, events) = run(&engine, "crew", "checker: is the sky blue?");
        assert_eq!(run.status, RunStatus::Completed);
        assert_eq!(
            names(&events),
            [
                "TeamRunStarted",
                "TeamModelRequestStarted",
                "TeamModelRequestCompleted",
                "TeamToolCallStarted",
                "RunStarted",
                "ModelRequestStarted",
                "ModelRequestCompleted",
                "RunContentCompleted",
                "RunCompleted",
                "TeamToolCallCompleted",
                "TeamModelRequestStarted",
                "TeamModelRequestCompleted",
                "TeamRunContentCompleted",
                "TeamRunCompleted",
            ]
        );
        assert_eq!(run.member_responses.len(), 1);
        let member = run.member_responses[0].as_agent().expect("agent run");
        assert_eq!(member.agent_id, "checker");
        assert_eq!(member.parent_run_id.as_deref(), Some(run.run_id.as_str()));
        assert_eq!(member.input.input_content, "checker: is the sky blue?");
        let member_started = events.iter().find(|e| e.event == "RunStarted").unwrap();
        assert_eq!(
            member_started.source.parent_run_id(),
            Some(run.run_id.as_str())
        );
        let tool = &run.tools.as_ref().expect("tools")[0];
        assert_eq!(tool.tool_name, DELEGATE_ONE);
        assert_eq!(tool.child_run_id.as_deref(), Some(member.run_id.as_str()));
        assert_eq!(tool.result.as_deref(), Some(member.content_text().as_str()));
        let content = run.content.as_ref().and_then(Value::as_str).unwrap();
        assert!(
            content.starts_with("Tool results: delegate_task_to_member: Test model reply to"),
            "{content}"
        );
        // The leader's prompt lists the members.
        let system = run.messages[0].content.as_deref().unwrap();
        assert!(
            system.starts_with("Delegate to the right member.\n\n<team>"),
            "{system}"
        );
        assert!(system.contains(
            "<member id=\"writer\" name=\"Writer\">\n  Description: Writes prose\n</member>"
        ));
        // Both runs are stored; the member under the team run.
        let stored = block_on(engine.store().list_runs("s1")).unwrap();
        assert_eq!(stored.len(), 2);
        assert_eq!(stored[0].session_type, Kind::Team);
        let kinds: Vec<_> = stored.iter().map(|s| s.run.kind()).collect();
        assert!(kinds.contains(&Kind::Team) && kinds.contains(&Kind::Agent));
        let team_row = stored.iter().find(|s| s.run.kind() == Kind::Team).unwrap();
        assert_eq!(team_row.run.status(), RunStatus::Completed);
        let AnyRun::Team(stored_team) = &team_row.run else {
            unreachable!()
        };
        assert_eq!(stored_team.member_responses.len(), 1);
    }

    #[test]
    fn naming_two_members_delegates_to_both_at_once() {
        let (run, events) = run(&engine(), "crew", "writer and checker, please help");
        assert_eq!(run.member_responses.len(), 2);
        let started = events
            .iter()
            .filter(|e| e.event == "TeamToolCallStarted")
            .count();
        assert_eq!(started, 2);
        let mut members: Vec<_> = run
            .member_responses
            .iter()
            .map(|r| r.component_id().to_string())
            .collect();
        members.sort();
        assert_eq!(members, ["checker", "writer"]);
    }

    #[test]
    fn route_returns_the_member_answer_as_is() {
        let (run, events) = run(&engine(), "router", "writer: a poem");
        assert_eq!(run.status, RunStatus::Completed);
        let member = run.member_responses[0].content_text();
        assert_eq!(run.content, Some(Value::String(member.clone())));
        assert!(
            member.starts_with("Test model reply to \"writer: a poem\""),
            "{member}"
        );
        let leader_requests = events
            .iter()
            .filter(|e| e.event == "TeamModelRequestStarted")
            .count();
        assert_eq!(leader_requests, 1, "no second leader call after routing");
        assert!(run.tools.as_ref().unwrap()[0].stop_after_tool_call);
    }

    #[test]
    fn broadcast_sends_the_task_to_every_member() {
        let (run, _) = run(&engine(), "all", "Describe the moon");
        assert_eq!(run.member_responses.len(), 2);
        let result = run.tools.as_ref().unwrap()[0].result.clone().unwrap();
        assert!(
            result.contains("Agent Writer: Test model reply to \"Describe the moon\""),
            "{result}"
        );
        assert!(
            result.contains("Agent Checker: Test model reply"),
            "{result}"
        );
        assert_eq!(run.tools.as_ref().unwrap()[0].tool_name, DELEGATE_ALL);
    }

    #[test]
    fn nested_teams_chain_parent_run_ids() {
        let engine = engine();
        let (outer, events) = run(&engine, "outer", "crew: research this");
        assert_eq!(outer.status, RunStatus::Completed);
        let AnyRun::Team(inner) = &outer.member_responses[0] else {
            panic!("the crew member is a team run")
        };
        assert_eq!(inner.parent_run_id.as_deref(), Some(outer.run_id.as_str()));
        let AnyRun::Agent(agent) = &inner.member_responses[0] else {
            panic!("an agent run")
        };
        assert_eq!(agent.parent_run_id.as_deref(), Some(inner.run_id.as_str()));
        assert!(events.iter().any(|e| e.event == "TeamRunStarted"
            && e.source.parent_run_id() == Some(outer.run_id.as_str())));
        assert_eq!(block_on(engine.store().list_runs("s1")).unwrap().len(), 3);
    }

    #[test]
    fn cancelling_the_team_cancels_its_running_member() {
        let engine = engine();
        let cancel = CancelToken::new();
        let collected = Collect::default();
        let c = cancel.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(400));
            c.cancel();
        });
        let run = block_on(async {
            let pending = engine
                .start_team(request(
                    "crew",
                    "writer: slowly [test:slow] tell a long story",
                ))
                .await
                .expect("start");
            engine
                .execute(pending, &cancel, &collected)
                .await
                .expect("execute")
        });
        let events = collected.events();
        assert_eq!(run.status(), RunStatus::Cancelled);
        let AnyRun::Team(run) = run else {
            unreachable!()
        };
        assert_eq!(run.member_responses[0].status(), RunStatus::Cancelled);
        let tail: Vec<&str> = events.iter().rev().take(4).map(|e| e.event).collect();
        assert_eq!(
            tail,
            [
                "TeamRunCompleted",
                "TeamRunCancelled",
                "RunCompleted",
                "RunCancelled"
            ]
        );
        assert!(!events.iter().any(|e| e.event == "TeamToolCallCompleted"));
        let stored = block_on(engine.store().list_runs("s1")).unwrap();
        assert!(
            stored
                .iter()
                .all(|s| s.run.status() == RunStatus::Cancelled)
        );
    }
}
