//! A SQLite VFS that writes each commit's WAL frames with one `pwrite` instead of two per frame.
//!
//! SQLite appends a frame to the WAL as two writes, its 24-byte header and its page: a trivial
//! run's commits wrote about 34 of them, each a system call through ext4's write path, 4 % of
//! the server's CPU in a storm of runs. This VFS is SQLite's own `unix` VFS with one change:
//! writes to a WAL file that continue the previous one are gathered in memory and reach the
//! file together, before anything could need them there:
//!
//! - before the WAL is synced (`xSync`: with `synchronous = FULL`, every commit, before SQLite
//!   publishes the commit in the shared WAL index, so no other connection can look for the
//!   frames earlier);
//! - right after a commit frame (a header with a non-zero database size) and its page, so that
//!   the order above holds without a sync too (`synchronous = NORMAL`, used by nothing here);
//! - before a read, truncation, size query or file control of that file that could see them,
//!   before a write that does not continue them, and at close;
//! - once they reach [`MAX_PENDING`] bytes.
//!
//! The file's content after every flush is exactly what the unbuffered writes would have left
//! (the writes reach it in the same order; an overwrite inside the pending bytes is applied to
//! them), and nothing waits in memory across a sync, so durability is SQLite's own: a crash
//! loses only frames SQLite never synced, which its recovery ignores anyway. A failed deferred
//! write is reported by the call that flushes it (a sync, at the latest), which fails the
//! commit as the write itself would have. Every other file (the database, its shared memory,
//! temporary files) is the `unix` VFS's file itself, with no layer in between.

#![allow(unsafe_code)] // A VFS is a table of C callbacks: every function here is FFI.

use std::ffi::{CStr, c_char, c_int, c_void};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use libsqlite3_sys::{
    SQLITE_IOERR, SQLITE_OK, SQLITE_OPEN_WAL, sqlite3_file, sqlite3_int64, sqlite3_io_methods,
    sqlite3_vfs, sqlite3_vfs_find, sqlite3_vfs_register,
};

/// The VFS's registered name (`vfs=` in a SQLite URL).
pub(crate) const NAME: &CStr = c"runnel-wal";

/// The most bytes gathered before they are written anyway.
const MAX_PENDING: usize = 4 * 1024 * 1024;
/// The most bytes handed to the wrapped VFS's `xWrite` at once: the `unix` VFS writes at most
/// 128 KiB - 1 per call (SQLite's own writes are a page at most).
const MAX_WRITE: usize = 124 * 1024;
/// Capacity kept for the next commit after a flush; more is given back.
const KEPT_CAPACITY: usize = 512 * 1024;
/// The size of a WAL frame header (SQLite's `WAL_FRAME_HDRSIZE`).
const FRAME_HEADER_BYTES: c_int = 24;

/// Write calls SQLite made to WAL files, and writes this VFS made to them: their ratio is the
/// gathering at work (read by tests).
static WAL_WRITES_ASKED: AtomicU64 = AtomicU64::new(0);
static WAL_WRITES_DONE: AtomicU64 = AtomicU64::new(0);

/// A WAL file: SQLite's handle, this VFS's pending bytes, then the `unix` VFS's file (at
/// [`INNER_OFFSET`] in the same allocation, sized by `szOsFile`).
#[repr(C)]
struct WalFile {
    base: sqlite3_file,
    pending: *mut Pending,
}

/// Where the `unix` VFS's file starts inside a [`WalFile`] allocation.
const INNER_OFFSET: usize = std::mem::size_of::<WalFile>().next_multiple_of(16);

/// Writes gathered for one WAL file: `bytes` belong at offset `start`.
#[derive(Debug, Default)]
struct Pending {
    start: i64,
    bytes: Vec<u8>,
    /// The last write was a commit frame's header: flush after its page.
    is_commit_page_next: bool,
}

/// Whether the VFS was registered, or why not. Registered once per process.
static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();

/// Registers the VFS (once per process) and returns `url` with `vfs=runnel-wal` added: a
/// file database's URL without a VFS of its own. Other URLs, and every URL when registration
/// failed, come back unchanged (SQLite's default VFS then writes each frame itself).
pub(crate) fn url_with_vfs(url: &str) -> String {
    let is_memory = url.contains(":memory:") || url.contains("mode=memory");
    if is_memory || url.contains("vfs=") {
        return url.to_owned();
    }
    if let Err(reason) = register() {
        tracing::warn!(%reason, "the WAL-gathering SQLite VFS is not available; SQLite writes each frame itself");
        return url.to_owned();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}vfs={}", NAME.to_string_lossy())
}

