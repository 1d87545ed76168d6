//! `IdentityAdminStore` on SQLite and PostgreSQL: changes confined to the actor's domain, each
//! one transaction with its audit event, refusals that change nothing.

#![allow(clippy::unwrap_used)]

#[path = "conformance/harness.rs"]
#[macro_use]
#[allow(dead_code)]
mod harness;

use runnel_domain::Timestamp;
use runnel_store::*;
use std::time::Duration;

const T0: Timestamp = Timestamp::from_millis(1_740_000_000_000);

fn at(offset_ms: i64) -> Timestamp {
    Timestamp::from_millis(T0.as_millis() + offset_ms)
}

/// A domain with a domain administrator, and the actor for their changes.
async fn domain_with_admin(store: &Store, name: &str) -> (DomainRecord, UserRecord, AdminActor) {
    let domain = store.create_domain(name, T0).await.unwrap();
    let admin = store
        .create_user(&domain.id, "root", Some("root password 1"), T0)
        .await
        .unwrap();
    store.set_domain_admin(&admin.id, true, T0).await.unwrap();
    let actor = AdminActor {
        user_id: admin.id.clone(),
        domain_id: domain.id.clone(),
    };
    let admin = store.user(&admin.id).await.unwrap().unwrap();
    assert!(admin.is_domain_admin);
    (domain, admin, actor)
}

async fn audit_actions(store: &Store) -> Vec<String> {
    let events = store
        .audit_events(&AuditQuery {
            project_id: None,
            before_id: None,
            limit: 500,
        })
        .await
        .unwrap();
    events
        .into_iter()
        .rev()
        .map(|event| event.event.action)
        .collect()
}

conformance! {
    async fn users_are_created_disabled_and_enabled_within_the_domain_with_audit_events(db) {
        let store = db.open().await;
        let (domain, _, actor) = domain_with_admin(&store, "acme").await;
        let (_, other_admin, other_actor) = domain_with_admin(&store, "other").await;

        let bob = store
            .admin_create_user(&actor, NewUser { name: "bob".into(), password: Some("bob password".into()), is_domain_admin: false }, at(1))
            .await
            .unwrap();
        assert_eq!(bob.domain_id, domain.id);
        assert!(!bob.is_domain_admin && !bob.is_disabled);
        assert!(!format!("{:?}", NewUser { name: "x".into(), password: Some("hunter2".into()), is_domain_admin: false }).contains("hunter2"));
        let duplicate = store
            .admin_create_user(&actor, NewUser { name: "bob".into(), password: None, is_domain_admin: false }, at(2))
            .await;
        assert!(matches!(duplicate, Err(StoreError::Conflict(_))), "{duplicate:?}");
        assert_eq!(audit_actions(&store).await, ["user.create"], "a refused change leaves no audit event");
        let names: Vec<String> = store.users(&domain.id).await.unwrap().into_iter().map(|user| user.name).collect();
        assert_eq!(names, ["bob", "root"]);

        let first = store.issue_token(&bob.id, "s", at(3), Duration::from_secs(3600)).await.unwrap();
        let second = store.issue_token(&bob.id, "s", at(4), Duration::from_secs(3600)).await.unwrap();
        // Another domain's administrator cannot touch bob: NotFound, and nothing changes.
        assert!(matches!(store.admin_disable_user(&other_actor, &bob.id, at(5)).await, Err(StoreError::NotFound)));
        assert!(store.authenticate_token(&first.token, at(6)).await.unwrap().is_some());
        assert!(matches!(store.admin_disable_user(&actor, "no-such-user", at(5)).await, Err(StoreError::NotFound)));

        assert_eq!(store.admin_disable_user(&actor, &bob.id, at(10)).await.unwrap(), 2);
        assert!(store.user(&bob.id).await.unwrap().unwrap().is_disabled);
        assert!(store.authenticate_token(&first.token, at(11)).await.unwrap().is_none());
        assert!(store.authenticate_password("acme", "bob", "bob password").await.unwrap().is_none());

        store.admin_enable_user(&actor, &bob.id, at(20)).await.unwrap();
        assert!(store.authenticate_password("acme", "bob", "bob password").await.unwrap().is_some());
        assert!(
            store.authenticate_token(&second.token, at(21)).await.unwrap().is_none(),
            "tokens revoked by the disable stay revoked"
        );
        assert!(!store.user(&other_admin.id).await.unwrap().unwrap().is_disabled);
        assert_eq!(audit_actions(&store).await, ["user.create", "user.disable", "user.enable"]);
    }
}

