//! What each forge sends: how a delivery proves it knows the trigger's secret, and how its
//! payload reads as a push, a tag or a merge-request event.
//!
//! | Forge | Event header | Secret check | Delivery id |
//! |---|---|---|---|
//! | GitHub | `X-GitHub-Event` | `X-Hub-Signature-256` (HMAC-SHA256 of the body; `X-Hub-Signature`, SHA-1, as a fallback) | `X-GitHub-Delivery` |
//! | Gitea / Forgejo / Gogs | `X-Gitea-Event` (`X-Gogs-Event`) | `X-Gitea-Signature` (hex HMAC-SHA256), or GitHub's header | `X-Gitea-Delivery` |
//! | Gitee | `X-Gitee-Event` | `X-Gitee-Token`: the secret, or base64 HMAC-SHA256 of `<X-Gitee-Timestamp>\n<secret>` | (none: the body's SHA-256) |
//! | GitLab | `X-Gitlab-Event` | `X-Gitlab-Token` equal to the secret | `X-Gitlab-Event-UUID`, `Idempotency-Key` |
//! | CodeArts Repo | `X-Repo-Event` (GitLab payloads) | `X-Repo-Token`, `X-Gitlab-Token` or `X-Auth-Token` equal to the secret | as GitLab |
//!
//! Every comparison is constant-time (S3): MACs with `Mac::verify_slice`, tokens by comparing
//! their SHA-256 digests with `subtle` (so neither content nor length leaks).

use axum::http::HeaderMap;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The forges whose webhooks are understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Forge {
    GitHub,
    Gitea,
    Gitee,
    GitLab,
    CodeArts,
}

