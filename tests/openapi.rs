//! `/openapi.json` against the router: every route of `src/server/router.rs` is documented
//! with exactly its methods, the document is well-formed OpenAPI 3, and the real server
//! answers each documented method (and 405 with `allow` for the others). Plus regressions
//! for disagreements between the document and the server that schemathesis found.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;

use crate::serve::{Server, get, post_form};

const ROUTER: &str = include_str!("../src/server/router.rs");

const CONFIG: &str = r#"
[[agents]]
id = "offline"
model = "test"
instructions = "You answer briefly."
add_history_to_context = true

[[teams]]
id = "crew"
model = "test"
members = ["offline"]

[[workflows]]
id = "flow"
[[workflows.steps]]
name = "write"
agent = "offline"
"#;

type Routes = BTreeMap<String, BTreeSet<String>>;

/// The routes `router::resolve` matches, as OpenAPI paths with their methods, read from the
/// router's source: each slice pattern of `match seg.as_slice()` becomes a path (`agent`,
/// or `target` after `agents`, is `{agent_id}`, and so on) and each `get(m)`, `post(m)` or
/// `Method::X` in its arm (or in a helper of the router it calls) a method.
fn router_routes() -> Routes {
    let open = "match seg.as_slice() {";
    let start = ROUTER
        .find(open)
        .expect("router matches on the path segments")
        + open.len();
    let end = start
        + ROUTER[start..]
            .find("_ => return Err(ApiError::route_not_found())")
            .expect("router ends with the 404 arm");
    let arms = &ROUTER[start..end];
    let mut patterns = Vec::new();
    let mut from = 0;
    while let Some(at) = arms[from..].find("] =>") {
        let close = from + at;
        let open = arms[..close].rfind('[').expect("pattern opens with [");
        patterns.push((open, close));
        from = close + 4;
    }
    assert!(
        patterns.len() > 10,
        "router patterns not found: {patterns:?}"
    );
    let mut routes = Routes::new();
    for (i, &(open, close)) in patterns.iter().enumerate() {
        let body_end = patterns.get(i + 1).map_or(arms.len(), |next| next.0);
        let body = &arms[close + 4..body_end];
        let methods = arm_methods(body);
        assert!(
            !methods.is_empty(),
            "no method found for {}",
            &arms[open..close]
        );
        for path in expand(&arms[open + 1..close]) {
            routes
                .entry(path)
                .or_default()
                .extend(methods.iter().cloned());
        }
    }
    routes
}

/// The paths one slice pattern matches.
fn expand(pattern: &str) -> Vec<String> {
    let mut paths = vec![(String::new(), String::new())]; // (path, last literal)
    for element in pattern.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let literals: Vec<String> = if let Some(alts) = element.split_once('@') {
            alts.1
                .trim()
                .trim_matches(|c| c == '(' || c == ')')
                .split('|')
                .map(|a| a.trim().trim_matches('"').to_string())
                .collect()
        } else if element.starts_with('"') {
            vec![element.trim_matches('"').to_string()]
        } else {
            Vec::new()
        };
        paths = if literals.is_empty() {
            paths
                .into_iter()
                .map(|(path, last)| {
                    let name = match (element, last.as_str()) {
                        ("agent", _) | ("target", "agents") => "agent_id".to_string(),
                        ("team", _) | ("target", "teams") => "team_id".to_string(),
                        ("workflow", _) | ("target", "workflows") => "workflow_id".to_string(),
                        ("session", _) => "session_id".to_string(),
                        (other, _) => other.to_string(),
                    };
                    (format!("{path}/{{{name}}}"), last)
                })
                .collect()
        } else {
            paths
                .into_iter()
                .flat_map(|(path, _)| {
                    literals
                        .iter()
                        .map(move |l| (format!("{path}/{l}"), l.clone()))
                })
                .collect()
        };
    }
    paths.into_iter().map(|(p, _)| p).collect()
}