conformance! {
    async fn projects_come_with_their_creator_as_admin_and_members_stay_in_the_domain(db) {
        let store = db.open().await;
        let (domain, admin, actor) = domain_with_admin(&store, "acme").await;
        let (_, stranger, other_actor) = domain_with_admin(&store, "other").await;
        let dev = store.create_user(&domain.id, "dev", None, T0).await.unwrap();

        let project = store.admin_create_project(&actor, "team-b", "second team", at(1)).await.unwrap();
        assert_eq!(store.member_role(&project.id, &admin.id).await.unwrap(), Some(Role::Admin));
        let again = store.admin_create_project(&actor, "team-b", "", at(2)).await;
        assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
        assert_eq!(store.projects(&domain.id).await.unwrap().len(), 1, "the refused project left nothing");
        let projects = store.member_projects(&admin.id).await.unwrap();
        assert_eq!(projects.len(), 1);
        assert_eq!((projects[0].0.id.as_str(), projects[0].1), (project.id.as_str(), Role::Admin));

        store.admin_set_member(&actor, &project.id, &dev.id, Role::Viewer, at(3)).await.unwrap();
        store.admin_set_member(&actor, &project.id, &dev.id, Role::Developer, at(4)).await.unwrap();
        assert_eq!(store.member_role(&project.id, &dev.id).await.unwrap(), Some(Role::Developer));
        // The one-read membership the API starts every request with.
        let (found, role) = store.membership(&project.id, &dev.id, &domain.id).await.unwrap().expect("member");
        assert_eq!((found.id.as_str(), found.name.as_str(), role), (project.id.as_str(), "team-b", Role::Developer));
        assert_eq!(store.membership(&project.id, &dev.id, &stranger.domain_id).await.unwrap(), None, "another domain");
        assert_eq!(store.membership(&project.id, &stranger.id, &stranger.domain_id).await.unwrap(), None, "not a member");
        // A user or project of another domain is not found, and nothing is written.
        assert!(matches!(store.admin_set_member(&actor, &project.id, &stranger.id, Role::Viewer, at(5)).await, Err(StoreError::NotFound)));
        assert!(matches!(store.admin_set_member(&other_actor, &project.id, &stranger.id, Role::Viewer, at(5)).await, Err(StoreError::NotFound)));
        assert_eq!(store.member_role(&project.id, &stranger.id).await.unwrap(), None);

        store.admin_remove_member(&actor, &project.id, &dev.id, at(6)).await.unwrap();
        assert_eq!(store.member_role(&project.id, &dev.id).await.unwrap(), None);
        assert!(matches!(store.admin_remove_member(&actor, &project.id, &dev.id, at(7)).await, Err(StoreError::NotFound)));
        assert_eq!(
            audit_actions(&store).await,
            ["project.create", "member.set", "member.set", "member.remove"]
        );
    }
}

