//! agents.toml: `Config::from_toml_str`, which validates agents, teams, workflows (compiling
//! their CEL expressions), tools, MCP servers and providers.
//!
//! Input: the file's text. Properties: nothing panics; every error names a line of the
//! file; a file that loads has model lines inside the file, ids that are unique and usable as one URL path segment, and
//! `agentos check`'s report of it can be written.
#![no_main]

use std::collections::BTreeSet;
use std::path::Path;

use agentos::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::from_toml_str(text, Path::new("agents.toml")) {
        Err(err) => {
            let lines = text.matches('\n').count() + 1;
            let line = err.line.unwrap_or_else(|| panic!("no line in `{err}`"));
            assert!((1..=lines).contains(&line), "line {line} of {lines}: {err}");
            assert!(!err.message.is_empty());
            let _ = err.to_string();
        }
        Ok(config) => {
            let mut ids = BTreeSet::new();
            let all = config
                .agents
                .iter()
                .map(|a| &a.id)
                .chain(config.teams.iter().map(|t| &t.id))
                .chain(config.workflows.iter().map(|w| &w.id));
            for id in all {
                assert!(is_name(id), "id {id:?}");
                assert!(ids.insert(id.clone()), "duplicate id {id:?}");
            }
            let lines = text.matches('\n').count() + 1;
            let model_lines = config.agents.iter().map(|a| a.model_line);
            for line in model_lines.chain(config.teams.iter().map(|t| t.model_line)) {
                assert!((1..=lines).contains(&line), "model line {line} of {lines}");
            }
            for workflow in &config.workflows {
                assert!(!workflow.steps.is_empty());
            }
            let _ = config.check_report();
        }
    }
});

/// Letters, digits, `_`, `.` and `-`, not only dots.
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && !s.bytes().all(|b| b == b'.')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}
