//! The run engine: one agent turn from request to stored run object.
//!
//! It builds the prompt (instructions templated from session state, dependencies,
//! metadata and user id; history from the store), calls the model, emits AgentOS events to
//! a sink, and stores the run. It never prints and knows nothing about HTTP: the terminal,
//! `--jsonl` and the server are all sinks ([`EventSink`]) of the same [`Event`]s.
//!
//! A run is one future: its model call, the tool calls of a round, a team's delegations
//! and a workflow's parallel steps are futures within it, polled concurrently. Nothing in
//! it blocks a thread, so a server runs thousands at once on a few threads, and the CLI
//! runs the same engine on a single-threaded runtime. Cancelling drops whatever the run
//! waits on (a model request, a tool call, a member run) at once.

mod execute;
mod resume;
mod team;
mod tools;
mod workflow;

pub use resume::ToolDecision;
pub use team::{TeamLeader, delegation_spec};

use crate::kind::Kind;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{Map, Value};

use crate::cancel::CancelToken;
use crate::config::{AgentDef, Config, ConfigError};
use crate::event::{EventSink, StepContext};
use crate::model::{Model, Providers};
use crate::run::{
    AnyRun, Message, Metrics, Role, RunInput, RunOutput, RunStatus, ToolExecution, new_id, now_secs,
};
use crate::schema::OutputSchema;
use crate::store::{Session, Store, StoreError};
use crate::template;
use crate::tools::Toolbox;

/// Everything a caller can ask of one agent run.
#[derive(Clone, Debug, Default)]
pub struct RunRequest {
    pub agent_id: String,
    pub message: String,
    /// Continue this session; a new one is created when absent or unknown.
    pub session_id: Option<String>,
    pub user_id: Option<String>,
    /// A caller-chosen run id (lets a client cancel a run before it learns the id).
    pub run_id: Option<String>,
    /// Merged over the stored session state.
    pub session_state: Option<Map<String, Value>>,
    pub dependencies: Option<Map<String, Value>>,
    pub metadata: Option<Map<String, Value>>,
    /// Overrides the agent's own output schema.
    pub output_schema: Option<OutputSchema>,
    /// `provider:model` replacing the agent's model for this run.
    pub model_override: Option<String>,
    /// Overrides the agent's `add_history_to_context`.
    pub add_history_to_context: Option<bool>,
    /// Ask the model to stream (deltas become `RunContent` events as they arrive).
    pub stream: bool,
}

/// Where a run sits: on its own, as a team member, or in a workflow step.
#[derive(Clone, Debug, Default)]
pub struct RunContext {
    /// The team (or workflow) run this run works for; stored as `parent_run_id`.
    pub parent_run_id: Option<String>,
    /// The workflow step running it (its events carry the step's fields).
    pub step: Option<StepContext>,
    /// Store the run in its own row. Workflow steps keep their runs inside the workflow
    /// run instead.
    pub persist: bool,
}

impl RunContext {
    /// A run a client started.
    pub fn top_level() -> Self {
        RunContext {
            persist: true,
            ..RunContext::default()
        }
    }
}

