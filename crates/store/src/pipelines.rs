//! Pipelines: versioned definitions, custom variables (secret values encrypted), tags and group bindings, favorites.

use crate::Store;
use crate::error::StoreError;
use crate::sql::{self, Arg, Page, SortDir, SqlBuilder};
use runnel_domain::Timestamp;
use runnel_domain::params::{VariableSpec, VariableType};
use runnel_domain::status::RunStatus;
use std::future::Future;

mod read;
mod write;

use read::{pipeline_record, with_links};
pub(crate) use write::{bind_groups, set_tags};
// Also used by `triggers`, which writes a pipeline with its triggers and schedules.
pub(crate) use write::{insert_pipeline, replace_pipeline};

/// Layout version of the `compiled` record stored with each pipeline version.
pub const COMPILED_RECORD_FORMAT: i64 = 1;

/// A pipeline to create (spec §4.1). Variables arrive as the domain's parsed `VariableSpec`s.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPipeline {
    /// From [`crate::new_id`].
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub description: String,
    pub is_publish: bool,
    pub component_id: Option<String>,
    pub group_id: Option<String>,
    pub manifest_version: String,
    /// The definition exactly as received.
    pub definition: String,
    /// The normalized definition (identifiers generated, defaults filled), layout
    /// [`COMPILED_RECORD_FORMAT`]; the engine compiles runs from it.
    pub compiled: serde_json::Value,
    pub sources: serde_json::Value,
    /// Fields stored and echoed as given (`concurrency_control`, `execution_plans`,
    /// `cancel_strategy`, `agency_name`, `security_level`, …).
    pub settings: serde_json::Value,
    pub variables: Vec<VariableSpec>,
    /// Bound variable groups in binding order (the last wins on a name collision).
    pub variable_group_ids: Vec<String>,
    pub tag_ids: Vec<String>,
    pub origin_id: Option<String>,
    pub from_source: i64,
    pub creator_id: String,
    pub now: Timestamp,
}

/// A full replacement of a pipeline (spec §4.3); it becomes a new version.
///
/// Variables: an autoIncrement variable keeps its stored `latest_value` unless one is given,
/// and becomes `is_reset` when its value differs from the stored one (the user edited it).
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineUpdate {
    pub name: String,
    pub description: String,
    pub is_publish: bool,
    pub component_id: Option<String>,
    pub group_id: Option<String>,
    pub manifest_version: String,
    pub definition: String,
    pub compiled: serde_json::Value,
    pub sources: serde_json::Value,
    pub settings: serde_json::Value,
    pub variables: Vec<VariableSpec>,
    pub variable_group_ids: Vec<String>,
    /// `None` keeps the tags as they are.
    pub tag_ids: Option<Vec<String>>,
    pub updater_id: String,
    pub now: Timestamp,
}

/// A pipeline with its current version's definition.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineRecord {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub description: String,
    pub is_publish: bool,
    pub component_id: Option<String>,
    pub group_id: Option<String>,
    pub manifest_version: String,
    pub current_version: i64,
    pub last_run_number: i64,
    pub is_banned: bool,
    pub origin_id: Option<String>,
    pub from_source: i64,
    pub creator_id: String,
    pub updater_id: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// The current version's definition as given. Its compiled form is not read here (a
    /// pipeline is read on most requests, and only the engine's spec cache needs it, from
    /// [`PipelineStore::pipeline_version`]).
    pub definition: String,
    pub sources: serde_json::Value,
    pub settings: serde_json::Value,
    pub tag_ids: Vec<String>,
    pub variable_group_ids: Vec<String>,
}

