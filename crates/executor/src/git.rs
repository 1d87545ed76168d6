//! The git CLI on the server's side: reading a remote's refs (`git ls-remote`) to pin a run to
//! a commit, and the network policy every repository URL passes first (S5).
//!
//! Safety rules (S4, S5):
//! * Arguments are separate argv entries, never a shell line; the URL comes after `--`, and only
//!   fully qualified ref names (`refs/heads/…`, `refs/tags/…`, `HEAD`) are passed as patterns.
//! * Only `https`, `http`, `ssh` (also scp-like `user@host:path`) and `git` URLs are accepted;
//!   `file`, `ext` and local paths never are, and `GIT_ALLOW_PROTOCOL` holds git to the same list.
//! * The host is resolved before git runs; a loopback, private, link-local, shared, multicast or
//!   unspecified address (cloud metadata services live there) is refused unless the operator
//!   allows private networks or lists the host. The address checked is the address used: git is
//!   pinned to it (`http.curloptResolve` for HTTP(S), the address in the URL for `git://`,
//!   `HostName` for SSH), so a second DNS answer cannot point it elsewhere.
//! * git runs with an empty environment (plus `PATH`), no system or global configuration, no
//!   terminal prompts, and a time limit. Credentials travel in the environment
//!   (`GIT_CONFIG_*`, an SSH key in a private temporary file), never in argv or URLs.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use tokio::process::Command;

/// Protocols git may use at all (`GIT_ALLOW_PROTOCOL`), also for submodules and redirects.
pub const ALLOWED_PROTOCOLS: &str = "https:http:ssh:git";

/// Which hosts repository URLs may point at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkPolicy {
    /// Allow loopback, private and link-local addresses (`security.allow_private_networks`).
    pub allow_private_networks: bool,
    /// Hosts allowed whatever they resolve to: exact names (case-insensitive) or `*.suffix`.
    pub allowed_hosts: Vec<String>,
}

/// Credentials for a remote. `Debug` shows no secret.
#[derive(Clone, PartialEq, Eq)]
pub enum GitCredential {
    /// HTTP(S) basic authentication with an access token.
    Token { username: String, token: String },
    /// An SSH private key, with optional `known_hosts` lines (empty: accept a new host key).
    SshKey {
        private_key: String,
        known_hosts: String,
    },
}

impl std::fmt::Debug for GitCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GitCredential::Token { username, .. } => f
                .debug_struct("Token")
                .field("username", username)
                .field("token", &"…")
                .finish(),
            GitCredential::SshKey { .. } => f.write_str("SshKey(…)"),
        }
    }
}

/// One line of `git ls-remote`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRef {
    pub name: String,
    pub oid: String,
    /// For `HEAD` with `--symref`: the branch it points at (`refs/heads/main`).
    pub symref_target: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GitError {
    /// The URL is not one git may fetch from (scheme, syntax, or the network policy).
    #[error("repository URL refused: {0}")]
    Refused(String),
    /// git could not reach or read the repository; the text is git's, without credentials.
    #[error("git failed: {0}")]
    Failed(String),
}

/// A parsed repository URL.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RemoteUrl {
    scheme: &'static str,
    host: String,
    port: u16,
    /// The URL as git should see it (normalized for scp-like SSH URLs).
    url: String,
}

/// Runs git for the server. Cheap to clone.
#[derive(Debug, Clone)]
pub struct GitCli {
    policy: NetworkPolicy,
    git: PathBuf,
    timeout: Duration,
}

