//! Form bodies: `application/x-www-form-urlencoded` and `multipart/form-data`.
use super::error::ApiError;
use bytes::Bytes;
use hyper::HeaderMap;
pub struct Form {
    fields: Vec<(String, String)>,
}
impl Form {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}
pub fn parse(_headers: &HeaderMap, body: &Bytes) -> Result<Form, ApiError> {
    Ok(Form {
        fields: form_urlencoded::parse(body).into_owned().collect(),
    })
}
pub fn parse_bool(field: &str, value: &str) -> Result<bool, ApiError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "t" | "y" => Ok(true),
        "false" | "0" | "no" | "off" | "f" | "n" => Ok(false),
        _ => Err(ApiError::validation(
            "bool_parsing",
            "body",
            field,
            "Input should be a valid boolean, unable to interpret input",
            serde_json::Value::String(value.into()),
        )),
    }
}
