//! A peak-tracking allocator for tests that bound what a load may allocate. A test binary
//! installs it once and measures closures with [`peak_during`]:
//!
//! ```ignore
//! #[global_allocator]
//! static GLOBAL: mdeploy_testkit::alloc::Peak = mdeploy_testkit::alloc::Peak;
//! let (bytes, result) = mdeploy_testkit::alloc::peak_during(|| load(file));
//! ```
//!
//! The counters are process-wide: tests that measure must not run concurrently (hold a mutex).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

static CUR: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting live bytes and their high-water mark.
pub struct Peak;

unsafe impl GlobalAlloc for Peak {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let now = CUR.fetch_add(l.size(), Ordering::Relaxed) + l.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        CUR.fetch_sub(l.size(), Ordering::Relaxed);
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        if new > l.size() {
            let now = CUR.fetch_add(new - l.size(), Ordering::Relaxed) + (new - l.size());
            PEAK.fetch_max(now, Ordering::Relaxed);
        } else {
            CUR.fetch_sub(l.size() - new, Ordering::Relaxed);
        }
        System.realloc(p, l, new)
    }
}

/// Runs `f` and returns the most bytes that were live at once during it, above what was live
/// before it started, with its result. Only meaningful when [`Peak`] is the global allocator.
pub fn peak_during<R>(f: impl FnOnce() -> R) -> (usize, R) {
    let base = CUR.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let r = f();
    (PEAK.load(Ordering::Relaxed).saturating_sub(base), r)
}
