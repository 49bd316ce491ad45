//! Output schemas: turning a user's JSON Schema into the [`OutputFormat`] every provider
//! understands (OpenAI sends it as `response_format`, Anthropic as `output_config`).
//!
//! Two forms exist, as in AgentOS:
//! - a JSON Schema object (`"type": "object"`, from agents.toml, `--output-schema` or the
//!   `output_schema` form field). It is asked for as a strict JSON Schema named after its
//!   `title`, and the run's `content_type` is that title;
//! - with `use_json_schema=true`, an OpenAI-style response format given by the caller
//!   (`{"type":"json_object"}`, `{"type":"json_schema","json_schema":{…}}`, or a plain
//!   object schema). Unlike AgentOS, which forwards a plain schema verbatim as an invalid
//!   `response_format`, agentos reads it as a JSON Schema.

use serde_json::{Map, Value};

/// The form a model's answer must take.
#[derive(Clone, Debug, PartialEq)]
pub enum OutputFormat {
    /// Any JSON object.
    JsonObject,
    /// JSON valid for a schema.
    JsonSchema {
        /// `[A-Za-z0-9_-]{1,64}`.
        name: String,
        description: Option<String>,
        /// Every object closed with `additionalProperties: false` unless it says otherwise.
        schema: Value,
        /// Whether the schema meets strict mode's rules (every property required).
        strict: bool,
    },
}

/// A validated output schema: what to ask the provider for, and how the run reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputSchema {
    pub format: OutputFormat,
    /// The run's `content_type`: the schema title, or `dict` for raw response formats.
    pub content_type: String,
}

/// Why a schema was refused; the text is AgentOS's 422 `detail`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SchemaError(pub String);

impl OutputSchema {
    /// A JSON Schema whose root declares `"type": "object"`.
    pub fn from_schema(schema: &Value) -> Result<Self, SchemaError> {
        let obj = schema.as_object().ok_or_else(|| {
            SchemaError("Invalid output_schema: expected a JSON object schema".into())
        })?;
        if obj.get("type").and_then(Value::as_str) != Some("object") {
            return Err(SchemaError(
                "Invalid output_schema: root must declare \"type\": \"object\"".into(),
            ));
        }
        let title = obj
            .get("title")
            .and_then(Value::as_str)
            .filter(|t| !t.trim().is_empty())
            .unwrap_or("Output");
        Ok(OutputSchema {
            format: json_schema_format(title, None, schema),
            content_type: title.to_string(),
        })
    }

    /// A caller-supplied response format (`use_json_schema=true`).
    pub fn from_response_format(format: &Value) -> Result<Self, SchemaError> {
        let obj = format.as_object().ok_or_else(|| {
            SchemaError("Invalid output_schema: expected a JSON object schema".into())
        })?;
        let format = match obj.get("type").and_then(Value::as_str) {
            Some("json_object") => OutputFormat::JsonObject,
            Some("json_schema") => {
                let inner = obj.get("json_schema").and_then(Value::as_object);
                let Some(schema) = inner
                    .and_then(|i| i.get("schema"))
                    .filter(|s| s.is_object())
                else {
                    return Err(SchemaError(
                        "Invalid output_schema: json_schema.schema must be a JSON object".into(),
                    ));
                };
                let text = |key: &str| {
                    inner
                        .and_then(|i| i.get(key))
                        .and_then(Value::as_str)
                        .map(str::to_string)
                };
                // The caller's own format is sent as given: its strictness and name kept.
                OutputFormat::JsonSchema {
                    name: format_name(text("name").as_deref().unwrap_or("Output")),
                    description: text("description"),
                    schema: schema.clone(),
                    strict: inner
                        .and_then(|i| i.get("strict"))
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                }
            }
            _ => {
                let title = obj.get("title").and_then(Value::as_str).unwrap_or("Output");
                json_schema_format(title, None, format)
            }
        };
        Ok(OutputSchema {
            format,
            content_type: "dict".into(),
        })
    }
}

/// A model's answer to a run with an output schema, as the run's `content`: the JSON object
/// it holds, or the text itself when it is not a JSON object or nests deeper than agentos
/// stores ([`crate::limits::MAX_JSON_DEPTH`]).
pub fn structured_answer(text: &str) -> Value {
    serde_json::from_str::<Value>(text)
        .ok()
        .filter(|v| v.is_object() && crate::limits::check_depth(v).is_ok())
        .unwrap_or_else(|| Value::String(text.to_string()))
}

