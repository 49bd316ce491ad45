//! CEL expressions (<https://cel.dev>), as written in workflow steps: `when` of a condition,
//! `until` of a loop and `route` of a router.
//!
//! An [`Expr`] is compiled once, when the agents file is loaded, and evaluated against a map
//! of variables each time its step runs. Values cross over as JSON: `null`, booleans,
//! numbers (whole numbers as `int`, or `uint` above the `int` range; others as `double`),
//! strings, arrays (`list`) and objects (`map` with string keys).
//!
//! The CEL parser and interpreter recurse: the parser over nesting, the interpreter over the
//! expression tree, comparisons and conversions over values. So expressions are bounded in
//! length ([`MAX_LEN`]), nesting (`MAX_NESTING`) and tree depth ([`MAX_DEPTH`]), and the
//! values of variables in depth ([`MAX_VALUE_DEPTH`]).
//!
//! - Evaluation runs inline, on the caller's thread: a workflow step evaluates its
//!   expression within its task, with no thread of its own. The worst accepted expression
//!   and values need at most [`EVAL_STACK`] (the test `evaluation_fits_in_eval_stack`
//!   evaluates them on a thread of that size), which is half the stack of the threads that
//!   run the engine: the server's tokio workers and the main thread of the other commands.
//! - Parsing needs far more stack per nesting level (about 6 MiB at the deepest accepted
//!   nesting in a debug build). It happens once per expression when the agents file is
//!   loaded, never while a run executes, on a thread of its own with [`PARSE_STACK`].

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, LazyLock};

use cel::common::ast::{EntryExpr, Expr as Node};
use cel::{Context, Env, ExecutionError, IdedExpr, Value as CelValue};
use serde_json::{Map, Value};

use crate::limits;

/// Longest expression source accepted, in bytes.
pub const MAX_LEN: usize = 2048;
/// Deepest nesting of parentheses, brackets, calls and conditionals the parser accepts.
const MAX_NESTING: u16 = 32;
/// Deepest expression tree accepted (a chain `a + b + …` is as deep as it is long).
pub const MAX_DEPTH: usize = 64;
/// The stack the evaluation of any accepted expression fits in, with values of any accepted
/// depth (about 2.4 MiB measured in a debug build, for a chain of [`MAX_DEPTH`] operators).
pub const EVAL_STACK: usize = 4 << 20;
/// The stack of the thread that parses an expression; ample for [`MAX_NESTING`] and
/// [`MAX_LEN`] in a debug build.
const PARSE_STACK: usize = 32 << 20;
/// Deepest nesting of lists and maps accepted in the value of a variable: a scalar is 0,
/// `[]` is 1. Deeper values are refused with an error naming the variable.
pub const MAX_VALUE_DEPTH: usize = 128;

/// The standard CEL environment: functions, macros and types.
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(Env::stdlib()));

/// A compiled CEL expression. Clones share the compiled form; two expressions are equal when
/// their sources are.
#[derive(Clone)]
pub struct Expr {
    source: Arc<str>,
    ast: Arc<IdedExpr>,
    variables: Arc<[String]>,
}

impl Expr {
    /// Parses `source`. The error says what is wrong and where (column, and line when the
    /// expression spans several).
    pub fn compile(source: &str) -> Result<Expr, String> {
        if source.trim().is_empty() {
            return Err("the expression is empty".into());
        }
        if source.len() > MAX_LEN {
            return Err(format!(
                "the expression is {} bytes long; at most {MAX_LEN} are allowed",
                source.len()
            ));
        }
        // The tree is checked and, when too deep, dropped on the parser's thread too: both
        // recurse over it.
        let (ast, variables) = on_parser_stack(|| {
            let ast = ENV
                .parser()
                .max_recursion_depth(MAX_NESTING)
                .parse(source)
                .map_err(|errors| syntax_error(source, &errors))?;
            if depth(&ast) > MAX_DEPTH {
                return Err(format!(
                    "the expression is too deeply nested: at most {MAX_DEPTH} levels of \
                     operators, calls and member accesses are allowed"
                ));
            }
            let mut variables = BTreeSet::new();
            free_variables(&ast, &mut Vec::new(), &mut variables);
            Ok((ast, variables.into_iter().collect::<Vec<_>>()))
        })??;
        Ok(Expr {
            source: source.into(),
            ast: Arc::new(ast),
            variables: variables.into(),
        })
    }

    /// The source text, as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The variables the expression reads, sorted: every name it uses that is not bound by a
    /// macro such as `exists(x, …)`, nor a type (`int`, `string`, …).
    pub fn variables(&self) -> &[String] {
        &self.variables
    }

