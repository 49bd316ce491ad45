//! A fresh clone builds and tests with nothing beside it: no source, test, benchmark or CI
//! script may read a path outside the repository.
//!
//! Relative paths in Rust string literals are resolved the way they are used: relative to
//! the file for `include_str!`, `include_bytes!` and `#[path = …]`, relative to the
//! repository root otherwise (`cargo test` runs with the package root as its working
//! directory, and fixtures are joined to `CARGO_MANIFEST_DIR`). Shell scripts may only
//! climb to the repository root through `$(dirname "$0")/..`. Absolute paths into a
//! developer's machine are refused outright.

use std::path::{Component, Path, PathBuf};

/// The folders whose files must stay inside the repository.
const CHECKED: &[&str] = &["src", "tests", "benches", ".ci", "fuzz"];

/// Absolute path prefixes that only exist on someone's machine.
fn machine_prefixes() -> Vec<String> {
    // Spelled at run time so this file does not trip its own check.
    ["work", "root", "home", "Users"]
        .iter()
        .map(|d| format!("\"/{d}/"))
        .collect()
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every file under `dir`, skipping build output.
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name == "corpus" || name == "artifacts" || name == "fixtures" {
            continue;
        }
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// Whether `relative`, joined to `base` (a folder inside the repository), leaves it.
fn escapes(base: &Path, relative: &str) -> bool {
    let root = root();
    let mut depth: Vec<Component<'_>> = Vec::new();
    let Ok(inside) = base.strip_prefix(&root) else {
        return true;
    };
    for c in inside.components().chain(Path::new(relative).components()) {
        match c {
            Component::ParentDir => {
                if depth.pop().is_none() {
                    return true;
                }
            }
            Component::Normal(_) => depth.push(c),
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return true,
        }
    }
    false
}

/// The string literals of a line that contain a parent-directory step, with whether they
/// are resolved relative to the file.
fn relative_literals(line: &str) -> Vec<(String, bool)> {
    let file_relative = line.contains("include_str!(")
        || line.contains("include_bytes!(")
        || line.contains("#[path");
    let step = format!("..{}", '/');
    line.split('"')
        .skip(1)
        .step_by(2)
        .filter(|lit| lit.starts_with(&step) || lit.contains(&format!("/{step}")))
        .map(|lit| (lit.to_string(), file_relative))
        .collect()
}

fn problems_in(path: &Path, text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let shell = path.extension().is_none() || path.extension().is_some_and(|e| e == "sh");
    let rust = path.extension().is_some_and(|e| e == "rs");
    let dir = path.parent().unwrap_or(Path::new("."));
    let climb = format!("$(dirname \"$0\")/{}", "..");
    for (n, line) in text.lines().enumerate() {
        let at = format!("{}:{}", path.display(), n + 1);
        let trimmed = line.trim_start();
        if trimmed.starts_with("//") || trimmed.starts_with('#') && !trimmed.starts_with("#[") {
            continue;
        }
        for prefix in machine_prefixes() {
            if line.contains(&prefix) {
                found.push(format!("{at}: absolute path {prefix}…: {line}"));
            }
        }
        if rust {
            for (lit, file_relative) in relative_literals(line) {
                let base = if file_relative {
                    dir.to_path_buf()
                } else {
                    root()
                };
                if escapes(&base, &lit) {
                    found.push(format!("{at}: \"{lit}\" leaves the repository"));
                }
            }
        } else if shell {
            let without = line.replace(&climb, "");
            if without.contains(&format!("..{}", '/')) || without.ends_with("/..") {
                found.push(format!(
                    "{at}: a relative path climbs out of the script: {line}"
                ));
            }
        }
    }
    found
}

#[test]
fn nothing_reads_outside_the_repository() {
    let mut all = Vec::new();
    for dir in CHECKED {
        files(&root().join(dir), &mut all);
    }
    assert!(all.len() > 20, "the walk found too few files: {all:?}");
    let mut problems = Vec::new();
    for path in &all {
        let Ok(text) = std::fs::read_to_string(path) else {
            continue;
        };
        problems.extend(problems_in(path, &text));
    }
    assert!(
        problems.is_empty(),
        "these read outside the repository (copy the data into tests/fixtures/):\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_check_catches_what_it_should() {
    let src = root().join("src/config.rs");
    let up = format!("..{}", '/');
    let bad = [
        format!("let p = Path::new(\"{up}shared/x\");"),
        format!("let p = \"/{}/shared/x\";", "work"),
        format!("include_str!(\"{up}{up}x\")"),
    ];
    for line in &bad {
        assert!(!problems_in(&src, line).is_empty(), "not caught: {line}");
    }
    let ok = [
        format!("include_str!(\"{up}agents.toml\")"),
        "let p = root.join(\"tests/fixtures/agentos\");".to_string(),
    ];
    for line in &ok {
        assert!(problems_in(&src, line).is_empty(), "wrongly caught: {line}");
    }
    let script = root().join(".ci/run");
    assert!(problems_in(&script, "cd \"$(dirname \"$0\")/..\"").is_empty());
    assert!(!problems_in(&script, &format!("cat {up}shared/x")).is_empty());
}