/// A pipeline's own columns, without its definition, variables or links: what routes that
/// only read below a pipeline (runs, logs) need, in one light read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineHead {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub description: String,
    pub is_publish: bool,
    pub component_id: Option<String>,
    pub group_id: Option<String>,
    pub manifest_version: String,
    pub current_version: i64,
    pub last_run_number: i64,
    pub is_banned: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PipelineVersionRecord {
    pub pipeline_id: String,
    pub version: i64,
    pub definition: String,
    pub compiled: serde_json::Value,
    pub record_format: i64,
    pub sources: serde_json::Value,
    pub settings: serde_json::Value,
    pub created_by: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PipelineSortKey {
    Name,
    CreateTime,
    #[default]
    UpdateTime,
}

/// Filters of a pipeline list (spec §4.5). Every filter given must hold.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PipelineQuery {
    /// Case-insensitive substring of the name.
    pub name_contains: Option<String>,
    /// Pipelines in this group or any of its subgroups.
    pub group_id: Option<String>,
    pub creator_id: Option<String>,
    /// Any of these creators (empty = any).
    pub creator_ids: Vec<String>,
    pub component_id: Option<String>,
    /// Pipelines carrying any of these tags (empty = any).
    pub tag_ids: Vec<String>,
    pub exclude_id: Option<String>,
    /// `Some(false)`: only pipelines that are not disabled.
    pub is_banned: Option<bool>,
    /// Filters on each pipeline's latest run; a pipeline without runs matches none of them.
    pub latest_run: LatestRunFilter,
    pub is_publish: Option<bool>,
    /// Only the pipelines this user favorited.
    pub favorites_of: Option<String>,
    pub sort_key: PipelineSortKey,
    pub sort_dir: SortDir,
    pub offset: i64,
    pub limit: i64,
}

/// Filters on a pipeline's latest run (spec §4.5 `status`, `executor_ids`, `start_time`,
/// `end_time`, `pipeline_run_update_time`). Empty lists and `None` filter nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LatestRunFilter {
    pub statuses: Vec<RunStatus>,
    pub executor_ids: Vec<String>,
    /// Started at or after / at or before.
    pub started_from: Option<Timestamp>,
    pub started_to: Option<Timestamp>,
    /// Changed after.
    pub updated_after: Option<Timestamp>,
}

impl LatestRunFilter {
    pub fn is_empty(&self) -> bool {
        self.statuses.is_empty()
            && self.executor_ids.is_empty()
            && self.started_from.is_none()
            && self.started_to.is_none()
            && self.updated_after.is_none()
    }
}

/// Pipelines of projects (spec §4). Every write is one transaction; every update adds a
/// version row, so a run can always name the definition it ran. Reads by id are scoped by
/// project (an id of another project is `None`/`NotFound`, S1). Deleting is soft: the name is
/// free again, runs stay readable.
pub trait PipelineStore {
    fn create_pipeline(
        &self,
        pipeline: NewPipeline,
    ) -> impl Future<Output = Result<PipelineRecord, StoreError>> + Send;

