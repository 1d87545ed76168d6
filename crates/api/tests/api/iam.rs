//! Tokens (issue, use, expire, revoke), AK/SK signatures, login rate limits, project lookup,
//! request ids and unknown routes.

use crate::harness::{Auth, Harness, PASSWORD, login_body};
use axum::http::{Method, StatusCode};
use runnel_api::{ApiConfig, RateLimit};
use std::time::Duration;

fn list_uri(harness: &Harness) -> String {
    format!("/v5/{}/api/pipelines/list", harness.project_a.id)
}

#[tokio::test]
async fn a_password_login_answers_201_with_a_subject_token_that_authenticates() {
    let harness = Harness::new().await;
    let reply = harness
        .call(
            Method::POST,
            "/v3/auth/tokens",
            Auth::None,
            Some(login_body("alice", PASSWORD)),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let token = reply.headers["x-subject-token"].to_str().expect("token");
    let body = &reply.body["token"];
    assert_eq!(body["user"]["name"], "alice");
    assert_eq!(body["user"]["domain"]["name"], "acme");
    assert_eq!(body["project"]["name"], "local-1");
    assert_eq!(body["methods"][0], "password");
    assert_eq!(
        body["catalog"][0]["endpoints"][0]["url"],
        "https://ci.example.com"
    );
    assert_eq!(body["issued_at"], "2025-06-15T15:06:40.000000Z");
    assert_eq!(body["expires_at"], "2025-06-16T15:06:40.000000Z", "24 h");
    let used = harness
        .call(Method::POST, &list_uri(&harness), Auth::Token(token), None)
        .await;
    assert_eq!(used.status, StatusCode::OK, "{}", used.text);

    let checked = harness
        .call_raw(
            Method::GET,
            "/v3/auth/tokens",
            Auth::Token(token),
            Vec::new(),
            &[("x-subject-token", token)],
        )
        .await;
    assert_eq!(checked.status, StatusCode::OK, "{}", checked.text);
    assert_eq!(checked.body["token"]["user"]["id"], harness.alice.id);
}

#[tokio::test]
async fn wrong_credentials_answer_401_without_saying_which_part_was_wrong() {
    let harness = Harness::new().await;
    let mut messages = Vec::new();
    for (user, password, domain) in [
        ("alice", "wrong password", "acme"),
        ("nobody", PASSWORD, "acme"),
        ("alice", PASSWORD, "no-such-domain"),
    ] {
        let mut body = login_body(user, password);
        body["auth"]["identity"]["password"]["user"]["domain"]["name"] = domain.into();
        let reply = harness
            .call(Method::POST, "/v3/auth/tokens", Auth::None, Some(body))
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text);
        assert_eq!(
            reply.body["error"]["code"], 401,
            "IAM body shape: {}",
            reply.text
        );
        assert_eq!(reply.body["error"]["title"], "Unauthorized");
        assert!(!reply.headers.contains_key("x-subject-token"));
        messages.push(reply.body["error"]["message"].clone());
    }
    assert!(
        messages.windows(2).all(|pair| pair[0] == pair[1]),
        "{messages:?}"
    );
}

#[tokio::test]
async fn tokens_expire_after_24_hours_and_revoked_tokens_are_refused_at_once() {
    let harness = Harness::new().await;
    let uri = list_uri(&harness);
    harness.clock.advance(Duration::from_secs(24 * 3600 - 1));
    let reply = harness
        .call(Method::POST, &uri, Auth::Token(&harness.alice.token), None)
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    harness.clock.advance(Duration::from_secs(1));
    let reply = harness
        .call(Method::POST, &uri, Auth::Token(&harness.alice.token), None)
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.code(), "APIGW.0301");

    let token = harness.login("dave").await;
    let revoked = harness
        .call_raw(
            Method::DELETE,
            "/v3/auth/tokens",
            Auth::Token(&token),
            Vec::new(),
            &[("x-subject-token", &token)],
        )
        .await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT, "{}", revoked.text);
    let reply = harness
        .call(Method::POST, &uri, Auth::Token(&token), None)
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (StatusCode::UNAUTHORIZED, "APIGW.0301")
    );

    // Nobody revokes another user's token.
    let vera = harness.login("vera").await;
    let carol = harness.login("carol").await;
    let other = harness
        .call_raw(
            Method::DELETE,
            "/v3/auth/tokens",
            Auth::Token(&vera),
            Vec::new(),
            &[("x-subject-token", &carol)],
        )
        .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND, "{}", other.text);
}

