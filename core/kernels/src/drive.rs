//! The drivers behind [`KernelSet`]: blocking over KC, packing A panels, calling the
//! micro-kernel per tile, GEMV over packed panels, and the checked entry points for pooling
//! and depthwise convolution. See KERNELS.md for the blocking.

use std::cell::RefCell;

use crate::gemm::MatRef;
use crate::geometry::{PoolGeom, Window};
use crate::pack::*;
use crate::tile::Tile;
use crate::KernelSet;

thread_local! {
    /// Scratch for the public `gemm` (training path): packed B then one packed A panel.
    static GEMM_SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// Indices of the non-zero inputs for the sparse-input GEMV.
    #[cfg(not(target_os = "wasi"))]
    static NONZERO_ROWS: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
    /// The same, initialised lazily in the wasi build: a const-initialised `Vec` has a non-zero
    /// (dangling) pointer, which puts the static in `.data`, on a page no other code of a
    /// request writes; lazily it lives in `.bss`, on the page std's own thread-locals already
    /// write. In the wasi:http component every request starts from a copy-on-write snapshot and
    /// each page it writes is a page fault: one fewer per sparse-input request (worker/README.md,
    /// session 19). Not in the browser package: the lazy check costs it 132 bytes (zlib level 9).
    #[cfg(target_os = "wasi")]
    static NONZERO_ROWS: RefCell<Vec<u32>> = RefCell::new(Vec::new());
}

impl KernelSet {
    #[inline(never)] // load path: its own wasm function, so V8 optimizes this packing loop alone (wasm/DESIGN.md, "Cold start")
    pub fn pack_b(&self, k: usize, n: usize, b: MatRef) -> PackedB {
        b.check("B", k, n);
        let mut buf = AlignedBuf::zeros(k * n.div_ceil(self.nr) * self.nr);
        pack_b_into(k, n, self.nr, &b, buf.as_mut_slice());
        PackedB {
            buf,
            k,
            n,
            nr: self.nr,
        }
    }

    /// `y[n] = x[k] · B (+ bias) (ReLU)`: one row against pre-packed weights, streaming each
    /// panel once. Panics (caller bug) if `b` was packed by another set or lengths disagree.
    pub fn gemv(&self, x: &[f32], b: &PackedB, bias: Option<&[f32]>, relu: bool, y: &mut [f32]) {
        assert_eq!(b.nr, self.nr, "gemv: B was packed for another kernel set");
        assert!(
            x.len() >= b.k && y.len() >= b.n,
            "gemv: x or y shorter than B's k or n"
        );
        if let Some(bias) = bias {
            assert!(bias.len() >= b.n, "gemv: bias shorter than n");
        }
        self.gemv_unchecked(x, b.data(), b.k, b.n, bias, relu, y);
    }

