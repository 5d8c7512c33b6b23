//! `amx_qmmm_i8_16x16`: Intel AMX `tdpbusd` (Sapphire Rapids and later). One instruction
//! multiplies a 16-row × 64-byte A tile (u8) by a 16 × 64-byte B tile (i8, 16 k-quads × 16
//! columns × 4 bytes) into a 16 × 16 i32 tile: 16,384 multiply-adds, 256 times one
//! `vpdpbusd`. The B tile is exactly 16 consecutive quads of the quad-layout panel (`qgemm.rs`:
//! per k-quad one 64-byte row of 16 columns × 4 i8), and the A tile 16 rows read in place at
//! the row stride, so neither operand is repacked.
//!
//! Exact i32 sums (`tdpbusd` adds the four u8 × i8 products of a lane into its i32 with
//! wrap-around, no saturation; the sums never leave i32, QUANT.md), so the same result as the
//! `vpdpbusd` tile: the outputs keep their bits.
//!
//! Per call (16 rows, every panel): `ldtilecfg`, then per two panels `k / 64` steps of one A
//! tile load and two `tdpbusd`, `tilestored` of the sums into a 2 KiB buffer, the `k mod 64`
//! rest with `vpdpbusd` on those 16 rows, the columns stored; `tilerelease` at the end (no tile
//! state outlives the call). `KernelSet::qgemm` gives it only whole 16-row blocks read
//! in place; the rows after the last block (and the conv's gathered rows) run on `vpdpbusd`.
//!
//! Linux only: a process must ask the kernel for the AMX state (`arch_prctl(ARCH_REQ_XCOMP_PERM,
//! XFEATURE_XTILEDATA)`) before its first tile instruction, else it dies of SIGILL;
//! [`amx_int8_ready`] asks once and says whether it was granted.

use crate::qgemm::QNR;
use std::arch::asm;
use std::arch::x86_64::*;

pub(crate) const MR: usize = 16;

/// Whether this CPU has AMX-TILE and AMX-INT8 and the kernel granted this process the tile
/// state (asked once per process).
pub(crate) fn amx_int8_ready() -> bool {
    static READY: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *READY.get_or_init(|| {
        if !(is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vnni")) {
            return false;
        }
        // CPUID.(EAX=7, ECX=0):EDX bit 24 AMX-TILE, bit 25 AMX-INT8.
        // Leaf 7 exists on every CPU with AVX-512.
        let edx = __cpuid_count(7, 0).edx;
        if edx & (3 << 24) != 3 << 24 {
            return false;
        }
        request_tile_state()
    })
}

#[cfg(target_os = "linux")]
fn request_tile_state() -> bool {
    const SYS_ARCH_PRCTL: usize = 158;
    const ARCH_REQ_XCOMP_PERM: usize = 0x1023;
    const XFEATURE_XTILEDATA: usize = 18;
    let ret: isize;
    // SAFETY: arch_prctl only changes this process's permitted XSAVE features; syscall
    // clobbers rcx and r11.
    unsafe {
        asm!("syscall", inlateout("rax") SYS_ARCH_PRCTL as isize => ret, in("rdi") ARCH_REQ_XCOMP_PERM,
             in("rsi") XFEATURE_XTILEDATA, lateout("rcx") _, lateout("r11") _, options(nostack));
    }
    ret == 0
}

#[cfg(not(target_os = "linux"))]
fn request_tile_state() -> bool {
    false
}

/// The tile configuration (palette 1): tmm0 and tmm3 the 16 × 16 i32 sums of two panels, tmm1
/// A (16 rows × 64 bytes), tmm2 and tmm4 the two panels' B tiles (16 quads × 64 bytes).
#[repr(C, align(64))]
struct TileCfg([u8; 64]);

const fn tile_cfg() -> TileCfg {
    let mut c = [0u8; 64];
    c[0] = 1; // palette
    let mut t = 0;
    while t < 5 {
        // colsb (u16, little-endian) at 16 + 2t, rows at 48 + t.
        c[16 + 2 * t] = 64;
        c[48 + t] = 16;
        t += 1;
    }
    TileCfg(c)
}
static CFG: TileCfg = tile_cfg();

