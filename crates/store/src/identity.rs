//! Identity: domains (tenants), users (argon2 password hashes), tokens (SHA-256 digests), access keys (SK encrypted), projects, members.
//!
//! [`IdentityStore`] holds the single-object operations; [`IdentityAdminStore`] the changes a
//! domain administrator makes, each one transaction together with its audit event.

use crate::error::StoreError;
use runnel_domain::Timestamp;
use std::fmt;
use std::future::Future;
use std::time::Duration;

mod admin;
mod ops;

pub use admin::generate_password;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainRecord {
    pub id: String,
    pub name: String,
    pub created_at: Timestamp,
}

/// A user; the password hash never leaves the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: String,
    pub domain_id: String,
    pub name: String,
    pub display_name: String,
    pub is_disabled: bool,
    /// May manage the users, projects, members, access keys and tokens of the domain.
    pub is_domain_admin: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: String,
    pub user_id: String,
    /// What the token was issued for (e.g. the IAM project scope), opaque to the store.
    pub scope: String,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// A new token: `token` is shown to its owner once; only its SHA-256 is stored.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedToken {
    pub token: String,
    pub record: TokenRecord,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("token", &"…")
            .field("record", &self.record)
            .finish()
    }
}

/// An access key with its secret key decrypted (for signature checks). Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessKeyRecord {
    pub ak: String,
    pub sk: String,
    pub user_id: String,
    pub description: String,
    pub is_disabled: bool,
    pub created_at: Timestamp,
}

/// A new access key: the SK is shown once; it is stored encrypted.
pub type IssuedAccessKey = AccessKeyRecord;

/// An access key without its secret key, for listings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKeyInfo {
    pub ak: String,
    pub user_id: String,
    pub description: String,
    pub is_disabled: bool,
    pub created_at: Timestamp,
}

impl fmt::Debug for AccessKeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessKeyRecord")
            .field("ak", &self.ak)
            .field("sk", &"…")
            .field("user_id", &self.user_id)
            .field("is_disabled", &self.is_disabled)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectRecord {
    pub id: String,
    pub domain_id: String,
    pub name: String,
    pub description: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A member's role in a project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Admin,
    Developer,
    Viewer,
}

impl Role {
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Developer => "developer",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "admin" => Some(Role::Admin),
            "developer" => Some(Role::Developer),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    pub project_id: String,
    pub user_id: String,
    pub role: Role,
    pub created_at: Timestamp,
}

