//! What ran, or what a session belongs to: an agent, a team or a workflow.
//!
//! One type serves every place that tells the three apart: run objects, sessions in the
//! store, the `/agents`, `/teams` and `/workflows` routes, and the `type` of session
//! listings. Agents, teams and workflows share one id namespace in `agents.toml`.

/// An agent, a team or a workflow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Agent,
    Team,
    Workflow,
}

impl Kind {
    /// Every kind, in the order AgentOS lists them.
    pub const ALL: [Kind; 3] = [Kind::Agent, Kind::Team, Kind::Workflow];

    /// The stored and wire spelling: `agent`, `team` or `workflow`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Agent => "agent",
            Kind::Team => "team",
            Kind::Workflow => "workflow",
        }
    }

    /// Parses the spelling of [`Kind::as_str`] (exact, lower case).
    pub fn parse(s: &str) -> Option<Self> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// `Agent`, `Team` or `Workflow`, as messages name it.
    pub fn title(self) -> &'static str {
        match self {
            Kind::Agent => "Agent",
            Kind::Team => "Team",
            Kind::Workflow => "Workflow",
        }
    }

    /// The first path segment of its routes: `agents`, `teams` or `workflows`.
    pub fn route(self) -> &'static str {
        match self {
            Kind::Agent => "agents",
            Kind::Team => "teams",
            Kind::Workflow => "workflows",
        }
    }

    /// The kind a route's first path segment names.
    pub fn from_route(segment: &str) -> Option<Self> {
        Kind::ALL.into_iter().find(|k| k.route() == segment)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip() {
        for kind in Kind::ALL {
            assert_eq!(Kind::parse(kind.as_str()), Some(kind));
            assert_eq!(Kind::from_route(kind.route()), Some(kind));
        }
        assert_eq!(Kind::parse("Agent"), None);
        assert_eq!(Kind::from_route("agent"), None);
    }
}
