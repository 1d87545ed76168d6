//! The code sources of a run (spec §5.1 `sources`, §13 `CodeSource`): which repository, which
//! branch or tag, and the commit it is pinned to when the run is created.
//!
//! A run's sources are stored as the pipeline's sources overlaid with the run's choices, each
//! with `params.build_params` (`build_type`, `target_branch`, `tag`, `commit_id`, …). Creating
//! a run validates every branch and tag name (S4: nothing that git or a shell could read as an
//! option or syntax) and, when a [`GitRemote`] is configured and no commit was given, resolves
//! the branch or tag with `git ls-remote` and records the commit. The engine runs no process:
//! the server hands it a [`GitRemote`] backed by the git CLI.

use crate::config::EngineError;
use runnel_domain::params::SourceInfo;
use runnel_store::{EndpointKind, EndpointStore, Store};
use serde_json::{Map, Value, json};
use std::fmt;
use std::future::Future;
use std::pin::Pin;

/// A boxed future, for the object-safe [`GitRemote`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Reads remote repositories for the engine (the server implements it with the git CLI).
pub trait GitRemote: Send + Sync + 'static {
    /// Whether the server may fetch from `url` (S5); the error says why not.
    fn check_url<'a>(&'a self, url: &'a str) -> BoxFuture<'a, Result<(), String>>;

    /// The refs of `url` named in `patterns` (fully qualified names, or `HEAD` with its target).
    fn ls_remote<'a>(
        &'a self,
        url: &'a str,
        credential: Option<&'a GitCredential>,
        patterns: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<RemoteRef>, String>>;
}

/// Credentials of a service endpoint. `Debug` shows no secret.
#[derive(Clone, PartialEq, Eq)]
pub enum GitCredential {
    Token {
        username: String,
        token: String,
    },
    SshKey {
        private_key: String,
        known_hosts: String,
    },
}

impl fmt::Debug for GitCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GitCredential::Token { username, .. } => f
                .debug_struct("Token")
                .field("username", username)
                .finish_non_exhaustive(),
            GitCredential::SshKey { .. } => f.write_str("SshKey(…)"),
        }
    }
}

/// One ref of a remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRef {
    pub name: String,
    pub oid: String,
    pub symref_target: Option<String>,
}

/// What a source runs: a branch, a tag, or the remote's default branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Revision {
    Branch(String),
    Tag(String),
    Default,
}

/// A code source of a run, read from its stored JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CodeSource {
    pub(crate) alias: String,
    pub(crate) git_type: String,
    pub(crate) url: String,
    pub(crate) repo_name: String,
    pub(crate) endpoint_id: Option<String>,
    pub(crate) revision: Revision,
    pub(crate) commit_id: String,
    pub(crate) message: String,
    pub(crate) source_branch: String,
    pub(crate) merge_id: String,
    /// `clone_depth` of the source (0: the whole history); default 1.
    pub(crate) depth: u32,
    /// `submodules`: `false`, `true` or `recursive`.
    pub(crate) submodules: Submodules,
    /// `checkout: false` turns the implicit checkout of this source off.
    pub(crate) implicit_checkout: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Submodules {
    No,
    Yes,
    Recursive,
}

impl Submodules {
    pub(crate) fn parse(value: &Value) -> Option<Submodules> {
        match value {
            Value::Bool(false) => Some(Submodules::No),
            Value::Bool(true) => Some(Submodules::Yes),
            Value::String(text) => match text.trim().to_ascii_lowercase().as_str() {
                "" | "false" | "no" | "none" => Some(Submodules::No),
                "true" | "yes" => Some(Submodules::Yes),
                "recursive" => Some(Submodules::Recursive),
                _ => None,
            },
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Submodules::No => "false",
            Submodules::Yes => "true",
            Submodules::Recursive => "recursive",
        }
    }
}