#[tokio::test]
async fn signed_requests_are_accepted_and_wrong_or_stale_signatures_refused() {
    let harness = Harness::new().await;
    let uri = list_uri(&harness);
    let reply = harness.call(Method::POST, &uri, Auth::Signed, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let with_query = format!(
        "/v5/{}/api/pipelines/{}/pipeline-runs/detail?pipeline_run_id=nothing",
        harness.project_a.id, "0123456789abcdef0123456789abcdef"
    );
    let reply = harness
        .call(Method::GET, &with_query, Auth::Signed, None)
        .await;
    assert_eq!(
        reply.code(),
        "DEVPIPE.00011401",
        "signature with a query verifies: {}",
        reply.text
    );

    for (auth, code) in [
        (Auth::BadSignature, "APIGW.0301"),
        (Auth::StaleDate, "APIGW.0301"),
        (Auth::None, "DEV.00000001"),
    ] {
        let reply = harness.call(Method::POST, &uri, auth, None).await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::UNAUTHORIZED, code),
            "{}",
            reply.text
        );
    }
    let other_scheme = harness
        .call_raw(
            Method::POST,
            &uri,
            Auth::None,
            Vec::new(),
            &[(
                "authorization",
                "SDK-HMAC-SM3 Access=x, SignedHeaders=host, Signature=00",
            )],
        )
        .await;
    assert_eq!(other_scheme.status, StatusCode::UNAUTHORIZED);

    // A body changed after signing fails.
    let date = chrono::DateTime::from_timestamp_millis(harness.clock_now())
        .expect("time")
        .format("%Y%m%dT%H%M%SZ")
        .to_string();
    let authorization = crate::harness::sign(
        &Method::POST,
        &uri,
        &date,
        br#"{"limit": 5}"#,
        &harness.ak,
        &harness.sk,
    );
    let tampered = harness
        .call_raw(
            Method::POST,
            &uri,
            Auth::None,
            br#"{"limit": 50}"#.to_vec(),
            &[("authorization", &authorization), ("x-sdk-date", &date)],
        )
        .await;
    assert_eq!(
        (tampered.status, tampered.code()),
        (StatusCode::UNAUTHORIZED, "APIGW.0301")
    );
}

#[tokio::test]
async fn login_is_rate_limited_per_user_and_per_source() {
    let config = ApiConfig {
        login_per_user: RateLimit {
            burst: 6,
            per_minute: 1,
        },
        login_per_ip: RateLimit {
            burst: 10,
            per_minute: 1,
        },
        ..ApiConfig::new("https://ci.example.com", "local-1")
    };
    // The harness logs four users in once each.
    let harness = Harness::with_config(config).await;
    for _ in 0..5 {
        let reply = harness
            .call(
                Method::POST,
                "/v3/auth/tokens",
                Auth::None,
                Some(login_body("alice", "wrong")),
            )
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    let reply = harness
        .call(
            Method::POST,
            "/v3/auth/tokens",
            Auth::None,
            Some(login_body("alice", PASSWORD)),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "per user: {}",
        reply.text
    );
    assert_eq!(reply.body["error"]["code"], 429);
    assert_eq!(reply.body["error"]["error_code"], "APIGW.0308");
    let reply = harness
        .call(
            Method::POST,
            "/v3/auth/tokens",
            Auth::None,
            Some(login_body("dave", PASSWORD)),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "per source: {}",
        reply.text
    );
    harness.clock.advance(Duration::from_secs(60));
    let reply = harness
        .call(
            Method::POST,
            "/v3/auth/tokens",
            Auth::None,
            Some(login_body("dave", PASSWORD)),
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::CREATED,
        "refilled: {}",
        reply.text
    );
}

#[tokio::test]
async fn the_project_lookup_finds_the_one_iam_project_of_the_region() {
    let harness = Harness::new().await;
    let reply = harness
        .call(Method::GET, "/v3/projects?name=local-1", Auth::Signed, None)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let projects = reply.body["projects"].as_array().expect("array");
    assert_eq!(projects.len(), 1);
    let id = projects[0]["id"].as_str().expect("id");
    assert!(
        id.len() == 32 && id.bytes().all(|byte| byte.is_ascii_hexdigit()),
        "{id}"
    );
    let login = harness
        .call(
            Method::POST,
            "/v3/auth/tokens",
            Auth::None,
            Some(login_body("vera", PASSWORD)),
        )
        .await;
    assert_eq!(
        login.body["token"]["project"]["id"], id,
        "tokens are scoped to it"
    );

    let other = harness
        .call(
            Method::GET,
            "/v3/projects?name=elsewhere",
            Auth::Token(&harness.alice.token),
            None,
        )
        .await;
    assert_eq!(other.body["projects"].as_array().map(Vec::len), Some(0));
    let bad = harness
        .call(Method::GET, "/v3/projects?per_page=0", Auth::Signed, None)
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.body["error"]["code"], 400);
    let anonymous = harness
        .call(Method::GET, "/v3/projects?name=local-1", Auth::None, None)
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.body["error"]["code"], 401);
}

#[tokio::test]
async fn every_response_carries_a_request_id_echoed_when_sane() {
    let harness = Harness::new().await;
    let uri = list_uri(&harness);
    let echoed = harness
        .call_raw(
            Method::POST,
            &uri,
            Auth::Token(&harness.alice.token),
            Vec::new(),
            &[("x-request-id", "trace-42")],
        )
        .await;
    assert_eq!(echoed.headers["x-request-id"], "trace-42");
    let replaced = harness
        .call_raw(
            Method::POST,
            &uri,
            Auth::None,
            Vec::new(),
            &[("x-request-id", "bad id\twith tab")],
        )
        .await;
    assert_ne!(replaced.headers["x-request-id"], "bad id\twith tab");
    let unknown = harness
        .call(Method::GET, "/v5/nowhere", Auth::None, None)
        .await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (StatusCode::NOT_FOUND, "APIGW.0101")
    );
    let wrong_method = harness
        .call(Method::GET, &uri, Auth::Token(&harness.alice.token), None)
        .await;
    assert_eq!(wrong_method.code(), "APIGW.0101");
}
