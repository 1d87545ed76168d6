//! The writes behind `PipelineStore`: a pipeline with its first version, a replacement as a new version, variables, bindings and tags.

use super::{COMPILED_RECORD_FORMAT, NewPipeline, PipelineUpdate, variable_context};
use crate::crypto::SecretBox;
use crate::error::StoreError;
use crate::sql;
use runnel_domain::params::{VariableSpec, VariableType};
use sqlx::{AnyConnection, Row};
use std::collections::HashMap;

pub(crate) async fn insert_pipeline(
    conn: &mut AnyConnection,
    secrets: &SecretBox,
    pipeline: &NewPipeline,
) -> Result<(), StoreError> {
    check_group(conn, &pipeline.project_id, pipeline.group_id.as_deref()).await?;
    let now = sql::millis(pipeline.now);
    sqlx::query(
        "INSERT INTO pipelines (id, project_id, name, description, is_publish, component_id, group_id, \
         manifest_version, current_version, origin_id, from_source, creator_id, updater_id, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9, $10, $11, $11, $12, $12)",
    )
    .bind(&pipeline.id)
    .bind(&pipeline.project_id)
    .bind(&pipeline.name)
    .bind(&pipeline.description)
    .bind(sql::flag_value(pipeline.is_publish))
    .bind(pipeline.component_id.as_deref())
    .bind(pipeline.group_id.as_deref())
    .bind(&pipeline.manifest_version)
    .bind(pipeline.origin_id.as_deref())
    .bind(pipeline.from_source)
    .bind(&pipeline.creator_id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    let version = VersionRow {
        pipeline_id: &pipeline.id,
        version: 1,
        definition: &pipeline.definition,
        compiled: &pipeline.compiled,
        sources: &pipeline.sources,
        settings: &pipeline.settings,
        created_by: &pipeline.creator_id,
        now,
    };
    insert_version(conn, &version).await?;
    write_variables(
        conn,
        secrets,
        &pipeline.id,
        &pipeline.variables,
        &HashMap::new(),
    )
    .await?;
    bind_groups(
        conn,
        &pipeline.project_id,
        &pipeline.id,
        &pipeline.variable_group_ids,
    )
    .await?;
    set_tags(conn, &pipeline.project_id, &pipeline.id, &pipeline.tag_ids).await?;
    Ok(())
}

pub(crate) async fn replace_pipeline(
    conn: &mut AnyConnection,
    secrets: &SecretBox,
    project_id: &str,
    pipeline_id: &str,
    update: &PipelineUpdate,
) -> Result<i64, StoreError> {
    check_group(conn, project_id, update.group_id.as_deref()).await?;
    let row = sqlx::query(
        "UPDATE pipelines SET current_version = current_version + 1, name = $3, description = $4, is_publish = $5, \
         component_id = $6, group_id = $7, manifest_version = $8, updater_id = $9, updated_at = $10 \
         WHERE id = $1 AND project_id = $2 AND deleted_at IS NULL RETURNING current_version, is_banned",
    )
    .bind(pipeline_id)
    .bind(project_id)
    .bind(&update.name)
    .bind(&update.description)
    .bind(sql::flag_value(update.is_publish))
    .bind(update.component_id.as_deref())
    .bind(update.group_id.as_deref())
    .bind(&update.manifest_version)
    .bind(&update.updater_id)
    .bind(sql::millis(update.now))
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(StoreError::NotFound)?;
    if sql::flag(&row, "is_banned")? {
        return Err(StoreError::Invalid(
            "a banned pipeline cannot be updated".to_owned(),
        ));
    }
    let version = sql::int(&row, "current_version")?;
    let version_row = VersionRow {
        pipeline_id,
        version,
        definition: &update.definition,
        compiled: &update.compiled,
        sources: &update.sources,
        settings: &update.settings,
        created_by: &update.updater_id,
        now: sql::millis(update.now),
    };
    insert_version(conn, &version_row).await?;
    let mut previous = HashMap::new();
    let rows = sqlx::query(
        "SELECT name, value, value_ciphertext, latest_value FROM pipeline_variables WHERE pipeline_id = $1",
    )
    .bind(pipeline_id)
    .fetch_all(&mut *conn)
    .await?;
    for row in rows {
        let name = sql::text(&row, "name")?;
        let value = match sql::opt_bytes(&row, "value_ciphertext")? {
            Some(sealed) => secrets.open_text(&variable_context(pipeline_id, &name), &sealed)?,
            None => sql::opt_text(&row, "value")?.unwrap_or_default(),
        };
        previous.insert(name, (value, sql::opt_text(&row, "latest_value")?));
    }
    sqlx::query("DELETE FROM pipeline_variables WHERE pipeline_id = $1")
        .bind(pipeline_id)
        .execute(&mut *conn)
        .await?;
    write_variables(conn, secrets, pipeline_id, &update.variables, &previous).await?;
    sqlx::query("DELETE FROM pipeline_variable_groups WHERE pipeline_id = $1")
        .bind(pipeline_id)
        .execute(&mut *conn)
        .await?;
    bind_groups(conn, project_id, pipeline_id, &update.variable_group_ids).await?;
    if let Some(tag_ids) = &update.tag_ids {
        sqlx::query("DELETE FROM pipeline_tags WHERE pipeline_id = $1")
            .bind(pipeline_id)
            .execute(&mut *conn)
            .await?;
        set_tags(conn, project_id, pipeline_id, tag_ids).await?;
    }
    Ok(version)
}

struct VersionRow<'a> {
    pipeline_id: &'a str,
    version: i64,
    definition: &'a str,
    compiled: &'a serde_json::Value,
    sources: &'a serde_json::Value,
    settings: &'a serde_json::Value,
    created_by: &'a str,
    now: i64,
}

