//! Around every request: the `X-Request-Id` (echoed when the client sent a sane one, generated
//! otherwise) on every response, internal causes logged once, panics turned into a CodeArts 500.

use crate::error::{ApiError, InternalCause};
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::any::Any;

pub(crate) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Gives the request an id and puts it on the response. A request without a sane id of its own
/// gets a new one, also in its headers: an inner `request_context` (the API router's, under the
/// server's) keeps it, so one request has one id.
pub async fn request_context(mut request: Request, next: Next) -> Response {
    let sent = request
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|value| is_sane_request_id(value))
        .map(str::to_owned);
    let id = match sent {
        Some(id) => id,
        None => {
            let id = uuid::Uuid::new_v4().simple().to_string();
            if let Ok(value) = HeaderValue::from_str(&id) {
                request.headers_mut().insert(X_REQUEST_ID.clone(), value);
            }
            id
        }
    };
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let mut response = next.run(request).await;
    if let Some(InternalCause(cause)) = response.extensions_mut().remove::<InternalCause>() {
        tracing::error!(request_id = %id, method = %method, path = %path, status = response.status().as_u16(), error = %cause, "request failed");
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(X_REQUEST_ID.clone(), value);
    }
    response
}

/// What `CatchPanicLayer` answers: a CodeArts 500 (the panic is logged here, once).
pub(crate) fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".to_owned());
    tracing::error!(panic = %detail, "a request handler panicked");
    let mut response = ApiError::Internal(String::new()).into_response();
    response.extensions_mut().remove::<InternalCause>();
    response
}

/// Echo only ids that cannot smuggle anything into logs or headers.
fn is_sane_request_id(value: &str) -> bool {
    (1..=128).contains(&value.len())
        && value
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b':'))
}
