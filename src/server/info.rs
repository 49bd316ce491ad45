//! Informational endpoints: `/`, `/health`, `/info`, `/config`, `/openapi.json`,
//! `/agents`, `/teams`, `/workflows`.
//!
//! They describe the server from its options and `agents.toml`, in AgentOS's shapes (spec
//! §12): keys AgentOS leaves out when a setting has its default value are left out here too.
//!
//! # Compatibility
//!
//! Team members and workflow step agents are configured agents with the shared store, so
//! they are described in full (`db_id`, `sessions`, `description`), where AgentOS's
//! reference members, having no database of their own, show neither. A team's `tools` are
//! the delegation tool its leader is offered, `member_id` with the `enum` of its member
//! ids.

use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::response::ok;
use crate::config::{
    AgentDef, Config, DEFAULT_TOOL_CALL_LIMIT, MemberRef, StepDef, StepKind, TeamDef, WorkflowDef,
};
use crate::model::{self, ModelInfo};
use crate::tools::ToolSpec;

/// The id of agentos's one database (the SQLite store), as `db_id` in AgentOS's shapes.
pub const DB_ID: &str = "agentos";
/// The session table name reported to clients (AgentOS's default name).
pub const SESSION_TABLE: &str = "agno_sessions";
/// The AgentOS version whose API agentos speaks, reported as `agno_version`.
pub const AGNO_API_VERSION: &str = "3.1.10";
/// `num_history_runs` when an agent does not set it; AgentOS omits it at this value.
const DEFAULT_NUM_HISTORY_RUNS: usize = 3;

const OPENAPI: &str = include_str!("openapi.json");

/// `GET /`: the server's name and where to look next.
pub fn root(state: &Arc<AppState>) -> ApiResult {
    Ok(ok(&json!({
        "name": state.options.name,
        "health": "/health",
        "info": "/info",
        "docs": "/docs",
    })))
}

/// `GET /health`: always ok while the server answers.
pub fn health(state: &Arc<AppState>) -> ApiResult {
    Ok(ok(&json!({
        "status": "ok",
        "instantiated_at": iso_micros(state.started_at),
    })))
}

/// `GET /info`: identity, versions, component counts and the auth mode.
pub fn info(state: &Arc<AppState>) -> ApiResult {
    let options = &state.options;
    let auth_mode = if options.security_key.is_some() {
        "security_key"
    } else {
        "none"
    };
    Ok(ok(&json!({
        "os_id": options.os_id,
        "name": options.name,
        "os_version": env!("CARGO_PKG_VERSION"),
        "agno_version": AGNO_API_VERSION,
        "agent_count": state.engine.config().agents.len(),
        "team_count": state.engine.config().teams.len(),
        "workflow_count": state.engine.config().workflows.len(),
        "mcp": {"enabled": false, "path": null, "oauth": null, "tool_run_endpoint": false},
        "auth_mode": auth_mode,
        "user_isolation": false,
    })))
}

/// `GET /config`: models, databases and components. Like AgentOS, it has no `name`.
pub fn config(state: &Arc<AppState>) -> ApiResult {
    let config = state.engine.config();
    let mut models: Vec<Value> = Vec::new();
    let model_specs = config
        .agents
        .iter()
        .map(|a| &a.model)
        .chain(config.teams.iter().map(|t| &t.model));
    for spec in model_specs {
        let model = model_info(config, spec);
        let entry = json!({"id": model.id, "provider": model.provider});
        if !models.contains(&entry) {
            models.push(entry);
        }
    }
    let agents: Vec<Value> = config
        .agents
        .iter()
        .map(|agent| {
            let model = model_info(config, &agent.model);
            json!({
                "id": agent.id,
                "name": agent.name,
                "db_id": DB_ID,
                "model": {"id": model.id, "provider": model.provider},
                "sandboxed": false,
            })
        })
        .collect();
    let teams: Vec<Value> = config
        .teams
        .iter()
        .map(|team| {
            let model = model_info(config, &team.model);
            json!({
                "id": team.id,
                "name": team.name,
                "db_id": DB_ID,
                "mode": team.mode.as_str(),
                "model": {"id": model.id, "provider": model.provider},
                "sandboxed": false,
            })
        })
        .collect();
    let workflows: Vec<Value> = config.workflows.iter().map(workflow_summary).collect();
    let no_dbs = json!({"dbs": []});
    Ok(ok(&json!({
        "os_id": state.options.os_id,
        "description": null,
        "available_models": models,
        "databases": [DB_ID],
        "session": {"dbs": [{
            "db_id": DB_ID,
            "domain_config": {"display_name": DB_ID},
            "tables": [SESSION_TABLE],
        }]},
        "metrics": no_dbs,
        "memory": no_dbs,
        "learning": no_dbs,
        "filesystem": {"namespaces": []},
        "knowledge": {"dbs": [], "knowledge_instances": []},
        "evals": no_dbs,
        "traces": no_dbs,
        "queue": {"durable": false, "queue_per_session": false},
        "agents": agents,
        "teams": teams,
        "workflows": workflows,
        "interfaces": [],
        "company": null,
    })))
}

