//! The AK/SK `SDK-HMAC-SHA256` verifier (spec §1.4): canonical request, string to sign,
//! HMAC-SHA256 with the secret key, constant-time comparison.

use crate::error::AuthFailure;
use axum::http::HeaderMap;
use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, percent_encode};
use runnel_domain::Timestamp;
use sha2::{Digest, Sha256};
use std::time::Duration;
use subtle::ConstantTimeEq;

/// The only algorithm accepted (spec §1.4.1: the others are refused).
pub(crate) const ALGORITHM: &str = "SDK-HMAC-SHA256";

/// RFC 3986 unreserved characters stay; every other byte becomes `%XX` (upper-case hex).
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A parsed `Authorization: SDK-HMAC-SHA256 Access=…, SignedHeaders=…, Signature=…` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Authorization {
    pub(crate) access_key: String,
    /// Lower-case names, in the order the client declared them.
    pub(crate) signed_headers: Vec<String>,
    pub(crate) signature: [u8; 32],
}

/// What the signature covers, taken from the request exactly as received.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SignedRequest<'a> {
    pub(crate) method: &'a str,
    /// The raw (still percent-encoded) path.
    pub(crate) path: &'a str,
    /// The raw query string without `?`.
    pub(crate) query: Option<&'a str>,
    pub(crate) headers: &'a HeaderMap,
    /// `Host`, or the URI authority when the request carries none (HTTP/2).
    pub(crate) host: Option<&'a str>,
    pub(crate) body: &'a [u8],
}

/// Parses the `Authorization` header; tolerates extra spaces after the commas.
pub(crate) fn parse_authorization(value: &str) -> Result<Authorization, AuthFailure> {
    let rest = value
        .trim()
        .strip_prefix(ALGORITHM)
        .filter(|rest| rest.starts_with(' '))
        .ok_or(AuthFailure::UnsupportedScheme)?;
    let mut access_key = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(',') {
        let (name, value) = part
            .trim()
            .split_once('=')
            .ok_or(AuthFailure::UnsupportedScheme)?;
        match name {
            "Access" if !value.is_empty() => access_key = Some(value.to_owned()),
            "SignedHeaders" if !value.is_empty() => {
                signed_headers = Some(value.split(';').map(str::to_ascii_lowercase).collect())
            }
            "Signature" => {
                let mut bytes = [0u8; 32];
                if value.len() != 64 || hex::decode_to_slice(value, &mut bytes).is_err() {
                    return Err(AuthFailure::UnsupportedScheme);
                }
                signature = Some(bytes);
            }
            _ => return Err(AuthFailure::UnsupportedScheme),
        }
    }
    match (access_key, signed_headers, signature) {
        (Some(access_key), Some(signed_headers), Some(signature)) => Ok(Authorization {
            access_key,
            signed_headers,
            signature,
        }),
        _ => Err(AuthFailure::UnsupportedScheme),
    }
}

/// Parses `X-Sdk-Date` (`yyyyMMdd'T'HHmmss'Z'`, UTC) and checks it is within `max_skew` of `now`.
pub(crate) fn check_date(
    value: Option<&str>,
    now: Timestamp,
    max_skew: Duration,
) -> Result<(), AuthFailure> {
    let value = value.ok_or(AuthFailure::StaleDate)?;
    let date = chrono::NaiveDateTime::parse_from_str(value, "%Y%m%dT%H%M%SZ")
        .map_err(|_| AuthFailure::StaleDate)?
        .and_utc()
        .timestamp_millis();
    let skew = date.abs_diff(now.as_millis());
    if u128::from(skew) > max_skew.as_millis() {
        return Err(AuthFailure::StaleDate);
    }
    Ok(())
}

