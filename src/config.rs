//! `agents.toml`: finding, parsing and validating agent definitions, and the providers,
//! tools and MCP servers they use. Teams and workflows are in the `flow` submodule.
//!
//! Parsing happens in two stages: `Raw*` serde structs that reject unknown keys, then
//! validation into [`Config`], after which nothing downstream handles unsettled options.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use toml::Spanned;

use crate::template;

mod flow;

pub use flow::{
    DEFAULT_MAX_ITERATIONS, LOOP_VARIABLES, MAX_ITERATIONS_LIMIT, MemberRef,
    ROUTER_CHOICES_VARIABLE, RouteBy, STEP_INPUT_VARIABLES, StepDef, StepKind, TeamDef, TeamMode,
    WorkflowDef, for_each_step, steps_summary,
};

/// A validated agents file.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it was read from (used in error messages).
    pub path: PathBuf,
    pub agents: Vec<AgentDef>,
    /// `[[teams]]`, in file order. Agents, teams and workflows have distinct ids.
    pub teams: Vec<TeamDef>,
    /// `[[workflows]]`, in file order.
    pub workflows: Vec<WorkflowDef>,
    /// Built-in providers (`openai`, `ollama`, `test`) merged with `[providers.*]`.
    pub providers: BTreeMap<String, ProviderDef>,
    /// Command tools from `[tools.NAME]`.
    pub tools: BTreeMap<String, CommandToolDef>,
    /// MCP servers from `[mcp.NAME]`.
    pub mcp: BTreeMap<String, McpServerDef>,
}

/// One `[[agents]]` entry, with defaults applied.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentDef {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    /// `provider:model`, or `test`.
    pub model: String,
    /// Instruction lines, joined with newlines into the system prompt.
    pub instructions: Vec<String>,
    pub markdown: bool,
    pub add_history_to_context: bool,
    pub num_history_runs: usize,
    pub output_schema: Option<Value>,
    pub temperature: Option<f64>,
    pub max_tokens: Option<u32>,
    /// Default values for `{placeholders}`; a run's own `dependencies` override them.
    pub dependencies: serde_json::Map<String, Value>,
    /// 1-based line of the agent's `model` key, for errors found when the model is resolved.
    pub model_line: usize,
    /// The tools the agent may call, in the order its `tools` list names them.
    pub tools: Vec<ToolRef>,
    /// Upper bound on the tool calls one run makes.
    pub tool_call_limit: usize,
    /// The longest answer a run keeps, in bytes; past it the run ends `ERROR`.
    pub max_answer_bytes: usize,
    /// Fallbacks, extended thinking and prompt caching.
    pub model_options: ModelOptions,
}

/// What an agent or a team leader asks of its models beyond the one `model`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelOptions {
    /// `provider:model` references tried in order when a model call fails.
    pub fallback_models: Vec<String>,
    /// 1-based line of the `fallback_models` key.
    pub fallback_line: usize,
    /// `thinking.budget_tokens`: reasoning tokens before the answer (Anthropic models).
    pub thinking_budget: Option<u32>,
    /// `cache_prompt`: mark the system prompt and history cacheable (Anthropic models).
    pub cache_prompt: bool,
}

/// The smallest thinking budget Anthropic accepts.
pub const MIN_THINKING_BUDGET: u32 = 1024;

/// One entry of an agent's `tools` list, checked against `[tools.*]` and `[mcp.*]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToolRef {
    /// `NAME`: the command tool `[tools.NAME]`.
    Command(String),
    /// `mcp:SERVER` (every tool of the server) or `mcp:SERVER/TOOL` (one of them).
    Mcp {
        server: String,
        tool: Option<String>,
    },
}

impl std::fmt::Display for ToolRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ToolRef::Command(name) => f.write_str(name),
            ToolRef::Mcp { server, tool: None } => write!(f, "mcp:{server}"),
            ToolRef::Mcp {
                server,
                tool: Some(tool),
            } => write!(f, "mcp:{server}/{tool}"),
        }
    }
}

/// A `[tools.NAME]` command tool, with defaults applied.
#[derive(Clone, Debug, PartialEq)]
pub struct CommandToolDef {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments object; its root has `"type": "object"`.
    pub parameters: Value,
    /// The program and its arguments, run without a shell. A relative program path
    /// (`./bin/x`) is already resolved against the agents file's directory.
    pub command: Vec<String>,
    /// Working directory, absolute; `None` runs the command in agentos's current directory.
    pub cwd: Option<PathBuf>,
    pub timeout: Duration,
    /// Cap on the bytes kept from each of stdout and stderr.
    pub max_output_bytes: usize,
    /// Every variable passed through from agentos's environment: [`DEFAULT_TOOL_ENV`]
    /// followed by the ones the `env` key lists.
    pub env: Vec<String>,
    pub requires_confirmation: bool,
}

/// An `[mcp.NAME]` server, started over stdio.
#[derive(Clone, Debug, PartialEq)]
pub struct McpServerDef {
    pub name: String,
    pub command: String,
    pub args: Vec<String>,
    /// Variables set for the server process.
    pub env: BTreeMap<String, String>,
    /// Working directory, absolute; `None` starts the server in agentos's current directory.
    pub cwd: Option<PathBuf>,
    /// Time allowed for one `tools/call`.
    pub timeout: Duration,
    pub confirm: McpConfirm,
}

/// Which tools of an MCP server pause the run for a human decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum McpConfirm {
    None,
    All,
    /// Only these tools (by the server's names for them).
    Tools(Vec<String>),
}

impl McpConfirm {
    /// Whether calling `tool` (the server's name for it) needs confirmation.
    pub fn requires(&self, tool: &str) -> bool {
        match self {
            McpConfirm::None => false,
            McpConfirm::All => true,
            McpConfirm::Tools(tools) => tools.iter().any(|t| t == tool),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderKind {
    OpenAi,
    Anthropic,
    Test,
}

/// A model provider: built in or from `[providers.NAME]`.
#[derive(Clone, Debug, PartialEq)]
pub struct ProviderDef {
    pub name: String,
    pub kind: ProviderKind,
    /// Base URL without the trailing `/chat/completions`, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// Environment variable holding the API key; `None` when no key is needed.
    pub api_key_env: Option<String>,
    pub headers: BTreeMap<String, String>,
    /// Name reported as `model_provider` (`OpenAI`, `Ollama`, or the table name).
    pub display_name: String,
    /// Speak HTTP/2 over plain `http://` (prior knowledge), for gateways that serve h2c.
    /// Over `https://` HTTP/2 is used whenever the provider offers it, either way.
    pub http2: bool,
}

/// A `provider:model` reference checked against the providers, with its key read.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedModel {
    pub provider: ProviderDef,
    pub model: String,
    pub api_key: Option<String>,
    /// The variable that should hold the provider's key but is not set.
    pub missing_key: Option<String>,
}

impl ResolvedModel {
    /// Why the model cannot be called, when its key is missing.
    pub fn missing_key_message(&self) -> Option<String> {
        self.missing_key.as_ref().map(|var| {
            format!(
                "provider `{}` needs an API key: set {var}",
                self.provider.name
            )
        })
    }
}

/// A config problem, displayed as `path:line: key: message`.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{}", self.render())]
pub struct ConfigError {
    pub path: PathBuf,
    pub line: Option<usize>,
    pub key: Option<String>,
    pub message: String,
}

impl ConfigError {
    fn new(path: &Path, line: Option<usize>, key: Option<String>, message: String) -> Self {
        ConfigError {
            path: path.to_path_buf(),
            line,
            key,
            message,
        }
    }

    fn render(&self) -> String {
        let mut out = self.path.display().to_string();
        if let Some(line) = self.line {
            out.push_str(&format!(":{line}"));
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        if let Some(key) = &self.key {
            out.push_str(&format!("`{key}`: "));
        }
        out.push_str(&self.message);
        out
    }
}

/// The documented example agents file, as shipped at the top of the repository.
pub const EXAMPLE: &str = include_str!("../agents.toml");

/// Environment variable naming the agents file.
pub const CONFIG_ENV: &str = "AGENTOS_CONFIG";

const DEFAULT_NUM_HISTORY_RUNS: usize = 3;

/// Variables every command tool gets from agentos's environment (when they are set);
/// others, API keys included, only when the tool's `env` lists them.
pub const DEFAULT_TOOL_ENV: [&str; 6] = ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"];
pub const DEFAULT_TOOL_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_MAX_OUTPUT_BYTES: usize = 64 * 1024;
pub const DEFAULT_MCP_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_TOOL_CALL_LIMIT: usize = 10;
/// The OpenAI function-name rule, which command tool names follow.
const MAX_TOOL_NAME_LEN: usize = 64;
const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
const OLLAMA_BASE_URL: &str = "http://localhost:11434/v1";
const ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com/v1";

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table")]
struct RawConfig {
    #[serde(default)]
    agents: Vec<RawAgent>,
    #[serde(default)]
    teams: Vec<flow::RawTeam>,
    #[serde(default)]
    workflows: Vec<flow::RawWorkflow>,
    #[serde(default)]
    providers: BTreeMap<Spanned<String>, RawProvider>,
    #[serde(default)]
    tools: BTreeMap<Spanned<String>, RawCommandTool>,
    #[serde(default)]
    mcp: BTreeMap<Spanned<String>, RawMcpServer>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, expecting = "an agent table")]
struct RawAgent {
    id: Spanned<String>,
    name: Option<String>,
    description: Option<String>,
    model: Spanned<String>,
    instructions: Option<Spanned<toml::Value>>,
    #[serde(default)]
    markdown: bool,
    #[serde(default)]
    add_history_to_context: bool,
    num_history_runs: Option<Spanned<i64>>,
    output_schema: Option<Spanned<toml::Value>>,
    temperature: Option<Spanned<f64>>,
    max_tokens: Option<Spanned<i64>>,
    dependencies: Option<Spanned<toml::Table>>,
    tools: Option<Spanned<Vec<Spanned<String>>>>,
    tool_call_limit: Option<Spanned<i64>>,
    max_answer_bytes: Option<Spanned<i64>>,
    fallback_models: Option<Spanned<Vec<Spanned<String>>>>,
    thinking: Option<Spanned<RawThinking>>,
    cache_prompt: Option<Spanned<bool>>,
}

/// `thinking = { budget_tokens = N }` on an agent or team.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table `{ budget_tokens = N }`")]
pub(crate) struct RawThinking {
    budget_tokens: Spanned<i64>,
}

/// The model keys an agent and a team share, as written.
pub(crate) struct RawModelKeys<'a> {
    pub model: &'a Spanned<String>,
    pub temperature: Option<&'a Spanned<f64>>,
    pub max_tokens: Option<&'a Spanned<i64>>,
    pub fallback_models: Option<&'a Spanned<Vec<Spanned<String>>>>,
    pub thinking: Option<&'a Spanned<RawThinking>>,
    pub cache_prompt: Option<&'a Spanned<bool>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, expecting = "a tool table")]
struct RawCommandTool {
    description: Spanned<String>,
    parameters: Option<Spanned<toml::Value>>,
    command: Spanned<toml::Value>,
    cwd: Option<Spanned<String>>,
    timeout_secs: Option<Spanned<f64>>,
    max_output_bytes: Option<Spanned<i64>>,
    env: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    requires_confirmation: bool,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, expecting = "an MCP server table")]
struct RawMcpServer {
    command: Spanned<String>,
    #[serde(default)]
    args: Vec<Spanned<String>>,
    #[serde(default)]
    env: BTreeMap<Spanned<String>, Spanned<String>>,
    cwd: Option<Spanned<String>>,
    timeout_secs: Option<Spanned<f64>>,
    requires_confirmation: Option<Spanned<toml::Value>>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, expecting = "a provider table")]
struct RawProvider {
    kind: Option<Spanned<String>>,
    base_url: Option<Spanned<String>>,
    api_key_env: Option<Spanned<String>>,
    #[serde(default)]
    headers: BTreeMap<Spanned<String>, Spanned<String>>,
    http2: Option<bool>,
}