impl GitCli {
    pub fn new(policy: NetworkPolicy) -> GitCli {
        GitCli {
            policy,
            git: PathBuf::from("git"),
            timeout: Duration::from_secs(30),
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> GitCli {
        self.timeout = timeout;
        self
    }

    pub fn policy(&self) -> &NetworkPolicy {
        &self.policy
    }

    /// Checks that `url` is a repository URL the server may fetch from (S5); resolves its host.
    pub async fn check_url(&self, url: &str) -> Result<(), GitError> {
        self.checked(url).await.map(|_| ())
    }

    async fn checked(&self, url: &str) -> Result<(RemoteUrl, Option<IpAddr>), GitError> {
        let remote = parse_url(url)?;
        if host_allowed(&self.policy.allowed_hosts, &remote.host) {
            return Ok((remote, None));
        }
        let addresses: Vec<SocketAddr> =
            tokio::net::lookup_host((remote.host.trim_matches(['[', ']']), remote.port))
                .await
                .map_err(|err| {
                    GitError::Refused(format!("cannot resolve host `{}`: {err}", remote.host))
                })?
                .collect();
        let Some(first) = addresses.first() else {
            return Err(GitError::Refused(format!(
                "host `{}` has no address",
                remote.host
            )));
        };
        if !self.policy.allow_private_networks
            && let Some(bad) = addresses.iter().find(|address| is_internal(address.ip()))
        {
            return Err(GitError::Refused(format!(
                "host `{}` resolves to {}, a loopback, private, link-local or otherwise internal address; \
                 an operator may allow it (security.allow_private_networks or security.allowed_hosts)",
                remote.host,
                bad.ip()
            )));
        }
        Ok((remote, Some(first.ip())))
    }

    /// `git ls-remote` of `patterns` (fully qualified ref names or `HEAD`); `HEAD` is asked for
    /// with `--symref`, so its branch is known.
    pub async fn ls_remote(
        &self,
        url: &str,
        credential: Option<&GitCredential>,
        patterns: &[String],
    ) -> Result<Vec<RemoteRef>, GitError> {
        for pattern in patterns {
            if pattern != "HEAD" && !is_full_ref(pattern) {
                return Err(GitError::Refused(format!(
                    "`{pattern}` is not a fully qualified ref name"
                )));
            }
        }
        let (remote, pinned) = self.checked(url).await?;
        let mut command = Command::new(&self.git);
        let mut env: Vec<(String, String)> = Vec::new();
        let mut configs: Vec<(String, String)> = Vec::new();
        let mut url_for_git = remote.url.clone();
        let mut key_file: Option<tempfile_guard::TempKey> = None;
        if let Some(ip) = pinned {
            match remote.scheme {
                "https" | "http" => configs.push((
                    "http.curloptResolve".to_owned(),
                    format!("{}:{}:{}", remote.host, remote.port, bracketed(ip)),
                )),
                "git" => url_for_git = replace_host(&remote.url, &remote.host, &bracketed(ip)),
                _ => {}
            }
        }
        let mut ssh_options = Vec::new();
        if remote.scheme == "ssh" {
            ssh_options.push("-o BatchMode=yes".to_owned());
            if let Some(ip) = pinned {
                ssh_options.push(format!("-o HostName={ip}"));
            }
        }
        match credential {
            Some(GitCredential::Token { username, token }) => {
                let user = if username.is_empty() {
                    "oauth2"
                } else {
                    username
                };
                let basic =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{token}"));
                configs.push((
                    format!(
                        "http.{}://{}/.extraHeader",
                        remote.scheme,
                        authority(&remote)
                    ),
                    format!("Authorization: Basic {basic}"),
                ));
            }
            Some(GitCredential::SshKey {
                private_key,
                known_hosts,
            }) => {
                let key = tempfile_guard::TempKey::write(private_key, known_hosts)
                    .map_err(|err| GitError::Failed(format!("cannot write the SSH key: {err}")))?;
                ssh_options.push(format!("-i {}", key.key_path.display()));
                ssh_options.push("-o IdentitiesOnly=yes".to_owned());
                match &key.known_hosts_path {
                    Some(path) => {
                        ssh_options.push(format!("-o UserKnownHostsFile={}", path.display()));
                        ssh_options.push("-o StrictHostKeyChecking=yes".to_owned());
                    }
                    None => ssh_options.push("-o StrictHostKeyChecking=accept-new".to_owned()),
                }
                key_file = Some(key);
            }
            None => {}
        }
        if remote.scheme == "ssh" {
            // git runs this through a shell: every part is ours (paths we made, an IP address).
            env.push((
                "GIT_SSH_COMMAND".to_owned(),
                format!("ssh {}", ssh_options.join(" ")),
            ));
        }
        env.push(("GIT_CONFIG_COUNT".to_owned(), configs.len().to_string()));
        for (index, (key, value)) in configs.into_iter().enumerate() {
            env.push((format!("GIT_CONFIG_KEY_{index}"), key));
            env.push((format!("GIT_CONFIG_VALUE_{index}"), value));
        }
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", std::env::temp_dir())
            .env("LC_ALL", "C")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_ALLOW_PROTOCOL", ALLOWED_PROTOCOLS)
            .envs(env)
            .arg("ls-remote");
        if patterns.iter().any(|pattern| pattern == "HEAD") {
            command.arg("--symref");
        }
        // An annotated tag's commit is on its peeled line, which git lists only when asked.
        let peeled = patterns
            .iter()
            .filter(|pattern| pattern.starts_with("refs/tags/"))
            .map(|pattern| format!("{pattern}^{{}}"));
        command
            .arg("--")
            .arg(&url_for_git)
            .args(patterns)
            .args(peeled)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let output = tokio::time::timeout(self.timeout, command.output())
            .await
            .map_err(|_| {
                GitError::Failed(format!("git ls-remote took longer than {:?}", self.timeout))
            })?
            .map_err(|err| GitError::Failed(format!("cannot run git: {err}")))?;
        drop(key_file);
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let first = stderr
                .lines()
                .find(|line| !line.trim().is_empty())
                .unwrap_or("no output");
            return Err(GitError::Failed(first.chars().take(300).collect()));
        }
        Ok(parse_ls_remote(&String::from_utf8_lossy(&output.stdout))
            .into_iter()
            .filter(|line| {
                patterns.is_empty() || patterns.iter().any(|pattern| matches_ref(pattern, line))
            })
            .collect())
    }
}

/// `ls-remote` patterns match ref name tails; keep only the exact names asked for (and the
/// peeled `^{}` lines of tags).
fn matches_ref(pattern: &str, line: &RemoteRef) -> bool {
    line.name == pattern || line.name.strip_suffix("^{}") == Some(pattern)
}

fn parse_ls_remote(text: &str) -> Vec<RemoteRef> {
    let mut refs: Vec<RemoteRef> = Vec::new();
    let mut symrefs: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("ref: ") {
            if let Some((target, name)) = rest.split_once('\t') {
                symrefs.push((name.to_owned(), target.to_owned()));
            }
            continue;
        }
        if let Some((oid, name)) = line.split_once('\t') {
            refs.push(RemoteRef {
                name: name.to_owned(),
                oid: oid.to_owned(),
                symref_target: None,
            });
        }
    }
    for reference in &mut refs {
        reference.symref_target = symrefs
            .iter()
            .find(|(name, _)| *name == reference.name)
            .map(|(_, target)| target.clone());
    }
    refs
}

