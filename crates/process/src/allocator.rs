//! The process's memory allocator: mimalloc instead of glibc's `malloc`.
//!
//! A trivial run allocates thousands of small, short-lived values (rows, JSON, HTTP headers,
//! futures); glibc's `malloc`/`free` were a sixth of the server's CPU in a storm of runs, and
//! mimalloc does the same work for less (`docs/benchmarks.md`, seventh session). SQLite's own
//! allocations (statements, rows, its page cache: a few hundred per trivial run) go to mimalloc
//! too, through [`route_sqlite`], which also keeps SQLite's freed page-sized buffers for reuse
//! (see [`RECYCLED`]).

/// Every Rust allocation of the binary goes to mimalloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's option number of the purge delay (`mi_option_t` in `mimalloc.h` of the v3 series
/// the crate builds); `libmimalloc-sys` does not name it. The test below checks it by its default.
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keeps the idle server small: memory a thread frees goes back to the system at once rather
/// than after a delay (an idle thread never comes back to purge it: 70 MB stayed resident after
/// a storm instead of 24). The crate is built with `no_thp`, so mimalloc never asks for
/// transparent huge pages either (each would make 2 MiB resident for a few small objects); its
/// `MIMALLOC_ALLOW_THP=0` would instead disable them with `prctl`, for every step process too.
/// `MIMALLOC_PURGE_DELAY` still overrides the delay.
pub fn tune() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: `mi_option_set` only stores a value in mimalloc's option table; the option number
    // is that of the linked mimalloc (checked by the test below).
    #[allow(unsafe_code)]
    unsafe {
        libmimalloc_sys::mi_option_set(PURGE_DELAY, 0);
    }
}

/// Gives SQLite mimalloc as its allocator (`SQLITE_CONFIG_MALLOC`). It must run before SQLite
/// initializes, i.e. before the process opens its first connection: first thing in `main`.
/// Later, SQLite refuses it (`SQLITE_MISUSE`) and keeps the allocator it started with, which is
/// correct too; the code is returned for the caller to report.
pub fn route_sqlite() -> Result<(), std::ffi::c_int> {
    let methods = libsqlite3_sys::sqlite3_mem_methods {
        xMalloc: Some(sqlite_malloc),
        xFree: Some(sqlite_free),
        xRealloc: Some(sqlite_realloc),
        xSize: Some(sqlite_size),
        xRoundup: Some(sqlite_roundup),
        xInit: Some(sqlite_init),
        xShutdown: Some(sqlite_shutdown),
        pAppData: std::ptr::null_mut(),
    };
    // SAFETY: `sqlite3_config` copies the methods before it returns (documented for
    // SQLITE_CONFIG_MALLOC), so a local is enough; it is only called from `main`'s thread
    // before any other thread exists. The functions below keep SQLite's contract: 8-byte
    // aligned blocks (mimalloc aligns every block to at least 8), `xSize` and `xRoundup` never
    // smaller than asked, `xFree`/`xRealloc` given only pointers `xMalloc`/`xRealloc` returned.
    #[allow(unsafe_code)]
    let code = unsafe {
        libsqlite3_sys::sqlite3_config(libsqlite3_sys::SQLITE_CONFIG_MALLOC, &raw const methods)
    };
    if code == libsqlite3_sys::SQLITE_OK {
        Ok(())
    } else {
        Err(code)
    }
}

/// SQLite's page-sized blocks that were freed, kept for the next request of the same size.
///
/// SQLite allocates page-sized buffers that live for one statement: the page cache of every
/// ephemeral table (an `IN` list, a `RETURNING` clause, a sort) with its bulk allocation, the
/// B-tree's scratch page, `balance`'s copy of a page, and the pages a reader connection reads
/// again after each write (WAL mode drops a reader's cache whenever the database changed).
/// Each such buffer tends to be alone in its mimalloc page, so freeing it empties the page,
/// which mimalloc (with no purge delay, see [`tune`]) hands back to the system with `madvise`
/// and the next allocation faults in and zeroes again: a tenth of the server's CPU in a storm
/// of trivial runs, mostly kernel time (the `madvise`, the TLB shootdown it sends the other
/// core, the page faults). Reusing the freed buffers avoids all of it, for at most
/// [`RECYCLED_BYTES`] of memory kept.
static RECYCLED: std::sync::Mutex<Recycled> = std::sync::Mutex::new(Recycled {
    blocks: Vec::new(),
    bytes: 0,
});

/// Blocks of at least this many (usable) bytes are recycled: SQLite's page-sized buffers, not
/// its many small objects (mimalloc's per-thread free lists serve those well).
const RECYCLED_MIN: usize = 2 * 1024;
/// ... and of at most this many: a page cache's bulk allocation of 20 pages fits.
const RECYCLED_MAX: usize = 128 * 1024;
/// The most memory kept for reuse.
const RECYCLED_BYTES: usize = 1024 * 1024;
/// The most blocks kept (the list never grows past its first allocation).
const RECYCLED_BLOCKS: usize = 64;

