//! The process's memory allocator: mimalloc instead of glibc's `malloc`.
//!
//! A trivial run allocates thousands of small, short-lived values (rows, JSON, HTTP headers,
//! futures); glibc's `malloc`/`free` were a sixth of the server's CPU in a storm of runs, and
//! mimalloc does the same work for less (`docs/benchmarks.md`, seventh session). SQLite keeps
//! its own `malloc` calls to glibc.

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
pub(crate) fn tune() {
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

#[cfg(test)]
mod tests {
    use super::*;

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