/// `refs/…` with every component valid per `git check-ref-format` (conservatively).
pub fn is_full_ref(name: &str) -> bool {
    name.strip_prefix("refs/")
        .is_some_and(|rest| !rest.is_empty() && rest.split('/').all(is_valid_ref_component))
}

/// One `/`-separated component of a ref name: no leading `-` or `.`, no `..`, no control or
/// special characters, not ending in `.lock` or `.`.
pub fn is_valid_ref_component(component: &str) -> bool {
    !component.is_empty()
        && !component.starts_with(['-', '.'])
        && !component.ends_with(".lock")
        && !component.ends_with('.')
        && !component.contains("..")
        && !component.contains("@{")
        && component.chars().all(|c| {
            !c.is_control()
                && !c.is_whitespace()
                && !matches!(
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
        })
}

fn parse_url(url: &str) -> Result<RemoteUrl, GitError> {
    let refuse = |why: &str| GitError::Refused(why.to_owned());
    if url.is_empty() || url.len() > 2048 {
        return Err(refuse("the URL is empty or too long"));
    }
    if url.starts_with('-') || url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(refuse(
            "the URL must not start with `-` or contain spaces or control characters",
        ));
    }
    if !url.contains("://") {
        if url.contains("::") {
            return Err(refuse(
                "remote-helper URLs (`transport::address`) are not allowed",
            ));
        }
        // scp-like SSH: [user@]host:path (a path without a host is a local path: refused).
        let (authority, path) = url.split_once(':').ok_or_else(|| {
            refuse("not a URL (expected https://, ssh://, git:// or user@host:path)")
        })?;
        let host = authority
            .rsplit_once('@')
            .map_or(authority, |(_, host)| host);
        if host.is_empty() || path.is_empty() || host.contains('/') || !is_host_name(host) {
            return Err(refuse(
                "not a URL (expected https://, ssh://, git:// or user@host:path)",
            ));
        }
        return Ok(RemoteUrl {
            scheme: "ssh",
            host: host.to_ascii_lowercase(),
            port: 22,
            url: url.to_owned(),
        });
    }
    let parsed =
        url::Url::parse(url).map_err(|err| GitError::Refused(format!("not a URL: {err}")))?;
    let (scheme, default_port) = match parsed.scheme() {
        "https" => ("https", 443),
        "http" => ("http", 80),
        "ssh" | "git+ssh" | "ssh+git" => ("ssh", 22),
        "git" => ("git", 9418),
        other => {
            return Err(GitError::Refused(format!(
                "the `{other}` scheme is not allowed; use https, http, ssh or git"
            )));
        }
    };
    let host = parsed
        .host_str()
        .filter(|host| !host.is_empty())
        .ok_or_else(|| refuse("the URL has no host"))?;
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(refuse("the URL must not have a query or a fragment"));
    }
    if scheme != "ssh" && parsed.password().is_some() {
        return Err(refuse(
            "put credentials in a service endpoint, not in the URL",
        ));
    }
    Ok(RemoteUrl {
        scheme,
        host: host.to_ascii_lowercase(),
        port: parsed.port().unwrap_or(default_port),
        url: url.to_owned(),
    })
}