impl Config {
    /// Finds the agents file: `explicit` (the `--config` flag), then `AGENTOS_CONFIG`, then
    /// `./agents.toml`, then `agents.toml` in the user config dir.
    pub fn find(explicit: Option<&Path>) -> Result<PathBuf, ConfigError> {
        if let Some(path) = explicit {
            return existing(path, "given with --config or AGENTOS_CONFIG");
        }
        if let Some(path) = std::env::var_os(CONFIG_ENV).filter(|p| !p.is_empty()) {
            return existing(Path::new(&path), "named by AGENTOS_CONFIG");
        }
        let local = PathBuf::from("agents.toml");
        if local.is_file() {
            return Ok(local);
        }
        let user = user_config_file();
        if let Some(user) = &user {
            if user.is_file() {
                return Ok(user.clone());
            }
        }
        let mut looked = String::from("./agents.toml");
        if let Some(user) = &user {
            looked.push_str(&format!(" and {}", user.display()));
        }
        Err(ConfigError::new(
            Path::new(""),
            None,
            None,
            format!(
                "no agents file found (looked for {looked}); pass --config PATH or set \
                 {CONFIG_ENV}"
            ),
        ))
    }

    /// Reads and validates an agents file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let bytes = std::fs::read(path).map_err(|e| {
            ConfigError::new(path, None, None, format!("could not read the file: {e}"))
        })?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let bad = e.utf8_error().valid_up_to();
            let before = &e.as_bytes()[..bad];
            let line = 1 + before.iter().filter(|b| **b == b'\n').count();
            let column = 1 + before.iter().rev().take_while(|b| **b != b'\n').count();
            ConfigError::new(
                path,
                Some(line),
                None,
                format!(
                    "the file is not valid UTF-8 (byte {bad}, column {column}); save it as UTF-8"
                ),
            )
        })?;
        Config::from_toml_str(&text, path)
    }

    /// Parses and validates agents-file text; `path` is only used in error messages.
    pub fn from_toml_str(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| toml_error(text, path, &e))?;
        Validator { text, path }.validate(raw)
    }

    /// The agent with this id.
    pub fn agent(&self, id: &str) -> Option<&AgentDef> {
        self.agents.iter().find(|a| a.id == id)
    }

    /// The team with this id.
    pub fn team(&self, id: &str) -> Option<&TeamDef> {
        self.teams.iter().find(|t| t.id == id)
    }

    /// Whether a component of `kind` has this id.
    pub fn defines(&self, kind: crate::kind::Kind, id: &str) -> bool {
        match kind {
            crate::kind::Kind::Agent => self.agent(id).is_some(),
            crate::kind::Kind::Team => self.team(id).is_some(),
            crate::kind::Kind::Workflow => self.workflow(id).is_some(),
        }
    }

    /// The workflow with this id.
    pub fn workflow(&self, id: &str) -> Option<&WorkflowDef> {
        self.workflows.iter().find(|w| w.id == id)
    }

    /// Checks a `provider:model` reference (or `test`) against the providers and reads the
    /// provider's API key from the environment. `line` is the line of the `model` key the
    /// reference came from, if any.
    pub fn resolve_model(
        &self,
        spec: &str,
        line: Option<usize>,
    ) -> Result<ResolvedModel, ConfigError> {
        let resolved = self.locate_model(spec, line)?;
        match resolved.missing_key_message() {
            Some(message) => Err(ConfigError::new(
                &self.path,
                line,
                Some("model".into()),
                message,
            )),
            None => Ok(resolved),
        }
    }

    /// Like [`Config::resolve_model`], but a key variable that is not set is only noted in
    /// [`ResolvedModel::missing_key`]: runs on such a model end `ERROR` saying which
    /// variable to set, rather than being refused.
    pub fn locate_model(
        &self,
        spec: &str,
        line: Option<usize>,
    ) -> Result<ResolvedModel, ConfigError> {
        let error = |message| ConfigError::new(&self.path, line, Some("model".into()), message);
        let (provider, model) = parse_model_spec(spec).map_err(error)?;
        let def = self
            .providers
            .get(provider)
            .ok_or_else(|| error(unknown_provider(provider, &self.providers)))?;
        let (api_key, missing_key) = match &def.api_key_env {
            None => (None, None),
            Some(var) => match std::env::var(var) {
                Ok(key) if !key.trim().is_empty() => (Some(key.trim().to_string()), None),
                _ => (None, Some(var.clone())),
            },
        };
        Ok(ResolvedModel {
            provider: def.clone(),
            model: model.to_string(),
            api_key,
            missing_key,
        })
    }

    /// What `agentos check` prints: a summary of the agents, teams, workflows and providers,
    /// and warnings about things that will fail or stay unfilled at run time.
    pub fn check_report(&self) -> (String, Vec<String>) {
        let mut out = String::new();
        let mut warnings = Vec::new();
        let count = self.agents.len();
        let counted = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
        let mut summary = counted(count, "agent");
        if !self.teams.is_empty() || !self.workflows.is_empty() {
            summary.push_str(&format!(
                ", {}, {}",
                counted(self.teams.len(), "team"),
                counted(self.workflows.len(), "workflow")
            ));
        }
        out.push_str(&format!("{}: {summary}\n", self.path.display()));

        let id_width = self.agents.iter().map(|a| a.id.len()).max().unwrap_or(0);
        let model_width = self.agents.iter().map(|a| a.model.len()).max().unwrap_or(0);
        let mut used = BTreeSet::new();
        for agent in &self.agents {
            let line = format!(
                "  {:id_width$}  {:model_width$}  {}",
                agent.id,
                agent.model,
                agent.description.as_deref().unwrap_or("")
            );
            out.push_str(line.trim_end());
            out.push('\n');
            if !agent.tools.is_empty() {
                let tools: Vec<String> = agent.tools.iter().map(ToString::to_string).collect();
                out.push_str(&format!(
                    "  {:id_width$}  tools: {}\n",
                    "",
                    tools.join(", ")
                ));
            }
            if let Ok((provider, _)) = parse_model_spec(&agent.model) {
                used.insert(provider);
            }
            if let Err(e) = self.resolve_model(&agent.model, Some(agent.model_line)) {
                warnings.push(format!("agent `{}`: {e}", agent.id));
            }
            let options = &agent.model_options;
            if !options.fallback_models.is_empty() {
                out.push_str(&format!(
                    "  {:id_width$}  fallbacks: {}\n",
                    "",
                    options.fallback_models.join(", ")
                ));
            }
            for spec in &options.fallback_models {
                if let Ok((provider, _)) = parse_model_spec(spec) {
                    used.insert(provider);
                }
                if let Err(e) = self.resolve_model(spec, Some(options.fallback_line)) {
                    warnings.push(format!("agent `{}`: fallback: {e}", agent.id));
                }
            }
            let mut seen = BTreeSet::new();
            for name in agent
                .instructions
                .iter()
                .flat_map(|i| template::placeholders(i))
            {
                if name != "user_id"
                    && !agent.dependencies.contains_key(&name)
                    && seen.insert(name.clone())
                {
                    warnings.push(format!(
                        "agent `{}`: placeholder {{{name}}} must come from session_state, \
                         dependencies or metadata at run time",
                        agent.id
                    ));
                }
            }
        }
        if count == 0 {
            warnings.push(format!(
                "{}: no agents defined; add an [[agents]] table",
                self.path.display()
            ));
        }
        self.flow_report(&mut out, &mut warnings, &mut used);
        let used: Vec<String> = used
            .into_iter()
            .filter_map(|name| self.providers.get(name))
            .map(|p| match p.kind {
                ProviderKind::Test => format!("{} (offline)", p.name),
                _ => format!("{} ({})", p.name, p.base_url),
            })
            .collect();
        if !used.is_empty() {
            out.push_str(&format!("providers: {}\n", used.join(", ")));
        }
        if !self.tools.is_empty() {
            let names: Vec<&str> = self.tools.keys().map(String::as_str).collect();
            out.push_str(&format!("tools: {}\n", names.join(", ")));
        }
        if !self.mcp.is_empty() {
            let servers: Vec<String> = self
                .mcp
                .values()
                .map(|s| {
                    let mut command = s.command.clone();
                    for arg in &s.args {
                        command.push(' ');
                        command.push_str(arg);
                    }
                    format!("{} ({command})", s.name)
                })
                .collect();
            out.push_str(&format!("mcp servers: {}\n", servers.join(", ")));
        }
        for tool in self.tools.values() {
            if let Some(dir) = tool.cwd.as_deref().filter(|d| !d.is_dir()) {
                warnings.push(format!(
                    "tool `{}`: cwd {} is not a directory",
                    tool.name,
                    dir.display()
                ));
            } else if !program_exists(&tool.command[0], tool.cwd.as_deref()) {
                warnings.push(format!(
                    "tool `{}`: program `{}` not found",
                    tool.name, tool.command[0]
                ));
            }
        }
        for server in self.mcp.values() {
            if let Some(dir) = server.cwd.as_deref().filter(|d| !d.is_dir()) {
                warnings.push(format!(
                    "MCP server `{}`: cwd {} is not a directory",
                    server.name,
                    dir.display()
                ));
            } else if !program_exists(&server.command, server.cwd.as_deref()) {
                warnings.push(format!(
                    "MCP server `{}`: program `{}` not found",
                    server.name, server.command
                ));
            }
        }
        (out, warnings)
    }
}

/// `path` if it is a file, else an error saying where the path came from.
fn existing(path: &Path, origin: &str) -> Result<PathBuf, ConfigError> {
    if path.is_file() {
        Ok(path.to_path_buf())
    } else {
        Err(ConfigError::new(
            path,
            None,
            None,
            format!("no such file ({origin})"),
        ))
    }
}

/// `agents.toml` in the user config dir (`~/.config/agentos/` on Linux).
pub fn user_config_file() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "agentos").map(|d| d.config_dir().join("agents.toml"))
}

/// The providers available without configuration.
fn builtin_providers() -> BTreeMap<String, ProviderDef> {
    let openai_url = base_url_from_env("OPENAI_BASE_URL", OPENAI_BASE_URL);
    let anthropic_url = anthropic_base_url();
    let builtin = |name: &str, kind, base_url: &str, key: Option<&str>, display: &str| {
        let def = ProviderDef {
            name: name.to_string(),
            kind,
            base_url: base_url.to_string(),
            api_key_env: key.map(str::to_string),
            headers: BTreeMap::new(),
            display_name: display.to_string(),
            http2: false,
        };
        (name.to_string(), def)
    };
    BTreeMap::from([
        builtin(
            "openai",
            ProviderKind::OpenAi,
            &openai_url,
            Some("OPENAI_API_KEY"),
            "OpenAI",
        ),
        builtin(
            "anthropic",
            ProviderKind::Anthropic,
            &anthropic_url,
            Some("ANTHROPIC_API_KEY"),
            "Anthropic",
        ),
        builtin(
            "ollama",
            ProviderKind::OpenAi,
            OLLAMA_BASE_URL,
            None,
            "Ollama",
        ),
        builtin("test", ProviderKind::Test, "", None, "Test"),
    ])
}

/// `var` when set (trimmed, without a trailing `/`), else `default`.
fn base_url_from_env(var: &str, default: &str) -> String {
    std::env::var(var)
        .ok()
        .filter(|u| !u.trim().is_empty())
        .map(|u| u.trim().trim_end_matches('/').to_string())
        .unwrap_or_else(|| default.to_string())
}

/// Where Anthropic's API is: `ANTHROPIC_BASE_URL`, else Anthropic's own. The variable is
/// read as Anthropic's SDKs read it, the API's root without `/v1`
/// (`https://api.anthropic.com`); a value that already ends in `/v1` is taken as it is.
fn anthropic_base_url() -> String {
    let url = base_url_from_env("ANTHROPIC_BASE_URL", ANTHROPIC_BASE_URL);
    if url.ends_with("/v1") {
        url
    } else {
        format!("{url}/v1")
    }
}

/// Splits `provider:model`; bare `test` means the test provider.
fn parse_model_spec(spec: &str) -> Result<(&str, &str), String> {
    if spec == "test" {
        return Ok(("test", "test"));
    }
    match spec.split_once(':') {
        Some((provider, model))
            if is_name(provider) && !model.is_empty() && !model.contains(char::is_whitespace) =>
        {
            Ok((provider, model))
        }
        _ => Err(format!(
            "`{spec}` is not a model reference: expected `provider:model` (e.g. \
             `openai:gpt-4o-mini` or `ollama:llama3.2`) or `test`"
        )),
    }
}

fn unknown_provider(name: &str, providers: &BTreeMap<String, ProviderDef>) -> String {
    let known: Vec<String> = providers.keys().map(|k| format!("`{k}`")).collect();
    format!(
        "unknown provider `{name}`: known providers are {}; define it in a [providers.{name}] \
         table",
        known.join(", ")
    )
}

