//! MCP servers over stdio.
use std::collections::BTreeMap;
use std::sync::Arc;

use super::Tool;
use crate::config::McpServerDef;

pub struct McpPool {
    _defs: BTreeMap<String, McpServerDef>,
}

impl McpPool {
    pub fn new(defs: BTreeMap<String, McpServerDef>) -> Self {
        McpPool { _defs: defs }
    }

    pub fn tools_for(
        &self,
        _refs: &[(String, Option<String>)],
    ) -> Result<Vec<Arc<dyn Tool>>, String> {
        Err("MCP servers are not available in this build".into())
    }
}
