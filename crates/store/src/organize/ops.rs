//! The SQL behind `OrganizeStore`.

use super::*;

const GROUP_COLUMNS: &str = "g.id, g.project_id, g.name, g.parent_id, g.path_id, g.depth, g.ordinal, g.creator_id, \
     g.updater_id, g.created_at, g.updated_at, \
     (SELECT COUNT(*) FROM pipelines p WHERE p.group_id = g.id AND p.deleted_at IS NULL) AS pipeline_count";

impl OrganizeStore for Store {
    async fn create_group(&self, group: NewGroup) -> Result<GroupRecord, StoreError> {
        let id = crate::new_id();
        let project_id = group.project_id.clone();
        let group_id = id.clone();
        self.db()
            .write(move |conn| Box::pin(async move { insert_group(conn, &group_id, &group).await }))
            .await?;
        let groups = self.groups(&project_id).await?;
        groups
            .into_iter()
            .find(|found| found.id == id)
            .ok_or(StoreError::NotFound)
    }

    async fn rename_group(
        &self,
        project_id: &str,
        group_id: &str,
        name: &str,
        updater_id: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let (project_id, group_id, name, updater_id) = (
            project_id.to_owned(),
            group_id.to_owned(),
            name.to_owned(),
            updater_id.to_owned(),
        );
        self.db()
            .write(move |conn| {
                Box::pin(async move {
                    let done = sqlx::query(
                        "UPDATE pipeline_groups SET name = $3, updater_id = $4, updated_at = $5 WHERE id = $1 AND project_id = $2",
                    )
                    .bind(&group_id)
                    .bind(&project_id)
                    .bind(&name)
                    .bind(&updater_id)
                    .bind(sql::millis(now))
                    .execute(&mut *conn)
                    .await?;
                    one(done.rows_affected())
                })
            })
            .await
    }

    async fn delete_group(&self, project_id: &str, group_id: &str) -> Result<(), StoreError> {
        let (project_id, group_id) = (project_id.to_owned(), group_id.to_owned());
        self.db()
            .write(move |conn| {
                Box::pin(async move {
                    // Subgroups go with it (ON DELETE CASCADE); their pipelines become ungrouped
                    // (ON DELETE SET NULL).
                    let done = sqlx::query(
                        "DELETE FROM pipeline_groups WHERE id = $1 AND project_id = $2",
                    )
                    .bind(&group_id)
                    .bind(&project_id)
                    .execute(&mut *conn)
                    .await?;
                    one(done.rows_affected())
                })
            })
            .await
    }