/// The methods an arm serves, following calls to helpers defined in the router.
fn arm_methods(body: &str) -> BTreeSet<String> {
    let mut text = body.to_string();
    for helper in ["runs_route"] {
        if body.contains(&format!("{helper}(")) {
            let def = format!("fn {helper}(");
            let at = ROUTER.find(&def).expect("helper is defined in the router");
            let end = at + ROUTER[at..].find("\n}\n").expect("helper ends");
            text.push_str(&ROUTER[at..end]);
        }
    }
    let mut methods = BTreeSet::new();
    if text.contains("get(m)") {
        methods.insert("GET".to_string());
    }
    if text.contains("post(m)") {
        methods.insert("POST".to_string());
    }
    for piece in text.split("Method::").skip(1) {
        let name: String = piece
            .chars()
            .take_while(|c| c.is_ascii_uppercase())
            .collect();
        if !name.is_empty() && name != "HEAD" {
            methods.insert(name);
        }
    }
    methods
}

const HTTP_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The documented routes: path → upper-case methods.
fn documented_routes(doc: &Value) -> Routes {
    doc["paths"]
        .as_object()
        .expect("paths is an object")
        .iter()
        .map(|(path, item)| {
            let methods = item
                .as_object()
                .expect("path item is an object")
                .keys()
                .filter(|k| HTTP_METHODS.contains(&k.as_str()))
                .map(|k| k.to_ascii_uppercase())
                .collect();
            (path.clone(), methods)
        })
        .collect()
}

/// Every `$ref` of the document, with where it was found.
fn refs<'a>(value: &'a Value, at: &str, out: &mut Vec<(String, &'a str)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref"
                    && let Some(target) = v.as_str()
                {
                    out.push((at.to_string(), target));
                }
                refs(v, &format!("{at}/{k}"), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                refs(v, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// Checks the shape OpenAPI 3.1 requires of the parts agentos uses.
fn assert_openapi_3(doc: &Value) {
    let version = doc["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3."), "openapi {version}");
    assert!(doc["info"]["title"].is_string(), "info.title");
    assert!(doc["info"]["version"].is_string(), "info.version");
    let mut operation_ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        assert!(path.starts_with('/'), "path {path}");
        let templated: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        for (method, op) in item.as_object().expect("path item") {
            assert!(HTTP_METHODS.contains(&method.as_str()), "{path}: {method}");
            let here = format!("{method} {path}");
            if let Some(id) = op.get("operationId") {
                let id = id.as_str().expect("operationId is a string");
                assert!(operation_ids.insert(id.to_string()), "{here}: {id} twice");
            }
            let params = op["parameters"].as_array().map_or(&[][..], Vec::as_slice);
            let mut in_path = BTreeSet::new();
            for p in params {
                let name = p["name"].as_str().expect("parameter name");
                let place = p["in"].as_str().expect("parameter in");
                assert!(
                    ["path", "query", "header", "cookie"].contains(&place),
                    "{here}: {name} in {place}"
                );
                assert!(p["schema"].is_object(), "{here}: {name} has no schema");
                if place == "path" {
                    assert_eq!(p["required"], true, "{here}: path {name} not required");
                    in_path.insert(name);
                }
            }
            assert_eq!(in_path, templated, "{here}: path parameters");
            if let Some(body) = op.get("requestBody") {
                let content = body["content"].as_object().expect("body content");
                assert!(!content.is_empty(), "{here}: empty body content");
                for (media, m) in content {
                    assert!(m["schema"].is_object(), "{here}: {media} has no schema");
                }
            }
            let responses = op["responses"].as_object().expect("responses");
            assert!(!responses.is_empty(), "{here}: no responses");
            for (status, r) in responses {
                assert!(
                    status.len() == 3
                        && status.parse::<u16>().is_ok_and(|s| (100..600).contains(&s)),
                    "{here}: status {status}"
                );
                let r = match r.get("$ref").and_then(Value::as_str) {
                    Some(target) => resolve(doc, target).expect("response $ref resolves"),
                    None => r,
                };
                assert!(r["description"].is_string(), "{here} {status}: description");
            }
        }
    }
    let mut found = Vec::new();
    refs(doc, "#", &mut found);
    assert!(found.len() > 50, "the document uses $ref");
    for (at, target) in found {
        assert!(
            resolve(doc, target).is_some(),
            "{at}: {target} does not resolve"
        );
    }
}

/// A local `$ref` (`#/a/b`) in the document.
fn resolve<'a>(doc: &'a Value, target: &str) -> Option<&'a Value> {
    doc.pointer(target.strip_prefix('#')?)
}