/// Why a run could not start. Once a run has started, failures are part of the run
/// object (`status: ERROR` / `CANCELLED`), not errors.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("agent '{0}' not found")]
    AgentNotFound(String),
    #[error("team '{0}' not found")]
    TeamNotFound(String),
    #[error("workflow '{0}' not found")]
    WorkflowNotFound(String),
    /// The session exists but belongs to another user. The server answers it as an
    /// unknown session (404 `Session not found`, as AgentOS); the command line says it.
    #[error("session '{0}' belongs to another user: give its user id (-u), or another session")]
    SessionNotFound(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("run '{0}' already exists")]
    RunExists(String),
    /// An MCP server of the agent could not be started.
    #[error("{0}")]
    ToolsUnavailable(String),
    #[error("No runs found for run ID {0}")]
    RunNotFound(String),
    #[error("Cannot continue run {run_id}: run is {}", status.as_str().to_ascii_lowercase())]
    NotPaused { run_id: String, status: RunStatus },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The engine shared by the CLI and the server: configuration, store, model clients (one
/// HTTP client per provider) and tools.
pub struct Engine {
    config: Arc<Config>,
    store: Store,
    providers: Providers,
    models: Mutex<HashMap<String, Arc<dyn Model>>>,
    tools: crate::tools::Registry,
    /// This process in the store, once registered: journals and cross-process cancel.
    presence: std::sync::OnceLock<Arc<crate::presence::Presence>>,
}

/// A run that passed validation and is stored as RUNNING; [`Engine::execute`] runs it.
pub enum PendingRun {
    /// An agent's or a team leader's model loop.
    Turn(Box<PendingTurn>),
    /// A workflow's steps.
    Workflow(Box<workflow::PendingWorkflow>),
}

impl PendingRun {
    pub fn run_id(&self) -> &str {
        match self {
            PendingRun::Turn(t) => &t.run.run_id,
            PendingRun::Workflow(w) => &w.run.run_id,
        }
    }

    pub fn session_id(&self) -> &str {
        match self {
            PendingRun::Turn(t) => &t.run.session_id,
            PendingRun::Workflow(w) => &w.run.session_id,
        }
    }

    /// A run taken up again after a pause (`continue`), under its first id.
    pub fn is_continued(&self) -> bool {
        matches!(self, PendingRun::Turn(t) if t.resume.is_some())
    }

    /// A run of its own, not a team member's or a workflow step's.
    pub fn is_top_level(&self) -> bool {
        match self {
            PendingRun::Turn(t) => t.run.parent_run_id.is_none() && t.context.persist,
            PendingRun::Workflow(_) => true,
        }
    }
}

/// An agent's (or a team leader's) run, ready for its model loop.
pub struct PendingTurn {
    /// The run object so far (status RUNNING, no content yet).
    pub run: RunOutput,
    /// The models to call, in the order tried: the agent's, then its fallbacks.
    models: Vec<Arc<dyn Model>>,
    messages: Vec<Message>,
    schema: Option<OutputSchema>,
    temperature: Option<f64>,
    max_tokens: Option<u32>,
    reasoning_budget: Option<u32>,
    cache_prompt: bool,
    stream: bool,
    started: Instant,
    toolbox: Toolbox,
    tool_call_limit: usize,
    /// The longest answer kept, in bytes ([`AgentDef::max_answer_bytes`]).
    max_answer_bytes: usize,
    /// For a continued run: the paused tool calls, with the human's decisions.
    resume: Option<Vec<ToolExecution>>,
    /// For a continued run: the events stored before it paused.
    prior_events: Vec<Value>,
    context: RunContext,
    /// Set when this run is a team's leader.
    leader: Option<Arc<TeamLeader>>,
}

/// The prepared parts of a run, before the model is called.
struct Prepared<'a> {
    agent: &'a AgentDef,
    models: Vec<Arc<dyn Model>>,
    session: Session,
    session_state: Value,
    /// What is sent to the model: system prompt, history, the new user message.
    messages: Vec<Message>,
    /// What the run stores as its own: the system prompt and the new user message.
    own_messages: Vec<Message>,
    schema: Option<OutputSchema>,
}

impl Engine {
    pub fn new(config: Arc<Config>, store: Store) -> Self {
        let tools = crate::tools::Registry::from_config(&config);
        Engine {
            config,
            store,
            providers: Providers::default(),
            models: Mutex::new(HashMap::new()),
            tools,
            presence: std::sync::OnceLock::new(),
        }
    }

    /// Journals the top-level runs executed from now on and lets other processes cancel
    /// them.
    pub fn set_presence(&self, presence: Arc<crate::presence::Presence>) {
        let _ = self.presence.set(presence);
    }

