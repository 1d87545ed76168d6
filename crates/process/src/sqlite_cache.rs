//! SQLite's page cache, wrapped: the default cache (`pcache1`) behind methods that skip the
//! truncations that provably remove nothing.
//!
//! At the end of every write transaction SQLite truncates its page cache to the database's
//! size (`pager_end_transaction` → `xTruncate`). `pcache1` decides how to do that from the
//! largest page number it has seen since the last truncation: if that is far beyond the
//! limit, it scans its whole hash table. While balancing a B-tree, SQLite moves a page
//! temporarily to the number of the locking page (`PENDING_BYTE / page size + 1`: page
//! 262 145 with 4 KiB pages; never a real page) and back (`xRekey`), which leaves that number
//! as the largest seen. So in a database smaller than 1 GiB, every transaction that split a
//! page ended with a scan of the writer's whole cache (4 096 slots and every cached page for
//! its 16 MiB): 6 % of the writer thread's time in a storm of trivial runs
//! (`docs/benchmarks.md`), to remove nothing.
//!
//! The wrapper keeps, per cache, an upper bound of the page numbers it holds (every number a
//! page was fetched with creation allowed or rekeyed to, except the locking page while a page
//! is parked there) and passes a truncation on only when a page at or beyond the limit may
//! exist; a truncation it passes on lowers the bound. Every other method goes straight to
//! `pcache1`, so what is cached, and when, is unchanged.

use libsqlite3_sys::{sqlite3_pcache, sqlite3_pcache_methods2, sqlite3_pcache_page};
use std::ffi::{c_int, c_uint, c_void};
use std::sync::OnceLock;

/// `PENDING_BYTE`: the byte offset of SQLite's locking range (`sqlite3PendingByte`, changed
/// only by SQLite's own test harness).
const PENDING_BYTE: u32 = 0x4000_0000;

/// The default page cache's methods, taken before ours replace them.
struct Methods(sqlite3_pcache_methods2);

// SAFETY: the methods are plain function pointers plus `pArg`, which `pcache1` ignores; they
// are written once, before SQLite initializes, and only read afterwards.
#[allow(unsafe_code)]
unsafe impl Send for Methods {}
#[allow(unsafe_code)]
unsafe impl Sync for Methods {}

static DEFAULT: OnceLock<Methods> = OnceLock::new();

/// How many truncations were skipped and passed on, and how many pages were parked on the
/// locking page's number (for the tests).
static SKIPPED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static PARKED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static PASSED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// One cache: `pcache1`'s, with what the wrapper knows about it.
struct Cache {
    inner: *mut sqlite3_pcache,
    /// No page of the cache has a number above this, except pages parked on `lock_page`.
    bound: c_uint,
    /// Pages rekeyed to `lock_page` and not rekeyed away yet.
    parked: u32,
    lock_page: c_uint,
}