    /// Returns the new version number.
    fn update_pipeline(
        &self,
        project_id: &str,
        pipeline_id: &str,
        update: PipelineUpdate,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send;

    fn pipeline(
        &self,
        project_id: &str,
        pipeline_id: &str,
    ) -> impl Future<Output = Result<Option<PipelineRecord>, StoreError>> + Send;

    /// The project's pipeline without definition, variables or links (`None` also for
    /// another project's or a deleted one).
    fn pipeline_head(
        &self,
        project_id: &str,
        pipeline_id: &str,
    ) -> impl Future<Output = Result<Option<PipelineHead>, StoreError>> + Send;

    /// Any project's pipeline, for the engine.
    fn pipeline_by_id(
        &self,
        pipeline_id: &str,
    ) -> impl Future<Output = Result<Option<PipelineRecord>, StoreError>> + Send;

    fn pipeline_version(
        &self,
        pipeline_id: &str,
        version: i64,
    ) -> impl Future<Output = Result<Option<PipelineVersionRecord>, StoreError>> + Send;

    fn list_pipelines(
        &self,
        project_id: &str,
        query: &PipelineQuery,
    ) -> impl Future<Output = Result<Page<PipelineRecord>, StoreError>> + Send;

    fn delete_pipeline(
        &self,
        project_id: &str,
        pipeline_id: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn set_banned(
        &self,
        project_id: &str,
        pipeline_id: &str,
        is_banned: bool,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The pipeline's custom variables in display order, secret values decrypted.
    fn variables(
        &self,
        pipeline_id: &str,
    ) -> impl Future<Output = Result<Vec<VariableSpec>, StoreError>> + Send;

    fn set_favorite(
        &self,
        user_id: &str,
        pipeline_id: &str,
        is_favorite: bool,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Which of `pipeline_ids` the user favorited.
    fn favorites_among(
        &self,
        user_id: &str,
        pipeline_ids: &[String],
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
}

macro_rules! pipeline_columns {
    () => {
        "p.id, p.project_id, p.name, p.description, p.is_publish, p.component_id, p.group_id, p.manifest_version, \
         p.current_version, p.last_run_number, p.is_banned, p.origin_id, p.from_source, p.creator_id, p.updater_id, \
         p.created_at, p.updated_at, v.definition, v.sources, v.settings \
         FROM pipelines p JOIN pipeline_versions v ON v.pipeline_id = p.id AND v.version = p.current_version"
    };
}

impl PipelineStore for Store {
    async fn create_pipeline(&self, pipeline: NewPipeline) -> Result<PipelineRecord, StoreError> {
        let secrets = self.secrets().clone();
        let id = pipeline.id.clone();
        let project_id = pipeline.project_id.clone();
        self.db()
            .write(move |conn| {
                Box::pin(async move { insert_pipeline(conn, &secrets, &pipeline).await })
            })
            .await?;
        self.pipeline(&project_id, &id)
            .await?
            .ok_or(StoreError::NotFound)
    }

    async fn update_pipeline(
        &self,
        project_id: &str,
        pipeline_id: &str,
        update: PipelineUpdate,
    ) -> Result<i64, StoreError> {
        let secrets = self.secrets().clone();
        let project_id = project_id.to_owned();
        let pipeline_id = pipeline_id.to_owned();
        self.db()
            .write(move |conn| {
                Box::pin(async move {
                    replace_pipeline(conn, &secrets, &project_id, &pipeline_id, &update).await
                })
            })
            .await
    }

    async fn pipeline(
        &self,
        project_id: &str,
        pipeline_id: &str,
    ) -> Result<Option<PipelineRecord>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            pipeline_columns!(),
            " WHERE p.id = $1 AND p.project_id = $2 AND p.deleted_at IS NULL"
        ))
        .bind(pipeline_id)
        .bind(project_id)
        .fetch_optional(self.db().reader())
        .await?;
        match row {
            Some(row) => Ok(Some(
                with_links(self.db().reader(), pipeline_record(&row)?).await?,
            )),
            None => Ok(None),
        }
    }

    async fn pipeline_head(
        &self,
        project_id: &str,
        pipeline_id: &str,
    ) -> Result<Option<PipelineHead>, StoreError> {
        let row = sqlx::query(
            "SELECT id, project_id, name, description, is_publish, component_id, group_id, manifest_version, \
             current_version, last_run_number, is_banned, created_at, updated_at FROM pipelines \
             WHERE id = $1 AND project_id = $2 AND deleted_at IS NULL",
        )
        .bind(pipeline_id)
        .bind(project_id)
        .fetch_optional(self.db().reader())
        .await?;
        row.map(|row| {
            Ok(PipelineHead {
                id: sql::text(&row, "id")?,
                project_id: sql::text(&row, "project_id")?,
                name: sql::text(&row, "name")?,
                description: sql::text(&row, "description")?,
                is_publish: sql::flag(&row, "is_publish")?,
                component_id: sql::opt_text(&row, "component_id")?,
                group_id: sql::opt_text(&row, "group_id")?,
                manifest_version: sql::text(&row, "manifest_version")?,
                current_version: sql::int(&row, "current_version")?,
                last_run_number: sql::int(&row, "last_run_number")?,
                is_banned: sql::flag(&row, "is_banned")?,
                created_at: sql::ts(&row, "created_at")?,
                updated_at: sql::ts(&row, "updated_at")?,
            })
        })
        .transpose()
    }

    async fn pipeline_by_id(
        &self,
        pipeline_id: &str,
    ) -> Result<Option<PipelineRecord>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            pipeline_columns!(),
            " WHERE p.id = $1 AND p.deleted_at IS NULL"
        ))
        .bind(pipeline_id)
        .fetch_optional(self.db().reader())
        .await?;
        match row {
            Some(row) => Ok(Some(
                with_links(self.db().reader(), pipeline_record(&row)?).await?,
            )),
            None => Ok(None),
        }
    }

    async fn pipeline_version(
        &self,
        pipeline_id: &str,
        version: i64,
    ) -> Result<Option<PipelineVersionRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT pipeline_id, version, definition, compiled, record_format, sources, settings, created_by, \
             created_at FROM pipeline_versions WHERE pipeline_id = $1 AND version = $2",
        )
        .bind(pipeline_id)
        .bind(version)
        .fetch_optional(self.db().reader())
        .await?;
        row.map(|row| {
            Ok(PipelineVersionRecord {
                pipeline_id: sql::text(&row, "pipeline_id")?,
                version: sql::int(&row, "version")?,
                definition: sql::text(&row, "definition")?,
                compiled: sql::json(&row, "compiled")?,
                record_format: sql::int(&row, "record_format")?,
                sources: sql::json(&row, "sources")?,
                settings: sql::json(&row, "settings")?,
                created_by: sql::text(&row, "created_by")?,
                created_at: sql::ts(&row, "created_at")?,
            })
        })
        .transpose()
    }

    async fn list_pipelines(
        &self,
        project_id: &str,
        query: &PipelineQuery,
    ) -> Result<Page<PipelineRecord>, StoreError> {
        let (offset, limit) = sql::window(
            query.offset,
            if query.limit == 0 { 10 } else { query.limit },
            100,
        );
        let mut select = SqlBuilder::new(concat!("SELECT ", pipeline_columns!()));
        let mut count = SqlBuilder::new("SELECT COUNT(*) AS total FROM pipelines p");
        let latest = &query.latest_run;
        for builder in [&mut select, &mut count] {
            if !latest.is_empty() {
                // The latest run is the one numbered `last_run_number` (unique per pipeline).
                builder.push(
                    " JOIN runs lr ON lr.pipeline_id = p.id AND lr.run_number = p.last_run_number",
                );
            }
            builder
                .push(" WHERE p.deleted_at IS NULL AND p.project_id = ")
                .bind(Arg::Text(project_id.to_owned()));
            push_extra_filters(builder, query);
            if let Some(name) = &query.name_contains {
                builder
                    .push(" AND LOWER(p.name) LIKE ")
                    .bind(Arg::Text(format!(
                        "%{}%",
                        escape_like(&name.to_lowercase())
                    )))
                    .push(" ESCAPE '\\'");
            }
            if let Some(group_id) = &query.group_id {
                builder
                    .push(
                        " AND p.group_id IN (SELECT g.id FROM pipeline_groups g WHERE g.project_id = p.project_id AND \
                         (g.id = ",
                    )
                    .bind(Arg::Text(group_id.clone()))
                    .push(" OR g.path_id LIKE ")
                    .bind(Arg::Text(format!("%{}.%", escape_like(group_id))))
                    .push(" ESCAPE '\\'))");
            }
            if let Some(creator_id) = &query.creator_id {
                builder
                    .push(" AND p.creator_id = ")
                    .bind(Arg::Text(creator_id.clone()));
            }
            if let Some(is_publish) = query.is_publish {
                builder
                    .push(" AND p.is_publish = ")
                    .bind(Arg::Int(sql::flag_value(is_publish)));
            }
            if let Some(user_id) = &query.favorites_of {
                builder
                    .push(
                        " AND p.id IN (SELECT pipeline_id FROM pipeline_favorites WHERE user_id = ",
                    )
                    .bind(Arg::Text(user_id.clone()))
                    .push(")");
            }
        }
        select.push(match (query.sort_key, query.sort_dir) {
            (PipelineSortKey::Name, SortDir::Asc) => " ORDER BY p.name, p.id",
            (PipelineSortKey::Name, SortDir::Desc) => " ORDER BY p.name DESC, p.id DESC",
            (PipelineSortKey::CreateTime, SortDir::Asc) => " ORDER BY p.created_at, p.id",
            (PipelineSortKey::CreateTime, SortDir::Desc) => {
                " ORDER BY p.created_at DESC, p.id DESC"
            }
            (PipelineSortKey::UpdateTime, SortDir::Asc) => " ORDER BY p.updated_at, p.id",
            (PipelineSortKey::UpdateTime, SortDir::Desc) => {
                " ORDER BY p.updated_at DESC, p.id DESC"
            }
        });
        select
            .push(" LIMIT ")
            .bind(Arg::Int(limit))
            .push(" OFFSET ")
            .bind(Arg::Int(offset));
        let pool = self.db().reader();
        let total = sql::int(&count.query().fetch_one(pool).await?, "total")?;
        let mut items = Vec::new();
        for row in select.query().fetch_all(pool).await? {
            items.push(with_links(pool, pipeline_record(&row)?).await?);
        }
        Ok(Page { total, items })
    }

    async fn delete_pipeline(
        &self,
        project_id: &str,
        pipeline_id: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let project_id = project_id.to_owned();
        let pipeline_id = pipeline_id.to_owned();
        self.db()
            .write(move |conn| {
                Box::pin(async move {
                    let done = sqlx::query(
                        "UPDATE pipelines SET deleted_at = $3, updated_at = $3 \
                         WHERE id = $1 AND project_id = $2 AND deleted_at IS NULL",
                    )
                    .bind(&pipeline_id)
                    .bind(&project_id)
                    .bind(sql::millis(now))
                    .execute(&mut *conn)
                    .await?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::NotFound);
                    }
                    sqlx::query("UPDATE schedules SET is_enabled = 0 WHERE pipeline_id = $1")
                        .bind(&pipeline_id)
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            })
            .await
    }

    async fn set_banned(
        &self,
        project_id: &str,
        pipeline_id: &str,
        is_banned: bool,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let project_id = project_id.to_owned();
        let pipeline_id = pipeline_id.to_owned();
        self.db()
            .write(move |conn| {
                Box::pin(async move {
                    let done = sqlx::query(
                        "UPDATE pipelines SET is_banned = $3, updated_at = $4 \
                         WHERE id = $1 AND project_id = $2 AND deleted_at IS NULL",
                    )
                    .bind(&pipeline_id)
                    .bind(&project_id)
                    .bind(sql::flag_value(is_banned))
                    .bind(sql::millis(now))
                    .execute(&mut *conn)
                    .await?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::NotFound);
                    }
                    Ok(())
                })
            })
            .await
    }

    async fn variables(&self, pipeline_id: &str) -> Result<Vec<VariableSpec>, StoreError> {
        let rows = sqlx::query(
            "SELECT name, sequence, type, value, value_ciphertext, is_secret, is_runtime, is_reset, description, \
             limits, latest_value FROM pipeline_variables WHERE pipeline_id = $1",
        )
        .bind(pipeline_id)
        .fetch_all(self.db().reader())
        .await?;
        let mut variables = Vec::with_capacity(rows.len());
        for row in rows {
            let name = sql::text(&row, "name")?;
            let value = match sql::opt_bytes(&row, "value_ciphertext")? {
                Some(sealed) => self
                    .secrets()
                    .open_text(&variable_context(pipeline_id, &name), &sealed)?,
                None => sql::opt_text(&row, "value")?.unwrap_or_default(),
            };
            let type_text = sql::text(&row, "type")?;
            variables.push(VariableSpec {
                var_type: VariableType::parse(&type_text).ok_or_else(|| {
                    StoreError::corrupt(format!("unknown variable type `{type_text}`"))
                })?,
                value,
                is_secret: sql::flag(&row, "is_secret")?,
                is_runtime: sql::flag(&row, "is_runtime")?,
                limits: sql::string_list(&row, "limits")?,
                description: sql::text(&row, "description")?,
                sequence: Some(sql::int(&row, "sequence")?),
                is_reset: sql::flag(&row, "is_reset")?,
                latest_value: sql::opt_text(&row, "latest_value")?,
                name,
            });
        }
        // In order here rather than by an ORDER BY, which made SQLite open a sorter on every
        // trigger, most often for no variable at all.
        variables
            .sort_by(|left, right| (left.sequence, &left.name).cmp(&(right.sequence, &right.name)));
        Ok(variables)
    }

    async fn set_favorite(
        &self,
        user_id: &str,
        pipeline_id: &str,
        is_favorite: bool,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let user_id = user_id.to_owned();
        let pipeline_id = pipeline_id.to_owned();
        self.db()
            .write(move |conn| {
                Box::pin(async move {
                    if is_favorite {
                        sqlx::query(
                            "INSERT INTO pipeline_favorites (user_id, pipeline_id, created_at) VALUES ($1, $2, $3) \
                             ON CONFLICT (user_id, pipeline_id) DO NOTHING",
                        )
                        .bind(&user_id)
                        .bind(&pipeline_id)
                        .bind(sql::millis(now))
                        .execute(&mut *conn)
                        .await?;
                    } else {
                        sqlx::query("DELETE FROM pipeline_favorites WHERE user_id = $1 AND pipeline_id = $2")
                            .bind(&user_id)
                            .bind(&pipeline_id)
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .await
    }

    async fn favorites_among(
        &self,
        user_id: &str,
        pipeline_ids: &[String],
    ) -> Result<Vec<String>, StoreError> {
        if pipeline_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut select =
            SqlBuilder::new("SELECT pipeline_id FROM pipeline_favorites WHERE user_id = ");
        select
            .bind(Arg::Text(user_id.to_owned()))
            .push(" AND pipeline_id IN ")
            .bind_list(pipeline_ids.iter().map(|id| Arg::Text(id.clone())));
        let rows = select.query().fetch_all(self.db().reader()).await?;
        rows.iter()
            .map(|row| sql::text(row, "pipeline_id"))
            .collect()
    }
}

/// Associated data of a pipeline variable's ciphertext.
pub(crate) fn variable_context(pipeline_id: &str, name: &str) -> String {
    format!("pipeline_variables:{pipeline_id}:{name}")
}

/// Escapes `%`, `_` and `\` for a LIKE pattern with `ESCAPE '\'`.
pub(crate) fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(ch);
    }
    out
}

/// The filters besides name, group, creator, kind and favorites (see [`PipelineQuery`]).
fn push_extra_filters(builder: &mut SqlBuilder, query: &PipelineQuery) {
    if !query.creator_ids.is_empty() {
        builder
            .push(" AND p.creator_id IN ")
            .bind_list(query.creator_ids.iter().map(|id| Arg::Text(id.clone())));
    }
    if let Some(component_id) = &query.component_id {
        builder
            .push(" AND p.component_id = ")
            .bind(Arg::Text(component_id.clone()));
    }
    if !query.tag_ids.is_empty() {
        builder
            .push(" AND p.id IN (SELECT t.pipeline_id FROM pipeline_tags t WHERE t.tag_id IN ")
            .bind_list(query.tag_ids.iter().map(|id| Arg::Text(id.clone())))
            .push(")");
    }
    if let Some(exclude_id) = &query.exclude_id {
        builder
            .push(" AND p.id <> ")
            .bind(Arg::Text(exclude_id.clone()));
    }
    if query.is_banned == Some(false) {
        builder.push(" AND p.is_banned = 0");
    }
    let latest = &query.latest_run;
    if !latest.statuses.is_empty() {
        builder.push(" AND lr.status IN ").bind_list(
            latest
                .statuses
                .iter()
                .map(|status| Arg::Text(status.as_str().to_owned())),
        );
    }
    if !latest.executor_ids.is_empty() {
        builder
            .push(" AND lr.executor_id IN ")
            .bind_list(latest.executor_ids.iter().map(|id| Arg::Text(id.clone())));
    }
    if let Some(from) = latest.started_from {
        builder
            .push(" AND lr.start_time >= ")
            .bind(Arg::Int(from.as_millis()));
    }
    if let Some(to) = latest.started_to {
        builder
            .push(" AND lr.start_time <= ")
            .bind(Arg::Int(to.as_millis()));
    }
    if let Some(after) = latest.updated_after {
        builder
            .push(" AND lr.updated_at > ")
            .bind(Arg::Int(after.as_millis()));
    }
}