fn is_host_name(host: &str) -> bool {
    host.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '[' | ']' | ':'))
        && !host.starts_with('-')
}

fn host_allowed(allowed: &[String], host: &str) -> bool {
    let host = host.trim_matches(['[', ']']);
    allowed.iter().any(|entry| {
        let entry = entry.trim().to_ascii_lowercase();
        match entry.strip_prefix("*.") {
            Some(suffix) => host.len() > suffix.len() + 1 && host.ends_with(&format!(".{suffix}")),
            None => !entry.is_empty() && entry.trim_matches(['[', ']']) == host,
        }
    })
}

/// Addresses a server must not be made to fetch from (S5).
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_internal_v4(ip),
        IpAddr::V6(ip) => {
            if let Some(mapped) = ip.to_ipv4_mapped() {
                return is_internal_v4(mapped);
            }
            let first = ip.segments()[0];
            ip.is_loopback()
                || ip.is_unspecified()
                || ip.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local (fd00:ec2::254 is a metadata service)
                || (first & 0xffc0) == 0xfe80 // link-local
                || (first & 0xffc0) == 0xfec0 // site-local (deprecated)
                || ip.segments()[..6] == [0, 0, 0, 0, 0, 0] // IPv4-compatible
                || (first == 0x0064 && ip.segments()[1] == 0xff9b) // NAT64
                || first == 0x2002 // 6to4 may embed an internal IPv4 address
        }
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254.0.0/16, cloud metadata services
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (carrier-grade NAT)
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240 // reserved
}

fn bracketed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
    }
}

fn authority(remote: &RemoteUrl) -> String {
    let host = if remote.host.contains(':') && !remote.host.starts_with('[') {
        format!("[{}]", remote.host)
    } else {
        remote.host.clone()
    };
    let default = match remote.scheme {
        "https" => 443,
        "http" => 80,
        _ => 0,
    };
    if remote.port == default {
        host
    } else {
        format!("{host}:{}", remote.port)
    }
}

/// `git://host…` with the host replaced (the first occurrence after the scheme).
fn replace_host(url: &str, host: &str, with: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let lowered = authority.to_ascii_lowercase();
    match lowered.rfind(host) {
        Some(at) => format!(
            "{scheme}://{}{with}{}{path}",
            &authority[..at],
            &authority[at + host.len()..]
        ),
        None => url.to_owned(),
    }
}

/// A private directory holding an SSH key (and known hosts) for one git command; removed on drop.
mod tempfile_guard {
    use std::io::Write as _;
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    use std::path::PathBuf;

    pub(super) struct TempKey {
        dir: PathBuf,
        pub(super) key_path: PathBuf,
        pub(super) known_hosts_path: Option<PathBuf>,
    }

