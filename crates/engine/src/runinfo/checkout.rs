//! Checking out a run's sources in a job's workspace: the `official_git_clone` step, and the
//! implicit checkout before a job's first shell step.
//!
//! Both run [`CHECKOUT_SCRIPT`], a fixed bash program that reads everything from `RUNNEL_GIT_*`
//! environment values (S4: branch names, URLs and paths are data, validated by the engine and
//! again by the script; refs are fully qualified and never read as options). So the checkout is
//! an ordinary shell step for every executor and agent: logged, masked, timed out and
//! cancelled like the user's steps.
//!
//! * `official_git_clone` inputs (all optional): `repo` (a source alias or repository name;
//!   default the first code source), `depth` (0 = whole history; default the source's
//!   `clone_depth`, else 1), `submodule` (`false`, `true`, `recursive`), `path` (a directory
//!   relative to the workspace; default the workspace itself).
//! * Implicit checkout: a job without an `official_git_clone` step checks out every code source
//!   whose `checkout` is not `false` before its first shell step, in the same process group:
//!   one source into the workspace itself, several each into a directory named by its alias.
//!   The `RUNNEL_GIT_*` values are unset before the step's own script starts.
//!
//! Credentials (service endpoints) reach git through the environment only: a token as an
//! `Authorization` header scoped to the repository's host (`GIT_CONFIG_*`), an SSH key written
//! to a private temporary file. Both are masked in logs.

use crate::trigger::sources::{CodeSource, GitCredential, Revision};
use base64::Engine as _;
use runnel_domain::prepare::{PreparedJob, PreparedStepKind};
use runnel_domain::spec::{JobIdx, PipelineSpec};
use serde_json::Value;

/// The checkout program (see the module docs).
pub(crate) const CHECKOUT_SCRIPT: &str = include_str!("checkout.sh");

/// The task of the explicit checkout step.
pub(crate) const GIT_CLONE_TASK: &str = "official_git_clone";

/// A code source of the run with what is needed to fetch it.
#[derive(Debug, Clone)]
pub(crate) struct Checkout {
    /// The source key (`source_key`: alias, else repository name).
    pub(crate) key: String,
    pub(crate) source: CodeSource,
    pub(crate) credential: Option<GitCredential>,
}

/// One source to check out in one step.
struct Target<'a> {
    checkout: &'a Checkout,
    dir: String,
    depth: u32,
    submodules: &'static str,
}

