//! The HTTP side of the client: one `reqwest` client (rustls), authentication by token or by
//! AK/SK signature, and error bodies turned into [`ClientError`]s.

use super::error::ClientError;
use super::sign;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::time::Duration;

/// How requests authenticate.
#[derive(Clone)]
pub(crate) enum Credentials {
    /// `X-Auth-Token`, from `runnel login`.
    Token(String),
    /// An `SDK-HMAC-SHA256` signature with this key pair.
    AccessKey { ak: String, sk: String },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Token(_) => f.write_str("Token(…)"),
            Credentials::AccessKey { ak, .. } => write!(f, "AccessKey({ak}, …)"),
        }
    }
}

/// A successful answer.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) headers: HeaderMap,
    /// The JSON body; `Value::Null` when empty.
    pub(crate) body: Value,
}

/// A client of one server.
#[derive(Debug, Clone)]
pub(crate) struct Api {
    http: reqwest::Client,
    /// `scheme://host[:port]`, without a trailing slash.
    endpoint: String,
    /// `host[:port]` as the `Host` header carries it (signed).
    host: String,
    credentials: Option<Credentials>,
}

/// One request. Paths are built from ids the caller checked, so they need no encoding beyond
/// what [`sign::encode`] gives segments.
pub(crate) struct Call<'a> {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) body: Option<&'a Value>,
    pub(crate) headers: Vec<(&'static str, String)>,
}

impl<'a> Call<'a> {
    pub(crate) fn new(method: Method, path: impl Into<String>) -> Call<'a> {
        Call {
            method,
            path: path.into(),
            query: Vec::new(),
            body: None,
            headers: Vec::new(),
        }
    }

    pub(crate) fn query(mut self, key: &str, value: impl Into<String>) -> Call<'a> {
        self.query.push((key.to_owned(), value.into()));
        self
    }

    pub(crate) fn body(mut self, body: &'a Value) -> Call<'a> {
        self.body = Some(body);
        self
    }

    pub(crate) fn header(mut self, name: &'static str, value: impl Into<String>) -> Call<'a> {
        self.headers.push((name, value.into()));
        self
    }
}

impl Api {
    /// A client of `endpoint` (`http://` or `https://`, no path).
    pub(crate) fn new(
        endpoint: &str,
        credentials: Option<Credentials>,
    ) -> Result<Api, ClientError> {
        let endpoint = endpoint.trim().trim_end_matches('/').to_owned();
        let url = reqwest::Url::parse(&endpoint).map_err(|_| {
            ClientError::Invalid(format!(
                "the endpoint {endpoint:?} is not a URL such as http://127.0.0.1:8080"
            ))
        })?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(ClientError::Invalid(format!(
                "the endpoint {endpoint:?} must start with http:// or https:// and name a host"
            )));
        }
        if url.path() != "/" || url.query().is_some() {
            return Err(ClientError::Invalid(format!(
                "the endpoint {endpoint:?} must not have a path: the API is served at the root"
            )));
        }
        let host = match url.port() {
            Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_owned(),
        };
        // reqwest is built without a default TLS provider: use ring, once per process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .user_agent(concat!("runnel-cli/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|err| ClientError::Protocol(format!("cannot build an HTTP client: {err}")))?;
        Ok(Api {
            http,
            endpoint,
            host,
            credentials,
        })
    }

    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub(crate) fn credentials(&self) -> Option<&Credentials> {
        self.credentials.as_ref()
    }

    /// Sends the call and returns its JSON answer; an error status becomes `ClientError::Refused`.
    pub(crate) async fn send(&self, call: Call<'_>) -> Result<Answer, ClientError> {
        let response = self.start(call, Some(Duration::from_secs(120))).await?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .bytes()
            .await
            .map_err(|err| self.unreachable(&err))?;
        if !status.is_success() {
            return Err(refusal(status, &headers, &bytes));
        }
        let body = if bytes.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|_| {
                ClientError::Protocol(format!("the body of a {status} answer is not JSON"))
            })?
        };
        Ok(Answer { headers, body })
    }

    /// Sends the call and returns the response as it starts, without a timeout (for streams);
    /// an error status is read and turned into `ClientError::Refused`.
    pub(crate) async fn open(&self, call: Call<'_>) -> Result<reqwest::Response, ClientError> {
        let response = self.start(call, None).await?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let headers = response.headers().clone();
        let bytes = response
            .bytes()
            .await
            .map_err(|err| self.unreachable(&err))?;
        Err(refusal(status, &headers, &bytes))
    }

    async fn start(
        &self,
        call: Call<'_>,
        timeout: Option<Duration>,
    ) -> Result<reqwest::Response, ClientError> {
        let body = match call.body {
            Some(body) => serde_json::to_vec(body)
                .map_err(|err| ClientError::Invalid(format!("cannot encode the request: {err}")))?,
            None => Vec::new(),
        };
        let query = sign::query_string(&call.query);
        let url = if query.is_empty() {
            format!("{}{}", self.endpoint, call.path)
        } else {
            format!("{}{}?{query}", self.endpoint, call.path)
        };
        let content_type = "application/json;charset=utf-8";
        let mut headers = HeaderMap::new();
        insert(&mut headers, "content-type", content_type)?;
        insert(&mut headers, "host", &self.host)?;
        for (name, value) in &call.headers {
            insert(&mut headers, name, value)?;
        }
        match &self.credentials {
            None => {}
            Some(Credentials::Token(token)) => insert(&mut headers, "x-auth-token", token)?,
            Some(Credentials::AccessKey { ak, sk }) => {
                let date = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
                insert(&mut headers, "x-sdk-date", &date)?;
                let signed = [
                    ("content-type", content_type.to_owned()),
                    ("host", self.host.clone()),
                    ("x-sdk-date", date.clone()),
                ];
                let request = sign::Request {
                    method: call.method.as_str(),
                    path: &call.path,
                    query: &call.query,
                    headers: &signed,
                    body: &body,
                };
                insert(
                    &mut headers,
                    "authorization",
                    &sign::authorization(&request, &date, ak, sk),
                )?;
            }
        }
        let mut request = self
            .http
            .request(call.method, url)
            .headers(headers)
            .body(body);
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        request.send().await.map_err(|err| self.unreachable(&err))
    }

    fn unreachable(&self, err: &reqwest::Error) -> ClientError {
        let mut cause = err.to_string();
        let mut source = std::error::Error::source(err);
        while let Some(inner) = source {
            cause = format!("{cause}: {inner}");
            source = inner.source();
        }
        ClientError::Unreachable {
            endpoint: self.endpoint.clone(),
            cause,
        }
    }
}

