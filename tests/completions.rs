//! The committed completion scripts in `completions/` match what the binary generates.
//!
//! Regenerate them with `AGENTOS_UPDATE_COMPLETIONS=1 cargo test completions`.

use std::path::Path;

use crate::util::TestEnv;

const UPDATE_VAR: &str = "AGENTOS_UPDATE_COMPLETIONS";

#[track_caller]
fn check(shell: &str, file: &str) {
    let env = TestEnv::new();
    let mut cmd = env.cmd(["completions", shell]);
    // Completions must not depend on the environment (clap `env =` arguments).
    cmd.env_remove("AGENTOS_CONFIG").env_remove("AGENTOS_DB");
    let out = crate::util::Running::start(cmd).wait(crate::util::COMMAND_TIMEOUT);
    out.assert_success();
    assert!(!out.stdout.is_empty(), "empty {shell} completion script");

    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("completions")
        .join(file);
    if std::env::var_os(UPDATE_VAR).is_some_and(|v| v == "1") {
        std::fs::write(&path, &out.stdout)
            .unwrap_or_else(|e| panic!("could not write {}: {e}", path.display()));
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == out.stdout,
        "completions/{file} is missing or out of date with `agentos completions {shell}`; \
         regenerate it with `{UPDATE_VAR}=1 cargo test completions` and commit the result"
    );
}

#[test]
fn bash() {
    check("bash", "agentos.bash");
}

#[test]
fn zsh() {
    check("zsh", "_agentos");
}

#[test]
fn fish() {
    check("fish", "agentos.fish");
}

#[test]
fn elvish() {
    check("elvish", "agentos.elv");
}

#[test]
fn powershell() {
    check("powershell", "_agentos.ps1");
}
