//! How the C allocator returns freed memory to the kernel.
//!
//! glibc hands blocks above a moving threshold (128 KiB to begin with) to the kernel as soon as they are freed,
//! and trims the heap's top beyond 128 KiB. A copy frees and allocates megabyte buffers many times a second
//! (Parquet pages, compressed pages, row batches), so the kernel unmapped them and zero-filled them again on
//! first touch: a fifth of a MySQL snapshot's system time went to those page faults. Keeping freed memory for
//! reuse (up to [`TRIM_THRESHOLD`] at the heap's top) saved about 0.3 CPU-seconds of 5.5 per 4M rows copied
//! (bench/mysql.py). The price is memory held after a peak, and peaks up to 30 MiB higher (a `--once` run's
//! 200,000 changes: 214–228 MiB against 183–201), well inside the 512 MiB the connectors are held to.

/// Blocks from this size up are mapped on their own and unmapped when freed: only buffers larger than any
/// the pipelines reuse.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: libc::c_int = 32 << 20;
/// Freed memory kept at the heap's top before it is given back.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: libc::c_int = 256 << 20;
/// Extra memory the heap grows by at once, so growing it again is rarer.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TOP_PAD: libc::c_int = 16 << 20;

/// Sets the thresholds above; call before any thread starts. Other allocators need nothing.
///
/// The project's one `unsafe` block: `mallopt` is a C function, and no maintained crate wraps it.
#[allow(unsafe_code)]
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters, called from main before other threads exist.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
        libc::mallopt(libc::M_TOP_PAD, TOP_PAD);
    }
}