/// Turns `official_git_clone` steps into checkout steps and adds the implicit checkout.
pub(crate) fn apply(
    checkouts: &[Checkout],
    spec: &PipelineSpec,
    job: JobIdx,
    prepared: &mut PreparedJob,
) {
    let step_specs = &spec.job(job).steps;
    let mut has_clone_step = false;
    for (index, step) in prepared.steps.iter_mut().enumerate() {
        let PreparedStepKind::Unsupported { task } = &step.kind else {
            continue;
        };
        if task != GIT_CLONE_TASK {
            continue;
        }
        has_clone_step = true;
        let inputs = step_specs
            .get(index)
            .map(|spec| {
                spec.inputs
                    .iter()
                    .map(|input| (input.key.as_str(), &input.value))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        step.kind = PreparedStepKind::Shell {
            script: CHECKOUT_SCRIPT.to_owned(),
        };
        match explicit_target(checkouts, &inputs) {
            Ok(target) => {
                let (env, secrets) = checkout_env(&[target]);
                step.env.extend(env);
                prepared.secrets.extend(secrets);
            }
            Err(message) => step.env.push(("RUNNEL_CHECKOUT_ERROR".to_owned(), message)),
        }
    }
    if has_clone_step {
        return;
    }
    let implicit: Vec<&Checkout> = checkouts
        .iter()
        .filter(|checkout| checkout.source.implicit_checkout)
        .collect();
    if implicit.is_empty() {
        return;
    }
    let Some(step) = prepared
        .steps
        .iter_mut()
        .find(|step| matches!(step.kind, PreparedStepKind::Shell { .. }))
    else {
        return;
    };
    let targets: Vec<Target<'_>> = implicit
        .iter()
        .map(|checkout| Target {
            checkout,
            dir: if implicit.len() == 1 {
                String::new()
            } else {
                checkout.key.clone()
            },
            depth: checkout.source.depth,
            submodules: checkout.source.submodules.as_str(),
        })
        .collect();
    let (env, secrets) = checkout_env(&targets);
    let names: Vec<String> = env
        .iter()
        .map(|(name, _)| name.clone())
        .chain(["RUNNEL_CHECKOUT_SCRIPT".to_owned()])
        .collect();
    if let PreparedStepKind::Shell { script } = &mut step.kind {
        // One line before the step's own first line, so its line numbers stay as written.
        *script = format!(
            "\"$BASH\" --noprofile --norc -c \"$RUNNEL_CHECKOUT_SCRIPT\" runnel-checkout || exit $?; unset {}; {script}",
            names.join(" ")
        );
    }
    step.env.extend(env);
    step.env.push((
        "RUNNEL_CHECKOUT_SCRIPT".to_owned(),
        CHECKOUT_SCRIPT.to_owned(),
    ));
    prepared.secrets.extend(secrets);
}

/// The source and options an `official_git_clone` step asks for.
fn explicit_target<'a>(
    checkouts: &'a [Checkout],
    inputs: &[(&str, &Value)],
) -> Result<Target<'a>, String> {
    let input = |keys: &[&str]| {
        inputs
            .iter()
            .find(|(key, _)| keys.contains(key))
            .map(|(_, value)| *value)
            .filter(|value| !value.is_null() && value.as_str() != Some(""))
    };
    let checkout = match input(&["repo", "alias", "source", "repo_name"]) {
        None => checkouts
            .first()
            .ok_or("the run has no code source to check out")?,
        Some(wanted) => {
            let wanted = value_text(wanted);
            checkouts
                .iter()
                .find(|checkout| {
                    checkout.key == wanted
                        || checkout.source.alias == wanted
                        || checkout.source.repo_name == wanted
                })
                .ok_or_else(|| format!("the run has no source named `{wanted}`"))?
        }
    };
    let depth = match input(&["depth", "clone_depth"]) {
        None => checkout.source.depth,
        Some(value) => value_text(value)
            .trim()
            .parse()
            .map_err(|_| "input `depth` must be a whole number from 0".to_owned())?,
    };
    let submodules = match input(&["submodule", "submodules"]) {
        None => checkout.source.submodules,
        Some(value) => crate::trigger::sources::Submodules::parse(value)
            .ok_or("input `submodule` must be false, true or recursive")?,
    };
    let dir = match input(&["path", "dir", "directory"]) {
        None => String::new(),
        Some(value) => {
            let dir = value_text(value).trim().trim_end_matches('/').to_owned();
            if !is_relative_dir(&dir) {
                return Err(format!(
                    "input `path`: `{dir}` must be a relative path inside the workspace"
                ));
            }
            dir
        }
    };
    Ok(Target {
        checkout,
        dir,
        depth,
        submodules: submodules.as_str(),
    })
}

