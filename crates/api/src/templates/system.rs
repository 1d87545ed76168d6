//! The shipped system templates: one YAML file per template in the repository's `templates/`
//! directory, embedded in the binary, compiled like any template at start, and written to the
//! store with their stable ids (upgraded in place when a file's content changes).

use super::check::check_definition;
use super::check::{canonical_language, check_name};
use runnel_domain::Timestamp;
use runnel_domain::compile::compile;
use runnel_domain::definition::yaml::desugar;
use runnel_domain::definition::{Format, parse_text, read_pipeline_value};
use runnel_store::{Store, StoreError, SystemTemplate, SystemTemplateSync, TemplateStore};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Bumped when the way files become templates changes, so every template is rewritten.
const CATALOG_FORMAT: &str = "runnel-system-templates-1";

/// Every shipped template: (file name, content).
const CATALOG: &[(&str, &str)] = &[
    (
        "generic.yml",
        include_str!("../../../../templates/generic.yml"),
    ),
    (
        "java-maven.yml",
        include_str!("../../../../templates/java-maven.yml"),
    ),
    (
        "python.yml",
        include_str!("../../../../templates/python.yml"),
    ),
    (
        "nodejs.yml",
        include_str!("../../../../templates/nodejs.yml"),
    ),
    ("go.yml", include_str!("../../../../templates/go.yml")),
    (
        "dotnet.yml",
        include_str!("../../../../templates/dotnet.yml"),
    ),
    (
        "cpp-cmake.yml",
        include_str!("../../../../templates/cpp-cmake.yml"),
    ),
    (
        "php-composer.yml",
        include_str!("../../../../templates/php-composer.yml"),
    ),
];

/// Why the system templates could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TemplateSyncError {
    /// A shipped file is wrong: a bug of this build, caught by the crate's tests.
    #[error("shipped template {file} is invalid: {problem}")]
    Catalog { file: &'static str, problem: String },
    #[error("while storing the system templates: {0}")]
    Store(#[from] StoreError),
}

/// Loads the shipped system templates into the store (at every start): missing ones are
/// added, changed ones upgraded in place (same id, favorites kept), retired ones removed.
pub async fn sync_system_templates(
    store: &Store,
    now: Timestamp,
) -> Result<SystemTemplateSync, TemplateSyncError> {
    let templates = system_templates(now)?;
    let report = store.sync_system_templates(templates, now).await?;
    tracing::info!(
        inserted = report.inserted.len(),
        upgraded = report.upgraded.len(),
        removed = report.removed.len(),
        unchanged = report.unchanged,
        "system templates loaded"
    );
    Ok(report)
}

/// The shipped templates, compiled.
pub(crate) fn system_templates(now: Timestamp) -> Result<Vec<SystemTemplate>, TemplateSyncError> {
    CATALOG
        .iter()
        .map(|(file, text)| load(file, text, now))
        .collect()
}

fn load(
    file: &'static str,
    text: &str,
    now: Timestamp,
) -> Result<SystemTemplate, TemplateSyncError> {
    let fail = |problem: String| TemplateSyncError::Catalog { file, problem };
    let mut document =
        parse_text(text, Format::Yaml).map_err(|diagnostic| fail(diagnostic.message))?;
    let top = document
        .as_object_mut()
        .ok_or_else(|| fail("the file must be a mapping".to_owned()))?;
    let mut take = |key: &str| -> Result<String, TemplateSyncError> {
        match top.remove(key) {
            Some(Value::String(text)) if !text.trim().is_empty() => Ok(text),
            _ => Err(fail(format!("`{key}` is required"))),
        }
    };
    let id = take("id")?;
    let language = take("language")?;
    if id.len() != 32 || !id.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Err(fail("`id` must be 32 hexadecimal digits".to_owned()));
    }
    if canonical_language(&language).is_none() {
        return Err(fail(format!("unknown language `{language}`")));
    }
    let mut diagnostics = Vec::new();
    let (body, _) = desugar(document, &mut diagnostics);
    let raw = read_pipeline_value(&body, &mut diagnostics);
    let spec = match compile(&raw) {
        Ok(spec) if diagnostics.is_empty() => spec,
        Ok(_) => return Err(fail(describe(&diagnostics))),
        Err(more) => {
            diagnostics.extend(more);
            return Err(fail(describe(&diagnostics)));
        }
    };
    let name = raw
        .name
        .clone()
        .ok_or_else(|| fail("`name` is required".to_owned()))?;
    check_name(&name).map_err(|err| fail(err.message()))?;
    let definition = serde_json::to_string(spec.definition())
        .map_err(|err| fail(format!("cannot encode the definition: {err}")))?;
    // The same checks as a template sent through the API (admission, secrets, variables).
    let (definition, variables) = check_definition(&definition, raw.variables.clone(), None, now)
        .map_err(|err| fail(err.message()))?;
    let mut hasher = Sha256::new();
    hasher.update(CATALOG_FORMAT.as_bytes());
    hasher.update([0]);
    hasher.update(text.as_bytes());
    Ok(SystemTemplate {
        id,
        name,
        description: raw.description.clone().unwrap_or_default(),
        language,
        manifest_version: "3.0".to_owned(),
        icon: None,
        is_show_source: true,
        definition,
        variables,
        content_hash: hex::encode(hasher.finalize()),
    })
}

fn describe(diagnostics: &[runnel_domain::Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(|diagnostic| format!("{}: {}", diagnostic.path, diagnostic.message))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_shipped_template_compiles_with_a_stable_id_and_a_release_version() {
        let templates = system_templates(Timestamp::from_millis(0)).expect("the catalog loads");
        assert_eq!(templates.len(), CATALOG.len());
        let ids: HashSet<&str> = templates
            .iter()
            .map(|template| template.id.as_str())
            .collect();
        assert_eq!(ids.len(), templates.len(), "ids are unique");
        let languages: HashSet<&str> = templates
            .iter()
            .filter_map(|template| canonical_language(&template.language))
            .collect();
        for language in [
            "java", "python", "nodejs", "go", "net", "cpp", "php", "none",
        ] {
            assert!(languages.contains(language), "a template for {language}");
        }
        for template in &templates {
            let release = template.variables.as_array().and_then(|variables| {
                variables
                    .iter()
                    .find(|variable| variable["name"] == "releaseVersion")
            });
            assert_eq!(
                release.map(|variable| &variable["type"]),
                Some(&Value::from("autoIncrement")),
                "{}",
                template.name
            );
            let definition: Value = serde_json::from_str(&template.definition).expect("json");
            let stages = definition["stages"].as_array().expect("stages");
            let kinds: HashSet<&str> = stages
                .iter()
                .flat_map(|stage| stage["jobs"].as_array().into_iter().flatten())
                .flat_map(|job| job["steps"].as_array().into_iter().flatten())
                .filter_map(|step| step["business_type"].as_str())
                .collect();
            for kind in ["Build", "Gate", "Test", "Deploy"] {
                assert!(kinds.contains(kind), "{} has a {kind} step", template.name);
            }
        }
        let again = system_templates(Timestamp::from_millis(99)).expect("loads");
        assert_eq!(
            again, templates,
            "loading is deterministic (hash and definition)"
        );
    }
}
