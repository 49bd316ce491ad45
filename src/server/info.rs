//! Informational endpoints: `/`, `/health`, `/info`, `/config`, `/openapi.json`,
//! `/agents`, `/teams`, `/workflows`.
//!
//! They describe the server from its options and `agents.toml`, in AgentOS's shapes (spec
//! §12): keys AgentOS leaves out when a setting has its default value are left out here too.
//! agentos has no teams or workflows, so those lists are empty and every id is unknown.

use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::response::ok;
use crate::config::{AgentDef, Config, ProviderKind};

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
        "team_count": 0,
        "workflow_count": 0,
        "mcp": {"enabled": false, "path": null, "oauth": null, "tool_run_endpoint": false},
        "auth_mode": auth_mode,
        "user_isolation": false,
    })))
}

/// `GET /config`: models, databases and components. Like AgentOS, it has no `name`.
pub fn config(state: &Arc<AppState>) -> ApiResult {
    let config = state.engine.config();
    let mut models: Vec<Value> = Vec::new();
    for agent in &config.agents {
        let model = ModelInfo::of(config, &agent.model);
        let entry = json!({"id": model.id, "provider": model.provider});
        if !models.contains(&entry) {
            models.push(entry);
        }
    }
    let agents: Vec<Value> = config
        .agents
        .iter()
        .map(|agent| {
            let model = ModelInfo::of(config, &agent.model);
            json!({
                "id": agent.id,
                "name": agent.name,
                "db_id": DB_ID,
                "model": {"id": model.id, "provider": model.provider},
                "sandboxed": false,
            })
        })
        .collect();
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
        "teams": [],
        "workflows": [],
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
        eprintln!("agentos: the embedded OpenAPI document is not valid JSON");
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
pub fn agents(state: &Arc<AppState>) -> ApiResult {
    let config = state.engine.config();
    let list: Vec<Value> = config
        .agents
        .iter()
        .map(|a| agent_json(config, a))
        .collect();
    Ok(ok(&list))
}

/// `GET /agents/{id}`.
pub fn agent(state: &Arc<AppState>, id: &str) -> ApiResult {
    let config = state.engine.config();
    match config.agent(id) {
        Some(agent) => Ok(ok(&agent_json(config, agent))),
        None => Err(ApiError::not_found("Agent not found")),
    }
}

/// `GET /teams`: agentos defines no teams.
pub fn teams(_state: &Arc<AppState>) -> ApiResult {
    Ok(ok(&json!([])))
}

/// `GET /teams/{id}`: always unknown.
pub fn team(_state: &Arc<AppState>, _id: &str) -> ApiResult {
    Err(ApiError::not_found("Team not found"))
}

/// `GET /workflows`: agentos defines no workflows.
pub fn workflows(_state: &Arc<AppState>) -> ApiResult {
    Ok(ok(&json!([])))
}

/// `GET /workflows/{id}`: always unknown.
pub fn workflow(_state: &Arc<AppState>, _id: &str) -> ApiResult {
    Err(ApiError::not_found("Workflow not found"))
}

/// An agent's model as AgentOS names it: the model class, the model id and the provider.
struct ModelInfo {
    class: &'static str,
    id: String,
    provider: String,
}

impl ModelInfo {
    /// Describes a validated `provider:model` reference (or `test`) without reading any
    /// API key, so a missing key never hides an agent.
    fn of(config: &Config, spec: &str) -> Self {
        let (provider, model) = match spec.split_once(':') {
            Some((p, m)) => (p, m),
            None => (spec, spec),
        };
        match config.providers.get(provider) {
            Some(def) => ModelInfo {
                class: match def.kind {
                    ProviderKind::OpenAi if def.name == "openai" => "OpenAIChat",
                    ProviderKind::OpenAi => "OpenAILike",
                    ProviderKind::Anthropic => "Claude",
                    ProviderKind::Test => "TestModel",
                },
                id: model.to_string(),
                provider: def.display_name.clone(),
            },
            None => ModelInfo {
                class: "Model",
                id: model.to_string(),
                provider: provider.to_string(),
            },
        }
    }
}

/// AgentOS's `AgentResponse` for one agent. Settings at their defaults are omitted, as
/// AgentOS does; instructions are shown raw, with `{placeholders}` unfilled.
fn agent_json(config: &Config, agent: &AgentDef) -> Value {
    let model = ModelInfo::of(config, &agent.model);
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
        json!({"name": model.class, "model": model.id, "provider": model.provider}),
    );

    let mut sessions = Map::new();
    sessions.insert("session_table".into(), json!(SESSION_TABLE));
    if agent.add_history_to_context {
        sessions.insert("add_history_to_context".into(), json!(true));
    }
    if agent.num_history_runs != DEFAULT_NUM_HISTORY_RUNS {
        sessions.insert("num_history_runs".into(), json!(agent.num_history_runs));
    }
    out.insert("sessions".into(), Value::Object(sessions));
    out.insert("reasoning".into(), json!({"reasoning": false}));

    let mut system = Map::new();
    if let Some(description) = &agent.description {
        system.insert("description".into(), json!(description));
    }
    if !agent.instructions.is_empty() {
        system.insert("instructions".into(), json!(agent.instructions.join("\n")));
    }
    if agent.markdown {
        system.insert("markdown".into(), json!(true));
    }
    if !system.is_empty() {
        out.insert("system_message".into(), Value::Object(system));
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
        let store = Arc::new(Store::open_in_memory().unwrap());
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
        let (_, list) = body(agents(&s));
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
        let (status, full) = body(agent(&s, "full"));
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
        let (_, local) = body(agent(&s, "local"));
        assert_eq!(local["model"]["name"], "OpenAILike");
        assert!(local.get("system_message").is_none());

        assert_eq!(
            body(agent(&s, "nope")),
            (StatusCode::NOT_FOUND, json!({"detail":"Agent not found"}))
        );
    }

    #[test]
    fn teams_and_workflows_are_empty() {
        let s = state(None);
        assert_eq!(body(teams(&s)), (StatusCode::OK, json!([])));
        assert_eq!(body(workflows(&s)), (StatusCode::OK, json!([])));
        assert_eq!(
            body(team(&s, "x")),
            (StatusCode::NOT_FOUND, json!({"detail":"Team not found"}))
        );
        assert_eq!(
            body(workflow(&s, "x")),
            (
                StatusCode::NOT_FOUND,
                json!({"detail":"Workflow not found"})
            )
        );
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
            ("/workflows", &["get"]),
            ("/workflows/{workflow_id}", &["get"]),
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
