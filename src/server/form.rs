//! Form bodies: `application/x-www-form-urlencoded` and `multipart/form-data`.
//!
//! AgentOS takes run requests as form fields, never JSON: a JSON body (or no content type at
//! all) yields an empty [`Form`], so a required field is then reported missing (422), exactly
//! as FastAPI does. The body has already been read whole under the server's size limit, so
//! the multipart parser works on one buffer and hands out zero-copy slices of it.
//!
//! Malformed multipart input is a 400 `{"detail": …}`; nothing here panics on any input.

use bytes::Bytes;
use hyper::HeaderMap;
use hyper::header::CONTENT_TYPE;
use serde_json::Value;

use super::error::ApiError;

/// The fields of a form body, in the order they were sent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Form {
    fields: Vec<(String, String)>,
    files: Vec<FilePart>,
}

/// A multipart part that carried a `filename`: an uploaded file.
#[derive(Debug, Clone, PartialEq)]
pub struct FilePart {
    /// The form field name (`files` for AgentOS uploads).
    pub name: String,
    /// The client's file name, possibly empty (a browser's empty file input).
    pub filename: String,
    /// The part's own `Content-Type`, if it sent one.
    pub content_type: Option<String>,
    pub data: Bytes,
}

impl Form {
    /// A form from ready-made pairs.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Form {
            fields: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            files: Vec::new(),
        }
    }

    /// The first value of a field.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a repeated field, in order.
    pub fn get_all(&self, name: &str) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// True when the field was sent at all (even empty).
    pub fn has(&self, name: &str) -> bool {
        self.fields.iter().any(|(k, _)| k == name)
    }

    /// Every text field, in order.
    pub fn fields(&self) -> &[(String, String)] {
        &self.fields
    }

    /// The uploaded files, in order.
    pub fn files(&self) -> &[FilePart] {
        &self.files
    }

    /// True when the body carried neither fields nor files.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.files.is_empty()
    }
}

/// Decodes a request body according to its `Content-Type`. Bodies that are not forms
/// (JSON, none, anything else) give an empty form.
pub fn parse(headers: &HeaderMap, body: &Bytes) -> Result<Form, ApiError> {
    let Some(content_type) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return Ok(Form::default());
    };
    let (mime, params) = split_header_value(content_type);
    match mime.to_ascii_lowercase().as_str() {
        "application/x-www-form-urlencoded" => {
            Ok(Form::from_pairs(form_urlencoded::parse(body).into_owned()))
        }
        "multipart/form-data" => {
            let boundary = params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("boundary"))
                .map(|(_, v)| v.as_str())
                .filter(|b| !b.is_empty())
                .ok_or_else(|| ApiError::bad_request("Missing boundary in multipart."))?;
            parse_multipart(body, boundary)
        }
        _ => Ok(Form::default()),
    }
}

/// Parses a form field as a boolean with pydantic's rules (`true/false/1/0/yes/no/on/off/
/// t/f/y/n`, any case, surrounding whitespace ignored); anything else is FastAPI's 422
/// `bool_parsing` error for `field`.
pub fn parse_bool(field: &str, value: &str) -> Result<bool, ApiError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "t" | "y" => Ok(true),
        "false" | "0" | "no" | "off" | "f" | "n" => Ok(false),
        _ => Err(ApiError::validation(
            "bool_parsing",
            "body",
            field,
            "Input should be a valid boolean, unable to interpret input",
            Value::String(value.into()),
        )),
    }
}

fn malformed(what: &str) -> ApiError {
    ApiError::bad_request(format!("Invalid multipart body: {what}"))
}

/// Splits `multipart/form-data; boundary="a;b"` into the value before the first `;` and its
/// parameters. Quoted parameter values may contain `;` and backslash escapes.
fn split_header_value(value: &str) -> (&str, Vec<(String, String)>) {
    let (head, rest) = match value.find(';') {
        Some(i) => (&value[..i], &value[i + 1..]),
        None => (value, ""),
    };
    (head.trim(), parse_params(rest))
}

fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        // Skip separators and whitespace before a name.
        while chars.peek().is_some_and(|c| *c == ';' || c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ';' {
                break;
            }
            name.push(c);
            chars.next();
        }
        let name = name.trim().to_string();
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
                        '\\' => {
                            if let Some(escaped) = chars.next() {
                                value.push(escaped);
                            }
                        }
                        _ => value.push(c),
                    }
                }
                // Ignore anything between the closing quote and the next `;`.
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
        if !name.is_empty() {
            out.push((name, value));
        }
    }
    out
}

