//! Opening: migrations applied once, a newer schema refused, SQLite opened durable.

use crate::harness::Kind;
use runnel_store::*;
use sqlx::Connection;

conformance! {
    async fn reopening_applies_nothing_twice_and_a_newer_schema_is_refused(db) {
        let store = db.open().await;
        let known = store.known_schema_version();
        store.close().await;
        let store = db.open().await;
        assert_eq!(store.schema_version().await.unwrap(), known);
        store.close().await;
        // A later binary migrated this database.
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             SELECT 9999, 'from the future', success, checksum, execution_time FROM _sqlx_migrations WHERE version = 1",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
        let err = Store::open(db.config()).await.unwrap_err();
        assert!(matches!(err, StoreError::SchemaTooNew { found: 9999, known: k } if k == known), "{err:?}");
        assert!(err.to_string().contains("newer"), "{err}");
    }
}

conformance! {
    async fn a_url_of_an_unknown_kind_is_refused(db) {
        let mut config = db.config();
        config.url = "mysql://localhost/x".to_owned();
        assert!(matches!(Store::open(config).await, Err(StoreError::Misconfigured(_))));
    }
}

#[tokio::test]
async fn sqlite_is_opened_in_wal_mode_with_full_sync() {
    let db = crate::harness::fresh(Kind::Sqlite).await.unwrap();
    let store = db.open().await;
    store.close().await;
    // The journal mode is a property of the file: a plain connection sees WAL.
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    let mode: String = sqlx::Row::get(
        &sqlx::query("PRAGMA journal_mode")
            .fetch_one(&mut conn)
            .await
            .unwrap(),
        0,
    );
    assert_eq!(mode.to_lowercase(), "wal");
    assert!(db.sqlite_path().unwrap().exists());
}

/// The bundled SQLite is compiled as `.cargo/config.toml` asks (`LIBSQLITE3_FLAGS`): without
/// STAT4, whose samples make SQLite re-prepare a cached statement at every new bound value (a
/// quarter of the API's CPU), without the global mutex of memory statistics, and with the
/// query planner stability guarantee (no re-prepare when a bound value was used to match a
/// partial index).
#[tokio::test]
async fn the_bundled_sqlite_is_built_without_stat4_and_memory_statistics_and_with_qpsg() {
    let db = crate::harness::fresh(Kind::Sqlite).await.unwrap();
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    let options: Vec<String> = sqlx::query("PRAGMA compile_options")
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .iter()
        .map(|row| sqlx::Row::get(row, 0))
        .collect();
    assert!(
        !options.iter().any(|option| option == "ENABLE_STAT4"),
        "{options:?}"
    );
    assert!(
        options.iter().any(|option| option == "DEFAULT_MEMSTATUS=0"),
        "{options:?}"
    );
    assert!(
        options.iter().any(|option| option == "ENABLE_QPSG"),
        "{options:?}"
    );
}

/// The vendored sqlx-sqlite runs a statement on the caller's thread when nothing is queued for
/// the connection's worker thread (`vendor/README.md`). A transaction dropped without a commit
/// queues its rollback on that thread: the next statement must wait for it instead of running
/// inline ahead of it and seeing (or extending) the abandoned transaction.
#[tokio::test]
async fn a_dropped_sqlite_transaction_is_rolled_back_before_the_next_statement() {
    let db = crate::harness::fresh(Kind::Sqlite).await.unwrap();
    let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
    sqlx::query("CREATE TABLE inline_order (x INTEGER NOT NULL)")
        .execute(&mut conn)
        .await
        .unwrap();
    for round in 0..100_i64 {
        {
            let mut txn = conn.begin().await.unwrap();
            sqlx::query("INSERT INTO inline_order (x) VALUES (?)")
                .bind(round)
                .execute(&mut *txn)
                .await
                .unwrap();
        }
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM inline_order")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(rows, 0, "round {round}: the dropped insert is visible");
    }
    // A committed one stays, and the raw handle can still be taken and given back.
    let mut txn = conn.begin().await.unwrap();
    sqlx::query("INSERT INTO inline_order (x) VALUES (1)")
        .execute(&mut *txn)
        .await
        .unwrap();
    txn.commit().await.unwrap();
    drop(conn.lock_handle().await.unwrap());
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM inline_order")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(rows, 1);
    conn.close().await.unwrap();
}

