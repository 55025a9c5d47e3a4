//! What `serve` needs to hold thousands of open connections (SSE streams): an open-file limit raised
//! from the soft limit it inherits (often 1,024) to the hard limit, and glibc's allocator told to
//! map buffers of 8 KiB and more on their own pages.

/// Allocations from this size up get pages of their own (glibc's `M_MMAP_THRESHOLD`).
///
/// Every HTTP/1 connection holds a read buffer and a header buffer of 8 KiB each, of which a few
/// hundred bytes are ever written. Packed in the heap, each buffer's chunk shares its last page with
/// the next chunk's header, so about 8 KiB of each stays resident; mapped on its own, only the first
/// page is (10,000 idle streams measured 22 KiB per stream before, 15 KiB after). The price is a
/// `mmap` per large allocation (big JSON answers), small next to writing them to a socket.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 8 * 1024;

/// Prepares this process to serve many connections; says what it could not do, never fails.
pub fn prepare_for_many_connections() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open-file limit"),
        Err(err) => tracing::warn!("cannot raise the open-file limit (each connection needs one): {err}"),
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets a parameter of glibc's allocator, under the allocator's own lock;
        // it is callable at any time from any thread and touches no memory of ours.
        let accepted = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) };
        if accepted != 1 {
            tracing::debug!("glibc refused M_MMAP_THRESHOLD={MMAP_THRESHOLD}");
        }
    }
}
