//! `agents.toml` through the binary: errors name the file, line and key and exit 2; the
//! repository's example file and every ```toml block of the README pass `agentos check`.

use std::path::Path;

use crate::fake_model::FakeModel;
use crate::util::{TestEnv, read_manifest_relative};

/// The line (1-based) of the first line of `text` that starts with `prefix`.
fn line_of(text: &str, prefix: &str) -> usize {
    text.lines()
        .position(|l| l.trim_start().starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in\n{text}"))
        + 1
}

/// Runs `agents` and `check` on a broken `agents.toml`; both must exit 2 and print every
/// one of `needles` on stderr.
#[track_caller]
fn assert_config_error(text: &str, needles: &[&str]) {
    let env = TestEnv::new();
    env.write_config(text);
    for args in [
        &["agents"][..],
        &["check"][..],
        &["run", "a", "-m", "hi"][..],
    ] {
        let out = env.run(args);
        out.assert_code(2);
        for needle in needles {
            out.assert_stderr_contains(needle);
        }
        assert!(
            out.stdout.is_empty(),
            "nothing on stdout\n{}",
            out.describe()
        );
        assert!(!out.stderr().contains("panicked"), "{}", out.describe());
    }
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let text = "[[agents]]\nid = \"a\"\nmodel = \"test\"\nmodle = \"test\"\n";
    let line = line_of(text, "modle");
    assert_config_error(text, &[&format!("agents.toml:{line}"), "modle"]);
}

#[test]
fn unknown_provider_key_names_file_line_and_key() {
    let text = "[providers.local]\nbase_url = \"http://localhost:1/v1\"\nbase_ulr = \"x\"\n\n\
                [[agents]]\nid = \"a\"\nmodel = \"test\"\n";
    let line = line_of(text, "base_ulr");
    assert_config_error(text, &[&format!("agents.toml:{line}"), "base_ulr"]);
}

#[test]
fn bad_toml_syntax_names_the_line() {
    let text = "[[agents]]\nid = \"a\"\nmodel = \"test\ninstructions = \"x\"\n";
    assert_config_error(text, &["agents.toml:3"]);
}

#[test]
fn duplicate_ids_are_rejected() {
    let text =
        "[[agents]]\nid = \"a\"\nmodel = \"test\"\n\n[[agents]]\nid = \"a\"\nmodel = \"test\"\n";
    assert_config_error(text, &["agents.toml:", "duplicate", "`a`"]);
}

#[test]
fn unknown_provider_is_rejected() {
    let text = "[[agents]]\nid = \"a\"\nmodel = \"nope:gpt-4o\"\n";
    assert_config_error(text, &["agents.toml:3", "nope"]);
}

#[test]
fn wrong_value_type_is_rejected() {
    let text = "[[agents]]\nid = \"a\"\nmodel = \"test\"\ntemperature = \"hot\"\n";
    assert_config_error(text, &["agents.toml:4", "temperature"]);
}

#[test]
fn missing_api_key_fails_the_run_naming_the_variable() {
    // The built-in `openai` provider, pointed at the fake through OPENAI_BASE_URL.
    let fake = FakeModel::start();
    let mut env = TestEnv::new();
    env.set_env("OPENAI_BASE_URL", &fake.base_url());
    env.write_config(
        "[[agents]]\nid = \"a\"\nmodel = \"openai:gpt-4o-mini\"\ninstructions = \"hi\"\n",
    );
    let out = env.run(["run", "a", "-m", "hi"]);
    out.assert_code(2).assert_stderr_contains("OPENAI_API_KEY");
    assert_eq!(fake.request_count(), 0, "no request without a key");

    // The file itself is fine; `check` lists the agent and mentions the missing key.
    let out = env.run(["check"]);
    out.assert_stderr_contains("OPENAI_API_KEY");
    out.assert_stdout_contains("openai:gpt-4o-mini");

    // With the key set, the same agent runs.
    env.set_env("OPENAI_API_KEY", "sk-test");
    let out = env.run(["run", "a", "-m", "hi"]);
    out.assert_success();
    assert_eq!(out.stdout(), "Story for 'hi'. The end.\n");
    assert_eq!(fake.request_count(), 1);
    assert_eq!(
        fake.header(0, "authorization").as_deref(),
        Some("Bearer sk-test")
    );
}

#[test]
fn missing_config_file_exits_2() {
    let mut env = TestEnv::new();
    env.set_env("AGENTOS_CONFIG", "/nonexistent/agents.toml");
    let out = env.run(["agents"]);
    out.assert_code(2)
        .assert_stderr_contains("/nonexistent/agents.toml");
}

#[test]
fn config_flag_wins_over_the_environment() {
    let env = TestEnv::new();
    let other = env.write_file(
        "other.toml",
        "[[agents]]\nid = \"from-flag\"\nmodel = \"test\"\n",
    );
    let out = env.run(["--config", other.to_str().unwrap(), "agents"]);
    out.assert_success().assert_stdout_contains("from-flag");
    assert!(!out.stdout().contains("test-agent"), "{}", out.describe());
}

#[test]
fn agents_toml_in_the_working_directory_is_found() {
    let env = TestEnv::new();
    let mut cmd = env.cmd(["agents"]);
    cmd.env_remove("AGENTOS_CONFIG");
    let out = crate::util::Running::start(cmd).wait(crate::util::COMMAND_TIMEOUT);
    out.assert_success().assert_stdout_contains("test-agent");
}

/// The agent ids of an agents file, read with a line scan (no TOML parser in the tests).
fn agent_ids(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("id = \""))
        .filter_map(|rest| rest.split('"').next())
        .map(String::from)
        .collect()
}

