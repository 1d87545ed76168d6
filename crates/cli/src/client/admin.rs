//! `runnel admin …`: users, projects, members, access keys and tokens of your domain, through
//! the `/v5/admin/…` routes (domain administrators only).

use super::error::ClientError;
use super::output::{Table, print, print_json, text, time};
use super::refs::segment;
use super::{Common, Context};
use serde_json::{Value, json};
use std::io::Read as _;

#[derive(Debug, clap::Args)]
pub(crate) struct AdminArgs {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, clap::Subcommand)]
enum AdminCommand {
    /// Users of the domain.
    #[command(subcommand)]
    User(UserCommand),
    /// Projects of the domain.
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Members of a project and their roles.
    #[command(subcommand)]
    Member(MemberCommand),
    /// AK/SK pairs of a user.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Tokens of a user.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, clap::Subcommand)]
enum UserCommand {
    /// Every user of the domain.
    List,
    /// Create a user; without --password-stdin a password is generated and shown once.
    Create {
        /// The user name (letters, digits, '-', '_', '.', '@').
        name: String,
        /// Read the password from standard input (one line).
        #[arg(long)]
        password_stdin: bool,
        /// Make the user a domain administrator too.
        #[arg(long)]
        domain_admin: bool,
    },
    /// Disable a user: no more logins, and their tokens and access keys stop working at once.
    Disable {
        /// User name or id.
        user: String,
    },
    /// Enable a disabled user again (revoked tokens stay revoked).
    Enable {
        /// User name or id.
        user: String,
    },
}

#[derive(Debug, clap::Subcommand)]
enum ProjectCommand {
    /// Every project of the domain.
    List,
    /// Create a project; you become its admin.
    Create {
        /// The project name.
        name: String,
        /// A description.
        #[arg(long, default_value = "")]
        description: String,
    },
}

#[derive(Debug, clap::Subcommand)]
enum MemberCommand {
    /// The members of a project.
    List {
        /// Project name or id.
        project: String,
    },
    /// Add a member, or change a member's role.
    Add {
        /// Project name or id.
        project: String,
        /// User name or id.
        user: String,
        /// admin, developer or viewer.
        #[arg(long)]
        role: String,
    },
    /// Remove a member.
    Remove {
        /// Project name or id.
        project: String,
        /// User name or id.
        user: String,
    },
}

#[derive(Debug, clap::Subcommand)]
enum KeyCommand {
    /// A user's access keys (without secret keys).
    List {
        /// User name or id.
        user: String,
    },
    /// Create an AK/SK pair for a user; the SK is shown once.
    Create {
        /// User name or id.
        user: String,
        /// What the key is for.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Delete an access key: signatures with it fail from now on.
    Delete {
        /// The AK.
        #[arg(value_name = "AK")]
        access_key: String,
    },
}

#[derive(Debug, clap::Subcommand)]
enum TokenCommand {
    /// Revoke every token of a user (they must log in again).
    Revoke {
        /// User name or id.
        user: String,
    },
}

pub(crate) async fn admin(args: AdminArgs) -> Result<(), ClientError> {
    let ctx = Context::new(&args.common)?;
    match args.command {
        AdminCommand::User(command) => user(&ctx, command).await,
        AdminCommand::Project(command) => project(&ctx, command).await,
        AdminCommand::Member(command) => member(&ctx, command).await,
        AdminCommand::Key(command) => key(&ctx, command).await,
        AdminCommand::Token(TokenCommand::Revoke { user }) => {
            let user_id = user_id(&ctx, &user).await?;
            let answer = ctx
                .post_empty(format!(
                    "/v5/admin/users/{}/tokens/revoke",
                    segment(&user_id)
                ))
                .await?;
            report(
                &ctx,
                &answer,
                format!(
                    "Revoked {} token(s) of {user}.\n",
                    text(&answer["revoked_tokens"])
                ),
            );
            Ok(())
        }
    }
}

async fn user(ctx: &Context, command: UserCommand) -> Result<(), ClientError> {
    match command {
        UserCommand::List => {
            let users = ctx.get("/v5/admin/users").await?;
            if ctx.is_json() {
                print_json(&users);
                return Ok(());
            }
            let mut table = Table::new(&["NAME", "USER ID", "STATE", "DOMAIN ADMIN", "CREATED"]);
            for user in users["users"].as_array().into_iter().flatten() {
                table.row(vec![
                    text(&user["name"]),
                    text(&user["user_id"]),
                    if user["is_disabled"] == true {
                        "disabled"
                    } else {
                        "enabled"
                    }
                    .to_owned(),
                    if user["is_domain_admin"] == true {
                        "yes"
                    } else {
                        "no"
                    }
                    .to_owned(),
                    time(&user["create_time"]),
                ]);
            }
            print(&table.render());
        }
        UserCommand::Create {
            name,
            password_stdin,
            domain_admin,
        } => {
            let mut body = json!({"name": name, "domain_admin": domain_admin});
            if password_stdin {
                body["password"] = json!(read_stdin_line("password")?);
            }
            let answer = ctx.post("/v5/admin/users", &body).await?;
            if ctx.is_json() {
                print_json(&answer);
                return Ok(());
            }
            let mut text_out = format!(
                "Created user {} ({}).\n",
                text(&answer["name"]),
                text(&answer["user_id"])
            );
            if let Some(password) = answer["password"].as_str() {
                text_out.push_str(&format!(
                    "Password: {password}\nIt is shown only this once; give it to the user over a safe channel.\n"
                ));
            }
            print(&text_out);
        }
        UserCommand::Disable { user } => {
            let user_id = user_id(ctx, &user).await?;
            let answer = ctx
                .post_empty(format!("/v5/admin/users/{}/disable", segment(&user_id)))
                .await?;
            report(
                ctx,
                &answer,
                format!(
                    "Disabled {user}; revoked {} token(s).\n",
                    text(&answer["revoked_tokens"])
                ),
            );
        }
        UserCommand::Enable { user } => {
            let user_id = user_id(ctx, &user).await?;
            let answer = ctx
                .post_empty(format!("/v5/admin/users/{}/enable", segment(&user_id)))
                .await?;
            report(ctx, &answer, format!("Enabled {user}.\n"));
        }
    }
    Ok(())
}

async fn project(ctx: &Context, command: ProjectCommand) -> Result<(), ClientError> {
    match command {
        ProjectCommand::List => {
            let projects = ctx.get("/v5/admin/projects").await?;
            if ctx.is_json() {
                print_json(&projects);
                return Ok(());
            }
            let mut table = Table::new(&["NAME", "PROJECT ID", "CREATED", "DESCRIPTION"]);
            for project in projects["projects"].as_array().into_iter().flatten() {
                table.row(vec![
                    text(&project["name"]),
                    text(&project["project_id"]),
                    time(&project["create_time"]),
                    text(&project["description"]),
                ]);
            }
            print(&table.render());
        }
        ProjectCommand::Create { name, description } => {
            let answer = ctx
                .post(
                    "/v5/admin/projects",
                    &json!({"name": name, "description": description}),
                )
                .await?;
            report(
                ctx,
                &answer,
                format!(
                    "Created project {} ({}); you are its admin.\n",
                    text(&answer["name"]),
                    text(&answer["project_id"])
                ),
            );
        }
    }
    Ok(())
}

async fn member(ctx: &Context, command: MemberCommand) -> Result<(), ClientError> {
    match command {
        MemberCommand::List { project } => {
            let project_id = project_id(ctx, &project).await?;
            let members = ctx
                .get(format!(
                    "/v5/admin/projects/{}/members",
                    segment(&project_id)
                ))
                .await?;
            if ctx.is_json() {
                print_json(&members);
                return Ok(());
            }
            let mut table = Table::new(&["USER", "USER ID", "ROLE", "SINCE"]);
            for member in members["members"].as_array().into_iter().flatten() {
                table.row(vec![
                    text(&member["user_name"]),
                    text(&member["user_id"]),
                    text(&member["role"]),
                    time(&member["create_time"]),
                ]);
            }
            print(&table.render());
        }
        MemberCommand::Add {
            project,
            user,
            role,
        } => {
            let project_id = project_id(ctx, &project).await?;
            let user_id = user_id(ctx, &user).await?;
            let answer = ctx
                .post(
                    format!("/v5/admin/projects/{}/members", segment(&project_id)),
                    &json!({"user_id": user_id, "role": role}),
                )
                .await?;
            report(
                ctx,
                &answer,
                format!("{user} is now {role} of {project}.\n"),
            );
        }
        MemberCommand::Remove { project, user } => {
            let project_id = project_id(ctx, &project).await?;
            let user_id = user_id(ctx, &user).await?;
            let answer = ctx
                .delete(format!(
                    "/v5/admin/projects/{}/members/{}",
                    segment(&project_id),
                    segment(&user_id)
                ))
                .await?;
            report(ctx, &answer, format!("Removed {user} from {project}.\n"));
        }
    }
    Ok(())
}

async fn key(ctx: &Context, command: KeyCommand) -> Result<(), ClientError> {
    match command {
        KeyCommand::List { user } => {
            let user_id = user_id(ctx, &user).await?;
            let keys = ctx
                .get(format!("/v5/admin/users/{}/access-keys", segment(&user_id)))
                .await?;
            if ctx.is_json() {
                print_json(&keys);
                return Ok(());
            }
            let mut table = Table::new(&["AK", "STATE", "CREATED", "DESCRIPTION"]);
            for key in keys["access_keys"].as_array().into_iter().flatten() {
                table.row(vec![
                    text(&key["ak"]),
                    if key["is_disabled"] == true {
                        "disabled"
                    } else {
                        "enabled"
                    }
                    .to_owned(),
                    time(&key["create_time"]),
                    text(&key["description"]),
                ]);
            }
            print(&table.render());
        }
        KeyCommand::Create { user, description } => {
            let user_id = user_id(ctx, &user).await?;
            let answer = ctx
                .post(
                    format!("/v5/admin/users/{}/access-keys", segment(&user_id)),
                    &json!({"description": description}),
                )
                .await?;
            report(
                ctx,
                &answer,
                format!(
                    "AK: {}\nSK: {}\nThe SK is shown only this once; store it safely.\n",
                    text(&answer["ak"]),
                    text(&answer["sk"])
                ),
            );
        }
        KeyCommand::Delete { access_key: ak } => {
            let answer = ctx
                .delete(format!("/v5/admin/access-keys/{}", segment(&ak)))
                .await?;
            report(ctx, &answer, format!("Deleted access key {ak}.\n"));
        }
    }
    Ok(())
}

/// A user by id or name, among the domain's users.
async fn user_id(ctx: &Context, given: &str) -> Result<String, ClientError> {
    let users = ctx.get("/v5/admin/users").await?;
    find(&users["users"], "user_id", given).ok_or_else(|| {
        ClientError::Invalid(format!(
            "the domain has no user {given:?}; `runnel admin user list` shows its users"
        ))
    })
}

/// A project by id or name, among the domain's projects.
async fn project_id(ctx: &Context, given: &str) -> Result<String, ClientError> {
    let projects = ctx.get("/v5/admin/projects").await?;
    find(&projects["projects"], "project_id", given).ok_or_else(|| {
        ClientError::Invalid(format!(
            "the domain has no project {given:?}; `runnel admin project list` shows its projects"
        ))
    })
}

/// The id of the item whose id, else whose name, is `given`.
fn find(items: &Value, id_field: &str, given: &str) -> Option<String> {
    let items = items.as_array()?;
    items
        .iter()
        .find(|item| item[id_field] == given)
        .or_else(|| items.iter().find(|item| item["name"] == given))
        .and_then(|item| item[id_field].as_str())
        .map(str::to_owned)
}

fn report(ctx: &Context, answer: &Value, message: String) {
    if ctx.is_json() {
        print_json(answer);
    } else {
        print(&message);
    }
}

fn read_stdin_line(what: &str) -> Result<String, ClientError> {
    let mut text = String::new();
    std::io::stdin()
        .lock()
        .take(64 * 1024)
        .read_to_string(&mut text)
        .map_err(|err| ClientError::Invalid(format!("cannot read the {what} from stdin: {err}")))?;
    let line = text.lines().next().unwrap_or_default().to_owned();
    if line.is_empty() {
        return Err(ClientError::Invalid(format!("stdin held no {what}")));
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_found_by_id_before_name() {
        let users = json!([
            {"user_id": "u1", "name": "u2"},
            {"user_id": "u2", "name": "bob"}
        ]);
        assert_eq!(find(&users, "user_id", "u2").as_deref(), Some("u2"));
        assert_eq!(find(&users, "user_id", "bob").as_deref(), Some("u2"));
        assert_eq!(find(&users, "user_id", "nobody"), None);
    }
}