impl CodeSource {
    /// A `code` source with a `git_url`; `None` for artifact sources and sources without a URL.
    pub(crate) fn read(source: &Value) -> Result<Option<CodeSource>, String> {
        let kind = source.get("type").and_then(Value::as_str).unwrap_or("code");
        let empty = Map::new();
        let params = source
            .get("params")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let text = |map: &Map<String, Value>, key: &str| {
            map.get(key)
                .and_then(Value::as_str)
                .map(str::trim)
                .unwrap_or_default()
                .to_owned()
        };
        let url = text(params, "git_url");
        if kind != "code" || url.is_empty() {
            return Ok(None);
        }
        let build = params
            .get("build_params")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let revision = match text(build, "build_type").as_str() {
            "tag" => {
                let tag = strip_prefix_ref(&text(build, "tag"), "refs/tags/");
                if tag.is_empty() {
                    return Err("a tag run needs build_params.tag".to_owned());
                }
                check_ref_name(&tag).map_err(|why| format!("tag `{tag}`: {why}"))?;
                Revision::Tag(tag)
            }
            "" | "branch" => {
                let mut branch = strip_prefix_ref(&text(build, "target_branch"), "refs/heads/");
                if branch.is_empty() {
                    branch = strip_prefix_ref(&text(params, "default_branch"), "refs/heads/");
                }
                if branch.is_empty() {
                    Revision::Default
                } else {
                    check_ref_name(&branch).map_err(|why| format!("branch `{branch}`: {why}"))?;
                    Revision::Branch(branch)
                }
            }
            other => return Err(format!("build_type `{other}` is neither branch nor tag")),
        };
        let source_branch = strip_prefix_ref(&text(build, "source_branch"), "refs/heads/");
        if !source_branch.is_empty() {
            check_ref_name(&source_branch)
                .map_err(|why| format!("source branch `{source_branch}`: {why}"))?;
        }
        let merge_id = text(build, "merge_id");
        if !merge_id.chars().all(|c| c.is_ascii_digit()) || merge_id.len() > 20 {
            return Err(format!("merge_id `{merge_id}` is not a number"));
        }
        let commit_id = text(build, "commit_id").to_ascii_lowercase();
        if !commit_id.is_empty() && !is_commit_id(&commit_id) {
            return Err(format!("commit_id `{commit_id}` is not a commit id"));
        }
        let depth = match params.get("clone_depth") {
            None | Some(Value::Null) => 1,
            Some(value) => parse_depth(value).ok_or("clone_depth must be a whole number from 0")?,
        };
        let submodules = match params.get("submodules") {
            None | Some(Value::Null) => Submodules::No,
            Some(value) => {
                Submodules::parse(value).ok_or("submodules must be false, true or recursive")?
            }
        };
        let mut repo_name = text(params, "repo_name");
        if repo_name.is_empty() {
            repo_name = repo_name_of(&url);
        }
        Ok(Some(CodeSource {
            alias: text(params, "alias"),
            git_type: text(params, "git_type"),
            repo_name,
            endpoint_id: Some(text(params, "endpoint_id")).filter(|id| !id.is_empty()),
            revision,
            commit_id,
            message: text(build, "message"),
            source_branch,
            merge_id,
            depth,
            submodules,
            implicit_checkout: params.get("checkout") != Some(&Value::Bool(false)),
            url,
        }))
    }

    /// The fully qualified ref the source runs (`refs/heads/…`, `refs/tags/…`), `HEAD` for the
    /// default branch.
    pub(crate) fn full_ref(&self) -> String {
        match &self.revision {
            Revision::Branch(branch) => format!("refs/heads/{branch}"),
            Revision::Tag(tag) => format!("refs/tags/{tag}"),
            Revision::Default => "HEAD".to_owned(),
        }
    }

    /// Where a merge request's head lives in the target repository, by forge.
    pub(crate) fn merge_request_ref(&self) -> Option<String> {
        if self.merge_id.is_empty() {
            return None;
        }
        Some(match self.git_type.as_str() {
            "gitlab" | "codehub" | "gitcode" => {
                format!("refs/merge-requests/{}/head", self.merge_id)
            }
            _ => format!("refs/pull/{}/head", self.merge_id),
        })
    }

    /// The predefined-parameter view of this source.
    pub(crate) fn info(&self) -> SourceInfo {
        let (target_branch, tag) = match &self.revision {
            Revision::Branch(branch) => (branch.clone(), String::new()),
            Revision::Tag(tag) => (String::new(), tag.clone()),
            Revision::Default => (String::new(), String::new()),
        };
        SourceInfo {
            alias: self.alias.clone(),
            repo_name: self.repo_name.clone(),
            repo_url: self.url.clone(),
            commit_id: self.commit_id.clone(),
            commit_message: self.message.clone(),
            source_branch: self.source_branch.clone(),
            target_branch,
            tag,
            merge_id: self.merge_id.clone(),
            repo_type: self.git_type.clone(),
        }
    }
}