#[test]
fn check_accepts_the_repository_agents_toml() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("agents.toml");
    let text = read_manifest_relative("agents.toml");
    let ids = agent_ids(&text);
    assert!(!ids.is_empty(), "no agents found in {}", path.display());
    let env = TestEnv::new();
    let out = env.run(["check", path.to_str().unwrap()]);
    out.assert_code(0);
    for id in &ids {
        out.assert_stdout_contains(id);
    }
}

#[test]
fn check_prints_what_the_file_defines() {
    let env = TestEnv::new();
    let out = env.run(["check"]);
    out.assert_code(0)
        .assert_stdout_contains("test-agent")
        .assert_stdout_contains("echo");
}

/// The ```toml blocks of a markdown text, with the line each starts on.
fn toml_blocks(markdown: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in markdown.lines().enumerate() {
        let fence = line.trim_start();
        match &mut current {
            None if fence.starts_with("```toml") => current = Some((i + 1, String::new())),
            Some(_) if fence.starts_with("```") => blocks.extend(current.take()),
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
            None => {}
        }
    }
    assert!(current.is_none(), "unterminated ```toml block in README.md");
    blocks
}

#[test]
fn readme_toml_blocks_pass_check() {
    let readme = read_manifest_relative("README.md");
    let blocks = toml_blocks(&readme);
    assert!(!blocks.is_empty(), "README.md has no ```toml blocks");
    let env = TestEnv::new();
    let mut checked = 0;
    for (line, block) in &blocks {
        if block.contains("# not-a-config") {
            continue;
        }
        let path = env.write_file(&format!("readme-{line}.toml"), block);
        let out = env.run(["check", path.to_str().unwrap()]);
        assert_eq!(
            out.code(),
            Some(0),
            "the ```toml block at README.md:{line} does not pass `agentos check`\n{block}\n{}",
            out.describe()
        );
        checked += 1;
    }
    assert!(
        checked > 0,
        "every ```toml block of README.md is marked # not-a-config"
    );
}

#[test]
fn toml_block_extraction() {
    let md = "a\n```toml\nx = 1\n```\n```sh\nls\n```\n  ```toml\ny = 2\n# not-a-config\n  ```\n";
    assert_eq!(
        toml_blocks(md),
        [
            (2, "x = 1\n".to_string()),
            (8, "y = 2\n# not-a-config\n".to_string())
        ]
    );
    assert_eq!(
        agent_ids("[[agents]]\nid = \"a-b\"\nmodel = \"test\"\n# id = \"no\"\n"),
        ["a-b"]
    );
}
