//! Reading pipelines back: rows to records, with their tags and variable-group bindings.

use super::PipelineRecord;
use crate::error::StoreError;
use crate::sql;
use sqlx::AnyPool;
use sqlx::any::AnyRow;

pub(super) fn pipeline_record(row: &AnyRow) -> Result<PipelineRecord, StoreError> {
    Ok(PipelineRecord {
        id: sql::text(row, "id")?,
        project_id: sql::text(row, "project_id")?,
        name: sql::text(row, "name")?,
        description: sql::text(row, "description")?,
        is_publish: sql::flag(row, "is_publish")?,
        component_id: sql::opt_text(row, "component_id")?,
        group_id: sql::opt_text(row, "group_id")?,
        manifest_version: sql::text(row, "manifest_version")?,
        current_version: sql::int(row, "current_version")?,
        last_run_number: sql::int(row, "last_run_number")?,
        is_banned: sql::flag(row, "is_banned")?,
        origin_id: sql::opt_text(row, "origin_id")?,
        from_source: sql::int(row, "from_source")?,
        creator_id: sql::text(row, "creator_id")?,
        updater_id: sql::text(row, "updater_id")?,
        created_at: sql::ts(row, "created_at")?,
        updated_at: sql::ts(row, "updated_at")?,
        definition: sql::text(row, "definition")?,
        sources: sql::json(row, "sources")?,
        settings: sql::json(row, "settings")?,
        tag_ids: Vec::new(),
        variable_group_ids: Vec::new(),
    })
}

/// Fills tag ids and bound variable group ids.
pub(super) async fn with_links(
    pool: &AnyPool,
    mut record: PipelineRecord,
) -> Result<PipelineRecord, StoreError> {
    // Both link lists in one statement (a pipeline read is on the path of every trigger), put
    // in order here: an ORDER BY over the UNION made SQLite sort each half in a temporary
    // B-tree, with a page cache of its own, even when both are empty (as they mostly are).
    let rows = sqlx::query(
        "SELECT CAST(0 AS BIGINT) AS kind, tag_id AS id, CAST(0 AS BIGINT) AS position \
         FROM pipeline_tags WHERE pipeline_id = $1 \
         UNION ALL \
         SELECT CAST(1 AS BIGINT) AS kind, group_id AS id, position \
         FROM pipeline_variable_groups WHERE pipeline_id = $1",
    )
    .bind(&record.id)
    .fetch_all(pool)
    .await?;
    let mut links = Vec::with_capacity(rows.len());
    for row in &rows {
        links.push((
            sql::int(row, "kind")?,
            sql::int(row, "position")?,
            sql::text(row, "id")?,
        ));
    }
    links.sort_unstable();
    record.tag_ids.clear();
    record.variable_group_ids.clear();
    for (kind, _, id) in links {
        if kind == 0 {
            record.tag_ids.push(id);
        } else {
            record.variable_group_ids.push(id);
        }
    }
    Ok(record)
}
