//! Tools an agent may call: command tools (`[tools.NAME]`) and the tools of MCP servers
//! (`[mcp.NAME]`). They run the same from `agentos run` and from `agentos serve`.

pub mod command;
pub mod mcp;

use std::sync::Arc;

use serde_json::Value;

use crate::cancel::CancelToken;

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
    /// back to the model as the tool's result, the run goes on.
    fn call(&self, args: &Value, cancel: &CancelToken) -> Result<String, String>;
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
