//! A counting global allocator for the allocation tests (`feature = "alloc-count"`): the system
//! allocator, counting what the calling thread allocates while [`allocations`] runs. A test binary
//! installs it with `#[global_allocator] static A: CountingAllocator = CountingAllocator;`; the
//! other tests of that binary pay one thread-local check per allocation.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The system allocator, counting the calling thread's allocations while [`allocations`] runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAllocator;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static BYTES: Cell<u64> = const { Cell::new(0) };
    static CALLS: Cell<u64> = const { Cell::new(0) };
}

fn note(size: usize) {
    // `try_with`: thread-locals may be gone while a thread shuts down.
    let _ = COUNTING.try_with(|c| {
        if c.get() {
            let _ = BYTES.try_with(|b| b.set(b.get() + size as u64));
            let _ = CALLS.try_with(|n| n.set(n.get() + 1));
        }
    });
}

// SAFETY: forwards every call unchanged to the system allocator; the bookkeeping touches only
// const-initialised thread-locals without destructors, which never allocate.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// What a closure allocated on its thread (reallocations count as calls, with their new size).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Allocated {
    /// Allocation calls.
    pub calls: u64,
    /// Bytes asked for.
    pub bytes: u64,
}

/// Runs `f` and returns its result and what it allocated on this thread (zero unless
/// [`CountingAllocator`] is the binary's global allocator).
pub fn allocations<T>(f: impl FnOnce() -> T) -> (T, Allocated) {
    BYTES.with(|b| b.set(0));
    CALLS.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    let r = f();
    COUNTING.with(|c| c.set(false));
    (r, Allocated { calls: CALLS.with(Cell::get), bytes: BYTES.with(Cell::get) })
}