/// Decodes an RFC 5987 `filename*` value (`utf-8''na%C3%AFve.txt`).
fn decode_ext_value(value: &str) -> Option<String> {
    let mut parts = value.splitn(3, '\'');
    let charset = parts.next()?;
    let _language = parts.next()?;
    let encoded = parts.next()?;
    if !charset.eq_ignore_ascii_case("utf-8") {
        return None;
    }
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = bytes.get(i + 1..i + 3)
            && let Ok(hex) = std::str::from_utf8(hex)
            && let Ok(v) = u8::from_str_radix(hex, 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// The first index `>= from` where `needle` occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || from > haystack.len() {
        return None;
    }
    let first = needle[0];
    let last_start = haystack.len().checked_sub(needle.len())?;
    let mut i = from;
    while i <= last_start {
        // Jump to the next candidate first byte, then compare the window.
        match haystack[i..=last_start].iter().position(|&b| b == first) {
            None => return None,
            Some(off) => i += off,
        }
        if &haystack[i..i + needle.len()] == needle {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// What follows a delimiter: `--` (the end), or optional blanks and a line break (another
/// part). Returns the index after it, and whether it closed the body.
fn after_delimiter(body: &[u8], mut i: usize) -> Option<(usize, bool)> {
    if body.get(i..i + 2) == Some(b"--") {
        return Some((i + 2, true));
    }
    while matches!(body.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    if body.get(i..i + 2) == Some(b"\r\n") {
        Some((i + 2, false))
    } else if body.get(i) == Some(&b'\n') {
        Some((i + 1, false))
    } else {
        None
    }
}

/// The next real delimiter line at or after `from`: `\r\n--boundary` followed by `--` or a
/// line break. Text that merely starts like the boundary is part of the data. Returns the
/// start of the `\r\n` and the index after the delimiter.
fn next_delimiter(body: &[u8], delim: &[u8], from: usize) -> Option<(usize, usize, bool)> {
    let mut search = from;
    loop {
        let at = find(body, delim, search)?;
        if let Some((next, closed)) = after_delimiter(body, at + delim.len()) {
            return Some((at, next, closed));
        }
        search = at + 1;
    }
}

fn parse_multipart(body: &Bytes, boundary: &str) -> Result<Form, ApiError> {
    let dash_boundary = format!("--{boundary}");
    let delim = format!("\r\n--{boundary}");
    let delim = delim.as_bytes();

    // The first delimiter may open the body, or follow a preamble.
    let mut pos = if body.starts_with(dash_boundary.as_bytes()) {
        match after_delimiter(body, dash_boundary.len()) {
            Some((_, true)) => return Ok(Form::default()),
            Some((next, false)) => next,
            None => return Err(malformed("bad first boundary line")),
        }
    } else {
        match next_delimiter(body, delim, 0) {
            Some((_, _, true)) => return Ok(Form::default()),
            Some((_, next, false)) => next,
            None => return Err(malformed("no boundary found")),
        }
    };

    let mut form = Form::default();
    loop {
        // Part headers end at the first empty line.
        let (headers, data_start) = if body.get(pos..pos + 2) == Some(b"\r\n") {
            (&body[pos..pos], pos + 2)
        } else {
            let end = find(body, b"\r\n\r\n", pos)
                .ok_or_else(|| malformed("unterminated part headers"))?;
            (&body[pos..end], end + 4)
        };
        let part = PartHeaders::parse(headers)?;
        let (data_end, next, closed) = next_delimiter(body, delim, data_start)
            .ok_or_else(|| malformed("missing closing boundary"))?;
        let data = body.slice(data_start..data_end);
        match part.filename {
            Some(filename) => form.files.push(FilePart {
                name: part.name,
                filename,
                content_type: part.content_type,
                data,
            }),
            None => form
                .fields
                .push((part.name, String::from_utf8_lossy(&data).into_owned())),
        }
        if closed {
            // Whatever follows the closing delimiter (the epilogue) is ignored.
            return Ok(form);
        }
        pos = next;
    }
}

struct PartHeaders {
    name: String,
    filename: Option<String>,
    content_type: Option<String>,
}

impl PartHeaders {
    fn parse(raw: &[u8]) -> Result<Self, ApiError> {
        let text = String::from_utf8_lossy(raw);
        let mut disposition = None;
        let mut content_type = None;
        for line in text.split("\r\n") {
            let Some((name, value)) = line.split_once(':') else {
                if line.trim().is_empty() {
                    continue;
                }
                return Err(malformed("bad part header line"));
            };
            let name = name.trim();
            if name.eq_ignore_ascii_case("content-disposition") {
                disposition = Some(value.trim().to_string());
            } else if name.eq_ignore_ascii_case("content-type") {
                content_type = Some(value.trim().to_string());
            }
        }
        let disposition =
            disposition.ok_or_else(|| malformed("part without Content-Disposition"))?;
        let (_kind, params) = split_header_value(&disposition);
        let param = |key: &str| {
            params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.clone())
        };
        let name = param("name").ok_or_else(|| malformed("part without a name"))?;
        let filename = param("filename*")
            .and_then(|v| decode_ext_value(&v))
            .or_else(|| param("filename"));
        Ok(PartHeaders {
            name,
            filename,
            content_type,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::StatusCode;
    use hyper::header::HeaderValue;

    fn headers(content_type: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap());
        h
    }

    fn multipart(boundary: &str, body: &[u8]) -> Result<Form, ApiError> {
        parse(
            &headers(&format!("multipart/form-data; boundary={boundary}")),
            &Bytes::copy_from_slice(body),
        )
    }

    /// A body as curl -F writes it.
    fn build(boundary: &str, parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, filename, data) in parts {
            out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            match filename {
                Some(f) => out.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n\
                         Content-Type: application/octet-stream\r\n\r\n"
                    )
                    .as_bytes(),
                ),
                None => out.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
                ),
            }
            out.extend_from_slice(data);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        out
    }

    #[test]
    fn urlencoded_round_trip() {
        let pairs = [
            ("message", "héllo wörld & more=stuff"),
            ("stream", "false"),
            ("empty", ""),
            ("message", "second"),
        ];
        let encoded = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        let form = parse(
            &headers("application/x-www-form-urlencoded; charset=utf-8"),
            &Bytes::from(encoded),
        )
        .unwrap();
        assert_eq!(form.get("message"), Some("héllo wörld & more=stuff"));
        assert_eq!(
            form.get_all("message"),
            vec!["héllo wörld & more=stuff", "second"]
        );
        assert_eq!(form.get("empty"), Some(""));
        assert!(form.has("empty"));
        assert!(!form.has("absent"));
        assert_eq!(form.fields().len(), 4);
    }

    #[test]
    fn urlencoded_plus_and_case_insensitive_mime() {
        let form = parse(
            &headers("Application/X-WWW-Form-URLEncoded"),
            &Bytes::from_static(b"message=a+b%21&stream=True"),
        )
        .unwrap();
        assert_eq!(form.get("message"), Some("a b!"));
        assert_eq!(form.get("stream"), Some("True"));
    }

    #[test]
    fn json_and_missing_content_type_give_empty_forms() {
        let body = Bytes::from_static(br#"{"message":"hi"}"#);
        assert!(
            parse(&headers("application/json"), &body)
                .unwrap()
                .is_empty()
        );
        assert!(parse(&HeaderMap::new(), &body).unwrap().is_empty());
        assert!(parse(&headers("text/plain"), &body).unwrap().is_empty());
    }

    #[test]
    fn multipart_round_trip() {
        let b = "------------------------abc123";
        let binary: Vec<u8> = (0..=255u8).collect();
        let body = build(
            b,
            &[
                ("message", None, "hi there".as_bytes()),
                ("stream", None, b"false"),
                ("empty", None, b""),
                ("multi", None, b"line one\r\nline two\r\n\r\nline four"),
                ("files", Some("data.bin"), &binary),
            ],
        );
        let form = multipart(b, &body).unwrap();
        assert_eq!(form.get("message"), Some("hi there"));
        assert_eq!(form.get("stream"), Some("false"));
        assert_eq!(form.get("empty"), Some(""));
        assert_eq!(
            form.get("multi"),
            Some("line one\r\nline two\r\n\r\nline four")
        );
        assert_eq!(form.files().len(), 1);
        let file = &form.files()[0];
        assert_eq!(file.name, "files");
        assert_eq!(file.filename, "data.bin");
        assert_eq!(
            file.content_type.as_deref(),
            Some("application/octet-stream")
        );
        assert_eq!(&file.data[..], &binary[..]);
        assert!(!form.has("files"));
    }

    #[test]
    fn multipart_quoted_boundary_and_params_with_semicolons() {
        let b = "weird;boundary";
        let body = format!(
            "--{b}\r\ncontent-disposition: form-data; name=\"a;b\"; filename=\"x; y.txt\"\r\n\
             CONTENT-TYPE: text/plain\r\n\r\nfile text\r\n\
             --{b}\r\nContent-Disposition: form-data; name=\"q\\\"uote\"\r\n\r\nv\r\n--{b}--"
        );
        let form = parse(
            &headers(&format!(
                "multipart/form-data; charset=utf-8; BOUNDARY=\"{b}\""
            )),
            &Bytes::from(body),
        )
        .unwrap();
        assert_eq!(form.files()[0].name, "a;b");
        assert_eq!(form.files()[0].filename, "x; y.txt");
        assert_eq!(form.files()[0].content_type.as_deref(), Some("text/plain"));
        assert_eq!(&form.files()[0].data[..], b"file text");
        assert_eq!(form.get("q\"uote"), Some("v"));
    }

    #[test]
    fn multipart_near_boundary_text_stays_data() {
        let b = "XyZ";
        let tricky = b"a\r\n--XyZa\r\n--XY\r\n--Xy\r\n--XyZ-x\r\n--";
        let body = build(b, &[("m", None, tricky), ("n", None, b"after")]);
        let form = multipart(b, &body).unwrap();
        assert_eq!(form.get("m").map(str::as_bytes), Some(&tricky[..]));
        assert_eq!(form.get("n"), Some("after"));
    }

    #[test]
    fn multipart_preamble_epilogue_and_lf_after_boundary() {
        let body = b"preamble text\r\n--B\nContent-Disposition: form-data; name=\"m\"\r\n\r\nv\r\n--B--\r\nepilogue";
        let form = multipart("B", body).unwrap();
        assert_eq!(form.get("m"), Some("v"));
    }

    #[test]
    fn multipart_filename_star_and_empty_filename() {
        let body = b"--B\r\nContent-Disposition: form-data; name=\"f\"; filename=\"fallback\"; filename*=UTF-8''na%C3%AFve.txt\r\n\r\nx\r\n--B\r\nContent-Disposition: form-data; name=\"g\"; filename=\"\"\r\n\r\n\r\n--B--";
        let form = multipart("B", body).unwrap();
        assert_eq!(form.files()[0].filename, "naïve.txt");
        assert_eq!(form.files()[1].filename, "");
        assert!(form.files()[1].data.is_empty());
    }

    #[test]
    fn multipart_empty_body_with_only_closing_boundary() {
        let form = multipart("B", b"--B--\r\n").unwrap();
        assert!(form.is_empty());
    }

    #[test]
    fn malformed_multipart_is_400() {
        let cases: &[&[u8]] = &[
            b"",
            b"no boundary here",
            b"--B\r\nContent-Disposition: form-data; name=\"m\"\r\n\r\nunterminated",
            b"--B\r\nContent-Disposition: form-data; name=\"m\"",
            b"--B\r\nX-Other: 1\r\n\r\nv\r\n--B--",
            b"--B\r\nContent-Disposition: form-data\r\n\r\nv\r\n--B--",
            b"--B\r\nno colon line\r\n\r\nv\r\n--B--",
            b"--Bjunk\r\n",
        ];
        for body in cases {
            let err = multipart("B", body).unwrap_err();
            assert_eq!(
                err.status,
                StatusCode::BAD_REQUEST,
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
        let err = parse(&headers("multipart/form-data"), &Bytes::new()).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            err.detail,
            Value::String("Missing boundary in multipart.".into())
        );
    }

    #[test]
    fn random_bytes_never_panic() {
        // A small xorshift generator keeps the test deterministic without a dependency.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = b"-B\r\n\":;= nameContent-Disposition:form-data;filename*'%x";
        for round in 0..3000 {
            let len = (next() % 200) as usize;
            let body: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    if round % 2 == 0 {
                        alphabet[(r % alphabet.len() as u64) as usize]
                    } else {
                        r as u8
                    }
                })
                .collect();
            let _ = multipart("B", &body);
            let mut framed = b"--B\r\n".to_vec();
            framed.extend_from_slice(&body);
            let _ = multipart("B", &framed);
            let _ = parse(
                &headers("application/x-www-form-urlencoded"),
                &Bytes::from(body),
            );
        }
        for ct in [
            "multipart/form-data; boundary=\"",
            "multipart/form-data; boundary=\"a\\",
            ";;;=",
            "multipart/form-data;=;boundary",
        ] {
            let _ = parse(&headers(ct), &Bytes::from_static(b"--a\r\n"));
        }
    }

    #[test]
    fn bools_follow_pydantic() {
        for v in ["true", "True", "TRUE", "1", "yes", "on", "t", "Y", " true "] {
            assert!(parse_bool("stream", v).unwrap(), "{v}");
        }
        for v in ["false", "False", "0", "no", "OFF", "f", "n"] {
            assert!(!parse_bool("stream", v).unwrap(), "{v}");
        }
        let err = parse_bool("stream", "maybe").unwrap_err();
        assert_eq!(err.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            serde_json::json!({ "detail": err.detail }),
            serde_json::json!({"detail": [{
                "type": "bool_parsing",
                "loc": ["body", "stream"],
                "msg": "Input should be a valid boolean, unable to interpret input",
                "input": "maybe"
            }]})
        );
        assert!(parse_bool("stream", "").is_err());
    }
}
