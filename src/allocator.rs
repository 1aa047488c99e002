//! How the process's allocator treats the large, short-lived buffers of libtorch's
//! CPU tensors.
//!
//! libtorch's CPU allocator is plain `posix_memalign`/`free`, and glibc serves every
//! block above its mmap threshold (128 KiB, raised dynamically up to 32 MiB) with a
//! fresh `mmap` and returns it with `munmap` on free; freed memory at the top of
//! the heap is also given back (`M_TRIM_THRESHOLD`). A training step allocates and
//! frees the same activations, attention scores and gradients every step, so each
//! step pays the kernel to map, zero (page fault by page fault) and unmap them
//! again: measured on the 2-core dev machine, the Music Transformer's relative
//! attention spent over half of its time there (`docs/performance.md`, "Faster CPU
//! training"). [`retain_freed_memory`] turns both off, so freed blocks stay in the
//! heap and the next step reuses them. What is computed does not change; the
//! process keeps the memory of its peak until it exits.

/// Serve large blocks from the heap (no `mmap`) and never trim it, so that
/// freed tensor memory is reused instead of being returned to the kernel and
/// faulted in again. Called first thing in `main`; a no-op except on glibc.
pub fn retain_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only changes glibc's allocation parameters; both are
    // documented settings and valid at any time.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX);
    }
}
