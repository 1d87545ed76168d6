//! The v3 pipeline list across the caller's projects (spec §3.1): filters on the pipeline and
//! on its latest run, the caller's favorites as `watched`.

use crate::Store;
use crate::error::StoreError;
use crate::pipelines::escape_like;
use crate::sql::{self, Arg, Page, SortDir, SqlBuilder};
use runnel_domain::Timestamp;
use runnel_domain::status::RunStatus;
use sqlx::any::AnyRow;
use std::future::Future;

/// What the v3 list is sorted by (ties: creation time, then id, in the same direction).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LegacySortKey {
    Name,
    CreateTime,
    /// The latest run's start; pipelines never run count as the oldest.
    #[default]
    StartTime,
}

/// Filters of `POST /v3/pipelines/list`. Empty lists mean "any".
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LegacyPipelineQuery {
    /// The caller's account: only its projects are searched.
    pub domain_id: String,
    /// The caller: only projects they are a member of; `watched` is their favorite mark.
    pub user_id: String,
    pub project_ids: Vec<String>,
    pub creator_ids: Vec<String>,
    /// The latest run's executor.
    pub executor_ids: Vec<String>,
    /// Case-insensitive substring of the name.
    pub name_contains: Option<String>,
    /// The latest run's status; a pipeline without runs never matches a non-empty list.
    pub latest_statuses: Vec<RunStatus>,
    /// A repository URL the pipeline's current sources name (`git_url` or `ssh_git_url`).
    pub git_url: Option<String>,
    /// Only pipelines the caller follows (`true`) or does not follow (`false`).
    pub watched: Option<bool>,
    pub sort_key: LegacySortKey,
    pub sort_dir: SortDir,
    pub offset: i64,
    /// Clamped to 1..=100.
    pub limit: i64,
}

/// One pipeline of the v3 list, with its latest run.
#[derive(Debug, Clone, PartialEq)]
pub struct LegacyPipelineRow {
    pub pipeline_id: String,
    pub pipeline_name: String,
    pub project_id: String,
    pub project_name: String,
    pub creator_id: String,
    pub creator_name: String,
    pub created_at: Timestamp,
    pub executor_id: Option<String>,
    pub executor_name: Option<String>,
    pub latest_start: Option<Timestamp>,
    pub latest_status: Option<RunStatus>,
    pub is_watched: bool,
}

/// One run of `GET /v3/pipelines/build-result` (spec §3.5).
#[derive(Debug, Clone, PartialEq)]
pub struct LegacyBuildRow {
    pub run_id: String,
    pub pipeline_id: String,
    pub pipeline_name: String,
    pub status: RunStatus,
    pub start_time: Timestamp,
    pub end_time: Option<Timestamp>,
}

/// Pipelines of every project the caller belongs to, for the legacy v3 API.
pub trait LegacyPipelineStore {
    fn list_pipelines_v3(
        &self,
        query: &LegacyPipelineQuery,
    ) -> impl Future<Output = Result<Page<LegacyPipelineRow>, StoreError>> + Send;

    /// Runs of the project's (not deleted) pipelines started in `[from, to]`, newest first.
    /// `limit` is clamped to 1..=100.
    fn build_results(
        &self,
        project_id: &str,
        from: Timestamp,
        to: Timestamp,
        offset: i64,
        limit: i64,
    ) -> impl Future<Output = Result<Page<LegacyBuildRow>, StoreError>> + Send;
}

impl LegacyPipelineStore for Store {
    async fn list_pipelines_v3(
        &self,
        query: &LegacyPipelineQuery,
    ) -> Result<Page<LegacyPipelineRow>, StoreError> {
        let (offset, limit) = sql::window(query.offset, query.limit, 100);
        let mut select = SqlBuilder::new(
            "SELECT p.id, p.name, p.project_id, pr.name AS project_name, p.creator_id, \
             COALESCE(cu.name, '') AS creator_name, p.created_at, lr.executor_id, lr.executor_name, \
             lr.start_time, lr.status AS run_status, \
             CAST(CASE WHEN f.user_id IS NULL THEN 0 ELSE 1 END AS BIGINT) AS watched",
        );
        let mut count = SqlBuilder::new("SELECT COUNT(*) AS total");
        for builder in [&mut select, &mut count] {
            builder
                .push(
                    " FROM pipelines p JOIN projects pr ON pr.id = p.project_id \
                     JOIN members m ON m.project_id = p.project_id AND m.user_id = ",
                )
                .bind(Arg::Text(query.user_id.clone()))
                .push(
                    " LEFT JOIN users cu ON cu.id = p.creator_id \
                     LEFT JOIN runs lr ON lr.pipeline_id = p.id AND lr.run_number = p.last_run_number \
                     LEFT JOIN pipeline_favorites f ON f.pipeline_id = p.id AND f.user_id = ",
                )
                .bind(Arg::Text(query.user_id.clone()))
                .push(" WHERE p.deleted_at IS NULL AND pr.domain_id = ")
                .bind(Arg::Text(query.domain_id.clone()));
            filters(builder, query);
        }
        select.push(match (query.sort_key, query.sort_dir) {
            (LegacySortKey::Name, SortDir::Asc) => " ORDER BY p.name, p.created_at, p.id",
            (LegacySortKey::Name, SortDir::Desc) => {
                " ORDER BY p.name DESC, p.created_at DESC, p.id DESC"
            }
            (LegacySortKey::CreateTime, SortDir::Asc) => " ORDER BY p.created_at, p.id",
            (LegacySortKey::CreateTime, SortDir::Desc) => " ORDER BY p.created_at DESC, p.id DESC",
            (LegacySortKey::StartTime, SortDir::Asc) => {
                " ORDER BY COALESCE(lr.start_time, -1), p.created_at, p.id"
            }
            (LegacySortKey::StartTime, SortDir::Desc) => {
                " ORDER BY COALESCE(lr.start_time, -1) DESC, p.created_at DESC, p.id DESC"
            }
        });
        select
            .push(" LIMIT ")
            .bind(Arg::Int(limit))
            .push(" OFFSET ")
            .bind(Arg::Int(offset));
        let pool = self.db().reader();
        let total = sql::int(&count.query().fetch_one(pool).await?, "total")?;
        let rows = select.query().fetch_all(pool).await?;
        let items = rows.iter().map(legacy_row).collect::<Result<_, _>>()?;
        Ok(Page { total, items })
    }