/// Verifies the signature with the secret key: first with the query keys as sent, then — when a
/// key has upper-case letters — with lower-cased keys, as the Go SDK signs them (spec §1.4.2).
pub(crate) fn verify(
    request: &SignedRequest<'_>,
    authorization: &Authorization,
    secret_key: &str,
) -> Result<(), AuthFailure> {
    let signed = &authorization.signed_headers;
    if !signed.iter().any(|name| name == "host") || !signed.iter().any(|name| name == "x-sdk-date")
    {
        return Err(AuthFailure::BadSignature);
    }
    if request.headers.contains_key("x-security-token") {
        // No temporary credentials are issued here.
        return Err(AuthFailure::BadSignature);
    }
    let date = header(request, "x-sdk-date").ok_or(AuthFailure::StaleDate)?;
    let mut attempts = vec![false];
    if query_pairs(request.query)
        .iter()
        .any(|(key, _)| key.iter().any(u8::is_ascii_uppercase))
    {
        attempts.push(true);
    }
    let mut matched = subtle::Choice::from(0);
    for lower_case_keys in attempts {
        let canonical = canonical_request(request, signed, lower_case_keys)?;
        let expected = sign(secret_key, &string_to_sign(date, &canonical));
        matched |= expected[..].ct_eq(&authorization.signature[..]);
    }
    if bool::from(matched) {
        Ok(())
    } else {
        Err(AuthFailure::BadSignature)
    }
}

/// The canonical request of spec §1.4.2.
pub(crate) fn canonical_request(
    request: &SignedRequest<'_>,
    signed_headers: &[String],
    lower_case_keys: bool,
) -> Result<String, AuthFailure> {
    let mut out = String::new();
    out.push_str(&request.method.to_ascii_uppercase());
    out.push('\n');
    out.push_str(&canonical_uri(request.path));
    out.push('\n');
    out.push_str(&canonical_query(request.query, lower_case_keys));
    out.push('\n');
    for name in signed_headers {
        let value = header(request, name).ok_or(AuthFailure::BadSignature)?;
        out.push_str(name);
        out.push(':');
        out.push_str(value.trim());
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&signed_headers.join(";"));
    out.push('\n');
    match header(request, "x-sdk-content-sha256") {
        Some(unsigned)
            if unsigned == "UNSIGNED-PAYLOAD"
                && signed_headers
                    .iter()
                    .any(|name| name == "x-sdk-content-sha256") =>
        {
            out.push_str(unsigned)
        }
        _ => out.push_str(&hex::encode(Sha256::digest(request.body))),
    }
    Ok(out)
}

pub(crate) fn string_to_sign(date: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{date}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    )
}

pub(crate) fn sign(secret_key: &str, string_to_sign: &str) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret_key.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(string_to_sign.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(&mac.finalize().into_bytes());
    out
}

/// A header value as received; `host` falls back to the URI authority.
fn header<'a>(request: &SignedRequest<'a>, name: &str) -> Option<&'a str> {
    match request.headers.get(name) {
        Some(value) => value.to_str().ok(),
        None if name == "host" => request.host,
        None => None,
    }
}

/// Decode the path, split on `/`, encode each segment, join, end with `/`.
fn canonical_uri(path: &str) -> String {
    let decoded: Vec<u8> = percent_decode_str(path).collect();
    let mut uri = decoded
        .split(|byte| *byte == b'/')
        .map(|segment| percent_encode(segment, ENCODE).to_string())
        .collect::<Vec<_>>()
        .join("/");
    if !uri.ends_with('/') {
        uri.push('/');
    }
    uri
}

/// Decoded `(key, value)` pairs of a raw query (`%XX` only; `+` stays a plus).
fn query_pairs(query: Option<&str>) -> Vec<(Vec<u8>, Vec<u8>)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (
                percent_decode_str(key).collect(),
                percent_decode_str(value).collect(),
            )
        })
        .collect()
}

