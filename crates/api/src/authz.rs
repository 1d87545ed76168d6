//! Authorization: the caller must be a member of the project in the path, with a role that
//! allows the action (`docs/permissions.md`). A project that does not exist and one the caller
//! is not a member of answer alike (`DEVPIPE.00011412`); ids of other projects answer as not
//! found (S1).

use crate::AppState;
use crate::auth::{Caller, PathMembership};
use crate::error::{ApiError, Missing};
use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use runnel_engine::Actor;
use runnel_store::{
    IdentityStore, PipelineHead, PipelineRecord, PipelineStore, ProjectRecord, Role, RunDetail,
    RunRecord,
};
use runnel_store::{RunStore, StoreError};

/// What a request does, for the role check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Read pipelines, runs and logs.
    View,
    /// Create and update pipelines.
    Edit,
    /// Run, stop, retry; pass or refuse manual stage starts; delay actions.
    Execute,
    /// Pass or refuse a manual review (the engine also checks that the caller is an approver).
    Review,
    /// Delete pipelines.
    Delete,
}

impl Action {
    fn describe(self) -> &'static str {
        match self {
            Action::View => "view pipelines",
            Action::Edit => "create or change pipelines",
            Action::Execute => "run or control pipeline runs",
            Action::Review => "review pipeline runs",
            Action::Delete => "delete pipelines",
        }
    }
}

/// The one permission table (`docs/permissions.md` mirrors it).
pub(crate) fn allows(role: Role, action: Action) -> bool {
    match role {
        Role::Admin => true,
        Role::Developer => action != Action::Delete,
        Role::Viewer => action == Action::View,
    }
}

/// A caller who is a member of the path's `{project_id}`.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub(crate) caller: Caller,
    pub(crate) project: ProjectRecord,
    pub(crate) role: Role,
}

impl FromRequestParts<AppState> for Member {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let project_id = path_project_id(parts)
            .await
            .ok_or(ApiError::ProjectNotFound)?;
        // Read with the token by the authentication middleware, or read now (AK/SK).
        let membership = match parts.extensions.get::<PathMembership>() {
            Some(known) if known.project_id == project_id => known.membership.clone(),
            _ => state
                .api
                .store
                .membership(&project_id, &caller.user.id, &caller.user.domain_id)
                .await
                .map_err(store_error)?,
        };
        let (project, role) = membership.ok_or(ApiError::ProjectNotFound)?;
        Ok(Member {
            caller,
            project,
            role,
        })
    }
}

impl Member {
    pub(crate) fn require(&self, action: Action) -> Result<(), ApiError> {
        if allows(self.role, action) {
            Ok(())
        } else {
            Err(ApiError::Forbidden {
                action: action.describe(),
            })
        }
    }

    /// The caller as the engine sees them (reviews assigned to a role match the project role).
    pub(crate) fn actor(&self) -> Actor {
        Actor {
            user_id: self.caller.user.id.clone(),
            user_name: self.caller.user.name.clone(),
            roles: vec![self.role.as_str().to_owned()],
        }
    }

    /// The project's pipeline, or `DEVPIPE.00011401` (also for another project's pipeline).
    pub(crate) async fn pipeline(
        &self,
        state: &AppState,
        pipeline_id: &str,
    ) -> Result<PipelineRecord, ApiError> {
        if !is_valid_id(pipeline_id) {
            return Err(ApiError::NotFound(Missing::Pipeline));
        }
        state
            .api
            .store
            .pipeline(&self.project.id, pipeline_id)
            .await
            .map_err(|err| ApiError::from_store(err, Missing::Pipeline))?
            .ok_or(ApiError::NotFound(Missing::Pipeline))
    }

    /// The project's pipeline without its definition and links (one light read), or
    /// `DEVPIPE.00011401` (also for another project's pipeline).
    pub(crate) async fn pipeline_head(
        &self,
        state: &AppState,
        pipeline_id: &str,
    ) -> Result<PipelineHead, ApiError> {
        if !is_valid_id(pipeline_id) {
            return Err(ApiError::NotFound(Missing::Pipeline));
        }
        state
            .api
            .store
            .pipeline_head(&self.project.id, pipeline_id)
            .await
            .map_err(|err| ApiError::from_store(err, Missing::Pipeline))?
            .ok_or(ApiError::NotFound(Missing::Pipeline))
    }

    /// A run of the pipeline, or `DEVPIPE.00011402` (also for another pipeline's run).
    pub(crate) async fn run(
        &self,
        state: &AppState,
        pipeline: &PipelineRecord,
        run_id: &str,
    ) -> Result<RunRecord, ApiError> {
        self.run_of_pipeline(state, &pipeline.id, run_id).await
    }

    /// A run of the pipeline `pipeline_id` (already checked to be the project's), or
    /// `DEVPIPE.00011402`.
    pub(crate) async fn run_of_pipeline(
        &self,
        state: &AppState,
        pipeline_id: &str,
        run_id: &str,
    ) -> Result<RunRecord, ApiError> {
        if !is_valid_id(run_id) {
            return Err(ApiError::NotFound(Missing::Run));
        }
        state
            .api
            .store
            .run(run_id)
            .await
            .map_err(|err| ApiError::from_store(err, Missing::Run))?
            .filter(|run| run.pipeline_id == pipeline_id)
            .ok_or(ApiError::NotFound(Missing::Run))
    }

    /// A run of the pipeline `pipeline_id` with its stages, jobs and steps, or
    /// `DEVPIPE.00011402`.
    pub(crate) async fn run_detail(
        &self,
        state: &AppState,
        pipeline_id: &str,
        run_id: &str,
    ) -> Result<RunDetail, ApiError> {
        if !is_valid_id(run_id) {
            return Err(ApiError::NotFound(Missing::Run));
        }
        state
            .api
            .store
            .run_detail(run_id)
            .await
            .map_err(|err| ApiError::from_store(err, Missing::Run))?
            .filter(|detail| detail.run.pipeline_id == pipeline_id)
            .ok_or(ApiError::NotFound(Missing::Run))
    }
}

/// The route's `{project_id}` when it is a well-formed id; `None` for a route without one or an
/// id that cannot exist. Shared by the authentication middleware and [`Member`].
pub(crate) async fn path_project_id(parts: &mut Parts) -> Option<String> {
    RawPathParams::from_request_parts(parts, &())
        .await
        .ok()?
        .iter()
        .find(|(name, _)| *name == "project_id")
        .map(|(_, value)| value.to_owned())
        .filter(|id| is_valid_id(id))
}

/// Ids are opaque: 1–64 of `[A-Za-z0-9_-]` (spec §1.2); anything else cannot exist.
pub(crate) fn is_valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
}

fn store_error(err: StoreError) -> ApiError {
    ApiError::from_store(err, Missing::Pipeline)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_permission_table() {
        use Action::*;
        let all = [View, Edit, Execute, Review, Delete];
        assert!(all.iter().all(|action| allows(Role::Admin, *action)));
        assert_eq!(
            all.map(|action| allows(Role::Developer, action)),
            [true, true, true, true, false]
        );
        assert_eq!(
            all.map(|action| allows(Role::Viewer, action)),
            [true, false, false, false, false]
        );
    }
}
