//! `{name}` placeholders in agent instructions, filled at run time.
//!
//! A placeholder is `{` + an identifier (`[A-Za-z_][A-Za-z0-9_]*`) + `}`. Anything else in
//! braces, such as a JSON example `{"a": 1}`, is plain text. A placeholder no source can fill
//! stays as written.

use serde_json::{Map, Value};

/// Fills the placeholders of `template` from `sources`, searched in order (the run passes
/// session_state, dependencies, metadata), then `{user_id}` from `user_id`. String values
/// are inserted as they are, other values as compact JSON.
pub fn render(template: &str, sources: &[&Map<String, Value>], user_id: Option<&str>) -> String {
    if !template.contains('{') {
        return template.to_string();
    }
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match placeholder_at(after) {
            Some(name) => {
                match lookup(name, sources, user_id) {
                    Some(value) => out.push_str(&value),
                    None => {
                        out.push('{');
                        out.push_str(name);
                        out.push('}');
                    }
                }
                rest = &after[name.len() + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The placeholder names in `template`, each once, in order of first appearance.
pub fn placeholders(template: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        match placeholder_at(after) {
            Some(name) => {
                if !names.iter().any(|n| n == name) {
                    names.push(name.to_string());
                }
                rest = &after[name.len() + 1..];
            }
            None => rest = after,
        }
    }
    names
}

/// The identifier at the start of `s` when it is followed by `}`.
fn placeholder_at(s: &str) -> Option<&str> {
    let bytes = s.as_bytes();
    let first = *bytes.first()?;
    if !(first.is_ascii_alphabetic() || first == b'_') {
        return None;
    }
    let len = bytes
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))?;
    // The identifier is ASCII, so `len` is a char boundary.
    (bytes[len] == b'}').then(|| &s[..len])
}

fn lookup(name: &str, sources: &[&Map<String, Value>], user_id: Option<&str>) -> Option<String> {
    let found = sources.iter().find_map(|source| source.get(name));
    match found {
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
        None if name == "user_id" => user_id.map(str::to_string),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(m) => m,
            _ => panic!("test maps are objects"),
        }
    }

    #[test]
    fn fills_from_dependencies() {
        let deps = map(json!({"robot_name": "Anna"}));
        let empty = Map::new();
        let out = render(
            "You write very short stories. The robot's name is {robot_name}.",
            &[&empty, &deps, &empty],
            None,
        );
        assert_eq!(
            out,
            "You write very short stories. The robot's name is Anna."
        );
    }

    #[test]
    fn earlier_sources_win() {
        let state = map(json!({"x": "state"}));
        let deps = map(json!({"x": "deps", "y": "deps"}));
        let meta = map(json!({"y": "meta", "z": "meta"}));
        let out = render("{x} {y} {z}", &[&state, &deps, &meta], None);
        assert_eq!(out, "state deps meta");
    }

    #[test]
    fn user_id_comes_last() {
        let empty = Map::new();
        assert_eq!(render("hi {user_id}", &[&empty], Some("ada")), "hi ada");
        assert_eq!(render("hi {user_id}", &[&empty], None), "hi {user_id}");
        let state = map(json!({"user_id": "from-state"}));
        assert_eq!(render("{user_id}", &[&state], Some("ada")), "from-state");
    }

    #[test]
    fn non_strings_are_compact_json() {
        let deps = map(json!({"n": 3, "list": [1, "a"], "obj": {"k": true}, "nil": null}));
        let out = render("{n} {list} {obj} {nil}", &[&deps], None);
        assert_eq!(out, r#"3 [1,"a"] {"k":true} null"#);
    }

    #[test]
    fn unknown_and_non_placeholders_stay() {
        let deps = map(json!({"a": "A"}));
        let cases = [
            ("{missing} {a}", "{missing} A"),
            (r#"Answer like {"a": 1}"#, r#"Answer like {"a": 1}"#),
            ("{ a }", "{ a }"),
            ("{1a}", "{1a}"),
            ("{a", "{a"),
            ("}{", "}{"),
            ("{{a}}", "{A}"),
            ("{}", "{}"),
            ("trailing {", "trailing {"),
            ("ünïcödé {a} ✓", "ünïcödé A ✓"),
        ];
        for (template, want) in cases {
            assert_eq!(render(template, &[&deps], None), want, "{template}");
        }
    }

    #[test]
    fn substituted_values_are_not_rescanned() {
        let deps = map(json!({"a": "{b}", "b": "B"}));
        assert_eq!(render("{a}", &[&deps], None), "{b}");
    }

    #[test]
    fn lists_placeholders_once_in_order() {
        assert_eq!(
            placeholders(r#"{b} then {a_1} and {b} {user_id} {"json": 1} {9x} {_x}"#),
            vec!["b", "a_1", "user_id", "_x"]
        );
        assert!(placeholders("no braces").is_empty());
        assert!(placeholders("{").is_empty());
    }
}