/// `GET /openapi.json`: the OpenAPI 3.1 description of this server's API.
pub fn openapi(state: &Arc<AppState>) -> ApiResult {
    static DOC: OnceLock<Option<Value>> = OnceLock::new();
    let Some(base) = DOC
        .get_or_init(|| serde_json::from_str(OPENAPI).ok())
        .as_ref()
    else {
        tracing::error!("the embedded OpenAPI document is not valid JSON");
        return Err(ApiError::internal("OpenAPIError"));
    };
    let mut doc = base.clone();
    doc["info"]["title"] = json!(state.options.name);
    doc["info"]["version"] = json!(env!("CARGO_PKG_VERSION"));
    if state.options.security_key.is_some() {
        doc["security"] = json!([{"HTTPBearer": []}]);
    }
    Ok(ok(&doc))
}

/// `GET /agents`: every agent, in file order.
pub async fn agents(state: &Arc<AppState>) -> ApiResult {
    let config = state.engine.config();
    let tools = AgentTools::of(state, &config.agents).await;
    let list: Vec<Value> = config
        .agents
        .iter()
        .map(|a| agent_json(config, a, &tools))
        .collect();
    Ok(ok(&list))
}

/// `GET /agents/{id}`.
pub async fn agent(state: &Arc<AppState>, id: &str) -> ApiResult {
    let config = state.engine.config();
    match config.agent(id) {
        Some(agent) => {
            let tools = AgentTools::of(state, std::slice::from_ref(agent)).await;
            Ok(ok(&agent_json(config, agent, &tools)))
        }
        None => Err(ApiError::not_found("Agent not found")),
    }
}

/// `GET /teams`: every team, in file order, each as `GET /teams/{id}` describes it.
pub async fn teams(state: &Arc<AppState>) -> ApiResult {
    let config = state.engine.config();
    let tools = AgentTools::of(state, &config.agents).await;
    let list: Vec<Value> = config
        .teams
        .iter()
        .map(|t| team_json(config, t, &tools))
        .collect();
    Ok(ok(&list))
}

/// `GET /teams/{id}`.
pub async fn team(state: &Arc<AppState>, id: &str) -> ApiResult {
    let config = state.engine.config();
    match config.team(id) {
        Some(team) => {
            let tools = AgentTools::of(state, &config.agents).await;
            Ok(ok(&team_json(config, team, &tools)))
        }
        None => Err(ApiError::not_found("Team not found")),
    }
}

/// `GET /workflows`: every workflow, in file order, without its steps.
pub fn workflows(state: &Arc<AppState>) -> ApiResult {
    let list: Vec<Value> = state
        .engine
        .config()
        .workflows
        .iter()
        .map(workflow_summary)
        .collect();
    Ok(ok(&list))
}

/// `GET /workflows/{id}`: the workflow with its steps.
pub async fn workflow(state: &Arc<AppState>, id: &str) -> ApiResult {
    let config = state.engine.config();
    match config.workflow(id) {
        Some(workflow) => {
            let tools = AgentTools::of(state, &config.agents).await;
            Ok(ok(&workflow_json(config, workflow, &tools)))
        }
        None => Err(ApiError::not_found("Workflow not found")),
    }
}

/// An agent's model as AgentOS names it, described by its provider without reading any
/// API key, so a missing key never hides an agent.
fn model_info(config: &Config, spec: &str) -> ModelInfo {
    match config.locate_model(spec, None) {
        Ok(resolved) => model::describe(&resolved),
        // Validated configs always locate their models; a reference that does not is
        // reported as written.
        Err(_) => {
            let (provider, id) = spec.split_once(':').unwrap_or((spec, spec));
            ModelInfo {
                id: id.to_string(),
                provider: provider.to_string(),
                class_name: "Model".into(),
            }
        }
    }
}

