//! `runnel template list|show|create|copy|delete|favorite`: the tenant-level v5 templates
//! (spec §9). Pipelines are created from one with `runnel pipeline create --from-template`.

use super::error::ClientError;
use super::http::Call;
use super::output::{Table, print, print_json, text, time};
use super::refs::segment;
use super::{Common, Context, definition};
use reqwest::Method;
use serde_json::{Map, Value, json};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub(crate) struct TemplateArgs {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: TemplateCommand,
}

#[derive(Debug, clap::Subcommand)]
enum TemplateCommand {
    /// Templates of your domain and the system templates.
    List {
        /// Only templates whose name contains this.
        #[arg(long)]
        name: Option<String>,
        /// Only templates of this language (java, python, nodejs, go, none, …).
        #[arg(long)]
        language: Option<String>,
        /// Only system templates (true) or only custom ones (false).
        #[arg(long, value_name = "BOOL")]
        system: Option<bool>,
        /// At most this many (1–100).
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Skip this many.
        #[arg(long, default_value_t = 0)]
        offset: i64,
    },
    /// A template with its variables and stages.
    Show {
        /// Template id.
        template: String,
    },
    /// Create a template from a pipeline file (JSON or YAML, checked here first).
    Create {
        /// The pipeline file.
        file: PathBuf,
        /// The template's name (default: the name in the file).
        #[arg(long)]
        name: Option<String>,
        /// A description.
        #[arg(long)]
        description: Option<String>,
        /// The language it builds (java, python, nodejs, go, net, cpp, php, other, none).
        #[arg(long, default_value = "none")]
        language: String,
    },
    /// Copy a template under a new name.
    Copy {
        /// Template id.
        template: String,
        /// The copy's name.
        #[arg(long)]
        name: String,
    },
    /// Delete a custom template.
    Delete {
        /// Template id.
        template: String,
    },
    /// Mark a template as a favorite (or unmark it with --off).
    Favorite {
        /// Template id.
        template: String,
        /// Remove the mark instead.
        #[arg(long)]
        off: bool,
    },
}

