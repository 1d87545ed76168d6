//! `runnel login`, `runnel logout` and `runnel project list|use`.

use super::config::{self, SavedLogin};
use super::error::ClientError;
use super::http::{Api, Call, Credentials};
use super::output::{Output, Table, print, print_json};
use super::{Common, Context, refs};
use reqwest::Method;
use serde_json::json;
use std::io::{BufRead as _, IsTerminal as _, Read as _, Write as _};

#[derive(Debug, clap::Args)]
pub(crate) struct LoginArgs {
    /// The server, e.g. http://127.0.0.1:8080 (default: the one you last logged in to).
    #[arg(long, env = "RUNNEL_ENDPOINT", value_name = "URL")]
    endpoint: Option<String>,
    /// The domain (tenant) name.
    #[arg(long, env = "RUNNEL_DOMAIN", default_value = "default")]
    domain: String,
    /// Your user name (default: the one you last logged in as).
    #[arg(long, short = 'u', env = "RUNNEL_USER", value_name = "NAME")]
    user: Option<String>,
    /// Read the password from standard input (one line) instead of asking for it.
    #[arg(long)]
    password_stdin: bool,
    /// The project later commands act on, by id or name (default: your only project, or the
    /// one chosen before).
    #[arg(long, env = "RUNNEL_PROJECT", value_name = "PROJECT")]
    project: Option<String>,
    /// How to print the result.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Table)]
    output: Output,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ProjectArgs {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: ProjectCommand,
}

#[derive(Debug, clap::Subcommand)]
enum ProjectCommand {
    /// The projects you are a member of, with your role (`*` marks the chosen one).
    List,
    /// Choose the project later commands act on, by id or name.
    Use {
        /// Project id or name.
        project: String,
    },
}

pub(crate) async fn login(args: LoginArgs) -> Result<(), ClientError> {
    let saved = config::load().map_err(|err| ClientError::Invalid(format!("{err:#}")))?;
    let endpoint = args
        .endpoint
        .clone()
        .or_else(|| saved.endpoint.clone())
        .ok_or_else(|| {
            ClientError::Invalid("pass --endpoint URL (or set RUNNEL_ENDPOINT)".to_owned())
        })?;
    let same_server = saved.endpoint.as_deref() == Some(endpoint.as_str());
    let user = args
        .user
        .clone()
        .or_else(|| same_server.then(|| saved.user_name.clone()).flatten())
        .ok_or_else(|| ClientError::Invalid("pass --user NAME (or set RUNNEL_USER)".to_owned()))?;
    let password = if args.password_stdin {
        read_password_stdin()?
    } else {
        prompt_password(&format!("Password for {user} (domain {}): ", args.domain))?
    };
    let anonymous = Api::new(&endpoint, None)?;
    let body = json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": user, "password": password, "domain": {"name": args.domain}}}},
        "scope": {"domain": {"name": args.domain}}
    }});
    let answer = anonymous
        .send(
            Call::new(Method::POST, "/v3/auth/tokens")
                .query("nocatalog", "true")
                .body(&body),
        )
        .await?;
    let token = answer
        .headers
        .get("x-subject-token")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| {
            ClientError::Protocol("the login answer has no X-Subject-Token".to_owned())
        })?;
    let issued = &answer.body["token"];
    let api = Api::new(&endpoint, Some(Credentials::Token(token.clone())))?;
    let projects = api.send(Call::new(Method::GET, "/v5/projects")).await?.body;
    let listed = projects["projects"].as_array().cloned().unwrap_or_default();
    let project_id = match &args.project {
        Some(given) => Some(refs::find_project(&projects, given)?),
        None => {
            let previous = same_server
                .then_some(saved.project_id.as_ref())
                .flatten()
                .filter(|previous| {
                    listed
                        .iter()
                        .any(|project| project["project_id"] == **previous)
                });
            match (previous, listed.as_slice()) {
                (Some(previous), _) => Some(previous.clone()),
                (None, [only]) => only["project_id"].as_str().map(str::to_owned),
                _ => None,
            }
        }
    };
    let login = SavedLogin {
        endpoint: Some(api.endpoint().to_owned()),
        domain_name: Some(args.domain.clone()),
        domain_id: issued["user"]["domain"]["id"].as_str().map(str::to_owned),
        user_name: Some(user.clone()),
        user_id: issued["user"]["id"].as_str().map(str::to_owned),
        project_id: project_id.clone(),
        token: Some(token),
        token_expires_at: issued["expires_at"].as_str().map(str::to_owned),
    };
    let path = config::save(&login).map_err(|err| ClientError::Invalid(format!("{err:#}")))?;
    let project_name = project_id
        .as_deref()
        .and_then(|id| listed.iter().find(|project| project["project_id"] == id))
        .and_then(|project| project["name"].as_str())
        .map(str::to_owned);
    if args.output == Output::Json {
        print_json(&json!({
            "endpoint": login.endpoint, "domain_name": login.domain_name, "domain_id": login.domain_id,
            "user_name": login.user_name, "user_id": login.user_id, "project_id": project_id,
            "project_name": project_name, "expires_at": login.token_expires_at,
            "config": path.display().to_string(),
        }));
        return Ok(());
    }
    let mut text = format!(
        "Logged in to {} as {user} (domain {}).\n",
        api.endpoint(),
        args.domain
    );
    match (&project_id, &project_name) {
        (Some(id), name) => text.push_str(&format!(
            "Project: {} ({id}).\n",
            name.as_deref().unwrap_or("?")
        )),
        (None, _) if listed.is_empty() => {
            text.push_str("You are not a member of any project yet; ask an administrator to add you.\n")
        }
        (None, _) => text.push_str(
            "You are a member of several projects: choose one with `runnel project use NAME` or pass --project.\n",
        ),
    }
    if let Some(expires) = &login.token_expires_at {
        text.push_str(&format!("The token is valid until {expires}; "));
    }
    text.push_str(&format!("it is saved in {}.\n", path.display()));
    print(&text);
    Ok(())
}

