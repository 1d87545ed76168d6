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