fn value_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// Letters, digits, `.`, `_`, `-` and `/`; not absolute, no `..`, no leading `-`.
fn is_relative_dir(dir: &str) -> bool {
    dir.is_empty()
        || (dir.len() <= 255
            && !dir.starts_with(['/', '-'])
            && !dir.contains("..")
            && dir
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/')))
}

/// The environment of a checkout of `targets`, and the values to mask.
fn checkout_env(targets: &[Target<'_>]) -> (Vec<(String, String)>, Vec<String>) {
    let mut env = vec![("RUNNEL_GIT_COUNT".to_owned(), targets.len().to_string())];
    let mut secrets = Vec::new();
    for (index, target) in targets.iter().enumerate() {
        let source = &target.checkout.source;
        let mut set = |name: &str, value: String| {
            env.push((format!("RUNNEL_GIT_{index}_{name}"), value));
        };
        set("NAME", target.checkout.key.clone());
        set("URL", source.url.clone());
        set("COMMIT", source.commit_id.clone());
        set(
            "REF",
            match &source.revision {
                Revision::Default => "HEAD".to_owned(),
                _ => source.full_ref(),
            },
        );
        set("ALT_REF", source.merge_request_ref().unwrap_or_default());
        set("DIR", target.dir.clone());
        set("DEPTH", target.depth.to_string());
        set("SUBMODULES", target.submodules.to_owned());
        match &target.checkout.credential {
            Some(GitCredential::Token { username, token }) => {
                let user = if username.is_empty() {
                    "oauth2"
                } else {
                    username
                };
                let basic =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{token}"));
                let header = format!("Authorization: Basic {basic}");
                if let Some(scope) = http_scope(&source.url) {
                    set("AUTH_KEY", format!("http.{scope}.extraHeader"));
                    set("AUTH", header.clone());
                }
                secrets.extend([token.clone(), basic, header]);
            }
            Some(GitCredential::SshKey {
                private_key,
                known_hosts,
            }) => {
                set("SSH_KEY", private_key.clone());
                set("KNOWN_HOSTS", known_hosts.clone());
                secrets.push(private_key.clone());
            }
            None => {}
        }
    }
    (env, secrets)
}

/// `https://host[:port]/` of an HTTP(S) URL (without user information), for a scoped
/// `http.<url>.extraHeader`; `None` for other schemes.
fn http_scope(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if !scheme.eq_ignore_ascii_case("https") && !scheme.eq_ignore_ascii_case("http") {
        return None;
    }
    let authority = rest.split('/').next()?;
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    if host.is_empty() {
        return None;
    }
    Some(format!("{}://{host}/", scheme.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_headers_are_scoped_to_the_repository_host() {
        assert_eq!(
            http_scope("https://bot@git.example.com:8443/team/app.git").as_deref(),
            Some("https://git.example.com:8443/")
        );
        assert_eq!(http_scope("git@github.com:team/app.git"), None);
        assert_eq!(http_scope("git://127.0.0.1/app.git"), None);
    }

    #[test]
    fn checkout_directories_stay_inside_the_workspace() {
        for good in ["", "src", "a/b-c_d.e"] {
            assert!(is_relative_dir(good), "{good}");
        }
        for bad in ["/etc", "../x", "a/../../b", "-x", "a b", "$(id)"] {
            assert!(!is_relative_dir(bad), "{bad}");
        }
    }
}

#[cfg(test)]
mod apply_tests {
    use super::*;
    use crate::trigger::sources::CodeSource;
    use runnel_domain::prepare::PreparedStep;
    use runnel_domain::{Format, compile_text};
    use serde_json::json;
    use std::time::Duration;

    fn spec(steps: &str) -> PipelineSpec {
        compile_text(
            &format!("jobs:\n  - name: j\n    steps:\n{steps}"),
            Format::Yaml,
        )
        .unwrap_or_else(|diagnostics| panic!("{diagnostics:#?}"))
    }

    fn prepared(kinds: Vec<PreparedStepKind>) -> PreparedJob {
        PreparedJob {
            env: Vec::new(),
            secrets: Vec::new(),
            steps: kinds
                .into_iter()
                .enumerate()
                .map(|(index, kind)| PreparedStep {
                    identifier: format!("s{index}"),
                    name: format!("s{index}"),
                    kind,
                    env: Vec::new(),
                })
                .collect(),
            timeout: Duration::from_secs(60),
        }
    }

    fn checkout(
        alias: &str,
        params: serde_json::Value,
        credential: Option<GitCredential>,
    ) -> Checkout {
        let mut source = json!({"type": "code", "params": {"alias": alias, "git_url": format!("https://git.example.com/{alias}.git"),
            "build_params": {"build_type": "branch", "target_branch": "main", "commit_id": "a".repeat(40)}}});
        if let (Some(target), Some(extra)) = (source["params"].as_object_mut(), params.as_object())
        {
            target.extend(extra.clone());
        }
        Checkout {
            key: alias.to_owned(),
            source: CodeSource::read(&source).expect("valid").expect("code"),
            credential,
        }
    }

    fn env<'a>(step: &'a runnel_domain::prepare::PreparedStep, name: &str) -> Option<&'a str> {
        step.env
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    #[test]
    fn a_clone_step_becomes_the_checkout_script_with_its_inputs_as_environment() {
        let spec = spec(
            "      - task: official_git_clone\n        with: {repo: lib, path: vendor/lib, depth: 0}\n      - run: make\n",
        );
        let mut job = prepared(vec![
            PreparedStepKind::Unsupported {
                task: GIT_CLONE_TASK.to_owned(),
            },
            PreparedStepKind::Shell {
                script: "make".to_owned(),
            },
        ]);
        let token = GitCredential::Token {
            username: "bot".to_owned(),
            token: "tok-123".to_owned(),
        };
        let checkouts = [
            checkout("app", json!({}), None),
            checkout("lib", json!({}), Some(token)),
        ];
        let job_idx = spec.job_by_identifier("j").expect("job");
        apply(&checkouts, &spec, job_idx, &mut job);
        assert_eq!(
            job.steps[0].kind,
            PreparedStepKind::Shell {
                script: CHECKOUT_SCRIPT.to_owned()
            }
        );
        let step = &job.steps[0];
        assert_eq!(env(step, "RUNNEL_GIT_COUNT"), Some("1"));
        assert_eq!(
            env(step, "RUNNEL_GIT_0_URL"),
            Some("https://git.example.com/lib.git")
        );
        assert_eq!(env(step, "RUNNEL_GIT_0_DIR"), Some("vendor/lib"));
        assert_eq!(env(step, "RUNNEL_GIT_0_DEPTH"), Some("0"));
        assert_eq!(env(step, "RUNNEL_GIT_0_REF"), Some("refs/heads/main"));
        assert_eq!(
            env(step, "RUNNEL_GIT_0_AUTH_KEY"),
            Some("http.https://git.example.com/.extraHeader")
        );
        assert!(
            job.secrets.contains(&"tok-123".to_owned()),
            "the token is masked"
        );
        assert_eq!(
            job.steps[1].kind,
            PreparedStepKind::Shell {
                script: "make".to_owned()
            },
            "no implicit checkout next to an explicit one"
        );
    }

    #[test]
    fn a_clone_step_naming_no_source_fails_with_a_message() {
        let spec = spec("      - task: official_git_clone\n        with: {repo: nope}\n");
        let mut job = prepared(vec![PreparedStepKind::Unsupported {
            task: GIT_CLONE_TASK.to_owned(),
        }]);
        let job_idx = spec.job_by_identifier("j").expect("job");
        apply(
            &[checkout("app", json!({}), None)],
            &spec,
            job_idx,
            &mut job,
        );
        assert!(
            env(&job.steps[0], "RUNNEL_CHECKOUT_ERROR").is_some_and(|text| text.contains("nope")),
            "{:?}",
            job.steps[0].env
        );
    }

    #[test]
    fn the_implicit_checkout_runs_before_the_first_shell_step_and_unsets_its_variables() {
        let spec = spec("      - run: make\n      - run: test\n");
        let mut job = prepared(vec![
            PreparedStepKind::Shell {
                script: "make".to_owned(),
            },
            PreparedStepKind::Shell {
                script: "test".to_owned(),
            },
        ]);
        let checkouts = [
            checkout(
                "app",
                json!({"clone_depth": 5, "submodules": "recursive"}),
                None,
            ),
            checkout("docs", json!({"checkout": false}), None),
        ];
        let job_idx = spec.job_by_identifier("j").expect("job");
        apply(&checkouts, &spec, job_idx, &mut job);
        let PreparedStepKind::Shell { script } = &job.steps[0].kind else {
            panic!("shell");
        };
        assert!(
            script.starts_with("\"$BASH\" --noprofile --norc -c \"$RUNNEL_CHECKOUT_SCRIPT\""),
            "{script}"
        );
        assert!(
            script.contains("unset RUNNEL_GIT_COUNT")
                && script.contains("RUNNEL_CHECKOUT_SCRIPT; make"),
            "{script}"
        );
        assert_eq!(
            script.lines().count(),
            1,
            "the step's first line stays its first line"
        );
        let step = &job.steps[0];
        assert_eq!(
            env(step, "RUNNEL_GIT_COUNT"),
            Some("1"),
            "the source with checkout: false is left out"
        );
        assert_eq!(
            env(step, "RUNNEL_GIT_0_DIR"),
            Some(""),
            "one source: the workspace itself"
        );
        assert_eq!(env(step, "RUNNEL_GIT_0_DEPTH"), Some("5"));
        assert_eq!(env(step, "RUNNEL_GIT_0_SUBMODULES"), Some("recursive"));
        assert_eq!(env(step, "RUNNEL_CHECKOUT_SCRIPT"), Some(CHECKOUT_SCRIPT));
        assert!(job.steps[1].env.is_empty(), "only the first shell step");
    }
}

#[cfg(test)]
mod script_tests {
    use super::CHECKOUT_SCRIPT;

    /// Runs the checkout script with `env` in a fresh directory; returns (success, stderr).
    fn run(env: &[(&str, &str)]) -> (bool, String) {
        let dir = tempfile::tempdir().expect("dir");
        let output = std::process::Command::new("bash")
            .args(["--noprofile", "--norc", "-c", CHECKOUT_SCRIPT, "checkout"])
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(env.iter().copied())
            .output()
            .expect("bash runs");
        assert!(!dir.path().join("pwned").exists(), "a value became code");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    #[test]
    fn hostile_values_are_refused_by_the_script_itself() {
        let base = [
            ("RUNNEL_GIT_COUNT", "1"),
            ("RUNNEL_GIT_0_NAME", "app"),
            ("RUNNEL_GIT_0_DEPTH", "1"),
            ("RUNNEL_GIT_0_SUBMODULES", "false"),
        ];
        for (name, value, why) in [
            (
                "RUNNEL_GIT_0_REF",
                "refs/heads/--upload-pack=touch pwned",
                "ref",
            ),
            ("RUNNEL_GIT_0_REF", "refs/heads/a..b", "ref"),
            ("RUNNEL_GIT_0_COMMIT", "$(touch pwned)", "commit"),
            ("RUNNEL_GIT_0_DIR", "../../outside", "directory"),
            ("RUNNEL_GIT_0_DEPTH", "1; touch pwned", "depth"),
        ] {
            let mut env: Vec<(&str, &str)> = base.to_vec();
            env.push(("RUNNEL_GIT_0_URL", "git://127.0.0.1:9/none.git"));
            if name != "RUNNEL_GIT_0_REF" {
                env.push(("RUNNEL_GIT_0_REF", "refs/heads/main"));
            }
            env.retain(|(key, _)| *key != name);
            env.push((name, value));
            let (ok, stderr) = run(&env);
            assert!(!ok, "{name}={value} must be refused");
            assert!(stderr.contains(why), "{name}: {stderr}");
        }
        let mut env: Vec<(&str, &str)> = base.to_vec();
        env.push(("RUNNEL_GIT_0_URL", "-uhttps://x --upload-pack=touch pwned"));
        env.push(("RUNNEL_GIT_0_REF", "refs/heads/main"));
        let (ok, stderr) = run(&env);
        assert!(!ok && stderr.contains("URL"), "{stderr}");
    }
}