pub(crate) async fn template(args: TemplateArgs) -> Result<(), ClientError> {
    let ctx = Context::new(&args.common)?;
    let domain_id = ctx.domain_id().await?;
    let base = format!("/v5/{}/api/pipeline-templates", segment(&domain_id));
    match args.command {
        TemplateCommand::List {
            name,
            language,
            system,
            limit,
            offset,
        } => {
            let mut body = json!({"offset": offset, "limit": limit});
            if let Some(name) = name {
                body["name"] = json!(name);
            }
            if let Some(language) = language {
                body["language"] = json!(language);
            }
            if let Some(system) = system {
                body["is_system"] = json!(system);
            }
            let page = ctx.post(format!("{base}/list"), &body).await?;
            if ctx.is_json() {
                print_json(&page);
                return Ok(());
            }
            let mut table = Table::new(&[
                "TEMPLATE ID",
                "NAME",
                "LANGUAGE",
                "KIND",
                "FAVORITE",
                "UPDATED",
            ]);
            for template in page["templates"].as_array().into_iter().flatten() {
                table.row(vec![
                    text(&template["id"]),
                    text(&template["name"]),
                    text(&template["language"]),
                    if template["is_system"] == true {
                        "system"
                    } else {
                        "custom"
                    }
                    .to_owned(),
                    if is_true(&template["is_collect"]) {
                        "*"
                    } else {
                        ""
                    }
                    .to_owned(),
                    time(&template["update_time"]),
                ]);
            }
            print(&table.render());
            print(&format!(
                "{} of {} template(s)\n",
                page["templates"].as_array().map_or(0, Vec::len),
                text(&page["total"])
            ));
        }
        TemplateCommand::Show { template } => {
            let detail = ctx.get(format!("{base}/{}", segment(&template))).await?;
            if ctx.is_json() {
                print_json(&detail);
            } else {
                print(&show(&detail));
            }
        }
        TemplateCommand::Create {
            file,
            name,
            description,
            language,
        } => {
            let file = definition::read(&file)?;
            let name = name.or(file.name.clone()).ok_or_else(|| {
                ClientError::Invalid("the file names no template: pass --name NAME".to_owned())
            })?;
            let body = json!({
                "name": name,
                "description": description.or(file.description).unwrap_or_default(),
                "language": language,
                "is_system": false,
                "domain_id": domain_id,
                "is_show_source": false,
                "manifest_version": "3.0",
                "variables": file.variables,
                "definition": file.definition,
            });
            let answer = ctx.post(base.clone(), &body).await?;
            created(&ctx, &answer);
        }
        TemplateCommand::Copy { template, name } => {
            let detail = ctx.get(format!("{base}/{}", segment(&template))).await?;
            let mut body = Map::new();
            for key in [
                "description",
                "language",
                "variables",
                "definition",
                "is_show_source",
                "manifest_version",
            ] {
                if !detail[key].is_null() {
                    body.insert(key.to_owned(), detail[key].clone());
                }
            }
            body.insert("name".to_owned(), json!(name));
            body.insert("is_system".to_owned(), json!(false));
            body.insert("domain_id".to_owned(), json!(domain_id));
            body.entry("language").or_insert(json!("none"));
            body.entry("is_show_source").or_insert(json!(false));
            let answer = ctx.post(base.clone(), &Value::Object(body)).await?;
            created(&ctx, &answer);
        }
        TemplateCommand::Delete { template } => {
            let answer = ctx.delete(format!("{base}/{}", segment(&template))).await?;
            if ctx.is_json() {
                print_json(&answer);
            } else {
                print(&format!("Deleted template {template}.\n"));
            }
        }
        TemplateCommand::Favorite { template, off } => {
            let answer = ctx
                .send(
                    Call::new(
                        Method::POST,
                        format!("{base}/{}/favorite", segment(&template)),
                    )
                    .query("flag", if off { "false" } else { "true" }),
                )
                .await?
                .body;
            if ctx.is_json() {
                print_json(&answer);
            } else if off {
                print(&format!("Template {template} is no longer a favorite.\n"));
            } else {
                print(&format!("Template {template} is a favorite.\n"));
            }
        }
    }
    Ok(())
}

fn created(ctx: &Context, answer: &Value) {
    if ctx.is_json() {
        print_json(answer);
    } else {
        print(&format!(
            "Created template {}\n",
            text(&answer["templateId"])
        ));
    }
}

/// `is_collect` is a boolean in lists and the string `"true"` in details (spec §9.2).
fn is_true(value: &Value) -> bool {
    value == true || value == "true"
}

fn show(detail: &Value) -> String {
    let mut out = format!("{}  ({})\n", text(&detail["name"]), text(&detail["id"]));
    out.push_str(&format!(
        "  language     {}\n  kind         {}\n  favorite     {}\n  updated      {}\n",
        text(&detail["language"]),
        if detail["is_system"] == true {
            "system"
        } else {
            "custom"
        },
        if is_true(&detail["is_collect"]) {
            "yes"
        } else {
            "no"
        },
        time(&detail["update_time"]),
    ));
    if detail["description"]
        .as_str()
        .is_some_and(|text| !text.is_empty())
    {
        out.push_str(&format!(
            "  description  {}\n",
            text(&detail["description"])
        ));
    }
    let variables = detail["variables"].as_array().cloned().unwrap_or_default();
    if !variables.is_empty() {
        out.push_str("\nVariables\n");
        let mut table = Table::new(&["  NAME", "TYPE", "DEFAULT"]);
        for variable in &variables {
            table.row(vec![
                format!("  {}", text(&variable["name"])),
                text(&variable["type"]),
                text(&variable["value"]),
            ]);
        }
        out.push_str(&table.render());
    }
    let definition: Value = detail["definition"]
        .as_str()
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or(Value::Null);
    let stages = definition["stages"].as_array().cloned().unwrap_or_default();
    if !stages.is_empty() {
        out.push_str("\nStages\n");
        for stage in &stages {
            out.push_str(&format!("  {}\n", text(&stage["name"])));
            for job in stage["jobs"].as_array().into_iter().flatten() {
                out.push_str(&format!("    {}\n", text(&job["name"])));
            }
        }
    }
    out
}