/// AgentOS's `AgentResponse` for one agent. Settings at their defaults are omitted, as
/// AgentOS does (an agent without tools has no `tools` key); instructions are shown raw,
/// with `{placeholders}` unfilled.
fn agent_json(config: &Config, agent: &AgentDef, tools: &AgentTools) -> Value {
    let model = model_info(config, &agent.model);
    let mut out = Map::new();
    out.insert("id".into(), json!(agent.id));
    out.insert("name".into(), json!(agent.name));
    out.insert("db_id".into(), json!(DB_ID));
    out.insert("filesystem".into(), json!(false));
    if let Some(description) = &agent.description {
        out.insert("description".into(), json!(description));
    }
    out.insert("is_factory".into(), json!(false));
    out.insert(
        "model".into(),
        json!({"name": model.class_name, "model": model.id, "provider": model.provider}),
    );
    let specs = tools.of_agent(&agent.id);
    if !specs.is_empty() {
        let list = specs.iter().map(tool_json).collect();
        out.insert("tools".into(), tools_json(list, agent.tool_call_limit));
    }

    out.insert(
        "sessions".into(),
        sessions_json(agent.add_history_to_context, agent.num_history_runs),
    );
    out.insert("reasoning".into(), json!({"reasoning": false}));
    if let Some(system) = system_message_json(
        agent.description.as_deref(),
        &agent.instructions,
        agent.markdown,
    ) {
        out.insert("system_message".into(), system);
    }

    if let Some(schema) = &agent.output_schema {
        let name = schema
            .get("title")
            .and_then(Value::as_str)
            .unwrap_or("JSONSchema");
        out.insert(
            "response_settings".into(),
            json!({"output_schema_name": name}),
        );
    }
    out.insert("is_component".into(), json!(false));
    out.insert("sandboxed".into(), json!(false));
    Value::Object(out)
}

/// The tools each agent offers its model, read before an agent, team or workflow is
/// described (starting an agent's MCP servers is asynchronous, describing is not).
#[derive(Default)]
struct AgentTools(std::collections::HashMap<String, Vec<ToolSpec>>);

impl AgentTools {
    async fn of(state: &Arc<AppState>, agents: &[AgentDef]) -> Self {
        let mut tools = std::collections::HashMap::new();
        for agent in agents.iter().filter(|a| !a.tools.is_empty()) {
            tools.insert(agent.id.clone(), state.engine.tool_specs(agent).await);
        }
        AgentTools(tools)
    }

    fn of_agent(&self, id: &str) -> &[ToolSpec] {
        self.0.get(id).map_or(&[], Vec::as_slice)
    }
}

/// The `tools` object of an agent or team: its tools, and `tool_call_limit` when it is not
/// the default.
fn tools_json(tools: Vec<Value>, tool_call_limit: usize) -> Value {
    let mut out = Map::new();
    out.insert("tools".into(), Value::Array(tools));
    if tool_call_limit != DEFAULT_TOOL_CALL_LIMIT {
        out.insert("tool_call_limit".into(), json!(tool_call_limit));
    }
    Value::Object(out)
}

/// One tool as AgentOS lists it: `name`, `description`, the JSON Schema of its
/// `parameters`, and `requires_confirmation` only when it is set.
fn tool_json(spec: &ToolSpec) -> Value {
    let mut out = Map::new();
    out.insert("name".into(), json!(spec.name));
    out.insert("description".into(), json!(spec.description));
    out.insert("parameters".into(), spec.parameters.clone());
    if spec.requires_confirmation {
        out.insert("requires_confirmation".into(), json!(true));
    }
    Value::Object(out)
}

/// The delegation tool a team's leader is offered, as its model sees it: `name`,
/// `description` and the JSON Schema of its `parameters`.
pub fn delegation_tool(config: &Config, team: &TeamDef) -> Value {
    let ids: Vec<&str> = team
        .members
        .iter()
        .map(MemberRef::id)
        .filter(|id| config.agent(id).is_some() || config.team(id).is_some())
        .collect();
    let spec = crate::engine::delegation_spec(team.mode, &ids);
    json!({"name": spec.name, "description": spec.description, "parameters": spec.parameters})
}

