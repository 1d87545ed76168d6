//! Extractors that answer bad input with CodeArts errors naming the field: JSON bodies (an empty
//! body is `{}`), path and query parameters.

use crate::AppState;
use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

/// A JSON body. An empty body counts as `{}` (the SDK sends none for optional bodies, §1.5).
/// Syntax errors are `DEVPIPE.00010002`; a wrong type or a missing field is `DEVPIPE.00010001`
/// naming the field's path (`variables[0].name`) without quoting the value sent (S2).
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub(crate) T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let bytes = read_body(request, state).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

async fn read_body(request: Request, state: &AppState) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::BodyTooLarge {
                    limit: state.api.config.max_body_bytes,
                }
            } else {
                ApiError::MalformedJson("the body could not be read".to_owned())
            }
        })
}

/// A JSON body that is a top-level array (the batch routes, spec §1.6); an empty body is `[]`.
/// Errors as for [`JsonBody`], with paths like `[2].pipeline_id`.
#[derive(Debug)]
pub(crate) struct JsonList<T>(pub(crate) Vec<T>);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonList<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let bytes = read_body(request, state).await?;
        parse_json_list(&bytes).map(JsonList)
    }
}

/// Path parameters; a parameter that is not valid UTF-8 is a 400.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub(crate) struct PathParams<T>(pub(crate) T);

/// Query parameters; a wrong type is a 400 naming the parameter.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub(crate) struct QueryParams<T>(pub(crate) T);

/// Parses a JSON object body (empty → `{}`) into `T`, mapping every failure to a CodeArts error.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    let document: serde_json::Value =
        serde_json::from_slice(text).map_err(|err| json_error(".", err))?;
    if !document.is_object() {
        return Err(ApiError::invalid("body", "must be a JSON object"));
    }
    serde_path_to_error::deserialize(document).map_err(|err| {
        let path = err.path().to_string();
        json_error(&path, err.into_inner())
    })
}

/// Parses a JSON array body (empty → `[]`) into `Vec<T>`.
pub(crate) fn parse_json_list<T: DeserializeOwned>(bytes: &[u8]) -> Result<Vec<T>, ApiError> {
    let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"[]"
    } else {
        bytes
    };
    let document: serde_json::Value =
        serde_json::from_slice(text).map_err(|err| json_error(".", err))?;
    if !document.is_array() {
        return Err(ApiError::invalid("body", "must be a JSON array"));
    }
    serde_path_to_error::deserialize(document).map_err(|err| {
        let path = err.path().to_string();
        json_error(&path, err.into_inner())
    })
}

fn json_error(path: &str, err: serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    match err.classify() {
        Category::Syntax | Category::Eof | Category::Io => ApiError::MalformedJson(format!(
            "{} (line {}, column {})",
            sanitize(&strip_position(&err.to_string())),
            err.line(),
            err.column()
        )),
        Category::Data => {
            let message = strip_position(&err.to_string());
            let parent = if path == "." { "" } else { path };
            if let Some(field) = message
                .strip_prefix("missing field `")
                .and_then(|rest| rest.strip_suffix('`'))
            {
                return ApiError::invalid(join(parent, field), "is required");
            }
            let field = if parent.is_empty() { "body" } else { parent };
            ApiError::invalid(field, sanitize(&message))
        }
    }
}

fn join(parent: &str, field: &str) -> String {
    if parent.is_empty() {
        field.to_owned()
    } else {
        format!("{parent}.{field}")
    }
}

/// Drops serde_json's " at line N column M" suffix.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(index) => message[..index].to_owned(),
        None => message.to_owned(),
    }
}

/// Rewrites serde's messages so they never quote the value that was sent (it may be a secret):
/// `invalid type: string "x", expected a boolean` → `expected a boolean, found a string`.
fn sanitize(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        let (found, expected) = rest
            .split_once(", expected ")
            .unwrap_or((rest, "another type"));
        let kind = found.split([' ', '`', '"']).next().unwrap_or("value");
        let kind = match kind {
            "floating" => "a number",
            "integer" => "an integer",
            "string" => "a string",
            "boolean" => "a boolean",
            "null" => "null",
            "map" => "an object",
            "sequence" => "an array",
            _ => "another type",
        };
        return format!("expected {expected}, found {kind}");
    }
    if let Some(rest) = message.strip_prefix("invalid value: ") {
        let expected = rest
            .split_once(", expected ")
            .map_or("a valid value", |(_, e)| e);
        return format!("expected {expected}");
    }
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        let expected = rest
            .split_once(", expected ")
            .map_or("a known value", |(_, e)| e);
        return format!("unknown value, expected {expected}");
    }
    message.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Body {
        #[allow(dead_code)]
        name: String,
        #[serde(default)]
        #[allow(dead_code)]
        items: Vec<Item>,
    }

    #[derive(Debug, Deserialize)]
    struct Item {
        #[allow(dead_code)]
        flag: bool,
    }

    fn error_of(text: &str) -> (String, String) {
        let err = parse_json::<Body>(text.as_bytes()).expect_err("fails");
        (err.code().to_owned(), err.message())
    }

    #[test]
    fn a_missing_field_is_named() {
        let (code, message) = error_of(r#"{"items": []}"#);
        assert_eq!(code, "DEVPIPE.00010001");
        assert_eq!(message, "invalid parameter: name: is required");
        let (_, message) = error_of(r#"{"name": "x", "items": [{}]}"#);
        assert_eq!(message, "invalid parameter: items[0].flag: is required");
    }

    #[test]
    fn a_wrong_type_names_the_field_and_never_quotes_the_value() {
        let (code, message) = error_of(r#"{"name": "x", "items": [{"flag": "canary-secret"}]}"#);
        assert_eq!(code, "DEVPIPE.00010001");
        assert_eq!(
            message,
            "invalid parameter: items[0].flag: expected a boolean, found a string"
        );
        assert!(!message.contains("canary"));
    }

    #[test]
    fn malformed_json_and_trailing_garbage_are_syntax_errors() {
        assert_eq!(error_of(r#"{"name": "#).0, "DEVPIPE.00010002");
        assert_eq!(error_of(r#"{"name": "x"} tail"#).0, "DEVPIPE.00010002");
    }

    #[test]
    fn an_empty_body_is_an_empty_object() {
        let err = parse_json::<Body>(b"  ").expect_err("name is required");
        assert_eq!(err.message(), "invalid parameter: name: is required");
    }
}