/// One 16-row block across all panels, two panels per pass (one A tile load per two
/// `tdpbusd`); the tile configuration is loaded once per block and released at the end.
///
/// # Safety
/// [`amx_int8_ready`] returned true (AMX, AVX-512F/VNNI, tile state granted); 16 rows of
/// `4 · words` bytes at `a` (row stride `4 · rs` bytes); `n.div_ceil(16)` panels of
/// `panel_bytes >= 64 · words` bytes at `b`; C 16 rows × n columns at `c` (stride `ldc`).
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512vnni")]
pub(crate) unsafe fn amx_qmmm_i8_16x16(words: usize, a: *const i32, rs: usize, b: *const u8, panel_bytes: usize, n: usize, c: *mut i32, ldc: usize) {
    let steps = words / 16;
    let stride_a = 4 * rs; // bytes between A rows
    let panels = n.div_ceil(QNR);
    let mut sums = Sums([0; 2 * MR * QNR]);
    asm!("ldtilecfg [{cfg}]", cfg = in(reg) CFG.0.as_ptr(), options(nostack, preserves_flags, readonly));
    let mut p = 0;
    while p < panels {
        let two = p + 1 < panels;
        let (b0, b1) = (b.add(p * panel_bytes), b.add((p + usize::from(two)) * panel_bytes));
        asm!("tilezero tmm0", "tilezero tmm3", options(nostack, preserves_flags, nomem));
        for s in 0..steps {
            // With one panel left the second product repeats the first into tmm3, unread.
            asm!(
                "tileloadd tmm1, [{a} + {sa} * 1]",
                "tileloadd tmm2, [{b0} + {sb} * 1]",
                "tileloadd tmm4, [{b1} + {sb} * 1]",
                "tdpbusd tmm0, tmm1, tmm2",
                "tdpbusd tmm3, tmm1, tmm4",
                a = in(reg) a.add(16 * s),
                sa = in(reg) stride_a,
                b0 = in(reg) b0.add(s * 16 * 64),
                b1 = in(reg) b1.add(s * 16 * 64),
                sb = in(reg) 64usize,
                options(nostack, preserves_flags, readonly),
            );
        }
        asm!(
            "tilestored [{p} + {s} * 1], tmm0",
            "tilestored [{q} + {s} * 1], tmm3",
            p = in(reg) sums.0.as_mut_ptr(),
            q = in(reg) sums.0.as_mut_ptr().add(MR * QNR),
            s = in(reg) 64usize,
            options(nostack, preserves_flags),
        );
        for (h, bp) in [b0, b1].into_iter().enumerate().take(1 + usize::from(two)) {
            let col0 = (p + h) * QNR;
            let cols = QNR.min(n - col0);
            rest(words, steps * 16, a, rs, bp, &sums.0[h * MR * QNR..], c.add(col0), ldc, cols);
        }
        p += 2;
    }
    asm!("tilerelease", options(nostack, preserves_flags, nomem));
}

/// The k-quads from `from` to `words` on `vpdpbusd`, added to one panel's tile sums, and the
/// `cols` columns stored.
#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "avx512f,avx512vnni")]
unsafe fn rest(words: usize, from: usize, a: *const i32, rs: usize, b: *const u8, sums: &[i32], c: *mut i32, ldc: usize, cols: usize) {
    let mask: __mmask16 = if cols == QNR { 0xFFFF } else { ((1u32 << cols) - 1) as __mmask16 };
    for r in 0..MR {
        let mut acc = _mm512_loadu_si512(sums[r * QNR..].as_ptr() as *const _);
        let ar = a.add(r * rs);
        for g in from..words {
            let bv = _mm512_loadu_si512(b.add(g * 64) as *const _);
            acc = _mm512_dpbusd_epi32(acc, _mm512_set1_epi32(ar.add(g).read_unaligned()), bv);
        }
        _mm512_mask_storeu_epi32(c.add(r * ldc), mask, acc);
    }
}

#[repr(C, align(64))]
struct Sums([i32; 2 * MR * QNR]);
