//! A fresh clone builds and tests with nothing beside it: no source, test, benchmark, fuzz
//! target, CI file or manifest may read a path outside the repository.
//!
//! Relative paths are resolved the way they are used. In Rust: relative to the file for
//! `include_str!`, `include_bytes!` and `#[path = …]`, relative to the repository root
//! otherwise (`cargo test` runs with the package root as its working directory, and
//! fixtures are joined to `CARGO_MANIFEST_DIR`); a bare `".."` climbs from wherever it is
//! joined, so it is refused, and so is `CARGO_MANIFEST_DIR` followed by `.parent()` or
//! `.ancestors()`. In TOML and Python files (manifests, `.ci/`): relative to the file.
//! Shell scripts may only climb to the repository root through `$(dirname "$0")/..` (no
//! `cd ..`). Absolute paths into a developer's machine (`/work/…`, `/home/…`, `~/…`, …),
//! quoted or not, are refused in every file.
//!
//! The fuzz crate has a lock file of its own; it must be current, or `.ci/fuzz.sh` fails
//! to build on a fresh clone.

use std::path::{Component, Path, PathBuf};
use std::process::Command;

/// The folders whose files must stay inside the repository.
const CHECKED: &[&str] = &["src", "tests", "benches", ".ci", "fuzz", "examples"];
/// Files outside those folders checked too.
const CHECKED_FILES: &[&str] = &["Cargo.toml"];

/// Absolute path prefixes that only exist on someone's machine, and `~/`.
fn machine_prefixes() -> Vec<String> {
    // Spelled at run time so this file does not trip its own check.
    let mut prefixes: Vec<String> = ["work", "root", "home", "Users", "mnt", "srv", "workspace"]
        .iter()
        .map(|d| format!("/{d}/"))
        .collect();
    prefixes.push(format!("{}/", '~'));
    prefixes
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A parent-directory step, spelled so this file does not trip its own check.
fn up() -> String {
    format!("{}.", '.')
}

/// Every file under `dir`, skipping build output and data.
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

/// Whether a path text takes a parent-directory step.
fn climbs(text: &str) -> bool {
    Path::new(text)
        .components()
        .any(|c| c == Component::ParentDir)
}

/// The string literals of a line quoted with `quote`.
fn literals(line: &str, quote: char) -> impl Iterator<Item = &str> {
    line.split(quote).skip(1).step_by(2)
}

/// The kinds of file the check reads.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Rust,
    Shell,
    /// TOML and Python: relative paths are relative to the file.
    FileRelative,
    Other,
}

fn kind_of(path: &Path) -> Kind {
    match path.extension().and_then(|e| e.to_str()) {
        Some("rs") => Kind::Rust,
        None | Some("sh") => Kind::Shell,
        Some("toml" | "py") => Kind::FileRelative,
        Some(_) => Kind::Other,
    }
}

/// Whether a line is only a comment in a file of this kind.
fn is_comment(kind: Kind, line: &str) -> bool {
    let t = line.trim_start();
    match kind {
        Kind::Rust => t.starts_with("//"),
        Kind::Shell | Kind::FileRelative => t.starts_with('#') && !t.starts_with("#["),
        Kind::Other => false,
    }
}

/// Absolute paths into a machine in `line`: a prefix at the start of a word, a quoted
/// string or an assignment.
fn machine_paths(line: &str) -> Vec<String> {
    let mut found = Vec::new();
    for prefix in machine_prefixes() {
        for (at, _) in line.match_indices(&prefix) {
            let before = line[..at].chars().next_back();
            if before.is_none_or(|c| " \t\"'=(:,[`{".contains(c)) {
                found.push(prefix.clone());
            }
        }
    }
    found
}