/// AgentOS's `TeamResponse` for one team; members are described in full, sub-teams as
/// teams. Settings at their defaults are omitted, as AgentOS does.
fn team_json(config: &Config, team: &TeamDef, tools: &AgentTools) -> Value {
    let model = model_info(config, &team.model);
    let mut out = Map::new();
    out.insert("id".into(), json!(team.id));
    out.insert("name".into(), json!(team.name));
    out.insert("db_id".into(), json!(DB_ID));
    if let Some(description) = &team.description {
        out.insert("description".into(), json!(description));
    }
    out.insert("mode".into(), json!(team.mode.as_str()));
    out.insert(
        "model".into(),
        json!({"name": model.class_name, "model": model.id, "provider": model.provider}),
    );
    out.insert(
        "tools".into(),
        tools_json(vec![delegation_tool(config, team)], team.tool_call_limit),
    );
    out.insert(
        "sessions".into(),
        sessions_json(team.add_history_to_context, team.num_history_runs),
    );
    out.insert("reasoning".into(), json!({"reasoning": false}));
    if let Some(system) = system_message_json(
        team.description.as_deref(),
        &team.instructions,
        team.markdown,
    ) {
        out.insert("system_message".into(), system);
    }
    out.insert("streaming".into(), json!({"stream_member_events": true}));
    let members: Vec<Value> = team
        .members
        .iter()
        .filter_map(|member| match member {
            MemberRef::Agent(id) => config.agent(id).map(|a| agent_json(config, a, tools)),
            MemberRef::Team(id) => config.team(id).map(|t| team_json(config, t, tools)),
        })
        .collect();
    out.insert("members".into(), Value::Array(members));
    out.insert("is_factory".into(), json!(false));
    out.insert("is_component".into(), json!(false));
    out.insert("sandboxed".into(), json!(false));
    Value::Object(out)
}

/// AgentOS's `WorkflowSummaryResponse`: the `GET /workflows` item and the `/config` entry.
fn workflow_summary(workflow: &WorkflowDef) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), json!(workflow.id));
    out.insert("name".into(), json!(workflow.name));
    if let Some(description) = &workflow.description {
        out.insert("description".into(), json!(description));
    }
    out.insert("db_id".into(), json!(DB_ID));
    out.insert("is_factory".into(), json!(false));
    out.insert("is_component".into(), json!(false));
    out.insert("sandboxed".into(), json!(false));
    Value::Object(out)
}

/// AgentOS's `WorkflowResponse`: `db_id` before `description` (unlike the summary) and the
/// steps listed recursively.
fn workflow_json(config: &Config, workflow: &WorkflowDef, tools: &AgentTools) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), json!(workflow.id));
    out.insert("name".into(), json!(workflow.name));
    out.insert("db_id".into(), json!(DB_ID));
    if let Some(description) = &workflow.description {
        out.insert("description".into(), json!(description));
    }
    let steps: Vec<Value> = workflow
        .steps
        .iter()
        .map(|s| step_json(config, s, tools))
        .collect();
    out.insert("steps".into(), Value::Array(steps));
    out.insert("workflow_agent".into(), json!(false));
    out.insert("is_factory".into(), json!(false));
    out.insert("is_component".into(), json!(false));
    out.insert("sandboxed".into(), json!(false));
    Value::Object(out)
}

/// A step as `GET /workflows/{id}` lists it: `name`, `description` (when set), `type`, the
/// agent or team it runs, and nested `steps` (a router's choices too) and `else_steps`.
fn step_json(config: &Config, step: &StepDef, tools: &AgentTools) -> Value {
    let mut out = Map::new();
    out.insert("name".into(), json!(step.name));
    if let Some(description) = &step.description {
        out.insert("description".into(), json!(description));
    }
    out.insert("type".into(), json!(step_type(&step.kind)));
    let nested = |steps: &[StepDef]| -> Value {
        Value::Array(steps.iter().map(|s| step_json(config, s, tools)).collect())
    };
    match &step.kind {
        StepKind::Agent { id, .. } => {
            if let Some(agent) = config.agent(id) {
                out.insert("agent".into(), agent_json(config, agent, tools));
            }
        }
        StepKind::Team { id, .. } => {
            if let Some(team) = config.team(id) {
                out.insert("team".into(), team_json(config, team, tools));
            }
        }
        StepKind::Parallel(steps) | StepKind::Loop { steps, .. } => {
            out.insert("steps".into(), nested(steps));
        }
        StepKind::Condition {
            steps, else_steps, ..
        } => {
            out.insert("steps".into(), nested(steps));
            if !else_steps.is_empty() {
                out.insert("else_steps".into(), nested(else_steps));
            }
        }
        StepKind::Router { choices, .. } => {
            out.insert("steps".into(), nested(choices));
        }
    }
    Value::Object(out)
}

/// AgentOS's name for a kind of step (`StepOutput.step_type`, the step listing's `type`).
pub fn step_type(kind: &StepKind) -> &'static str {
    match kind {
        StepKind::Agent { .. } | StepKind::Team { .. } => "Step",
        StepKind::Parallel(_) => "Parallel",
        StepKind::Condition { .. } => "Condition",
        StepKind::Loop { .. } => "Loop",
        StepKind::Router { .. } => "Router",
    }
}