/// Puts the wrapper in place (`SQLITE_CONFIG_PCACHE2`). Like [`crate::allocator::route_sqlite`]
/// it must run before SQLite initializes; later SQLite refuses it (`SQLITE_MISUSE`) and keeps
/// its cache, which is correct too. The code is returned for the caller to report.
pub fn install() -> Result<(), c_int> {
    let mut default = sqlite3_pcache_methods2 {
        iVersion: 0,
        pArg: std::ptr::null_mut(),
        xInit: None,
        xShutdown: None,
        xCreate: None,
        xCachesize: None,
        xPagecount: None,
        xFetch: None,
        xUnpin: None,
        xRekey: None,
        xTruncate: None,
        xDestroy: None,
        xShrink: None,
    };
    // SAFETY: SQLITE_CONFIG_GETPCACHE2 writes the methods in force (the default ones, set up by
    // this call if need be) into the struct given.
    #[allow(unsafe_code)]
    let code = unsafe {
        libsqlite3_sys::sqlite3_config(libsqlite3_sys::SQLITE_CONFIG_GETPCACHE2, &raw mut default)
    };
    if code != libsqlite3_sys::SQLITE_OK {
        return Err(code);
    }
    let complete = default.xInit.is_some()
        && default.xCreate.is_some()
        && default.xCachesize.is_some()
        && default.xPagecount.is_some()
        && default.xFetch.is_some()
        && default.xUnpin.is_some()
        && default.xRekey.is_some()
        && default.xTruncate.is_some()
        && default.xDestroy.is_some();
    if !complete {
        return Err(libsqlite3_sys::SQLITE_MISUSE);
    }
    let version = default.iVersion;
    let has_shrink = default.xShrink.is_some();
    // A second call would wrap the wrapper: refused, as SQLite refuses a late one.
    if DEFAULT.set(Methods(default)).is_err() {
        return Err(libsqlite3_sys::SQLITE_MISUSE);
    }
    let ours = sqlite3_pcache_methods2 {
        iVersion: version,
        pArg: std::ptr::null_mut(),
        xInit: Some(init),
        xShutdown: Some(shutdown),
        xCreate: Some(create),
        xCachesize: Some(cachesize),
        xPagecount: Some(pagecount),
        xFetch: Some(fetch),
        xUnpin: Some(unpin),
        xRekey: Some(rekey),
        xTruncate: Some(truncate),
        xDestroy: Some(destroy),
        xShrink: has_shrink.then_some(shrink as unsafe extern "C" fn(*mut sqlite3_pcache)),
    };
    // SAFETY: `sqlite3_config` copies the methods before it returns; the functions below keep
    // the contract of `sqlite3_pcache_methods2` by forwarding to the default cache.
    #[allow(unsafe_code)]
    let code = unsafe {
        libsqlite3_sys::sqlite3_config(libsqlite3_sys::SQLITE_CONFIG_PCACHE2, &raw const ours)
    };
    if code == libsqlite3_sys::SQLITE_OK {
        Ok(())
    } else {
        Err(code)
    }
}

/// Truncations skipped and passed on, and pages parked, so far in this process.
#[cfg(test)]
fn counts() -> (u64, u64, u64) {
    let load =
        |counter: &std::sync::atomic::AtomicU64| counter.load(std::sync::atomic::Ordering::Relaxed);
    (load(&SKIPPED), load(&PASSED), load(&PARKED))
}

fn default() -> &'static sqlite3_pcache_methods2 {
    match DEFAULT.get() {
        Some(methods) => &methods.0,
        // Our methods are installed only after DEFAULT is set.
        None => std::process::abort(),
    }
}

/// A method of the default cache; `install` checked that it has all of them.
fn method<F>(method: Option<F>) -> F {
    match method {
        Some(method) => method,
        None => std::process::abort(),
    }
}

/// The wrapper of a cache SQLite hands back.
///
/// SAFETY (for callers): `cache` must be a pointer [`create`] returned and [`destroy`] did not
/// free yet; SQLite calls the methods of one cache from one connection at a time.
#[allow(unsafe_code)]
unsafe fn cache<'a>(cache: *mut sqlite3_pcache) -> &'a mut Cache {
    // SAFETY: see above; `create` made it from a `Box<Cache>`.
    unsafe { &mut *cache.cast::<Cache>() }
}

#[allow(unsafe_code)]
unsafe extern "C" fn init(_: *mut c_void) -> c_int {
    let default = default();
    // SAFETY: forwarding SQLite's call to the default cache, with its own argument.
    unsafe { method(default.xInit)(default.pArg) }
}

#[allow(unsafe_code)]
unsafe extern "C" fn shutdown(_: *mut c_void) {
    let default = default();
    if let Some(shutdown) = default.xShutdown {
        // SAFETY: as for `init`.
        unsafe { shutdown(default.pArg) }
    }
}

#[allow(unsafe_code)]
unsafe extern "C" fn create(
    page_size: c_int,
    extra: c_int,
    purgeable: c_int,
) -> *mut sqlite3_pcache {
    // SAFETY: forwarding SQLite's call.
    let inner = unsafe { method(default().xCreate)(page_size, extra, purgeable) };
    if inner.is_null() {
        return inner;
    }
    let lock_page = u32::try_from(page_size)
        .ok()
        .filter(|size| *size > 0)
        .map_or(c_uint::MAX, |size| PENDING_BYTE / size + 1);
    Box::into_raw(Box::new(Cache {
        inner,
        bound: 0,
        parked: 0,
        lock_page,
    }))
    .cast::<sqlite3_pcache>()
}