impl Forge {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Forge::GitHub => "github",
            Forge::Gitea => "gitea",
            Forge::Gitee => "gitee",
            Forge::GitLab => "gitlab",
            Forge::CodeArts => "codehub",
        }
    }

    /// Which forge sent the request, from its headers.
    pub(crate) fn detect(headers: &HeaderMap) -> Option<Forge> {
        let has = |name: &str| headers.contains_key(name);
        if has("x-gitea-event") || has("x-gogs-event") || has("x-forgejo-event") {
            Some(Forge::Gitea)
        } else if has("x-gitee-event") {
            Some(Forge::Gitee)
        } else if has("x-github-event") {
            Some(Forge::GitHub)
        } else if has("x-repo-event") || has("x-repo-token") {
            Some(Forge::CodeArts)
        } else if has("x-gitlab-event") || has("x-gitlab-token") {
            Some(Forge::GitLab)
        } else {
            None
        }
    }

    /// The event name as sent (`push`, `Push Hook`, `pull_request`, …).
    pub(crate) fn event_name(self, headers: &HeaderMap) -> String {
        let names: &[&str] = match self {
            Forge::GitHub => &["x-github-event"],
            Forge::Gitea => &["x-gitea-event", "x-forgejo-event", "x-gogs-event"],
            Forge::Gitee => &["x-gitee-event"],
            Forge::GitLab => &["x-gitlab-event"],
            Forge::CodeArts => &["x-repo-event", "x-gitlab-event"],
        };
        names
            .iter()
            .find_map(|name| header(headers, name))
            .unwrap_or_default()
            .chars()
            .take(100)
            .collect()
    }

    /// The delivery id the forge sent, if any.
    pub(crate) fn delivery_id(self, headers: &HeaderMap) -> Option<String> {
        let names: &[&str] = match self {
            Forge::GitHub => &["x-github-delivery"],
            Forge::Gitea => &[
                "x-gitea-delivery",
                "x-forgejo-delivery",
                "x-gogs-delivery",
                "x-github-delivery",
            ],
            Forge::Gitee => &[],
            Forge::GitLab | Forge::CodeArts => &[
                "x-gitlab-event-uuid",
                "idempotency-key",
                "x-repo-event-uuid",
            ],
        };
        names
            .iter()
            .find_map(|name| header(headers, name))
            .map(str::trim)
            .filter(|id| {
                (1..=200).contains(&id.len()) && id.bytes().all(|byte| byte.is_ascii_graphic())
            })
            .map(str::to_owned)
    }

    /// Whether the request proves knowledge of `secret`; the error says what was wrong.
    pub(crate) fn verify(
        self,
        headers: &HeaderMap,
        body: &[u8],
        secret: &str,
    ) -> Result<(), String> {
        match self {
            Forge::GitHub => verify_hub_signature(headers, body, secret),
            Forge::Gitea => match header(headers, "x-gitea-signature")
                .or_else(|| header(headers, "x-gogs-signature"))
                .or_else(|| header(headers, "x-forgejo-signature"))
            {
                Some(signature) => verify_hmac_hex(signature.trim(), body, secret),
                None => verify_hub_signature(headers, body, secret),
            },
            Forge::Gitee => {
                let token = header(headers, "x-gitee-token")
                    .ok_or("the X-Gitee-Token header is missing")?;
                if tokens_equal(token, secret) {
                    return Ok(());
                }
                let timestamp = header(headers, "x-gitee-timestamp")
                    .ok_or("the X-Gitee-Token header does not match the trigger's secret")?;
                let mut mac = hmac_sha256(secret);
                mac.update(format!("{timestamp}\n{secret}").as_bytes());
                let expected =
                    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
                if tokens_equal(token, &expected) {
                    Ok(())
                } else {
                    Err(
                        "the X-Gitee-Token signature does not match the trigger's secret"
                            .to_owned(),
                    )
                }
            }
            Forge::GitLab | Forge::CodeArts => {
                let token = ["x-gitlab-token", "x-repo-token", "x-auth-token"]
                    .iter()
                    .find_map(|name| header(headers, name))
                    .ok_or("no X-Gitlab-Token (or X-Repo-Token) header")?;
                if tokens_equal(token, secret) {
                    Ok(())
                } else {
                    Err("the webhook token does not match the trigger's secret".to_owned())
                }
            }
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

fn hmac_sha256(secret: &str) -> Hmac<Sha256> {
    // HMAC takes keys of any length.
    <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC accepts any key length")
}

fn verify_hub_signature(headers: &HeaderMap, body: &[u8], secret: &str) -> Result<(), String> {
    if let Some(signature) = header(headers, "x-hub-signature-256") {
        let hex_part = signature
            .trim()
            .strip_prefix("sha256=")
            .ok_or("X-Hub-Signature-256 does not start with sha256=")?;
        return verify_hmac_hex(hex_part, body, secret);
    }
    if let Some(signature) = header(headers, "x-hub-signature") {
        let hex_part = signature
            .trim()
            .strip_prefix("sha1=")
            .ok_or("X-Hub-Signature does not start with sha1=")?;
        let expected = hex::decode(hex_part).map_err(|_| "the signature is not hexadecimal")?;
        let mut mac = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(secret.as_bytes())
            .expect("HMAC accepts any key length");
        mac.update(body);
        return mac.verify_slice(&expected).map_err(|_| {
            "the signature does not match the body and the trigger's secret".to_owned()
        });
    }
    Err("the request is not signed (no X-Hub-Signature-256 header)".to_owned())
}

fn verify_hmac_hex(hex_part: &str, body: &[u8], secret: &str) -> Result<(), String> {
    let expected = hex::decode(hex_part).map_err(|_| "the signature is not hexadecimal")?;
    let mut mac = hmac_sha256(secret);
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| "the signature does not match the body and the trigger's secret".to_owned())
}

/// Constant-time equality of two tokens of any lengths (their digests are compared).
fn tokens_equal(given: &str, expected: &str) -> bool {
    let given = Sha256::digest(given.as_bytes());
    let expected = Sha256::digest(expected.as_bytes());
    given.ct_eq(&expected).into()
}

/// What happened in the repository, whatever the forge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventKind {
    Push,
    Tag,
    MergeRequest,
}

impl EventKind {
    /// The `events[].type` of a trigger (spec §12.4).
    pub(crate) fn config_type(self) -> &'static str {
        match self {
            EventKind::Push => "push",
            EventKind::Tag => "tag_push",
            EventKind::MergeRequest => "merge_request",
        }
    }

    /// The run's trigger type (spec §12.3).
    pub(crate) fn trigger_type(self) -> &'static str {
        match self {
            EventKind::Push => "Push",
            EventKind::Tag => "CreateTag",
            EventKind::MergeRequest => "MR",
        }
    }
}

