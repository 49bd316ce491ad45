//! `agents.toml`: finding, parsing and validating agent definitions.
//!
//! Parsing happens in two stages: `Raw*` serde structs that reject unknown keys, then
//! validation into [`Config`], after which nothing downstream handles unsettled options.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// A validated agents file.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it was read from (used in error messages).
    pub path: PathBuf,
    pub agents: Vec<AgentDef>,
    /// Built-in providers (`openai`, `ollama`, `test`) merged with `[providers.*]`.
    pub providers: BTreeMap<String, ProviderDef>,
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
    /// 1-based line of the agent's `model` key (or its `id` when `model` is absent).
    pub model_line: usize,
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
}

/// A `provider:model` reference checked against the providers, with its key read.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedModel {
    pub provider: ProviderDef,
    pub model: String,
    pub api_key: Option<String>,
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
    fn render(&self) -> String {
        let mut out = self.path.display().to_string();
        if let Some(line) = self.line {
            out.push_str(&format!(":{line}"));
        }
        out.push_str(": ");
        if let Some(key) = &self.key {
            out.push_str(&format!("`{key}`: "));
        }
        out.push_str(&self.message);
        out
    }
}

impl Config {
    pub fn load(_path: &Path) -> Result<Config, ConfigError> {
        unimplemented!()
    }
}