/// `CARGO_MANIFEST_DIR` followed, within its statement, by a climb out of it.
fn manifest_dir_climbs(text: &str) -> Vec<usize> {
    let mut found = Vec::new();
    for (at, _) in text.match_indices("CARGO_MANIFEST_DIR") {
        let rest = &text[at..];
        let statement = &rest[..rest.find(';').unwrap_or(rest.len())];
        let compact: String = statement.chars().filter(|c| !c.is_whitespace()).collect();
        if compact.contains(".parent()")
            || compact.contains(".ancestors()")
            || literals(&compact, '"').any(climbs)
        {
            found.push(text[..at].matches('\n').count() + 1);
        }
    }
    found
}

fn problems_in(path: &Path, text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let kind = kind_of(path);
    let dir = path.parent().unwrap_or(Path::new("."));
    let climb = format!("$(dirname \"$0\")/{}", up());
    let step = format!("{}/", up());
    for (n, line) in text.lines().enumerate() {
        let at = format!("{}:{}", path.display(), n + 1);
        if is_comment(kind, line) {
            continue;
        }
        for prefix in machine_paths(line) {
            found.push(format!("{at}: absolute path {prefix}…: {line}"));
        }
        match kind {
            Kind::Rust => {
                let file_relative = line.contains("include_str!(")
                    || line.contains("include_bytes!(")
                    || line.contains("#[path");
                for lit in literals(line, '"').filter(|l| climbs(l)) {
                    let leaves = if file_relative {
                        escapes(dir, lit)
                    } else {
                        // A bare climb leaves whatever it is joined to, the root included.
                        lit == up() || lit.ends_with(&format!("/{}", up())) || escapes(&root(), lit)
                    };
                    if leaves {
                        found.push(format!("{at}: \"{lit}\" leaves the repository"));
                    }
                }
            }
            Kind::FileRelative => {
                for lit in literals(line, '"').chain(literals(line, '\'')) {
                    if climbs(lit) && escapes(dir, lit) {
                        found.push(format!("{at}: \"{lit}\" leaves the repository"));
                    }
                }
            }
            Kind::Shell => {
                let without = line.replace(&climb, "");
                let bare = without
                    .split(|c: char| c.is_whitespace() || "\"';&|()".contains(c))
                    .any(|word| word == up());
                if without.contains(&step) || without.ends_with(&format!("/{}", up())) || bare {
                    found.push(format!(
                        "{at}: a relative path climbs out of the script: {line}"
                    ));
                }
            }
            Kind::Other => {}
        }
    }
    if kind == Kind::Rust {
        // Comments blanked, lines kept: a statement may span lines.
        let code: String = text
            .lines()
            .map(|l| if is_comment(kind, l) { "" } else { l })
            .flat_map(|l| [l, "\n"])
            .collect();
        for line in manifest_dir_climbs(&code) {
            found.push(format!(
                "{}:{line}: CARGO_MANIFEST_DIR climbs out of the repository",
                path.display()
            ));
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
    all.extend(CHECKED_FILES.iter().map(|f| root().join(f)));
    assert!(all.len() > 20, "the walk found too few files: {all:?}");
    for wanted in [
        "Cargo.toml",
        "fuzz/Cargo.toml",
        ".ci/run",
        ".ci/schemathesis.toml",
    ] {
        assert!(
            all.contains(&root().join(wanted)),
            "{wanted} is not checked"
        );
    }
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
    let up = up();
    let manifest_dir = format!("CARGO_{}", "MANIFEST_DIR");
    let src = root().join("src/config.rs");
    let caught = |path: &Path, text: &str| !problems_in(path, text).is_empty();
    let bad_rust = [
        format!("let p = Path::new(\"{up}/shared/x\");"),
        format!("let p = \"/{}/shared/x\";", "work"),
        format!("let p = r\"/{}/me/x\";", "home"),
        format!("include_str!(\"{up}/{up}/x\")"),
        format!("let p = dir.join(\"{up}\");"),
        format!("let p = PathBuf::from(env!(\"{manifest_dir}\")).parent().unwrap();"),
        format!(
            "let p = Path::new(env!(\"{manifest_dir}\"))\n    .join(\"{up}\")\n    .join(\"x\");"
        ),
        format!("let p = Path::new(env!(\"{manifest_dir}\"))\n    .ancestors()\n    .nth(1);"),
    ];
    for text in &bad_rust {
        assert!(caught(&src, text), "not caught: {text}");
    }
    let after_comments =
        format!("// a\n// b\nlet p = Path::new(env!(\"{manifest_dir}\")).parent();");
    assert!(
        problems_in(&src, &after_comments)[0].contains("config.rs:3:"),
        "{:?}",
        problems_in(&src, &after_comments)
    );
    let ok_rust = [
        format!("include_str!(\"{up}/agents.toml\")"),
        "let p = root.join(\"tests/fixtures/agentos\");".to_string(),
        format!("let p = Path::new(env!(\"{manifest_dir}\")).join(\"agents.toml\");"),
        "let dir = path.parent().unwrap_or(Path::new(\"\"));".to_string(),
        "let url = \"/workflows/flow/runs\";".to_string(),
    ];
    for text in &ok_rust {
        assert!(!caught(&src, text), "wrongly caught: {text}");
    }

    let script = root().join(".ci/run");
    let bad_shell = [
        format!("cat {up}/shared/x"),
        format!("cd {up}"),
        format!("cd {up} && ls"),
        format!("pushd \"{up}\""),
        format!("cat '/{}/me/x'", "home"),
        format!("cat /{}/shared/x", "work"),
        format!("X=/{}/x", "root"),
        format!("cp {}/.config/x .", '~'),
    ];
    for line in &bad_shell {
        assert!(caught(&script, line), "not caught: {line}");
        assert!(
            caught(&root().join(".ci/fuzz.sh"), line),
            "not caught: {line}"
        );
    }
    let ok_shell = [
        format!("cd \"$(dirname \"$0\")/{up}\""),
        "curl \"$base/workflows/flow/runs\" > /tmp/x 2>/dev/null".to_string(),
        "echo {1..5}".to_string(),
    ];
    for line in &ok_shell {
        assert!(!caught(&script, line), "wrongly caught: {line}");
    }

    let manifest = root().join("Cargo.toml");
    assert!(caught(&manifest, &format!("x = {{ path = \"{up}/x\" }}")));
    assert!(caught(
        &manifest,
        &format!("x = {{ path = '/{}/me/x' }}", "home")
    ));
    assert!(!caught(&manifest, "x = { path = \"crates/x\" }"));
    let fuzz = root().join("fuzz/Cargo.toml");
    assert!(!caught(&fuzz, &format!("agentos = {{ path = \"{up}\" }}")));
    assert!(caught(&fuzz, &format!("x = {{ path = \"{up}/{up}/x\" }}")));
    for file in [".ci/x.toml", ".ci/x.py"] {
        let path = root().join(file);
        assert!(caught(&path, &format!("f = \"{up}/{up}/x\"")), "{file}");
        assert!(
            caught(&path, &format!("f = open('/{}/me/x')", "home")),
            "{file}"
        );
        assert!(!caught(&path, &format!("f = \"{up}/tests/x\"")), "{file}");
    }
}

#[test]
fn the_fuzz_crates_lock_file_is_current() {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(&cargo)
        .args(["metadata", "--locked", "--offline", "--format-version", "1"])
        .arg("--manifest-path")
        .arg(root().join("fuzz/Cargo.toml"))
        .output()
        .unwrap_or_else(|e| panic!("could not run {cargo:?}: {e}"));
    assert!(
        out.status.success(),
        "fuzz/Cargo.lock is not current (run `cargo update --manifest-path fuzz/Cargo.toml \
         --workspace`):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("\"agentos-fuzz\""),
        "cargo metadata did not describe the fuzz crate"
    );
}
