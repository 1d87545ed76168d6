//! Naming things on the command line: ids, names and run numbers resolved to ids.

use super::Context;
use super::error::ClientError;
use super::sign::encode;
use serde_json::{Value, json};

/// Server-generated ids are 32 lower-case hex digits (spec §1.2).
pub(crate) fn is_hex_id(text: &str) -> bool {
    text.len() == 32 && text.bytes().all(|byte| byte.is_ascii_hexdigit())
}

/// An id that may go into a URL path as one segment.
pub(crate) fn segment(text: &str) -> String {
    encode(text)
}

/// The project named `given` (id or name) in a `GET /v5/projects` answer.
pub(crate) fn find_project(projects: &Value, given: &str) -> Result<String, ClientError> {
    let list = projects["projects"].as_array().cloned().unwrap_or_default();
    list.iter()
        .find(|project| project["project_id"] == given)
        .or_else(|| list.iter().find(|project| project["name"] == given))
        .and_then(|project| project["project_id"].as_str())
        .map(str::to_owned)
        .ok_or_else(|| {
            ClientError::Invalid(format!(
                "you are not a member of a project named {given:?}; `runnel project list` shows yours"
            ))
        })
}

/// A pipeline by id, or by exact name within the project.
pub(crate) async fn pipeline_id(
    ctx: &Context,
    project_id: &str,
    given: &str,
) -> Result<String, ClientError> {
    if is_hex_id(given) {
        return Ok(given.to_owned());
    }
    let mut offset = 0;
    loop {
        let page = ctx
            .post(
                format!("/v5/{}/api/pipelines/list", segment(project_id)),
                &json!({"name": given, "offset": offset, "limit": 100}),
            )
            .await?;
        let pipelines = page["pipelines"].as_array().cloned().unwrap_or_default();
        if let Some(found) = pipelines.iter().find(|pipeline| pipeline["name"] == given) {
            return found["pipeline_id"]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| {
                    ClientError::Protocol("a listed pipeline has no pipeline_id".to_owned())
                });
        }
        offset += pipelines.len();
        let total = page["total"].as_u64().unwrap_or(0);
        if pipelines.is_empty() || offset as u64 >= total {
            return Err(ClientError::Invalid(format!(
                "the project has no pipeline named {given:?}; `runnel pipeline list` shows its pipelines"
            )));
        }
    }
}

/// A run number (`7` or `#7`), as opposed to a run id.
pub(crate) fn run_number(given: &str) -> Option<u64> {
    let digits = given.strip_prefix('#').unwrap_or(given);
    (digits.len() < 16 && !digits.is_empty())
        .then(|| digits.parse().ok())
        .flatten()
}

/// The run detail of a run given by id or number.
pub(crate) async fn run_detail(
    ctx: &Context,
    project_id: &str,
    pipeline_id: &str,
    run: &str,
) -> Result<Value, ClientError> {
    let path = format!(
        "/v5/{}/api/pipelines/{}/pipeline-runs/detail",
        segment(project_id),
        segment(pipeline_id)
    );
    let call = super::http::Call::new(reqwest::Method::GET, path);
    let call = match run_number(run) {
        Some(number) => call.query("pipeline_run_number", number.to_string()),
        None => call.query("pipeline_run_id", run),
    };
    Ok(ctx.send(call).await?.body)
}

/// Finds which pipeline of the project a run id belongs to (when `--pipeline` was not given):
/// one run-detail request per pipeline until one knows the run.
pub(crate) async fn locate_run(
    ctx: &Context,
    project_id: &str,
    run_id: &str,
) -> Result<(String, Value), ClientError> {
    if run_number(run_id).is_some() {
        return Err(ClientError::Invalid(
            "a run number needs --pipeline to say whose run it is".to_owned(),
        ));
    }
    let mut offset = 0;
    loop {
        let page = ctx
            .post(
                format!("/v5/{}/api/pipelines/list", segment(project_id)),
                &json!({"offset": offset, "limit": 100, "sort_key": "update_time", "sort_dir": "desc"}),
            )
            .await?;
        let pipelines = page["pipelines"].as_array().cloned().unwrap_or_default();
        for pipeline in &pipelines {
            let Some(pipeline_id) = pipeline["pipeline_id"].as_str() else {
                continue;
            };
            match run_detail(ctx, project_id, pipeline_id, run_id).await {
                Ok(detail) => return Ok((pipeline_id.to_owned(), detail)),
                Err(ClientError::Refused { code, .. }) if code == "DEVPIPE.00011402" => {}
                Err(other) => return Err(other),
            }
        }
        offset += pipelines.len();
        let total = page["total"].as_u64().unwrap_or(0);
        if pipelines.is_empty() || offset as u64 >= total {
            return Err(ClientError::Invalid(format!(
                "no pipeline of the project has a run {run_id:?}; check the id or pass --pipeline"
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_numbers_and_ids_are_told_apart() {
        assert_eq!(run_number("7"), Some(7));
        assert_eq!(run_number("#12"), Some(12));
        assert_eq!(run_number("0b73fd4ad78e4a6494004d083df7a810"), None);
        assert_eq!(run_number("12345678901234567890123456789012"), None);
        assert_eq!(run_number("#"), None);
    }

    #[test]
    fn projects_are_found_by_id_or_name() {
        let projects = json!({"projects": [
            {"project_id": "a".repeat(32), "name": "alpha"},
            {"project_id": "b".repeat(32), "name": "beta"}
        ]});
        assert_eq!(
            find_project(&projects, "beta").expect("by name"),
            "b".repeat(32)
        );
        assert_eq!(
            find_project(&projects, &"a".repeat(32)).expect("by id"),
            "a".repeat(32)
        );
        assert!(find_project(&projects, "gamma").is_err());
    }
}