    async fn groups(&self, project_id: &str) -> Result<Vec<GroupRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {GROUP_COLUMNS} FROM pipeline_groups g WHERE g.project_id = $1 ORDER BY g.depth, g.ordinal, g.id"
        )))
        .bind(project_id)
        .fetch_all(self.db().reader())
        .await?;
        rows.iter().map(group_record).collect()
    }

    async fn move_pipelines(
        &self,
        project_id: &str,
        group_id: Option<&str>,
        pipeline_ids: &[String],
        now: Timestamp,
    ) -> Result<Vec<String>, StoreError> {
        let (project_id, group_id, pipeline_ids) = (
            project_id.to_owned(),
            group_id.map(str::to_owned),
            pipeline_ids.to_vec(),
        );
        self.db()
            .write(move |conn| {
                Box::pin(async move {
                    if let Some(group_id) = &group_id {
                        let known: i64 = sqlx::query("SELECT COUNT(*) FROM pipeline_groups WHERE id = $1 AND project_id = $2")
                            .bind(group_id)
                            .bind(&project_id)
                            .fetch_one(&mut *conn)
                            .await?
                            .try_get(0)?;
                        if known == 0 {
                            return Err(StoreError::Invalid("unknown pipeline group".to_owned()));
                        }
                    }
                    let mut moved = Vec::new();
                    for pipeline_id in &pipeline_ids {
                        let done = sqlx::query(
                            "UPDATE pipelines SET group_id = $3, updated_at = $4 \
                             WHERE id = $1 AND project_id = $2 AND deleted_at IS NULL",
                        )
                        .bind(pipeline_id)
                        .bind(&project_id)
                        .bind(group_id.as_deref())
                        .bind(sql::millis(now))
                        .execute(&mut *conn)
                        .await?;
                        if done.rows_affected() > 0 {
                            moved.push(pipeline_id.clone());
                        }
                    }
                    Ok(moved)
                })
            })
            .await
    }

    async fn create_tag(&self, tag: NewTag) -> Result<TagRecord, StoreError> {
        let record = TagRecord {
            id: crate::new_id(),
            project_id: tag.project_id,
            name: tag.name,
            color: tag.color,
            created_at: tag.now,
            updated_at: tag.now,
        };
        let row = record.clone();
        self.db()
            .write(move |conn| {
                Box::pin(async move {
                    sqlx::query(
                        "INSERT INTO tags (id, project_id, name, color, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)",
                    )
                    .bind(&row.id)
                    .bind(&row.project_id)
                    .bind(&row.name)
                    .bind(&row.color)
                    .bind(sql::millis(row.created_at))
                    .execute(&mut *conn)
                    .await?;
                    Ok(())
                })
            })
            .await?;
        Ok(record)
    }

    async fn update_tag(
        &self,
        project_id: &str,
        tag_id: &str,
        name: &str,
        color: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let (project_id, tag_id, name, color) = (
            project_id.to_owned(),
            tag_id.to_owned(),
            name.to_owned(),
            color.to_owned(),
        );
        self.db()
            .write(move |conn| {
                Box::pin(async move {
                    let done = sqlx::query(
                        "UPDATE tags SET name = $3, color = $4, updated_at = $5 WHERE id = $1 AND project_id = $2",
                    )
                    .bind(&tag_id)
                    .bind(&project_id)
                    .bind(&name)
                    .bind(&color)
                    .bind(sql::millis(now))
                    .execute(&mut *conn)
                    .await?;
                    one(done.rows_affected())
                })
            })
            .await
    }

    async fn delete_tag(&self, project_id: &str, tag_id: &str) -> Result<(), StoreError> {
        let (project_id, tag_id) = (project_id.to_owned(), tag_id.to_owned());
        self.db()
            .write(move |conn| {
                Box::pin(async move {
                    let done = sqlx::query("DELETE FROM tags WHERE id = $1 AND project_id = $2")
                        .bind(&tag_id)
                        .bind(&project_id)
                        .execute(&mut *conn)
                        .await?;
                    one(done.rows_affected())
                })
            })
            .await
    }

    async fn tags(&self, project_id: &str) -> Result<Vec<TagRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, project_id, name, color, created_at, updated_at FROM tags WHERE project_id = $1 ORDER BY name",
        )
        .bind(project_id)
        .fetch_all(self.db().reader())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(TagRecord {
                    id: sql::text(row, "id")?,
                    project_id: sql::text(row, "project_id")?,
                    name: sql::text(row, "name")?,
                    color: sql::text(row, "color")?,
                    created_at: sql::ts(row, "created_at")?,
                    updated_at: sql::ts(row, "updated_at")?,
                })
            })
            .collect()
    }

    async fn tag_pipelines(
        &self,
        project_id: &str,
        pipeline_ids: &[String],
        tag_ids: &[String],
    ) -> Result<(), StoreError> {
        let (project_id, pipeline_ids, tag_ids) = (
            project_id.to_owned(),
            pipeline_ids.to_vec(),
            tag_ids.to_vec(),
        );
        self.db()
            .write(move |conn| {
                Box::pin(async move {
                    for pipeline_id in &pipeline_ids {
                        let known: i64 = sqlx::query(
                            "SELECT COUNT(*) FROM pipelines WHERE id = $1 AND project_id = $2 AND deleted_at IS NULL",
                        )
                        .bind(pipeline_id)
                        .bind(&project_id)
                        .fetch_one(&mut *conn)
                        .await?
                        .try_get(0)?;
                        if known == 0 {
                            return Err(StoreError::NotFound);
                        }
                        crate::pipelines::set_tags(conn, &project_id, pipeline_id, &tag_ids).await?;
                    }
                    Ok(())
                })
            })
            .await
    }

    async fn create_variable_group(&self, group: NewVariableGroup) -> Result<String, StoreError> {
        let id = crate::new_id();
        let secrets = self.secrets().clone();
        let group_id = id.clone();
        self.db()
            .write(move |conn| {
                Box::pin(async move {
                    let now = sql::millis(group.now);
                    sqlx::query(
                        "INSERT INTO variable_groups (id, project_id, name, description, creator_id, updater_id, created_at, \
                         updated_at) VALUES ($1, $2, $3, $4, $5, $5, $6, $6)",
                    )
                    .bind(&group_id)
                    .bind(&group.project_id)
                    .bind(&group.name)
                    .bind(&group.description)
                    .bind(&group.actor_id)
                    .bind(now)
                    .execute(&mut *conn)
                    .await?;
                    write_group_variables(conn, &secrets, &group_id, &group.variables).await
                })
            })
            .await?;
        Ok(id)
    }

    async fn update_variable_group(
        &self,
        group_id: &str,
        group: NewVariableGroup,
    ) -> Result<(), StoreError> {
        let secrets = self.secrets().clone();
        let group_id = group_id.to_owned();
        self.db()
            .write(move |conn| {
                Box::pin(async move {
                    let done = sqlx::query(
                        "UPDATE variable_groups SET name = $3, description = $4, updater_id = $5, updated_at = $6 \
                         WHERE id = $1 AND project_id = $2",
                    )
                    .bind(&group_id)
                    .bind(&group.project_id)
                    .bind(&group.name)
                    .bind(&group.description)
                    .bind(&group.actor_id)
                    .bind(sql::millis(group.now))
                    .execute(&mut *conn)
                    .await?;
                    one(done.rows_affected())?;
                    sqlx::query("DELETE FROM variable_group_variables WHERE group_id = $1")
                        .bind(&group_id)
                        .execute(&mut *conn)
                        .await?;
                    write_group_variables(conn, &secrets, &group_id, &group.variables).await
                })
            })
            .await
    }

    async fn delete_variable_group(
        &self,
        project_id: &str,
        group_id: &str,
    ) -> Result<(), StoreError> {
        let (project_id, group_id) = (project_id.to_owned(), group_id.to_owned());
        self.db()
            .write(move |conn| {
                Box::pin(async move {
                    let done = sqlx::query(
                        "DELETE FROM variable_groups WHERE id = $1 AND project_id = $2",
                    )
                    .bind(&group_id)
                    .bind(&project_id)
                    .execute(&mut *conn)
                    .await?;
                    one(done.rows_affected())
                })
            })
            .await
    }

    async fn variable_group(
        &self,
        project_id: &str,
        group_id: &str,
    ) -> Result<Option<VariableGroupRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT id, project_id, name, description, creator_id, updater_id, created_at, updated_at \
             FROM variable_groups WHERE id = $1 AND project_id = $2",
        )
        .bind(group_id)
        .bind(project_id)
        .fetch_optional(self.db().reader())
        .await?;
        match row {
            Some(row) => Ok(Some(self.load_variable_group(&row).await?)),
            None => Ok(None),
        }
    }

    async fn list_variable_groups(
        &self,
        project_id: &str,
        name_contains: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> Result<Page<VariableGroupRecord>, StoreError> {
        let (offset, limit) = sql::window(offset, if limit == 0 { 10 } else { limit }, 100);
        let mut select = SqlBuilder::new(
            "SELECT id, project_id, name, description, creator_id, updater_id, created_at, updated_at FROM variable_groups",
        );
        let mut count = SqlBuilder::new("SELECT COUNT(*) AS total FROM variable_groups");
        for builder in [&mut select, &mut count] {
            builder
                .push(" WHERE project_id = ")
                .bind(Arg::Text(project_id.to_owned()));
            if let Some(name) = name_contains {
                builder
                    .push(" AND LOWER(name) LIKE ")
                    .bind(Arg::Text(format!(
                        "%{}%",
                        crate::pipelines::escape_like(&name.to_lowercase())
                    )))
                    .push(" ESCAPE '\\'");
            }
        }
        select
            .push(" ORDER BY created_at, id LIMIT ")
            .bind(Arg::Int(limit))
            .push(" OFFSET ")
            .bind(Arg::Int(offset));
        let pool = self.db().reader();
        let total = sql::int(&count.query().fetch_one(pool).await?, "total")?;
        let mut items = Vec::new();
        for row in select.query().fetch_all(pool).await? {
            items.push(self.load_variable_group(&row).await?);
        }
        Ok(Page { total, items })
    }

    async fn bind_variable_groups(
        &self,
        project_id: &str,
        pipeline_id: &str,
        group_ids: &[String],
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let (project_id, pipeline_id, group_ids) = (
            project_id.to_owned(),
            pipeline_id.to_owned(),
            group_ids.to_vec(),
        );
        self.db()
            .write(move |conn| {
                Box::pin(async move {
                    let done = sqlx::query(
                        "UPDATE pipelines SET updated_at = $3 WHERE id = $1 AND project_id = $2 AND deleted_at IS NULL",
                    )
                    .bind(&pipeline_id)
                    .bind(&project_id)
                    .bind(sql::millis(now))
                    .execute(&mut *conn)
                    .await?;
                    one(done.rows_affected())?;
                    sqlx::query("DELETE FROM pipeline_variable_groups WHERE pipeline_id = $1")
                        .bind(&pipeline_id)
                        .execute(&mut *conn)
                        .await?;
                    crate::pipelines::bind_groups(conn, &project_id, &pipeline_id, &group_ids).await
                })
            })
            .await
    }

    async fn pipeline_variable_groups(
        &self,
        pipeline_id: &str,
    ) -> Result<Vec<VariableGroupRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT g.id, g.project_id, g.name, g.description, g.creator_id, g.updater_id, g.created_at, g.updated_at \
             FROM pipeline_variable_groups b JOIN variable_groups g ON g.id = b.group_id \
             WHERE b.pipeline_id = $1 ORDER BY b.position",
        )
        .bind(pipeline_id)
        .fetch_all(self.db().reader())
        .await?;
        let mut groups = Vec::with_capacity(rows.len());
        for row in &rows {
            groups.push(self.load_variable_group(row).await?);
        }
        Ok(groups)
    }
}

