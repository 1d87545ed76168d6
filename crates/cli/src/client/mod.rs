//! The client commands of `runnel`: they talk to a server through the same HTTP API as the
//! Huawei Cloud SDKs (`docs/cli.md`).
//!
//! Authentication: the token saved by `runnel login` (only for the endpoint it was issued by),
//! or an AK/SK pair from `--ak`/`--sk` or `RUNNEL_AK`/`RUNNEL_SK`, which signs every request
//! (`SDK-HMAC-SHA256`, spec §1.4). Output: tables for people, `--output json` for scripts.
//! Failures print the server's `error_code` and `error_msg` with a hint and exit non-zero
//! ([`error::ClientError::exit_code`]).

mod admin;
mod config;
mod decide;
mod definition;
mod error;
mod http;
mod login;
mod logs;
mod output;
mod pipeline;
mod refs;
mod show;
mod sign;
mod template;

use clap::Subcommand;
use config::SavedLogin;
use error::ClientError;
use http::{Answer, Api, Call, Credentials};
use output::Output;
use reqwest::Method;
use serde_json::Value;
use std::process::ExitCode;

/// The client subcommands, flattened into `runnel`'s own.
#[derive(Debug, Subcommand)]
pub(crate) enum ClientCommand {
    /// Log in to a server and save the token (24 h) for the other client commands.
    ///
    /// The token is saved in $XDG_CONFIG_HOME/runnel/config.json (else
    /// ~/.config/runnel/config.json), readable only by you.
    Login(login::LoginArgs),
    /// Revoke the saved token on the server and forget it.
    Logout(Common),
    /// The projects you are a member of; choose the default one.
    Project(login::ProjectArgs),
    /// Pipelines: list, create (from a JSON or YAML file, or a template), show, run, stop, retry.
    Pipeline(pipeline::PipelineArgs),
    /// Runs of a pipeline: list, show (stages, jobs, steps), approve or reject what they wait for.
    Run(pipeline::RunArgs),
    /// Print the logs of a run's steps; --follow keeps printing until the run ends.
    Logs(logs::LogsArgs),
    /// Pipeline templates of your domain (tenant).
    Template(template::TemplateArgs),
    /// Administration (domain administrators): users, projects, members, access keys, tokens.
    Admin(admin::AdminArgs),
}

/// Options of every client command.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct Common {
    /// The server, e.g. http://127.0.0.1:8080 (default: the one you logged in to).
    #[arg(long, global = true, env = "RUNNEL_ENDPOINT", value_name = "URL")]
    pub(crate) endpoint: Option<String>,
    /// The project, by id or name (default: the one chosen at login).
    #[arg(long, global = true, env = "RUNNEL_PROJECT", value_name = "PROJECT")]
    pub(crate) project: Option<String>,
    /// How to print results.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Table)]
    pub(crate) output: Output,
    /// Sign requests with this access key instead of using the saved token (with --sk).
    #[arg(long, global = true, env = "RUNNEL_AK", value_name = "AK")]
    pub(crate) ak: Option<String>,
    /// The secret key of --ak. Prefer the environment variable: flags show in `ps`.
    #[arg(
        long,
        global = true,
        env = "RUNNEL_SK",
        value_name = "SK",
        hide_env_values = true
    )]
    pub(crate) sk: Option<String>,
}

/// Runs a client command; failures are printed here and become the exit status.
pub(crate) fn run(command: ClientCommand) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| anyhow::anyhow!("cannot start the async runtime: {err}"))?;
    match runtime.block_on(dispatch(command)) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(err) => {
            eprintln!("runnel: {err}");
            Ok(err.exit_code())
        }
    }
}

async fn dispatch(command: ClientCommand) -> Result<(), ClientError> {
    match command {
        ClientCommand::Login(args) => login::login(args).await,
        ClientCommand::Logout(common) => login::logout(&common).await,
        ClientCommand::Project(args) => login::project(args).await,
        ClientCommand::Pipeline(args) => pipeline::pipeline(args).await,
        ClientCommand::Run(args) => pipeline::run(args).await,
        ClientCommand::Logs(args) => logs::logs(args).await,
        ClientCommand::Template(args) => template::template(args).await,
        ClientCommand::Admin(args) => admin::admin(args).await,
    }
}

/// What a command works with: the API, the saved login, the chosen project and output.
pub(crate) struct Context {
    pub(crate) api: Api,
    pub(crate) saved: SavedLogin,
    pub(crate) output: Output,
    project: Option<String>,
}

