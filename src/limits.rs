//! Bounds on what agentos accepts from clients and models, so that nothing it stores
//! becomes impossible to read back or to serve.
//!
//! - JSON from a client (`session_state`, `dependencies`, `metadata`, an output schema, a
//!   session's JSON body) may nest at most [`MAX_JSON_DEPTH`] levels; deeper input is
//!   refused with an error naming the field. Stored run objects embed such values a few
//!   levels down, and serde_json refuses to parse more than 128 levels by default.
//! - JSON produced by a model (structured answers, tool arguments) that nests deeper is
//!   kept as the text the model sent.
//! - A model's answer is kept up to an agent's `max_answer_bytes`
//!   ([`DEFAULT_MAX_ANSWER_BYTES`]); past it the run ends `ERROR` with what it had.

use serde_json::Value;

/// The deepest nesting accepted in client-supplied JSON.
pub const MAX_JSON_DEPTH: usize = 64;

/// The largest answer a run keeps by default (an agent's `max_answer_bytes`).
pub const DEFAULT_MAX_ANSWER_BYTES: usize = 8 * 1024 * 1024;

/// How deeply a value nests: a scalar is 0, `[]` and `{}` are 1, `[[1]]` is 2.
pub fn json_depth(value: &Value) -> usize {
    // Iterative, so a value that is deep enough to matter cannot overflow the stack here.
    let mut deepest = 0;
    let mut stack: Vec<(&Value, usize)> = vec![(value, 0)];
    while let Some((value, depth)) = stack.pop() {
        match value {
            Value::Array(items) => {
                deepest = deepest.max(depth + 1);
                stack.extend(items.iter().map(|v| (v, depth + 1)));
            }
            Value::Object(map) => {
                deepest = deepest.max(depth + 1);
                stack.extend(map.values().map(|v| (v, depth + 1)));
            }
            _ => deepest = deepest.max(depth),
        }
    }
    deepest
}

/// `Err` with a message for a client when `value` nests deeper than [`MAX_JSON_DEPTH`].
pub fn check_depth(value: &Value) -> Result<(), String> {
    let depth = json_depth(value);
    if depth > MAX_JSON_DEPTH {
        return Err(format!(
            "JSON nested {depth} levels deep; at most {MAX_JSON_DEPTH} are accepted"
        ));
    }
    Ok(())
}

/// The deepest nesting of arrays and objects in JSON text, found without parsing it (and
/// without recursion). Brackets inside strings do not count. Text that is not JSON gives
/// a number without meaning, never an error.
pub fn text_depth(text: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for b in text.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn depths() {
        assert_eq!(json_depth(&json!(1)), 0);
        assert_eq!(json_depth(&json!({})), 1);
        assert_eq!(json_depth(&json!({"a": [1, {"b": []}]})), 4);
        assert_eq!(text_depth(r#"{"a": [1, {"b": "[[[["}]}"#), 3);
        assert_eq!(text_depth(r#"["\"[", [[]]]"#), 3);
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        let value: Value = serde_json::from_str(&deep).unwrap();
        assert_eq!(json_depth(&value), 100);
        assert_eq!(text_depth(&deep), 100);
        assert!(check_depth(&value).is_err());
        assert!(check_depth(&json!({"a": {"b": 1}})).is_ok());
    }
}
