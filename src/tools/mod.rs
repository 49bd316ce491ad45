//! Tools an agent may call: command tools (`[tools.NAME]`) and the tools of MCP servers
//! (`[mcp.NAME]`). They run the same from `agentos run` and from `agentos serve`.

pub mod command;
pub mod mcp;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde_json::Value;

use crate::cancel::CancelToken;
use crate::config::{Config, ToolRef};

/// What the model is told about a tool.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolSpec {
    /// The name the model calls (unique within an agent's toolbox).
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: Value,
    /// The run pauses for a human decision before this tool runs.
    pub requires_confirmation: bool,
}

/// A callable tool.
pub trait Tool: Send + Sync {
    fn spec(&self) -> &ToolSpec;
    /// Runs the tool with the model's arguments. `Err` is a tool error: its text goes
    /// back to the model as the tool's result, the run goes on. Returns promptly with
    /// `Err("cancelled")` once `cancel` fires, leaving nothing of the call running.
    fn call<'a>(
        &'a self,
        args: &'a Value,
        cancel: &'a CancelToken,
    ) -> BoxFuture<'a, Result<String, String>>;
}

/// The tools one agent may use, in the order its `tools` list names them.
#[derive(Clone, Default)]
pub struct Toolbox {
    pub tools: Vec<Arc<dyn Tool>>,
}

impl Toolbox {
    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    pub fn specs(&self) -> Vec<ToolSpec> {
        self.tools.iter().map(|t| t.spec().clone()).collect()
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        self.tools.iter().find(|t| t.spec().name == name)
    }
}

/// Every tool the configuration defines: command tools built once, MCP servers started
/// on first use and kept (for the lifetime of `agentos serve`, or of one `agentos run`).
pub struct Registry {
    commands: BTreeMap<String, Arc<dyn Tool>>,
    mcp: mcp::McpPool,
}

impl Registry {
    pub fn from_config(config: &Config) -> Self {
        let commands = config
            .tools
            .iter()
            .map(|(name, def)| {
                let tool: Arc<dyn Tool> = Arc::new(command::CommandTool::new(def));
                (name.clone(), tool)
            })
            .collect();
        Registry {
            commands,
            mcp: mcp::McpPool::new(config.mcp.clone()),
        }
    }

    /// The toolbox for an agent's `tools` list. Starts the MCP servers it needs.
    pub async fn toolbox(&self, refs: &[ToolRef]) -> Result<Toolbox, String> {
        let mut tools = Vec::new();
        let mut mcp_refs = Vec::new();
        for r in refs {
            match r {
                ToolRef::Command(name) => tools.push(
                    self.commands
                        .get(name)
                        .cloned()
                        .ok_or_else(|| format!("tool `{name}` is not defined"))?,
                ),
                ToolRef::Mcp { server, tool } => mcp_refs.push((server.clone(), tool.clone())),
            }
        }
        if !mcp_refs.is_empty() {
            // An MCP tool named like a command tool is namespaced `server__tool`.
            let taken: Vec<String> = tools.iter().map(|t| t.spec().name.clone()).collect();
            tools.extend(self.mcp.tools_for(&mcp_refs, &taken).await?);
        }
        Ok(Toolbox { tools })
    }

    /// What an agent's tools look like to its model, to describe the agent: its
    /// toolbox's specs (starting the MCP servers it needs), or, when a server cannot be
    /// started or lacks a tool, its command tools alone and the reason the rest is missing.
    pub async fn describe(&self, refs: &[ToolRef]) -> (Vec<ToolSpec>, Option<String>) {
        match self.toolbox(refs).await {
            Ok(toolbox) => (toolbox.specs(), None),
            Err(e) => {
                let commands = refs
                    .iter()
                    .filter_map(|r| match r {
                        ToolRef::Command(name) => self.commands.get(name),
                        ToolRef::Mcp { .. } => None,
                    })
                    .map(|t| t.spec().clone())
                    .collect();
                (commands, Some(e))
            }
        }
    }
}