    pub fn presence(&self) -> Option<&Arc<crate::presence::Presence>> {
        self.presence.get()
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The tools `agent` offers its model, for describing it (`GET /agents`): MCP servers
    /// are started as a run would start them; one that cannot be leaves its tools out,
    /// with a warning in the log.
    pub async fn tool_specs(&self, agent: &AgentDef) -> Vec<crate::tools::ToolSpec> {
        let (specs, missing) = self.tools.describe(&agent.tools).await;
        if let Some(reason) = missing {
            tracing::warn!(agent = %agent.id, "tools left out of the agent's description: {reason}");
        }
        specs
    }

    /// Stores how a run ended. A run another process settled meanwhile (it took this
    /// process for stopped while it was stalled) keeps what that process stored: the
    /// outcome here is logged, not written.
    pub(crate) async fn store_outcome(
        &self,
        run: AnyRun,
        events: Vec<Value>,
        session_state: Value,
    ) -> Result<(), EngineError> {
        // The run's last journaled events go first, so its followers have them all once
        // they find it ended.
        if let Some(presence) = self.presence() {
            presence.flush_journal(crate::run::RunRecord::run_id(&run));
        }
        match self.store.finish_run(run, events, session_state).await {
            Err(StoreError::NotLive { run_id, status }) => {
                tracing::warn!(
                    run_id = %run_id,
                    stored = status.as_str(),
                    "the run ended here after another process settled it; its outcome here \
                     is not stored"
                );
                Ok(())
            }
            Err(StoreError::RunNotFound(run_id)) => {
                // Deleting a session cancels its runs, and deletes them when their process
                // is too slow to answer.
                tracing::warn!(
                    run_id = %run_id,
                    "the run's session was deleted while it ran; its outcome is not stored"
                );
                Ok(())
            }
            other => Ok(other?),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The model client for `spec`, built once and shared by later runs.
    fn model(&self, spec: &str, line: Option<usize>) -> Result<Arc<dyn Model>, ConfigError> {
        let mut models = self.models.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(model) = models.get(spec) {
            return Ok(model.clone());
        }
        let resolved = self.config.locate_model(spec, line)?;
        let model = self.providers.model(&resolved);
        models.insert(spec.to_string(), model.clone());
        Ok(model)
    }

    /// The models a run of `agent` calls, in the order tried: its `model` and then its
    /// `fallback_models`, or only `override_spec` when the request names a model.
    fn models_for(
        &self,
        agent: &AgentDef,
        override_spec: Option<&str>,
    ) -> Result<Vec<Arc<dyn Model>>, ConfigError> {
        if let Some(spec) = override_spec {
            return Ok(vec![self.model(spec, None)?]);
        }
        let options = &agent.model_options;
        let mut models = vec![self.model(&agent.model, Some(agent.model_line))?];
        for spec in &options.fallback_models {
            models.push(self.model(spec, Some(options.fallback_line))?);
        }
        Ok(models)
    }

    /// The tools `agent` may call.
    async fn toolbox_for(&self, agent: &AgentDef) -> Result<Toolbox, EngineError> {
        self.tools
            .toolbox(&agent.tools)
            .await
            .map_err(|e| EngineError::ToolsUnavailable(format!("agent `{}`: {e}", agent.id)))
    }

    /// Checks that an agent exists and its model can be used (its key variable included),
    /// without running it. `agentos run` refuses such a run up front (exit 2); the server
    /// lets it start and end `ERROR` naming the variable, as a provider's refusal would.
    /// With `fallback_models`, a model whose key is missing is a failed call the next
    /// model takes over, in both: the run is refused only when no model of the chain can
    /// be called.
    pub fn validate(&self, req: &RunRequest) -> Result<(), EngineError> {
        let no_fallbacks = crate::config::ModelOptions::default();
        let (spec, line, options) = if let Some(team) = self.config.team(&req.agent_id) {
            (
                team.model.as_str(),
                Some(team.model_line),
                &team.model_options,
            )
        } else if self.config.workflow(&req.agent_id).is_some() {
            return Ok(());
        } else {
            let agent = self
                .config
                .agent(&req.agent_id)
                .ok_or_else(|| EngineError::AgentNotFound(req.agent_id.clone()))?;
            match &req.model_override {
                Some(spec) => (spec.as_str(), None, &no_fallbacks),
                None => (
                    agent.model.as_str(),
                    Some(agent.model_line),
                    &agent.model_options,
                ),
            }
        };
        let primary = match self.config.resolve_model(spec, line) {
            Ok(_) => return Ok(()),
            Err(error) => error,
        };
        // A missing key falls back; a reference that does not resolve at all does not.
        self.config.locate_model(spec, line)?;
        let callable = options.fallback_models.iter().any(|fallback| {
            self.config
                .resolve_model(fallback, Some(options.fallback_line))
                .is_ok()
        });
        if callable {
            Ok(())
        } else {
            Err(primary.into())
        }
    }

    /// Runs one agent turn, emitting events to `sink` as they happen, and returns the
    /// stored run object. Model failures and cancellation are reported in the run's
    /// `status`, never as `Err`.
    pub async fn run(
        &self,
        req: RunRequest,
        cancel: &CancelToken,
        sink: &dyn EventSink,
    ) -> Result<AnyRun, EngineError> {
        let pending = self.start(req).await?;
        self.execute(pending, cancel, sink).await
    }

    /// Starts a run of the `kind` component `req.agent_id` names.
    pub async fn start_kind(&self, kind: Kind, req: RunRequest) -> Result<PendingRun, EngineError> {
        match kind {
            Kind::Agent => self.start(req).await,
            Kind::Team => self.start_team(req).await,
            Kind::Workflow => self.start_workflow(req).await,
        }
    }

    /// Starts a run of whatever `req.agent_id` names: an agent, a team or a workflow
    /// (their ids share one namespace).
    pub async fn start_any(&self, req: RunRequest) -> Result<PendingRun, EngineError> {
        let id = req.agent_id.as_str();
        if self.config.team(id).is_some() {
            self.start_team(req).await
        } else if self.config.workflow(id).is_some() {
            self.start_workflow(req).await
        } else {
            self.start(req).await
        }
    }

    /// Validates a request and stores the run as RUNNING: everything that can refuse a
    /// run happens here, before any event is emitted.
    pub async fn start(&self, req: RunRequest) -> Result<PendingRun, EngineError> {
        let agent = self
            .config
            .agent(&req.agent_id)
            .ok_or_else(|| EngineError::AgentNotFound(req.agent_id.clone()))?;
        self.start_agent(agent, req, RunContext::top_level(), None)
            .await
    }

    /// Starts a run of `agent` (a configured agent, or a team's leader) in `context`.
    async fn start_agent(
        &self,
        agent: &AgentDef,
        req: RunRequest,
        context: RunContext,
        leader: Option<Arc<TeamLeader>>,
    ) -> Result<PendingRun, EngineError> {
        self.start_turn(agent, req, context, leader)
            .await
            .map(|turn| PendingRun::Turn(Box::new(turn)))
    }

    async fn start_turn(
        &self,
        agent: &AgentDef,
        req: RunRequest,
        context: RunContext,
        leader: Option<Arc<TeamLeader>>,
    ) -> Result<PendingTurn, EngineError> {
        let started = Instant::now();
        let session_type = if leader.is_some() {
            Kind::Team
        } else {
            Kind::Agent
        };
        let prepared = self.prepare(agent, &req, session_type).await?;
        let Prepared {
            agent,
            models,
            session,
            session_state,
            messages,
            own_messages,
            schema,
        } = prepared;

        let run_id = req.run_id.clone().unwrap_or_else(new_id);
        let content_type = schema
            .as_ref()
            .map_or_else(|| "str".to_string(), |s| s.content_type.clone());
        let run = RunOutput {
            run_id: run_id.clone(),
            agent_id: agent.id.clone(),
            agent_name: agent.name.clone(),
            parent_run_id: context.parent_run_id.clone(),
            session_id: session.session_id.clone(),
            user_id: req.user_id.clone(),
            content: None,
            content_type,
            model_provider_data: None,
            reasoning_content: None,
            model: models[0].info().id.clone(),
            model_provider: models[0].info().provider.clone(),
            session_state: session_state.clone(),
            created_at: now_secs(),
            status: RunStatus::Running,
            cancellation_stage: None,
            workflow_step_id: None,
            metrics: Metrics::default(),
            messages: own_messages,
            metadata: req.metadata.clone().map(Value::Object),
            tools: Some(Vec::new()),
            requirements: None,
            input: RunInput {
                input_content: req.message.clone(),
            },
        };
        // Tools first: an MCP server that cannot start refuses the run before it is stored.
        let toolbox = self.toolbox_for(agent).await?;
        if context.persist {
            let stored = match &leader {
                Some(leader) => leader.team_run(&run, Vec::new()),
                None => AnyRun::Agent(run.clone()),
            };
            self.store
                .begin_run(session, stored, session_type)
                .await
                .map_err(|e| match e {
                    StoreError::RunExists(id) => EngineError::RunExists(id),
                    other => EngineError::Store(other),
                })?;
        }
        Ok(PendingTurn {
            run,
            models,
            messages,
            schema,
            temperature: agent.temperature,
            max_tokens: agent.max_tokens,
            reasoning_budget: agent.model_options.thinking_budget,
            cache_prompt: agent.model_options.cache_prompt,
            stream: req.stream,
            started,
            toolbox,
            tool_call_limit: agent.tool_call_limit,
            max_answer_bytes: agent.max_answer_bytes,
            resume: None,
            prior_events: Vec::new(),
            context,
            leader,
        })
    }

    /// The session a run goes into: the one `req` names (refused when it belongs to another
    /// user), or a new one of `session_type` for `component_id`; and its state with the
    /// request's `session_state` merged over it.
    async fn open_session(
        &self,
        req: &RunRequest,
        session_type: Kind,
        component_id: &str,
    ) -> Result<(Session, Map<String, Value>), EngineError> {
        let now = now_secs();
        let existing = match &req.session_id {
            Some(id) => self.store.get_session(id).await?,
            None => None,
        };
        let mut session = match existing {
            Some(session) => {
                if session.user_id.is_some() && session.user_id != req.user_id {
                    return Err(EngineError::SessionNotFound(session.session_id));
                }
                session
            }
            None => Session {
                session_id: req.session_id.clone().unwrap_or_else(new_id),
                session_type,
                component_id: component_id.to_string(),
                user_id: req.user_id.clone(),
                session_name: None,
                session_state: Value::Object(Map::new()),
                metadata: None,
                session_data: None,
                created_at: now,
                updated_at: now,
            },
        };
        if session.user_id.is_none() {
            session.user_id.clone_from(&req.user_id);
        }
        // A server run's span learns the id of a session created here with a new id (a
        // given id is in the span from the start; recording it again would log it twice);
        // elsewhere this is a no-op.
        if req.session_id.is_none() {
            tracing::Span::current()
                .record("session_id", tracing::field::display(&session.session_id));
        }

        let mut state = match &session.session_state {
            Value::Object(map) => map.clone(),
            _ => Map::new(),
        };
        if let Some(update) = &req.session_state {
            for (k, v) in update {
                state.insert(k.clone(), v.clone());
            }
        }

        Ok((session, state))
    }

    /// Resolves model and session, and builds the messages to send.
    async fn prepare<'a>(
        &'a self,
        agent: &'a AgentDef,
        req: &RunRequest,
        session_type: Kind,
    ) -> Result<Prepared<'a>, EngineError> {
        let models = self.models_for(agent, req.model_override.as_deref())?;
        let schema = match (&req.output_schema, &agent.output_schema) {
            (Some(schema), _) => Some(schema.clone()),
            (None, Some(raw)) => Some(
                OutputSchema::from_schema(raw)
                    .map_err(|e| EngineError::InvalidRequest(e.to_string()))?,
            ),
            (None, None) => None,
        };

        let now = now_secs();
        let (session, state) = self.open_session(req, session_type, &agent.id).await?;

        let empty = Map::new();
        let mut dependencies = agent.dependencies.clone();
        if let Some(given) = &req.dependencies {
            for (k, v) in given {
                dependencies.insert(k.clone(), v.clone());
            }
        }
        let sources = [
            &state,
            &dependencies,
            req.metadata.as_ref().unwrap_or(&empty),
        ];
        let mut system = agent
            .instructions
            .iter()
            .map(|line| template::render(line, &sources, req.user_id.as_deref()))
            .collect::<Vec<_>>()
            .join("\n");
        if agent.markdown {
            if !system.is_empty() {
                system.push_str("\n\n");
            }
            system.push_str("Use markdown to format your answers.");
        }

        let mut messages = Vec::new();
        if !system.is_empty() {
            messages.push(Message {
                id: new_id(),
                content: Some(system),
                role: Role::System,
                created_at: now,
                ..Message::default()
            });
        }
        let with_history = req
            .add_history_to_context
            .unwrap_or(agent.add_history_to_context);
        if with_history && agent.num_history_runs > 0 && req.session_id.is_some() {
            for mut m in self
                .store
                .history_messages(&session.session_id, agent.num_history_runs, None)
                .await?
            {
                m.from_history = true;
                messages.push(m);
            }
        }
        let user = Message {
            id: new_id(),
            content: Some(req.message.clone()),
            role: Role::User,
            created_at: now,
            ..Message::default()
        };
        // History messages are sent to the model but stay stored with their own runs.
        let mut own_messages: Vec<Message> = messages
            .iter()
            .filter(|m| m.role == Role::System)
            .cloned()
            .collect();
        own_messages.push(user.clone());
        messages.push(user);
        Ok(Prepared {
            agent,
            models,
            session,
            session_state: Value::Object(state),
            messages,
            own_messages,
            schema,
        })
    }
}