/// Inline execution runs a statement to its end: every row of a large result arrives, in order,
/// and a `LIMIT`-like `fetch_optional` stops at the first.
#[tokio::test]
async fn an_inline_sqlite_query_returns_every_row_of_a_large_result() {
    let db = crate::harness::fresh(Kind::Sqlite).await.unwrap();
    let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
    let values: Vec<i64> = sqlx::query_scalar(
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 20000) SELECT x FROM n",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(values, (1..=20_000).collect::<Vec<i64>>());
    let first: Option<i64> = sqlx::query_scalar("SELECT x FROM (SELECT 7 AS x UNION ALL SELECT 8)")
        .fetch_optional(&mut conn)
        .await
        .unwrap();
    assert_eq!(first, Some(7));
    conn.close().await.unwrap();
}

conformance! {
    async fn opening_gives_postgres_statistics_for_tables_that_have_rows_but_none(db) {
        let store = db.open().await;
        let tenant = crate::fixtures::tenant(&store, "stats").await;
        let pipeline = crate::fixtures::pipeline(&store, &tenant, "p").await;
        for index in 0..3 {
            let run = crate::fixtures::new_run(&pipeline.id, &Default::default(), crate::fixtures::at(index));
            store.create_run(run, crate::fixtures::parameters()).await.unwrap();
        }
        store.close().await;
        // Filled since the last ANALYZE (and this server's autovacuum may be off): the next
        // start analyzes it, so the planner does not guess the size of a pipeline's runs.
        let store = db.open().await;
        if db.kind == crate::harness::Kind::Postgres {
            sqlx::any::install_default_drivers();
            let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
            let rows: i64 = sqlx::Row::get(
                &sqlx::query(
                    "SELECT COUNT(*) FROM pg_stats WHERE schemaname = current_schema() AND tablename = 'runs'",
                )
                .fetch_one(&mut conn)
                .await
                .unwrap(),
                0,
            );
            assert!(rows > 0, "runs has planner statistics");
            conn.close().await.unwrap();
        }
        store.close().await;
    }
}

conformance! {
    /// The status CHECKs (rewritten for SQLite by migration 9) take every status the domain
    /// has, and nothing else.
    async fn status_checks_take_every_domain_status_and_refuse_others(db) {
        use runnel_domain::status::{JobStatus, RunStatus, StepStatus};
        let store = db.open().await;
        let tenant = crate::fixtures::tenant(&store, "checks").await;
        let pipeline = crate::fixtures::pipeline(&store, &tenant, "p").await;
        let (run, jobs) = crate::fixtures::queued_run(
            &store, &pipeline.id, &Default::default(), None, crate::fixtures::at(0),
        ).await;
        let detail = store.run_detail(&run.id).await.unwrap().unwrap();
        let stage = detail.stages[0].id.clone();
        let step = detail.stages[0].jobs[0].steps[0].id.clone();
        store.close().await;
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
        let attempt: String = sqlx::Row::get(
            &sqlx::query("SELECT id FROM job_attempts WHERE job_run_id = $1")
                .bind(jobs[0].clone())
                .fetch_one(&mut conn)
                .await
                .unwrap(),
            0,
        );
        let mut set = async |table: &str, column: &str, value: &str, id: &str| {
            sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE {table} SET {column} = $1 WHERE id = $2")))
                .bind(value.to_owned())
                .bind(id.to_owned())
                .execute(&mut conn)
                .await
                .map(|done| done.rows_affected())
        };
        for status in RunStatus::ALL {
            assert_eq!(set("runs", "status", status.as_str(), &run.id).await.unwrap(), 1, "{status}");
        }
        for status in JobStatus::ALL {
            assert_eq!(set("stage_runs", "status", status.as_str(), &stage).await.unwrap(), 1, "{status}");
            assert_eq!(set("job_runs", "status", status.as_str(), &jobs[0]).await.unwrap(), 1, "{status}");
        }
        for status in StepStatus::ALL {
            assert_eq!(set("step_runs", "status", status.as_str(), &step).await.unwrap(), 1, "{status}");
        }
        for (table, column, id) in [
            ("runs", "status", &run.id),
            ("stage_runs", "status", &stage),
            ("job_runs", "status", &jobs[0]),
            ("step_runs", "status", &step),
            ("step_runs", "placement", &step),
        ] {
            for wrong in ["BOGUS", "completed", ""] {
                assert!(set(table, column, wrong, id).await.is_err(), "{table}.{column} took {wrong:?}");
            }
        }
        for state in ["completed", "lost", "canceled", "queued"] {
            assert_eq!(set("job_attempts", "state", state, &attempt).await.unwrap(), 1, "{state}");
        }
        assert!(set("job_attempts", "state", "QUEUED", &attempt).await.is_err());
        for outcome in ["COMPLETED", "FAILED", "CANCELED"] {
            assert_eq!(set("job_attempts", "outcome", outcome, &attempt).await.unwrap(), 1, "{outcome}");
        }
        assert!(set("job_attempts", "outcome", "SKIPPED", &attempt).await.is_err());
        conn.close().await.unwrap();
    }
}

