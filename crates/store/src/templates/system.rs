//! The shipped system templates: inserted with stable ids, upgraded in place when their
//! content hash changes, removed when no longer shipped.

use crate::Store;
use crate::error::StoreError;
use crate::sql::{self, Arg, SqlBuilder};
use runnel_domain::Timestamp;

/// The creator and updater recorded for system templates.
pub(super) const SYSTEM_ACTOR: &str = "system";

/// One shipped system template, as the server builds it from its embedded files.
#[derive(Debug, Clone, PartialEq)]
pub struct SystemTemplate {
    /// Stable across versions: favorites and links keep working after an upgrade.
    pub id: String,
    pub name: String,
    pub description: String,
    pub language: String,
    pub manifest_version: String,
    pub icon: Option<String>,
    pub is_show_source: bool,
    pub definition: String,
    /// Custom variables (JSON array of `CustomVariable`).
    pub variables: serde_json::Value,
    /// A digest of the shipped content; a different value upgrades the stored row.
    pub content_hash: String,
}

/// What a sync changed (ids).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SystemTemplateSync {
    pub inserted: Vec<String>,
    pub upgraded: Vec<String>,
    pub removed: Vec<String>,
    pub unchanged: usize,
}

pub(super) async fn sync(
    store: &Store,
    templates: Vec<SystemTemplate>,
    now: Timestamp,
) -> Result<SystemTemplateSync, StoreError> {
    store
        .db()
        .write(move |conn| {
            Box::pin(async move {
                let mut report = SystemTemplateSync::default();
                for template in &templates {
                    // Insert-if-absent then update-if-different: both are no-ops when another
                    // server did the same a moment ago.
                    let inserted = sqlx::query(
                        "INSERT INTO templates (id, domain_id, name, description, language, manifest_version, icon, \
                         is_system, is_show_source, definition, variables, creator_id, updater_id, created_at, updated_at, \
                         content_hash) VALUES ($1, NULL, $2, $3, $4, $5, $6, 1, $7, $8, $9, $10, $10, $11, $11, $12) \
                         ON CONFLICT (id) DO NOTHING",
                    )
                    .bind(&template.id)
                    .bind(&template.name)
                    .bind(&template.description)
                    .bind(&template.language)
                    .bind(&template.manifest_version)
                    .bind(template.icon.as_deref())
                    .bind(sql::flag_value(template.is_show_source))
                    .bind(&template.definition)
                    .bind(sql::to_json(&template.variables)?)
                    .bind(SYSTEM_ACTOR)
                    .bind(sql::millis(now))
                    .bind(&template.content_hash)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
                    if inserted > 0 {
                        report.inserted.push(template.id.clone());
                        continue;
                    }
                    let upgraded = sqlx::query(
                        "UPDATE templates SET name = $2, description = $3, language = $4, manifest_version = $5, icon = $6, \
                         is_show_source = $7, definition = $8, variables = $9, updater_id = $10, updated_at = $11, \
                         content_hash = $12 \
                         WHERE id = $1 AND is_system = 1 AND (content_hash IS NULL OR content_hash <> $12)",
                    )
                    .bind(&template.id)
                    .bind(&template.name)
                    .bind(&template.description)
                    .bind(&template.language)
                    .bind(&template.manifest_version)
                    .bind(template.icon.as_deref())
                    .bind(sql::flag_value(template.is_show_source))
                    .bind(&template.definition)
                    .bind(sql::to_json(&template.variables)?)
                    .bind(SYSTEM_ACTOR)
                    .bind(sql::millis(now))
                    .bind(&template.content_hash)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
                    if upgraded > 0 {
                        report.upgraded.push(template.id.clone());
                    } else {
                        report.unchanged += 1;
                    }
                }
                let mut retired = SqlBuilder::new("SELECT id FROM templates WHERE is_system = 1");
                if !templates.is_empty() {
                    retired
                        .push(" AND id NOT IN ")
                        .bind_list(templates.iter().map(|template| Arg::Text(template.id.clone())));
                }
                let rows = retired.query().fetch_all(&mut *conn).await?;
                for row in &rows {
                    let id = sql::text(row, "id")?;
                    sqlx::query("DELETE FROM templates WHERE id = $1 AND is_system = 1")
                        .bind(&id)
                        .execute(&mut *conn)
                        .await?;
                    report.removed.push(id);
                }
                Ok(report)
            })
        })
        .await
}