#[derive(Debug)]
struct Recycled {
    /// Address and usable size of each block kept.
    blocks: Vec<(usize, usize)>,
    /// The sum of their sizes.
    bytes: usize,
}

impl Recycled {
    fn lock() -> std::sync::MutexGuard<'static, Recycled> {
        // The list is consistent between statements, so a panicked holder leaves it usable.
        RECYCLED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A kept block of exactly `size` usable bytes (a size mimalloc's `mi_good_size` gave).
    fn take(&mut self, size: usize) -> Option<usize> {
        let index = self.blocks.iter().rposition(|&(_, kept)| kept == size)?;
        let (address, _) = self.blocks.swap_remove(index);
        self.bytes -= size;
        Some(address)
    }

    /// Keeps a block of `size` usable bytes if there is room; `false`: the caller frees it.
    fn keep(&mut self, address: usize, size: usize) -> bool {
        if self.blocks.len() >= RECYCLED_BLOCKS || self.bytes + size > RECYCLED_BYTES {
            return false;
        }
        if self.blocks.capacity() == 0 {
            // Allocated while the lock is held: mimalloc never calls back into SQLite.
            self.blocks.reserve_exact(RECYCLED_BLOCKS);
        }
        self.blocks.push((address, size));
        self.bytes += size;
        true
    }
}

fn is_recycled_size(size: usize) -> bool {
    (RECYCLED_MIN..=RECYCLED_MAX).contains(&size)
}

#[allow(unsafe_code)]
unsafe extern "C" fn sqlite_malloc(size: std::ffi::c_int) -> *mut std::ffi::c_void {
    let Ok(size) = usize::try_from(size) else {
        return std::ptr::null_mut();
    };
    // SAFETY: a pure computation of mimalloc's size classes.
    let class = unsafe { libmimalloc_sys::mi_good_size(size) };
    if is_recycled_size(class)
        && let Some(address) = Recycled::lock().take(class)
    {
        // A mimalloc block of `class >= size` usable bytes that SQLite freed: SQLite owns it
        // again, as if `mi_malloc` had returned it.
        return address as *mut std::ffi::c_void;
    }
    // SAFETY: any size may be asked of mimalloc; null means out of memory to SQLite too.
    unsafe { libmimalloc_sys::mi_malloc(size) }
}

#[allow(unsafe_code)]
unsafe extern "C" fn sqlite_free(block: *mut std::ffi::c_void) {
    if block.is_null() {
        return;
    }
    // SAFETY: SQLite frees only blocks this allocator gave it, all of them mimalloc blocks.
    let size = unsafe { libmimalloc_sys::mi_usable_size(block) };
    if is_recycled_size(size) && Recycled::lock().keep(block as usize, size) {
        return;
    }
    // SAFETY: as above; a block is either kept or freed, never both.
    unsafe { libmimalloc_sys::mi_free(block) }
}

#[allow(unsafe_code)]
unsafe extern "C" fn sqlite_realloc(
    block: *mut std::ffi::c_void,
    size: std::ffi::c_int,
) -> *mut std::ffi::c_void {
    match usize::try_from(size) {
        // SAFETY: as for `sqlite_free`; on failure the old block stays valid, as SQLite expects.
        Ok(size) => unsafe { libmimalloc_sys::mi_realloc(block, size) },
        Err(_) => std::ptr::null_mut(),
    }
}

#[allow(unsafe_code)]
unsafe extern "C" fn sqlite_size(block: *mut std::ffi::c_void) -> std::ffi::c_int {
    // SAFETY: as for `sqlite_free`.
    let size = unsafe { libmimalloc_sys::mi_usable_size(block) };
    std::ffi::c_int::try_from(size).unwrap_or(std::ffi::c_int::MAX)
}

#[allow(unsafe_code)]
unsafe extern "C" fn sqlite_roundup(size: std::ffi::c_int) -> std::ffi::c_int {
    let Ok(wanted) = usize::try_from(size) else {
        return size;
    };
    // SAFETY: a pure computation of mimalloc's size classes.
    let good = unsafe { libmimalloc_sys::mi_good_size(wanted) };
    std::ffi::c_int::try_from(good).unwrap_or(size)
}

#[allow(unsafe_code)]
unsafe extern "C" fn sqlite_init(_: *mut std::ffi::c_void) -> std::ffi::c_int {
    libsqlite3_sys::SQLITE_OK
}

#[allow(unsafe_code)]
unsafe extern "C" fn sqlite_shutdown(_: *mut std::ffi::c_void) {}

#[cfg(test)]
mod tests {
    use super::*;

