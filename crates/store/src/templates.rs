//! Pipeline templates (system and custom, per tenant), users' template favorites, the shipped
//! system templates' in-place upgrade, v3 template creation tasks, and the v3 cross-project
//! pipeline list (spec §2, §3.1, §9).

mod legacy;
mod system;
mod tasks;
#[cfg(test)]
mod tests;

pub use legacy::{
    LegacyBuildRow, LegacyPipelineQuery, LegacyPipelineRow, LegacyPipelineStore, LegacySortKey,
};
pub use system::{SystemTemplate, SystemTemplateSync};
pub use tasks::{NewTemplateTask, TemplateTaskRecord, TemplateTaskStatus};

use crate::Store;
use crate::error::StoreError;
use crate::sql::{self, Arg, Page, SortDir, SqlBuilder};
use runnel_domain::Timestamp;
use sqlx::any::AnyRow;
use std::future::Future;

/// A template to create or the full replacement of one (spec §9).
#[derive(Debug, Clone, PartialEq)]
pub struct NewTemplate {
    /// `None` only for system templates, which every tenant sees.
    pub domain_id: Option<String>,
    pub name: String,
    pub description: String,
    pub language: String,
    pub manifest_version: String,
    pub icon: Option<String>,
    pub is_system: bool,
    pub is_show_source: bool,
    pub definition: String,
    /// Custom variables as given (JSON array of `CustomVariable`).
    pub variables: serde_json::Value,
    pub actor_id: String,
    pub now: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TemplateRecord {
    pub id: String,
    pub domain_id: Option<String>,
    pub name: String,
    pub description: String,
    pub language: String,
    pub manifest_version: String,
    pub icon: Option<String>,
    pub is_system: bool,
    pub is_show_source: bool,
    pub definition: String,
    pub variables: serde_json::Value,
    pub creator_id: String,
    pub updater_id: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct TemplateQuery {
    pub name_contains: Option<String>,
    /// Compared case-insensitively.
    pub language: Option<String>,
    /// Any of these spellings, compared case-insensitively (empty: no filter).
    pub languages: Vec<String>,
    pub is_system: Option<bool>,
    /// Only this user's favorites.
    pub favorites_of: Option<String>,
    pub sort_key: TemplateSortKey,
    pub sort_dir: SortDir,
    pub offset: i64,
    pub limit: i64,
}

/// Templates of a tenant plus the system templates every tenant sees (spec §9). System
/// templates cannot be changed or deleted through `update_template`/`delete_template`
/// (`Invalid`); they are seeded by the server.
pub trait TemplateStore {
    fn create_template(
        &self,
        template: NewTemplate,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;
    fn update_template(
        &self,
        domain_id: &str,
        template_id: &str,
        template: NewTemplate,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn delete_template(
        &self,
        domain_id: &str,
        template_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// A template of the tenant, or a system template.
    fn template(
        &self,
        domain_id: &str,
        template_id: &str,
    ) -> impl Future<Output = Result<Option<TemplateRecord>, StoreError>> + Send;
    fn list_templates(
        &self,
        domain_id: &str,
        query: &TemplateQuery,
    ) -> impl Future<Output = Result<Page<TemplateRecord>, StoreError>> + Send;
    fn set_template_favorite(
        &self,
        user_id: &str,
        template_id: &str,
        is_favorite: bool,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn is_template_favorite(
        &self,
        user_id: &str,
        template_id: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Which of `template_ids` the user favorited (for lists).
    fn template_favorites_among(
        &self,
        user_id: &str,
        template_ids: &[String],
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// Makes the stored system templates exactly the shipped ones, in ONE transaction: a missing
    /// one is inserted with its stable id, one whose `content_hash` differs is upgraded in place
    /// (id, creation time and favorites kept), and a system template no longer shipped is
    /// deleted. Idempotent, and safe when several servers start at once.
    fn sync_system_templates(
        &self,
        templates: Vec<SystemTemplate>,
        now: Timestamp,
    ) -> impl Future<Output = Result<SystemTemplateSync, StoreError>> + Send;

    /// Records a v3 creation task (spec §2.1) as `initializing`.
    fn create_template_task(
        &self,
        task: NewTemplateTask,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Moves a task on; `pipeline_id` is set once the pipeline exists.
    fn update_template_task(
        &self,
        task_id: &str,
        status: TemplateTaskStatus,
        pipeline_id: Option<String>,
        message: String,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn template_task(
        &self,
        task_id: &str,
    ) -> impl Future<Output = Result<Option<TemplateTaskRecord>, StoreError>> + Send;
}

/// What a template list is sorted by (ties broken by id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TemplateSortKey {
    #[default]
    CreateTime,
    UpdateTime,
    Name,
}

const TEMPLATE_COLUMNS: &str = "id, domain_id, name, description, language, manifest_version, icon, is_system, \
     is_show_source, definition, variables, creator_id, updater_id, created_at, updated_at";

impl TemplateStore for Store {
    async fn create_template(&self, template: NewTemplate) -> Result<String, StoreError> {
        let id = crate::new_id();
        let template_id = id.clone();
        self.db()
            .write(move |conn| {
                Box::pin(async move {
                    sqlx::query(
                        "INSERT INTO templates (id, domain_id, name, description, language, manifest_version, icon, is_system, \
                         is_show_source, definition, variables, creator_id, updater_id, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13, $13)",
                    )
                    .bind(&template_id)
                    .bind(template.domain_id.as_deref())
                    .bind(&template.name)
                    .bind(&template.description)
                    .bind(&template.language)
                    .bind(&template.manifest_version)
                    .bind(template.icon.as_deref())
                    .bind(sql::flag_value(template.is_system))
                    .bind(sql::flag_value(template.is_show_source))
                    .bind(&template.definition)
                    .bind(sql::to_json(&template.variables)?)
                    .bind(&template.actor_id)
                    .bind(sql::millis(template.now))
                    .execute(&mut *conn)
                    .await?;
                    Ok(())
                })
            })
            .await?;
        Ok(id)
    }

    async fn update_template(
        &self,
        domain_id: &str,
        template_id: &str,
        template: NewTemplate,
    ) -> Result<(), StoreError> {
        let (domain_id, template_id) = (domain_id.to_owned(), template_id.to_owned());
        self.db()
            .write(move |conn| {
                Box::pin(async move {
                    refuse_system(conn, &domain_id, &template_id).await?;
                    sqlx::query(
                        "UPDATE templates SET name = $3, description = $4, language = $5, manifest_version = $6, icon = $7, \
                         is_show_source = $8, definition = $9, variables = $10, updater_id = $11, updated_at = $12 \
                         WHERE id = $1 AND domain_id = $2",
                    )
                    .bind(&template_id)
                    .bind(&domain_id)
                    .bind(&template.name)
                    .bind(&template.description)
                    .bind(&template.language)
                    .bind(&template.manifest_version)
                    .bind(template.icon.as_deref())
                    .bind(sql::flag_value(template.is_show_source))
                    .bind(&template.definition)
                    .bind(sql::to_json(&template.variables)?)
                    .bind(&template.actor_id)
                    .bind(sql::millis(template.now))
                    .execute(&mut *conn)
                    .await?;
                    Ok(())
                })
            })
            .await
    }

    async fn delete_template(&self, domain_id: &str, template_id: &str) -> Result<(), StoreError> {
        let (domain_id, template_id) = (domain_id.to_owned(), template_id.to_owned());
        self.db()
            .write(move |conn| {
                Box::pin(async move {
                    refuse_system(conn, &domain_id, &template_id).await?;
                    sqlx::query("DELETE FROM templates WHERE id = $1 AND domain_id = $2")
                        .bind(&template_id)
                        .bind(&domain_id)
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            })
            .await
    }

    async fn template(
        &self,
        domain_id: &str,
        template_id: &str,
    ) -> Result<Option<TemplateRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TEMPLATE_COLUMNS} FROM templates WHERE id = $1 AND (domain_id = $2 OR is_system = 1)"
        )))
        .bind(template_id)
        .bind(domain_id)
        .fetch_optional(self.db().reader())
        .await?;
        row.map(|row| template_record(&row)).transpose()
    }

    async fn list_templates(
        &self,
        domain_id: &str,
        query: &TemplateQuery,
    ) -> Result<Page<TemplateRecord>, StoreError> {
        let (offset, limit) = sql::window(
            query.offset,
            if query.limit == 0 { 10 } else { query.limit },
            100,
        );
        let mut select = SqlBuilder::new(
            "SELECT id, domain_id, name, description, language, manifest_version, icon, is_system, is_show_source, \
             definition, variables, creator_id, updater_id, created_at, updated_at FROM templates",
        );
        let mut count = SqlBuilder::new("SELECT COUNT(*) AS total FROM templates");
        for builder in [&mut select, &mut count] {
            builder
                .push(" WHERE (domain_id = ")
                .bind(Arg::Text(domain_id.to_owned()))
                .push(" OR is_system = 1)");
            if let Some(name) = &query.name_contains {
                builder
                    .push(" AND LOWER(name) LIKE ")
                    .bind(Arg::Text(format!(
                        "%{}%",
                        crate::pipelines::escape_like(&name.to_lowercase())
                    )))
                    .push(" ESCAPE '\\'");
            }
            if let Some(language) = &query.language {
                builder
                    .push(" AND LOWER(language) = ")
                    .bind(Arg::Text(language.to_lowercase()));
            }
            if !query.languages.is_empty() {
                builder.push(" AND LOWER(language) IN ").bind_list(
                    query
                        .languages
                        .iter()
                        .map(|language| Arg::Text(language.to_lowercase())),
                );
            }
            if let Some(is_system) = query.is_system {
                builder
                    .push(" AND is_system = ")
                    .bind(Arg::Int(sql::flag_value(is_system)));
            }
            if let Some(user_id) = &query.favorites_of {
                builder
                    .push(" AND id IN (SELECT template_id FROM template_favorites WHERE user_id = ")
                    .bind(Arg::Text(user_id.clone()))
                    .push(")");
            }
        }
        select.push(match (query.sort_key, query.sort_dir) {
            (TemplateSortKey::Name, SortDir::Asc) => " ORDER BY name, id",
            (TemplateSortKey::Name, SortDir::Desc) => " ORDER BY name DESC, id DESC",
            (TemplateSortKey::CreateTime, SortDir::Asc) => " ORDER BY created_at, id",
            (TemplateSortKey::CreateTime, SortDir::Desc) => " ORDER BY created_at DESC, id DESC",
            (TemplateSortKey::UpdateTime, SortDir::Asc) => " ORDER BY updated_at, id",
            (TemplateSortKey::UpdateTime, SortDir::Desc) => " ORDER BY updated_at DESC, id DESC",
        });
        select
            .push(" LIMIT ")
            .bind(Arg::Int(limit))
            .push(" OFFSET ")
            .bind(Arg::Int(offset));
        let pool = self.db().reader();
        let total = sql::int(&count.query().fetch_one(pool).await?, "total")?;
        let rows = select.query().fetch_all(pool).await?;
        let items = rows.iter().map(template_record).collect::<Result<_, _>>()?;
        Ok(Page { total, items })
    }

    async fn set_template_favorite(
        &self,
        user_id: &str,
        template_id: &str,
        is_favorite: bool,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let (user_id, template_id) = (user_id.to_owned(), template_id.to_owned());
        self.db()
            .write_statement(move |conn| {
                Box::pin(async move {
                    if is_favorite {
                        sqlx::query(
                            "INSERT INTO template_favorites (user_id, template_id, created_at) VALUES ($1, $2, $3) \
                             ON CONFLICT (user_id, template_id) DO NOTHING",
                        )
                        .bind(&user_id)
                        .bind(&template_id)
                        .bind(sql::millis(now))
                        .execute(&mut *conn)
                        .await?;
                    } else {
                        sqlx::query("DELETE FROM template_favorites WHERE user_id = $1 AND template_id = $2")
                            .bind(&user_id)
                            .bind(&template_id)
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .await
    }

    async fn is_template_favorite(
        &self,
        user_id: &str,
        template_id: &str,
    ) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS found FROM template_favorites WHERE user_id = $1 AND template_id = $2")
            .bind(user_id)
            .bind(template_id)
            .fetch_one(self.db().reader())
            .await?;
        Ok(sql::int(&row, "found")? > 0)
    }

    async fn template_favorites_among(
        &self,
        user_id: &str,
        template_ids: &[String],
    ) -> Result<Vec<String>, StoreError> {
        if template_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut select =
            SqlBuilder::new("SELECT template_id FROM template_favorites WHERE user_id = ");
        select
            .bind(Arg::Text(user_id.to_owned()))
            .push(" AND template_id IN ")
            .bind_list(template_ids.iter().cloned().map(Arg::Text));
        let rows = select.query().fetch_all(self.db().reader()).await?;
        rows.iter()
            .map(|row| sql::text(row, "template_id"))
            .collect()
    }

    async fn sync_system_templates(
        &self,
        templates: Vec<SystemTemplate>,
        now: Timestamp,
    ) -> Result<SystemTemplateSync, StoreError> {
        system::sync(self, templates, now).await
    }

    async fn create_template_task(&self, task: NewTemplateTask) -> Result<(), StoreError> {
        tasks::create(self, task).await
    }

    async fn update_template_task(
        &self,
        task_id: &str,
        status: TemplateTaskStatus,
        pipeline_id: Option<String>,
        message: String,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        tasks::update(self, task_id, status, pipeline_id, message, now).await
    }

    async fn template_task(&self, task_id: &str) -> Result<Option<TemplateTaskRecord>, StoreError> {
        tasks::get(self, task_id).await
    }
}

/// `NotFound` for an unknown template, `Invalid` for a system template.
async fn refuse_system(
    conn: &mut sqlx::AnyConnection,
    domain_id: &str,
    template_id: &str,
) -> Result<(), StoreError> {
    let row = sqlx::query(
        "SELECT is_system FROM templates WHERE id = $1 AND (domain_id = $2 OR is_system = 1)",
    )
    .bind(template_id)
    .bind(domain_id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(StoreError::NotFound)?;
    if sql::flag(&row, "is_system")? {
        return Err(StoreError::Invalid(
            "system templates cannot be changed".to_owned(),
        ));
    }
    Ok(())
}

fn template_record(row: &AnyRow) -> Result<TemplateRecord, StoreError> {
    Ok(TemplateRecord {
        id: sql::text(row, "id")?,
        domain_id: sql::opt_text(row, "domain_id")?,
        name: sql::text(row, "name")?,
        description: sql::text(row, "description")?,
        language: sql::text(row, "language")?,
        manifest_version: sql::text(row, "manifest_version")?,
        icon: sql::opt_text(row, "icon")?,
        is_system: sql::flag(row, "is_system")?,
        is_show_source: sql::flag(row, "is_show_source")?,
        definition: sql::text(row, "definition")?,
        variables: sql::json(row, "variables")?,
        creator_id: sql::text(row, "creator_id")?,
        updater_id: sql::text(row, "updater_id")?,
        created_at: sql::ts(row, "created_at")?,
        updated_at: sql::ts(row, "updated_at")?,
    })
}