fn register() -> Result<(), &'static str> {
    REGISTERED
        .get_or_init(|| {
            // SAFETY: `sqlite3_vfs_find(NULL)` returns the default VFS or NULL; it initializes
            // SQLite first if needed.
            let inner = unsafe { sqlite3_vfs_find(std::ptr::null()) };
            if inner.is_null() {
                return Err("SQLite has no default VFS".to_owned());
            }
            // SAFETY: `inner` is a live VFS object (above); its fields are plain data.
            let inner_vfs = unsafe { &*inner };
            // SAFETY: a VFS's name is a NUL-terminated string it keeps.
            let inner_name = unsafe { CStr::from_ptr(inner_vfs.zName) };
            // Its methods other than `xOpen` are reused with this VFS as their argument, which
            // only the `unix` family is known to ignore.
            if !inner_name.to_bytes().starts_with(b"unix") {
                return Err(format!(
                    "the default VFS is {}, not unix",
                    inner_name.to_string_lossy()
                ));
            }
            let size = usize::try_from(inner_vfs.szOsFile)
                .ok()
                .and_then(|size| size.checked_add(INNER_OFFSET))
                .and_then(|size| c_int::try_from(size).ok())
                .ok_or("the default VFS's file size is out of range")?;
            let vfs = Box::leak(Box::new(sqlite3_vfs {
                szOsFile: size,
                pNext: std::ptr::null_mut(),
                zName: NAME.as_ptr(),
                pAppData: inner.cast::<c_void>(),
                xOpen: Some(open),
                ..*inner_vfs
            }));
            // SAFETY: `vfs` lives for the rest of the process (leaked); SQLite copies nothing
            // and links it into its list. Not the default VFS.
            let code = unsafe { sqlite3_vfs_register(vfs, 0) };
            if code == SQLITE_OK {
                Ok(())
            } else {
                Err(format!("sqlite3_vfs_register answered {code}"))
            }
        })
        .as_ref()
        .copied()
        .map_err(String::as_str)
}

/// The wrapped VFS's methods other than `xOpen` are called with this VFS as their first
/// argument; the `unix` VFS's ignore it (they take their state from the file or globals).
/// `xOpen` opens every file with the wrapped VFS; a WAL file gets this VFS's methods on top.
unsafe extern "C" fn open(
    vfs: *mut sqlite3_vfs,
    name: *const c_char,
    file: *mut sqlite3_file,
    flags: c_int,
    out_flags: *mut c_int,
) -> c_int {
    // SAFETY: SQLite passes this VFS, whose `pAppData` is the wrapped VFS (see `register`).
    let inner_vfs = unsafe { (*vfs).pAppData.cast::<sqlite3_vfs>() };
    // SAFETY: as above; the wrapped VFS always has `xOpen`.
    let Some(inner_open) = (unsafe { (*inner_vfs).xOpen }) else {
        return SQLITE_IOERR;
    };
    if flags & SQLITE_OPEN_WAL == 0 {
        // SAFETY: `file` has room for the wrapped VFS's file (`szOsFile` is larger); the file
        // then is the wrapped VFS's own, with its own methods.
        return unsafe { inner_open(inner_vfs, name, file, flags, out_flags) };
    }
    // SAFETY: `file` is `szOsFile` bytes, aligned for any file object, so the wrapped file
    // fits at `INNER_OFFSET`; it starts without methods, so that a failed open is not closed.
    let inner = unsafe { inner_file(file) };
    // SAFETY: as above.
    unsafe { (*inner).pMethods = std::ptr::null() };
    // SAFETY: as for the non-WAL case, on the inner part of the allocation.
    let code = unsafe { inner_open(inner_vfs, name, inner, flags, out_flags) };
    if code != SQLITE_OK {
        // SQLite calls no method of a file whose `pMethods` is null, not even `xClose`.
        // SAFETY: `file` is ours to initialize.
        unsafe { (*file).pMethods = std::ptr::null() };
        // SAFETY: the wrapped VFS may have set its methods before failing: close it then.
        unsafe { close_inner(inner) };
        return code;
    }
    let wal = file.cast::<WalFile>();
    // SAFETY: `file` is at least a `WalFile`; the fields are written before SQLite uses them.
    unsafe {
        (&raw mut (*wal).pending).write(Box::into_raw(Box::default()));
        (*file).pMethods = &WAL_METHODS;
    }
    code
}

/// The wrapped VFS's file inside a [`WalFile`] allocation.
unsafe fn inner_file(file: *mut sqlite3_file) -> *mut sqlite3_file {
    // SAFETY: the caller passes a `WalFile` allocation of `szOsFile` bytes.
    unsafe { file.cast::<u8>().add(INNER_OFFSET).cast::<sqlite3_file>() }
}

