//! CEL expressions: `Expr::compile`, then `eval_bool` and `eval_string` on variable maps
//! built from the fuzzer's bytes.
//!
//! Input: the expression, a NUL byte, then bytes that build the variables (names from the
//! ones workflows define, values of every JSON type). Properties: nothing panics (the CEL
//! parser and interpreter included, so compiling never ends in "the expression parser
//! failed unexpectedly"); compiling is deterministic; `variables()` is sorted and unique.
#![no_main]

use agentos::expr::Expr;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Number, Value};

/// The variables workflow expressions see, plus short names the fuzzer may write.
const NAMES: [&str; 16] = [
    "input",
    "previous_step_content",
    "previous_step_outputs",
    "additional_data",
    "session_state",
    "step_choices",
    "current_iteration",
    "max_iterations",
    "all_success",
    "last_step_content",
    "step_outputs",
    "a",
    "b",
    "x",
    "int",
    "optional",
];

fuzz_target!(|data: &[u8]| {
    let (source, rest) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(source) = std::str::from_utf8(source) else {
        return;
    };
    let compiled = Expr::compile(source);
    assert_eq!(compiled, Expr::compile(source));
    let expr = match compiled {
        Ok(expr) => expr,
        Err(message) => {
            assert!(!message.contains("failed unexpectedly"), "{message}");
            return;
        }
    };
    assert_eq!(expr.source(), source);
    assert!(expr.variables().windows(2).all(|w| w[0] < w[1]));

    let mut bytes = Bytes(rest);
    let mut vars = Map::new();
    while let Some(b) = bytes.next() {
        let name = NAMES[b as usize % NAMES.len()];
        vars.insert(name.to_string(), bytes.value(3));
    }
    for result in [
        expr.eval_bool(&vars).map(|b| b.to_string()),
        expr.eval_string(&vars),
    ] {
        if let Err(message) = result {
            assert!(!message.contains("failed unexpectedly"), "{message}");
        }
    }
});

/// Reads values off the input.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn next(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn take(&mut self, n: usize) -> &[u8] {
        let (head, tail) = self.0.split_at(n.min(self.0.len()));
        self.0 = tail;
        head
    }

    fn u64(&mut self) -> u64 {
        let mut raw = [0u8; 8];
        let bytes = self.take(8);
        raw[..bytes.len()].copy_from_slice(bytes);
        u64::from_le_bytes(raw)
    }

    fn string(&mut self) -> String {
        let len = self.next().unwrap_or(0) as usize % 24;
        String::from_utf8_lossy(self.take(len)).into_owned()
    }

    fn value(&mut self, depth: usize) -> Value {
        let tag = self.next().unwrap_or(0);
        match tag % if depth == 0 { 7 } else { 9 } {
            0 => Value::Null,
            1 => Value::Bool(tag & 0x80 != 0),
            2 => Value::from(self.u64() as i64),
            3 => Value::from(self.u64()),
            4 => Number::from_f64(f64::from_bits(self.u64()))
                .map(Value::Number)
                .unwrap_or(Value::Null),
            5 | 6 => Value::String(self.string()),
            7 => {
                let n = self.next().unwrap_or(0) as usize % 5;
                Value::Array((0..n).map(|_| self.value(depth - 1)).collect())
            }
            _ => {
                let n = self.next().unwrap_or(0) as usize % 5;
                let mut map = Map::new();
                for _ in 0..n {
                    let key = match self.next() {
                        Some(b) if b & 1 == 0 => NAMES[b as usize / 2 % NAMES.len()].to_string(),
                        _ => self.string(),
                    };
                    let value = self.value(depth - 1);
                    map.insert(key, value);
                }
                Value::Object(map)
            }
        }
    }
}