/// A push, tag or merge-request event, normalized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CodeEvent {
    pub(crate) kind: EventKind,
    /// Push: the branch pushed; merge request: its target branch.
    pub(crate) branch: String,
    pub(crate) tag: String,
    /// The commit to run (push: the new head; tag: the tagged commit; MR: the source head).
    pub(crate) commit: String,
    pub(crate) message: String,
    /// The branch or tag was deleted (nothing to run).
    pub(crate) deleted: bool,
    pub(crate) source_branch: String,
    pub(crate) merge_id: String,
    /// MR: `open`, `reopen`, `update`, `merge`, `close`; `update` without new commits is
    /// `update` with `code_changed` false.
    pub(crate) action: String,
    pub(crate) code_changed: bool,
    /// Files added, changed or removed by the pushed commits; `None` when the payload does
    /// not say (merge requests, truncated commit lists).
    pub(crate) changed_paths: Option<Vec<String>>,
    /// Clone URLs of the repository as the payload names it (HTTP(S) and SSH).
    pub(crate) repo_urls: Vec<String>,
    /// MR from a fork: the source repository's clone URL.
    pub(crate) source_repo_url: String,
    pub(crate) user: String,
}

/// Why a payload is not an event a pipeline runs for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NotAnEvent {
    /// Understood, and nothing to do (a ping, an issue, a comment): the text says what it was.
    Ignored(String),
    /// Not readable as the event it claims to be.
    Malformed(String),
}

/// Reads the payload of `forge`'s `event_name` event.
pub(crate) fn parse_event(
    forge: Forge,
    event_name: &str,
    body: &Value,
) -> Result<CodeEvent, NotAnEvent> {
    match forge {
        Forge::GitHub | Forge::Gitea => parse_github_like(event_name, body),
        Forge::Gitee => parse_gitee(event_name, body),
        Forge::GitLab | Forge::CodeArts => parse_gitlab_like(event_name, body),
    }
}

fn text(value: &Value, path: &[&str]) -> String {
    let mut current = value;
    for key in path {
        match current.get(key) {
            Some(next) => current = next,
            None => return String::new(),
        }
    }
    match current {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        _ => String::new(),
    }
}

fn is_zero(commit: &str) -> bool {
    !commit.is_empty() && commit.bytes().all(|byte| byte == b'0')
}

/// Files touched by the `commits` of a push payload (`added`, `modified`, `removed`), or `None`
/// when the payload has no commit list.
fn changed_paths(commits: Option<&Value>) -> Option<Vec<String>> {
    let commits = commits?.as_array()?;
    if commits.is_empty() {
        return None;
    }
    let mut paths: Vec<String> = Vec::new();
    for commit in commits {
        for key in ["added", "modified", "removed"] {
            for path in commit
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(path) = path.as_str()
                    && !paths.iter().any(|seen| seen == path)
                {
                    paths.push(path.to_owned());
                }
            }
        }
    }
    Some(paths)
}

fn head_message(body: &Value, head: &str) -> String {
    let from_head = text(body, &["head_commit", "message"]);
    if !from_head.is_empty() {
        return from_head;
    }
    body.get("commits")
        .and_then(Value::as_array)
        .and_then(|commits| {
            commits
                .iter()
                .find(|commit| text(commit, &["id"]) == head)
                .or_else(|| commits.last())
        })
        .map(|commit| text(commit, &["message"]))
        .unwrap_or_default()
}

/// A push (`refs/heads/…`) or a tag push (`refs/tags/…`), from the ref.
fn push_event(
    body: &Value,
    reference: &str,
    after: String,
    message: String,
    user: String,
    urls: Vec<String>,
) -> Result<CodeEvent, NotAnEvent> {
    let deleted = is_zero(&after) || body.get("deleted") == Some(&Value::Bool(true));
    let (kind, branch, tag) = if let Some(branch) = reference.strip_prefix("refs/heads/") {
        (EventKind::Push, branch.to_owned(), String::new())
    } else if let Some(tag) = reference.strip_prefix("refs/tags/") {
        (EventKind::Tag, String::new(), tag.to_owned())
    } else {
        return Err(NotAnEvent::Malformed(format!(
            "the pushed ref `{reference}` is neither a branch nor a tag"
        )));
    };
    Ok(CodeEvent {
        kind,
        branch,
        tag,
        commit: if deleted { String::new() } else { after },
        message,
        deleted,
        source_branch: String::new(),
        merge_id: String::new(),
        action: String::new(),
        code_changed: true,
        changed_paths: changed_paths(body.get("commits")),
        repo_urls: urls,
        source_repo_url: String::new(),
        user,
    })
}