    async fn build_results(
        &self,
        project_id: &str,
        from: Timestamp,
        to: Timestamp,
        offset: i64,
        limit: i64,
    ) -> Result<Page<LegacyBuildRow>, StoreError> {
        let (offset, limit) = sql::window(offset, limit, 100);
        let window = " FROM runs r JOIN pipelines p ON p.id = r.pipeline_id \
             WHERE p.project_id = $1 AND p.deleted_at IS NULL AND r.start_time >= $2 AND r.start_time <= $3";
        let pool = self.db().reader();
        let total = sql::int(
            &sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*) AS total{window}"
            )))
            .bind(project_id)
            .bind(sql::millis(from))
            .bind(sql::millis(to))
            .fetch_one(pool)
            .await?,
            "total",
        )?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT r.id, r.pipeline_id, p.name, r.status, r.start_time, r.end_time{window} \
             ORDER BY r.start_time DESC, r.run_number DESC, r.id DESC LIMIT $4 OFFSET $5"
        )))
        .bind(project_id)
        .bind(sql::millis(from))
        .bind(sql::millis(to))
        .bind(limit)
        .bind(offset)
        .fetch_all(pool)
        .await?;
        let items = rows
            .iter()
            .map(|row| {
                Ok(LegacyBuildRow {
                    run_id: sql::text(row, "id")?,
                    pipeline_id: sql::text(row, "pipeline_id")?,
                    pipeline_name: sql::text(row, "name")?,
                    status: sql::status(row, "status")?,
                    start_time: sql::ts(row, "start_time")?,
                    end_time: sql::opt_ts(row, "end_time")?,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(Page { total, items })
    }
}

fn filters(builder: &mut SqlBuilder, query: &LegacyPipelineQuery) {
    let texts = |values: &[String]| values.iter().cloned().map(Arg::Text).collect::<Vec<_>>();
    if !query.project_ids.is_empty() {
        builder
            .push(" AND p.project_id IN ")
            .bind_list(texts(&query.project_ids));
    }
    if !query.creator_ids.is_empty() {
        builder
            .push(" AND p.creator_id IN ")
            .bind_list(texts(&query.creator_ids));
    }
    if !query.executor_ids.is_empty() {
        builder
            .push(" AND lr.executor_id IN ")
            .bind_list(texts(&query.executor_ids));
    }
    if !query.latest_statuses.is_empty() {
        builder.push(" AND lr.status IN ").bind_list(
            query
                .latest_statuses
                .iter()
                .map(|status| Arg::Text(status.as_str().to_owned())),
        );
    }
    if let Some(name) = &query.name_contains {
        builder
            .push(" AND LOWER(p.name) LIKE ")
            .bind(Arg::Text(format!(
                "%{}%",
                escape_like(&name.to_lowercase())
            )))
            .push(" ESCAPE '\\'");
    }
    if let Some(url) = &query.git_url {
        // Sources are stored as compact JSON (`serde_json`), so a key and its encoded value are
        // adjacent text: match `"git_url":"<url>"` or `"ssh_git_url":"<url>"` exactly.
        let encoded = escape_like(&serde_json::Value::String(url.clone()).to_string());
        builder
            .push(
                " AND EXISTS (SELECT 1 FROM pipeline_versions v WHERE v.pipeline_id = p.id \
                 AND v.version = p.current_version AND (v.sources LIKE ",
            )
            .bind(Arg::Text(format!("%\"git_url\":{encoded}%")))
            .push(" ESCAPE '\\' OR v.sources LIKE ")
            .bind(Arg::Text(format!("%\"ssh_git_url\":{encoded}%")))
            .push(" ESCAPE '\\'))");
    }
    match query.watched {
        Some(true) => {
            builder.push(" AND f.user_id IS NOT NULL");
        }
        Some(false) => {
            builder.push(" AND f.user_id IS NULL");
        }
        None => {}
    }
}

fn legacy_row(row: &AnyRow) -> Result<LegacyPipelineRow, StoreError> {
    let latest_status = match sql::opt_text(row, "run_status")? {
        Some(text) => Some(text.parse::<RunStatus>().map_err(StoreError::corrupt)?),
        None => None,
    };
    Ok(LegacyPipelineRow {
        pipeline_id: sql::text(row, "id")?,
        pipeline_name: sql::text(row, "name")?,
        project_id: sql::text(row, "project_id")?,
        project_name: sql::text(row, "project_name")?,
        creator_id: sql::text(row, "creator_id")?,
        creator_name: sql::text(row, "creator_name")?,
        created_at: sql::ts(row, "created_at")?,
        executor_id: sql::opt_text(row, "executor_id")?,
        executor_name: sql::opt_text(row, "executor_name")?,
        latest_start: sql::opt_ts(row, "start_time")?,
        latest_status,
        is_watched: sql::flag(row, "watched")?,
    })
}