fn canonical_query(query: Option<&str>, lower_case_keys: bool) -> String {
    let mut pairs = query_pairs(query);
    if lower_case_keys {
        for (key, _) in &mut pairs {
            key.make_ascii_lowercase();
        }
    }
    pairs.sort();
    pairs
        .iter()
        .map(|(key, value)| {
            format!(
                "{}={}",
                percent_encode(key, ENCODE),
                percent_encode(value, ENCODE)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const SK: &str = "EXAMPLESK00000000000000000000000000000000A";
    /// SHA-256 of the empty string.
    const EMPTY_PAYLOAD_HASH: &str =
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const SIGNED: &str = "content-type;host;user-agent;x-project-id;x-sdk-date";

    fn headers(content_type: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("content-type", content_type),
            ("user-agent", "huaweicloud-usdk-python/3.0"),
            ("x-project-id", "0a1b2c3d4e5f60718293a4b5c6d7e8f9"),
            ("x-sdk-date", "20250101T080000Z"),
            ("host", "pipeline.example.com"),
        ] {
            headers.insert(name, HeaderValue::from_static(value));
        }
        headers
    }

    fn signed_headers() -> Vec<String> {
        SIGNED.split(';').map(str::to_owned).collect()
    }

    const VECTOR_1_BODY: &[u8] =
        br#"{"description": "nightly", "variables": [{"name": "env", "value": "prod"}]}"#;
    const VECTOR_1_PATH: &str =
        "/v5/4f0c0a8e1a1b4c2d9e8f7a6b5c4d3e2f/api/pipelines/9a8b7c6d5e4f40312a1b2c3d4e5f6a7b/run";

    #[test]
    fn vector_1_canonical_request_string_to_sign_and_signature() {
        let headers = headers("application/json;charset=utf-8");
        let request = SignedRequest {
            method: "POST",
            path: VECTOR_1_PATH,
            query: None,
            headers: &headers,
            host: None,
            body: VECTOR_1_BODY,
        };
        let canonical = canonical_request(&request, &signed_headers(), false).expect("canonical");
        assert_eq!(
            canonical,
            "POST\n\
             /v5/4f0c0a8e1a1b4c2d9e8f7a6b5c4d3e2f/api/pipelines/9a8b7c6d5e4f40312a1b2c3d4e5f6a7b/run/\n\
             \n\
             content-type:application/json;charset=utf-8\n\
             host:pipeline.example.com\n\
             user-agent:huaweicloud-usdk-python/3.0\n\
             x-project-id:0a1b2c3d4e5f60718293a4b5c6d7e8f9\n\
             x-sdk-date:20250101T080000Z\n\
             \n\
             content-type;host;user-agent;x-project-id;x-sdk-date\n\
             9e76662fa829a1e942908ba320bbf7bc0fe0c1ddccf563f5868f8be3e7bb4cef"
        );
        let to_sign = string_to_sign("20250101T080000Z", &canonical);
        assert_eq!(
            to_sign,
            "SDK-HMAC-SHA256\n20250101T080000Z\nc08ca5eb1a6453ba47d3dae83f559ac14a4109aac65384a36240cc8135e33183"
        );
        assert_eq!(
            hex::encode(sign(SK, &to_sign)),
            "7faf6ffa8dbd4cf8284eb9bb1f1bb557b71365995c0105c981ef341d8e5b7ed7"
        );
        let authorization = parse_authorization(
            "SDK-HMAC-SHA256 Access=EXAMPLEAK0000000000A, SignedHeaders=content-type;host;user-agent;x-project-id;x-sdk-date, Signature=7faf6ffa8dbd4cf8284eb9bb1f1bb557b71365995c0105c981ef341d8e5b7ed7",
        )
        .expect("parses");
        assert_eq!(authorization.access_key, "EXAMPLEAK0000000000A");
        assert_eq!(verify(&request, &authorization, SK), Ok(()));
        assert_eq!(
            verify(&request, &authorization, "another secret key"),
            Err(AuthFailure::BadSignature)
        );
    }

    #[test]
    fn vector_2_query_string_and_empty_body() {
        let headers = headers("application/json");
        let request = SignedRequest {
            method: "GET",
            path: "/v3/templates",
            query: Some(
                "is_build_in=false&limit=10&name=java%20build&offset=0&template_type=pipeline",
            ),
            headers: &headers,
            host: None,
            body: b"",
        };
        let canonical = canonical_request(&request, &signed_headers(), false).expect("canonical");
        let lines: Vec<&str> = canonical.lines().collect();
        assert_eq!(lines[1], "/v3/templates/");
        assert_eq!(
            lines[2],
            "is_build_in=false&limit=10&name=java%20build&offset=0&template_type=pipeline"
        );
        assert_eq!(lines.last().copied(), Some(EMPTY_PAYLOAD_HASH));
        let signature = sign(SK, &string_to_sign("20250101T080000Z", &canonical));
        assert_eq!(
            hex::encode(signature),
            "c2d3d65e68610c336665ff38237efd418546ff7e6d0454fb0a031f72a7eb144f"
        );
    }

    #[test]
    fn a_tampered_body_or_path_fails() {
        let headers = headers("application/json;charset=utf-8");
        let authorization = Authorization {
            access_key: "EXAMPLEAK0000000000A".into(),
            signed_headers: signed_headers(),
            signature: {
                let mut bytes = [0u8; 32];
                hex::decode_to_slice(
                    "7faf6ffa8dbd4cf8284eb9bb1f1bb557b71365995c0105c981ef341d8e5b7ed7",
                    &mut bytes,
                )
                .expect("hex");
                bytes
            },
        };
        let mut request = SignedRequest {
            method: "POST",
            path: VECTOR_1_PATH,
            query: None,
            headers: &headers,
            host: None,
            body: br#"{"description": "nightly", "variables": [{"name": "env", "value": "dev"}]}"#,
        };
        assert_eq!(
            verify(&request, &authorization, SK),
            Err(AuthFailure::BadSignature)
        );
        request.body = VECTOR_1_BODY;
        request.query = Some("extra=1");
        assert_eq!(
            verify(&request, &authorization, SK),
            Err(AuthFailure::BadSignature)
        );
    }

    #[test]
    fn go_sdk_lower_cased_query_keys_are_tolerated() {
        let headers = headers("application/json");
        let request = SignedRequest {
            method: "DELETE",
            path: "/v5/p/api/pipeline-tag/delete",
            query: Some("tagId=abc"),
            headers: &headers,
            host: None,
            body: b"",
        };
        let go_canonical = canonical_request(&request, &signed_headers(), true).expect("canonical");
        assert!(go_canonical.contains("\ntagid=abc\n"));
        let authorization = Authorization {
            access_key: "AK".into(),
            signed_headers: signed_headers(),
            signature: sign(SK, &string_to_sign("20250101T080000Z", &go_canonical)),
        };
        assert_eq!(verify(&request, &authorization, SK), Ok(()));
    }

    #[test]
    fn query_pairs_are_decoded_sorted_and_re_encoded() {
        assert_eq!(
            canonical_query(Some("b=2&a=x%2Cy&a=w+v&c"), false),
            "a=w%2Bv&a=x%2Cy&b=2&c="
        );
        assert_eq!(canonical_uri("/v5/a%20b/c/"), "/v5/a%20b/c/");
    }

    #[test]
    fn authorization_headers_of_other_schemes_or_malformed_are_refused() {
        for value in [
            "SDK-HMAC-SM3 Access=a, SignedHeaders=host, Signature=00",
            "SDK-HMAC-SHA256 Access=a, SignedHeaders=host",
            "SDK-HMAC-SHA256 Access=a, SignedHeaders=host, Signature=zz",
            "Bearer abc",
            "SDK-HMAC-SHA256Access=a",
        ] {
            assert_eq!(
                parse_authorization(value),
                Err(AuthFailure::UnsupportedScheme),
                "{value}"
            );
        }
        let spaced = parse_authorization(&format!(
            "SDK-HMAC-SHA256 Access=a,   SignedHeaders=Host;X-Sdk-Date,  Signature={}",
            "0".repeat(64)
        ))
        .expect("extra spaces are fine");
        assert_eq!(spaced.signed_headers, ["host", "x-sdk-date"]);
    }

    #[test]
    fn the_date_must_be_within_the_window() {
        let now = Timestamp::from_millis(1_735_718_400_000); // 2025-01-01T08:00:00Z
        let window = Duration::from_secs(15 * 60);
        assert_eq!(check_date(Some("20250101T080000Z"), now, window), Ok(()));
        assert_eq!(check_date(Some("20250101T081500Z"), now, window), Ok(()));
        assert_eq!(
            check_date(Some("20250101T081501Z"), now, window),
            Err(AuthFailure::StaleDate)
        );
        assert_eq!(
            check_date(Some("20250101T074459Z"), now, window),
            Err(AuthFailure::StaleDate)
        );
        assert_eq!(
            check_date(Some("2025-01-01T08:00:00Z"), now, window),
            Err(AuthFailure::StaleDate)
        );
        assert_eq!(check_date(None, now, window), Err(AuthFailure::StaleDate));
    }
}