/// Migration 9 rebuilds the five run tables to rewrite their CHECKs (SQLite cannot alter a
/// CHECK in place). Applied again over a database holding a run in flight — as after a server
/// that died between the migration's COMMIT and sqlx's bookkeeping — it keeps every row, key,
/// index and trigger: the run reads back the same, foreign keys and cascades hold, and the
/// queue's completion trigger still ends the job.
#[tokio::test]
async fn rebuilding_the_run_tables_keeps_rows_keys_indexes_and_triggers() {
    use crate::fixtures::*;
    let db = crate::harness::fresh(Kind::Sqlite).await.unwrap();
    let store = db.open().await;
    let tenant = tenant(&store, "rebuild").await;
    let pipeline = pipeline(&store, &tenant, "p").await;
    let (run, _) = queued_run(&store, &pipeline.id, &RunShape::default(), None, at(0)).await;
    let lease = store
        .claim(claim_request("w1", None, at(1), 60_000))
        .await
        .unwrap()
        .unwrap();
    let before = store.run_detail(&run.id).await.unwrap().unwrap();
    store.close().await;

    let objects = "SELECT type, name, tbl_name, sql FROM sqlite_master \
                   WHERE type IN ('index', 'trigger') ORDER BY name";
    let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
    let objects_before: Vec<(String, String, String, Option<String>)> =
        sqlx::query_as(objects).fetch_all(&mut conn).await.unwrap();
    let removed = sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 9")
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(removed.rows_affected(), 1);
    conn.close().await.unwrap();

    let store = db.open().await;
    assert_eq!(
        store.schema_version().await.unwrap(),
        store.known_schema_version()
    );
    assert_eq!(store.run_detail(&run.id).await.unwrap().unwrap(), before);
    let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
    let objects_after: Vec<(String, String, String, Option<String>)> =
        sqlx::query_as(objects).fetch_all(&mut conn).await.unwrap();
    assert_eq!(objects_after, objects_before);
    let integrity: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(integrity, "ok");
    let dangling = sqlx::query("PRAGMA foreign_key_check")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert!(
        dangling.is_empty(),
        "{} rows break a foreign key",
        dangling.len()
    );
    let leftovers: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE name LIKE '%_v9'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(leftovers, 0);

    // The completion trigger ends the job and skips the step that never ran.
    let outcome = JobOutcome {
        status: runnel_domain::status::JobStatus::Completed,
        message: None,
    };
    store.complete(&lease.token, outcome, at(2)).await.unwrap();
    let detail = store.run_detail(&run.id).await.unwrap().unwrap();
    let job = &detail.stages[0].jobs[0];
    assert_eq!(job.status, runnel_domain::status::JobStatus::Completed);
    assert!(
        job.steps
            .iter()
            .all(|step| step.status == runnel_domain::status::StepStatus::Skipped)
    );
    // Deleting the run cascades through the rebuilt tables (and to the tables that kept
    // pointing at them by name).
    store.close().await;
    let deleted = sqlx::query("DELETE FROM runs WHERE id = $1")
        .bind(&run.id)
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(deleted.rows_affected(), 1);
    for table in [
        "runs",
        "stage_runs",
        "job_runs",
        "step_runs",
        "job_attempts",
        "run_parameter_sets",
    ] {
        let rows: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert_eq!(rows, 0, "{table} kept rows of a deleted run");
    }
    conn.close().await.unwrap();
}