/// One request over a fresh connection; returns status, headers (lower-case names) and
/// body. Any method, no body.
fn raw(base: &str, method: &str, path: &str) -> (u16, BTreeMap<String, String>, String) {
    let host = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).expect("read");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

#[test]
fn openapi_document_matches_router() {
    let s = Server::start_config(CONFIG);
    let a = get(&s.url("/openapi.json"));
    assert_eq!(a.status, 200);
    assert_eq!(a.header("content-type"), Some("application/json"));
    let doc = a.json();
    assert_openapi_3(&doc);

    let routed = router_routes();
    let documented = documented_routes(&doc);
    assert_eq!(
        documented.keys().collect::<Vec<_>>(),
        routed.keys().collect::<Vec<_>>(),
        "documented paths vs router paths"
    );
    for (path, methods) in &routed {
        assert_eq!(&documented[path], methods, "methods of {path}");
    }

    // The server agrees: documented methods reach a handler, the others are 405 with
    // `allow` naming exactly the documented ones.
    for (path, methods) in &documented {
        let concrete = path
            .replace("{agent_id}", "offline")
            .replace("{team_id}", "crew")
            .replace("{workflow_id}", "flow")
            .replace("{session_id}", "no-such-session")
            .replace("{run_id}", "no-such-run");
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            let (status, headers, body) = raw(&s.base, method, &concrete);
            if methods.contains(method) {
                assert_ne!(status, 405, "{method} {concrete}: {body}");
                assert_ne!(
                    body, r#"{"detail":"Not Found"}"#,
                    "{method} {concrete} reaches no route"
                );
            } else {
                assert_eq!(status, 405, "{method} {concrete}: {body}");
                let allow: BTreeSet<String> = headers
                    .get("allow")
                    .unwrap_or_else(|| panic!("{method} {concrete}: 405 without allow"))
                    .split(',')
                    .map(|m| m.trim().to_string())
                    .collect();
                assert_eq!(&allow, methods, "allow of {concrete}");
            }
        }
    }
}

#[test]
fn agent_history_skips_workflow_runs_of_its_session() {
    let s = Server::start_config(CONFIG);
    let form = [
        ("message", "hello"),
        ("stream", "false"),
        ("session_id", "mixed"),
    ];
    let flow = post_form(&s.url("/workflows/flow/runs"), &form);
    assert_eq!(flow.status, 200, "{}", flow.body);
    assert_eq!(flow.json()["status"], "COMPLETED");
    // The agent keeps history; the session's workflow run has no messages of its own.
    let agent = post_form(&s.url("/agents/offline/runs"), &form);
    assert_eq!(agent.status, 200, "{}", agent.body);
    assert_eq!(agent.json()["status"], "COMPLETED");
}

#[test]
fn resume_takes_the_largest_event_index() {
    let s = Server::start_config(CONFIG);
    let run = post_form(
        &s.url("/agents/offline/runs"),
        &[
            ("message", "hello"),
            ("stream", "true"),
            ("background", "true"),
            ("run_id", "bg-1"),
        ],
    );
    assert_eq!(run.status, 200);
    let frames = run.events();
    assert!(frames.len() > 2, "{}", run.body);
    let resumed = post_form(
        &s.url("/agents/offline/runs/bg-1/resume"),
        &[("last_event_index", &i64::MAX.to_string())],
    );
    assert_eq!(resumed.status, 200, "{}", resumed.body);
    let events = resumed.events();
    assert_eq!(events.len(), 1, "{}", resumed.body);
    assert_eq!(events[0].0, "replay");
    assert_eq!(events[0].1["total_events"], 0);
}

#[test]
fn empty_session_id_gets_a_generated_one() {
    let s = Server::start_config(CONFIG);
    let created = crate::serve::send_json(
        "POST",
        &s.url("/sessions"),
        &serde_json::json!({"session_id": ""}),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.json()["session_id"]
        .as_str()
        .expect("session_id")
        .to_string();
    assert_eq!(id.len(), 36, "a generated id: {id}");
    assert_eq!(get(&s.url(&format!("/sessions/{id}"))).status, 200);
}