    /// Evaluates the expression, which must give a `bool`.
    pub fn eval_bool(&self, vars: &Map<String, Value>) -> Result<bool, String> {
        self.eval(vars, |value| match value {
            CelValue::Bool(b) => Ok(b),
            other => Err(wrong_type("bool", &other)),
        })
    }

    /// Evaluates the expression, which must give a `string`.
    pub fn eval_string(&self, vars: &Map<String, Value>) -> Result<String, String> {
        self.eval(vars, |value| match value {
            CelValue::String(s) => Ok(s.as_str().to_owned()),
            other => Err(wrong_type("string", &other)),
        })
    }

    /// Evaluates the expression inline, on the caller's stack (see the module's docs).
    fn eval<T>(
        &self,
        vars: &Map<String, Value>,
        convert: impl FnOnce(CelValue) -> Result<T, String>,
    ) -> Result<T, String> {
        let mut context = Context::with_env(Arc::clone(&ENV));
        for (name, value) in vars {
            let depth = limits::json_depth(value);
            if depth > MAX_VALUE_DEPTH {
                return Err(format!(
                    "the variable `{name}` nests {depth} levels deep; expressions accept \
                     values at most {MAX_VALUE_DEPTH} deep"
                ));
            }
            context.add_variable_from_value(name.as_str(), to_cel(value));
        }
        match CelValue::resolve(&self.ast, &context) {
            Ok(value) => convert(value),
            Err(ExecutionError::UndeclaredReference(name)) => {
                let known: Vec<String> = vars.keys().map(|k| format!("`{k}`")).collect();
                let known = if known.is_empty() {
                    "no variables are defined here".to_string()
                } else {
                    format!("the variables are {}", known.join(", "))
                };
                Err(format!(
                    "`{name}` is neither a variable nor a function: {known}"
                ))
            }
            Err(e) => Err(e.to_string()),
        }
    }
}

impl fmt::Debug for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Expr").field(&&*self.source).finish()
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl PartialEq for Expr {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Expr {}

/// Runs `f` on a thread with a [`PARSE_STACK`] stack and waits for it.
fn on_parser_stack<T: Send>(f: impl FnOnce() -> T + Send) -> Result<T, String> {
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("cel-parser".into())
            .stack_size(PARSE_STACK)
            .spawn_scoped(scope, f)
            .map_err(|e| format!("could not start the expression parser: {e}"))?;
        handle
            .join()
            .map_err(|_| "the expression parser failed unexpectedly".to_string())
    })
}

/// The first syntax error, with its position and without the parser's list of every token
/// it would have accepted.
fn syntax_error(source: &str, errors: &cel::ParseErrors) -> String {
    let Some(error) = errors
        .errors
        .iter()
        .find(|e| e.msg.starts_with("Syntax error"))
        .or_else(|| errors.errors.first())
    else {
        return "invalid expression".into();
    };
    if error.msg.contains("Recursion limit") {
        return format!(
            "the expression is too deeply nested: at most {MAX_NESTING} levels of \
             parentheses, brackets, calls and conditionals are allowed"
        );
    }
    let mut message = error
        .msg
        .strip_prefix("Syntax error: ")
        .unwrap_or(&error.msg)
        .to_string();
    if let Some(at) = message.find(" expecting {") {
        // A set of alternatives is only useful when short, like `{')', ','}`.
        if message[at..].matches(',').count() > 3 {
            message.truncate(at);
        }
    }
    if let Some(rest) = message.strip_prefix("token recognition error at: ") {
        let text = rest.strip_prefix('\'').unwrap_or(rest);
        let text = text.strip_suffix('\'').unwrap_or(text).trim();
        message = if text.starts_with(['\'', '"']) {
            "unterminated string".to_string()
        } else {
            format!("unexpected `{text}`")
        };
    }
    let message = message
        .replace("'<EOF>'", "the end of the expression")
        .replace("<EOF>", "the end of the expression");
    let (line, column) = error.pos;
    if source.contains('\n') {
        format!("invalid expression at line {line}, column {column}: {message}")
    } else {
        format!("invalid expression at column {column}: {message}")
    }
}

/// The children of an expression node.
fn children(node: &IdedExpr) -> Vec<&IdedExpr> {
    match &node.expr {
        Node::Call(call) => call
            .target
            .as_deref()
            .into_iter()
            .chain(&call.args)
            .collect(),
        Node::Comprehension(c) => vec![
            &c.iter_range,
            &c.accu_init,
            &c.loop_cond,
            &c.loop_step,
            &c.result,
        ],
        Node::List(list) => list.elements.iter().collect(),
        Node::Map(map) => entries(&map.entries),
        Node::Struct(s) => entries(&s.entries),
        Node::Select(select) => vec![&select.operand],
        Node::Ident(_) | Node::Literal(_) | Node::Unspecified => Vec::new(),
    }
}

