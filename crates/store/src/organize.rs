//! Pipeline groups (up to three levels), tags and variable groups (secret values encrypted) of a project.

use crate::Store;
use crate::error::StoreError;
use crate::sql::{self, Arg, Page, SqlBuilder};
use runnel_domain::Timestamp;
use runnel_domain::params::VariableType;
use sqlx::AnyConnection;
use sqlx::Row;
use sqlx::any::AnyRow;
use std::future::Future;

/// The deepest a group may sit (spec §6).
pub const MAX_GROUP_DEPTH: i64 = 3;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewGroup {
    pub project_id: String,
    pub name: String,
    /// `None` = top level.
    pub parent_id: Option<String>,
    pub creator_id: String,
    pub now: Timestamp,
}

/// A group; `pipeline_count` counts pipelines directly in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub parent_id: Option<String>,
    /// Dot-joined ids from the top-level group down to this one.
    pub path_id: String,
    pub depth: i64,
    pub ordinal: i64,
    pub creator_id: String,
    pub updater_id: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub pipeline_count: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTag {
    pub project_id: String,
    pub name: String,
    pub color: String,
    pub now: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRecord {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub color: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// One variable of a variable group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariableGroupVariable {
    pub name: String,
    pub sequence: i64,
    pub var_type: VariableType,
    pub value: String,
    pub is_secret: bool,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVariableGroup {
    pub project_id: String,
    pub name: String,
    pub description: String,
    pub variables: Vec<VariableGroupVariable>,
    pub actor_id: String,
    pub now: Timestamp,
}

/// A variable group with its variables (secret values decrypted) and the pipelines bound to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariableGroupRecord {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub description: String,
    pub variables: Vec<VariableGroupVariable>,
    pub related_pipeline_ids: Vec<String>,
    pub creator_id: String,
    pub updater_id: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// How a project organizes its pipelines: groups, tags and variable groups (spec §6–§8).
/// Every id is scoped by project; names are unique among siblings (groups) or per project.
/// Deleting a group deletes its subgroups and leaves their pipelines ungrouped; deleting a tag
/// or a variable group unbinds it from every pipeline.
pub trait OrganizeStore {
    /// `Invalid` when the parent is missing or the group would sit deeper than three levels.
    fn create_group(
        &self,
        group: NewGroup,
    ) -> impl Future<Output = Result<GroupRecord, StoreError>> + Send;
    fn rename_group(
        &self,
        project_id: &str,
        group_id: &str,
        name: &str,
        updater_id: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn delete_group(
        &self,
        project_id: &str,
        group_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Every group of the project, parents before children, siblings by ordinal.
    fn groups(
        &self,
        project_id: &str,
    ) -> impl Future<Output = Result<Vec<GroupRecord>, StoreError>> + Send;
    /// Moves pipelines into a group (`None` = ungrouped); returns the ids that moved.
    fn move_pipelines(
        &self,
        project_id: &str,
        group_id: Option<&str>,
        pipeline_ids: &[String],
        now: Timestamp,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    fn create_tag(&self, tag: NewTag)
    -> impl Future<Output = Result<TagRecord, StoreError>> + Send;
    fn update_tag(
        &self,
        project_id: &str,
        tag_id: &str,
        name: &str,
        color: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn delete_tag(
        &self,
        project_id: &str,
        tag_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn tags(
        &self,
        project_id: &str,
    ) -> impl Future<Output = Result<Vec<TagRecord>, StoreError>> + Send;
    /// Adds the tags to each pipeline (all in one transaction).
    fn tag_pipelines(
        &self,
        project_id: &str,
        pipeline_ids: &[String],
        tag_ids: &[String],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn create_variable_group(
        &self,
        group: NewVariableGroup,
    ) -> impl Future<Output = Result<String, StoreError>> + Send;
    /// Full replacement of name, description and variables.
    fn update_variable_group(
        &self,
        group_id: &str,
        group: NewVariableGroup,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn delete_variable_group(
        &self,
        project_id: &str,
        group_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn variable_group(
        &self,
        project_id: &str,
        group_id: &str,
    ) -> impl Future<Output = Result<Option<VariableGroupRecord>, StoreError>> + Send;
    fn list_variable_groups(
        &self,
        project_id: &str,
        name_contains: Option<&str>,
        offset: i64,
        limit: i64,
    ) -> impl Future<Output = Result<Page<VariableGroupRecord>, StoreError>> + Send;
    /// Replaces the variable groups bound to a pipeline (in binding order), in one
    /// transaction: `NotFound` for a pipeline not in the project, `Invalid` for a group not in
    /// it; nothing changes on error.
    fn bind_variable_groups(
        &self,
        project_id: &str,
        pipeline_id: &str,
        group_ids: &[String],
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The groups bound to a pipeline, in binding order.
    fn pipeline_variable_groups(
        &self,
        pipeline_id: &str,
    ) -> impl Future<Output = Result<Vec<VariableGroupRecord>, StoreError>> + Send;
}

mod ops;