/// Closes the wrapped file if it was opened (its methods set).
unsafe fn close_inner(inner: *mut sqlite3_file) -> c_int {
    // SAFETY: `inner` is a file object the wrapped VFS initialized (or left without methods).
    let methods = unsafe { (*inner).pMethods };
    if methods.is_null() {
        return SQLITE_OK;
    }
    // SAFETY: as above.
    let code = match unsafe { (*methods).xClose } {
        // SAFETY: closing a file the wrapped VFS opened, once.
        Some(close) => unsafe { close(inner) },
        None => SQLITE_OK,
    };
    // SAFETY: as above.
    unsafe { (*inner).pMethods = std::ptr::null() };
    code
}

/// The pending bytes and the wrapped file of a WAL file.
unsafe fn parts<'a>(file: *mut sqlite3_file) -> (&'a mut Pending, *mut sqlite3_file) {
    // SAFETY: called only through `WAL_METHODS`, i.e. on files `open` made WAL files, whose
    // `pending` is a live box until `close`; SQLite uses a file from one thread at a time.
    unsafe { (&mut *(*file.cast::<WalFile>()).pending, inner_file(file)) }
}

/// The wrapped file's methods.
unsafe fn methods<'a>(inner: *mut sqlite3_file) -> &'a sqlite3_io_methods {
    // SAFETY: an opened wrapped file has its methods set (see `open`).
    unsafe { &*(*inner).pMethods }
}

/// Writes the pending bytes to the wrapped file, in writes of at most [`MAX_WRITE`] bytes.
unsafe fn flush(pending: &mut Pending, inner: *mut sqlite3_file) -> c_int {
    pending.is_commit_page_next = false;
    // SAFETY: the wrapped file is open.
    let Some(write) = unsafe { methods(inner) }.xWrite else {
        return SQLITE_IOERR;
    };
    let mut code = SQLITE_OK;
    let mut offset = pending.start;
    for chunk in pending.bytes.chunks(MAX_WRITE) {
        let amount = c_int::try_from(chunk.len()).unwrap_or(c_int::MAX);
        // SAFETY: the chunk outlives the call and holds `amount` bytes.
        code = unsafe { write(inner, chunk.as_ptr().cast::<c_void>(), amount, offset) };
        WAL_WRITES_DONE.fetch_add(1, Ordering::Relaxed);
        if code != SQLITE_OK {
            break;
        }
        offset += i64::from(amount);
    }
    pending.bytes.clear();
    if pending.bytes.capacity() > KEPT_CAPACITY {
        pending.bytes.shrink_to(KEPT_CAPACITY);
    }
    code
}

/// Whether `[offset, offset + amount)` overlaps the pending bytes.
fn overlaps(pending: &Pending, offset: i64, amount: c_int) -> bool {
    let end = pending.start.saturating_add(pending.bytes.len() as i64);
    !pending.bytes.is_empty()
        && offset < end
        && offset.saturating_add(i64::from(amount)) > pending.start
}

unsafe extern "C" fn wal_write(
    file: *mut sqlite3_file,
    data: *const c_void,
    amount: c_int,
    offset: sqlite3_int64,
) -> c_int {
    WAL_WRITES_ASKED.fetch_add(1, Ordering::Relaxed);
    // SAFETY: see `parts`.
    let (pending, inner) = unsafe { parts(file) };
    let Ok(length) = usize::try_from(amount) else {
        return SQLITE_IOERR;
    };
    // SAFETY: SQLite passes `amount` readable bytes at `data`.
    let bytes = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), length) };
    let pending_end = pending.start.saturating_add(pending.bytes.len() as i64);
    if !pending.bytes.is_empty()
        && offset >= pending.start
        && offset.saturating_add(i64::from(amount)) <= pending_end
    {
        // An overwrite of pending bytes (SQLite rewrites a frame it wrote earlier in the same
        // transaction): applied to them, as the file would have it.
        let at = usize::try_from(offset - pending.start).unwrap_or(0);
        pending.bytes[at..at + length].copy_from_slice(bytes);
    } else {
        let continues = !pending.bytes.is_empty() && offset == pending_end;
        if !continues || pending.bytes.len() + length > MAX_PENDING {
            // SAFETY: see `flush`.
            let code = unsafe { flush(pending, inner) };
            if code != SQLITE_OK {
                return code;
            }
            pending.start = offset;
        }
        pending.bytes.extend_from_slice(bytes);
    }
    if pending.is_commit_page_next {
        // This is the commit frame's page: the commit is complete in the file after this.
        // SAFETY: see `flush`.
        return unsafe { flush(pending, inner) };
    }
    // A frame header whose "database size after commit" field (bytes 4..8) is not zero
    // marks the last frame of a commit.
    pending.is_commit_page_next = amount == FRAME_HEADER_BYTES && bytes[4..8] != [0; 4];
    SQLITE_OK
}

