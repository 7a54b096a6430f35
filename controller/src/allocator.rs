//! glibc malloc's settings for this process, and handing freed memory back after a restart's
//! start-up check (docs/design.md, "What the controller keeps").
//!
//! glibc's defaults suit short programs more than a controller whose memory is one long-lived
//! cache plus passing bursts (a restart's list pages and its Secrets' metadata):
//! - its mmap threshold rises to the size of every large block freed, up to 32 MiB. Once a
//!   large block (a grown hash table, a decoded list page) is freed, every later one up to
//!   that size comes from the heap, and the heap keeps what is freed resident;
//! - it starts up to eight arenas per core, each keeping its own freed memory.
//!
//! Measured at 10,000 SealedSecrets (`tests/bench/controllers.sh 10000`, real control plane,
//! one run each, the same build otherwise): after a warm restart, 63 MiB stayed resident with
//! glibc's defaults and 42 MiB with these settings; the restart's peak fell from 64 to 53 MiB,
//! the cold start's from 42 to 41. mimalloc instead (tried): 42.6 MiB idle against glibc's
//! 18.2, and higher peaks at both starts. No crate wraps these glibc calls, hence this
//! module's `unsafe`, the only one in the workspace.
#![allow(unsafe_code)]

/// Blocks at least this large are mapped from the kernel and returned to it when freed,
/// whatever was freed before. glibc's own starting threshold is 128 KiB.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 256 * 1024;

/// Fixes the mmap threshold and caps the arenas at one per core. Call before any thread is
/// started. `false`: glibc refused (the process runs with its defaults). Elsewhere than on
/// glibc it does nothing.
pub fn tune(cores: usize) -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let arenas = libc::c_int::try_from(cores.max(1)).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only changes the allocator's parameters (under its own lock); it
        // takes no pointer and any value is accepted or refused with 0.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
                && libc::mallopt(libc::M_ARENA_MAX, arenas) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = cores;
        true
    }
}

/// Returns the freed memory of every arena to the kernel, once a burst is over (the start-up
/// check). It locks each arena in turn, briefly. Elsewhere than on glibc it does nothing.
pub fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointer; 0 asks it to keep no slack at the heap's top.
    unsafe {
        libc::malloc_trim(0);
    }
}
