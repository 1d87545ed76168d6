//! The first start bootstraps once; later starts change nothing; an interrupted bootstrap is redone; health endpoints.

use crate::common::{header_values, http_get, http_status, settings, start};
use runnel_server::CREDENTIALS_FILE;
use runnel_store::{IdentityStore, Role, SecretKey, Store, StoreConfig};
use std::os::unix::fs::PermissionsExt as _;

const FIELDS: [&str; 9] = [
    "endpoint",
    "domain_id",
    "domain_name",
    "user_id",
    "user_name",
    "password",
    "project_id",
    "ak",
    "sk",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_start_bootstraps_once_and_a_second_start_keeps_everything() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start(settings(dir.path())).await;
    let credentials = server
        .credentials()
        .expect("the first start bootstraps")
        .clone();

    let path = dir.path().join(CREDENTIALS_FILE);
    assert_eq!(server.credentials_file(), path);
    let metadata = std::fs::metadata(&path).expect("credentials file");
    assert_eq!(metadata.permissions().mode() & 0o777, 0o600);
    let written = std::fs::read(&path).expect("read");
    let json: serde_json::Value = serde_json::from_slice(&written).expect("JSON");
    let object = json.as_object().expect("an object");
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut expected = FIELDS.to_vec();
    expected.sort_unstable();
    assert_eq!(keys, expected, "exactly the nine fields");
    assert!(
        object
            .values()
            .all(|value| value.as_str().is_some_and(|text| !text.is_empty()))
    );

    assert_eq!(credentials.endpoint, server.public_url());
    assert_eq!(
        credentials.endpoint,
        format!("http://{}", server.local_addr)
    );
    assert_eq!(credentials.domain_name, "default");
    assert_eq!(credentials.user_name, "admin");
    assert!(credentials.password.len() >= 20);
    assert_eq!(credentials.project_id.len(), 32);
    assert!(
        credentials
            .project_id
            .chars()
            .all(|char| char.is_ascii_hexdigit())
    );
    let store = server.store();
    let user = store
        .authenticate_password("default", "admin", &credentials.password)
        .await
        .expect("read")
        .expect("the password works");
    assert_eq!(user.id, credentials.user_id);
    assert!(
        store
            .authenticate_password("default", "admin", "admin")
            .await
            .expect("read")
            .is_none(),
        "no default password"
    );
    assert_eq!(
        store
            .member_role(&credentials.project_id, &credentials.user_id)
            .await
            .expect("read"),
        Some(Role::Admin)
    );
    let key = store
        .access_key(&credentials.ak)
        .await
        .expect("read")
        .expect("the access key exists");
    assert_eq!(key.sk, credentials.sk);
    assert_eq!(key.user_id, credentials.user_id);
    server.shutdown().await;

    let modified = metadata.modified().expect("mtime");
    let again = start(settings(dir.path())).await;
    assert!(again.credentials().is_none(), "nothing new to show");
    assert_eq!(
        std::fs::read(&path).expect("read"),
        written,
        "file untouched"
    );
    assert_eq!(
        std::fs::metadata(&path)
            .expect("meta")
            .modified()
            .expect("mtime"),
        modified
    );
    let store = again.store();
    let domain = store
        .domain_by_name("default")
        .await
        .expect("read")
        .expect("domain");
    assert_eq!(domain.id, credentials.domain_id);
    assert_eq!(
        store.projects(&domain.id).await.expect("read").len(),
        1,
        "no second project"
    );
    let user = store
        .authenticate_password("default", "admin", &credentials.password)
        .await
        .expect("read")
        .expect("the password still works");
    assert_eq!(user.id, credentials.user_id);
    again.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_after_an_interrupted_bootstrap_completes_it_with_fresh_secrets() {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = SecretKey::generate();
    let mut settings = settings(dir.path());
    settings.security.secret_key = Some(key.clone());
    // A first start that died after creating the domain and the user, and after writing a file.
    let store = Store::open(StoreConfig::sqlite(&dir.path().join("runnel.db"), key))
        .await
        .expect("store opens");
    let now = runnel_domain::Timestamp::from_millis(1_750_000_000_000);
    let domain = store.create_domain("default", now).await.expect("domain");
    let user = store
        .create_user(
            &domain.id,
            "admin",
            Some("lost-password-of-the-first-try"),
            now,
        )
        .await
        .expect("user");
    store.close().await;
    std::fs::write(dir.path().join(CREDENTIALS_FILE), "{\"stale\": true}\n").expect("stale file");

    let server = start(settings.clone()).await;
    let credentials = server.credentials().expect("bootstrap completed").clone();
    assert_eq!(credentials.domain_id, domain.id, "the domain is reused");
    assert_eq!(credentials.user_id, user.id, "the user is reused");
    let store = server.store();
    assert!(
        store
            .authenticate_password("default", "admin", "lost-password-of-the-first-try")
            .await
            .expect("read")
            .is_none(),
        "the old password is dead"
    );
    assert!(
        store
            .authenticate_password("default", "admin", &credentials.password)
            .await
            .expect("read")
            .is_some()
    );
    let file: runnel_server::BootstrapCredentials =
        serde_json::from_slice(&std::fs::read(dir.path().join(CREDENTIALS_FILE)).expect("read"))
            .expect("the stale file was replaced");
    assert_eq!(file, credentials);
    server.shutdown().await;

    let again = start(settings).await;
    assert!(again.credentials().is_none());
    again.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_endpoints_answer_live_and_ready_and_other_paths_reach_the_api() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start(settings(dir.path())).await;
    assert_eq!(http_status(server.local_addr, "/health/live").await, 200);
    assert_eq!(http_status(server.local_addr, "/health/ready").await, 200);
    let elsewhere = http_status(server.local_addr, "/no/such/route").await;
    assert_ne!(
        elsewhere, 503,
        "the API router answers once the server is ready"
    );
    // One `X-Request-Id` on every answer: the client's when it sent a sane one.
    for path in ["/health/live", "/health/ready", "/no/such/route"] {
        let plain = http_get(server.local_addr, path, "").await;
        let ids = header_values(&plain, "x-request-id");
        assert_eq!(ids.len(), 1, "{path}: {plain}");
        assert!(ids[0].len() >= 16, "{path}: a generated id, {ids:?}");
        let echoed = http_get(server.local_addr, path, "X-Request-Id: probe-42\r\n").await;
        assert_eq!(
            header_values(&echoed, "x-request-id"),
            ["probe-42"],
            "{path}"
        );
    }
    let addr = server.local_addr;
    server.shutdown().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no connections after shutdown"
    );
}