fn entries(entries: &[cel::common::ast::IdedEntryExpr]) -> Vec<&IdedExpr> {
    entries
        .iter()
        .flat_map(|entry| match &entry.expr {
            EntryExpr::MapEntry(e) => vec![&e.key, &e.value],
            EntryExpr::StructField(f) => vec![&f.value],
        })
        .collect()
}

/// The depth of the tree, found without recursion (the tree is not yet known to be shallow).
fn depth(root: &IdedExpr) -> usize {
    let mut deepest = 0;
    let mut pending = vec![(root, 1)];
    while let Some((node, level)) = pending.pop() {
        deepest = deepest.max(level);
        pending.extend(children(node).into_iter().map(|child| (child, level + 1)));
    }
    deepest
}

/// Collects the identifiers of `node` not bound by an enclosing comprehension (`bound`) and
/// not naming a type. Called on trees at most [`MAX_DEPTH`] deep.
fn free_variables<'a>(node: &'a IdedExpr, bound: &mut Vec<&'a str>, out: &mut BTreeSet<String>) {
    match &node.expr {
        Node::Ident(name) => {
            let is_type = ENV.types().find_type(name).is_some() || name == "dyn";
            // `optional.of(x)` and friends: the namespace of the optional functions.
            if !bound.contains(&name.as_str()) && !is_type && name != "optional" {
                out.insert(name.clone());
            }
        }
        Node::Comprehension(c) => {
            free_variables(&c.iter_range, bound, out);
            free_variables(&c.accu_init, bound, out);
            let before = bound.len();
            bound.push(&c.iter_var);
            bound.extend(c.iter_var2.as_deref());
            bound.push(&c.accu_var);
            for part in [&c.loop_cond, &c.loop_step, &c.result] {
                free_variables(part, bound, out);
            }
            bound.truncate(before);
        }
        _ => {
            for child in children(node) {
                free_variables(child, bound, out);
            }
        }
    }
}

/// Converts a JSON value to its CEL counterpart. Called on values at most
/// [`MAX_VALUE_DEPTH`] deep.
fn to_cel(value: &Value) -> CelValue {
    match value {
        Value::Null => CelValue::Null,
        Value::Bool(b) => CelValue::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => CelValue::Int(i),
            (None, Some(u)) => CelValue::UInt(u),
            _ => CelValue::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => CelValue::String(Arc::new(s.clone())),
        Value::Array(items) => CelValue::List(Arc::new(items.iter().map(to_cel).collect())),
        Value::Object(map) => CelValue::from(
            map.iter()
                .map(|(k, v)| (k.clone(), to_cel(v)))
                .collect::<HashMap<String, CelValue>>(),
        ),
    }
}