fn parse_github_like(event_name: &str, body: &Value) -> Result<CodeEvent, NotAnEvent> {
    let urls = ["clone_url", "ssh_url", "html_url", "git_url"]
        .iter()
        .map(|key| text(body, &["repository", key]))
        .filter(|url| !url.is_empty())
        .collect::<Vec<_>>();
    let user = [
        &["sender", "login"][..],
        &["pusher", "name"][..],
        &["sender", "username"][..],
    ]
    .iter()
    .map(|path| text(body, path))
    .find(|name| !name.is_empty())
    .unwrap_or_default();
    match event_name {
        "push" => {
            let reference = text(body, &["ref"]);
            let after = text(body, &["after"]);
            let message = head_message(body, &after);
            push_event(body, &reference, after, message, user, urls)
        }
        // GitHub sends tag creation both as a push of refs/tags/… and as `create`; the push
        // carries the commit, so `create` is acknowledged and ignored.
        "create" | "delete" => Err(NotAnEvent::Ignored(format!(
            "`{event_name}` events are covered by push events"
        ))),
        "pull_request" => {
            let pull = body
                .get("pull_request")
                .ok_or_else(|| NotAnEvent::Malformed("no pull_request object".to_owned()))?;
            let raw_action = text(body, &["action"]);
            let merged = pull.get("merged") == Some(&Value::Bool(true));
            let (action, code_changed) = match raw_action.as_str() {
                "opened" => ("open", true),
                "reopened" => ("reopen", true),
                // GitHub says `synchronize`, Gitea / Forgejo `synchronized`: commits pushed.
                "synchronize" | "synchronized" => ("update", true),
                "edited" => ("update", false),
                "closed" if merged => ("merge", false),
                "closed" => ("close", false),
                other => {
                    return Err(NotAnEvent::Ignored(format!(
                        "pull request action `{other}`"
                    )));
                }
            };
            let head = text(pull, &["head", "sha"]);
            Ok(CodeEvent {
                kind: EventKind::MergeRequest,
                branch: text(pull, &["base", "ref"]),
                tag: String::new(),
                commit: if action == "merge" {
                    Some(text(pull, &["merge_commit_sha"]))
                        .filter(|sha| !sha.is_empty())
                        .unwrap_or(head)
                } else {
                    head
                },
                message: text(pull, &["title"]),
                deleted: false,
                source_branch: text(pull, &["head", "ref"]),
                merge_id: text(pull, &["number"]),
                action: action.to_owned(),
                code_changed,
                changed_paths: None,
                repo_urls: urls,
                source_repo_url: text(pull, &["head", "repo", "clone_url"]),
                user,
            })
        }
        "ping" => Err(NotAnEvent::Ignored("ping".to_owned())),
        other => Err(NotAnEvent::Ignored(format!(
            "`{other}` events do not start runs"
        ))),
    }
}

fn parse_gitlab_like(event_name: &str, body: &Value) -> Result<CodeEvent, NotAnEvent> {
    let kind = match text(body, &["object_kind"]).as_str() {
        "" => match event_name {
            "Push Hook" => "push".to_owned(),
            "Tag Push Hook" => "tag_push".to_owned(),
            "Merge Request Hook" => "merge_request".to_owned(),
            other => other.to_owned(),
        },
        kind => kind.to_owned(),
    };
    let urls = [
        ["project", "git_http_url"],
        ["project", "git_ssh_url"],
        ["repository", "git_http_url"],
        ["repository", "git_ssh_url"],
        ["project", "web_url"],
    ]
    .iter()
    .map(|path| text(body, path))
    .filter(|url| !url.is_empty())
    .collect::<Vec<_>>();
    let user = [
        &["user_username"][..],
        &["user_name"][..],
        &["user", "username"][..],
    ]
    .iter()
    .map(|path| text(body, path))
    .find(|name| !name.is_empty())
    .unwrap_or_default();
    match kind.as_str() {
        "push" | "tag_push" => {
            let reference = text(body, &["ref"]);
            let mut after = text(body, &["after"]);
            // An annotated tag's `after` is the tag object; `checkout_sha` is the commit.
            let checkout = text(body, &["checkout_sha"]);
            if !checkout.is_empty() {
                after = checkout;
            }
            let message = head_message(body, &after);
            push_event(body, &reference, after, message, user, urls)
        }
        "merge_request" => {
            let attributes = body
                .get("object_attributes")
                .ok_or_else(|| NotAnEvent::Malformed("no object_attributes object".to_owned()))?;
            let raw_action = text(attributes, &["action"]);
            let (action, code_changed) = match raw_action.as_str() {
                "open" => ("open", true),
                "reopen" => ("reopen", true),
                // `oldrev` is present when the update pushed commits.
                "update" => (
                    "update",
                    attributes.get("oldrev").is_some_and(|rev| !rev.is_null()),
                ),
                "merge" => ("merge", false),
                "close" => ("close", false),
                other => {
                    return Err(NotAnEvent::Ignored(format!(
                        "merge request action `{other}`"
                    )));
                }
            };
            let merge_commit = text(attributes, &["merge_commit_sha"]);
            let head = text(attributes, &["last_commit", "id"]);
            Ok(CodeEvent {
                kind: EventKind::MergeRequest,
                branch: text(attributes, &["target_branch"]),
                tag: String::new(),
                commit: if action == "merge" && !merge_commit.is_empty() {
                    merge_commit
                } else {
                    head
                },
                message: Some(text(attributes, &["last_commit", "message"]))
                    .filter(|message| !message.is_empty())
                    .unwrap_or_else(|| text(attributes, &["title"])),
                deleted: false,
                source_branch: text(attributes, &["source_branch"]),
                merge_id: text(attributes, &["iid"]),
                action: action.to_owned(),
                code_changed,
                changed_paths: None,
                repo_urls: urls,
                source_repo_url: text(attributes, &["source", "git_http_url"]),
                user,
            })
        }
        other => Err(NotAnEvent::Ignored(format!(
            "`{other}` events do not start runs"
        ))),
    }
}