impl Store {
    async fn load_variable_group(&self, row: &AnyRow) -> Result<VariableGroupRecord, StoreError> {
        let id = sql::text(row, "id")?;
        let pool = self.db().reader();
        let variable_rows = sqlx::query(
            "SELECT name, sequence, type, value, value_ciphertext, is_secret, description FROM variable_group_variables \
             WHERE group_id = $1 ORDER BY sequence, name",
        )
        .bind(&id)
        .fetch_all(pool)
        .await?;
        let mut variables = Vec::with_capacity(variable_rows.len());
        for variable in &variable_rows {
            let name = sql::text(variable, "name")?;
            let value = match sql::opt_bytes(variable, "value_ciphertext")? {
                Some(sealed) => self
                    .secrets()
                    .open_text(&group_variable_context(&id, &name), &sealed)?,
                None => sql::opt_text(variable, "value")?.unwrap_or_default(),
            };
            let type_text = sql::text(variable, "type")?;
            variables.push(VariableGroupVariable {
                sequence: sql::int(variable, "sequence")?,
                var_type: VariableType::parse(&type_text).ok_or_else(|| {
                    StoreError::corrupt(format!("unknown variable type `{type_text}`"))
                })?,
                value,
                is_secret: sql::flag(variable, "is_secret")?,
                description: sql::text(variable, "description")?,
                name,
            });
        }
        let related = sqlx::query(
            "SELECT b.pipeline_id FROM pipeline_variable_groups b JOIN pipelines p ON p.id = b.pipeline_id \
             WHERE b.group_id = $1 AND p.deleted_at IS NULL ORDER BY b.pipeline_id",
        )
        .bind(&id)
        .fetch_all(pool)
        .await?;
        Ok(VariableGroupRecord {
            project_id: sql::text(row, "project_id")?,
            name: sql::text(row, "name")?,
            description: sql::text(row, "description")?,
            variables,
            related_pipeline_ids: related
                .iter()
                .map(|row| sql::text(row, "pipeline_id"))
                .collect::<Result<_, _>>()?,
            creator_id: sql::text(row, "creator_id")?,
            updater_id: sql::text(row, "updater_id")?,
            created_at: sql::ts(row, "created_at")?,
            updated_at: sql::ts(row, "updated_at")?,
            id,
        })
    }
}