unsafe extern "C" fn wal_read(
    file: *mut sqlite3_file,
    data: *mut c_void,
    amount: c_int,
    offset: sqlite3_int64,
) -> c_int {
    // SAFETY: see `parts`.
    let (pending, inner) = unsafe { parts(file) };
    if overlaps(pending, offset, amount) {
        // SAFETY: see `flush`.
        let code = unsafe { flush(pending, inner) };
        if code != SQLITE_OK {
            return code;
        }
    }
    // SAFETY: delegation with SQLite's own arguments.
    match unsafe { methods(inner) }.xRead {
        // SAFETY: as above.
        Some(read) => unsafe { read(inner, data, amount, offset) },
        None => SQLITE_IOERR,
    }
}

unsafe extern "C" fn wal_close(file: *mut sqlite3_file) -> c_int {
    let wal = file.cast::<WalFile>();
    // SAFETY: see `parts`; after this the box is freed and the methods cleared, as SQLite
    // never calls a closed file again.
    unsafe {
        let (pending, inner) = parts(file);
        let flushed = flush(pending, inner);
        let closed = close_inner(inner);
        drop(Box::from_raw((*wal).pending));
        (*wal).pending = std::ptr::null_mut();
        if flushed != SQLITE_OK {
            flushed
        } else {
            closed
        }
    }
}

/// Defines a method that flushes the pending bytes, then hands the call to the wrapped file.
macro_rules! flush_then {
    ($name:ident, $method:ident, ($($arg:ident: $type:ty),*)) => {
        unsafe extern "C" fn $name(file: *mut sqlite3_file $(, $arg: $type)*) -> c_int {
            // SAFETY: see `parts` and `flush`; then delegation with SQLite's own arguments.
            unsafe {
                let (pending, inner) = parts(file);
                let code = flush(pending, inner);
                if code != SQLITE_OK {
                    return code;
                }
                match methods(inner).$method {
                    Some(method) => method(inner $(, $arg)*),
                    None => SQLITE_IOERR,
                }
            }
        }
    };
}

/// Defines a method that hands the call to the wrapped file as it is.
macro_rules! delegate {
    ($name:ident, $method:ident, ($($arg:ident: $type:ty),*), $missing:expr) => {
        unsafe extern "C" fn $name(file: *mut sqlite3_file $(, $arg: $type)*) -> c_int {
            // SAFETY: see `parts`; delegation with SQLite's own arguments.
            unsafe {
                let (_, inner) = parts(file);
                match methods(inner).$method {
                    Some(method) => method(inner $(, $arg)*),
                    None => $missing,
                }
            }
        }
    };
}

flush_then!(wal_truncate, xTruncate, (size: sqlite3_int64));
flush_then!(wal_sync, xSync, (flags: c_int));
flush_then!(wal_file_size, xFileSize, (size: *mut sqlite3_int64));
flush_then!(wal_file_control, xFileControl, (op: c_int, arg: *mut c_void));
delegate!(wal_lock, xLock, (level: c_int), SQLITE_OK);
delegate!(wal_unlock, xUnlock, (level: c_int), SQLITE_OK);
delegate!(wal_check_reserved_lock, xCheckReservedLock, (out: *mut c_int), SQLITE_OK);
delegate!(wal_sector_size, xSectorSize, (), 4096);
delegate!(wal_device_characteristics, xDeviceCharacteristics, (), 0);

/// Version 1: SQLite maps shared memory and database pages only through the database file,
/// never the WAL, so a WAL file needs none of the later methods.
static WAL_METHODS: sqlite3_io_methods = sqlite3_io_methods {
    iVersion: 1,
    xClose: Some(wal_close),
    xRead: Some(wal_read),
    xWrite: Some(wal_write),
    xTruncate: Some(wal_truncate),
    xSync: Some(wal_sync),
    xFileSize: Some(wal_file_size),
    xLock: Some(wal_lock),
    xUnlock: Some(wal_unlock),
    xCheckReservedLock: Some(wal_check_reserved_lock),
    xFileControl: Some(wal_file_control),
    xSectorSize: Some(wal_sector_size),
    xDeviceCharacteristics: Some(wal_device_characteristics),
    xShmMap: None,
    xShmLock: None,
    xShmBarrier: None,
    xShmUnmap: None,
    xFetch: None,
    xUnfetch: None,
};

#[cfg(test)]
mod tests;