/// Agent ids and provider names: `[A-Za-z0-9_.-]+`.
/// Letters, digits, `_`, `.` and `-`, usable as one URL path segment: not empty and not
/// only dots (`.` and `..` are path steps clients and proxies rewrite).
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && !s.bytes().all(|b| b == b'.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Turns a parse or deserialization error into `path:line: key: message`.
fn toml_error(text: &str, path: &Path, error: &toml::de::Error) -> ConfigError {
    let (doc, syntax_errors) = toml::de::DeTable::parse_recoverable(text);
    let span = error.span();
    let line = span.as_ref().map(|span| line_of(text, span.start));
    let mut key = span
        .as_ref()
        .and_then(|span| find_in_table(doc.get_ref(), span.start))
        .map(key_path)
        .filter(|k| !k.is_empty());
    let mut message: String = error
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
    {
        key = Some(match key {
            Some(table) => format!("{table}.{field}"),
            None => field.to_string(),
        });
    }
    if !syntax_errors.is_empty() {
        message = format!("invalid TOML: {message}");
        // A bare word where a value belongs is most often a string without its quotes.
        let after_equals = span.as_ref().is_some_and(|span| {
            text.get(..span.start)
                .and_then(|before| before.trim_end_matches([' ', '\t']).chars().next_back())
                == Some('=')
        });
        let word = span
            .filter(|_| after_equals)
            .and_then(|span| text.get(span.start..))
            .map(|rest| {
                rest.split(|c: char| !(c.is_alphanumeric() || "_-.:".contains(c)))
                    .next()
                    .unwrap_or("")
            })
            .unwrap_or("");
        if word.starts_with(|c: char| c.is_alphabetic()) && word != "true" && word != "false" {
            message.push_str(&format!(" (strings need quotes: \"{word}\")"));
        }
    }
    ConfigError::new(path, line, key, message)
}

/// Renders a path found by [`find_in_table`] as `agents[1].model`.
fn key_path(path: Vec<Segment>) -> String {
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
            Segment::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&quote_key(&k));
            }
        }
    }
    out
}

enum Segment {
    Key(String),
    Index(usize),
}

fn contains(span: &std::ops::Range<usize>, offset: usize) -> bool {
    span.start <= offset && (offset < span.end || offset == span.start)
}

fn find_in_table(table: &toml::de::DeTable<'_>, offset: usize) -> Option<Vec<Segment>> {
    for (key, value) in table.iter() {
        if contains(&key.span(), offset) {
            return Some(vec![Segment::Key(key.get_ref().to_string())]);
        }
        if let Some(mut rest) = find_in_value(value, offset) {
            rest.insert(0, Segment::Key(key.get_ref().to_string()));
            return Some(rest);
        }
    }
    None
}

/// The path inside `value` to the entry at `offset`: empty when `value` itself holds it.
fn find_in_value(value: &Spanned<toml::de::DeValue<'_>>, offset: usize) -> Option<Vec<Segment>> {
    let deeper = match value.get_ref() {
        toml::de::DeValue::Table(table) => find_in_table(table, offset),
        toml::de::DeValue::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            find_in_value(item, offset).map(|mut rest| {
                rest.insert(0, Segment::Index(i));
                rest
            })
        }),
        _ => None,
    };
    deeper.or_else(|| contains(&value.span(), offset).then(Vec::new))
}

fn quote_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    }
}

/// Ids claimed so far across agents, teams and workflows: id -> (kind, line).
type Ids = BTreeMap<String, (&'static str, usize)>;

/// Turns the raw structs into a [`Config`], reporting the first problem with its line.
struct Validator<'a> {
    text: &'a str,
    path: &'a Path,
}