fn parse_gitee(event_name: &str, body: &Value) -> Result<CodeEvent, NotAnEvent> {
    let hook = text(body, &["hook_name"]);
    let urls = [
        "clone_url",
        "git_http_url",
        "ssh_url",
        "git_ssh_url",
        "html_url",
    ]
    .iter()
    .map(|key| text(body, &["repository", key]))
    .filter(|url| !url.is_empty())
    .collect::<Vec<_>>();
    let user = [
        &["sender", "login"][..],
        &["user_name"][..],
        &["pusher", "name"][..],
    ]
    .iter()
    .map(|path| text(body, path))
    .find(|name| !name.is_empty())
    .unwrap_or_default();
    match (hook.as_str(), event_name) {
        ("push_hooks" | "tag_push_hooks", _) | (_, "Push Hook" | "Tag Push Hook") => {
            let reference = text(body, &["ref"]);
            let after = text(body, &["after"]);
            let message = head_message(body, &after);
            push_event(body, &reference, after, message, user, urls)
        }
        ("merge_request_hooks", _) | (_, "Merge Request Hook") => {
            let pull = body
                .get("pull_request")
                .ok_or_else(|| NotAnEvent::Malformed("no pull_request object".to_owned()))?;
            let raw_action = text(body, &["action"]);
            let action_desc = text(body, &["action_desc"]);
            let (action, code_changed) = match raw_action.as_str() {
                "open" => ("open", true),
                "reopen" => ("reopen", true),
                "update" => ("update", action_desc != "target_branch_changed"),
                "merge" => ("merge", false),
                "close" => ("close", false),
                other => {
                    return Err(NotAnEvent::Ignored(format!(
                        "merge request action `{other}`"
                    )));
                }
            };
            Ok(CodeEvent {
                kind: EventKind::MergeRequest,
                branch: text(pull, &["base", "ref"]),
                tag: String::new(),
                commit: Some(text(pull, &["merge_commit_sha"]))
                    .filter(|sha| action == "merge" && !sha.is_empty())
                    .unwrap_or_else(|| text(pull, &["head", "sha"])),
                message: text(pull, &["title"]),
                deleted: false,
                source_branch: text(pull, &["head", "ref"]),
                merge_id: text(pull, &["number"]),
                action: action.to_owned(),
                code_changed,
                changed_paths: None,
                repo_urls: urls,
                source_repo_url: text(pull, &["head", "repo", "clone_url"]),
                user,
            })
        }
        (other, name) => Err(NotAnEvent::Ignored(format!(
            "`{}` events do not start runs",
            if other.is_empty() { name } else { other }
        ))),
    }
}

/// The delivery id to deduplicate on: the forge's, else the body's SHA-256.
pub(crate) fn dedup_id(forge: Forge, headers: &HeaderMap, body: &[u8]) -> String {
    forge
        .delivery_id(headers)
        .unwrap_or_else(|| format!("sha256:{}", hex::encode(Sha256::digest(body))))
}

