//! What every fuzz target links: an allocator that refuses any single allocation larger than
//! [`ALLOCATION_LIMIT`], so a decoder that sizes a buffer from a length the input claims fails the run
//! ("memory allocation of N bytes failed", an abort libFuzzer reports as a crash and saves the input of).
//!
//! libFuzzer's own `-malloc_limit_mb` (which `scripts/fuzz.sh` passes too) only works with a sanitizer's
//! malloc hooks, and the targets are built without a sanitizer (the project's crates forbid `unsafe`; a
//! sanitizer would need every crate rebuilt with it), so the limit is enforced here.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};

/// The largest allocation a decoder may make for an input of at most a few hundred KiB: what libFuzzer's
/// `-malloc_limit_mb` is set to by `scripts/fuzz.sh`.
pub const ALLOCATION_LIMIT: usize = 256 << 20;

struct Limited;

// SAFETY: forwards to the system allocator unchanged, or returns null (an allocation failure, which callers
// must handle) for sizes over the limit.
unsafe impl GlobalAlloc for Limited {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > ALLOCATION_LIMIT { std::ptr::null_mut() } else { unsafe { System.alloc(layout) } }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > ALLOCATION_LIMIT { std::ptr::null_mut() } else { unsafe { System.alloc_zeroed(layout) } }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > ALLOCATION_LIMIT {
            std::ptr::null_mut()
        } else {
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }
}

#[global_allocator]
static ALLOCATOR: Limited = Limited;