#[allow(unsafe_code)]
unsafe extern "C" fn cachesize(wrapped: *mut sqlite3_pcache, pages: c_int) {
    // SAFETY: SQLite passes a cache `create` returned.
    let cache = unsafe { cache(wrapped) };
    // SAFETY: forwarding to the cache it wraps.
    unsafe { method(default().xCachesize)(cache.inner, pages) }
}

#[allow(unsafe_code)]
unsafe extern "C" fn pagecount(wrapped: *mut sqlite3_pcache) -> c_int {
    // SAFETY: as for `cachesize`.
    let cache = unsafe { cache(wrapped) };
    unsafe { method(default().xPagecount)(cache.inner) }
}

#[allow(unsafe_code)]
unsafe extern "C" fn fetch(
    wrapped: *mut sqlite3_pcache,
    key: c_uint,
    create_flag: c_int,
) -> *mut sqlite3_pcache_page {
    // SAFETY: as for `cachesize`.
    let cache = unsafe { cache(wrapped) };
    // Any fetch that may create a page raises the bound, whether it did or not.
    if create_flag != 0 && key > cache.bound {
        cache.bound = key;
    }
    unsafe { method(default().xFetch)(cache.inner, key, create_flag) }
}

#[allow(unsafe_code)]
unsafe extern "C" fn unpin(
    wrapped: *mut sqlite3_pcache,
    page: *mut sqlite3_pcache_page,
    discard: c_int,
) {
    // SAFETY: as for `cachesize`; the page is one the wrapped cache handed out.
    let cache = unsafe { cache(wrapped) };
    unsafe { method(default().xUnpin)(cache.inner, page, discard) }
}

#[allow(unsafe_code)]
unsafe extern "C" fn rekey(
    wrapped: *mut sqlite3_pcache,
    page: *mut sqlite3_pcache_page,
    old: c_uint,
    new: c_uint,
) {
    // SAFETY: as for `unpin`.
    let cache = unsafe { cache(wrapped) };
    unsafe { method(default().xRekey)(cache.inner, page, old, new) }
    if new == cache.lock_page {
        cache.parked += 1;
        PARKED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    } else if new > cache.bound {
        cache.bound = new;
    }
    if old == cache.lock_page {
        cache.parked = cache.parked.saturating_sub(1);
    }
}

#[allow(unsafe_code)]
unsafe extern "C" fn truncate(wrapped: *mut sqlite3_pcache, limit: c_uint) {
    // SAFETY: as for `cachesize`.
    let cache = unsafe { cache(wrapped) };
    if cache.parked == 0 && limit > cache.bound {
        // Every page's number is at most `bound`, below the limit: nothing to remove.
        SKIPPED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return;
    }
    PASSED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    unsafe { method(default().xTruncate)(cache.inner, limit) }
    if limit > 0 {
        cache.bound = cache.bound.min(limit - 1);
    }
}

#[allow(unsafe_code)]
unsafe extern "C" fn destroy(wrapped: *mut sqlite3_pcache) {
    // SAFETY: SQLite destroys a cache once, after its last use; the box is `create`'s.
    let cache = unsafe { Box::from_raw(wrapped.cast::<Cache>()) };
    unsafe { method(default().xDestroy)(cache.inner) }
}