impl Context {
    /// The endpoint and credentials from the options, the environment and the saved login;
    /// `NotLoggedIn` without credentials. The saved token is only ever sent to the endpoint
    /// that issued it.
    pub(crate) fn new(common: &Common) -> Result<Context, ClientError> {
        let saved = config::load().map_err(|err| ClientError::Invalid(format!("{err:#}")))?;
        let endpoint = common
            .endpoint
            .clone()
            .or_else(|| saved.endpoint.clone())
            .ok_or_else(|| {
                ClientError::Invalid(
                    "no server given: pass --endpoint URL (or set RUNNEL_ENDPOINT), or run `runnel login` first"
                        .to_owned(),
                )
            })?;
        let same_server = saved
            .endpoint
            .as_deref()
            .is_some_and(|saved| same_endpoint(saved, &endpoint));
        let credentials = match (&common.ak, &common.sk) {
            (Some(ak), Some(sk)) if !ak.is_empty() && !sk.is_empty() => {
                Some(Credentials::AccessKey {
                    ak: ak.clone(),
                    sk: sk.clone(),
                })
            }
            (Some(_), _) | (_, Some(_)) => {
                return Err(ClientError::Invalid(
                    "an access key needs both --ak and --sk (or RUNNEL_AK and RUNNEL_SK)"
                        .to_owned(),
                ));
            }
            (None, None) if same_server => saved.token.clone().map(Credentials::Token),
            (None, None) => None,
        };
        if credentials.is_none() {
            return Err(ClientError::NotLoggedIn);
        }
        let project = common
            .project
            .clone()
            .or_else(|| same_server.then(|| saved.project_id.clone()).flatten());
        Ok(Context {
            api: Api::new(&endpoint, credentials)?,
            saved,
            output: common.output,
            project,
        })
    }

    /// Sends a call with the credentials (every context has some).
    pub(crate) async fn send(&self, call: Call<'_>) -> Result<Answer, ClientError> {
        self.api.send(call).await
    }

    pub(crate) async fn get(&self, path: impl Into<String>) -> Result<Value, ClientError> {
        Ok(self.send(Call::new(Method::GET, path)).await?.body)
    }

    pub(crate) async fn post(
        &self,
        path: impl Into<String>,
        body: &Value,
    ) -> Result<Value, ClientError> {
        Ok(self
            .send(Call::new(Method::POST, path).body(body))
            .await?
            .body)
    }

    /// A POST without a body (actions such as stop, pass, refuse).
    pub(crate) async fn post_empty(&self, path: impl Into<String>) -> Result<Value, ClientError> {
        Ok(self.send(Call::new(Method::POST, path)).await?.body)
    }

    pub(crate) async fn delete(&self, path: impl Into<String>) -> Result<Value, ClientError> {
        Ok(self.send(Call::new(Method::DELETE, path)).await?.body)
    }

    /// The project id: `--project`, `RUNNEL_PROJECT` or the saved one; a name is looked up
    /// among your projects.
    pub(crate) async fn project_id(&self) -> Result<String, ClientError> {
        let given = self.project.clone().ok_or_else(|| {
            ClientError::Invalid(
                "no project chosen: pass --project (or set RUNNEL_PROJECT), or choose one with `runnel project use`"
                    .to_owned(),
            )
        })?;
        if refs::is_hex_id(&given) {
            return Ok(given);
        }
        let projects = self.get("/v5/projects").await?;
        refs::find_project(&projects, &given)
    }

    /// The domain (tenant) id, for the template routes: saved at login, else asked from the
    /// IAM project lookup (which names the caller's domain).
    pub(crate) async fn domain_id(&self) -> Result<String, ClientError> {
        if let (Some(Credentials::Token(_)), Some(domain_id)) =
            (self.api.credentials(), &self.saved.domain_id)
        {
            return Ok(domain_id.clone());
        }
        let projects = self.get("/v3/projects").await?;
        projects["projects"][0]["domain_id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| ClientError::Protocol("GET /v3/projects named no domain".to_owned()))
    }

    pub(crate) fn is_json(&self) -> bool {
        self.output == Output::Json
    }
}

/// Whether two endpoint URLs name the same server (trailing slashes and case of the scheme and
/// host aside).
fn same_endpoint(left: &str, right: &str) -> bool {
    let normalize = |text: &str| text.trim().trim_end_matches('/').to_ascii_lowercase();
    normalize(left) == normalize(right)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_compare_without_trailing_slashes_or_case() {
        assert!(same_endpoint(
            "http://127.0.0.1:8080/",
            "HTTP://127.0.0.1:8080"
        ));
        assert!(!same_endpoint(
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8081"
        ));
    }
}
