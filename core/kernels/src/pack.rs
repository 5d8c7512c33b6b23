//! Packed operands: 64-byte aligned buffers, B packed into NR-column panels once, and the
//! A panel a micro-kernel reads (direct rows, a packed copy, or indirect rows for convolutions).

use crate::gemm::MatRef;

/// K is cut into blocks of this many steps so that one A panel (`MR × KC`) and one B panel
/// (`KC × NR`) stay in L1 (6·256·4 = 6 KiB and 16·256·4 = 16 KiB for AVX2) while the tile's
/// accumulators stay in registers. See KERNELS.md.
pub(crate) const KC: usize = 256;

/// Bytes to which packed buffers are aligned: a cache line, so NR-wide loads never split one.
pub(crate) const ALIGN_FLOATS: usize = 16;

/// An `f32` buffer whose start is 64-byte aligned (allocated once, never grown by the kernels).
/// `Clone` is written out: a derived one would copy `off` into a new allocation whose own
/// offset to the next 64-byte boundary differs, so the clone would start misaligned.
#[derive(Debug, Default)]
pub struct AlignedBuf {
    pub(crate) raw: Vec<f32>,
    pub(crate) off: usize,
    pub(crate) len: usize,
}

impl AlignedBuf {
    pub fn zeros(len: usize) -> AlignedBuf {
        let raw = vec![0.0f32; len + ALIGN_FLOATS];
        let addr = raw.as_ptr() as usize;
        let off = ((64 - addr % 64) % 64) / 4;
        AlignedBuf { raw, off, len }
    }
    pub fn as_slice(&self) -> &[f32] {
        &self.raw[self.off..self.off + self.len]
    }
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.raw[self.off..self.off + self.len]
    }
}

impl Clone for AlignedBuf {
    fn clone(&self) -> AlignedBuf {
        let mut c = AlignedBuf::zeros(self.len);
        c.as_mut_slice().copy_from_slice(self.as_slice());
        c
    }
}

/// A `k × n` matrix packed for a [`KernelSet`]: `ceil(n / NR)` panels, each `k × NR`,
/// k-major (the NR values of one k step are contiguous), the last panel zero-padded.
/// The same layout feeds both the GEMM micro-kernel and the batch-1 GEMV kernel.
#[derive(Clone, Debug)]
pub struct PackedB {
    pub(crate) buf: AlignedBuf,
    pub(crate) k: usize,
    pub(crate) n: usize,
    pub(crate) nr: usize,
}

impl PackedB {
    pub fn k(&self) -> usize {
        self.k
    }
    pub fn n(&self) -> usize {
        self.n
    }
    /// Columns rounded up to whole panels.
    pub fn n_padded(&self) -> usize {
        self.n.div_ceil(self.nr) * self.nr
    }
    pub fn data(&self) -> &[f32] {
        self.buf.as_slice()
    }
}

/// Pack `B[k × n]` (any strides) into `dst`, NR-column panels, k-major, zero-padded.
pub(crate) fn pack_b_into(k: usize, n: usize, nr: usize, b: &MatRef, dst: &mut [f32]) {
    let panels = n.div_ceil(nr);
    for p in 0..panels {
        let col0 = p * nr;
        let cols = nr.min(n - col0);
        let panel = &mut dst[p * k * nr..(p + 1) * k * nr];
        for (kk, row) in panel.chunks_exact_mut(nr).enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                *v = if j < cols { b.at(kk, col0 + j) } else { 0.0 };
            }
        }
    }
}

/// Where the micro-kernel reads one MR-row panel of A from.
pub enum APanel<'a> {
    /// MR full rows straight from the caller's matrix: row r at `data[r * rs..]`, `k` values
    /// each (no copy: the common case for row-major activations).
    Direct { data: &'a [f32], rs: usize },
    /// The panel was written into the driver's scratch, MR rows of `k` values, row-major.
    Packed,
    /// Indirect (convolution without im2col): element `(r, p)` at `rows[r] + offs[p]`. The
    /// producer guarantees every `rows[r]` (r < MR) is valid at every offset in `offs[..k]`.
    Indirect {
        rows: [*const f32; MAX_MR],
        offs: &'a [u32],
    },
}

/// Largest MR of any kernel set (the indirect panel's pointer array).
pub const MAX_MR: usize = 24;
#[cfg(target_arch = "x86_64")]
const _: () = assert!(
    crate::x86_64::avx512_mmm_f32::MR <= MAX_MR
        && crate::x86_64::avx512_mmm_f32::MR_NARROW <= MAX_MR
        && crate::x86_64::avx2_mmm_f32::MR <= MAX_MR
);

/// The A panel for rows `row0..row0+MR` of `A[m × k]` (any strides): direct when the rows are
/// contiguous and all MR exist, else copied into `dst` (`MR × k`, zero rows past `m`).
pub fn a_panel<'a>(
    m: usize,
    k: usize,
    mr: usize,
    row0: usize,
    a: &MatRef<'a>,
    dst: &mut [f32],
) -> APanel<'a> {
    let rows = mr.min(m - row0);
    if a.cs == 1 && rows == mr {
        return APanel::Direct {
            data: &a.data[row0 * a.rs..],
            rs: a.rs,
        };
    }
    for r in 0..mr {
        let row = &mut dst[r * k..(r + 1) * k];
        if r >= rows {
            row.fill(0.0);
        } else if a.cs == 1 {
            let base = (row0 + r) * a.rs;
            row.copy_from_slice(&a.data[base..base + k]);
        } else {
            for (p, v) in row.iter_mut().enumerate() {
                *v = a.at(row0 + r, p);
            }
        }
    }
    APanel::Packed
}


#[cfg(test)]
mod tests {
    use super::AlignedBuf;

    // A derived Clone kept the original's offset inside a new allocation; with malloc's 16-byte
    // alignment that is off by 16, 32 or 48 bytes in most of these clones.
    #[test]
    fn clones_stay_aligned_and_equal() {
        let mut keep = Vec::new();
        for len in 1..200 {
            let mut b = AlignedBuf::zeros(len);
            for (i, v) in b.as_mut_slice().iter_mut().enumerate() {
                *v = i as f32 * 0.5 - len as f32;
            }
            let c = b.clone();
            assert_eq!(c.as_slice().as_ptr() as usize % 64, 0, "clone of a {len}-float buffer");
            assert_eq!(c.as_slice(), b.as_slice());
            keep.push((b, c)); // keep them alive so the allocator hands out new addresses
        }
    }
}