/// SQLite evaluates `x IN (a, b, c)` with more than two constants by building an ephemeral
/// b-tree from the list every time the statement runs; on a status CHECK that was one per
/// status change (migration 9). Status changes on the run tables build none, and no CHECK,
/// index or trigger of those tables holds such a list again.
#[tokio::test]
async fn sqlite_status_changes_build_no_ephemeral_tables() {
    let db = crate::harness::fresh(Kind::Sqlite).await.unwrap();
    db.open().await.close().await;
    let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
    let active = "SELECT id FROM runs WHERE status <> 'COMPLETED' AND status <> 'FAILED' \
                  AND status <> 'CANCELED' AND status <> 'IGNORED'";
    for statement in [
        "UPDATE runs SET status = 'RUNNING', end_time = 1 WHERE id = 'x'",
        "UPDATE stage_runs SET status = 'RUNNING' WHERE id = 'x'",
        "UPDATE job_runs SET status = 'RUNNING' WHERE id = 'x'",
        "UPDATE step_runs SET status = 'RUNNING', placement = 'job' WHERE id = 'x'",
        "UPDATE job_attempts SET state = 'completed', outcome = 'COMPLETED' WHERE id = 'x'",
        active,
    ] {
        let program = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN {statement}")))
            .fetch_all(&mut conn)
            .await
            .unwrap();
        let opcodes: Vec<String> = program.iter().map(|row| sqlx::Row::get(row, 1)).collect();
        assert!(
            !opcodes.iter().any(|opcode| opcode == "OpenEphemeral"),
            "{statement}: {opcodes:?}"
        );
    }
    let plan: Vec<String> =
        sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {active}")))
            .fetch_all(&mut conn)
            .await
            .unwrap()
            .iter()
            .map(|row| sqlx::Row::get(row, 3))
            .collect();
    assert!(
        plan.iter().any(|step| step.contains("runs_active")),
        "{plan:?}"
    );
    let definitions: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL AND tbl_name IN \
         ('runs', 'stage_runs', 'job_runs', 'step_runs', 'job_attempts')",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    for (name, sql) in definitions {
        for list in sql.split(" IN (").skip(1) {
            let items = list
                .split(')')
                .next()
                .unwrap_or_default()
                .matches(',')
                .count()
                + 1;
            assert!(items <= 2, "{name} has an IN list of {items}: {sql}");
        }
    }
    conn.close().await.unwrap();
}

/// `CREATE TABLE run_parameters (…);` as the first migration of `kind` wrote it: the layout
/// of run parameters before schema version 10.
fn run_parameters_table_before_version_10(kind: Kind) -> &'static str {
    let initial = match kind {
        Kind::Sqlite => include_str!("../../migrations/sqlite/0001_initial.sql"),
        Kind::Postgres => include_str!("../../migrations/postgres/0001_initial.sql"),
    };
    let start = initial.find("CREATE TABLE run_parameters (").unwrap();
    let end = start + initial[start..].find("\n);\n").unwrap() + 3;
    &initial[start..end]
}

