//! The store of sessions and runs: one SQLite file shared by `agentos run` and
//! `agentos serve`.
//!
//! The API is synchronous; the server calls it from blocking threads. One connection
//! behind a mutex, WAL journal, busy timeout, foreign keys, every write in a transaction.

mod migrations;

use std::path::Path;

use serde_json::Value;

use crate::run::{RunOutput, RunStatus};

/// What a session belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionType {
    Agent,
    Team,
    Workflow,
}

impl SessionType {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionType::Agent => "agent",
            SessionType::Team => "team",
            SessionType::Workflow => "workflow",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "agent" => Some(SessionType::Agent),
            "team" => Some(SessionType::Team),
            "workflow" => Some(SessionType::Workflow),
            _ => None,
        }
    }
}

/// A session row.
#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    pub session_id: String,
    pub session_type: SessionType,
    /// The agent, team or workflow id.
    pub component_id: String,
    pub user_id: Option<String>,
    /// The name given by a rename; `None` until then.
    pub session_name: Option<String>,
    /// JSON object.
    pub session_state: Value,
    pub metadata: Option<Value>,
    /// Free-form per-session data for later features (summaries, workflow data).
    pub session_data: Option<Value>,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: i64,
}

/// Filter and paging for [`Store::list_sessions`].
#[derive(Clone, Debug, PartialEq)]
pub struct SessionQuery {
    pub session_type: Option<SessionType>,
    pub component_id: Option<String>,
    pub user_id: Option<String>,
    /// Case-insensitive substring of the session name (or of its first message).
    pub session_name: Option<String>,
    pub sort_by: SessionSort,
    pub descending: bool,
    /// 1-based page and page size (`limit` ≥ 1).
    pub page: u32,
    pub limit: u32,
}

impl Default for SessionQuery {
    fn default() -> Self {
        SessionQuery {
            session_type: None,
            component_id: None,
            user_id: None,
            session_name: None,
            sort_by: SessionSort::CreatedAt,
            descending: true,
            page: 1,
            limit: 20,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionSort {
    CreatedAt,
    UpdatedAt,
    SessionName,
}

/// A session as listed: the row plus figures derived from its runs.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionSummary {
    pub session: Session,
    /// Stored name, else the first user input of the session's first run, else "".
    pub display_name: String,
    pub run_count: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
}

/// A stored run with its bookkeeping columns.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredRun {
    pub run: RunOutput,
    pub session_type: SessionType,
    /// The run's events as emitted (JSON objects), in order.
    pub events: Vec<Value>,
    pub updated_at: i64,
}

/// Store failures callers branch on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("session '{0}' not found")]
    SessionNotFound(String),
    #[error("session '{0}' already exists")]
    SessionExists(String),
    #[error("run '{0}' already exists")]
    RunExists(String),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("could not open database {path}: {source}")]
    Open {
        path: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("corrupt stored JSON: {0}")]
    Json(#[from] serde_json::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

pub struct Store {
    _private: (),
}

impl Store {
    pub fn open(_path: &Path) -> StoreResult<Store> {
        unimplemented!()
    }
}

#[allow(dead_code)]
fn status_str(s: RunStatus) -> &'static str {
    s.as_str()
}