/// Checks a branch or tag name (without `refs/heads/` or `refs/tags/`): what git accepts, minus
/// anything a shell or git's option parser could read as code (S4).
pub fn check_ref_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the name is empty".to_owned());
    }
    if name.len() > 255 {
        return Err("the name is longer than 255 bytes".to_owned());
    }
    if name == "HEAD" || name.starts_with('-') || name.starts_with('/') || name.ends_with('/') {
        return Err("the name must not be HEAD or start with `-` or `/`".to_owned());
    }
    for component in name.split('/') {
        check_ref_component(component)?;
    }
    Ok(())
}

fn check_ref_component(component: &str) -> Result<(), String> {
    if component.is_empty() {
        return Err("the name has an empty path component (`//`)".to_owned());
    }
    if component.starts_with(['-', '.']) {
        return Err("a path component starts with `-` or `.`".to_owned());
    }
    if component.ends_with(".lock") || component.ends_with('.') {
        return Err("a path component ends with `.lock` or `.`".to_owned());
    }
    if component.contains("..") || component.contains("@{") {
        return Err("the name contains `..` or `@{`".to_owned());
    }
    if let Some(bad) = component.chars().find(|c| {
        c.is_control()
            || c.is_whitespace()
            || matches!(
                c,
                '~' | '^'
                    | ':'
                    | '?'
                    | '*'
                    | '['
                    | '\\'
                    | '$'
                    | '`'
                    | '\''
                    | '"'
                    | ';'
                    | '|'
                    | '&'
                    | '<'
                    | '>'
                    | '('
                    | ')'
                    | '{'
                    | '}'
                    | '!'
                    | '#'
            )
    }) {
        return Err(format!("the character {bad:?} is not allowed"));
    }
    Ok(())
}

/// 40 (SHA-1) or 64 (SHA-256) lowercase hexadecimal digits.
pub fn is_commit_id(text: &str) -> bool {
    (text.len() == 40 || text.len() == 64)
        && text
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
}

fn strip_prefix_ref(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix).unwrap_or(name).to_owned()
}

