//! Output schemas and structured answers: `OutputSchema::from_schema`,
//! `OutputSchema::from_response_format` and `schema::structured_answer` on any input.
//!
//! Input: JSON text (or not). Properties: nothing panics; an accepted schema gives a
//! JSON Schema output format with a valid name and every object schema closed, whose
//! schema can be written and read back; a structured answer is a JSON object shallow
//! enough to store and read back, or else exactly the text.
#![no_main]

use agentos::limits::{MAX_JSON_DEPTH, json_depth};
use agentos::schema::{OutputFormat, OutputSchema, structured_answer};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match structured_answer(&text) {
        Value::String(s) => assert_eq!(s, text),
        Value::Object(map) => {
            let value = Value::Object(map);
            assert!(json_depth(&value) <= MAX_JSON_DEPTH);
            assert_eq!(read_back(&value), value);
        }
        other => panic!("a structured answer is an object or the text: {other}"),
    }

    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    match OutputSchema::from_schema(&value) {
        Ok(schema) => {
            assert_eq!(value["type"], "object");
            let OutputFormat::JsonSchema {
                name,
                schema: inner,
                ..
            } = &schema.format
            else {
                panic!("a schema gives a JSON Schema format: {:?}", schema.format);
            };
            assert!((1..=64).contains(&name.len()), "{name:?}");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
                "{name:?}"
            );
            assert!(!schema.content_type.trim().is_empty());
            assert!(closed(inner), "{inner}");
            if json_depth(&value) <= MAX_JSON_DEPTH {
                assert_eq!(&read_back(inner), inner);
            }
        }
        Err(err) => assert!(err.0.starts_with("Invalid output_schema: "), "{}", err.0),
    }
    match OutputSchema::from_response_format(&value) {
        Ok(schema) => {
            assert_eq!(schema.content_type, "dict");
            if let OutputFormat::JsonSchema {
                name,
                schema: inner,
                ..
            } = &schema.format
            {
                assert!((1..=64).contains(&name.len()), "{name:?}");
                if json_depth(&value) <= MAX_JSON_DEPTH {
                    assert_eq!(&read_back(inner), inner);
                }
            }
        }
        Err(err) => assert!(err.0.starts_with("Invalid output_schema: "), "{}", err.0),
    }
});

/// The value after a trip through JSON text, as the store and a provider see it.
fn read_back(value: &Value) -> Value {
    let text = serde_json::to_string(value).expect("a value can be written");
    serde_json::from_str(&text).expect("written JSON reads back")
}

/// Whether every object schema outside `enum`, `const`, `default` and `examples` sets
/// `additionalProperties`.
fn closed(schema: &Value) -> bool {
    match schema {
        Value::Object(map) => {
            (map.get("type").and_then(Value::as_str) != Some("object")
                || map.contains_key("additionalProperties"))
                && map
                    .iter()
                    .filter(|(k, _)| {
                        !matches!(k.as_str(), "enum" | "const" | "default" | "examples")
                    })
                    .all(|(_, v)| closed(v))
        }
        Value::Array(items) => items.iter().all(closed),
        _ => true,
    }
}
