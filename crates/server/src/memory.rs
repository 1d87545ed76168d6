//! How the server's heap gives memory back.
//!
//! glibc's malloc serves a large block with its own mapping and unmaps it on free, but after the
//! first such free it raises the threshold to that block's size, so later blocks of that size
//! come from the heap and stay there after use. The argon2 hash of every login takes 19 MiB:
//! with the sliding threshold, an idle server kept about 20 MB it no longer used. A fixed
//! threshold keeps large blocks mapped on their own and returned when freed.

/// The C library's default starting threshold, kept fixed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: i32 = 128 * 1024;

/// Fixes malloc's mmap threshold (glibc); elsewhere does nothing.
pub(crate) fn return_large_blocks() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallopt` only changes a tuning parameter of the allocator, under its own
        // lock; it is safe to call at any time from any thread, and takes no pointers.
        #[allow(unsafe_code)]
        let is_set = unsafe { nix::libc::mallopt(nix::libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) };
        if is_set != 1 {
            tracing::debug!("malloc kept its sliding mmap threshold");
        }
    }
}