#[cfg(test)]
pub(crate) const NULL_COMMIT: &str = "0000000000000000000000000000000000000000";

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use serde_json::json;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).expect("header"));
        }
        map
    }

    fn github_signature(secret: &str, body: &[u8]) -> String {
        let mut mac = hmac_sha256(secret);
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn github_signatures_are_checked() {
        let body = br#"{"ref":"refs/heads/main"}"#;
        let good = headers(&[
            ("x-github-event", "push"),
            ("x-hub-signature-256", &github_signature("s3cret", body)),
        ]);
        assert_eq!(Forge::detect(&good), Some(Forge::GitHub));
        assert!(Forge::GitHub.verify(&good, body, "s3cret").is_ok());
        assert!(Forge::GitHub.verify(&good, body, "other").is_err());
        assert!(
            Forge::GitHub.verify(&good, b"{}", "s3cret").is_err(),
            "another body"
        );
        let unsigned = headers(&[("x-github-event", "push")]);
        assert!(Forge::GitHub.verify(&unsigned, body, "s3cret").is_err());
        let garbage = headers(&[("x-hub-signature-256", "sha256=zz")]);
        assert!(Forge::GitHub.verify(&garbage, body, "s3cret").is_err());
    }

    #[test]
    fn tokens_and_gitee_signatures_are_checked() {
        let gitlab = headers(&[("x-gitlab-event", "Push Hook"), ("x-gitlab-token", "tok")]);
        assert_eq!(Forge::detect(&gitlab), Some(Forge::GitLab));
        assert!(Forge::GitLab.verify(&gitlab, b"", "tok").is_ok());
        assert!(Forge::GitLab.verify(&gitlab, b"", "tok2").is_err());
        assert!(Forge::GitLab.verify(&gitlab, b"", "to").is_err());
        let codearts = headers(&[("x-repo-event", "Push Hook"), ("x-repo-token", "tok")]);
        assert_eq!(Forge::detect(&codearts), Some(Forge::CodeArts));
        assert!(Forge::CodeArts.verify(&codearts, b"", "tok").is_ok());
        let mut mac = hmac_sha256("gsecret");
        mac.update(b"1700000000000\ngsecret");
        let signed = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        let gitee = headers(&[
            ("x-gitee-event", "Push Hook"),
            ("x-gitee-token", &signed),
            ("x-gitee-timestamp", "1700000000000"),
        ]);
        assert!(Forge::Gitee.verify(&gitee, b"", "gsecret").is_ok());
        assert!(Forge::Gitee.verify(&gitee, b"", "other").is_err());
    }

    #[test]
    fn payloads_read_as_events() {
        let push = json!({"ref": "refs/heads/main", "after": "a".repeat(40), "head_commit": {"message": "fix"},
            "commits": [{"id": "a".repeat(40), "added": ["src/a.rs"], "modified": ["README.md"], "removed": []}],
            "repository": {"clone_url": "https://github.com/o/r.git"}, "sender": {"login": "octo"}});
        let event = parse_event(Forge::GitHub, "push", &push).expect("push");
        assert_eq!(
            (event.kind, event.branch.as_str(), event.message.as_str()),
            (EventKind::Push, "main", "fix")
        );
        assert_eq!(
            event.changed_paths,
            Some(vec!["src/a.rs".to_owned(), "README.md".to_owned()])
        );
        let tag = json!({"object_kind": "tag_push", "ref": "refs/tags/v1", "after": "b".repeat(40), "checkout_sha": "c".repeat(40)});
        let event = parse_event(Forge::GitLab, "Tag Push Hook", &tag).expect("tag");
        assert_eq!(
            (event.kind, event.tag.as_str(), event.commit.clone()),
            (EventKind::Tag, "v1", "c".repeat(40))
        );
        let deleted = json!({"ref": "refs/heads/old", "after": NULL_COMMIT});
        assert!(
            parse_event(Forge::GitHub, "push", &deleted)
                .expect("push")
                .deleted
        );
        let mr = json!({"object_kind": "merge_request", "object_attributes": {"iid": 7, "action": "open", "source_branch": "feat",
            "target_branch": "main", "last_commit": {"id": "d".repeat(40), "message": "feat"}}});
        let event = parse_event(Forge::GitLab, "Merge Request Hook", &mr).expect("mr");
        assert_eq!(
            (
                event.merge_id.as_str(),
                event.action.as_str(),
                event.source_branch.as_str()
            ),
            ("7", "open", "feat")
        );
        assert!(matches!(
            parse_event(Forge::GitHub, "ping", &json!({})),
            Err(NotAnEvent::Ignored(_))
        ));
    }

    /// What a push event says: kind, branch, commit, message, user.
    fn push_summary(event: &CodeEvent) -> (EventKind, &str, &str, &str, &str) {
        (
            event.kind,
            &event.branch,
            &event.commit,
            &event.message,
            &event.user,
        )
    }

    /// A pull request's payload as Gitea (and Forgejo) send it, with `action` and `merged`.
    fn gitea_pull(action: &str, merged: bool) -> Value {
        json!({"action": action, "number": 12, "pull_request": {"number": 12, "title": "Add cache",
            "merged": merged, "merge_commit_sha": if merged { Value::String("m".repeat(40)) } else { Value::Null },
            "head": {"ref": "feature/cache", "sha": "e".repeat(40), "repo": {"clone_url": "https://gitea.example.com/fork/app.git"}},
            "base": {"ref": "main", "sha": "f".repeat(40)}},
            "repository": {"clone_url": "https://gitea.example.com/team/app.git", "ssh_url": "git@gitea.example.com:team/app.git"},
            "sender": {"login": "gitea-user", "username": "gitea-user"}})
    }

    #[test]
    fn gitea_pushes_and_pull_requests_read_as_events_with_their_signature() {
        let body = serde_json::to_vec(&json!({"ref": "refs/heads/main", "after": "a".repeat(40),
            "commits": [{"id": "a".repeat(40), "message": "bump", "added": [], "modified": ["go.mod"], "removed": []}],
            "repository": {"clone_url": "https://gitea.example.com/team/app.git"},
            "pusher": {"login": "gitea-user", "username": "gitea-user"}, "sender": {"login": "gitea-user"}}))
        .expect("json");
        let mut mac = hmac_sha256("gsecret");
        mac.update(&body);
        let signature = hex::encode(mac.finalize().into_bytes());
        let signed = headers(&[
            ("x-gitea-event", "push"),
            ("x-gitea-delivery", "5b7c1a8e-0000-4000-8000-000000000001"),
            ("x-gitea-signature", &signature),
        ]);
        assert_eq!(Forge::detect(&signed), Some(Forge::Gitea));
        assert!(Forge::Gitea.verify(&signed, &body, "gsecret").is_ok());
        assert!(Forge::Gitea.verify(&signed, &body, "other").is_err());
        assert!(
            Forge::Gitea.verify(&signed, b"{}", "gsecret").is_err(),
            "another body"
        );
        assert_eq!(
            Forge::Gitea.delivery_id(&signed).as_deref(),
            Some("5b7c1a8e-0000-4000-8000-000000000001")
        );
        let push: Value = serde_json::from_slice(&body).expect("json");
        let event = parse_event(Forge::Gitea, "push", &push).expect("push");
        assert_eq!(
            push_summary(&event),
            (
                EventKind::Push,
                "main",
                "a".repeat(40).as_str(),
                "bump",
                "gitea-user"
            )
        );
        assert_eq!(event.changed_paths, Some(vec!["go.mod".to_owned()]));

        // New commits on the pull request: Gitea's action is `synchronized`.
        for (action, expected, code_changed) in [
            ("opened", "open", true),
            ("synchronized", "update", true),
            ("reopened", "reopen", true),
            ("edited", "update", false),
            ("closed", "close", false),
        ] {
            let event = parse_event(Forge::Gitea, "pull_request", &gitea_pull(action, false))
                .unwrap_or_else(|err| panic!("{action}: {err:?}"));
            assert_eq!(
                (event.kind, event.action.as_str(), event.code_changed),
                (EventKind::MergeRequest, expected, code_changed),
                "{action}"
            );
            assert_eq!(
                (
                    event.branch.as_str(),
                    event.source_branch.as_str(),
                    event.merge_id.as_str(),
                    event.commit.as_str()
                ),
                ("main", "feature/cache", "12", "e".repeat(40).as_str()),
                "{action}"
            );
            assert_eq!(
                event.source_repo_url,
                "https://gitea.example.com/fork/app.git"
            );
        }
        let merged =
            parse_event(Forge::Gitea, "pull_request", &gitea_pull("closed", true)).expect("merged");
        assert_eq!(
            (merged.action.as_str(), merged.commit.as_str()),
            ("merge", "m".repeat(40).as_str())
        );
        assert!(matches!(
            parse_event(
                Forge::Gitea,
                "pull_request",
                &gitea_pull("label_updated", false)
            ),
            Err(NotAnEvent::Ignored(_))
        ));
        // Reviews come as events of their own, with the action `synchronized` too.
        assert!(matches!(
            parse_event(
                Forge::Gitea,
                "pull_request_approved",
                &gitea_pull("synchronized", false)
            ),
            Err(NotAnEvent::Ignored(_))
        ));
    }

    #[test]
    fn gitee_and_codearts_payloads_read_as_events() {
        let push = json!({"hook_name": "push_hooks", "ref": "refs/heads/dev", "after": "1".repeat(40),
            "commits": [{"id": "1".repeat(40), "message": "fix build", "added": ["a.c"], "modified": [], "removed": ["b.c"]}],
            "repository": {"git_http_url": "https://gitee.com/team/app.git", "git_ssh_url": "git@gitee.com:team/app.git"},
            "user_name": "gitee-user"});
        let event = parse_event(Forge::Gitee, "Push Hook", &push).expect("push");
        assert_eq!(
            push_summary(&event),
            (
                EventKind::Push,
                "dev",
                "1".repeat(40).as_str(),
                "fix build",
                "gitee-user"
            )
        );
        assert_eq!(
            event.repo_urls,
            [
                "https://gitee.com/team/app.git",
                "git@gitee.com:team/app.git"
            ]
        );
        assert_eq!(
            event.changed_paths,
            Some(vec!["a.c".to_owned(), "b.c".to_owned()])
        );
        let tag = json!({"hook_name": "tag_push_hooks", "ref": "refs/tags/v2.0", "after": "2".repeat(40)});
        let event = parse_event(Forge::Gitee, "Tag Push Hook", &tag).expect("tag");
        assert_eq!((event.kind, event.tag.as_str()), (EventKind::Tag, "v2.0"));

        let mr = |action: &str, desc: &str| {
            json!({"hook_name": "merge_request_hooks", "action": action, "action_desc": desc,
                "pull_request": {"number": 5, "title": "Speed up", "merge_commit_sha": "9".repeat(40),
                    "head": {"ref": "speed", "sha": "3".repeat(40), "repo": {"clone_url": "https://gitee.com/fork/app.git"}},
                    "base": {"ref": "master"}}})
        };
        for (action, desc, expected, commit, code_changed) in [
            ("open", "", "open", "3", true),
            ("update", "source_branch_changed", "update", "3", true),
            ("update", "target_branch_changed", "update", "3", false),
            ("merge", "", "merge", "9", false),
            ("close", "", "close", "3", false),
        ] {
            let event = parse_event(Forge::Gitee, "Merge Request Hook", &mr(action, desc))
                .unwrap_or_else(|err| panic!("{action}: {err:?}"));
            assert_eq!(
                (
                    event.kind,
                    event.action.as_str(),
                    event.commit.clone(),
                    event.code_changed
                ),
                (
                    EventKind::MergeRequest,
                    expected,
                    commit.repeat(40),
                    code_changed
                ),
                "{action} {desc}"
            );
            assert_eq!(
                (
                    event.branch.as_str(),
                    event.source_branch.as_str(),
                    event.merge_id.as_str()
                ),
                ("master", "speed", "5")
            );
        }
        assert!(matches!(
            parse_event(
                Forge::Gitee,
                "Note Hook",
                &json!({"hook_name": "note_hooks"})
            ),
            Err(NotAnEvent::Ignored(_))
        ));

        // CodeArts Repo sends GitLab's payloads under its own headers.
        let headers = headers(&[
            ("x-repo-event", "Merge Request Hook"),
            ("x-repo-token", "tok"),
        ]);
        assert_eq!(Forge::detect(&headers), Some(Forge::CodeArts));
        let mr = json!({"object_kind": "merge_request", "user": {"username": "repo-user"},
            "project": {"git_http_url": "https://codehub.example.com/team/app.git", "git_ssh_url": "git@codehub.example.com:team/app.git"},
            "object_attributes": {"iid": 3, "action": "update", "oldrev": "4".repeat(40), "source_branch": "topic",
                "target_branch": "master", "last_commit": {"id": "5".repeat(40), "message": "topic work"},
                "source": {"git_http_url": "https://codehub.example.com/team/app.git"}}});
        let event = parse_event(Forge::CodeArts, "Merge Request Hook", &mr).expect("mr");
        assert_eq!(
            (
                event.action.as_str(),
                event.code_changed,
                event.commit.as_str(),
                event.message.as_str(),
                event.user.as_str()
            ),
            (
                "update",
                true,
                "5".repeat(40).as_str(),
                "topic work",
                "repo-user"
            )
        );
        let mut no_new_commits = mr.clone();
        no_new_commits["object_attributes"]
            .as_object_mut()
            .expect("object")
            .remove("oldrev");
        assert!(
            !parse_event(Forge::CodeArts, "Merge Request Hook", &no_new_commits)
                .expect("mr")
                .code_changed,
            "an update without pushed commits (a title edit)"
        );
    }
}