pub(crate) async fn logout(common: &Common) -> Result<(), ClientError> {
    let ctx = Context::new(common)?;
    let Some(Credentials::Token(token)) = ctx.api.credentials().cloned() else {
        return Err(ClientError::Invalid(
            "there is no saved login for this endpoint; nothing to log out of".to_owned(),
        ));
    };
    let revoke = ctx
        .api
        .send(Call::new(Method::DELETE, "/v3/auth/tokens").header("x-subject-token", token))
        .await;
    match revoke {
        Ok(_) => {}
        // An expired or revoked token is as good as logged out.
        Err(ClientError::Refused {
            status: 401 | 404, ..
        }) => {}
        Err(other) => return Err(other),
    }
    let mut saved = ctx.saved.clone();
    saved.token = None;
    saved.token_expires_at = None;
    config::save(&saved).map_err(|err| ClientError::Invalid(format!("{err:#}")))?;
    if ctx.is_json() {
        print_json(&json!({"success": true}));
    } else {
        print(&format!("Logged out of {}.\n", ctx.api.endpoint()));
    }
    Ok(())
}

pub(crate) async fn project(args: ProjectArgs) -> Result<(), ClientError> {
    let ctx = Context::new(&args.common)?;
    let projects = ctx.get("/v5/projects").await?;
    match args.command {
        ProjectCommand::List => {
            if ctx.is_json() {
                print_json(&projects);
                return Ok(());
            }
            let current = ctx.project_id().await.ok();
            let mut table = Table::new(&["", "NAME", "PROJECT ID", "ROLE"]);
            for project in projects["projects"].as_array().into_iter().flatten() {
                let id = project["project_id"].as_str().unwrap_or_default();
                let mark = if current.as_deref() == Some(id) {
                    "*"
                } else {
                    ""
                };
                table.row(vec![
                    mark.to_owned(),
                    super::output::text(&project["name"]),
                    id.to_owned(),
                    super::output::text(&project["role"]),
                ]);
            }
            print(&table.render());
        }
        ProjectCommand::Use { project } => {
            let id = refs::find_project(&projects, &project)?;
            let mut saved = ctx.saved.clone();
            if saved.endpoint.is_none() {
                saved.endpoint = Some(ctx.api.endpoint().to_owned());
            }
            saved.project_id = Some(id.clone());
            config::save(&saved).map_err(|err| ClientError::Invalid(format!("{err:#}")))?;
            if ctx.is_json() {
                print_json(&json!({"project_id": id}));
            } else {
                print(&format!(
                    "Later commands act on project {project} ({id}).\n"
                ));
            }
        }
    }
    Ok(())
}

fn read_password_stdin() -> Result<String, ClientError> {
    let mut text = String::new();
    std::io::stdin()
        .lock()
        .take(64 * 1024)
        .read_to_string(&mut text)
        .map_err(|err| {
            ClientError::Invalid(format!("cannot read the password from stdin: {err}"))
        })?;
    let password = text.lines().next().unwrap_or_default().to_owned();
    if password.is_empty() {
        return Err(ClientError::Invalid(
            "--password-stdin read an empty password".to_owned(),
        ));
    }
    Ok(password)
}

/// Asks on the terminal without echoing what is typed.
fn prompt_password(prompt: &str) -> Result<String, ClientError> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let no_terminal = || {
        ClientError::Invalid(
            "no terminal to ask for the password on: use --password-stdin".to_owned(),
        )
    };
    if !std::io::stdin().is_terminal() {
        return Err(no_terminal());
    }
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|_| no_terminal())?;
    let original = tcgetattr(&tty).map_err(|_| no_terminal())?;
    let mut silent = original.clone();
    silent.local_flags.remove(LocalFlags::ECHO);
    silent.local_flags.insert(LocalFlags::ECHONL);
    tcsetattr(&tty, SetArg::TCSANOW, &silent).map_err(|_| no_terminal())?;
    let mut line = String::new();
    let result = (&tty)
        .write_all(prompt.as_bytes())
        .and_then(|()| std::io::BufReader::new(&tty).read_line(&mut line));
    // Echo comes back whatever happened.
    let _ = tcsetattr(&tty, SetArg::TCSANOW, &original);
    result.map_err(|err| ClientError::Invalid(format!("cannot read the password: {err}")))?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        return Err(ClientError::Invalid("the password is empty".to_owned()));
    }
    Ok(password)
}
