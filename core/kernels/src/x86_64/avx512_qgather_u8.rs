//! `avx512_qgather_u8_rows`: a gathered convolution's rows copied into one contiguous u8 panel,
//! so the AMX tile (`amx_qmmm_i8.rs`), which loads 16 rows at one stride, can read them. The
//! `vpdpbusd` tiles broadcast each gathered word straight from the input instead
//! (`avx512vnni_qconvpool_i8.rs`); a tile load cannot, hence this copy.
//!
//! A conv's gathered words come in runs of consecutive bytes (one run per kernel row: `kw · C`
//! bytes rounded up to 4, `runtime/src/exec/qconv.rs`), so a row is a few runs of 64-byte
//! loads and stores, the last load of each run masked (a masked-off byte is never read, so
//! nothing past the run is read; the stores are whole, see the function). Plain byte copies: the sums are the same bits as the tiles that
//! read in place.

use std::arch::x86_64::*;

/// Row `r` of `panel` (at byte `r · kp`) is, run after run, the `len` bytes at `x + base[r] +
/// off` for each `(off, len)` of `runs`, written one after the other from the row's start.
///
/// # Safety
/// AVX-512F and BW; for every row and run, `x + base[r] + off .. + len` readable; the runs'
/// lengths sum to at most `kp`; `panel` writable for `base.len() · kp + 64` bytes (each
/// run's last store may reach 63 bytes past it).
#[target_feature(enable = "avx512f,avx512bw")]
pub(crate) unsafe fn avx512_qgather_u8_rows(x: *const u8, base: &[u32], runs: &[(u32, u32)], panel: *mut u8, kp: usize) {
    for (r, &b) in base.iter().enumerate() {
        let src = x.add(b as usize);
        let mut dst = panel.add(r * kp);
        for &(off, len) in runs {
            // Whole 64-byte stores: the bytes past the run are rewritten by the next run
            // (or row) or lie in the caller's slack; only the loads are masked (x may end
            // right after the run).
            let (s, len) = (src.add(off as usize), len as usize);
            let mut i = 0;
            while i < len {
                let left = len - i;
                let v = if left >= 64 { _mm512_loadu_si512(s.add(i) as *const _) } else { _mm512_maskz_loadu_epi8((1u64 << left) - 1, s.add(i) as *const i8) };
                _mm512_storeu_si512(dst.add(i) as *mut _, v);
                i += 64;
            }
            dst = dst.add(len);
        }
    }
}
