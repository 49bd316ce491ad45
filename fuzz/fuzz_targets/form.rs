//! Form bodies: `server::form::parse` on any `Content-Type` and body.
//!
//! Input: the `Content-Type` value, a line feed, then the body. Properties: parsing never
//! panics; a multipart form that parsed, written back as a multipart body with the same
//! boundary, parses to the same form; an urlencoded form survives being encoded again;
//! `parse_bool` accepts exactly pydantic's spellings.
#![no_main]

use agentos::server::form::{self, Form};
use bytes::Bytes;
use hyper::HeaderMap;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (content_type, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let body = Bytes::copy_from_slice(body);
    let mut headers = HeaderMap::new();
    let Ok(value) = HeaderValue::from_bytes(content_type) else {
        let _ = form::parse(&headers, &body);
        return;
    };
    headers.insert(CONTENT_TYPE, value);
    let Ok(parsed) = form::parse(&headers, &body) else {
        return;
    };

    for (_, value) in parsed.fields() {
        check_bool(value);
    }

    // `parse` reads the header only when it is visible ASCII.
    let text = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (mime, rest) = text.split_once(';').unwrap_or((text, ""));
    if mime.trim().eq_ignore_ascii_case("multipart/form-data") {
        let boundary = params(rest)
            .into_iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("boundary"))
            .map(|(_, v)| v)
            .expect("a multipart form that parsed has a boundary");
        let again = form::parse(&headers, &Bytes::from(multipart(&parsed, &boundary)))
            .expect("a form written back parses");
        assert_eq!(again, parsed, "boundary {boundary:?}");
    } else if mime
        .trim()
        .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    {
        let encoded = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(parsed.fields().iter().map(|(k, v)| (k, v)))
            .finish();
        let again = form::parse(&headers, &Bytes::from(encoded)).expect("urlencoded parses");
        assert_eq!(again, parsed);
    } else {
        assert!(parsed.is_empty());
    }
});

/// Header parameters, with the parser's quoting rules (`"…"` with backslash escapes).
fn params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ';' || c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return out;
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ';' {
                break;
            }
            name.push(c);
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
                chars.next();
            }
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => value.extend(chars.next()),
                        _ => value.push(c),
                    }
                }
                while chars.peek().is_some_and(|c| *c != ';') {
                    chars.next();
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ';' {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
                value = value.trim().to_string();
            }
        }
        let name = name.trim().to_string();
        if !name.is_empty() {
            out.push((name, value));
        }
    }
}

/// A quoted header parameter. Line breaks are escaped too: a name may hold them (a
/// backslash escape, or `%0D%0A` in `filename*`), and must not end the header line.
fn quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        if matches!(c, '"' | '\\' | '\r' | '\n') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The form as a client would send it. Fields come before files, as the parser keeps
/// them in two lists.
fn multipart(form: &Form, boundary: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in form.fields() {
        out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        out.extend_from_slice(
            format!(
                "Content-Disposition: form-data; name={}\r\n\r\n",
                quoted(name)
            )
            .as_bytes(),
        );
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    for file in form.files() {
        out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        out.extend_from_slice(
            format!(
                "Content-Disposition: form-data; name={}; filename={}\r\n",
                quoted(&file.name),
                quoted(&file.filename)
            )
            .as_bytes(),
        );
        if let Some(ct) = &file.content_type {
            out.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&file.data);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    out
}

fn check_bool(value: &str) {
    let spelled = value.trim().to_ascii_lowercase();
    let want = match spelled.as_str() {
        "true" | "1" | "yes" | "on" | "t" | "y" => Some(true),
        "false" | "0" | "no" | "off" | "f" | "n" => Some(false),
        _ => None,
    };
    assert_eq!(form::parse_bool("stream", value).ok(), want, "{value:?}");
}
