//! The client side of AK/SK `SDK-HMAC-SHA256` signing (spec §1.4), as the official SDKs sign.
//!
//! Deliberately a second, independent implementation: the server's verifier lives in
//! `runnel-api` (`auth/signature.rs`, on `axum` types). Both pass the spec's test vectors, and the
//! CLI's end-to-end tests check that what this signs the server accepts.

use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use sha2::{Digest, Sha256};

pub(crate) const ALGORITHM: &str = "SDK-HMAC-SHA256";

/// RFC 3986 unreserved characters stay; every other byte becomes `%XX`.
const ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A request to sign. Header names are lower case and sorted by the caller's choice of order.
pub(crate) struct Request<'a> {
    pub(crate) method: &'a str,
    /// The path as sent (percent-encoded where needed), without the query.
    pub(crate) path: &'a str,
    /// Decoded query pairs.
    pub(crate) query: &'a [(String, String)],
    /// `(lower-case name, value)` of every signed header, sorted by name.
    pub(crate) headers: &'a [(&'a str, String)],
    pub(crate) body: &'a [u8],
}

/// The value of the `Authorization` header for `request`, signed at `date`
/// (`yyyyMMdd'T'HHmmss'Z'`, which must also be the signed `x-sdk-date` header).
pub(crate) fn authorization(request: &Request<'_>, date: &str, ak: &str, sk: &str) -> String {
    let canonical = canonical_request(request);
    let signature = sign(sk, &string_to_sign(date, &canonical));
    let signed_headers = signed_header_names(request);
    format!("{ALGORITHM} Access={ak}, SignedHeaders={signed_headers}, Signature={signature}")
}

/// The query string to send: pairs sorted and encoded exactly as they are signed.
pub(crate) fn query_string(query: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(key, value)| (encode(key), encode(value)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// One path segment, encoded for a URL.
pub(crate) fn encode(text: &str) -> String {
    utf8_percent_encode(text, ENCODE).to_string()
}

fn signed_header_names(request: &Request<'_>) -> String {
    request
        .headers
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(";")
}

fn canonical_request(request: &Request<'_>) -> String {
    let decoded: Vec<u8> = percent_decode_str(request.path).collect();
    let mut uri = decoded
        .split(|byte| *byte == b'/')
        .map(|segment| percent_encoding::percent_encode(segment, ENCODE).to_string())
        .collect::<Vec<_>>()
        .join("/");
    if !uri.ends_with('/') {
        uri.push('/');
    }
    let mut headers = String::new();
    for (name, value) in request.headers {
        headers.push_str(name);
        headers.push(':');
        headers.push_str(value.trim());
        headers.push('\n');
    }
    format!(
        "{}\n{uri}\n{}\n{headers}\n{}\n{}",
        request.method.to_ascii_uppercase(),
        query_string(request.query),
        signed_header_names(request),
        hex::encode(Sha256::digest(request.body)),
    )
}

fn string_to_sign(date: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{date}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    )
}

fn sign(sk: &str, string_to_sign: &str) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(sk.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(string_to_sign.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const AK: &str = "EXAMPLEAK0000000000A";
    const SK: &str = "EXAMPLESK00000000000000000000000000000000A";
    const DATE: &str = "20250101T080000Z";

    fn headers(content_type: &str) -> Vec<(&'static str, String)> {
        vec![
            ("content-type", content_type.to_owned()),
            ("host", "pipeline.example.com".to_owned()),
            ("user-agent", "huaweicloud-usdk-python/3.0".to_owned()),
            (
                "x-project-id",
                "0a1b2c3d4e5f60718293a4b5c6d7e8f9".to_owned(),
            ),
            ("x-sdk-date", DATE.to_owned()),
        ]
    }

    #[test]
    fn spec_vector_1_a_post_with_a_body() {
        let headers = headers("application/json;charset=utf-8");
        let request = Request {
            method: "POST",
            path: "/v5/4f0c0a8e1a1b4c2d9e8f7a6b5c4d3e2f/api/pipelines/9a8b7c6d5e4f40312a1b2c3d4e5f6a7b/run",
            query: &[],
            headers: &headers,
            body: br#"{"description": "nightly", "variables": [{"name": "env", "value": "prod"}]}"#,
        };
        assert_eq!(
            string_to_sign(DATE, &canonical_request(&request)),
            "SDK-HMAC-SHA256\n20250101T080000Z\nc08ca5eb1a6453ba47d3dae83f559ac14a4109aac65384a36240cc8135e33183"
        );
        assert_eq!(
            authorization(&request, DATE, AK, SK),
            "SDK-HMAC-SHA256 Access=EXAMPLEAK0000000000A, SignedHeaders=content-type;host;user-agent;x-project-id;x-sdk-date, Signature=7faf6ffa8dbd4cf8284eb9bb1f1bb557b71365995c0105c981ef341d8e5b7ed7"
        );
    }

    #[test]
    fn spec_vector_2_a_get_with_a_query() {
        let headers = headers("application/json");
        let query: Vec<(String, String)> = [
            ("template_type", "pipeline"),
            ("offset", "0"),
            ("name", "java build"),
            ("limit", "10"),
            ("is_build_in", "false"),
        ]
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect();
        let request = Request {
            method: "GET",
            path: "/v3/templates",
            query: &query,
            headers: &headers,
            body: b"",
        };
        assert_eq!(
            query_string(&query),
            "is_build_in=false&limit=10&name=java%20build&offset=0&template_type=pipeline"
        );
        assert!(authorization(&request, DATE, AK, SK).ends_with(
            "Signature=c2d3d65e68610c336665ff38237efd418546ff7e6d0454fb0a031f72a7eb144f"
        ));
    }

    #[test]
    fn segments_and_values_are_encoded_the_rfc_3986_way() {
        assert_eq!(encode("a b,c/d~e"), "a%20b%2Cc%2Fd~e");
        assert_eq!(query_string(&[("k".into(), "x+y".into())]), "k=x%2By");
    }
}