/// `sessions` of an agent or team: the table, and history settings that differ from
/// AgentOS's defaults.
fn sessions_json(add_history_to_context: bool, num_history_runs: usize) -> Value {
    let mut sessions = Map::new();
    sessions.insert("session_table".into(), json!(SESSION_TABLE));
    if add_history_to_context {
        sessions.insert("add_history_to_context".into(), json!(true));
    }
    if num_history_runs != DEFAULT_NUM_HISTORY_RUNS {
        sessions.insert("num_history_runs".into(), json!(num_history_runs));
    }
    Value::Object(sessions)
}

/// `system_message` of an agent or team; `None` when nothing is set.
fn system_message_json(
    description: Option<&str>,
    instructions: &[String],
    markdown: bool,
) -> Option<Value> {
    let mut system = Map::new();
    if let Some(description) = description {
        system.insert("description".into(), json!(description));
    }
    if !instructions.is_empty() {
        system.insert("instructions".into(), json!(instructions.join("\n")));
    }
    if markdown {
        system.insert("markdown".into(), json!(true));
    }
    (!system.is_empty()).then_some(Value::Object(system))
}

/// `2026-11-29T01:23:24.946019Z`: UTC with microseconds, as `/health` reports it.
pub fn iso_micros(time: SystemTime) -> String {
    let (secs, micros) = match time.duration_since(UNIX_EPOCH) {
        Ok(d) => (
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            d.subsec_micros(),
        ),
        Err(_) => (0, 0),
    };
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Both are small by construction (1..=12 and 1..=31).
    (year, month as u32, day as u32)
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use http_body_util::BodyExt;
    use hyper::StatusCode;

    use super::*;
    use crate::engine::Engine;
    use crate::server::ServerOptions;
    use crate::store::Store;

    const TOML: &str = r#"
[[agents]]
id = "story-writer"
name = "Story Writer"
model = "test"
instructions = "You write very short stories. The robot's name is {robot_name}."
add_history_to_context = true

[[agents]]
id = "full"
description = "Does everything"
model = "openai:gpt-4o-mini"
instructions = ["Line one.", "Line two."]
markdown = true
num_history_runs = 5
output_schema = { title = "MovieScript", type = "object", properties = { name = { type = "string" } } }

[[agents]]
id = "local"
model = "ollama:llama3.2"
"#;

    fn state(key: Option<&str>) -> Arc<AppState> {
        let config = Config::from_toml_str(TOML, Path::new("agents.toml")).unwrap();
        let store = Store::open_in_memory().unwrap();
        let engine = Arc::new(Engine::new(Arc::new(config), store));
        let options = ServerOptions {
            security_key: key.map(str::to_string),
            name: "Test OS".into(),
            os_id: "test-os".into(),
            ..ServerOptions::default()
        };
        Arc::new(AppState::new(engine, options))
    }

    fn body(result: ApiResult) -> (StatusCode, Value) {
        let resp = match result {
            Ok(resp) => resp,
            Err(err) => err.into_response(),
        };
        let status = resp.status();
        let bytes = futures_collect(resp);
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    fn block<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    fn futures_collect(resp: hyper::Response<crate::server::body::Body>) -> Vec<u8> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            resp.into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec()
        })
    }

    fn keys(v: &Value) -> Vec<&str> {
        v.as_object().unwrap().keys().map(String::as_str).collect()
    }

    #[test]
    fn root_and_health() {
        let s = state(None);
        let (status, v) = body(root(&s));
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            v,
            json!({"name":"Test OS","health":"/health","info":"/info","docs":"/docs"})
        );
        let (_, v) = body(health(&s));
        assert_eq!(keys(&v), ["status", "instantiated_at"]);
        let at = v["instantiated_at"].as_str().unwrap();
        assert_eq!(at.len(), "2026-11-29T01:23:24.946019Z".len(), "{at}");
        assert!(at.ends_with('Z'));
    }

    #[test]
    fn iso_timestamps() {
        let t = UNIX_EPOCH + Duration::from_micros(1_795_915_404_946_019);
        assert_eq!(iso_micros(t), "2026-11-29T01:23:24.946019Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_868_799);
        assert_eq!(iso_micros(t), "2000-02-29T23:59:59.000000Z");
        assert_eq!(iso_micros(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn info_reports_counts_and_auth_mode() {
        let (_, v) = body(info(&state(None)));
        assert_eq!(
            keys(&v),
            [
                "os_id",
                "name",
                "os_version",
                "agno_version",
                "agent_count",
                "team_count",
                "workflow_count",
                "mcp",
                "auth_mode",
                "user_isolation"
            ]
        );
        assert_eq!(v["os_id"], "test-os");
        assert_eq!(v["agent_count"], 3);
        assert_eq!(v["auth_mode"], "none");
        assert_eq!(
            v["mcp"],
            json!({"enabled":false,"path":null,"oauth":null,"tool_run_endpoint":false})
        );
        let (_, v) = body(info(&state(Some("k"))));
        assert_eq!(v["auth_mode"], "security_key");
    }

    #[test]
    fn config_has_agentos_keys() {
        let (_, v) = body(config(&state(None)));
        assert_eq!(
            keys(&v),
            [
                "os_id",
                "description",
                "available_models",
                "databases",
                "session",
                "metrics",
                "memory",
                "learning",
                "filesystem",
                "knowledge",
                "evals",
                "traces",
                "queue",
                "agents",
                "teams",
                "workflows",
                "interfaces",
                "company"
            ]
        );
        assert_eq!(
            v["available_models"],
            json!([
                {"id":"test","provider":"Test"},
                {"id":"gpt-4o-mini","provider":"OpenAI"},
                {"id":"llama3.2","provider":"Ollama"}
            ])
        );
        assert_eq!(
            v["agents"][0],
            json!({"id":"story-writer","name":"Story Writer","db_id":DB_ID,
                   "model":{"id":"test","provider":"Test"},"sandboxed":false})
        );
        assert_eq!(v["session"]["dbs"][0]["tables"], json!([SESSION_TABLE]));
    }

    #[test]
    fn agents_follow_agentos_shape() {
        let s = state(None);
        let (_, list) = body(block(agents(&s)));
        assert_eq!(list.as_array().unwrap().len(), 3);
        assert_eq!(
            list[0],
            json!({
                "id":"story-writer","name":"Story Writer","db_id":DB_ID,"filesystem":false,
                "is_factory":false,
                "model":{"name":"TestModel","model":"test","provider":"Test"},
                "sessions":{"session_table":SESSION_TABLE,"add_history_to_context":true},
                "reasoning":{"reasoning":false},
                "system_message":{"instructions":
                    "You write very short stories. The robot's name is {robot_name}."},
                "is_component":false,"sandboxed":false
            })
        );
        let (status, full) = body(block(agent(&s, "full")));
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            keys(&full),
            [
                "id",
                "name",
                "db_id",
                "filesystem",
                "description",
                "is_factory",
                "model",
                "sessions",
                "reasoning",
                "system_message",
                "response_settings",
                "is_component",
                "sandboxed"
            ]
        );
        assert_eq!(full["name"], "full");
        assert_eq!(
            full["model"],
            json!({"name":"OpenAIChat","model":"gpt-4o-mini","provider":"OpenAI"})
        );
        assert_eq!(
            full["sessions"],
            json!({"session_table":SESSION_TABLE,"num_history_runs":5})
        );
        assert_eq!(
            full["system_message"],
            json!({"description":"Does everything","instructions":"Line one.\nLine two.","markdown":true})
        );
        assert_eq!(
            full["response_settings"],
            json!({"output_schema_name":"MovieScript"})
        );
        let (_, local) = body(block(agent(&s, "local")));
        assert_eq!(local["model"]["name"], "OpenAILike");
        assert!(local.get("system_message").is_none());

        assert_eq!(
            body(block(agent(&s, "nope"))),
            (StatusCode::NOT_FOUND, json!({"detail":"Agent not found"}))
        );
    }

    const FLOWS: &str = r#"
[[agents]]
id = "researcher"
name = "Researcher"
description = "Finds facts"
model = "openai:gpt-4o-mini"
instructions = "You find facts."

[[agents]]
id = "writer"
model = "test"

[[teams]]
id = "research-team"
name = "Research Team"
model = "openai:gpt-4o-mini"
instructions = "Delegate to the right member."
members = ["researcher", "writer"]

[[teams]]
id = "all"
model = "test"
mode = "broadcast"
tool_call_limit = 4
members = ["writer", "research-team"]

[[workflows]]
id = "content-workflow"
name = "Content Workflow"
description = "Two step workflow"

[[workflows.steps]]
name = "outline"
agent = "researcher"

[[workflows.steps]]
name = "both"
type = "parallel"
steps = [{ name = "draft", agent = "writer" }, { name = "team", team = "all" }]

[[workflows.steps]]
name = "check"
description = "Only when short"
type = "condition"
when = "input.size() < 10"
steps = [{ name = "again", agent = "writer" }]
else = [{ name = "skip", agent = "writer" }]

[[workflows]]
id = "bare"

[[workflows.steps]]
name = "only"
type = "loop"
max_iterations = 2
steps = [{ name = "once", agent = "writer" }]
"#;

    fn flows() -> Arc<AppState> {
        let config = Config::from_toml_str(FLOWS, Path::new("agents.toml")).unwrap();
        let store = Store::open_in_memory().unwrap();
        let engine = Arc::new(Engine::new(Arc::new(config), store));
        Arc::new(AppState::new(engine, ServerOptions::default()))
    }

    #[test]
    fn teams_follow_agentos_shape() {
        let s = flows();
        let (status, list) = body(block(teams(&s)));
        assert_eq!(status, StatusCode::OK);
        assert_eq!(list.as_array().unwrap().len(), 2);
        let (_, team) = body(block(team(&s, "research-team")));
        assert_eq!(list[0], team, "list items and details are the same object");
        assert_eq!(
            keys(&team),
            [
                "id",
                "name",
                "db_id",
                "mode",
                "model",
                "tools",
                "sessions",
                "reasoning",
                "system_message",
                "streaming",
                "members",
                "is_factory",
                "is_component",
                "sandboxed"
            ]
        );
        assert_eq!(team["mode"], "coordinate");
        assert_eq!(
            team["model"],
            json!({"name":"OpenAIChat","model":"gpt-4o-mini","provider":"OpenAI"})
        );
        assert_eq!(
            team["tools"],
            json!({"tools": [{
                "name": "delegate_task_to_member",
                "description": "Use this function to delegate a task to the selected team member.",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "member_id": {
                            "type": "string",
                            "description": "(str) The ID of the member to delegate the task to, exactly as it appears in <team_members>.",
                            "enum": ["researcher", "writer"]
                        },
                        "task": {
                            "type": "string",
                            "description": "(str) A clear and concise description of the task the member should achieve, including what a good result looks like."
                        }
                    },
                    "required": ["member_id", "task"],
                    "additionalProperties": false
                }
            }]})
        );
        assert_eq!(team["sessions"], json!({"session_table": SESSION_TABLE}));
        assert_eq!(
            team["system_message"],
            json!({"instructions": "Delegate to the right member."})
        );
        assert_eq!(team["streaming"], json!({"stream_member_events": true}));
        assert_eq!(team["members"][0]["id"], "researcher");
        assert_eq!(team["members"][0]["description"], "Finds facts");
        assert_eq!(team["members"][1]["model"]["name"], "TestModel");

        // Broadcast: the one-call tool; a sub-team member described as a team.
        let (_, all) = body(block(super::team(&s, "all")));
        assert_eq!(all["mode"], "broadcast");
        let tool = &all["tools"]["tools"][0];
        assert_eq!(tool["name"], "delegate_task_to_members");
        assert_eq!(tool["parameters"]["required"], json!(["task"]));
        assert_eq!(
            tool["description"],
            "Use this function to send one task to every member agent and return their \
             responses.\nOne call reaches all members; do not call it once per member."
        );
        assert_eq!(all["tools"]["tool_call_limit"], 4);
        assert!(all.get("system_message").is_none());
        assert_eq!(all["members"][1]["mode"], "coordinate");
        assert_eq!(all["members"][1]["members"][0]["id"], "researcher");

        assert_eq!(
            body(block(super::team(&s, "x"))),
            (StatusCode::NOT_FOUND, json!({"detail":"Team not found"}))
        );
    }

    #[test]
    fn workflows_follow_agentos_shape() {
        let s = flows();
        let (_, list) = body(workflows(&s));
        assert_eq!(
            list,
            json!([
                {"id":"content-workflow","name":"Content Workflow","description":"Two step workflow",
                 "db_id":DB_ID,"is_factory":false,"is_component":false,"sandboxed":false},
                {"id":"bare","name":"bare","db_id":DB_ID,"is_factory":false,"is_component":false,
                 "sandboxed":false}
            ])
        );
        let (status, wf) = body(block(workflow(&s, "content-workflow")));
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            keys(&wf),
            [
                "id",
                "name",
                "db_id",
                "description",
                "steps",
                "workflow_agent",
                "is_factory",
                "is_component",
                "sandboxed"
            ]
        );
        let steps = &wf["steps"];
        assert_eq!(keys(&steps[0]), ["name", "type", "agent"]);
        assert_eq!(steps[0]["type"], "Step");
        assert_eq!(steps[0]["agent"]["id"], "researcher");
        assert_eq!(steps[1]["type"], "Parallel");
        assert_eq!(steps[1]["steps"][0]["agent"]["id"], "writer");
        assert_eq!(steps[1]["steps"][1]["type"], "Step");
        assert_eq!(steps[1]["steps"][1]["team"]["id"], "all");
        assert_eq!(
            keys(&steps[2]),
            ["name", "description", "type", "steps", "else_steps"]
        );
        assert_eq!(steps[2]["type"], "Condition");
        assert_eq!(steps[2]["else_steps"][0]["name"], "skip");
        let (_, bare) = body(block(workflow(&s, "bare")));
        assert!(bare.get("description").is_none());
        assert_eq!(bare["steps"][0]["type"], "Loop");
        assert_eq!(bare["steps"][0]["steps"][0]["name"], "once");
        assert_eq!(
            body(block(workflow(&s, "x"))),
            (
                StatusCode::NOT_FOUND,
                json!({"detail":"Workflow not found"})
            )
        );
    }

    #[test]
    fn config_and_info_list_teams_and_workflows() {
        let s = flows();
        let (_, v) = body(config(&s));
        assert_eq!(
            v["teams"][0],
            json!({"id":"research-team","name":"Research Team","db_id":DB_ID,"mode":"coordinate",
                   "model":{"id":"gpt-4o-mini","provider":"OpenAI"},"sandboxed":false})
        );
        assert_eq!(v["teams"][1]["mode"], "broadcast");
        let (_, list) = body(workflows(&s));
        assert_eq!(v["workflows"], list);
        let (_, info) = body(info(&s));
        assert_eq!(info["team_count"], 2);
        assert_eq!(info["workflow_count"], 2);
    }

    #[test]
    fn openapi_describes_every_route() {
        let (status, doc) = body(openapi(&state(None)));
        assert_eq!(status, StatusCode::OK);
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["info"]["title"], "Test OS");
        assert!(doc.get("security").is_none());
        let paths = doc["paths"].as_object().unwrap();
        let routes: &[(&str, &[&str])] = &[
            ("/", &["get"]),
            ("/health", &["get"]),
            ("/info", &["get"]),
            ("/config", &["get"]),
            ("/openapi.json", &["get"]),
            ("/agents", &["get"]),
            ("/agents/{agent_id}", &["get"]),
            ("/agents/{agent_id}/runs", &["get", "post"]),
            ("/agents/{agent_id}/runs/{run_id}", &["get"]),
            ("/agents/{agent_id}/runs/{run_id}/cancel", &["post"]),
            ("/agents/{agent_id}/runs/{run_id}/resume", &["post"]),
            ("/agents/{agent_id}/runs/{run_id}/continue", &["post"]),
            ("/teams", &["get"]),
            ("/teams/{team_id}", &["get"]),
            ("/teams/{team_id}/runs", &["get", "post"]),
            ("/teams/{team_id}/runs/{run_id}", &["get"]),
            ("/teams/{team_id}/runs/{run_id}/cancel", &["post"]),
            ("/teams/{team_id}/runs/{run_id}/resume", &["post"]),
            ("/workflows", &["get"]),
            ("/workflows/{workflow_id}", &["get"]),
            ("/workflows/{workflow_id}/runs", &["get", "post"]),
            ("/workflows/{workflow_id}/runs/{run_id}", &["get"]),
            ("/workflows/{workflow_id}/runs/{run_id}/cancel", &["post"]),
            ("/workflows/{workflow_id}/runs/{run_id}/resume", &["post"]),
            ("/workflows/{workflow_id}/runs/{run_id}/continue", &["post"]),
            ("/sessions", &["get", "post", "delete"]),
            ("/sessions/{session_id}", &["get", "patch", "delete"]),
            ("/sessions/{session_id}/rename", &["post"]),
            ("/sessions/{session_id}/runs", &["get"]),
            ("/sessions/{session_id}/run-previews", &["get"]),
            ("/sessions/{session_id}/runs/{run_id}", &["get"]),
        ];
        assert_eq!(paths.len(), routes.len());
        for (path, methods) in routes {
            let item = paths.get(*path).unwrap_or_else(|| panic!("{path} missing"));
            let mut have: Vec<&str> = item
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            have.sort_unstable();
            let mut want = methods.to_vec();
            want.sort_unstable();
            assert_eq!(have, want, "{path}");
        }
        // Every $ref points at a schema that exists.
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let text = serde_json::to_string(&doc).unwrap();
        for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = &piece[..piece.find('"').unwrap()];
            assert!(schemas.contains_key(name), "missing schema {name}");
        }
        let (_, secured) = body(openapi(&state(Some("k"))));
        assert_eq!(secured["security"], json!([{"HTTPBearer": []}]));
    }
}