    impl TempKey {
        pub(super) fn write(key: &str, known_hosts: &str) -> std::io::Result<TempKey> {
            let dir = std::env::temp_dir().join(format!("runnel-git-{}", uuid::Uuid::new_v4()));
            std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
            let guard = TempKey {
                key_path: dir.join("key"),
                known_hosts_path: (!known_hosts.trim().is_empty()).then(|| dir.join("known_hosts")),
                dir,
            };
            let write = |path: &PathBuf, text: &str| -> std::io::Result<()> {
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)?;
                file.write_all(text.as_bytes())?;
                if !text.ends_with('\n') {
                    file.write_all(b"\n")?;
                }
                Ok(())
            };
            write(&guard.key_path, key)?;
            if let Some(path) = &guard.known_hosts_path {
                write(path, known_hosts)?;
            }
            Ok(guard)
        }
    }

    impl Drop for TempKey {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_parsed_and_refused_by_scheme_and_syntax() {
        let ok = |url: &str| parse_url(url).expect(url);
        assert_eq!(ok("https://git.example.com/a/b.git").port, 443);
        assert_eq!(ok("git://127.0.0.1:9419/repo.git").port, 9419);
        assert_eq!(ok("git@github.com:team/app.git").host, "github.com");
        assert_eq!(ok("ssh://git@Host.example:2222/x").host, "host.example");
        for bad in [
            "file:///etc",
            "/srv/repo.git",
            "ext::sh -c touch% /tmp/pwned",
            "-uhttps://x",
            "--upload-pack=touch /tmp/x",
            "https://user:pw@example.com/a.git",
            "https://example.com/a.git?x=1",
            "https://exa mple.com/a.git",
            "ext::ssh",
            "./repo:x",
        ] {
            assert!(parse_url(bad).is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn internal_addresses_are_recognised() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            assert!(is_internal(internal.parse().expect("ip")), "{internal}");
        }
        for public in ["140.82.121.3", "8.8.8.8", "2606:4700::6810:84e5"] {
            assert!(!is_internal(public.parse().expect("ip")), "{public}");
        }
    }

    #[test]
    fn the_allowlist_matches_exact_hosts_and_suffixes() {
        let list = vec!["git.internal".to_owned(), "*.corp.example".to_owned()];
        assert!(host_allowed(&list, "git.internal"));
        assert!(host_allowed(&list, "a.corp.example"));
        assert!(!host_allowed(&list, "corp.example"));
        assert!(!host_allowed(&list, "evilcorp.example"));
        assert!(!host_allowed(&list, "git.internal.evil.com"));
    }

    #[test]
    fn ref_names_that_could_be_options_or_syntax_are_refused() {
        assert!(is_full_ref("refs/heads/feature/login"));
        assert!(is_full_ref("refs/tags/v1.2.3"));
        for bad in [
            "refs/heads/-x",
            "refs/heads/--upload-pack=x",
            "refs/heads/a..b",
            "refs/heads/$(id)",
            "refs/heads/a;b",
            "refs/heads/a b",
            "refs/heads/.hidden",
            "refs/heads/x.lock",
            "heads/main",
            "-refs/heads/x",
            "refs/heads/",
            "refs/heads/a`b`",
        ] {
            assert!(!is_full_ref(bad), "{bad} must be refused");
        }
    }

    #[test]
    fn ls_remote_output_is_parsed_with_symrefs_and_peeled_tags() {
        let text = "ref: refs/heads/main\tHEAD\nabc\tHEAD\nabc\trefs/heads/main\ndef\trefs/tags/v1\n123\trefs/tags/v1^{}\n";
        let refs = parse_ls_remote(text);
        assert_eq!(refs[0].symref_target.as_deref(), Some("refs/heads/main"));
        assert!(matches_ref("refs/tags/v1", &refs[3]));
        assert!(!matches_ref("refs/heads/v1", &refs[3]));
    }

    #[test]
    fn git_urls_are_pinned_to_the_checked_address() {
        assert_eq!(
            replace_host("git://Example.com:9418/r.git", "example.com", "1.2.3.4"),
            "git://1.2.3.4:9418/r.git"
        );
    }

    #[tokio::test]
    async fn private_hosts_are_refused_unless_allowed() {
        let strict = GitCli::new(NetworkPolicy::default());
        let err = strict
            .check_url("git://127.0.0.1:9/repo.git")
            .await
            .expect_err("loopback refused");
        assert!(err.to_string().contains("127.0.0.1"), "{err}");
        assert!(strict.check_url("https://localhost/x.git").await.is_err());
        let open = GitCli::new(NetworkPolicy {
            allow_private_networks: true,
            allowed_hosts: Vec::new(),
        });
        open.check_url("git://127.0.0.1:9/repo.git")
            .await
            .expect("allowed");
        let listed = GitCli::new(NetworkPolicy {
            allow_private_networks: false,
            allowed_hosts: vec!["localhost".to_owned()],
        });
        listed
            .check_url("https://localhost/x.git")
            .await
            .expect("listed");
    }
}