/// A JSON Schema format named after `title`. Strict mode is asked for only when the schema
/// already meets its rules (every property required), so an optional property is never
/// silently made mandatory.
fn json_schema_format(title: &str, description: Option<String>, schema: &Value) -> OutputFormat {
    let mut schema = schema.clone();
    let strict = close_objects(&mut schema);
    OutputFormat::JsonSchema {
        name: format_name(title),
        description,
        schema,
        strict,
    }
}

/// Adds `additionalProperties: false` to every object schema that does not set it;
/// returns whether every object lists all its properties as required.
fn close_objects(schema: &mut Value) -> bool {
    let mut strict_ok = true;
    match schema {
        Value::Object(map) => {
            if map.get("type").and_then(Value::as_str) == Some("object") {
                map.entry("additionalProperties")
                    .or_insert(Value::Bool(false));
                strict_ok &= all_required(map);
            }
            for (key, child) in map.iter_mut() {
                if key == "enum" || key == "const" || key == "default" || key == "examples" {
                    continue;
                }
                strict_ok &= close_objects(child);
            }
        }
        Value::Array(items) => {
            for item in items {
                strict_ok &= close_objects(item);
            }
        }
        _ => {}
    }
    strict_ok
}

fn all_required(map: &Map<String, Value>) -> bool {
    let Some(props) = map.get("properties").and_then(Value::as_object) else {
        return true;
    };
    let required: Vec<&str> = map
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    props.keys().all(|k| required.contains(&k.as_str()))
}

/// Provider format names allow `[A-Za-z0-9_-]{1,64}`.
fn format_name(title: &str) -> String {
    let name: String = title
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if name.is_empty() {
        "Output".into()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parts(format: &OutputFormat) -> (&str, &Value, bool) {
        match format {
            OutputFormat::JsonSchema {
                name,
                schema,
                strict,
                ..
            } => (name.as_str(), schema, *strict),
            OutputFormat::JsonObject => panic!("not a schema"),
        }
    }

    #[test]
    fn schema_becomes_strict_json_schema_format() {
        let schema = json!({"type":"object","title":"Movie Script","properties":{"title":{"type":"string"}},"required":["title"]});
        let out = OutputSchema::from_schema(&schema).unwrap();
        assert_eq!(out.content_type, "Movie Script");
        let (name, schema, strict) = parts(&out.format);
        assert_eq!(name, "Movie_Script");
        assert!(strict);
        assert_eq!(schema["additionalProperties"], false);
    }

    #[test]
    fn optional_property_disables_strict() {
        let schema = json!({"type":"object","properties":{"a":{"type":"string"},"b":{"type":"integer"}},"required":["a"]});
        let out = OutputSchema::from_schema(&schema).unwrap();
        assert!(!parts(&out.format).2);
        assert_eq!(out.content_type, "Output");
    }

    #[test]
    fn rejects_non_object_schemas_with_agentos_messages() {
        assert_eq!(
            OutputSchema::from_schema(&json!([1])).unwrap_err().0,
            "Invalid output_schema: expected a JSON object schema"
        );
        assert!(
            OutputSchema::from_schema(&json!({"type":"array"}))
                .unwrap_err()
                .0
                .contains("root must declare")
        );
    }

    #[test]
    fn structured_answers_are_objects_or_the_text() {
        assert_eq!(structured_answer(r#"{"a": [1]}"#), json!({"a": [1]}));
        assert_eq!(structured_answer("[1]"), json!("[1]"));
        assert_eq!(structured_answer("not json"), json!("not json"));
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(70), "]".repeat(70));
        assert_eq!(structured_answer(&deep), Value::String(deep.clone()));
    }

    #[test]
    fn raw_formats_are_kept_or_made_valid() {
        let raw = OutputSchema::from_response_format(&json!({"type":"json_object"})).unwrap();
        assert_eq!(raw.format, OutputFormat::JsonObject);
        assert_eq!(raw.content_type, "dict");
        let plain =
            OutputSchema::from_response_format(&json!({"type":"object","properties":{}})).unwrap();
        assert_eq!(parts(&plain.format).0, "Output");
        let given = OutputSchema::from_response_format(&json!({"type":"json_schema",
            "json_schema":{"name":"Reply","schema":{"type":"object"},"strict":true}}))
        .unwrap();
        assert_eq!(
            parts(&given.format),
            ("Reply", &json!({"type":"object"}), true)
        );
        assert!(
            OutputSchema::from_response_format(
                &json!({"type":"json_schema","json_schema":{"schema":3}})
            )
            .is_err()
        );
    }
}