conformance! {
    async fn access_keys_and_tokens_are_managed_within_the_domain(db) {
        let store = db.open().await;
        let (domain, _, actor) = domain_with_admin(&store, "acme").await;
        let (_, _, other_actor) = domain_with_admin(&store, "other").await;
        let ci = store.create_user(&domain.id, "ci", None, T0).await.unwrap();

        let key = store.admin_create_access_key(&actor, &ci.id, "pipeline bot", at(1)).await.unwrap();
        assert_eq!(store.access_key(&key.ak).await.unwrap().unwrap().sk, key.sk);
        let listed = store.access_keys_of(&ci.id).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].ak.as_str(), listed[0].description.as_str()), (key.ak.as_str(), "pipeline bot"));
        assert!(matches!(store.admin_create_access_key(&other_actor, &ci.id, "", at(2)).await, Err(StoreError::NotFound)));
        assert_eq!(store.access_keys_of(&ci.id).await.unwrap().len(), 1);

        assert!(matches!(store.admin_delete_access_key(&other_actor, &key.ak, at(3)).await, Err(StoreError::NotFound)));
        assert!(store.access_key(&key.ak).await.unwrap().is_some(), "another domain cannot delete it");
        store.admin_delete_access_key(&actor, &key.ak, at(4)).await.unwrap();
        assert!(store.access_key(&key.ak).await.unwrap().is_none());
        assert!(matches!(store.admin_delete_access_key(&actor, &key.ak, at(5)).await, Err(StoreError::NotFound)));

        let token = store.issue_token(&ci.id, "s", at(6), Duration::from_secs(3600)).await.unwrap();
        assert!(matches!(store.admin_revoke_user_tokens(&other_actor, &ci.id, at(7)).await, Err(StoreError::NotFound)));
        assert!(store.authenticate_token(&token.token, at(8)).await.unwrap().is_some());
        assert_eq!(store.admin_revoke_user_tokens(&actor, &ci.id, at(9)).await.unwrap(), 1);
        assert!(store.authenticate_token(&token.token, at(10)).await.unwrap().is_none());
        assert_eq!(store.admin_revoke_user_tokens(&actor, &ci.id, at(11)).await.unwrap(), 0);
        assert!(!store.user(&ci.id).await.unwrap().unwrap().is_disabled, "revoking tokens does not disable");
        assert_eq!(
            audit_actions(&store).await,
            ["access_key.create", "access_key.delete", "token.revoke_user", "token.revoke_user"]
        );
    }
}

conformance! {
    async fn migration_0007_makes_the_bootstrapped_admin_of_an_older_installation_a_domain_admin(db) {
        let store = db.open().await;
        let domain = store.create_domain("default", T0).await.unwrap();
        let admin = store.create_user(&domain.id, "admin", None, T0).await.unwrap();
        let other = store.create_user(&domain.id, "other", None, T0).await.unwrap();
        // What bootstrap recorded before migration 0007 existed.
        store
            .record_audit(NewAuditEvent {
                occurred_at: T0,
                domain_id: Some(domain.id.clone()),
                project_id: Some("system:bootstrap".to_owned()),
                actor_id: None,
                action: "system.bootstrap".to_owned(),
                target_type: "user".to_owned(),
                target_id: admin.id.clone(),
                details: serde_json::json!({}),
            })
            .await
            .unwrap();
        let migration = match db.kind {
            harness::Kind::Sqlite => include_str!("../migrations/sqlite/0007_domain_admins.sql"),
            harness::Kind::Postgres => include_str!("../migrations/postgres/0007_domain_admins.sql"),
        };
        let update = &migration[migration.find("UPDATE users").expect("the data step")..];
        sqlx::any::install_default_drivers();
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&db.url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(update.to_owned())).execute(&mut conn).await.unwrap();
        assert!(store.user(&admin.id).await.unwrap().unwrap().is_domain_admin);
        assert!(!store.user(&other.id).await.unwrap().unwrap().is_domain_admin);
    }
}

#[test]
fn generated_passwords_are_long_random_and_alphanumeric() {
    let first = generate_password();
    assert!(first.len() >= 20);
    assert!(first.chars().all(|char| char.is_ascii_alphanumeric()));
    assert_ne!(first, generate_password());
}