    /// Like [`KernelSet::gemv`] but on a raw packed slice; lengths checked by the caller.
    pub fn gemv_unchecked(
        &self,
        x: &[f32],
        b: &[f32],
        k: usize,
        n: usize,
        bias: Option<&[f32]>,
        relu: bool,
        y: &mut [f32],
    ) {
        let nr = self.nr;
        let panels = n.div_ceil(nr);
        assert!(x.len() >= k && y.len() >= n && b.len() >= panels * k * nr);
        let x = &x[..k];
        // Inputs that are mostly exact zeros (a digit is ~80 % background, a ReLU output about
        // half) only need the weight rows of their non-zero entries. Skipping 0·w terms changes
        // nothing but the summation order: weights are finite (Model::validate).
        let nnz = x.iter().filter(|&&v| v != 0.0).count();
        if nnz * 3 <= k * 2 {
            NONZERO_ROWS.with(|cell| {
                let mut rows = cell.borrow_mut();
                // Grown to the whole k once, so no later input can make it grow again (no
                // allocation in steady state, see tests/plan_alloc.rs).
                if rows.len() < k {
                    rows.resize(k, 0);
                }
                // Branch-free compaction: every index is written, the count advances only
                // past non-zeros. A ReLU output's zero pattern is irregular, so the former
                // `filter` mispredicted about every other input: it was ~11 % of the trained
                // CNN's batch-1 time (perf, KERNELS.md "Batch 1"), for a list of 512 entries.
                let list = &mut rows[..k];
                let mut cnt = 0usize;
                for (i, &v) in x.iter().enumerate() {
                    list[cnt] = i as u32; // cnt <= i < k
                    cnt += (v != 0.0) as usize;
                }
                debug_assert_eq!(cnt, nnz);
                self.gemv_panels(cnt, list.as_ptr(), x, b, k, n, bias, relu, y);
            });
        } else {
            self.gemv_panels(k, std::ptr::null(), x, b, k, n, bias, relu, y);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn gemv_panels(
        &self,
        count: usize,
        rows: *const u32,
        x: &[f32],
        b: &[f32],
        k: usize,
        n: usize,
        bias: Option<&[f32]>,
        relu: bool,
        y: &mut [f32],
    ) {
        let nr = self.nr;
        for p in 0..n.div_ceil(nr) {
            let cols = nr.min(n - p * nr);
            let bias_ptr = match bias {
                Some(bv) => bv[p * nr..p * nr + cols].as_ptr(),
                None => std::ptr::null(),
            };
            // SAFETY: the caller asserted x, y and b lengths for k rows and n columns; `rows`
            // is null or holds `count` indices < k; the set's constructor checked the CPU.
            unsafe {
                (self.gemv)(
                    count,
                    rows,
                    x.as_ptr(),
                    b.as_ptr().add(p * k * nr),
                    bias_ptr,
                    y.as_mut_ptr().add(p * nr),
                    cols,
                    relu,
                )
            };
        }
    }

    /// Max pooling of one HWC sample. Panics (caller bug) if the slices do not fit `g`.
    pub fn maxpool_hwc(&self, src: &[f32], g: &PoolGeom, dst: &mut [f32]) {
        assert!(
            src.len() >= g.in_len() && dst.len() >= g.out_len(),
            "maxpool: slices too short"
        );
        assert!(
            g.kh >= 1
                && g.kw >= 1
                && (g.oh - 1) * g.sh + g.kh <= g.h
                && (g.ow - 1) * g.sw + g.kw <= g.w
        );
        // SAFETY: geometry and lengths checked above; the set's constructor checked the CPU.
        unsafe { (self.maxpool)(src, dst, g) }
    }

    /// Depthwise convolution (`groups == C == out_c`) of one HWC sample: `w` is `[kh·kw × C]`
    /// (tap-major, channels innermost), the output clamped to `[lo, hi]` (ReLU, ReLU6 or none).
    /// Panics (caller bug) if the slices do not fit `g`.
    #[allow(clippy::too_many_arguments)]
    pub fn dwconv_hwc(&self, src: &[f32], w: &[f32], bias: &[f32], dst: &mut [f32], g: &Window, lo: f32, hi: f32) {
        let c = g.c;
        assert!(
            src.len() >= g.h * g.w * c
                && w.len() >= g.kh * g.kw * c
                && bias.len() >= c
                && dst.len() >= g.oh * g.ow * c,
            "dwconv: slices too short for the window"
        );
        // Every tap the kernels read passes `tap()`, i.e. lies inside the h × w input; the
        // output pixels are the oh × ow checked above.
        // SAFETY: lengths checked above; the set's constructor checked the CPU.
        unsafe { (self.dwconv)(src, w, bias, dst, g, lo, hi) }
    }

    /// `C[m×n] (+)= A[m×k] · B[k×n]` with any strides, through this set's micro-kernel.
    /// See [`gemm`].
    pub fn gemm(
        &self,
        m: usize,
        n: usize,
        k: usize,
        a: MatRef,
        b: MatRef,
        c: &mut [f32],
        ldc: usize,
        accumulate: bool,
    ) {
        if m == 0 || n == 0 {
            return;
        }
        assert!(ldc >= n, "gemm: ldc {ldc} < n {n}");
        let c_needed = (m - 1).checked_mul(ldc).and_then(|x| x.checked_add(n));
        assert!(
            matches!(c_needed, Some(need) if need <= c.len()),
            "gemm: C needs {c_needed:?} values for {m}x{n} with ldc {ldc}, got {}",
            c.len()
        );
        if k == 0 {
            if !accumulate {
                for i in 0..m {
                    c[i * ldc..i * ldc + n].fill(0.0);
                }
            }
            return;
        }
        a.check("A", m, k);
        b.check("B", k, n);
        let (mr, nr) = (self.mr, self.nr);
        let b_len = k * n.div_ceil(nr) * nr;
        let need = b_len + mr * k + 2 * ALIGN_FLOATS;
        let mut run = |scratch: &mut Vec<f32>| {
            if scratch.len() < need {
                scratch.resize(need, 0.0);
            }
            let off = ((64 - scratch.as_ptr() as usize % 64) % 64) / 4;
            let (bp, rest) = scratch[off..].split_at_mut(b_len);
            pack_b_into(k, n, nr, &b, bp);
            let ap_off = ((64 - rest.as_ptr() as usize % 64) % 64) / 4;
            let ap = &mut rest[ap_off..ap_off + mr * k];
            self.drive(
                m,
                n,
                k,
                ap,
                |row0, dst| a_panel(m, k, mr, row0, &a, dst),
                bp,
                None,
                None,
                c,
                ldc,
                accumulate,
            );
        };
        GEMM_SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut s) => run(&mut s),
            // Only reachable if a kernel re-entered gemm on this thread; stay correct anyway.
            Err(_) => run(&mut Vec::new()),
        });
    }

    /// The blocked driver shared by `gemm`, Dense and Conv2d: for each MR-row panel of A (given
    /// by `panel(row0, scratch)`, either rows of the source or rows written into `apanel`,
    /// `MR × k`), for each KC block, for each NR panel of the pre-packed `bp`, run the
    /// micro-kernel. Bias and the clamp `[lo, hi]` (ReLU, ReLU6) are applied by the
    /// micro-kernel's epilogue on the last KC block only. Allocates nothing.
    #[allow(clippy::too_many_arguments)]
    pub fn drive<'a>(
        &self,
        m: usize,
        n: usize,
        k: usize,
        apanel: &mut [f32],
        mut panel: impl FnMut(usize, &mut [f32]) -> APanel<'a>,
        bp: &[f32],
        bias: Option<&[f32]>,
        clamp: Option<(f32, f32)>,
        c: &mut [f32],
        ldc: usize,
        accumulate: bool,
    ) {
        // Variant by variant, so that a direct or packed panel (what `a_panel` returns) writes
        // its two fields instead of moving the whole 216-byte enum with a `memcpy` call.
        let put = |row0: usize, dst: &mut [f32], out: &mut APanel<'a>| match panel(row0, dst) {
            APanel::Direct { data, rs } => *out = APanel::Direct { data, rs },
            APanel::Packed => *out = APanel::Packed,
            p => *out = p,
        };
        self.drive_into(m, n, k, apanel, put, bp, bias, clamp, c, ldc, accumulate)
    }

    /// [`KernelSet::drive`] with the panel written in place: `panel(row0, scratch, out)` sets
    /// `*out` (which holds the previous panel, `APanel::Packed` at first). An indirect
    /// producer can then overwrite the row pointers of the panel it already wrote instead of
    /// returning a new 216-byte `APanel`, which LLVM moved with a `memcpy` call per panel
    /// (~5 % of the CNN at batch 1024: 24 panels per digit in its first conv).
    #[allow(clippy::too_many_arguments)]
    pub fn drive_into<'a>(
        &self,
        m: usize,
        n: usize,
        k: usize,
        apanel: &mut [f32],
        mut panel: impl FnMut(usize, &mut [f32], &mut APanel<'a>),
        bp: &[f32],
        bias: Option<&[f32]>,
        clamp: Option<(f32, f32)>,
        c: &mut [f32],
        ldc: usize,
        accumulate: bool,
    ) {
        let (mr, nr) = (self.mr, self.nr);
        if m == 0 || n == 0 {
            return;
        }
        let panels_n = n.div_ceil(nr);
        // Every pointer below stays inside these bounds (checked once, not per tile).
        assert!(
            ldc >= n && c.len() >= (m - 1) * ldc + n,
            "drive: C too short"
        );
        assert!(
            apanel.len() >= mr * k && bp.len() >= panels_n * nr * k,
            "drive: packed buffers too short"
        );
        if let Some(bv) = bias {
            assert!(bv.len() >= n, "drive: bias too short");
        }
        if k == 0 {
            // No product: C = (accumulate ? C : 0) + bias, then the clamp.
            for i in 0..m {
                for j in 0..n {
                    let mut v = if accumulate { c[i * ldc + j] } else { 0.0 };
                    if let Some(bv) = bias {
                        v += bv[j];
                    }
                    c[i * ldc + j] = match clamp {
                        Some((lo, hi)) => v.max(lo).min(hi),
                        None => v,
                    };
                }
            }
            return;
        }
        // Equal KC blocks (784 → 4 × 196, not 3 × 256 + 16): no tiny tail block whose C
        // load/store would cost as much as its arithmetic.
        let kblocks = k.div_ceil(KC);
        let kc_len = k.div_ceil(kblocks);
        let cptr = c.as_mut_ptr();
        let mut pan = APanel::Packed;
        for row0 in (0..m).step_by(mr) {
            let rows = mr.min(m - row0);
            // Matched by reference: moving the indirect panel's 24 row pointers into a tuple
            // was a `memcpy` call per panel.
            panel(row0, &mut apanel[..mr * k], &mut pan);
            let a = match &pan {
                APanel::Direct { data, rs } => {
                    assert!(
                        rows == mr && *rs >= k && data.len() >= (mr - 1) * rs + k,
                        "drive: direct A panel too short"
                    );
                    (data.as_ptr(), *rs, None)
                }
                APanel::Packed => (apanel.as_ptr(), k, None),
                APanel::Indirect { rows, offs } => {
                    assert!(offs.len() >= k, "drive: offset table shorter than k");
                    (std::ptr::null(), 0, Some((rows, *offs)))
                }
            };
            let mut k0 = 0;
            while k0 < k {
                let kc = kc_len.min(k - k0);
                let last = k0 + kc == k;
                for p in 0..panels_n {
                    let col0 = p * nr;
                    let cols = nr.min(n - col0);
                    let tile = Tile {
                        // SAFETY: row0 < m, col0 < n, and C covers (m-1)*ldc + n.
                        c: unsafe { cptr.add(row0 * ldc + col0) },
                        ldc,
                        rows,
                        cols,
                        accumulate: accumulate || k0 > 0,
                        bias: match (bias, last) {
                            (Some(bv), true) => bv[col0..].as_ptr(),
                            _ => std::ptr::null(),
                        },
                        clamp: clamp.is_some() && last,
                        lo: clamp.map_or(0.0, |c| c.0),
                        hi: clamp.map_or(0.0, |c| c.1),
                    };
                    // SAFETY: the A rows hold k values at stride rsa (asserted above), B panel p
                    // holds k*NR values from p*k*NR; the tile lies inside C (asserted above);
                    // full tiles read NR bias values only when cols == NR, covered by bias >= n.
                    let bpanel = unsafe { bp.as_ptr().add(p * k * nr + k0 * nr) };
                    match a {
                        (aptr, rsa, None) => unsafe {
                            (self.mmm)(kc, aptr.add(k0), rsa, bpanel, &tile)
                        },
                        // SAFETY (indirect): the producer vouched for rows × offs (see APanel).
                        (_, _, Some((rows, offs))) => unsafe {
                            (self.conv)(kc, rows.as_ptr(), offs.as_ptr().add(k0), bpanel, &tile)
                        },
                    }
                }
                k0 += kc;
            }
        }
    }
}