impl Validator<'_> {
    fn error(&self, span: std::ops::Range<usize>, key: String, message: String) -> ConfigError {
        ConfigError::new(
            self.path,
            Some(line_of(self.text, span.start)),
            Some(key),
            message,
        )
    }

    fn validate(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        let mut providers = builtin_providers();
        for (name, raw) in raw.providers {
            let def = self.provider(&name, raw, providers.get(name.get_ref()))?;
            providers.insert(def.name.clone(), def);
        }

        let mut tools = BTreeMap::new();
        for (name, raw) in raw.tools {
            let def = self.command_tool(&name, raw)?;
            tools.insert(def.name.clone(), def);
        }
        let mut mcp = BTreeMap::new();
        for (name, raw) in raw.mcp {
            let def = self.mcp_server(&name, raw)?;
            mcp.insert(def.name.clone(), def);
        }

        let mut agents: Vec<AgentDef> = Vec::with_capacity(raw.agents.len());
        let mut ids = Ids::new();
        for (index, raw) in raw.agents.into_iter().enumerate() {
            self.claim_id(&mut ids, &raw.id, "agent", format!("agents[{index}].id"))?;
            agents.push(self.agent(index, raw, &providers, &tools, &mcp)?);
        }
        let teams = self.teams(raw.teams, &mut ids, &providers)?;
        let workflows = self.workflows(raw.workflows, &mut ids, &providers)?;
        Ok(Config {
            path: self.path.to_path_buf(),
            agents,
            teams,
            workflows,
            providers,
            tools,
            mcp,
        })
    }

    fn agent(
        &self,
        index: usize,
        raw: RawAgent,
        providers: &BTreeMap<String, ProviderDef>,
        tools: &BTreeMap<String, CommandToolDef>,
        mcp: &BTreeMap<String, McpServerDef>,
    ) -> Result<AgentDef, ConfigError> {
        let table = format!("agents[{index}]");
        let key = |field: &str| format!("{table}.{field}");

        self.id(&raw.id, &table)?;
        self.model(&raw.model, &table, providers)?;
        let instructions = self.instructions(raw.instructions.as_ref(), &table)?;

        let output_schema = match &raw.output_schema {
            None => None,
            Some(value) => Some(
                output_schema(value.get_ref())
                    .map_err(|message| self.error(value.span(), key("output_schema"), message))?,
            ),
        };

        let mut tool_refs: Vec<ToolRef> = Vec::new();
        for (i, entry) in raw
            .tools
            .iter()
            .flat_map(|t| t.get_ref().iter())
            .enumerate()
        {
            let tool_ref = tool_ref(entry.get_ref(), tools, mcp).map_err(|message| {
                self.error(entry.span(), key(&format!("tools[{i}]")), message)
            })?;
            if tool_refs.contains(&tool_ref) {
                return Err(self.error(
                    entry.span(),
                    key(&format!("tools[{i}]")),
                    format!("`{tool_ref}` is listed twice"),
                ));
            }
            tool_refs.push(tool_ref);
        }

        let id = raw.id.get_ref();
        Ok(AgentDef {
            id: id.clone(),
            name: raw.name.unwrap_or_else(|| id.clone()),
            description: raw.description,
            model: raw.model.get_ref().clone(),
            instructions,
            markdown: raw.markdown,
            add_history_to_context: raw.add_history_to_context,
            num_history_runs: self.num_history_runs(raw.num_history_runs.as_ref(), &table)?,
            output_schema,
            temperature: self.temperature(raw.temperature.as_ref(), &table)?,
            max_tokens: self.max_tokens(raw.max_tokens.as_ref(), &table)?,
            dependencies: self.dependencies(raw.dependencies.as_ref(), &table)?,
            model_line: line_of(self.text, raw.model.span().start),
            tools: tool_refs,
            tool_call_limit: self.tool_call_limit(raw.tool_call_limit.as_ref(), &table)?,
            max_answer_bytes: self.max_answer_bytes(raw.max_answer_bytes.as_ref(), &table)?,
            model_options: self.model_options(
                RawModelKeys {
                    model: &raw.model,
                    temperature: raw.temperature.as_ref(),
                    max_tokens: raw.max_tokens.as_ref(),
                    fallback_models: raw.fallback_models.as_ref(),
                    thinking: raw.thinking.as_ref(),
                    cache_prompt: raw.cache_prompt.as_ref(),
                },
                &table,
                providers,
            )?,
        })
    }

    /// `fallback_models`, `thinking` and `cache_prompt`, checked against the model keys:
    /// fallbacks are known providers' models, each listed once; a thinking budget is at
    /// least [`MIN_THINKING_BUDGET`], below `max_tokens` and without `temperature` (as
    /// Anthropic requires); thinking and prompt caching need an Anthropic model among
    /// the agent's.
    pub(crate) fn model_options(
        &self,
        raw: RawModelKeys<'_>,
        table: &str,
        providers: &BTreeMap<String, ProviderDef>,
    ) -> Result<ModelOptions, ConfigError> {
        let mut options = ModelOptions::default();
        let mut specs = vec![raw.model.get_ref().as_str()];
        if let Some(list) = raw.fallback_models {
            options.fallback_line = line_of(self.text, list.span().start);
            for (i, entry) in list.get_ref().iter().enumerate() {
                let key = format!("{table}.fallback_models[{i}]");
                let (provider, _) = parse_model_spec(entry.get_ref())
                    .map_err(|message| self.error(entry.span(), key.clone(), message))?;
                if !providers.contains_key(provider) {
                    return Err(self.error(
                        entry.span(),
                        key,
                        unknown_provider(provider, providers),
                    ));
                }
                if specs.contains(&entry.get_ref().as_str()) {
                    return Err(self.error(
                        entry.span(),
                        key,
                        format!("`{}` is already one of the agent's models", entry.get_ref()),
                    ));
                }
                specs.push(entry.get_ref());
                options.fallback_models.push(entry.get_ref().clone());
            }
        }
        let is_anthropic = |spec: &str| {
            parse_model_spec(spec)
                .ok()
                .and_then(|(provider, _)| providers.get(provider))
                .is_some_and(|def| def.kind == ProviderKind::Anthropic)
        };
        let needs_anthropic =
            |span: std::ops::Range<usize>, key: &str| -> Result<(), ConfigError> {
                if specs.iter().any(|spec| is_anthropic(spec)) {
                    return Ok(());
                }
                Err(self.error(
                    span,
                    format!("{table}.{key}"),
                    format!(
                        "`{key}` applies to Anthropic models, and none of this agent's models \
                     (`{}`) is one",
                        specs.join("`, `")
                    ),
                ))
            };
        if let Some(thinking) = raw.thinking {
            let budget = &thinking.get_ref().budget_tokens;
            let key = format!("{table}.thinking.budget_tokens");
            let value = u32::try_from(*budget.get_ref())
                .ok()
                .filter(|n| *n >= MIN_THINKING_BUDGET)
                .ok_or_else(|| {
                    self.error(
                        budget.span(),
                        key.clone(),
                        format!(
                            "must be a whole number from {MIN_THINKING_BUDGET} to {}, found {}",
                            u32::MAX,
                            budget.get_ref()
                        ),
                    )
                })?;
            if let Some(max) = raw.max_tokens
                && *max.get_ref() <= i64::from(value)
            {
                return Err(self.error(
                    budget.span(),
                    key,
                    format!(
                        "must be less than max_tokens ({}): the answer comes out of the same \
                         tokens",
                        max.get_ref()
                    ),
                ));
            }
            if let Some(t) = raw.temperature {
                return Err(self.error(
                    t.span(),
                    format!("{table}.temperature"),
                    "cannot be set together with `thinking` (Anthropic refuses the pair)".into(),
                ));
            }
            needs_anthropic(thinking.span(), "thinking")?;
            options.thinking_budget = Some(value);
        }
        if let Some(cache) = raw.cache_prompt {
            if *cache.get_ref() {
                needs_anthropic(cache.span(), "cache_prompt")?;
            }
            options.cache_prompt = *cache.get_ref();
        }
        Ok(options)
    }

    /// Records `id` as taken by a `kind` (`agent`, `team` or `workflow`), or reports the
    /// entry that took it first.
    fn claim_id(
        &self,
        ids: &mut Ids,
        id: &Spanned<String>,
        kind: &'static str,
        key: String,
    ) -> Result<(), ConfigError> {
        let name = id.get_ref();
        match ids.get(name) {
            Some((first_kind, first)) if *first_kind == kind => Err(self.error(
                id.span(),
                key,
                format!("duplicate {kind} id `{name}` (first defined on line {first})"),
            )),
            Some((first_kind, first)) => Err(self.error(
                id.span(),
                key,
                format!(
                    "`{name}` is already the id of the {first_kind} on line {first}: agents, \
                     teams and workflows need distinct ids"
                ),
            )),
            None => {
                ids.insert(name.clone(), (kind, line_of(self.text, id.span().start)));
                Ok(())
            }
        }
    }

    /// The `id` of an agent, team or workflow: letters, digits, `_`, `.` and `-`.
    fn id(&self, id: &Spanned<String>, table: &str) -> Result<(), ConfigError> {
        let key = format!("{table}.id");
        if id.get_ref().is_empty() {
            return Err(self.error(id.span(), key, "must not be empty".into()));
        }
        if !is_name(id.get_ref()) {
            return Err(self.error(
                id.span(),
                key,
                format!(
                    "`{}` is not a valid id: use letters, digits, `_`, `.` and `-` \
                     (not only dots), so it can be a URL path segment",
                    id.get_ref()
                ),
            ));
        }
        Ok(())
    }

    /// A `model` key: a well-formed reference to a known provider. Its API key is only
    /// looked up when the model is used ([`Config::resolve_model`]).
    fn model(
        &self,
        model: &Spanned<String>,
        table: &str,
        providers: &BTreeMap<String, ProviderDef>,
    ) -> Result<(), ConfigError> {
        let key = || format!("{table}.model");
        let (provider, _) = parse_model_spec(model.get_ref())
            .map_err(|message| self.error(model.span(), key(), message))?;
        if !providers.contains_key(provider) {
            return Err(self.error(model.span(), key(), unknown_provider(provider, providers)));
        }
        Ok(())
    }

    /// `instructions`: a string, or an array of strings.
    fn instructions(
        &self,
        value: Option<&Spanned<toml::Value>>,
        table: &str,
    ) -> Result<Vec<String>, ConfigError> {
        let Some(value) = value else {
            return Ok(Vec::new());
        };
        let error = |message| self.error(value.span(), format!("{table}.instructions"), message);
        match value.get_ref() {
            toml::Value::String(s) => Ok(vec![s.clone()]),
            toml::Value::Array(items) => items
                .iter()
                .map(|item| item.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| error("expected a string or an array of strings".into())),
            other => Err(error(format!(
                "expected a string or an array of strings, found {}",
                other.type_str()
            ))),
        }
    }

    fn temperature(
        &self,
        value: Option<&Spanned<f64>>,
        table: &str,
    ) -> Result<Option<f64>, ConfigError> {
        match value {
            None => Ok(None),
            Some(t) if (0.0..=2.0).contains(t.get_ref()) => Ok(Some(*t.get_ref())),
            Some(t) => Err(self.error(
                t.span(),
                format!("{table}.temperature"),
                format!("must be between 0 and 2, found {}", t.get_ref()),
            )),
        }
    }

    fn max_tokens(
        &self,
        value: Option<&Spanned<i64>>,
        table: &str,
    ) -> Result<Option<u32>, ConfigError> {
        let Some(m) = value else {
            return Ok(None);
        };
        match u32::try_from(*m.get_ref()) {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(self.error(
                m.span(),
                format!("{table}.max_tokens"),
                format!(
                    "must be a positive whole number up to {}, found {}",
                    u32::MAX,
                    m.get_ref()
                ),
            )),
        }
    }

    fn num_history_runs(
        &self,
        value: Option<&Spanned<i64>>,
        table: &str,
    ) -> Result<usize, ConfigError> {
        let Some(n) = value else {
            return Ok(DEFAULT_NUM_HISTORY_RUNS);
        };
        usize::try_from(*n.get_ref()).map_err(|_| {
            self.error(
                n.span(),
                format!("{table}.num_history_runs"),
                format!("must be 0 or more, found {}", n.get_ref()),
            )
        })
    }

    fn dependencies(
        &self,
        value: Option<&Spanned<toml::Table>>,
        table: &str,
    ) -> Result<serde_json::Map<String, Value>, ConfigError> {
        let Some(deps) = value else {
            return Ok(serde_json::Map::new());
        };
        match serde_json::to_value(deps.get_ref()) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(self.error(
                deps.span(),
                format!("{table}.dependencies"),
                "expected a table of values".into(),
            )),
        }
    }

    fn tool_call_limit(
        &self,
        value: Option<&Spanned<i64>>,
        table: &str,
    ) -> Result<usize, ConfigError> {
        let Some(n) = value else {
            return Ok(DEFAULT_TOOL_CALL_LIMIT);
        };
        match usize::try_from(*n.get_ref()) {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(self.error(
                n.span(),
                format!("{table}.tool_call_limit"),
                format!("must be 1 or more, found {}", n.get_ref()),
            )),
        }
    }

    /// `max_answer_bytes`: 1 byte to 1 GiB, default [`crate::limits::DEFAULT_MAX_ANSWER_BYTES`].
    pub(crate) fn max_answer_bytes(
        &self,
        value: Option<&Spanned<i64>>,
        table: &str,
    ) -> Result<usize, ConfigError> {
        const MAX: i64 = 1 << 30;
        let Some(n) = value else {
            return Ok(crate::limits::DEFAULT_MAX_ANSWER_BYTES);
        };
        match usize::try_from(*n.get_ref()) {
            Ok(bytes) if (1..=MAX).contains(n.get_ref()) => Ok(bytes),
            _ => Err(self.error(
                n.span(),
                format!("{table}.max_answer_bytes"),
                format!("must be from 1 to {MAX} bytes, found {}", n.get_ref()),
            )),
        }
    }

    /// A `[tools.NAME]` table.
    fn command_tool(
        &self,
        name: &Spanned<String>,
        raw: RawCommandTool,
    ) -> Result<CommandToolDef, ConfigError> {
        let table = format!("tools.{}", quote_key(name.get_ref()));
        let key = |field: &str| format!("{table}.{field}");
        if !is_tool_name(name.get_ref()) {
            return Err(self.error(
                name.span(),
                table.clone(),
                format!(
                    "`{}` is not a valid tool name: use 1 to {MAX_TOOL_NAME_LEN} letters, \
                     digits, `_` and `-`",
                    name.get_ref()
                ),
            ));
        }

        if raw.description.get_ref().trim().is_empty() {
            return Err(self.error(
                raw.description.span(),
                key("description"),
                "must not be empty: the model reads it to decide when to call the tool".into(),
            ));
        }

        let parameters = match &raw.parameters {
            None => serde_json::json!({"type": "object", "properties": {}}),
            Some(value) => output_schema(value.get_ref())
                .map_err(|message| self.error(value.span(), key("parameters"), message))?,
        };

        let mut command = argv(raw.command.get_ref())
            .map_err(|message| self.error(raw.command.span(), key("command"), message))?;
        // `argv` never returns an empty command.
        command[0] = self.program(std::mem::take(&mut command[0]));

        let cwd = match &raw.cwd {
            None => None,
            Some(dir) => Some(self.dir(dir, &key("cwd"))?),
        };

        let timeout = match &raw.timeout_secs {
            None => DEFAULT_TOOL_TIMEOUT,
            Some(t) => self.timeout(t, &key("timeout_secs"))?,
        };

        let max_output_bytes = match &raw.max_output_bytes {
            None => DEFAULT_MAX_OUTPUT_BYTES,
            Some(n) => match usize::try_from(*n.get_ref()) {
                Ok(n) if n > 0 => n,
                _ => {
                    return Err(self.error(
                        n.span(),
                        key("max_output_bytes"),
                        format!("must be 1 or more, found {}", n.get_ref()),
                    ));
                }
            },
        };

        let mut env: Vec<String> = DEFAULT_TOOL_ENV.iter().map(|v| v.to_string()).collect();
        for var in raw.env.iter().flatten() {
            if !is_env_name(var.get_ref()) {
                return Err(self.error(
                    var.span(),
                    key("env"),
                    format!("`{}` is not an environment variable name", var.get_ref()),
                ));
            }
            if !env.contains(var.get_ref()) {
                env.push(var.get_ref().clone());
            }
        }

        Ok(CommandToolDef {
            name: name.get_ref().clone(),
            description: raw.description.into_inner(),
            parameters,
            command,
            cwd,
            timeout,
            max_output_bytes,
            env,
            requires_confirmation: raw.requires_confirmation,
        })
    }

    /// An `[mcp.NAME]` table.
    fn mcp_server(
        &self,
        name: &Spanned<String>,
        raw: RawMcpServer,
    ) -> Result<McpServerDef, ConfigError> {
        let table = format!("mcp.{}", quote_key(name.get_ref()));
        let key = |field: &str| format!("{table}.{field}");
        if !is_name(name.get_ref()) {
            return Err(self.error(
                name.span(),
                table.clone(),
                format!(
                    "`{}` is not a valid MCP server name: use letters, digits, `_`, `.` and `-`",
                    name.get_ref()
                ),
            ));
        }

        let command = raw.command.get_ref();
        if command.trim().is_empty() || command.contains('\0') {
            return Err(self.error(
                raw.command.span(),
                key("command"),
                "expected the program that starts the server, e.g. \"uvx\"; its arguments go \
                 in `args`"
                    .into(),
            ));
        }

        let mut args = Vec::with_capacity(raw.args.len());
        for arg in raw.args {
            if arg.get_ref().contains('\0') {
                return Err(self.error(
                    arg.span(),
                    key("args"),
                    "arguments must not contain NUL characters".into(),
                ));
            }
            args.push(arg.into_inner());
        }

        let mut env = BTreeMap::new();
        for (var, value) in raw.env {
            if !is_env_name(var.get_ref()) {
                return Err(self.error(
                    var.span(),
                    key("env"),
                    format!("`{}` is not an environment variable name", var.get_ref()),
                ));
            }
            if value.get_ref().contains('\0') {
                return Err(self.error(
                    value.span(),
                    format!("{}.{}", key("env"), quote_key(var.get_ref())),
                    "values must not contain NUL characters".into(),
                ));
            }
            env.insert(var.into_inner(), value.into_inner());
        }

        let cwd = match &raw.cwd {
            None => None,
            Some(dir) => Some(self.dir(dir, &key("cwd"))?),
        };

        let timeout = match &raw.timeout_secs {
            None => DEFAULT_MCP_TIMEOUT,
            Some(t) => self.timeout(t, &key("timeout_secs"))?,
        };

        let confirm = match &raw.requires_confirmation {
            None => McpConfirm::None,
            Some(value) => mcp_confirm(value.get_ref()).map_err(|message| {
                self.error(value.span(), key("requires_confirmation"), message)
            })?,
        };

        let command = self.program(command.clone());
        Ok(McpServerDef {
            name: name.get_ref().clone(),
            command,
            args,
            env,
            cwd,
            timeout,
            confirm,
        })
    }

    /// A positive number of seconds.
    fn timeout(&self, secs: &Spanned<f64>, key: &str) -> Result<Duration, ConfigError> {
        let t = *secs.get_ref();
        match Duration::try_from_secs_f64(t) {
            Ok(d) if t > 0.0 => Ok(d),
            _ => Err(self.error(
                secs.span(),
                key.to_string(),
                format!("must be a number of seconds above 0, found {t}"),
            )),
        }
    }

    /// A directory key: relative paths are relative to the agents file's directory.
    fn dir(&self, dir: &Spanned<String>, key: &str) -> Result<PathBuf, ConfigError> {
        if dir.get_ref().trim().is_empty() || dir.get_ref().contains('\0') {
            return Err(self.error(
                dir.span(),
                key.to_string(),
                "expected a directory path".into(),
            ));
        }
        Ok(self.resolve(Path::new(dir.get_ref())))
    }

    /// `path`, made absolute against the agents file's directory.
    fn resolve(&self, path: &Path) -> PathBuf {
        let joined = if path.is_absolute() {
            path.to_path_buf()
        } else {
            let dir = self.path.parent().unwrap_or(Path::new(""));
            let dir = if dir.is_absolute() {
                dir.to_path_buf()
            } else {
                std::env::current_dir().map_or_else(|_| dir.to_path_buf(), |cwd| cwd.join(dir))
            };
            dir.join(path)
        };
        joined
            .components()
            .filter(|c| *c != std::path::Component::CurDir)
            .collect()
    }

    /// Resolves a relative program path (`./bin/x`, which names a file rather than a
    /// program on PATH) against the agents file's directory, so it does not depend on `cwd`.
    fn program(&self, program: String) -> String {
        if program.contains('/') && Path::new(&program).is_relative() {
            self.resolve(Path::new(&program)).display().to_string()
        } else {
            program
        }
    }

    /// A `[providers.NAME]` table, layered over the built-in provider of that name if any.
    fn provider(
        &self,
        name: &Spanned<String>,
        raw: RawProvider,
        builtin: Option<&ProviderDef>,
    ) -> Result<ProviderDef, ConfigError> {
        let table = format!("providers.{}", quote_key(name.get_ref()));
        let key = |field: &str| format!("{table}.{field}");
        if !is_name(name.get_ref()) {
            return Err(self.error(
                name.span(),
                table.clone(),
                format!(
                    "`{}` is not a valid provider name: use letters, digits, `_`, `.` and `-`",
                    name.get_ref()
                ),
            ));
        }
        if builtin.is_some_and(|b| b.kind == ProviderKind::Test) {
            return Err(self.error(
                name.span(),
                table.clone(),
                "`test` is the built-in offline model and cannot be redefined; \
                 give this provider another name"
                    .into(),
            ));
        }

        let kind = match &raw.kind {
            None => builtin.map_or(ProviderKind::OpenAi, |b| b.kind),
            Some(kind) => match kind.get_ref().as_str() {
                "openai" => ProviderKind::OpenAi,
                "anthropic" => ProviderKind::Anthropic,
                other => {
                    return Err(self.error(
                        kind.span(),
                        key("kind"),
                        format!(
                            "unknown provider kind `{other}`: expected `openai` or `anthropic`"
                        ),
                    ));
                }
            },
        };
        // Settings of the built-in provider carry over only while its protocol is kept.
        let builtin = builtin.filter(|b| b.kind == kind);

        let base_url = match &raw.base_url {
            Some(url) => {
                let trimmed = url.get_ref().trim().trim_end_matches('/');
                let scheme_ok = trimmed.starts_with("http://") || trimmed.starts_with("https://");
                if !scheme_ok || trimmed.contains(char::is_whitespace) {
                    return Err(self.error(
                        url.span(),
                        key("base_url"),
                        format!("`{}` is not an http:// or https:// URL", url.get_ref()),
                    ));
                }
                trimmed.to_string()
            }
            None => match (builtin, kind) {
                (Some(b), _) => b.base_url.clone(),
                (None, ProviderKind::Anthropic) => anthropic_base_url(),
                (None, _) => {
                    return Err(self.error(
                        name.span(),
                        key("base_url"),
                        "missing: a provider that is not built in needs a `base_url` \
                         (e.g. `https://openrouter.ai/api/v1`)"
                            .into(),
                    ));
                }
            },
        };

        let api_key_env = match &raw.api_key_env {
            Some(var) => {
                let v = var.get_ref();
                if v.is_empty() || v.contains(['=', '\0']) || v.contains(char::is_whitespace) {
                    return Err(self.error(
                        var.span(),
                        key("api_key_env"),
                        format!(
                            "`{v}` is not an environment variable name; leave the key out when \
                             the provider needs no API key"
                        ),
                    ));
                }
                Some(v.clone())
            }
            None => match (builtin, kind) {
                (Some(b), _) => b.api_key_env.clone(),
                (None, ProviderKind::Anthropic) => Some("ANTHROPIC_API_KEY".to_string()),
                (None, _) => None,
            },
        };

        let mut headers = builtin.map(|b| b.headers.clone()).unwrap_or_default();
        for (header, value) in raw.headers {
            let valid_name = !header.get_ref().is_empty()
                && header
                    .get_ref()
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b':');
            if !valid_name {
                return Err(self.error(
                    header.span(),
                    key("headers"),
                    format!("`{}` is not a valid HTTP header name", header.get_ref()),
                ));
            }
            if value.get_ref().chars().any(|c| c.is_control() && c != '\t') {
                return Err(self.error(
                    value.span(),
                    format!("{}.{}", key("headers"), quote_key(header.get_ref())),
                    "header values must not contain line breaks or control characters".into(),
                ));
            }
            headers.insert(header.into_inner(), value.into_inner());
        }

        Ok(ProviderDef {
            name: name.get_ref().clone(),
            kind,
            base_url,
            api_key_env,
            headers,
            display_name: builtin
                .map_or_else(|| name.get_ref().clone(), |b| b.display_name.clone()),
            http2: raw.http2.unwrap_or(builtin.is_some_and(|b| b.http2)),
        })
    }
}

