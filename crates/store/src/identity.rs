//! Identity: domains (tenants), users (argon2 password hashes), tokens (SHA-256 digests), access keys (SK encrypted), projects, members.

use crate::error::StoreError;
use runnel_domain::Timestamp;
use std::fmt;
use std::future::Future;
use std::time::Duration;

mod ops;

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
    fn members(
        &self,
        project_id: &str,
    ) -> impl Future<Output = Result<Vec<MemberRecord>, StoreError>> + Send;
}