async fn insert_version(conn: &mut AnyConnection, row: &VersionRow<'_>) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO pipeline_versions (pipeline_id, version, definition, compiled, record_format, sources, settings, \
         created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(row.pipeline_id)
    .bind(row.version)
    .bind(row.definition)
    .bind(sql::to_json(row.compiled)?)
    .bind(COMPILED_RECORD_FORMAT)
    .bind(sql::to_json(row.sources)?)
    .bind(sql::to_json(row.settings)?)
    .bind(row.created_by)
    .bind(row.now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Inserts variables; `previous` maps names to their stored (value, latest_value).
async fn write_variables(
    conn: &mut AnyConnection,
    secrets: &SecretBox,
    pipeline_id: &str,
    variables: &[VariableSpec],
    previous: &HashMap<String, (String, Option<String>)>,
) -> Result<(), StoreError> {
    for (index, variable) in variables.iter().enumerate() {
        let stored = previous.get(&variable.name);
        let latest_value = variable
            .latest_value
            .clone()
            .or_else(|| stored.and_then(|(_, latest)| latest.clone()));
        let is_reset = variable.is_reset
            || (variable.var_type == VariableType::AutoIncrement
                && stored.is_some_and(|(value, _)| value != &variable.value));
        let (value, ciphertext) = if variable.is_secret {
            let sealed = secrets.seal_text(
                &variable_context(pipeline_id, &variable.name),
                &variable.value,
            )?;
            (None, Some(sealed))
        } else {
            (Some(variable.value.as_str()), None)
        };
        sqlx::query(
            "INSERT INTO pipeline_variables (pipeline_id, name, sequence, type, value, value_ciphertext, is_secret, \
             is_runtime, is_reset, description, limits, latest_value) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(pipeline_id)
        .bind(&variable.name)
        .bind(variable.sequence.unwrap_or(index as i64 + 1))
        .bind(variable.var_type.as_str())
        .bind(value)
        .bind(ciphertext)
        .bind(sql::flag_value(variable.is_secret))
        .bind(sql::flag_value(variable.is_runtime))
        .bind(sql::flag_value(is_reset))
        .bind(&variable.description)
        .bind(sql::to_json(&variable.limits)?)
        .bind(latest_value)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

async fn check_group(
    conn: &mut AnyConnection,
    project_id: &str,
    group_id: Option<&str>,
) -> Result<(), StoreError> {
    let Some(group_id) = group_id else {
        return Ok(());
    };
    let found: i64 =
        sqlx::query("SELECT COUNT(*) FROM pipeline_groups WHERE id = $1 AND project_id = $2")
            .bind(group_id)
            .bind(project_id)
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
    if found == 0 {
        return Err(StoreError::Invalid("unknown pipeline group".to_owned()));
    }
    Ok(())
}

pub(crate) async fn bind_groups(
    conn: &mut AnyConnection,
    project_id: &str,
    pipeline_id: &str,
    group_ids: &[String],
) -> Result<(), StoreError> {
    for (position, group_id) in group_ids.iter().enumerate() {
        let done = sqlx::query(
            "INSERT INTO pipeline_variable_groups (pipeline_id, group_id, position) \
             SELECT $1, id, $3 FROM variable_groups WHERE id = $2 AND project_id = $4",
        )
        .bind(pipeline_id)
        .bind(group_id)
        .bind(position as i64)
        .bind(project_id)
        .execute(&mut *conn)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Invalid("unknown variable group".to_owned()));
        }
    }
    Ok(())
}

pub(crate) async fn set_tags(
    conn: &mut AnyConnection,
    project_id: &str,
    pipeline_id: &str,
    tag_ids: &[String],
) -> Result<(), StoreError> {
    for tag_id in tag_ids {
        let done = sqlx::query(
            "INSERT INTO pipeline_tags (pipeline_id, tag_id) SELECT $1, id FROM tags WHERE id = $2 AND project_id = $3 \
             ON CONFLICT (pipeline_id, tag_id) DO NOTHING",
        )
        .bind(pipeline_id)
        .bind(tag_id)
        .bind(project_id)
        .execute(&mut *conn)
        .await?;
        if done.rows_affected() == 0 {
            let known: i64 =
                sqlx::query("SELECT COUNT(*) FROM tags WHERE id = $1 AND project_id = $2")
                    .bind(tag_id)
                    .bind(project_id)
                    .fetch_one(&mut *conn)
                    .await?
                    .try_get(0)?;
            if known == 0 {
                return Err(StoreError::Invalid("unknown tag".to_owned()));
            }
        }
    }
    Ok(())
}