/// Parses one entry of an agent's `tools` list.
fn tool_ref(
    entry: &str,
    tools: &BTreeMap<String, CommandToolDef>,
    mcp: &BTreeMap<String, McpServerDef>,
) -> Result<ToolRef, String> {
    if let Some(rest) = entry.strip_prefix("mcp:") {
        let (server, tool) = match rest.split_once('/') {
            Some((server, tool)) => (server, Some(tool)),
            None => (rest, None),
        };
        if let Some(tool) = tool {
            if tool.is_empty() || tool.contains(char::is_whitespace) {
                return Err(format!(
                    "`{entry}` does not name a tool: expected `mcp:SERVER` or `mcp:SERVER/TOOL`"
                ));
            }
        }
        if !mcp.contains_key(server) {
            let known: Vec<String> = mcp.keys().map(|k| format!("`{k}`")).collect();
            let known = if known.is_empty() {
                "no MCP servers are defined".to_string()
            } else {
                format!("known MCP servers are {}", known.join(", "))
            };
            return Err(format!(
                "unknown MCP server `{server}`: {known}; define it in an [mcp.{server}] table"
            ));
        }
        return Ok(ToolRef::Mcp {
            server: server.to_string(),
            tool: tool.map(str::to_string),
        });
    }
    if tools.contains_key(entry) {
        return Ok(ToolRef::Command(entry.to_string()));
    }
    let known: Vec<String> = tools.keys().map(|k| format!("`{k}`")).collect();
    let known = if known.is_empty() {
        "no tools are defined".to_string()
    } else {
        format!("known tools are {}", known.join(", "))
    };
    Err(format!(
        "unknown tool `{entry}`: {known}; define it in a [tools.{entry}] table, or write \
         `mcp:SERVER` for the tools of an MCP server"
    ))
}

/// A command: a non-empty array of strings, never a shell string.
fn argv(value: &toml::Value) -> Result<Vec<String>, String> {
    let usage = "expected an array of strings: the program and its arguments, e.g. \
                 [\"date\", \"-u\"] (commands never run through a shell)";
    let toml::Value::Array(items) = value else {
        return Err(format!("{usage}, found {}", value.type_str()));
    };
    let argv = items
        .iter()
        .map(|item| item.as_str().map(str::to_string))
        .collect::<Option<Vec<String>>>()
        .ok_or_else(|| usage.to_string())?;
    match argv.first() {
        None => Err(format!("{usage}, found an empty array")),
        Some(program) if program.trim().is_empty() => {
            Err("the program (the first element) must not be empty".into())
        }
        Some(_) if argv.iter().any(|a| a.contains('\0')) => {
            Err("arguments must not contain NUL characters".into())
        }
        Some(_) => Ok(argv),
    }
}

/// `requires_confirmation` of an MCP server: a boolean or a list of tool names.
fn mcp_confirm(value: &toml::Value) -> Result<McpConfirm, String> {
    let usage = "expected true, false or an array of the server's tool names";
    match value {
        toml::Value::Boolean(true) => Ok(McpConfirm::All),
        toml::Value::Boolean(false) => Ok(McpConfirm::None),
        toml::Value::Array(items) => {
            let names = items
                .iter()
                .map(|item| item.as_str().filter(|s| !s.is_empty()).map(str::to_string))
                .collect::<Option<Vec<String>>>()
                .ok_or_else(|| usage.to_string())?;
            Ok(if names.is_empty() {
                McpConfirm::None
            } else {
                McpConfirm::Tools(names)
            })
        }
        other => Err(format!("{usage}, found {}", other.type_str())),
    }
}

/// Command tool names: `^[a-zA-Z0-9_-]{1,64}$`, what OpenAI accepts as a function name.
fn is_tool_name(s: &str) -> bool {
    (1..=MAX_TOOL_NAME_LEN).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

fn is_env_name(s: &str) -> bool {
    !s.is_empty() && !s.contains(['=', '\0']) && !s.contains(char::is_whitespace)
}

/// Whether `program` names an executable file: a path (relative to `cwd` if given)
/// when it contains `/`, else a file in a PATH directory.
fn program_exists(program: &str, cwd: Option<&Path>) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let executable = |path: &Path| {
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let path = Path::new(program);
        return match cwd {
            Some(dir) if path.is_relative() => executable(&dir.join(path)),
            _ => executable(path),
        };
    }
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| executable(&dir.join(program)))
    })
}

/// Checks an `output_schema` table and converts it to JSON.
fn output_schema(value: &toml::Value) -> Result<Value, String> {
    if !value.is_table() {
        return Err(format!(
            "expected a table holding a JSON Schema object, found {}",
            value.type_str()
        ));
    }
    let schema = toml_to_json(value)?;
    if schema.get("type").and_then(Value::as_str) != Some("object") {
        return Err("the schema must declare `type = \"object\"` at its root".into());
    }
    Ok(schema)
}

