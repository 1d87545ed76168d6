//! Wire types of pipeline groups (spec §6), tags (§7) and variable groups (§8), with their
//! conversion from store records.

use super::{lenient_i64, millis};
use runnel_store::{GroupRecord, VariableGroupVariable};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `PipelineGroupCreateDTO` (§6.1).
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub(crate) struct GroupCreateBody {
    /// 1–128 characters, not blank; unique among its siblings.
    pub(crate) name: String,
    /// Must equal the project in the path.
    pub(crate) project_id: String,
    /// The parent group; absent or `""` = top level. Groups nest at most three levels.
    #[serde(default)]
    pub(crate) parent_id: Option<String>,
}

/// `PipelineGroupUpdateDTO` (§6.2): a rename.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub(crate) struct GroupUpdateBody {
    pub(crate) id: String,
    pub(crate) name: String,
}

/// `?id=` of the group and variable group deletes (§6.3, §8.5).
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct IdQuery {
    pub(crate) id: String,
}

/// `PipelineGroupVo` (§6): a group, with its subgroups in `children` in the tree.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct GroupVo {
    pub(crate) id: String,
    pub(crate) domain_id: String,
    pub(crate) project_id: String,
    pub(crate) name: String,
    /// `""` for a top-level group.
    pub(crate) parent_id: String,
    /// Dot-joined ids from the top-level group down to this one.
    pub(crate) path_id: String,
    /// Position among its siblings, from 1.
    pub(crate) ordinal: i64,
    pub(crate) creator: String,
    pub(crate) updater: String,
    pub(crate) create_time: i64,
    pub(crate) update_time: i64,
    /// Pipelines directly in this group.
    pub(crate) pipeline_count: i64,
    /// Pipelines of the project in no group (the same figure on every group).
    pub(crate) no_group_count: i64,
    #[schema(no_recursion)]
    pub(crate) children: Vec<GroupVo>,
}

impl GroupVo {
    pub(crate) fn from_record(record: &GroupRecord, domain_id: &str, no_group_count: i64) -> Self {
        GroupVo {
            id: record.id.clone(),
            domain_id: domain_id.to_owned(),
            project_id: record.project_id.clone(),
            name: record.name.clone(),
            parent_id: record.parent_id.clone().unwrap_or_default(),
            path_id: record.path_id.clone(),
            ordinal: record.ordinal,
            creator: record.creator_id.clone(),
            updater: record.updater_id.clone(),
            create_time: millis(record.created_at),
            update_time: millis(record.updated_at),
            pipeline_count: record.pipeline_count,
            no_group_count,
            children: Vec::new(),
        }
    }
}

/// `PipelineGroupBindDTO` (§6.5).
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub(crate) struct MoveBody {
    /// The target group; `""` moves the pipelines out of every group.
    pub(crate) group_id: String,
    pub(crate) pipelines: Vec<MovePipeline>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
pub(crate) struct MovePipeline {
    pub(crate) pipeline_id: String,
    pub(crate) pipeline_name: String,
}

/// One pipeline's outcome of a move (§6.5).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct MoveOutcome {
    /// `success` or `failed` (a pipeline that is not in the project).
    pub(crate) code: String,
    pub(crate) pipeline_id: String,
    pub(crate) pipeline_name: String,
}

/// `CreateTagReq` (§7.1).
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub(crate) struct TagCreateBody {
    /// 1–128 characters, not blank; unique in the project.
    pub(crate) name: String,
    /// `#rrggbb` (or `#rgb`).
    pub(crate) color: String,
}

/// The tag update body (§7.3): note the camelCase `tagId`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub(crate) struct TagUpdateBody {
    #[serde(rename = "tagId")]
    pub(crate) tag_id: String,
    pub(crate) name: String,
    pub(crate) color: String,
}

/// `?tagId=` of the tag delete (§7.4); `tagid` is accepted too.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct TagIdQuery {
    #[serde(rename = "tagId", alias = "tagid")]
    pub(crate) tag_id: String,
}

/// `?proj_id=` of the tag list (§7.2); when given it must be the path's project.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct TagListQuery {
    #[serde(default)]
    pub(crate) proj_id: Option<String>,
}

/// A tag of the tag list (§7.2).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct TagVo {
    pub(crate) tag_id: String,
    pub(crate) name: String,
    pub(crate) color: String,
    pub(crate) project_id: String,
    pub(crate) project_name: String,
}

