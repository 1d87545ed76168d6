//! Store methods no other conformance test calls: artifact metadata, members and credentials,
//! service endpoints, tag and group renames, variable group updates, webhook deliveries and
//! trigger replacement, the legacy build results — behaviour, ordering, and refusals that
//! change nothing.

use crate::fixtures::*;
use crate::harness::TestDb;
use runnel_domain::params::VariableType;
use runnel_domain::status::{JobStatus, RunStatus};
use runnel_store::*;

/// A raw connection to the test database, to look at what is stored at rest.
async fn raw(db: &TestDb) -> sqlx::AnyConnection {
    sqlx::any::install_default_drivers();
    <sqlx::AnyConnection as sqlx::Connection>::connect(&db.url)
        .await
        .unwrap()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

async fn trigger_count(conn: &mut sqlx::AnyConnection) -> i64 {
    let row = sqlx::query("SELECT COUNT(*) FROM triggers")
        .fetch_one(conn)
        .await
        .unwrap();
    sqlx::Row::get(&row, 0)
}

conformance! {
    async fn artifacts_are_recorded_under_the_lease_and_listed_per_run_oldest_first(db) {
        let store = db.open().await;
        let tenant = tenant(&store, "acme").await;
        let pipeline = pipeline(&store, &tenant, "artifacts").await;
        let shape = RunShape { jobs_per_stage: vec![2], steps_per_job: 2 };
        let (run, jobs) = queued_run(&store, &pipeline.id, &shape, None, at(0)).await;
        let (other_run, _) = queued_run(&store, &pipeline.id, &RunShape::default(), None, at(1)).await;
        let lease = store.claim(claim_request("w1", None, at(2), 60_000)).await.unwrap().unwrap();
        assert_eq!(lease.job_run_id, jobs[0]);
        let detail = store.run_detail(&run.id).await.unwrap().unwrap();
        let step_ids = |job_id: &str| -> Vec<String> {
            let job = detail.stages[0].jobs.iter().find(|job| job.id == job_id).unwrap();
            job.steps.iter().map(|step| step.id.clone()).collect()
        };
        let (steps, sibling_steps) = (step_ids(&jobs[0]), step_ids(&jobs[1]));
        let other_detail = store.run_detail(&other_run.id).await.unwrap().unwrap();
        let other_run_step = other_detail.stages[0].jobs[0].steps[0].id.clone();
        let artifact = |step: &str, name: &str, offset: i64| NewArtifact {
            step_run_id: step.to_owned(),
            name: name.to_owned(),
            version: "1.0.0".to_owned(),
            package_type: "generic".to_owned(),
            artifact_type: "file".to_owned(),
            upload_target: "obs".to_owned(),
            uri: format!("obs://bucket/{name}"),
            download_url: format!("https://dl.example.com/{name}"),
            sha256: None,
            file_size: None,
            build_no: "7".to_owned(),
            daily_build_number: "20250219.1".to_owned(),
            at: at(offset),
        };
        // Recorded out of time order; two at the same instant.
        let mut late = artifact(&steps[1], "late.tar.gz", 30);
        late.sha256 = Some("ab".repeat(32));
        late.file_size = Some(5_000_000_000);
        let late_id = store.record_artifact(&lease.token, late.clone()).await.unwrap();
        let early_id = store.record_artifact(&lease.token, artifact(&steps[0], "early.zip", 10)).await.unwrap();
        let tie_a = store.record_artifact(&lease.token, artifact(&steps[0], "tie-a", 20)).await.unwrap();
        let tie_b = store.record_artifact(&lease.token, artifact(&steps[1], "tie-b", 20)).await.unwrap();
        assert_eq!([&late_id, &early_id, &tie_a, &tie_b].iter().collect::<std::collections::HashSet<_>>().len(), 4);

        // A step of another job, of another run, or unknown: refused, nothing stored.
        for step in [&sibling_steps[0], &other_run_step, &"no-such-step".to_owned()] {
            let refused = store.record_artifact(&lease.token, artifact(step, "stray", 40)).await;
            assert!(matches!(refused, Err(StoreError::NotFound)), "{step}: {refused:?}");
        }
        // A token that is not current: refused, nothing stored.
        let bogus = LeaseToken::new("not-a-lease-token");
        assert!(matches!(store.record_artifact(&bogus, artifact(&steps[0], "stray", 40)).await, Err(StoreError::LeaseLost)));
        store.complete(&lease.token, JobOutcome { status: JobStatus::Completed, message: None }, at(50)).await.unwrap();
        assert!(matches!(store.record_artifact(&lease.token, artifact(&steps[0], "stray", 60)).await, Err(StoreError::LeaseLost)));

        let listed = store.artifacts(&run.id).await.unwrap();
        let mut ties = [(tie_a.clone(), "tie-a"), (tie_b.clone(), "tie-b")];
        ties.sort();
        let order: Vec<(&str, &str)> = listed.iter().map(|a| (a.id.as_str(), a.name.as_str())).collect();
        assert_eq!(
            order,
            vec![(early_id.as_str(), "early.zip"), (ties[0].0.as_str(), ties[0].1), (ties[1].0.as_str(), ties[1].1), (late_id.as_str(), "late.tar.gz")],
            "by creation time, then id"
        );
        assert_eq!(
            listed[3],
            ArtifactRecord {
                id: late_id.clone(),
                run_id: run.id.clone(),
                job_run_id: Some(jobs[0].clone()),
                step_run_id: Some(steps[1].clone()),
                name: late.name.clone(),
                version: late.version.clone(),
                package_type: late.package_type.clone(),
                artifact_type: late.artifact_type.clone(),
                upload_target: late.upload_target.clone(),
                uri: late.uri.clone(),
                download_url: late.download_url.clone(),
                sha256: late.sha256.clone(),
                file_size: Some(5_000_000_000),
                build_no: late.build_no.clone(),
                daily_build_number: late.daily_build_number.clone(),
                created_at: at(30),
            }
        );
        assert_eq!((listed[0].sha256.as_deref(), listed[0].file_size), (None, None));
        assert!(store.artifacts(&other_run.id).await.unwrap().is_empty(), "another run's list is its own");
        assert!(store.artifacts("no-such-run").await.unwrap().is_empty());
    }
}

conformance! {
    async fn members_users_passwords_and_access_keys(db) {
        let store = db.open().await;
        let domain = store.create_domain("acme", T0).await.unwrap();
        let elsewhere = store.create_domain("globex", T0).await.unwrap();
        let alice = store.create_user(&domain.id, "alice", Some("first-pass"), T0).await.unwrap();
        let bob = store.create_user(&domain.id, "bob", None, T0).await.unwrap();
        let carol = store.create_user(&domain.id, "carol", None, T0).await.unwrap();
        let foreign_alice = store.create_user(&elsewhere.id, "alice", None, T0).await.unwrap();

        // Users by name: per domain, compared exactly.
        assert_eq!(store.user_by_name(&domain.id, "alice").await.unwrap(), Some(alice.clone()));
        assert_eq!(store.user_by_name(&elsewhere.id, "alice").await.unwrap(), Some(foreign_alice.clone()));
        assert_eq!(store.user_by_name(&domain.id, "ALICE").await.unwrap(), None);
        assert_eq!(store.user_by_name(&domain.id, "dave").await.unwrap(), None);
        assert_eq!(store.user_by_name("no-such-domain", "alice").await.unwrap(), None);
        let duplicate = store.create_user(&domain.id, "alice", Some("other"), at(1)).await;
        assert!(matches!(duplicate, Err(StoreError::Conflict(_))), "{duplicate:?}");
        assert_eq!(store.user_by_name(&domain.id, "alice").await.unwrap(), Some(alice.clone()));
        assert_eq!(store.users(&domain.id).await.unwrap().len(), 3);
        assert!(store.authenticate_password("acme", "alice", "first-pass").await.unwrap().is_some());

        // Members: oldest membership first, then by user id; a new role keeps the membership's age.
        let project = store.create_project(&domain.id, "web", "", T0).await.unwrap();
        let other_project = store.create_project(&domain.id, "api", "", T0).await.unwrap();
        store.set_member(&project.id, &carol.id, Role::Viewer, at(30)).await.unwrap();
        store.set_member(&project.id, &alice.id, Role::Admin, at(10)).await.unwrap();
        store.set_member(&project.id, &bob.id, Role::Developer, at(20)).await.unwrap();
        store.set_member(&other_project.id, &bob.id, Role::Admin, at(5)).await.unwrap();
        let member = |user: &UserRecord, role: Role, offset: i64| MemberRecord {
            project_id: project.id.clone(),
            user_id: user.id.clone(),
            role,
            created_at: at(offset),
        };
        assert_eq!(
            store.members(&project.id).await.unwrap(),
            vec![member(&alice, Role::Admin, 10), member(&bob, Role::Developer, 20), member(&carol, Role::Viewer, 30)]
        );
        store.set_member(&project.id, &alice.id, Role::Viewer, at(40)).await.unwrap();
        let dave = store.create_user(&domain.id, "dave", None, T0).await.unwrap();
        let erin = store.create_user(&domain.id, "erin", None, T0).await.unwrap();
        store.set_member(&project.id, &erin.id, Role::Developer, at(50)).await.unwrap();
        store.set_member(&project.id, &dave.id, Role::Developer, at(50)).await.unwrap();
        let mut same_time = vec![member(&dave, Role::Developer, 50), member(&erin, Role::Developer, 50)];
        same_time.sort_by(|left, right| left.user_id.cmp(&right.user_id));
        let mut expected = vec![member(&alice, Role::Viewer, 10), member(&bob, Role::Developer, 20), member(&carol, Role::Viewer, 30)];
        expected.extend(same_time);
        assert_eq!(store.members(&project.id).await.unwrap(), expected);
        assert_eq!(store.member_role(&project.id, &alice.id).await.unwrap(), Some(Role::Viewer));

        // Refusals change nothing.
        for (project_id, user_id) in [(project.id.as_str(), "no-such-user"), ("no-such-project", bob.id.as_str())] {
            let refused = store.set_member(project_id, user_id, Role::Admin, at(60)).await;
            assert!(matches!(refused, Err(StoreError::Invalid(_))), "{project_id}/{user_id}: {refused:?}");
        }
        assert_eq!(store.members(&project.id).await.unwrap(), expected);
        store.remove_member(&project.id, &bob.id).await.unwrap();
        assert!(matches!(store.remove_member(&project.id, &bob.id).await, Err(StoreError::NotFound)));
        expected.retain(|record| record.user_id != bob.id);
        assert_eq!(store.members(&project.id).await.unwrap(), expected);
        assert_eq!(
            store.members(&other_project.id).await.unwrap(),
            vec![MemberRecord { project_id: other_project.id.clone(), user_id: bob.id.clone(), role: Role::Admin, created_at: at(5) }],
            "another project's members are its own"
        );
        assert!(store.members("no-such-project").await.unwrap().is_empty());

        // Passwords: the new one works, the old one no longer; a user without one gets one.
        store.set_password(&alice.id, "second-pass", at(70)).await.unwrap();
        assert!(store.authenticate_password("acme", "alice", "first-pass").await.unwrap().is_none());
        assert_eq!(store.authenticate_password("acme", "alice", "second-pass").await.unwrap().map(|user| user.id), Some(alice.id.clone()));
        assert_eq!(store.user(&alice.id).await.unwrap().unwrap().updated_at, at(70));
        assert!(store.authenticate_password("globex", "alice", "second-pass").await.unwrap().is_none(), "the other domain's alice is untouched");
        assert!(store.authenticate_password("acme", "bob", "bobs-pass").await.unwrap().is_none());
        store.set_password(&bob.id, "bobs-pass", at(71)).await.unwrap();
        assert!(store.authenticate_password("acme", "bob", "bobs-pass").await.unwrap().is_some());
        assert!(matches!(store.set_password("no-such-user", "x", at(72)).await, Err(StoreError::NotFound)));

        // Access keys: the disabled flag is stored and read back by every lookup; the key itself
        // is kept (and still decrypts), and re-enabling restores it.
        let key = store.create_access_key(&alice.id, "ci", at(80)).await.unwrap();
        let spare = store.create_access_key(&alice.id, "spare", at(81)).await.unwrap();
        store.set_access_key_disabled(&key.ak, true).await.unwrap();
        let found = store.access_key(&key.ak).await.unwrap().unwrap();
        assert!(found.is_disabled, "the lookup reports the key disabled");
        assert_eq!(found.sk, key.sk);
        assert!(!store.access_key(&spare.ak).await.unwrap().unwrap().is_disabled, "only that key");
        let listed: Vec<(String, bool)> = store.access_keys_of(&alice.id).await.unwrap().into_iter().map(|info| (info.ak, info.is_disabled)).collect();
        assert_eq!(listed, vec![(key.ak.clone(), true), (spare.ak.clone(), false)]);
        store.set_access_key_disabled(&key.ak, false).await.unwrap();
        assert!(!store.access_key(&key.ak).await.unwrap().unwrap().is_disabled);
        assert!(matches!(store.set_access_key_disabled("NOSUCHKEY", true).await, Err(StoreError::NotFound)));
        assert!(store.access_key("NOSUCHKEY").await.unwrap().is_none());
    }
}

conformance! {
    async fn service_endpoints_are_per_project_and_keep_their_secret_encrypted(db) {
        let store = db.open().await;
        let tenant = tenant(&store, "acme").await;
        let project = tenant.project.id.clone();
        let other = project_in(&store, &tenant, "other").await;
        const TOKEN: &str = "ghp_plaintext-token-0123456789";
        const KEY: &str = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU=\n-----END OPENSSH PRIVATE KEY-----\n";
        let endpoint = |project_id: &str, name: &str, kind: EndpointKind, secret: &str, offset: i64| NewEndpoint {
            project_id: project_id.to_owned(),
            name: name.to_owned(),
            kind,
            username: if kind == EndpointKind::Token { "oauth2".to_owned() } else { String::new() },
            secret: secret.to_owned(),
            known_hosts: if kind == EndpointKind::SshKey { "github.com ssh-ed25519 AAAAC3Nza".to_owned() } else { String::new() },
            creator_id: tenant.user.id.clone(),
            now: at(offset),
        };
        let token = store.create_endpoint(endpoint(&project, "zeta-token", EndpointKind::Token, TOKEN, 1)).await.unwrap();
        let ssh = store.create_endpoint(endpoint(&project, "alpha-key", EndpointKind::SshKey, KEY, 2)).await.unwrap();
        let foreign = store.create_endpoint(endpoint(&other.id, "alpha-key", EndpointKind::Token, "other-secret", 3)).await.unwrap();
        assert_eq!(
            token,
            EndpointRecord {
                id: token.id.clone(),
                project_id: project.clone(),
                name: "zeta-token".to_owned(),
                kind: EndpointKind::Token,
                username: "oauth2".to_owned(),
                known_hosts: String::new(),
                creator_id: tenant.user.id.clone(),
                created_at: at(1),
                updated_at: at(1),
            }
        );
        assert_eq!((ssh.kind, ssh.known_hosts.as_str()), (EndpointKind::SshKey, "github.com ssh-ed25519 AAAAC3Nza"));

        // Listed per project, by name.
        assert_eq!(store.endpoints(&project).await.unwrap(), vec![ssh.clone(), token.clone()]);
        assert_eq!(store.endpoints(&other.id).await.unwrap(), vec![foreign.clone()]);
        assert!(store.endpoints("no-such-project").await.unwrap().is_empty());

        // Decrypted on read, scoped by project, never printed.
        let credential = store.endpoint_credential(&project, &token.id).await.unwrap().unwrap();
        assert_eq!((&credential.endpoint, credential.secret.as_str()), (&token, TOKEN));
        assert_eq!(store.endpoint_credential(&project, &ssh.id).await.unwrap().unwrap().secret, KEY);
        assert!(!format!("{credential:?}").contains(TOKEN));
        assert!(store.endpoint_credential(&other.id, &token.id).await.unwrap().is_none(), "another project's endpoint");

        // At rest: the secret columns hold neither plaintext.
        let mut conn = raw(&db).await;
        for (id, secret) in [(&token.id, TOKEN), (&ssh.id, KEY)] {
            let row = sqlx::query("SELECT secret_ciphertext, username, known_hosts, name FROM service_endpoints WHERE id = $1")
                .bind(id.clone())
                .fetch_one(&mut conn)
                .await
                .unwrap();
            let sealed: Vec<u8> = sqlx::Row::get(&row, 0);
            assert!(!sealed.is_empty());
            assert!(!contains(&sealed, secret), "the plaintext secret is stored");
            assert!(!contains(&sealed, &secret[..12]), "a prefix of the secret is stored");
            for column in 1..4 {
                let text: String = sqlx::Row::get(&row, column);
                assert!(!text.contains(secret));
            }
        }
        sqlx::Connection::close(conn).await.unwrap();

        // Refusals change nothing: a duplicate name in the project, an unknown project.
        let duplicate = store.create_endpoint(endpoint(&project, "alpha-key", EndpointKind::Token, "dup", 4)).await;
        assert!(matches!(duplicate, Err(StoreError::Conflict(_))), "{duplicate:?}");
        let orphan = store.create_endpoint(endpoint("no-such-project", "orphan", EndpointKind::Token, "x", 5)).await;
        assert!(matches!(orphan, Err(StoreError::Invalid(_))), "{orphan:?}");
        assert_eq!(store.endpoints(&project).await.unwrap(), vec![ssh.clone(), token.clone()]);
        assert_eq!(store.endpoint_credential(&project, &ssh.id).await.unwrap().unwrap().secret, KEY);

        // Deleted: only through its own project, once.
        assert!(matches!(store.delete_endpoint(&other.id, &token.id).await, Err(StoreError::NotFound)));
        assert!(store.endpoint_credential(&project, &token.id).await.unwrap().is_some());
        store.delete_endpoint(&project, &token.id).await.unwrap();
        assert!(store.endpoint_credential(&project, &token.id).await.unwrap().is_none());
        assert!(matches!(store.delete_endpoint(&project, &token.id).await, Err(StoreError::NotFound)));
        assert_eq!(store.endpoints(&project).await.unwrap(), vec![ssh.clone()]);
        assert_eq!(store.endpoints(&other.id).await.unwrap(), vec![foreign]);

        // Another operator key cannot open the secret, but the list needs none.
        store.close().await;
        let wrong_key = db.open_with(|config| config.secret_key = SecretKey::generate()).await;
        assert!(matches!(wrong_key.endpoint_credential(&project, &ssh.id).await, Err(StoreError::Corrupt(_))));
        assert_eq!(wrong_key.endpoints(&project).await.unwrap(), vec![ssh]);
        wrong_key.close().await;
    }
}

conformance! {
    async fn tags_are_listed_by_name_and_updated_in_place(db) {
        let store = db.open().await;
        let tenant = tenant(&store, "acme").await;
        let project = tenant.project.id.clone();
        let other = project_in(&store, &tenant, "other").await;
        let tag = |project_id: &str, name: &str, color: &str| NewTag {
            project_id: project_id.to_owned(),
            name: name.to_owned(),
            color: color.to_owned(),
            now: T0,
        };
        let zeta = store.create_tag(tag(&project, "zeta", "#111111")).await.unwrap();
        let alpha = store.create_tag(tag(&project, "alpha", "#222222")).await.unwrap();
        // Upper case sorts before lower case: byte order, the same on both backends.
        let upper = store.create_tag(tag(&project, "Zulu", "#333333")).await.unwrap();
        let foreign = store.create_tag(tag(&other.id, "alpha", "#444444")).await.unwrap();
        let names = |tags: Vec<TagRecord>| tags.into_iter().map(|tag| tag.name).collect::<Vec<_>>();
        assert_eq!(names(store.tags(&project).await.unwrap()), vec!["Zulu", "alpha", "zeta"]);
        assert_eq!(store.tags(&other.id).await.unwrap(), vec![foreign.clone()]);
        let duplicate = store.create_tag(tag(&project, "alpha", "#555555")).await;
        assert!(matches!(duplicate, Err(StoreError::Conflict(_))), "{duplicate:?}");

        let pipeline = pipeline(&store, &tenant, "tagged").await;
        store.tag_pipelines(&project, std::slice::from_ref(&pipeline.id), std::slice::from_ref(&zeta.id)).await.unwrap();
        store.update_tag(&project, &zeta.id, "beta", "#0b81f6", at(5)).await.unwrap();
        let tags = store.tags(&project).await.unwrap();
        assert_eq!(names(tags.clone()), vec!["Zulu", "alpha", "beta"]);
        let renamed = TagRecord { name: "beta".to_owned(), color: "#0b81f6".to_owned(), updated_at: at(5), ..zeta.clone() };
        assert_eq!(tags[2], renamed, "same id and creation time");
        assert_eq!(store.pipeline(&project, &pipeline.id).await.unwrap().unwrap().tag_ids, vec![zeta.id.clone()], "still bound");
        // Its own name again is no conflict.
        store.update_tag(&project, &alpha.id, "alpha", "#abcdef", at(6)).await.unwrap();
        let alpha = TagRecord { color: "#abcdef".to_owned(), updated_at: at(6), ..alpha };
        let before = store.tags(&project).await.unwrap();
        assert_eq!(before, vec![upper, alpha, renamed]);

        // Refusals change nothing.
        let taken = store.update_tag(&project, &zeta.id, "alpha", "#000000", at(7)).await;
        assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");
        assert!(matches!(store.update_tag(&other.id, &zeta.id, "gamma", "#000000", at(7)).await, Err(StoreError::NotFound)));
        assert!(matches!(store.update_tag(&project, &foreign.id, "gamma", "#000000", at(7)).await, Err(StoreError::NotFound)));
        assert!(matches!(store.update_tag(&project, "no-such-tag", "gamma", "#000000", at(7)).await, Err(StoreError::NotFound)));
        assert_eq!(store.tags(&project).await.unwrap(), before);
        assert_eq!(store.tags(&other.id).await.unwrap(), vec![foreign]);
    }
}

conformance! {
    async fn groups_are_renamed_among_their_siblings_only(db) {
        let store = db.open().await;
        let tenant = tenant(&store, "acme").await;
        let project = tenant.project.id.clone();
        let other = project_in(&store, &tenant, "other").await;
        let editor = store.create_user(&tenant.domain.id, "editor", None, T0).await.unwrap();
        let group = |name: &str, parent: Option<&str>| NewGroup {
            project_id: project.clone(),
            name: name.to_owned(),
            parent_id: parent.map(str::to_owned),
            creator_id: tenant.user.id.clone(),
            now: T0,
        };
        let build = store.create_group(group("build", None)).await.unwrap();
        let deploy = store.create_group(group("deploy", None)).await.unwrap();
        let nightly = store.create_group(group("nightly", Some(&build.id))).await.unwrap();
        let weekly = store.create_group(group("weekly", Some(&build.id))).await.unwrap();

        store.rename_group(&project, &nightly.id, "hourly", &editor.id, at(3)).await.unwrap();
        let renamed = GroupRecord { name: "hourly".to_owned(), updater_id: editor.id.clone(), updated_at: at(3), ..nightly.clone() };
        let find = |groups: &[GroupRecord], id: &str| groups.iter().find(|group| group.id == id).unwrap().clone();
        let groups = store.groups(&project).await.unwrap();
        assert_eq!(find(&groups, &nightly.id), renamed, "same id, path, depth and creator");
        // A name used outside its siblings is free.
        store.rename_group(&project, &nightly.id, "deploy", &editor.id, at(4)).await.unwrap();
        let before = store.groups(&project).await.unwrap();
        assert_eq!(find(&before, &nightly.id).name, "deploy");

        // Refusals change nothing: a sibling's name (nested and top level), another project, an unknown id.
        let taken = store.rename_group(&project, &nightly.id, "weekly", &editor.id, at(5)).await;
        assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");
        let taken = store.rename_group(&project, &deploy.id, "build", &editor.id, at(5)).await;
        assert!(matches!(taken, Err(StoreError::Conflict(_))), "top level: {taken:?}");
        assert!(matches!(store.rename_group(&other.id, &weekly.id, "x", &editor.id, at(5)).await, Err(StoreError::NotFound)));
        assert!(matches!(store.rename_group(&project, "no-such-group", "x", &editor.id, at(5)).await, Err(StoreError::NotFound)));
        assert_eq!(store.groups(&project).await.unwrap(), before);
        assert_eq!(find(&before, &weekly.id), weekly);
        assert_eq!(find(&before, &deploy.id), deploy);
    }
}

conformance! {
    async fn a_variable_group_update_replaces_it_whole_or_changes_nothing(db) {
        let store = db.open().await;
        let tenant = tenant(&store, "acme").await;
        let project = tenant.project.id.clone();
        let other = project_in(&store, &tenant, "other").await;
        let editor = store.create_user(&tenant.domain.id, "editor", None, T0).await.unwrap();
        let variable = |name: &str, sequence: i64, value: &str, is_secret: bool| VariableGroupVariable {
            name: name.to_owned(),
            sequence,
            var_type: VariableType::String,
            value: value.to_owned(),
            is_secret,
            description: format!("{name} here"),
        };
        let group = |name: &str, variables: Vec<VariableGroupVariable>, actor: &str, offset: i64| NewVariableGroup {
            project_id: project.clone(),
            name: name.to_owned(),
            description: format!("{name} at {offset}"),
            variables,
            actor_id: actor.to_owned(),
            now: at(offset),
        };
        let id = store
            .create_variable_group(group("common", vec![variable("REGISTRY", 1, "r.example.com", false), variable("PASSWORD", 2, "old-secret-pw", true)], &tenant.user.id, 0))
            .await
            .unwrap();
        store.create_variable_group(group("taken", vec![], &tenant.user.id, 0)).await.unwrap();
        let mut bound = new_pipeline(&tenant, "bound");
        bound.variable_group_ids = vec![id.clone()];
        let bound = store.create_pipeline(bound).await.unwrap();

        let new_variables = vec![variable("MIRROR", 2, "m.example.com", false), variable("TOKEN", 1, "new-secret-token", true)];
        store.update_variable_group(&id, group("shared", new_variables.clone(), &editor.id, 7)).await.unwrap();
        let updated = store.variable_group(&project, &id).await.unwrap().unwrap();
        let mut by_sequence = new_variables.clone();
        by_sequence.sort_by_key(|variable| variable.sequence);
        assert_eq!(
            updated,
            VariableGroupRecord {
                id: id.clone(),
                project_id: project.clone(),
                name: "shared".to_owned(),
                description: "shared at 7".to_owned(),
                variables: by_sequence,
                related_pipeline_ids: vec![bound.id.clone()],
                creator_id: tenant.user.id.clone(),
                updater_id: editor.id.clone(),
                created_at: T0,
                updated_at: at(7),
            }
        );
        assert_eq!(store.pipeline_variable_groups(&bound.id).await.unwrap(), vec![updated.clone()]);

        // At rest: the old variables are gone, the new secret is sealed.
        let mut conn = raw(&db).await;
        let rows = sqlx::query("SELECT name, value, value_ciphertext FROM variable_group_variables WHERE group_id = $1 ORDER BY name")
            .bind(id.clone())
            .fetch_all(&mut conn)
            .await
            .unwrap();
        let stored: Vec<(String, Option<String>, Option<Vec<u8>>)> = rows
            .iter()
            .map(|row| (sqlx::Row::get(row, 0), sqlx::Row::get(row, 1), sqlx::Row::get(row, 2)))
            .collect();
        assert_eq!(stored.iter().map(|row| row.0.as_str()).collect::<Vec<_>>(), vec!["MIRROR", "TOKEN"]);
        assert_eq!((stored[0].1.as_deref(), stored[0].2.is_none()), (Some("m.example.com"), true));
        let sealed = stored[1].2.clone().expect("sealed");
        assert_eq!(stored[1].1, None);
        assert!(!contains(&sealed, "new-secret-token"));
        sqlx::Connection::close(conn).await.unwrap();

        // Refusals change nothing: another group's name, a variable named twice (after the
        // rename and the deletion of the old variables in the same write), another project,
        // an unknown id.
        let taken = store.update_variable_group(&id, group("taken", vec![], &editor.id, 8)).await;
        assert!(matches!(taken, Err(StoreError::Conflict(_))), "{taken:?}");
        let twice = vec![variable("A", 1, "1", false), variable("A", 2, "2", false)];
        let twice = store.update_variable_group(&id, group("renamed", twice, &editor.id, 8)).await;
        assert!(matches!(twice, Err(StoreError::Conflict(_))), "{twice:?}");
        let elsewhere = NewVariableGroup { project_id: other.id.clone(), ..group("moved", vec![], &editor.id, 8) };
        assert!(matches!(store.update_variable_group(&id, elsewhere).await, Err(StoreError::NotFound)));
        assert!(matches!(store.update_variable_group("no-such-group", group("ghost", vec![], &editor.id, 8)).await, Err(StoreError::NotFound)));
        assert_eq!(store.variable_group(&project, &id).await.unwrap(), Some(updated));
        assert!(store.list_variable_groups(&other.id, None, 0, 10).await.unwrap().items.is_empty());
        assert_eq!(store.list_variable_groups(&project, None, 0, 10).await.unwrap().total, 2);
    }
}

conformance! {
    async fn webhook_deliveries_are_paged_newest_first_per_pipeline_and_seen_per_hook(db) {
        let store = db.open().await;
        let tenant = tenant(&store, "acme").await;
        let first = pipeline(&store, &tenant, "first").await;
        let second = pipeline(&store, &tenant, "second").await;
        let trigger = |secret: &str| NewTrigger {
            git_type: "github".to_owned(),
            git_url: "https://git.example.com/a.git".to_owned(),
            repo_id: "1".to_owned(),
            endpoint_id: None,
            events: serde_json::json!([{"type": "push", "enable": true}]),
            is_auto_commit: false,
            secret: secret.to_owned(),
        };
        let hook = store.create_trigger(&first.id, trigger("secret-first"), T0).await.unwrap();
        let other_hook = store.create_trigger(&second.id, trigger("secret-second"), T0).await.unwrap();
        let delivery = |hook_id: i64, id: &str, outcome: WebhookOutcome, offset: i64| WebhookDelivery {
            hook_id,
            delivery_id: id.to_owned(),
            event: "push".to_owned(),
            outcome,
            message: format!("{outcome:?}"),
            run_id: (outcome == WebhookOutcome::Accepted).then(|| format!("run-{id}")),
            received_at: at(offset),
        };
        let d1 = delivery(hook, "d-1", WebhookOutcome::Accepted, 10);
        let d2 = delivery(hook, "d-2", WebhookOutcome::Ignored, 30);
        let d3 = delivery(hook, "d-3", WebhookOutcome::Rejected, 20);
        let d4 = delivery(hook, "d-4", WebhookOutcome::Accepted, 30);
        for recorded in [&d1, &d2, &d3, &d4] {
            assert!(store.record_delivery(recorded.clone()).await.unwrap());
        }
        // The same delivery id on another hook is another delivery.
        let elsewhere = delivery(other_hook, "d-1", WebhookOutcome::Ignored, 15);
        assert!(store.record_delivery(elsewhere.clone()).await.unwrap());

        let page = store.deliveries(&first.id, 0, 10).await.unwrap();
        assert_eq!(page.total, 4);
        assert_eq!(page.items, vec![d4.clone(), d2.clone(), d3.clone(), d1.clone()], "newest first; at the same time, last recorded first");
        let page = store.deliveries(&first.id, 1, 2).await.unwrap();
        assert_eq!((page.total, page.items), (4, vec![d2.clone(), d3.clone()]));
        let page = store.deliveries(&first.id, 4, 10).await.unwrap();
        assert_eq!((page.total, page.items.len()), (4, 0));
        assert_eq!(store.deliveries(&second.id, 0, 10).await.unwrap().items, vec![elsewhere.clone()]);
        assert_eq!(store.deliveries("no-such-pipeline", 0, 10).await.unwrap().total, 0);

        assert!(store.delivery_seen(hook, "d-3").await.unwrap());
        assert!(!store.delivery_seen(hook, "d-9").await.unwrap());
        assert!(!store.delivery_seen(other_hook, "d-2").await.unwrap(), "seen per hook");
        assert!(store.delivery_seen(other_hook, "d-1").await.unwrap());
        assert!(!store.delivery_seen(hook + other_hook + 1000, "d-1").await.unwrap());

        // Refusals change nothing: a replay (with another outcome), an unknown hook.
        assert!(!store.record_delivery(delivery(hook, "d-1", WebhookOutcome::Rejected, 40)).await.unwrap());
        let orphan = store.record_delivery(delivery(hook + other_hook + 1000, "d-9", WebhookOutcome::Accepted, 40)).await;
        assert!(matches!(orphan, Err(StoreError::Invalid(_))), "{orphan:?}");
        let page = store.deliveries(&first.id, 0, 10).await.unwrap();
        assert_eq!((page.total, page.items), (4, vec![d4, d2, d3, d1]));
    }
}

conformance! {
    async fn triggers_are_replaced_whole_and_deleted_with_their_deliveries(db) {
        let store = db.open().await;
        let tenant = tenant(&store, "acme").await;
        let first = pipeline(&store, &tenant, "first").await;
        let second = pipeline(&store, &tenant, "second").await;
        let trigger = |url: &str, secret: &str| NewTrigger {
            git_type: "gitlab".to_owned(),
            git_url: url.to_owned(),
            repo_id: "42".to_owned(),
            endpoint_id: None,
            events: serde_json::json!([{"type": "push", "enable": true}]),
            is_auto_commit: false,
            secret: secret.to_owned(),
        };
        let kept = store.create_trigger(&first.id, trigger("https://git.example.com/kept.git", "secret-kept"), T0).await.unwrap();
        let dropped = store.create_trigger(&first.id, trigger("https://git.example.com/dropped.git", "secret-dropped"), T0).await.unwrap();
        let foreign = store.create_trigger(&second.id, trigger("https://git.example.com/foreign.git", "secret-foreign"), T0).await.unwrap();
        let delivery = |hook_id: i64, id: &str| WebhookDelivery {
            hook_id,
            delivery_id: id.to_owned(),
            event: "push".to_owned(),
            outcome: WebhookOutcome::Accepted,
            message: String::new(),
            run_id: None,
            received_at: at(1),
        };
        for (hook_id, id) in [(kept, "k-1"), (dropped, "x-1"), (foreign, "f-1")] {
            assert!(store.record_delivery(delivery(hook_id, id)).await.unwrap());
        }

        // Keep one (updated in place), create one, and one naming another pipeline's hook is created anew.
        let mut updated = trigger("https://git.example.com/moved.git", "secret-rotated");
        updated.is_auto_commit = true;
        updated.events = serde_json::json!([{"type": "tag_push", "enable": true}]);
        let upserts = vec![
            TriggerUpsert { hook_id: None, trigger: trigger("https://git.example.com/new.git", "secret-new"), is_secret_generated: false },
            TriggerUpsert { hook_id: Some(kept), trigger: updated.clone(), is_secret_generated: true },
            TriggerUpsert { hook_id: Some(foreign), trigger: trigger("https://git.example.com/stolen.git", "secret-stolen"), is_secret_generated: false },
        ];
        let replaced = store.replace_triggers(&first.id, upserts, at(40)).await.unwrap();
        assert_eq!(replaced.len(), 3);
        let urls: Vec<&str> = replaced.iter().map(|record| record.git_url.as_str()).collect();
        assert_eq!(urls, vec!["https://git.example.com/new.git", "https://git.example.com/moved.git", "https://git.example.com/stolen.git"], "in the order given");
        assert_eq!(replaced[1].hook_id, kept);
        let (created, stolen) = (replaced[0].hook_id, replaced[2].hook_id);
        for hook_id in [created, stolen] {
            assert!(![kept, dropped, foreign].contains(&hook_id), "a new hook: {hook_id}");
        }
        assert_ne!(created, stolen);
        let record = store.trigger(kept).await.unwrap().unwrap();
        assert_eq!(
            (record.pipeline_id.as_str(), record.secret.as_str(), record.is_secret_generated, record.is_auto_commit, &record.events),
            (first.id.as_str(), "secret-rotated", true, true, &updated.events)
        );
        assert_eq!((record.created_at, record.updated_at), (T0, at(40)));
        assert_eq!(store.trigger(created).await.unwrap().unwrap().secret, "secret-new");
        let mut ids: Vec<i64> = store.triggers(&first.id).await.unwrap().iter().map(|record| record.hook_id).collect();
        let mut expected = vec![kept, created, stolen];
        expected.sort_unstable();
        assert_eq!(ids, expected, "by hook id; the dropped trigger is gone");
        assert!(store.trigger(dropped).await.unwrap().is_none());
        // The kept hook keeps its deliveries; the dropped one's went with it; the other pipeline's are untouched.
        assert!(store.delivery_seen(kept, "k-1").await.unwrap());
        assert!(!store.delivery_seen(dropped, "x-1").await.unwrap());
        let other = store.trigger(foreign).await.unwrap().unwrap();
        assert_eq!((other.pipeline_id.as_str(), other.secret.as_str(), other.git_url.as_str()), (second.id.as_str(), "secret-foreign", "https://git.example.com/foreign.git"));
        assert!(store.delivery_seen(foreign, "f-1").await.unwrap());
        assert_eq!(store.deliveries(&first.id, 0, 10).await.unwrap().total, 1);

        // At rest the rotated secret is sealed.
        let mut conn = raw(&db).await;
        let sealed: Vec<u8> = sqlx::Row::get(
            &sqlx::query("SELECT secret_ciphertext FROM triggers WHERE hook_id = $1").bind(kept).fetch_one(&mut conn).await.unwrap(),
            0,
        );
        assert!(!contains(&sealed, "secret-rotated"));
        assert_eq!(trigger_count(&mut conn).await, 4);

        // Refusals change nothing: an unknown pipeline, a trigger of another pipeline, a deleted trigger.
        let orphan = store
            .replace_triggers("no-such-pipeline", vec![TriggerUpsert { hook_id: None, trigger: trigger("u", "s"), is_secret_generated: false }], at(50))
            .await;
        assert!(matches!(orphan, Err(StoreError::Invalid(_))), "{orphan:?}");
        assert_eq!(trigger_count(&mut conn).await, 4);
        assert!(matches!(store.delete_trigger(&second.id, kept).await, Err(StoreError::NotFound)));
        assert!(store.trigger(kept).await.unwrap().is_some());
        store.delete_trigger(&first.id, kept).await.unwrap();
        assert!(store.trigger(kept).await.unwrap().is_none());
        assert!(!store.delivery_seen(kept, "k-1").await.unwrap(), "its deliveries went with it");
        assert!(matches!(store.delete_trigger(&first.id, kept).await, Err(StoreError::NotFound)));
        ids = store.triggers(&first.id).await.unwrap().iter().map(|record| record.hook_id).collect();
        expected.retain(|id| *id != kept);
        assert_eq!(ids, expected);
        assert_eq!(trigger_count(&mut conn).await, 3);

        // An empty list removes every trigger of the pipeline, and only those.
        assert!(store.replace_triggers(&first.id, vec![], at(60)).await.unwrap().is_empty());
        assert!(store.triggers(&first.id).await.unwrap().is_empty());
        assert_eq!(store.triggers(&second.id).await.unwrap().len(), 1);
        sqlx::Connection::close(conn).await.unwrap();
    }
}

conformance! {
    async fn legacy_build_results_cover_the_window_newest_first_in_pages(db) {
        let store = db.open().await;
        let tenant = tenant(&store, "acme").await;
        let other = project_in(&store, &tenant, "other").await;
        let api = pipeline(&store, &tenant, "api").await;
        let web = pipeline(&store, &tenant, "web").await;
        let gone = pipeline(&store, &tenant, "gone").await;
        let mut foreign = new_pipeline(&tenant, "foreign");
        foreign.project_id = other.id.clone();
        let foreign = store.create_pipeline(foreign).await.unwrap();
        let create = |pipeline_id: String, offset: i64| {
            let store = store.clone();
            async move {
                store.create_run(new_run(&pipeline_id, &RunShape::default(), at(offset)), parameters()).await.unwrap().run
            }
        };
        // api #1..#6, web #1..#2, in this order.
        let mut api_runs = Vec::new();
        for offset in [0, 1000, 2000, 3000, 4000, 9000] {
            api_runs.push(create(api.id.clone(), offset).await);
        }
        let web_runs = [create(web.id.clone(), 2000).await, create(web.id.clone(), 5000).await];
        create(gone.id.clone(), 3000).await;
        create(foreign.id.clone(), 3000).await;
        store.delete_pipeline(&tenant.project.id, &gone.id, at(6000)).await.unwrap();
        // api #5 ends.
        let end = RunProgress {
            run_id: api_runs[4].id.clone(),
            expected_version: 0,
            now: at(4500),
            run: Some(RunUpdate { status: RunStatus::Completed, start_time: None, end_time: Some(at(4500)), pause_time: 0, paused_since: None, is_cancel_requested: false }),
            ..Default::default()
        };
        store.save_progress(end).await.unwrap();

        let row = |run: &RunRecord, name: &str| LegacyBuildRow {
            run_id: run.id.clone(),
            pipeline_id: run.pipeline_id.clone(),
            pipeline_name: name.to_owned(),
            status: if run.id == api_runs[4].id { RunStatus::Completed } else { RunStatus::Init },
            start_time: run.start_time,
            end_time: (run.id == api_runs[4].id).then_some(at(4500)),
        };
        // Both ends included; at the same start, the higher run number first.
        let expected = vec![
            row(&web_runs[1], "web"),
            row(&api_runs[4], "api"),
            row(&api_runs[3], "api"),
            row(&api_runs[2], "api"),
            row(&web_runs[0], "web"),
            row(&api_runs[1], "api"),
        ];
        let project = tenant.project.id.as_str();
        let page = store.build_results(project, at(1000), at(5000), 0, 100).await.unwrap();
        assert_eq!(page.total, 6, "not before, not after, not a deleted pipeline's, not another project's");
        assert_eq!(page.items, expected);
        let page = store.build_results(project, at(1000), at(5000), 2, 2).await.unwrap();
        assert_eq!((page.total, page.items), (6, expected[2..4].to_vec()));
        let page = store.build_results(project, at(1000), at(5000), 6, 10).await.unwrap();
        assert_eq!((page.total, page.items.len()), (6, 0));
        let page = store.build_results(project, at(1000), at(5000), 0, 0).await.unwrap();
        assert_eq!((page.total, page.items), (6, expected[..1].to_vec()), "a limit of 0 is clamped to 1");
        let page = store.build_results(project, at(2000), at(2000), 0, 10).await.unwrap();
        assert_eq!((page.total, page.items), (2, expected[3..5].to_vec()), "a window of one instant");
        let page = store.build_results(project, at(5001), at(4999), 0, 10).await.unwrap();
        assert_eq!((page.total, page.items.len()), (0, 0), "an empty window");
        let page = store.build_results(&other.id, at(0), at(10_000), 0, 10).await.unwrap();
        assert_eq!(page.total, 1);
        assert_eq!(page.items[0].pipeline_name, "foreign");
        assert_eq!(store.build_results("no-such-project", at(0), at(10_000), 0, 10).await.unwrap().total, 0);
    }
}
