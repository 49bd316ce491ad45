//! MCP servers over stdio.