    /// nextest runs each test in a process of its own, so SQLite is not initialized yet here.
    #[test]
    fn sqlite_allocates_from_mimalloc_once_routed() {
        assert_eq!(route_sqlite(), Ok(()));
        let mut current = libsqlite3_sys::sqlite3_mem_methods {
            xMalloc: None,
            xFree: None,
            xRealloc: None,
            xSize: None,
            xRoundup: None,
            xInit: None,
            xShutdown: None,
            pAppData: std::ptr::null_mut(),
        };
        // SAFETY: SQLITE_CONFIG_GETMALLOC writes the methods in force into the struct given.
        #[allow(unsafe_code)]
        let code = unsafe {
            libsqlite3_sys::sqlite3_config(
                libsqlite3_sys::SQLITE_CONFIG_GETMALLOC,
                &raw mut current,
            )
        };
        assert_eq!(code, libsqlite3_sys::SQLITE_OK);
        let ours: unsafe extern "C" fn(std::ffi::c_int) -> *mut std::ffi::c_void = sqlite_malloc;
        assert_eq!(current.xMalloc.map(|f| f as usize), Some(ours as usize));
        // SQLite works on it: a table of rows large and small, written, grown and read back.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let total: i64 = runtime.block_on(async {
            use sqlx::Connection as _;
            let mut conn = sqlx::SqliteConnection::connect("sqlite::memory:")
                .await
                .expect("open");
            sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")
                .execute(&mut conn)
                .await
                .expect("create");
            for id in 0..2000_i64 {
                sqlx::query("INSERT INTO t (id, body) VALUES (?, zeroblob(?))")
                    .bind(id)
                    .bind((id % 7) * 1000)
                    .execute(&mut conn)
                    .await
                    .expect("insert");
            }
            sqlx::query("UPDATE t SET body = zeroblob(length(body) + 100) WHERE id % 3 = 0")
                .execute(&mut conn)
                .await
                .expect("update");
            sqlx::query_scalar("SELECT SUM(length(body)) FROM t")
                .fetch_one(&mut conn)
                .await
                .expect("sum")
        });
        let expected: i64 = (0..2000_i64)
            .map(|id| (id % 7) * 1000 + if id % 3 == 0 { 100 } else { 0 })
            .sum();
        assert_eq!(total, expected);
        // Refused once SQLite runs; what it started with stays.
        assert_eq!(route_sqlite(), Err(libsqlite3_sys::SQLITE_MISUSE));
    }

    #[test]
    #[allow(unsafe_code)]
    fn a_freed_page_sized_block_is_handed_out_again_and_small_ones_are_freed() {
        // SAFETY (all blocks below): each comes from `sqlite_malloc` and is freed once.
        let page = unsafe { sqlite_malloc(4096 + 264) };
        assert!(!page.is_null());
        unsafe { sqlite_free(page) };
        let again = unsafe { sqlite_malloc(4096 + 264) };
        assert_eq!(again, page, "the freed page is reused");
        // Usable in full: SQLite asks for its size and may use all of it.
        let usable = unsafe { sqlite_size(again) };
        assert!(usable >= 4096 + 264);
        unsafe { std::ptr::write_bytes(again.cast::<u8>(), 0xa5, usable as usize) };
        let small = unsafe { sqlite_malloc(100) };
        unsafe { sqlite_free(small) };
        assert!(
            Recycled::lock()
                .blocks
                .iter()
                .all(|&(address, _)| address != small as usize)
        );
        unsafe { sqlite_free(again) };
    }

    #[test]
    #[allow(unsafe_code)]
    fn the_memory_kept_for_reuse_is_bounded() {
        let size = 64 * 1024;
        // SAFETY: each block comes from `sqlite_malloc` and is freed once.
        let blocks: Vec<_> = (0..40).map(|_| unsafe { sqlite_malloc(size) }).collect();
        assert!(blocks.iter().all(|block| !block.is_null()));
        for block in blocks {
            unsafe { sqlite_free(block) };
        }
        let kept = Recycled::lock();
        assert!(kept.bytes <= RECYCLED_BYTES, "{} bytes kept", kept.bytes);
        assert_eq!(kept.blocks.len(), RECYCLED_BYTES / 65536);
        assert_eq!(
            kept.bytes,
            kept.blocks.iter().map(|&(_, size)| size).sum::<usize>()
        );
    }

    #[test]
    fn the_option_numbers_are_those_of_the_linked_mimalloc() {
        let read = || {
            // SAFETY: a read of mimalloc's option table.
            #[allow(unsafe_code)]
            unsafe {
                libmimalloc_sys::mi_option_get(PURGE_DELAY)
            }
        };
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            // The operator's value stands.
            let before = read();
            tune();
            assert_eq!(read(), before);
            return;
        }
        // Before `tune`: v3's default purge delay (1000 ms) identifies the option; a renumbered
        // table would show another option's value here. Then the option set is the one read.
        assert_eq!(read(), 1000);
        tune();
        assert_eq!(read(), 0);
    }
}