conformance! {
    /// Migration 10 moves each run's parameter rows into one row per run, in order, secrets
    /// still sealed (to their run and name), and drops the old table. The database is taken
    /// back to the old layout with the rows a version-9 server wrote, then opened again.
    async fn migration_10_moves_run_parameters_into_one_row_per_run(db) {
        use crate::fixtures::*;
        let store = db.open().await;
        let tenant = tenant(&store, "migrate").await;
        let pipeline = pipeline(&store, &tenant, "p").await;
        let snapshot = |number: i64| vec![
            RunParameter { name: "PIPELINE_NUMBER".to_owned(), value: number.to_string(), is_secret: false, origin: "predefined".to_owned() },
            RunParameter { name: "TOKEN".to_owned(), value: format!("secret-{number}"), is_secret: true, origin: "custom".to_owned() },
            RunParameter { name: "A_LAST_BY_NAME".to_owned(), value: "say \"hi\" ü".to_owned(), is_secret: false, origin: "group:g".to_owned() },
        ];
        let mut runs = Vec::new();
        for number in 1..=3 {
            let run = new_run(&pipeline.id, &RunShape::default(), at(number));
            let parameters: ParameterBuilder = if number == 3 {
                Box::new(|_: &RunAllocation| Ok(Vec::new()))
            } else {
                Box::new(move |_: &RunAllocation| Ok(snapshot(number)))
            };
            runs.push(store.create_run(run, parameters).await.unwrap().run.id);
        }
        let mut before = Vec::new();
        for run in &runs {
            before.push(store.run_parameters(run).await.unwrap());
        }
        assert_eq!(before[0], snapshot(1));
        store.close().await;

        // Back to version 9: the old table, holding what the new one holds, row by row.
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(run_parameters_table_before_version_10(db.kind)))
            .execute(&mut conn)
            .await
            .unwrap();
        let sets = sqlx::query("SELECT run_id, parameters FROM run_parameter_sets")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        for set in sets {
            let run_id: String = sqlx::Row::get(&set, 0);
            let text: String = sqlx::Row::get(&set, 1);
            let entries: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
            for (position, entry) in entries.iter().enumerate() {
                let sealed = entry["sealed"].as_str().map(|hex| hex::decode(hex).unwrap());
                sqlx::query(
                    "INSERT INTO run_parameters (run_id, position, name, value, value_ciphertext, is_secret, origin) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(run_id.clone())
                .bind(position as i64)
                .bind(entry["name"].as_str().unwrap().to_owned())
                .bind(entry["value"].as_str().map(str::to_owned))
                .bind(sealed.clone())
                .bind(i64::from(sealed.is_some()))
                .bind(entry["origin"].as_str().unwrap().to_owned())
                .execute(&mut conn)
                .await
                .unwrap();
            }
        }
        sqlx::query("DROP TABLE run_parameter_sets").execute(&mut conn).await.unwrap();
        sqlx::query("DELETE FROM _sqlx_migrations WHERE version = 10").execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();

        let store = db.open().await;
        assert_eq!(store.schema_version().await.unwrap(), 10);
        for (run, before) in runs.iter().zip(&before) {
            assert_eq!(&store.run_parameters(run).await.unwrap(), before, "run {run}");
        }
        let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
        assert!(sqlx::query("SELECT 1 FROM run_parameters").fetch_all(&mut conn).await.is_err(), "the old table is gone");
        conn.close().await.unwrap();
        store.close().await;
    }
}