fn parse_depth(value: &Value) -> Option<u32> {
    match value {
        Value::Number(number) => number.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// `team/app.git` → `app`.
pub(crate) fn repo_name_of(url: &str) -> String {
    let path = url.trim_end_matches('/');
    let last = path.rsplit(['/', ':']).next().unwrap_or(path);
    last.strip_suffix(".git").unwrap_or(last).to_owned()
}

/// The credential of a source's service endpoint, from the pipeline's project.
pub(crate) async fn credential(
    store: &Store,
    project_id: &str,
    endpoint_id: Option<&str>,
) -> Result<Option<GitCredential>, EngineError> {
    let Some(endpoint_id) = endpoint_id else {
        return Ok(None);
    };
    let found = store
        .endpoint_credential(project_id, endpoint_id)
        .await?
        .ok_or_else(|| {
            EngineError::Invalid(format!("service endpoint `{endpoint_id}` does not exist"))
        })?;
    Ok(Some(match found.endpoint.kind {
        EndpointKind::Token => GitCredential::Token {
            username: found.endpoint.username,
            token: found.secret,
        },
        EndpointKind::SshKey => GitCredential::SshKey {
            private_key: found.secret,
            known_hosts: found.endpoint.known_hosts,
        },
    }))
}

/// Validates a run's sources and pins each code source to a commit: a given `commit_id` is
/// kept, otherwise the branch or tag (the default branch when none) is resolved with
/// `git ls-remote` when `git` is set. Returns the sources with `build_params.commit_id` (and
/// `target_branch` for a default-branch run) filled in, and their parameter views.
pub(crate) async fn pin_sources(
    store: &Store,
    git: Option<&dyn GitRemote>,
    project_id: &str,
    sources: &Value,
) -> Result<(Value, Vec<SourceInfo>), EngineError> {
    let Some(items) = sources.as_array() else {
        return Ok((json!([]), Vec::new()));
    };
    let mut pinned = Vec::with_capacity(items.len());
    let mut infos = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let invalid = |why: String| EngineError::Invalid(format!("sources[{index}]: {why}"));
        let Some(mut source) = CodeSource::read(item).map_err(invalid)? else {
            pinned.push(item.clone());
            continue;
        };
        let mut item = item.clone();
        if source.commit_id.is_empty()
            && let Some(git) = git
        {
            git.check_url(&source.url).await.map_err(invalid)?;
            let credential = credential(store, project_id, source.endpoint_id.as_deref()).await?;
            let wanted = source.full_ref();
            let patterns = vec![wanted.clone()];
            let refs = git
                .ls_remote(&source.url, credential.as_ref(), &patterns)
                .await
                .map_err(|why| invalid(format!("cannot read {}: {why}", source.url)))?;
            let peeled = format!("{wanted}^{{}}");
            let found = refs
                .iter()
                .find(|found| found.name == peeled)
                .or_else(|| refs.iter().find(|found| found.name == wanted))
                .ok_or_else(|| {
                    invalid(match &source.revision {
                        Revision::Branch(branch) => {
                            format!("branch `{branch}` does not exist in {}", source.url)
                        }
                        Revision::Tag(tag) => {
                            format!("tag `{tag}` does not exist in {}", source.url)
                        }
                        Revision::Default => format!("{} has no default branch", source.url),
                    })
                })?;
            source.commit_id = found.oid.to_ascii_lowercase();
            if !is_commit_id(&source.commit_id) {
                return Err(invalid(
                    "the remote answered an invalid commit id".to_owned(),
                ));
            }
            if source.revision == Revision::Default
                && let Some(branch) = found
                    .symref_target
                    .as_deref()
                    .and_then(|target| target.strip_prefix("refs/heads/"))
                && check_ref_name(branch).is_ok()
            {
                source.revision = Revision::Branch(branch.to_owned());
            }
        }
        if let Some(params) = item.get_mut("params").and_then(Value::as_object_mut) {
            let build = params.entry("build_params").or_insert_with(|| json!({}));
            if !build.is_object() {
                *build = json!({});
            }
            build["commit_id"] = json!(source.commit_id);
            if build.get("build_type").is_none_or(Value::is_null) {
                build["build_type"] = json!("branch");
            }
            if let Revision::Branch(branch) = &source.revision
                && build.get("target_branch").is_none_or(|value| {
                    value.is_null() || value.as_str().is_some_and(str::is_empty)
                })
            {
                build["target_branch"] = json!(branch);
            }
        }
        infos.push(source.info());
        pinned.push(item);
    }
    Ok((Value::Array(pinned), infos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_and_tag_names_that_could_become_code_are_refused() {
        for good in [
            "main",
            "feature/login",
            "release-1.2",
            "v1.0.0",
            "user_x/fix+y",
        ] {
            assert!(check_ref_name(good).is_ok(), "{good}");
        }
        for bad in [
            "-x",
            "--upload-pack=touch /tmp/pwned",
            "a..b",
            "$(id)",
            "`id`",
            "a;b",
            "a b",
            "a|b",
            "x/.hidden",
            "x.lock",
            "HEAD",
            "a//b",
            "trailing/",
            "a\nb",
            "a@{1}",
            "",
        ] {
            assert!(check_ref_name(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn sources_are_read_with_their_revision() {
        let source = json!({"type": "code", "params": {"alias": "app", "git_url": "https://x.example/team/app.git",
            "default_branch": "main", "build_params": {"build_type": "tag", "tag": "v1"}}});
        let read = CodeSource::read(&source).expect("valid").expect("code");
        assert_eq!(read.revision, Revision::Tag("v1".to_owned()));
        assert_eq!(read.full_ref(), "refs/tags/v1");
        assert_eq!(read.repo_name, "app");
        let bad = json!({"params": {"git_url": "https://x/a.git", "build_params": {"target_branch": "--help"}}});
        assert!(CodeSource::read(&bad).is_err());
        let bad_commit = json!({"params": {"git_url": "https://x/a.git", "build_params": {"commit_id": "HEAD~1"}}});
        assert!(CodeSource::read(&bad_commit).is_err());
        let artifact = json!({"type": "artifact", "params": {"git_url": "https://x/a.git"}});
        assert_eq!(CodeSource::read(&artifact).expect("valid"), None);
    }
}