/// Tenants, users and their credentials, projects and memberships (A4).
///
/// Passwords are stored as argon2id hashes, tokens as SHA-256 digests (the token itself is
/// returned once by `issue_token`), secret keys of access keys encrypted with the operator
/// key. Checking a password costs the same whether or not the user exists. A revoked or
/// expired token, or one of a disabled user, authenticates nobody from the moment the change
/// is committed (S6).
pub trait IdentityStore {
    fn create_domain(
        &self,
        name: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<DomainRecord, StoreError>> + Send;
    fn domain(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<DomainRecord>, StoreError>> + Send;
    fn domain_by_name(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<DomainRecord>, StoreError>> + Send;

    /// `password` `None` creates a user who cannot log in with a password.
    fn create_user(
        &self,
        domain_id: &str,
        name: &str,
        password: Option<&str>,
        now: Timestamp,
    ) -> impl Future<Output = Result<UserRecord, StoreError>> + Send;
    fn user(&self, id: &str)
    -> impl Future<Output = Result<Option<UserRecord>, StoreError>> + Send;
    fn user_by_name(
        &self,
        domain_id: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<UserRecord>, StoreError>> + Send;
    /// The user when the password matches and the user is enabled; `None` otherwise.
    fn authenticate_password(
        &self,
        domain_name: &str,
        user_name: &str,
        password: &str,
    ) -> impl Future<Output = Result<Option<UserRecord>, StoreError>> + Send;
    fn set_password(
        &self,
        user_id: &str,
        password: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn set_user_disabled(
        &self,
        user_id: &str,
        is_disabled: bool,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn issue_token(
        &self,
        user_id: &str,
        scope: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> impl Future<Output = Result<IssuedToken, StoreError>> + Send;
    /// The token and its user when the token is valid at `now`.
    fn authenticate_token(
        &self,
        token: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<Option<(TokenRecord, UserRecord)>, StoreError>> + Send;
    /// Returns whether a live token was revoked.
    fn revoke_token(
        &self,
        token: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    fn revoke_user_tokens(
        &self,
        user_id: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    fn create_access_key(
        &self,
        user_id: &str,
        description: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<IssuedAccessKey, StoreError>> + Send;
    fn access_key(
        &self,
        ak: &str,
    ) -> impl Future<Output = Result<Option<AccessKeyRecord>, StoreError>> + Send;
    fn set_access_key_disabled(
        &self,
        ak: &str,
        is_disabled: bool,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn delete_access_key(&self, ak: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn create_project(
        &self,
        domain_id: &str,
        name: &str,
        description: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<ProjectRecord, StoreError>> + Send;
    fn project(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<ProjectRecord>, StoreError>> + Send;
    fn projects(
        &self,
        domain_id: &str,
    ) -> impl Future<Output = Result<Vec<ProjectRecord>, StoreError>> + Send;

    /// Adds the member or changes their role.
    fn set_member(
        &self,
        project_id: &str,
        user_id: &str,
        role: Role,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn remove_member(
        &self,
        project_id: &str,
        user_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn member_role(
        &self,
        project_id: &str,
        user_id: &str,
    ) -> impl Future<Output = Result<Option<Role>, StoreError>> + Send;
    /// [`authenticate_token`](Self::authenticate_token) and [`membership`](Self::membership)
    /// of the token's user in `project_id` in one read: a project-scoped request with a token
    /// needs both, and each statement is a round trip to a database thread or server. `None`:
    /// the token is not valid; `Some((.., .., None))`: it is, but its user is not a member.
    fn authenticate_token_in_project(
        &self,
        token: &str,
        now: Timestamp,
        project_id: &str,
    ) -> impl Future<Output = Result<Option<AuthenticatedMember>, StoreError>> + Send;
    /// The project and the user's role in it, in one read; `None` when either is missing or
    /// the project belongs to another domain. Every project-scoped request starts with it.
    fn membership(
        &self,
        project_id: &str,
        user_id: &str,
        domain_id: &str,
    ) -> impl Future<Output = Result<Option<(ProjectRecord, Role)>, StoreError>> + Send;
    fn members(
        &self,
        project_id: &str,
    ) -> impl Future<Output = Result<Vec<MemberRecord>, StoreError>> + Send;
}

/// A valid token's record and user, and the user's project and role in the project asked
/// about (`None`: not a member), from [`IdentityStore::authenticate_token_in_project`].
pub type AuthenticatedMember = (TokenRecord, UserRecord, Option<(ProjectRecord, Role)>);

/// Who makes an administrative change: recorded as the actor of its audit event, and the
/// domain every object of the change must belong to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminActor {
    pub user_id: String,
    pub domain_id: String,
}

/// A user to create. `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct NewUser {
    pub name: String,
    /// `None` creates a user who cannot log in with a password (access keys only).
    pub password: Option<String>,
    pub is_domain_admin: bool,
}

impl fmt::Debug for NewUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewUser")
            .field("name", &self.name)
            .field("password", &self.password.as_ref().map(|_| "…"))
            .field("is_domain_admin", &self.is_domain_admin)
            .finish()
    }
}

/// The changes a domain administrator makes (`/v5/admin/…`), and the listings they need.
///
/// Every change is confined to `actor.domain_id`: a user, project or access key of another
/// domain is `StoreError::NotFound`, exactly like one that does not exist. Each change is ONE
/// transaction together with its audit event (`user.create`, `user.disable`, `user.enable`,
/// `project.create`, `member.set`, `member.remove`, `access_key.create`, `access_key.delete`,
/// `token.revoke_user`; details never hold secrets), so an error leaves nothing behind.
pub trait IdentityAdminStore {
    /// The domain's users, by name.
    fn users(
        &self,
        domain_id: &str,
    ) -> impl Future<Output = Result<Vec<UserRecord>, StoreError>> + Send;
    /// A user's access keys, oldest first, without secret keys.
    fn access_keys_of(
        &self,
        user_id: &str,
    ) -> impl Future<Output = Result<Vec<AccessKeyInfo>, StoreError>> + Send;
    /// The projects a user is a member of, by name, with the user's role.
    fn member_projects(
        &self,
        user_id: &str,
    ) -> impl Future<Output = Result<Vec<(ProjectRecord, Role)>, StoreError>> + Send;
    /// Grants or withdraws domain administration (bootstrap grants it to `admin`).
    fn set_domain_admin(
        &self,
        user_id: &str,
        is_domain_admin: bool,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A name already used in the domain is `StoreError::Conflict`.
    fn admin_create_user(
        &self,
        actor: &AdminActor,
        user: NewUser,
        now: Timestamp,
    ) -> impl Future<Output = Result<UserRecord, StoreError>> + Send;
    /// Disables the user and revokes every live token of theirs, in one transaction; returns
    /// how many tokens were revoked. Their access keys fail from the same moment (S6).
    fn admin_disable_user(
        &self,
        actor: &AdminActor,
        user_id: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
    fn admin_enable_user(
        &self,
        actor: &AdminActor,
        user_id: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Creates the project with the actor as its `admin` member, in one transaction. A name
    /// already used in the domain is `StoreError::Conflict`.
    fn admin_create_project(
        &self,
        actor: &AdminActor,
        name: &str,
        description: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<ProjectRecord, StoreError>> + Send;
    /// Adds the member or changes their role.
    fn admin_set_member(
        &self,
        actor: &AdminActor,
        project_id: &str,
        user_id: &str,
        role: Role,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// `StoreError::NotFound` when the user is not a member.
    fn admin_remove_member(
        &self,
        actor: &AdminActor,
        project_id: &str,
        user_id: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn admin_create_access_key(
        &self,
        actor: &AdminActor,
        user_id: &str,
        description: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<IssuedAccessKey, StoreError>> + Send;
    fn admin_delete_access_key(
        &self,
        actor: &AdminActor,
        ak: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Revokes every live token of the user; returns how many.
    fn admin_revoke_user_tokens(
        &self,
        actor: &AdminActor,
        user_id: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
}
