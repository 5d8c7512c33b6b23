//! The bump arena of the snapshot's init (`heap.rs`, `SnapshotAlloc`): blocks handed out in
//! the order they are asked for, each once, never reused. Plain address arithmetic over a range
//! the caller owns, so it is tested natively; only the wasi build uses it as an allocator.

/// A range `[lo, end)` of which `[lo, next)` is handed out.
#[derive(Debug)]
pub struct Arena {
    lo: usize,
    next: usize,
    end: usize,
}

impl Arena {
    /// An arena with no room: every request is refused (the caller falls back to `malloc`).
    pub const fn empty() -> Arena {
        Arena { lo: 0, next: 0, end: 0 }
    }

    /// The `len` bytes at `lo` (non-zero), which the caller owns for good.
    pub fn new(lo: usize, len: usize) -> Arena {
        Arena { lo, next: lo, end: lo.saturating_add(len) }
    }

    /// Whether `p` was (or could be) handed out by this arena.
    pub fn contains(&self, p: usize) -> bool {
        (self.lo..self.end).contains(&p)
    }

    /// Bytes handed out so far.
    #[cfg(test)]
    pub fn used(&self) -> usize {
        self.next - self.lo
    }

    /// The next `size` bytes aligned to `align` (a power of two), or `None` when they do not fit.
    pub fn alloc(&mut self, size: usize, align: usize) -> Option<usize> {
        if self.lo == 0 {
            return None;
        }
        let at = self.next.checked_next_multiple_of(align)?;
        let end = at.checked_add(size).filter(|&e| e <= self.end)?;
        self.next = end;
        Some(at)
    }

    /// Grows or shrinks the block at `p` of `old` bytes to `new` bytes where it is, if it is the
    /// last block handed out and the arena has the room; else `false` (nothing changes).
    pub fn resize_last(&mut self, p: usize, old: usize, new: usize) -> bool {
        if !self.contains(p) || p.checked_add(old) != Some(self.next) {
            return false;
        }
        match p.checked_add(new).filter(|&e| e <= self.end) {
            // Shrinking keeps the bytes handed out: they may already be zero no more.
            Some(e) => {
                self.next = e.max(self.next);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Arena;

    #[test]
    fn blocks_come_in_order_aligned_and_disjoint() {
        let mut a = Arena::new(0x1000, 256);
        let b1 = a.alloc(10, 1).unwrap();
        let b2 = a.alloc(8, 8).unwrap();
        let b3 = a.alloc(1, 64).unwrap();
        assert_eq!(b1, 0x1000);
        assert_eq!(b2, 0x1010, "aligned up past the first block");
        assert_eq!(b3, 0x1040);
        assert!(b1 + 10 <= b2 && b2 + 8 <= b3);
        assert_eq!(a.used(), 0x41);
        assert!(a.contains(b3) && !a.contains(0x1000 + 256) && !a.contains(0xfff));
    }

    #[test]
    fn refuses_what_does_not_fit_and_keeps_serving_what_does() {
        let mut a = Arena::new(0x2000, 100);
        assert_eq!(a.alloc(101, 1), None);
        assert_eq!(a.alloc(60, 4), Some(0x2000));
        assert_eq!(a.alloc(41, 1), None, "60 + 41 > 100");
        assert_eq!(a.alloc(40, 1), Some(0x2000 + 60));
        assert_eq!(a.alloc(1, 1), None);
        assert_eq!(a.alloc(usize::MAX, 1), None, "no overflow");
        assert_eq!(Arena::new(0x2000, 100).alloc(1, usize::MAX / 2 + 1), None, "alignment past the end");
        assert_eq!(Arena::empty().alloc(1, 1), None);
    }

    #[test]
    fn only_the_last_block_resizes_in_place() {
        let mut a = Arena::new(0x3000, 64);
        let first = a.alloc(8, 8).unwrap();
        let last = a.alloc(8, 8).unwrap();
        assert!(!a.resize_last(first, 8, 16), "not the last block: would overlap the next one");
        assert!(a.resize_last(last, 8, 40));
        assert_eq!(a.used(), 48);
        assert!(!a.resize_last(last, 40, 57), "past the end");
        assert!(a.resize_last(last, 40, 8), "shrinking in place");
        assert_eq!(a.used(), 48, "shrinking hands nothing back");
        assert!(!a.resize_last(0x9000, 8, 16), "not from this arena");
    }
}