fn wrong_type(want: &str, got: &CelValue) -> String {
    format!(
        "the expression must give a {want}, but gave {} {}",
        article(&got.type_of().to_string()),
        got.type_of()
    )
}

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => panic!("not an object"),
        }
    }

    fn compile_error(source: &str) -> String {
        match Expr::compile(source) {
            Ok(_) => panic!("`{source}` compiled"),
            Err(e) => e,
        }
    }

    #[test]
    fn evaluates_conditions_on_json_variables() {
        let vars = vars(json!({
            "input": "an urgent request",
            "previous_step_outputs": {"outline": "1. intro"},
            "session_state": {"count": 3, "tags": ["a", "b"], "ratio": 0.5, "big": u64::MAX,
                              "nothing": null, "on": true},
        }));
        for (source, want) in [
            (r#"input.contains("urgent")"#, true),
            ("input.startsWith('an') && input.endsWith('request')", true),
            ("input.matches('^an (urgent|important)')", true),
            ("size(input) > 100", false),
            (r#"previous_step_outputs["outline"] == "1. intro""#, true),
            ("'outline' in previous_step_outputs", true),
            ("has(previous_step_outputs.summary)", false),
            ("session_state.count + 1 == 4", true),
            ("session_state.tags.exists(t, t == 'b')", true),
            ("session_state.tags.all(t, t.size() == 1)", true),
            ("session_state.ratio < 1.0", true),
            ("session_state.big == 18446744073709551615u", true),
            ("session_state.nothing == null", true),
            ("session_state.on", true),
            ("type(input) == string", true),
        ] {
            let expr = Expr::compile(source).unwrap();
            assert_eq!(expr.eval_bool(&vars), Ok(want), "{source}");
        }
    }

    #[test]
    fn evaluates_strings() {
        let vars = vars(json!({"input": "fix the code", "step_choices": ["coder", "writer"]}));
        let expr = Expr::compile(r#"input.contains("code") ? "coder" : "writer""#).unwrap();
        assert_eq!(expr.eval_string(&vars).as_deref(), Ok("coder"));
        let expr = Expr::compile("step_choices[1]").unwrap();
        assert_eq!(expr.eval_string(&vars).as_deref(), Ok("writer"));
    }

    #[test]
    fn wrong_result_types_are_errors() {
        let empty = Map::new();
        let err = Expr::compile("'yes'")
            .unwrap()
            .eval_bool(&empty)
            .unwrap_err();
        assert_eq!(err, "the expression must give a bool, but gave a string");
        let err = Expr::compile("1 + 1")
            .unwrap()
            .eval_string(&empty)
            .unwrap_err();
        assert_eq!(err, "the expression must give a string, but gave an int");
        let err = Expr::compile("[1]").unwrap().eval_bool(&empty).unwrap_err();
        assert_eq!(err, "the expression must give a bool, but gave a list");
    }

    #[test]
    fn runtime_errors_are_messages() {
        let vars = vars(json!({"input": "x", "n": 0}));
        let err = Expr::compile("inptu == 'x'")
            .unwrap()
            .eval_bool(&vars)
            .unwrap_err();
        assert_eq!(
            err,
            "`inptu` is neither a variable nor a function: the variables are `input`, `n`"
        );
        let err = Expr::compile("1 / n == 1")
            .unwrap()
            .eval_bool(&vars)
            .unwrap_err();
        assert!(err.contains("Division by zero"), "{err}");
        let err = Expr::compile("nope(input)")
            .unwrap()
            .eval_bool(&vars)
            .unwrap_err();
        assert!(err.starts_with("`nope` is neither"), "{err}");
        let err = Expr::compile("x")
            .unwrap()
            .eval_bool(&Map::new())
            .unwrap_err();
        assert!(err.ends_with("no variables are defined here"), "{err}");
    }

    #[test]
    fn syntax_errors_say_where() {
        assert_eq!(
            compile_error("input.contains('a') &&"),
            "invalid expression at column 23: mismatched input the end of the expression"
        );
        assert_eq!(
            compile_error("input.contains('a'"),
            "invalid expression at column 19: missing ')' at the end of the expression"
        );
        assert_eq!(
            compile_error("a b"),
            "invalid expression at column 3: extraneous input 'b' expecting the end of the \
             expression"
        );
        assert_eq!(
            compile_error("input == 'a\n  && (b"),
            "invalid expression at line 1, column 10: unterminated string"
        );
        assert_eq!(
            compile_error("input.@x"),
            "invalid expression at column 7: unexpected `@`"
        );
        assert_eq!(
            compile_error("a &&\n  (b"),
            "invalid expression at line 2, column 5: missing ')' at the end of the expression"
        );
        assert_eq!(compile_error("  "), "the expression is empty");
    }

    #[test]
    fn size_and_nesting_are_bounded() {
        let deep = format!("{}1{}", "(".repeat(40), ")".repeat(40));
        assert!(compile_error(&deep).contains("too deeply nested"));
        let deep = format!("{}true{}", "[1].all(x, ".repeat(40), ")".repeat(40));
        assert!(compile_error(&deep).contains("too deeply nested"));
        let chain = vec!["a"; MAX_DEPTH + 1].join(" + ");
        assert!(compile_error(&chain).contains("too deeply nested"));
        // The comparison is one level, the chain of additions the other 63 (evaluated in
        // `evaluation_fits_in_eval_stack`).
        let chain = vec!["1"; MAX_DEPTH - 1].join("+") + " == 63";
        assert!(Expr::compile(&chain).is_ok());
        let longest = vec!["a"; MAX_LEN / 2].join("+");
        assert!(compile_error(&longest).contains("too deeply nested"));
        let too_long = format!("'{}'", "x".repeat(MAX_LEN));
        assert!(compile_error(&too_long).contains("at most 2048"));
        // Parsed on a thread of its own: compiling from a small stack is fine.
        let nested = format!("{}true{}", "[1].all(x, ".repeat(31), ")".repeat(31));
        let handle = std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(move || Expr::compile(&nested).map(|_| ()))
            .unwrap();
        assert_eq!(handle.join().unwrap(), Ok(()));
    }

    fn nested_list(levels: usize) -> Value {
        (0..levels).fold(json!(1), |v, _| json!([v]))
    }

    fn nested_map(levels: usize) -> Value {
        (0..levels).fold(json!(1), |v, _| json!({"k": v}))
    }

    /// The deepest expressions and values accepted, each beside the first refused one.
    fn worst_cases() -> Vec<(String, Map<String, Value>)> {
        let no_vars = Map::new;
        let values = vars(json!({
            "deep_list": nested_list(MAX_VALUE_DEPTH),
            "deep_map": nested_map(MAX_VALUE_DEPTH),
        }));
        let chain = |n: usize| vec!["1"; n].join(" + ") + &format!(" == {n}");
        let macros = |n: usize| format!("{}true{}", "[1].all(x, ".repeat(n), ")".repeat(n));
        let maps = |n: usize| format!("{}x{} != []", "[1].map(x, ".repeat(n), ")".repeat(n));
        let parens = |n: usize| format!("{}1{} == 1", "(".repeat(n), ")".repeat(n));
        let lists = |n: usize| format!("{}1{} != []", "[".repeat(n), "]".repeat(n));
        let calls = |n: usize| format!("{}1{} == '1'", "string(".repeat(n), ")".repeat(n));
        let conditionals =
            |n: usize| format!("{}true{}", "true ? (".repeat(n), ") : false".repeat(n));
        let too_deep = |source: String| {
            let error = compile_error(&source);
            assert!(error.contains("too deeply nested"), "{source}: {error}");
        };
        too_deep(chain(MAX_DEPTH));
        too_deep(macros(32));
        too_deep(maps(21));
        too_deep(parens(33));
        too_deep(lists(33));
        too_deep(calls(33));
        too_deep(conditionals(33));
        vec![
            (chain(MAX_DEPTH - 1), no_vars()),
            (macros(31), no_vars()),
            (maps(20), no_vars()),
            (parens(32), no_vars()),
            (lists(32), no_vars()),
            (calls(32), no_vars()),
            (conditionals(32), no_vars()),
            (
                "deep_list == deep_list && deep_list in [deep_list] && size(deep_list) == 1 \
                 && type(deep_list) == list && deep_map == deep_map && 'k' in deep_map \
                 && dyn(deep_map) == deep_map && [deep_list, deep_map] != []"
                    .into(),
                values,
            ),
        ]
    }

    #[test]
    fn evaluation_fits_in_eval_stack() {
        let compiled: Vec<_> = worst_cases()
            .into_iter()
            .map(|(source, vars)| (Expr::compile(&source).unwrap(), vars))
            .collect();
        let handle = std::thread::Builder::new()
            .stack_size(EVAL_STACK)
            .spawn(move || {
                compiled
                    .iter()
                    .map(|(expr, vars)| (expr.source().to_string(), expr.eval_bool(vars)))
                    .collect::<Vec<_>>()
            })
            .unwrap();
        for (source, result) in handle.join().unwrap() {
            assert_eq!(result, Ok(true), "{source}");
        }
    }

    #[test]
    fn values_deeper_than_the_bound_are_refused() {
        let expr = Expr::compile("size(state) == 1").unwrap();
        let ok = vars(json!({"state": nested_map(MAX_VALUE_DEPTH)}));
        assert_eq!(expr.eval_bool(&ok), Ok(true));
        let deep = vars(json!({"state": nested_list(MAX_VALUE_DEPTH + 1)}));
        assert_eq!(
            expr.eval_bool(&deep).unwrap_err(),
            "the variable `state` nests 129 levels deep; expressions accept values at most \
             128 deep"
        );
    }

    #[test]
    fn variables_are_the_free_names() {
        let expr = Expr::compile(
            "session_state.tags.exists(t, t == input) && [1].map(x, x + n).size() > 0 && \
             type(input) == string && optional.of(1).hasValue() && has(a.b)",
        )
        .unwrap();
        assert_eq!(expr.variables(), ["a", "input", "n", "session_state"]);
        assert!(Expr::compile("1 == 1").unwrap().variables().is_empty());
    }

    #[test]
    fn equality_debug_and_display_use_the_source() {
        let a = Expr::compile("input == 'a'").unwrap();
        let b = Expr::compile("input == 'a'").unwrap();
        let c = Expr::compile("input == \"a\"").unwrap();
        assert_eq!(a, b.clone());
        assert_ne!(a, c);
        assert_eq!(format!("{a:?}"), "Expr(\"input == 'a'\")");
        assert_eq!(a.to_string(), "input == 'a'");
        assert_eq!(a.source(), "input == 'a'");
    }

    #[test]
    fn expressions_are_shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Expr>();
    }
}