/// The set-tags body (§7.5): every listed tag is added to every listed pipeline.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub(crate) struct SetTagsBody {
    pub(crate) pipeline_ids: Vec<String>,
    pub(crate) tag_ids: Vec<String>,
}

/// `CreateVariableGroupReq` (§8.1) and the update body (§8.4, with `id`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub(crate) struct VariableGroupBody {
    /// Update only: the group to replace.
    #[serde(default)]
    pub(crate) id: Option<String>,
    /// Terraform sends it; when given it must be the path's project.
    #[serde(default)]
    pub(crate) project_id: Option<String>,
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) description: Option<String>,
    /// At most 20. A secret sent back as `******` on update keeps its stored value.
    #[serde(default)]
    pub(crate) variables: Option<Vec<GroupVariableInput>>,
}

/// A variable of a variable group as sent (§8.1).
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub(crate) struct GroupVariableInput {
    /// Letters, digits and `_`, not starting with a digit; not a predefined or dangerous name.
    pub(crate) name: String,
    /// Display order; defaults to the position from 1.
    #[serde(default, deserialize_with = "lenient_i64")]
    #[schema(value_type = Option<i64>)]
    pub(crate) sequence: Option<i64>,
    /// `string` (default), `enum` or `autoIncrement`; the value is used as given.
    #[serde(default, rename = "type")]
    pub(crate) var_type: Option<String>,
    /// At most 8192 characters.
    #[serde(default)]
    pub(crate) value: Option<String>,
    #[serde(default)]
    pub(crate) is_secret: Option<bool>,
    /// At most 1024 characters.
    #[serde(default)]
    pub(crate) description: Option<String>,
}

/// A variable of a variable group (§8), in requests and responses; secret values are `******`
/// in responses.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct GroupVariable {
    pub(crate) name: String,
    pub(crate) sequence: i64,
    #[serde(rename = "type")]
    pub(crate) var_type: String,
    pub(crate) value: String,
    pub(crate) is_secret: bool,
    pub(crate) description: String,
}

impl GroupVariable {
    pub(crate) fn masked(variable: &VariableGroupVariable) -> Self {
        GroupVariable {
            name: variable.name.clone(),
            sequence: variable.sequence,
            var_type: variable.var_type.as_str().to_owned(),
            value: if variable.is_secret {
                super::pipeline::MASK.to_owned()
            } else {
                variable.value.clone()
            },
            is_secret: variable.is_secret,
            description: variable.description.clone(),
        }
    }
}

/// `{"pipeline_variable_group_id"}`: the answer of a create (§8.1).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct VariableGroupCreated {
    pub(crate) pipeline_variable_group_id: String,
}

/// A pipeline bound to a variable group.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct RelatedPipeline {
    pub(crate) id: String,
    pub(crate) name: String,
}

/// `QueryVariableGroupDetailResp` (§8.2).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct VariableGroupVo {
    pub(crate) id: String,
    pub(crate) project_id: String,
    pub(crate) domain_id: String,
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) variables: Vec<GroupVariable>,
    pub(crate) related_pipelines: Vec<RelatedPipeline>,
    pub(crate) creator_id: String,
    pub(crate) updater_id: String,
    pub(crate) creator_name: String,
    pub(crate) updater_name: String,
    pub(crate) create_time: i64,
    pub(crate) update_time: i64,
}

/// `ListVariableGroupsReq` (§8.3).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub(crate) struct VariableGroupListBody {
    #[serde(default, deserialize_with = "lenient_i64")]
    #[schema(value_type = Option<i64>)]
    pub(crate) offset: Option<i64>,
    #[serde(default, deserialize_with = "lenient_i64")]
    #[schema(value_type = Option<i64>)]
    pub(crate) limit: Option<i64>,
    /// Case-insensitive part of the name.
    #[serde(default)]
    pub(crate) name: Option<String>,
}

/// The variable group list (§8.3).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct VariableGroupList {
    pub(crate) pipeline_variable_groups: Vec<VariableGroupVo>,
    pub(crate) offset: i64,
    pub(crate) limit: i64,
    pub(crate) total: i64,
}

/// The binding body (§8.6): replaces the groups bound to the pipeline.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub(crate) struct RelationBody {
    pub(crate) pipeline_id: String,
    pub(crate) variable_group_ids: Vec<String>,
}

/// `?pipelineId=` of the groups bound to a pipeline (§8.6).
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PipelineIdQuery {
    #[serde(rename = "pipelineId", alias = "pipelineid", alias = "pipeline_id")]
    pub(crate) pipeline_id: String,
}