fn toml_to_json(value: &toml::Value) -> Result<Value, String> {
    Ok(match value {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .ok_or_else(|| format!("{f} has no JSON representation"))?,
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(items) => Value::Array(
            items
                .iter()
                .map(toml_to_json)
                .collect::<Result<Vec<_>, _>>()?,
        ),
        toml::Value::Table(table) => Value::Object(
            table
                .iter()
                .map(|(k, v)| Ok((k.clone(), toml_to_json(v)?)))
                .collect::<Result<serde_json::Map<_, _>, String>>()?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml_str(text, Path::new("agents.toml"))
    }

    /// The error for `text`, as (line, key, message).
    fn error(text: &str) -> (Option<usize>, Option<String>, String) {
        match parse(text) {
            Ok(_) => panic!("expected an error for:\n{text}"),
            Err(e) => (e.line, e.key, e.message),
        }
    }

    const TWO: &str = "[[agents]]\nid = \"a\"\nmodel = \"test\"\n\n[[agents]]\nid = \"b\"\n";

    #[test]
    fn example_parses_and_checks_without_keys() {
        let config = parse(EXAMPLE).unwrap();
        let ids: Vec<&str> = config.agents.iter().map(|a| a.id.as_str()).collect();
        for id in [
            "story-writer",
            "summarizer",
            "commit-writer",
            "movie-script",
        ] {
            assert!(ids.contains(&id), "{id} missing from {ids:?}");
        }
        let story = config.agent("story-writer").unwrap();
        assert_eq!(story.model, "test");
        assert_eq!(story.name, "Story Writer");
        assert_eq!(
            template::placeholders(&story.instructions[0]),
            ["robot_name"]
        );
        let schema = config
            .agent("movie-script")
            .unwrap()
            .output_schema
            .clone()
            .unwrap();
        assert_eq!(schema["type"], "object");
        assert_eq!(
            schema["properties"]["characters"]["items"]["type"],
            "string"
        );
        for agent in &config.agents {
            config
                .resolve_model(&agent.model, Some(agent.model_line))
                .unwrap();
        }
        let (report, warnings) = config.check_report();
        assert!(report.contains("story-writer"), "{report}");
        // story-writer's {robot_name} has a default in its `dependencies` table.
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn example_model_lines_point_at_model_keys() {
        let config = parse(EXAMPLE).unwrap();
        let lines: Vec<&str> = EXAMPLE.lines().collect();
        for agent in &config.agents {
            assert!(
                lines[agent.model_line - 1].starts_with("model = "),
                "{}",
                agent.id
            );
        }
    }

    #[test]
    fn defaults() {
        let config = parse("[[agents]]\nid = \"a\"\nmodel = \"test\"\n").unwrap();
        let a = &config.agents[0];
        assert_eq!(a.name, "a");
        assert_eq!(a.description, None);
        assert!(a.instructions.is_empty());
        assert!(!a.markdown);
        assert!(!a.add_history_to_context);
        assert_eq!(a.num_history_runs, 3);
        assert_eq!(a.output_schema, None);
        assert_eq!(a.temperature, None);
        assert_eq!(a.max_tokens, None);
        assert_eq!(a.model_line, 3);
        assert!(parse("").unwrap().agents.is_empty());
    }

    #[test]
    fn all_agent_keys() {
        let text = r#"
[[agents]]
id = "x.y_z-1"
name = "X"
description = "d"
model = "ollama:llama3.2:3b"
instructions = ["one", "two"]
markdown = true
add_history_to_context = true
num_history_runs = 0
temperature = 1
max_tokens = 10
output_schema = { type = "object", properties = { n = { type = "integer", minimum = 1 } } }
"#;
        let a = parse(text).unwrap().agents.remove(0);
        assert_eq!(a.model, "ollama:llama3.2:3b");
        assert_eq!(a.instructions, ["one", "two"]);
        assert!(a.markdown && a.add_history_to_context);
        assert_eq!(a.num_history_runs, 0);
        assert_eq!(a.temperature, Some(1.0));
        assert_eq!(a.max_tokens, Some(10));
        assert_eq!(
            a.output_schema,
            Some(
                serde_json::json!({"type":"object","properties":{"n":{"type":"integer","minimum":1}}})
            )
        );
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let text = format!("{TWO}modle = \"test\"\n");
        let (line, key, message) = error(&text);
        assert_eq!(line, Some(7));
        assert_eq!(key.as_deref(), Some("agents[1].modle"));
        assert!(
            message.starts_with("unknown field `modle`, expected one of"),
            "{message}"
        );
        let rendered = parse(&text).unwrap_err().to_string();
        assert!(rendered.starts_with("agents.toml:7: `agents[1].modle`: unknown field"));
        assert!(!rendered.contains('\n'));
    }

    #[test]
    fn unknown_top_level_and_provider_keys() {
        let (line, key, _) = error("\nfoo = 1\n");
        assert_eq!((line, key.as_deref()), (Some(2), Some("foo")));
        let (line, key, _) = error("[providers.x]\nbase_url = \"http://x\"\nkidn = \"openai\"\n");
        assert_eq!((line, key.as_deref()), (Some(3), Some("providers.x.kidn")));
    }

    #[test]
    fn wrong_types() {
        let (line, key, message) = error(&format!("{TWO}model = \"test\"\nmarkdown = \"yes\"\n"));
        assert_eq!(
            (line, key.as_deref()),
            (Some(8), Some("agents[1].markdown"))
        );
        assert!(message.contains("expected a boolean"), "{message}");

        let (line, key, message) =
            error("[[agents]]\nid = \"a\"\nmodel = \"test\"\ninstructions = 3\n");
        assert_eq!(
            (line, key.as_deref()),
            (Some(4), Some("agents[0].instructions"))
        );
        assert!(
            message.contains("string or an array of strings"),
            "{message}"
        );

        let (line, key, _) =
            error("[[agents]]\nid = \"a\"\nmodel = \"test\"\ninstructions = [\"a\", 1]\n");
        assert_eq!(
            (line, key.as_deref()),
            (Some(4), Some("agents[0].instructions"))
        );

        let (line, key, message) = error("agents = 3\n");
        assert_eq!((line, key.as_deref()), (Some(1), Some("agents")));
        assert!(message.contains("expected a sequence"), "{message}");

        let (_, key, message) = error("[providers]\nx = 3\n");
        assert_eq!(key.as_deref(), Some("providers.x"));
        assert!(message.contains("expected a provider table"), "{message}");

        let (line, key, _) = error("[providers.x]\nbase_url = \"http://x\"\nheaders = { a = 1 }\n");
        assert_eq!(
            (line, key.as_deref()),
            (Some(3), Some("providers.x.headers.a"))
        );
    }

    #[test]
    fn bad_syntax() {
        let (line, key, message) = error("[[agents]]\nid = \"a\"\nmodel = test\n");
        assert_eq!((line, key.as_deref()), (Some(3), Some("agents[0].model")));
        assert!(message.starts_with("invalid TOML: "), "{message}");
        assert!(
            message.contains("strings need quotes: \"test\""),
            "{message}"
        );

        let (line, _, message) = error("[[agents]\nid = \"a\"\n");
        assert_eq!(line, Some(1));
        assert!(message.starts_with("invalid TOML: "), "{message}");

        let (line, _, message) = error("[[agents]]\nid = \"a\"\nid = \"b\"\nmodel = \"test\"\n");
        assert_eq!(line, Some(3));
        assert!(!message.contains("quotes"), "{message}");
    }

    #[test]
    fn missing_required_keys() {
        let (line, key, message) = error(TWO);
        assert_eq!(line, Some(5));
        assert_eq!(key.as_deref(), Some("agents[1].model"));
        assert_eq!(message, "missing field `model`");
        let (_, key, _) = error("[[agents]]\nmodel = \"test\"\n");
        assert_eq!(key.as_deref(), Some("agents[0].id"));
    }

    #[test]
    fn duplicate_ids_point_at_the_second() {
        let text = format!("{TWO}model = \"test\"\n[[agents]]\nid = \"a\"\nmodel = \"test\"\n");
        let (line, key, message) = error(&text);
        assert_eq!((line, key.as_deref()), (Some(9), Some("agents[2].id")));
        assert_eq!(message, "duplicate agent id `a` (first defined on line 2)");
    }

    #[test]
    fn bad_ids() {
        let (line, key, message) = error("[[agents]]\nid = \"\"\nmodel = \"test\"\n");
        assert_eq!((line, key.as_deref()), (Some(2), Some("agents[0].id")));
        assert_eq!(message, "must not be empty");
        let (_, _, message) = error("[[agents]]\nid = \"a b\"\nmodel = \"test\"\n");
        assert!(message.contains("not a valid id"), "{message}");
    }

    #[test]
    fn model_references() {
        for (spec, want) in [
            ("test", ("test", "test")),
            ("test:echo", ("test", "echo")),
            ("openai:gpt-4o-mini", ("openai", "gpt-4o-mini")),
            ("ollama:llama3.2:3b", ("ollama", "llama3.2:3b")),
        ] {
            assert_eq!(parse_model_spec(spec), Ok(want));
        }
        for bad in [
            "",
            "gpt-4o",
            ":x",
            "openai:",
            "open ai:x",
            "openai:gpt 4",
            "ollama",
        ] {
            assert!(parse_model_spec(bad).is_err(), "{bad}");
        }
        let (line, key, message) = error("[[agents]]\nid = \"a\"\n\nmodel = \"gpt-4o\"\n");
        assert_eq!((line, key.as_deref()), (Some(4), Some("agents[0].model")));
        assert!(message.contains("expected `provider:model`"), "{message}");
    }

    #[test]
    fn unknown_provider_lists_known_ones() {
        let text = "[providers.local]\nbase_url = \"http://localhost:8080/v1\"\n\n\
                    [[agents]]\nid = \"a\"\nmodel = \"nope:x\"\n";
        let (line, key, message) = error(text);
        assert_eq!((line, key.as_deref()), (Some(6), Some("agents[0].model")));
        assert_eq!(
            message,
            "unknown provider `nope`: known providers are `anthropic`, `local`, `ollama`, `openai`, `test`; \
             define it in a [providers.nope] table"
        );
    }

    #[test]
    fn bad_output_schemas() {
        let head = "[[agents]]\nid = \"a\"\nmodel = \"test\"\n";
        let (line, key, message) = error(&format!("{head}output_schema = \"x\"\n"));
        assert_eq!(
            (line, key.as_deref()),
            (Some(4), Some("agents[0].output_schema"))
        );
        assert!(message.contains("expected a table"), "{message}");
        let (line, key, message) = error(&format!(
            "{head}\n[agents.output_schema]\ntype = \"array\"\n"
        ));
        assert_eq!(
            (line, key.as_deref()),
            (Some(5), Some("agents[0].output_schema"))
        );
        assert!(message.contains("type = \"object\""), "{message}");
        let (_, _, message) = error(&format!("{head}output_schema = {{ title = \"T\" }}\n"));
        assert!(message.contains("type = \"object\""), "{message}");
        let (_, _, message) = error(&format!(
            "{head}output_schema = {{ type = \"object\", x = nan }}\n"
        ));
        assert!(message.contains("no JSON representation"), "{message}");
    }

    #[test]
    fn numeric_ranges() {
        let head = "[[agents]]\nid = \"a\"\nmodel = \"test\"\n";
        for (extra, key) in [
            ("temperature = 2.5", "agents[0].temperature"),
            ("temperature = -0.1", "agents[0].temperature"),
            ("temperature = nan", "agents[0].temperature"),
            ("max_tokens = 0", "agents[0].max_tokens"),
            ("max_tokens = -3", "agents[0].max_tokens"),
            ("max_tokens = 99999999999", "agents[0].max_tokens"),
            ("num_history_runs = -1", "agents[0].num_history_runs"),
        ] {
            let (line, got, _) = error(&format!("{head}{extra}\n"));
            assert_eq!((line, got.as_deref()), (Some(4), Some(key)), "{extra}");
        }
        assert!(parse(&format!("{head}temperature = 0\nmax_tokens = 1\n")).is_ok());
    }

    #[test]
    fn providers() {
        let text = r#"
[providers.openrouter]
base_url = "https://openrouter.ai/api/v1/"
api_key_env = "OPENROUTER_API_KEY"
headers = { "HTTP-Referer" = "https://example.com" }

[providers.claude]
kind = "anthropic"

[providers.openai]
base_url = "http://proxy.local/v1"

[providers.gateway]
base_url = "http://gateway.local:8080/v1"
http2 = true
"#;
        let config = parse(text).unwrap();
        assert!(config.providers["gateway"].http2);
        assert!(!config.providers["openrouter"].http2);
        let router = &config.providers["openrouter"];
        assert_eq!(router.kind, ProviderKind::OpenAi);
        assert_eq!(router.base_url, "https://openrouter.ai/api/v1");
        assert_eq!(router.api_key_env.as_deref(), Some("OPENROUTER_API_KEY"));
        assert_eq!(router.headers["HTTP-Referer"], "https://example.com");
        assert_eq!(router.display_name, "openrouter");
        let claude = &config.providers["claude"];
        assert_eq!(claude.kind, ProviderKind::Anthropic);
        assert_eq!(claude.base_url, ANTHROPIC_BASE_URL);
        assert_eq!(claude.api_key_env.as_deref(), Some("ANTHROPIC_API_KEY"));
        let openai = &config.providers["openai"];
        assert_eq!(openai.base_url, "http://proxy.local/v1");
        assert_eq!(openai.api_key_env.as_deref(), Some("OPENAI_API_KEY"));
        assert_eq!(openai.display_name, "OpenAI");
        assert_eq!(config.providers["ollama"].display_name, "Ollama");
        assert_eq!(config.providers["ollama"].api_key_env, None);
        assert_eq!(config.providers["test"].kind, ProviderKind::Test);
    }

    #[test]
    fn fallbacks_thinking_and_prompt_caching() {
        let config = parse(
            "[[agents]]\nid = \"a\"\nmodel = \"anthropic:claude-sonnet-4-5\"\n\
             fallback_models = [\"openai:gpt-4o-mini\", \"test\"]\n\
             thinking = { budget_tokens = 2048 }\nmax_tokens = 4096\ncache_prompt = true\n",
        )
        .unwrap();
        let options = &config.agents[0].model_options;
        assert_eq!(options.fallback_models, ["openai:gpt-4o-mini", "test"]);
        assert_eq!(options.fallback_line, 4);
        assert_eq!(options.thinking_budget, Some(2048));
        assert!(options.cache_prompt);
        let anthropic = &config.providers["anthropic"];
        assert_eq!(anthropic.kind, ProviderKind::Anthropic);
        assert_eq!(anthropic.display_name, "Anthropic");
        assert_eq!(anthropic.api_key_env.as_deref(), Some("ANTHROPIC_API_KEY"));
        // An OpenAI agent may fall back to an Anthropic model that thinks.
        let config = parse(
            "[[agents]]\nid = \"a\"\nmodel = \"openai:gpt-4o\"\n\
             fallback_models = [\"anthropic:claude-haiku-4-5\"]\n\
             thinking = { budget_tokens = 1024 }\n",
        )
        .unwrap();
        assert_eq!(config.agents[0].model_options.thinking_budget, Some(1024));
        // Teams take the same keys.
        let config = parse(
            "[[agents]]\nid = \"a\"\nmodel = \"test\"\n\n[[teams]]\nid = \"t\"\n\
             model = \"anthropic:claude-sonnet-4-5\"\nmembers = [\"a\"]\n\
             fallback_models = [\"test\"]\ncache_prompt = true\n",
        )
        .unwrap();
        assert_eq!(config.teams[0].model_options.fallback_models, ["test"]);
        assert!(config.teams[0].model_options.cache_prompt);
    }

    #[test]
    fn bad_fallbacks_and_thinking() {
        let agent = |rest: &str| format!("[[agents]]\nid = \"a\"\nmodel = \"anthropic:c\"\n{rest}");
        let (line, key, message) = error(&agent("fallback_models = [\"test\", \"nope:x\"]\n"));
        assert_eq!(
            (line, key.as_deref()),
            (Some(4), Some("agents[0].fallback_models[1]"))
        );
        assert!(message.starts_with("unknown provider `nope`"), "{message}");
        let (_, key, message) = error(&agent("fallback_models = [\"anthropic:c\"]\n"));
        assert_eq!(key.as_deref(), Some("agents[0].fallback_models[0]"));
        assert!(
            message.contains("already one of the agent's models"),
            "{message}"
        );
        let (line, key, message) = error(&agent("thinking = { budget_tokens = 100 }\n"));
        assert_eq!(
            (line, key.as_deref()),
            (Some(4), Some("agents[0].thinking.budget_tokens"))
        );
        assert!(message.contains("from 1024"), "{message}");
        let (_, key, message) = error(&agent(
            "max_tokens = 2000\nthinking = { budget_tokens = 2000 }\n",
        ));
        assert_eq!(key.as_deref(), Some("agents[0].thinking.budget_tokens"));
        assert!(message.contains("less than max_tokens (2000)"), "{message}");
        let (line, key, _) = error(&agent(
            "temperature = 0.5\nthinking = { budget_tokens = 2000 }\n",
        ));
        assert_eq!(
            (line, key.as_deref()),
            (Some(4), Some("agents[0].temperature"))
        );
        let (line, key, message) = error(
            "[[agents]]\nid = \"a\"\nmodel = \"openai:gpt-4o\"\nthinking = { budget_tokens = 2000 }\n",
        );
        assert_eq!(
            (line, key.as_deref()),
            (Some(4), Some("agents[0].thinking"))
        );
        assert!(message.contains("applies to Anthropic models"), "{message}");
        let (_, key, _) = error("[[agents]]\nid = \"a\"\nmodel = \"test\"\ncache_prompt = true\n");
        assert_eq!(key.as_deref(), Some("agents[0].cache_prompt"));
        let (line, _, message) = error(&agent("thinking = { budget = 2000 }\n"));
        assert_eq!(line, Some(4));
        assert!(message.contains("budget"), "{message}");
    }

    #[test]
    fn bad_providers() {
        let (line, key, _) = error("[providers.x]\nbase_url = \"http://h\"\nhttp2 = \"yes\"\n");
        assert_eq!((line, key.as_deref()), (Some(3), Some("providers.x.http2")));
        let (line, key, message) = error("[providers.x]\nkind = \"gemini\"\n");
        assert_eq!((line, key.as_deref()), (Some(2), Some("providers.x.kind")));
        assert_eq!(
            message,
            "unknown provider kind `gemini`: expected `openai` or `anthropic`"
        );
        let (line, key, _) = error("\n[providers.x]\napi_key_env = \"K\"\n");
        assert_eq!(
            (line, key.as_deref()),
            (Some(2), Some("providers.x.base_url"))
        );
        let (_, key, _) = error("[providers.x]\nbase_url = \"ftp://x\"\n");
        assert_eq!(key.as_deref(), Some("providers.x.base_url"));
        let (_, key, _) = error("[providers.x]\nbase_url = \"http://x\"\napi_key_env = \"\"\n");
        assert_eq!(key.as_deref(), Some("providers.x.api_key_env"));
        let (_, key, _) = error("[providers.\"a:b\"]\nbase_url = \"http://x\"\n");
        assert_eq!(key.as_deref(), Some("providers.\"a:b\""));
        let (_, key, _) =
            error("[providers.x]\nbase_url = \"http://x\"\nheaders = { \"a b\" = \"v\" }\n");
        assert_eq!(key.as_deref(), Some("providers.x.headers"));
        let (_, key, _) =
            error("[providers.x]\nbase_url = \"http://x\"\nheaders = { a = \"v\\nw\" }\n");
        assert_eq!(key.as_deref(), Some("providers.x.headers.a"));
    }

    #[test]
    fn resolve_reads_the_key_env_var() {
        let var = "AGENTOS_CONFIG_TEST_KEY_4F2A";
        let text = format!(
            "[providers.p]\nbase_url = \"http://x/v1\"\napi_key_env = \"{var}\"\n\n\
             [[agents]]\nid = \"a\"\nmodel = \"p:m\"\n"
        );
        let config = parse(&text).unwrap();
        let agent = config.agent("a").unwrap();
        assert_eq!(agent.model_line, 7);

        let err = config
            .resolve_model(&agent.model, Some(agent.model_line))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("agents.toml:7: `model`: provider `p` needs an API key: set {var}")
        );
        let (_, warnings) = config.check_report();
        assert!(warnings.iter().any(|w| w.contains(var)), "{warnings:?}");

        // A variable that is set: the key is read from it, trimmed.
        let present = text.replace(var, "PATH");
        let config = parse(&present).unwrap();
        match std::env::var("PATH") {
            Ok(path) if !path.trim().is_empty() => {
                let resolved = config.resolve_model("p:m", None).unwrap();
                assert_eq!(resolved.api_key.as_deref(), Some(path.trim()));
                assert_eq!(resolved.model, "m");
                assert_eq!(resolved.provider.name, "p");
            }
            _ => assert!(config.resolve_model("p:m", None).is_err()),
        }
    }

    #[test]
    fn resolve_without_key() {
        let config = parse("").unwrap();
        let test = config.resolve_model("test", None).unwrap();
        assert_eq!(test.provider.kind, ProviderKind::Test);
        assert_eq!((test.model.as_str(), test.api_key), ("test", None));
        let ollama = config.resolve_model("ollama:llama3.2", Some(3)).unwrap();
        assert_eq!(ollama.provider.base_url, OLLAMA_BASE_URL);
        let err = config.resolve_model("nope:x", None).unwrap_err();
        assert_eq!(err.line, None);
        assert_eq!(err.key.as_deref(), Some("model"));
        assert!(err.message.starts_with("unknown provider `nope`"));
    }

    #[test]
    fn check_report_lists_agents() {
        let text = r#"
[[agents]]
id = "greeter"
description = "Says hello"
model = "test"
instructions = ["Hello {user_id}.", "Call them {nick} or {nick}."]
"#;
        let (report, warnings) = parse(text).unwrap().check_report();
        assert!(report.starts_with("agents.toml: 1 agent\n"), "{report}");
        assert!(report.contains("  greeter  test  Says hello\n"), "{report}");
        assert!(report.contains("providers: test (offline)"), "{report}");
        assert_eq!(
            warnings,
            [
                "agent `greeter`: placeholder {nick} must come from session_state, dependencies \
              or metadata at run time"
            ]
        );
        let (_, warnings) = parse("").unwrap().check_report();
        assert!(warnings[0].contains("no agents defined"), "{warnings:?}");
    }

    const TOOL: &str =
        "[tools.clock]\ndescription = \"Tells the time\"\ncommand = [\"date\", \"-u\"]\n";

    #[test]
    fn command_tool_defaults() {
        let config = parse(TOOL).unwrap();
        let tool = &config.tools["clock"];
        assert_eq!(tool.name, "clock");
        assert_eq!(tool.description, "Tells the time");
        assert_eq!(
            tool.parameters,
            serde_json::json!({"type": "object", "properties": {}})
        );
        assert_eq!(tool.command, ["date", "-u"]);
        assert_eq!(tool.cwd, None);
        assert_eq!(tool.timeout, Duration::from_secs(30));
        assert_eq!(tool.max_output_bytes, 65536);
        assert_eq!(tool.env, DEFAULT_TOOL_ENV);
        assert!(!tool.requires_confirmation);
        assert!(config.mcp.is_empty());
    }

    #[test]
    fn command_tool_all_keys() {
        let text = r#"
[tools.get-weather_2]
description = "Weather for a city"
command = ["./bin/weather", "--json"]
cwd = "data"
timeout_secs = 2.5
max_output_bytes = 100
env = ["WEATHER_API_KEY", "PATH"]
requires_confirmation = true

[tools.get-weather_2.parameters]
type = "object"
required = ["city"]
properties = { city = { type = "string" } }
"#;
        let config = Config::from_toml_str(text, Path::new("/etc/agentos/agents.toml")).unwrap();
        let tool = &config.tools["get-weather_2"];
        assert_eq!(tool.command, ["/etc/agentos/bin/weather", "--json"]);
        assert_eq!(tool.cwd.as_deref(), Some(Path::new("/etc/agentos/data")));
        assert_eq!(tool.timeout, Duration::from_millis(2500));
        assert_eq!(tool.max_output_bytes, 100);
        assert_eq!(tool.env.len(), DEFAULT_TOOL_ENV.len() + 1);
        assert_eq!(tool.env.last().map(String::as_str), Some("WEATHER_API_KEY"));
        assert!(tool.requires_confirmation);
        assert_eq!(tool.parameters["required"], serde_json::json!(["city"]));
        assert_eq!(tool.parameters["properties"]["city"]["type"], "string");

        // Absolute paths stay; programs found on PATH are left alone; a file in the
        // current directory resolves against it.
        let text = "[tools.a]\ndescription = \"d\"\ncommand = [\"sh\"]\ncwd = \"/tmp\"\n";
        let tool = parse(text).unwrap().tools.remove("a").unwrap();
        assert_eq!(tool.cwd.as_deref(), Some(Path::new("/tmp")));
        assert_eq!(tool.command, ["sh"]);
        let text = "[tools.a]\ndescription = \"d\"\ncommand = [\"./x\"]\ncwd = \".\"\n";
        let tool = parse(text).unwrap().tools.remove("a").unwrap();
        let here = std::env::current_dir().unwrap();
        assert_eq!(tool.cwd.as_deref(), Some(here.as_path()));
        assert_eq!(tool.command, [here.join("x").display().to_string()]);
    }

    #[test]
    fn bad_command_tools() {
        let head = "\n[tools.t]\ndescription = \"d\"\n";
        for (extra, key, needle) in [
            (
                "command = \"date -u\"",
                "tools.t.command",
                "never run through a shell",
            ),
            ("command = []", "tools.t.command", "found an empty array"),
            ("command = [\"\"]", "tools.t.command", "must not be empty"),
            (
                "command = [\"date\", 1]",
                "tools.t.command",
                "array of strings",
            ),
            ("command = [\"a\"]\ncwd = \"\"", "tools.t.cwd", "directory"),
            (
                "command = [\"a\"]\ntimeout_secs = 0",
                "tools.t.timeout_secs",
                "above 0",
            ),
            (
                "command = [\"a\"]\ntimeout_secs = -1",
                "tools.t.timeout_secs",
                "above 0",
            ),
            (
                "command = [\"a\"]\ntimeout_secs = nan",
                "tools.t.timeout_secs",
                "above 0",
            ),
            (
                "command = [\"a\"]\ntimeout_secs = 1e300",
                "tools.t.timeout_secs",
                "above 0",
            ),
            (
                "command = [\"a\"]\nmax_output_bytes = 0",
                "tools.t.max_output_bytes",
                "1 or more",
            ),
            (
                "command = [\"a\"]\nenv = [\"A=B\"]",
                "tools.t.env",
                "not an environment",
            ),
            (
                "command = [\"a\"]\nparameters = { type = \"array\" }",
                "tools.t.parameters",
                "type = \"object\"",
            ),
            (
                "command = [\"a\"]\nparameters = 3",
                "tools.t.parameters",
                "expected a table",
            ),
        ] {
            let (line, got, message) = error(&format!("{head}{extra}\n"));
            let want_line = 4 + extra.lines().count() - 1;
            assert_eq!(
                (line, got.as_deref()),
                (Some(want_line), Some(key)),
                "{extra}"
            );
            assert!(message.contains(needle), "{extra}: {message}");
        }

        let (line, key, message) = error(head);
        assert_eq!((line, key.as_deref()), (Some(2), Some("tools.t.command")));
        assert_eq!(message, "missing field `command`");
        let (line, key, _) = error("[tools.t]\ncommand = [\"a\"]\n");
        assert_eq!(
            (line, key.as_deref()),
            (Some(1), Some("tools.t.description"))
        );
        let (line, key, message) = error("[tools.t]\ndescription = \" \"\ncommand = [\"a\"]\n");
        assert_eq!(
            (line, key.as_deref()),
            (Some(2), Some("tools.t.description"))
        );
        assert!(message.contains("must not be empty"), "{message}");
        let (line, key, message) = error(&format!("{TOOL}shell = true\n"));
        assert_eq!((line, key.as_deref()), (Some(4), Some("tools.clock.shell")));
        assert!(message.starts_with("unknown field `shell`"), "{message}");

        for bad in ["a.b", "a b", &"x".repeat(65)] {
            let text = format!("\n[tools.\"{bad}\"]\ndescription = \"d\"\ncommand = [\"a\"]\n");
            let (line, key, message) = error(&text);
            assert_eq!(line, Some(2), "{bad}");
            assert_eq!(key, Some(format!("tools.{}", quote_key(bad))), "{bad}");
            assert!(message.contains("not a valid tool name"), "{message}");
        }
        let long = "x".repeat(64);
        assert!(
            parse(&format!(
                "[tools.{long}]\ndescription = \"d\"\ncommand = [\"a\"]\n"
            ))
            .is_ok()
        );
    }

    #[test]
    fn mcp_servers() {
        let text = r#"
[mcp.time]
command = "uvx"
args = ["mcp-server-time", "--local-timezone=Europe/Lisbon"]

[mcp."files.local"]
command = "npx"
args = ["-y", "@modelcontextprotocol/server-filesystem", "."]
env = { NODE_ENV = "production" }
cwd = "/srv"
timeout_secs = 5
requires_confirmation = ["write_file", "move_file"]

[mcp.all]
command = "x"
requires_confirmation = true
"#;
        let config = parse(text).unwrap();
        let time = &config.mcp["time"];
        let local = Config::from_toml_str(
            "[mcp.m]\ncommand = \"./server.py\"\n",
            Path::new("/etc/agentos/agents.toml"),
        )
        .unwrap();
        assert_eq!(local.mcp["m"].command, "/etc/agentos/server.py");
        assert_eq!(time.command, "uvx");
        assert_eq!(
            time.args,
            ["mcp-server-time", "--local-timezone=Europe/Lisbon"]
        );
        assert!(time.env.is_empty());
        assert_eq!(time.cwd, None);
        assert_eq!(time.timeout, Duration::from_secs(60));
        assert_eq!(time.confirm, McpConfirm::None);
        assert!(!time.confirm.requires("get_current_time"));
        let files = &config.mcp["files.local"];
        assert_eq!(files.env["NODE_ENV"], "production");
        assert_eq!(files.cwd.as_deref(), Some(Path::new("/srv")));
        assert_eq!(files.timeout, Duration::from_secs(5));
        assert!(files.confirm.requires("write_file"));
        assert!(!files.confirm.requires("read_file"));
        assert_eq!(config.mcp["all"].confirm, McpConfirm::All);
        assert!(config.mcp["all"].confirm.requires("anything"));
        let (report, _) = config.check_report();
        assert!(
            report.contains(
                "mcp servers: all (x), files.local (npx -y @modelcontextprotocol/server-filesystem \
                 .), time (uvx mcp-server-time --local-timezone=Europe/Lisbon)\n"
            ),
            "{report}"
        );
    }

    #[test]
    fn bad_mcp_servers() {
        for (text, line, key, needle) in [
            (
                "[mcp.m]\nargs = []\n",
                1,
                "mcp.m.command",
                "missing field `command`",
            ),
            (
                "[mcp.m]\ncommand = \"\"\n",
                2,
                "mcp.m.command",
                "the program",
            ),
            (
                "[mcp.m]\ncommand = [\"uvx\"]\n",
                2,
                "mcp.m.command",
                "expected a string",
            ),
            (
                "[mcp.m]\ncommand = \"x\"\nargs = \"a b\"\n",
                3,
                "mcp.m.args",
                "sequence",
            ),
            (
                "[mcp.m]\ncommand = \"x\"\nenv = { \"A B\" = \"v\" }\n",
                3,
                "mcp.m.env",
                "not an environment",
            ),
            (
                "[mcp.m]\ncommand = \"x\"\nenv = { A = 1 }\n",
                3,
                "mcp.m.env.A",
                "string",
            ),
            (
                "[mcp.m]\ncommand = \"x\"\ntimeout_secs = 0\n",
                3,
                "mcp.m.timeout_secs",
                "above 0",
            ),
            (
                "[mcp.m]\ncommand = \"x\"\nrequires_confirmation = \"yes\"\n",
                3,
                "mcp.m.requires_confirmation",
                "true, false or an array",
            ),
            (
                "[mcp.m]\ncommand = \"x\"\nrequires_confirmation = [1]\n",
                3,
                "mcp.m.requires_confirmation",
                "tool names",
            ),
            (
                "[mcp.m]\ncommand = \"x\"\ncwd = \"\"\n",
                3,
                "mcp.m.cwd",
                "directory",
            ),
            (
                "[mcp.m]\ncommand = \"x\"\nargv = []\n",
                3,
                "mcp.m.argv",
                "unknown field",
            ),
            (
                "\n[mcp.\"a/b\"]\ncommand = \"x\"\n",
                2,
                "mcp.\"a/b\"",
                "not a valid MCP server name",
            ),
        ] {
            let (got_line, got_key, message) = error(text);
            assert_eq!(
                (got_line, got_key.as_deref()),
                (Some(line), Some(key)),
                "{text}"
            );
            assert!(message.contains(needle), "{text}: {message}");
        }
        let config = parse("[mcp.m]\ncommand = \"x\"\nrequires_confirmation = []\n").unwrap();
        assert_eq!(config.mcp["m"].confirm, McpConfirm::None);
    }

    #[test]
    fn agent_tools() {
        let text = format!(
            "{TOOL}\n[mcp.time]\ncommand = \"uvx\"\n\n[[agents]]\nid = \"a\"\nmodel = \"test\"\n\
             tools = [\"clock\", \"mcp:time\", \"mcp:time/convert_time\"]\ntool_call_limit = 3\n\n\
             [[agents]]\nid = \"b\"\nmodel = \"test\"\n"
        );
        let config = parse(&text).unwrap();
        let a = config.agent("a").unwrap();
        assert_eq!(
            a.tools,
            [
                ToolRef::Command("clock".into()),
                ToolRef::Mcp {
                    server: "time".into(),
                    tool: None
                },
                ToolRef::Mcp {
                    server: "time".into(),
                    tool: Some("convert_time".into())
                },
            ]
        );
        let shown: Vec<String> = a.tools.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["clock", "mcp:time", "mcp:time/convert_time"]);
        assert_eq!(a.tool_call_limit, 3);
        let b = config.agent("b").unwrap();
        assert!(b.tools.is_empty());
        assert_eq!(b.tool_call_limit, DEFAULT_TOOL_CALL_LIMIT);
        let (report, _) = config.check_report();
        assert!(
            report.contains("\n  a  test\n     tools: clock, mcp:time, mcp:time/convert_time\n"),
            "{report}"
        );
        assert!(report.contains("\ntools: clock\n"), "{report}");
    }

    #[test]
    fn bad_agent_tools() {
        let head = format!(
            "{TOOL}[mcp.time]\ncommand = \"uvx\"\n[[agents]]\nid = \"a\"\nmodel = \"test\"\n"
        );
        // Line 9 is the first line after `head`.
        for (extra, line, key, needle) in [
            (
                "tools = [\"nope\"]",
                9,
                "agents[0].tools[0]",
                "unknown tool `nope`: known tools are `clock`",
            ),
            (
                "tools = [\n  \"clock\",\n  \"mcp:nope\",\n]",
                11,
                "agents[0].tools[1]",
                "unknown MCP server `nope`: known MCP servers are `time`",
            ),
            (
                "tools = [\"mcp:nope/x\"]",
                9,
                "agents[0].tools[0]",
                "unknown MCP server `nope`",
            ),
            (
                "tools = [\"mcp:time/\"]",
                9,
                "agents[0].tools[0]",
                "does not name a tool",
            ),
            (
                "tools = [\"clock\", \"clock\"]",
                9,
                "agents[0].tools[1]",
                "`clock` is listed twice",
            ),
            (
                "tools = \"clock\"",
                9,
                "agents[0].tools",
                "expected a sequence",
            ),
            ("tools = [1]", 9, "agents[0].tools[0]", "expected a string"),
            (
                "tool_call_limit = 0",
                9,
                "agents[0].tool_call_limit",
                "1 or more",
            ),
            (
                "tool_call_limit = -2",
                9,
                "agents[0].tool_call_limit",
                "1 or more",
            ),
        ] {
            let (got_line, got_key, message) = error(&format!("{head}{extra}\n"));
            assert_eq!(
                (got_line, got_key.as_deref()),
                (Some(line), Some(key)),
                "{extra}"
            );
            assert!(message.contains(needle), "{extra}: {message}");
        }
        let (_, _, message) =
            error("[[agents]]\nid = \"a\"\nmodel = \"test\"\ntools = [\"x\", \"mcp:y\"]\n");
        assert!(message.contains("no tools are defined"), "{message}");
        let (_, _, message) =
            error("[[agents]]\nid = \"a\"\nmodel = \"test\"\ntools = [\"mcp:y\"]\n");
        assert!(
            message.contains("no MCP servers are defined; define it in an [mcp.y] table"),
            "{message}"
        );
    }

    #[test]
    fn check_warns_about_missing_programs() {
        let text = "[tools.a]\ndescription = \"d\"\ncommand = [\"agentos-no-such-program\"]\n\
                    [tools.b]\ndescription = \"d\"\ncommand = [\"sh\"]\ncwd = \"/nonexistent\"\n\
                    [tools.c]\ndescription = \"d\"\ncommand = [\"sh\", \"-c\", \"true\"]\n\
                    [mcp.m]\ncommand = \"/nonexistent/server\"\n";
        let (report, warnings) = parse(text).unwrap().check_report();
        assert!(report.contains("\ntools: a, b, c\n"), "{report}");
        assert_eq!(
            warnings,
            [
                "agents.toml: no agents defined; add an [[agents]] table",
                "tool `a`: program `agentos-no-such-program` not found",
                "tool `b`: cwd /nonexistent is not a directory",
                "MCP server `m`: program `/nonexistent/server` not found",
            ]
        );
    }

    #[test]
    fn error_display() {
        let full = ConfigError::new(Path::new("a.toml"), Some(3), Some("k".into()), "m".into());
        assert_eq!(full.to_string(), "a.toml:3: `k`: m");
        let bare = ConfigError::new(Path::new(""), None, None, "m".into());
        assert_eq!(bare.to_string(), "m");
    }

    #[test]
    fn never_panics_on_odd_input() {
        let samples = [
            "\u{feff}",
            "\0",
            "[",
            "[[agents]]",
            "[[agents]]\nid = 1",
            "agents = [1, 2]",
            "[agents]\nid = \"a\"",
            "providers = []",
            "[[providers]]",
            "ü = \"ä\"\n[[",
            "[[agents]]\nid = \"a\"\nmodel = \"test\"\noutput_schema = { type = \"object\", d = 1979-05-27 }",
            "x = \"\"\"\nunterminated",
            "\n\n\n= 1",
            "[[teams]]\nid = \"t\"\nmodel = \"test\"\nmembers = [\"t\", 1]",
            "[[workflows]]\nid = \"w\"\nsteps = [{ name = \"c\", type = \"condition\", when = \"((\\\"\" }]",
            "[[workflows]]\nid = \"w\"\n[[workflows.steps]]\nname = \"r\"\ntype = \"router\"\n\
             route = \"input.size() > 1 ? 'a' : 'b'\"\nsteps = [{ name = \"a\", else = [] }]",
        ];
        for text in samples {
            let _ = parse(text);
            for cut in 0..=text.len() {
                if let Some(prefix) = text.get(..cut) {
                    let _ = parse(prefix);
                }
            }
        }
        let _ = parse(EXAMPLE);
        for cut in (0..EXAMPLE.len()).step_by(7) {
            if let Some(prefix) = EXAMPLE.get(..cut) {
                let _ = parse(prefix);
            }
        }
    }

    #[test]
    fn find_prefers_the_explicit_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("mine.toml");
        std::fs::write(&file, "").unwrap();
        assert_eq!(Config::find(Some(&file)).unwrap(), file);
        let missing = dir.path().join("missing.toml");
        let err = Config::find(Some(&missing)).unwrap_err();
        assert_eq!(err.path, missing);
        assert!(err.message.contains("no such file"), "{}", err.message);
    }

    #[test]
    fn load_reports_unreadable_files() {
        let err = Config::load(Path::new("/nonexistent/agents.toml")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("/nonexistent/agents.toml: could not read")
        );
    }
}