#[allow(unsafe_code)]
unsafe extern "C" fn shrink(wrapped: *mut sqlite3_pcache) {
    // SAFETY: as for `cachesize`; `install` offers `xShrink` only if the default cache has it.
    let cache = unsafe { cache(wrapped) };
    if let Some(shrink) = default().xShrink {
        unsafe { shrink(cache.inner) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Connection as _;

    /// A file database (WAL, as the server's) where transactions split pages, grow the file
    /// and are rolled back, checked against what was committed.
    async fn exercise(path: &std::path::Path) -> (i64, i64, String) {
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("open");
        for pragma in ["PRAGMA journal_mode = WAL", "PRAGMA cache_size = -16384"] {
            sqlx::query(pragma)
                .execute(&mut conn)
                .await
                .expect("pragma");
        }
        sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT NOT NULL, body BLOB NOT NULL)")
            .execute(&mut conn)
            .await
            .expect("create");
        sqlx::query("CREATE INDEX t_k ON t (k)")
            .execute(&mut conn)
            .await
            .expect("index");
        let mut committed = 0_i64;
        for round in 0..40_i64 {
            let mut txn = conn.begin().await.expect("begin");
            for row in 0..100_i64 {
                let id = round * 1000 + row;
                // Keys out of order split index pages in the middle (balance with rekeys).
                let key = format!("{:08}", (id * 7919) % 100_003);
                sqlx::query("INSERT INTO t (id, k, body) VALUES (?, ?, zeroblob(?))")
                    .bind(id)
                    .bind(key)
                    .bind(200 + (id % 13) * 50)
                    .execute(&mut *txn)
                    .await
                    .expect("insert");
            }
            if round % 4 == 3 {
                // Grows the file, then is rolled back: the pages past the old end must go.
                sqlx::query("INSERT INTO t (id, k, body) SELECT id + 500, k || 'x', zeroblob(3000) FROM t WHERE id % 1000 < 100 AND id >= ?")
                    .bind(round * 1000)
                    .execute(&mut *txn)
                    .await
                    .expect("grow");
                txn.rollback().await.expect("rollback");
            } else {
                txn.commit().await.expect("commit");
                committed += 100;
            }
            if round % 10 == 9 {
                sqlx::query("DELETE FROM t WHERE id % 3 = 0 AND id >= ?")
                    .bind((round - 9) * 1000)
                    .execute(&mut conn)
                    .await
                    .expect("delete");
                committed = sqlx::query_scalar("SELECT COUNT(*) FROM t")
                    .fetch_one(&mut conn)
                    .await
                    .expect("count");
            }
        }
        let (count, bytes) = rows_and_bytes(&mut conn).await;
        assert_eq!(count, committed);
        let check: String = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&mut conn)
            .await
            .expect("check");
        (count, bytes, check)
    }

    /// The rows of the test table and the bytes of their bodies.
    async fn rows_and_bytes(conn: &mut sqlx::SqliteConnection) -> (i64, i64) {
        sqlx::query_as("SELECT COUNT(*), COALESCE(SUM(length(body)), 0) FROM t")
            .fetch_one(conn)
            .await
            .expect("count")
    }

    fn run(path: &std::path::Path) -> (i64, i64, String) {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(exercise(path))
    }

    /// nextest runs each test in a process of its own, so SQLite is not initialized yet here.
    #[test]
    fn the_wrapped_cache_skips_empty_truncations_and_the_database_stays_whole() {
        assert_eq!(install(), Ok(()));
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("wrapped.db");
        let (count, bytes, check) = run(&path);
        assert_eq!(check, "ok");
        assert_eq!((count, bytes), expected());
        let (skipped, passed, parked) = counts();
        assert!(
            parked > 0,
            "the work never parked a page on the locking page's number"
        );
        assert!(skipped > 0, "no truncation was skipped");
        // The rolled-back growth had pages to drop.
        assert!(passed > 0, "no truncation was passed on");
        // Read back by a fresh connection from the file: the same rows.
        let reread = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(async {
                let url = format!("sqlite://{}", path.display());
                let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("open");
                rows_and_bytes(&mut conn).await
            });
        assert_eq!(reread, (count, bytes));
        // Refused once SQLite runs.
        assert_eq!(install(), Err(libsqlite3_sys::SQLITE_MISUSE));
    }

    #[test]
    fn the_same_work_on_the_default_cache_gives_the_same_database() {
        // Nothing installed in this process: the reference for the test above.
        let dir = tempfile::tempdir().expect("dir");
        let (count, bytes, check) = run(&dir.path().join("plain.db"));
        assert_eq!(check, "ok");
        assert_eq!(counts(), (0, 0, 0));
        assert_eq!((count, bytes), expected());
    }

    /// The rows `exercise` leaves, computed without SQLite.
    fn expected() -> (i64, i64) {
        let mut rows: std::collections::BTreeMap<i64, i64> = std::collections::BTreeMap::new();
        for round in 0..40_i64 {
            if round % 4 != 3 {
                for row in 0..100_i64 {
                    let id = round * 1000 + row;
                    rows.insert(id, 200 + (id % 13) * 50);
                }
            }
            if round % 10 == 9 {
                let from = (round - 9) * 1000;
                rows.retain(|id, _| !(id % 3 == 0 && *id >= from));
            }
        }
        (
            i64::try_from(rows.len()).expect("count"),
            rows.values().sum(),
        )
    }
}
