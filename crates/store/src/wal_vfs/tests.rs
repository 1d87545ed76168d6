//! nextest runs each test in a process of its own, so the write counters are the test's own.

use std::path::Path;
use std::str::FromStr as _;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection as _, Executor as _, SqliteConnection};

use super::*;

/// A connection to the database at `path`, through this VFS or SQLite's own.
async fn connect(path: &Path, through_vfs: bool, synchronous: &str) -> SqliteConnection {
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let url = if through_vfs {
        let gathered = url_with_vfs(&url);
        assert!(gathered.ends_with("&vfs=runnel-wal"), "{gathered}");
        gathered
    } else {
        url
    };
    let options = SqliteConnectOptions::from_str(&url).expect("a SQLite URL");
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .expect("open the database");
    for pragma in [
        "PRAGMA journal_mode = WAL".to_owned(),
        format!("PRAGMA synchronous = {synchronous}"),
        "PRAGMA busy_timeout = 5000".to_owned(),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(pragma))
            .execute(&mut conn)
            .await
            .expect("pragma");
    }
    conn
}

fn counters() -> (u64, u64) {
    (
        WAL_WRITES_ASKED.load(Ordering::Relaxed),
        WAL_WRITES_DONE.load(Ordering::Relaxed),
    )
}

/// The rows' count and total size, and SQLite's own check of the file.
async fn contents(conn: &mut SqliteConnection) -> (i64, i64, String) {
    let (rows, bytes): (i64, i64) =
        sqlx::query_as("SELECT COUNT(*), COALESCE(SUM(length(body)), 0) FROM t")
            .fetch_one(&mut *conn)
            .await
            .expect("count");
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut *conn)
        .await
        .expect("integrity_check");
    (rows, bytes, check)
}

#[tokio::test]
async fn a_commit_of_many_frames_reaches_the_wal_in_one_write_and_reads_back_anywhere() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("gathered.db");
    let mut conn = connect(&path, true, "FULL").await;
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
        .await
        .expect("create");
    conn.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 400) \
         INSERT INTO t (id, body) SELECT i, randomblob(1000) FROM n",
    )
    .await
    .expect("insert");

    // One commit that changes a row on every other page or so: tens of frames.
    let (asked_before, done_before) = counters();
    conn.execute("UPDATE t SET body = randomblob(1000) WHERE id % 8 = 0")
        .await
        .expect("update");
    let (asked_after, done_after) = counters();
    let (asked, done) = (asked_after - asked_before, done_after - done_before);
    assert!(asked >= 40, "SQLite asked for {asked} writes");
    assert!(done <= 2, "{asked} writes asked, {done} made");

    // SQLite's own VFS reads it back, in this process and after a checkpoint.
    let mut plain = connect(&path, false, "FULL").await;
    assert_eq!(contents(&mut plain).await, (400, 400_000, "ok".to_owned()));
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        .await
        .expect("checkpoint");
    conn.close().await.expect("close");
    assert_eq!(contents(&mut plain).await, (400, 400_000, "ok".to_owned()));
}

#[tokio::test]
async fn without_a_sync_a_commit_is_in_the_file_before_another_connection_can_see_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("normal.db");
    let mut writer = connect(&path, true, "NORMAL").await;
    writer
        .execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
        .await
        .expect("create");
    let mut reader = connect(&path, false, "NORMAL").await;
    for id in 1..=50_i64 {
        sqlx::query("INSERT INTO t (id, body) VALUES (?, randomblob(3000))")
            .bind(id)
            .execute(&mut writer)
            .await
            .expect("insert");
        // Published in the WAL index at commit: its frames must already be in the file.
        assert_eq!(
            contents(&mut reader).await,
            (id, id * 3000, "ok".to_owned())
        );
    }
}

#[tokio::test]
async fn spilled_frames_a_rollback_and_rewritten_frames_leave_the_database_intact() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("spilled.db");
    let mut conn = connect(&path, true, "FULL").await;
    // A page cache of a few pages: a large transaction spills frames to the WAL before its
    // commit and reads them back.
    conn.execute("PRAGMA cache_size = 8").await.expect("cache");
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
        .await
        .expect("create");
    let insert = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) \
                  INSERT INTO t (id, body) SELECT i, randomblob(500) FROM n";

    let mut rolled_back = conn.begin().await.expect("begin");
    rolled_back.execute(insert).await.expect("insert");
    let (rows, _, _) = contents(&mut rolled_back).await;
    assert_eq!(rows, 2000);
    rolled_back.rollback().await.expect("rollback");
    assert_eq!(contents(&mut conn).await, (0, 0, "ok".to_owned()));

    let mut committed = conn.begin().await.expect("begin");
    committed.execute(insert).await.expect("insert");
    // The same pages changed again and again in one transaction: SQLite rewrites frames it
    // already wrote (and their checksums at commit).
    for round in 0..5 {
        sqlx::query("UPDATE t SET body = randomblob(400 + ?) WHERE id % 50 = 0")
            .bind(round)
            .execute(&mut *committed)
            .await
            .expect("update");
    }
    committed.commit().await.expect("commit");
    let expected_bytes = 1960 * 500 + 40 * 404;
    assert_eq!(
        contents(&mut conn).await,
        (2000, expected_bytes, "ok".to_owned())
    );
    conn.close().await.expect("close");

    // Reopened by SQLite's own VFS: the WAL is recovered from the file alone.
    let mut plain = connect(&path, false, "FULL").await;
    assert_eq!(
        contents(&mut plain).await,
        (2000, expected_bytes, "ok".to_owned())
    );
}

#[test]
fn only_file_databases_without_a_vfs_of_their_own_get_this_one() {
    assert_eq!(
        url_with_vfs("sqlite:///data/runnel.db?mode=rwc"),
        "sqlite:///data/runnel.db?mode=rwc&vfs=runnel-wal"
    );
    assert_eq!(
        url_with_vfs("sqlite:///data/runnel.db"),
        "sqlite:///data/runnel.db?vfs=runnel-wal"
    );
    for unchanged in [
        "sqlite::memory:",
        "sqlite://file?mode=memory",
        "sqlite:///data/runnel.db?vfs=unix-excl",
    ] {
        assert_eq!(url_with_vfs(unchanged), unchanged);
    }
}