fn insert(headers: &mut HeaderMap, name: &str, value: &str) -> Result<(), ClientError> {
    let name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| ClientError::Invalid(format!("{name:?} is not a header name")))?;
    let value = HeaderValue::from_str(value).map_err(|_| {
        ClientError::Invalid(format!("the value of {name} is not a valid header value"))
    })?;
    headers.insert(name, value);
    Ok(())
}

/// Reads an error body in any of the shapes the SDKs understand (spec §1.7.1): CodeArts
/// `{"error_code", "error_msg"}`, `{"errorCode", "errorMsg"}`, `{"code", "message"}`, or one of
/// them nested (the IAM routes' `{"error": {…}}`).
fn refusal(status: StatusCode, headers: &HeaderMap, bytes: &[u8]) -> ClientError {
    let request_id = headers
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let body: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    let (code, message) = error_pair(&body).unwrap_or_else(|| {
        let text = String::from_utf8_lossy(bytes);
        let text: String = text.chars().take(200).collect();
        (status.as_u16().to_string(), text)
    });
    ClientError::Refused {
        status: status.as_u16(),
        code,
        message,
        request_id,
    }
}

fn error_pair(body: &Value) -> Option<(String, String)> {
    let text = |value: &Value| match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    };
    let object = body.as_object()?;
    // The IAM shape carries the CodeArts-style code next to the HTTP one.
    if let (Some(code), Some(message)) = (object.get("error_code"), object.get("message")) {
        return Some((text(code)?, text(message)?));
    }
    for (code, message) in [
        ("error_code", "error_msg"),
        ("errorCode", "errorMsg"),
        ("code", "message"),
    ] {
        if let (Some(code), Some(message)) = (object.get(code), object.get(message)) {
            return Some((text(code)?, text(message)?));
        }
    }
    object.values().find_map(error_pair)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn error_bodies_of_every_shape_are_read() {
        let pair = |body: Value| error_pair(&body).expect("found");
        assert_eq!(
            pair(json!({"error_code": "DEVPIPE.00011401", "error_msg": "gone"})),
            ("DEVPIPE.00011401".to_owned(), "gone".to_owned())
        );
        assert_eq!(
            pair(
                json!({"error": {"code": 401, "message": "bad", "title": "Unauthorized", "error_code": "APIGW.0301"}})
            ),
            ("APIGW.0301".to_owned(), "bad".to_owned())
        );
        assert_eq!(
            pair(json!({"error": {"code": 401, "message": "bad"}})),
            ("401".to_owned(), "bad".to_owned())
        );
        assert!(error_pair(&json!({"pipeline_id": "x"})).is_none());
    }

    #[test]
    fn endpoints_must_be_http_urls_without_a_path() {
        assert!(Api::new("http://127.0.0.1:8080/", None).is_ok());
        assert!(Api::new("https://ci.example.com", None).is_ok());
        for bad in ["127.0.0.1:8080", "ftp://x", "http://x/prefix", "not a url"] {
            assert!(Api::new(bad, None).is_err(), "{bad}");
        }
        let api = Api::new("http://127.0.0.1:8080", None).expect("valid");
        assert_eq!(api.host, "127.0.0.1:8080");
        let api = Api::new("https://ci.example.com:443", None).expect("valid");
        assert_eq!(
            api.host, "ci.example.com",
            "a default port is not part of Host"
        );
    }
}