async fn insert_group(
    conn: &mut AnyConnection,
    id: &str,
    group: &NewGroup,
) -> Result<(), StoreError> {
    let (path_id, depth) = match &group.parent_id {
        Some(parent_id) => {
            let parent = sqlx::query(
                "SELECT path_id, depth FROM pipeline_groups WHERE id = $1 AND project_id = $2",
            )
            .bind(parent_id)
            .bind(&group.project_id)
            .fetch_optional(&mut *conn)
            .await?
            .ok_or_else(|| StoreError::Invalid("unknown parent group".to_owned()))?;
            let depth = sql::int(&parent, "depth")? + 1;
            if depth > MAX_GROUP_DEPTH {
                return Err(StoreError::Invalid(format!(
                    "groups nest at most {MAX_GROUP_DEPTH} levels deep"
                )));
            }
            (format!("{}.{id}", sql::text(&parent, "path_id")?), depth)
        }
        None => (id.to_owned(), 1),
    };
    let ordinal: i64 = match &group.parent_id {
        Some(parent_id) => sqlx::query("SELECT COALESCE(MAX(ordinal), 0) + 1 FROM pipeline_groups WHERE parent_id = $1")
            .bind(parent_id)
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?,
        None => sqlx::query(
            "SELECT COALESCE(MAX(ordinal), 0) + 1 FROM pipeline_groups WHERE project_id = $1 AND parent_id IS NULL",
        )
        .bind(&group.project_id)
        .fetch_one(&mut *conn)
        .await?
        .try_get(0)?,
    };
    sqlx::query(
        "INSERT INTO pipeline_groups (id, project_id, parent_id, path_id, depth, name, ordinal, creator_id, updater_id, \
         created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $9)",
    )
    .bind(id)
    .bind(&group.project_id)
    .bind(group.parent_id.as_deref())
    .bind(&path_id)
    .bind(depth)
    .bind(&group.name)
    .bind(ordinal)
    .bind(&group.creator_id)
    .bind(sql::millis(group.now))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn write_group_variables(
    conn: &mut AnyConnection,
    secrets: &crate::crypto::SecretBox,
    group_id: &str,
    variables: &[VariableGroupVariable],
) -> Result<(), StoreError> {
    for variable in variables {
        let (value, ciphertext) = if variable.is_secret {
            (
                None,
                Some(secrets.seal_text(
                    &group_variable_context(group_id, &variable.name),
                    &variable.value,
                )?),
            )
        } else {
            (Some(variable.value.as_str()), None)
        };
        sqlx::query(
            "INSERT INTO variable_group_variables (group_id, name, sequence, type, value, value_ciphertext, is_secret, \
             description) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(group_id)
        .bind(&variable.name)
        .bind(variable.sequence)
        .bind(variable.var_type.as_str())
        .bind(value)
        .bind(ciphertext)
        .bind(sql::flag_value(variable.is_secret))
        .bind(&variable.description)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

fn group_variable_context(group_id: &str, name: &str) -> String {
    format!("variable_group_variables:{group_id}:{name}")
}

fn group_record(row: &AnyRow) -> Result<GroupRecord, StoreError> {
    Ok(GroupRecord {
        id: sql::text(row, "id")?,
        project_id: sql::text(row, "project_id")?,
        name: sql::text(row, "name")?,
        parent_id: sql::opt_text(row, "parent_id")?,
        path_id: sql::text(row, "path_id")?,
        depth: sql::int(row, "depth")?,
        ordinal: sql::int(row, "ordinal")?,
        creator_id: sql::text(row, "creator_id")?,
        updater_id: sql::text(row, "updater_id")?,
        created_at: sql::ts(row, "created_at")?,
        updated_at: sql::ts(row, "updated_at")?,
        pipeline_count: sql::int(row, "pipeline_count")?,
    })
}

fn one(rows: u64) -> Result<(), StoreError> {
    if rows == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}