/// The writer checkpoints every 250 WAL frames (`db.rs`), not every 1 000 (SQLite's default):
/// under a stream of commits the WAL file stays near 1 MiB instead of growing to 4 MiB.
#[tokio::test]
async fn the_sqlite_wal_is_checkpointed_every_250_frames() {
    let db = crate::harness::fresh(Kind::Sqlite).await.unwrap();
    let store = db.open().await;
    let tenant = crate::fixtures::tenant(&store, "wal").await;
    let pipeline = crate::fixtures::pipeline(&store, &tenant, "wal").await;
    let wal = db.sqlite_path().unwrap().with_extension("db-wal");
    let shape = crate::fixtures::RunShape::default();
    let mut largest = 0;
    // Each run's creation is one commit of a few dozen pages: 2 000 frames or more in all.
    for offset in 0..80 {
        let run = crate::fixtures::new_run(&pipeline.id, &shape, crate::fixtures::at(offset));
        store
            .create_run(run, crate::fixtures::parameters())
            .await
            .unwrap();
        largest = largest.max(std::fs::metadata(&wal).unwrap().len());
    }
    store.close().await;
    // 32 bytes of header, then 24 bytes of header and a 4 KiB page per frame.
    let frames = largest.saturating_sub(32) / (24 + 4096);
    assert!(
        (250..=400).contains(&frames),
        "the WAL held {frames} frames at most"
    );
}

conformance! {
    /// A read that starts after a write was acknowledged sees that write, whichever pooled
    /// connection it gets, while other readers keep the pool busy and the WAL is checkpointed
    /// and restarted under them (SQLite: the WAL VFS and the patched inline execution).
    async fn a_read_after_an_acknowledged_write_sees_it_on_every_pooled_connection(db) {
        use runnel_domain::status::RunStatus;
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        let store = db.open().await;
        let tenant = crate::fixtures::tenant(&store, "visibility").await;
        let pipeline = crate::fixtures::pipeline(&store, &tenant, "visible").await;
        let query = |status: RunStatus| LegacyPipelineQuery {
            domain_id: tenant.domain.id.clone(),
            user_id: tenant.user.id.clone(),
            project_ids: Vec::new(),
            creator_ids: Vec::new(),
            executor_ids: Vec::new(),
            name_contains: None,
            latest_statuses: vec![status],
            git_url: None,
            watched: None,
            sort_key: LegacySortKey::StartTime,
            sort_dir: SortDir::Desc,
            offset: 0,
            limit: 10,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let mut readers = Vec::new();
        for reader in 0..3 {
            let store = store.clone();
            let stop = Arc::clone(&stop);
            let pipeline_id = pipeline.id.clone();
            let query = query(RunStatus::Running);
            readers.push(tokio::spawn(async move {
                let mut reads = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    match reader {
                        0 => drop(store.list_pipelines_v3(&query).await.unwrap()),
                        1 => drop(store.latest_run(&pipeline_id).await.unwrap()),
                        _ => drop(store.pipeline_by_id(&pipeline_id).await.unwrap()),
                    }
                    reads += 1;
                    tokio::task::yield_now().await;
                }
                reads
            }));
        }
        let shape = crate::fixtures::RunShape::default();
        for round in 0..250i64 {
            let status = if round % 2 == 0 { RunStatus::Running } else { RunStatus::Init };
            let other = if round % 2 == 0 { RunStatus::Init } else { RunStatus::Running };
            let mut run = crate::fixtures::new_run(&pipeline.id, &shape, crate::fixtures::at(round));
            run.status = status;
            let created = store.create_run(run, crate::fixtures::parameters()).await.unwrap();
            // Two queries per list (rows and count), each on whichever connection is free.
            for _ in 0..3 {
                let seen = store.list_pipelines_v3(&query(status)).await.unwrap();
                assert_eq!(
                    (seen.total, seen.items.len()),
                    (1, 1),
                    "round {round}: the pipeline whose latest run is {status:?} is listed"
                );
                let unseen = store.list_pipelines_v3(&query(other)).await.unwrap();
                assert_eq!(unseen.total, 0, "round {round}: its latest run is not {other:?}");
                let latest = store.latest_run(&pipeline.id).await.unwrap().unwrap();
                assert_eq!(
                    (latest.id.as_str(), latest.status),
                    (created.run.id.as_str(), status),
                    "round {round}"
                );
            }
        }
        stop.store(true, Ordering::Relaxed);
        for reader in readers {
            assert!(reader.await.unwrap() > 0, "each reader read");
        }
        store.close().await;
    }
}
