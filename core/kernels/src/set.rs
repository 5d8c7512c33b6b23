//! [`KernelSet`]: the one dispatch table, one micro-kernel family per instruction set,
//! picked once. Its drivers (GEMM, GEMV, pooling, depthwise) are in `drive.rs`.

use std::sync::OnceLock;

use crate::bgemm::{BPackFn, BmmmFn};
use crate::qgemm::{QGatherMax, QLayout, QSkip, QmmmFn, QmmmGatherFn};
use crate::quant::{QEpiFn, QFakeFn, QQuantCheckFn, QQuantFn};
use crate::tile::{ConvFn, DwConvFn, GemvFn, MmmFn, PoolFn, SpmmFn};

/// The dispatch table: one micro-kernel family for one instruction set, chosen once.
///
/// Holding a `KernelSet` is the proof that the CPU supports its instructions: the only ways
/// to get one are [`KernelSet::generic`], [`KernelSet::best`] and the per-ISA constructors,
/// which check the CPU first. That is why the raw function pointers stay private.
#[derive(Clone, Copy)]
pub struct KernelSet {
    pub(crate) name: &'static str,
    pub(crate) mmm_name: &'static str,
    pub(crate) mr: usize,
    pub(crate) nr: usize,
    pub(crate) mmm: MmmFn,
    pub(crate) conv: ConvFn,
    pub(crate) gemv: GemvFn,
    pub(crate) maxpool: PoolFn,
    pub(crate) dwconv: DwConvFn,
    /// The Winograd transforms (`winograd.rs`), built for this set.
    pub(crate) wino_in: crate::winograd::WinoInFn,
    pub(crate) wino_out: crate::winograd::WinoOutFn,
    /// 5×5 stride-1 convolutions with at least this many (input, output) channels run through
    /// Winograd (`usize::MAX`: never). See [`KernelSet::winograd_from`].
    pub(crate) wino_min: (usize, usize),
    /// Sparse weights (`sparse.rs`): the block micro-kernel, its rows per block and its name.
    pub(crate) spmm: SpmmFn,
    pub(crate) spmm_nb: usize,
    pub(crate) spmm_name: &'static str,
    /// Block-sparse batch-1 Dense (`bsparse.rs`) and its name.
    pub(crate) bspmv: crate::bsparse::BspmvFn,
    pub(crate) bspmv_name: &'static str,
    /// Integer GEMM tile (`qgemm.rs`): MR rows × 16 columns, its operand layout and name.
    pub(crate) qmmm: QmmmFn,
    pub(crate) qmr: usize,
    pub(crate) qlayout: QLayout,
    pub(crate) qmmm_name: &'static str,
    /// The tile for weights that all lie in −64..=63 (`QLayout::Dot7`: one relaxed-SIMD dot
    /// per 16 products) and its MR, where the set has one; `qpack_b` picks it per matrix.
    pub(crate) qmmm7: Option<(QmmmFn, usize)>,
    /// The AMX tile (16 rows × 16 columns, `x86_64/amx_qmmm_i8.rs`) for the quad layout's
    /// whole 16-row blocks read in place, where the CPU and OS allow it; `qmmm` does the rest.
    pub(crate) qamx: Option<crate::qgemm::QAmxFn>,
    /// Zero-word skipping for the quad tiles read in place (`qgemm`), where the set has it.
    pub(crate) qskip: Option<QSkip>,
    /// The integer tile reading gathered A rows in place (`qgemm_gather`), where the set has
    /// one; the others gather into their packed panel.
    pub(crate) qgather: Option<QmmmGatherFn>,
    /// The gathering tiles with a max pool in their registers (`qgemm_gather_max`), where the
    /// set has them.
    pub(crate) qgmax: Option<QGatherMax>,
    /// The integer steps' epilogue and activation quantizer (`quant.rs`), built for this set.
    pub(crate) qepi: QEpiFn<f32>,
    pub(crate) qepi8: QEpiFn<u8>,
    pub(crate) qquant: QQuantFn,
    /// The quantizer that also checks its input is finite on the same read, where the set has
    /// one (the FMA builds, `quant::quantize_slice_fma`).
    pub(crate) qquantc: Option<QQuantCheckFn>,
    pub(crate) qfake: QFakeFn,
    /// Binary GEMM tile (`bgemm.rs`): MR rows × 8 columns of ±1 dot products, and its name.
    pub(crate) bmmm: BmmmFn,
    pub(crate) bmr: usize,
    pub(crate) bmmm_name: &'static str,
    /// The binary tile that writes bits (`bgemm_sign`), when the set has one for `bmmm`.
    pub(crate) bmmm_sign: Option<crate::bgemm::BmmmSignFn>,
    /// The binary layer's last epilogue fused with its quantizer (`bgemm.rs`, `BEpiQFn`), where
    /// the set has one.
    pub(crate) bepiq: Option<crate::bgemm::BEpiQFn>,
    /// Sign-packer of the binary steps' input (`bgemm.rs`), optionally through a fused affine.
    pub(crate) bpack: BPackFn,
    pub(crate) bpack_name: &'static str,
}

impl std::fmt::Debug for KernelSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KernelSet({}, {})", self.name, self.mmm_name)
    }
}


impl KernelSet {
    /// The portable reference kernels (`generic_mmm_f32_4x8`): always available.
    pub fn generic() -> KernelSet {
        KernelSet {
            name: "generic",
            mmm_name: "generic_mmm_f32_4x8",
            mr: crate::generic::generic_mmm_f32::MR,
            nr: crate::generic::generic_mmm_f32::NR,
            mmm: crate::generic::generic_mmm_f32::generic_mmm_f32_4x8,
            conv: crate::generic::generic_mmm_f32::generic_conv_f32_4x8,
            gemv: crate::generic::generic_gemv_f32::generic_gemv_f32_8,
            maxpool: crate::generic::generic_maxpool_f32::generic_maxpool_f32,
            dwconv: crate::generic::generic_dwconv_f32::generic_dwconv_f32,
            wino_in: crate::winograd::generic_wino_in_f32,
            wino_out: crate::winograd::generic_wino_out_f32,
            // Off: slower than the direct conv here (KERNELS.md, "Winograd"); the x86 sets turn it on.
            wino_min: (usize::MAX, usize::MAX),
            spmm: crate::generic::generic_spmm_f32::generic_spmm_f32_16,
            spmm_nb: crate::generic::generic_spmm_f32::NB,
            spmm_name: "generic_spmm_f32_16",
            bspmv: crate::generic::generic_bspmv_f32::generic_bspmv_f32,
            bspmv_name: "generic_bspmv_f32",
            qmmm: crate::generic::generic_qmmm_i8::generic_qmmm_i8_4x16,
            qmr: crate::generic::generic_qmmm_i8::MR,
            qlayout: QLayout::Quad,
            qmmm7: None,
            qamx: None,
            qskip: None,
            qmmm_name: "generic_qmmm_i8_4x16",
            qgather: None,
            qgmax: None,
            qepi: crate::quant::generic_qepilogue::<f32>,
            qepi8: crate::quant::generic_qepilogue::<u8>,
            qquant: crate::quant::generic_quantize,
            qquantc: None,
            qfake: crate::quant::generic_fake_quantize,
            bmmm: crate::generic::generic_bmmm_b1::generic_bmmm_b1_4x8,
            bmr: crate::generic::generic_bmmm_b1::MR,
            bmmm_name: "generic_bmmm_b1_4x8",
            bmmm_sign: None,
            bepiq: None,
            bpack: crate::generic::generic_bpack_f32::generic_bpack_f32,
            bpack_name: "generic_bpack_f32",
        }
    }

    /// AVX2 + FMA kernels (`avx2_mmm_f32_6x16`), or `None` when this CPU lacks them.
    #[cfg(target_arch = "x86_64")]
    pub fn avx2_fma() -> Option<KernelSet> {
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            Some(KernelSet {
                name: "x86_64-avx2-fma",
                mmm_name: "avx2_mmm_f32_6x16",
                mr: crate::x86_64::avx2_mmm_f32::MR,
                nr: crate::x86_64::avx2_mmm_f32::NR,
                mmm: crate::x86_64::avx2_mmm_f32::avx2_mmm_f32_6x16,
                conv: crate::x86_64::avx2_mmm_f32::avx2_conv_f32_6x16,
                gemv: crate::x86_64::avx2_gemv_f32::avx2_gemv_f32_16,
                maxpool: crate::x86_64::avx2_maxpool_f32::avx2_maxpool_f32,
                dwconv: crate::x86_64::avx2_dwconv_f32::avx2_dwconv_f32,
                wino_in: crate::x86_64::avx_winograd_f32::avx2_wino_in_f32,
                wino_out: crate::x86_64::avx_winograd_f32::avx2_wino_out_f32,
                wino_min: crate::winograd::WINO_MIN,
                spmm: crate::x86_64::avx2_spmm_f32::avx2_spmm_f32_32,
                spmm_nb: crate::x86_64::avx2_spmm_f32::NB,
                spmm_name: "avx2_spmm_f32_32",
                bspmv: crate::x86_64::avx2_bspmv_f32::avx2_bspmv_f32,
                bspmv_name: "avx2_bspmv_f32",
                qmmm: crate::x86_64::avx2_qmmm_i8::avx2_qmmm_i8_6x16,
                qmr: crate::x86_64::avx2_qmmm_i8::MR,
                qlayout: QLayout::Pair,
                qmmm7: None,
                qmmm_name: "avx2_qmmm_i8_6x16",
                qepi: crate::x86_64::avx_requant_i32::avx2_qepilogue_i32::<f32>,
                qepi8: crate::x86_64::avx_requant_i32::avx2_qepilogue_i32::<u8>,
                qquant: crate::x86_64::avx_requant_i32::avx2_quantize_f32,
                qquantc: Some(crate::x86_64::avx_requant_i32::avx2_quantize_checked_f32),
                qfake: crate::x86_64::avx_requant_i32::avx2_fake_quantize_f32,
                ..KernelSet::x86_binary(KernelSet::generic(), false)
            })
        } else {
            None
        }
    }

    /// AVX-512F kernels (`avx512_mmm_f32_12x32`), or `None` when this CPU lacks AVX-512F (or
    /// AVX2 + FMA, which the shared max pool uses: its 8-channel vectors already keep up with
    /// the loads, so a 16-channel version would not pay for itself).
    #[cfg(target_arch = "x86_64")]
    pub fn avx512() -> Option<KernelSet> {
        if is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("fma")
        {
            Some(KernelSet {
                name: "x86_64-avx512",
                mmm_name: "avx512_mmm_f32_12x32",
                mr: crate::x86_64::avx512_mmm_f32::MR,
                nr: crate::x86_64::avx512_mmm_f32::NR,
                mmm: crate::x86_64::avx512_mmm_f32::avx512_mmm_f32_12x32,
                conv: crate::x86_64::avx512_mmm_f32::avx512_conv_f32_12x32,
                gemv: crate::x86_64::avx512_gemv_f32::avx512_gemv_f32_32,
                maxpool: crate::x86_64::avx2_maxpool_f32::avx2_maxpool_f32,
                dwconv: crate::x86_64::avx2_dwconv_f32::avx2_dwconv_f32,
                wino_in: crate::x86_64::avx_winograd_f32::avx512_wino_in_f32,
                wino_out: crate::x86_64::avx_winograd_f32::avx512_wino_out_f32,
                wino_min: crate::winograd::WINO_MIN,
                spmm: crate::x86_64::avx512_spmm_f32::avx512_spmm_f32_64,
                spmm_nb: crate::x86_64::avx512_spmm_f32::NB,
                spmm_name: "avx512_spmm_f32_64",
            bspmv: crate::x86_64::avx512_bspmv_f32::avx512_bspmv_f32,
            bspmv_name: "avx512_bspmv_f32",
                ..KernelSet::avx512_int8_amx()
            })
        } else {
            None
        }
    }

    /// [`KernelSet::avx512_int8`] with the AMX tile (`amx_qmmm_i8_16x16`) for the plain
    /// integer GEMM's whole 16-row blocks read in place (`KernelSet::qgemm`) where the CPU has AMX-INT8 and the OS grants the tile state (the same
    /// quad-layout panels and exact sums; the gathering conv tiles stay on `vpdpbusd`). The
    /// narrow set keeps the `vpdpbusd` tile, so the suites, which run every available set,
    /// compare both on this CPU.
    #[cfg(target_arch = "x86_64")]
    fn avx512_int8_amx() -> KernelSet {
        let base = KernelSet::avx512_int8();
        if base.qlayout == QLayout::Quad && crate::x86_64::amx_qmmm_i8::amx_int8_ready() {
            KernelSet {
                qamx: Some(crate::x86_64::amx_qmmm_i8::amx_qmmm_i8_16x16),
                qmmm_name: "avx512vnni_qmmm_i8_12x16+amx_qmmm_i8_16x16",
                ..base
            }
        } else {
            base
        }
    }

    /// The integer kernel of the AVX-512 sets: `vpdpbusd` when the CPU has AVX-512 VNNI, else
    /// the AVX2 one (AVX-512F alone has no u8 × i8 dot product).
    #[cfg(target_arch = "x86_64")]
    fn avx512_int8() -> KernelSet {
        let mut base = KernelSet::generic();
        if is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512dq")
            && is_x86_feature_detected!("avx512vl")
        {
            base.qepi = crate::x86_64::avx_requant_i32::avx512_qepilogue_i32::<f32>;
            base.qepi8 = crate::x86_64::avx512_requant_u8::avx512_qepilogue_u8;
            base.qquant = crate::x86_64::avx512_quantize_f32::avx512_quantize_nocheck_f32;
            base.qquantc = Some(crate::x86_64::avx512_quantize_f32::avx512_quantize_f32);
            base.qfake = crate::x86_64::avx_requant_i32::avx512_fake_quantize_f32;
            base.bepiq = Some(crate::x86_64::avx512_bepilogue_i32::avx512_bepilogue_i32);
        } else {
            base.qepi = crate::x86_64::avx_requant_i32::avx2_qepilogue_i32::<f32>;
            base.qepi8 = crate::x86_64::avx_requant_i32::avx2_qepilogue_i32::<u8>;
            base.qquant = crate::x86_64::avx_requant_i32::avx2_quantize_f32;
            base.qquantc = Some(crate::x86_64::avx_requant_i32::avx2_quantize_checked_f32);
            base.qfake = crate::x86_64::avx_requant_i32::avx2_fake_quantize_f32;
        }
        let base = KernelSet::x86_binary(base, true);
        if is_x86_feature_detected!("avx512vnni") {
            KernelSet {
                qmmm: crate::x86_64::avx512vnni_qmmm_i8::avx512vnni_qmmm_i8_12x16,
                qmr: crate::x86_64::avx512vnni_qmmm_i8::MR,
                qlayout: QLayout::Quad,
                qmmm7: None,
                qmmm_name: "avx512vnni_qmmm_i8_12x16",
                qskip: Some(QSkip {
                    list: crate::x86_64::avx512vnni_qmmm_i8::avx512_nonzero_words_12,
                    tile: crate::x86_64::avx512vnni_qmmm_i8::avx512vnni_qmmmskip_i8_12x16,
                }),
                qgather: Some(crate::x86_64::avx512vnni_qmmm_i8::avx512vnni_qmmm_gather_i8_12x16),
                qgmax: Some(QGatherMax {
                    t16: (crate::x86_64::avx512vnni_qconvpool_i8::avx512vnni_qconvpool_i8_12x16, crate::x86_64::avx512vnni_qconvpool_i8::MR16),
                    t32: (crate::x86_64::avx512vnni_qconvpool_i8::avx512vnni_qconvpool_i8_8x32, crate::x86_64::avx512vnni_qconvpool_i8::MR32),
                }),
                ..base
            }
        } else {
            KernelSet {
                qmmm: crate::x86_64::avx2_qmmm_i8::avx2_qmmm_i8_6x16,
                qmr: crate::x86_64::avx2_qmmm_i8::MR,
                qlayout: QLayout::Pair,
                qmmm7: None,
                qmmm_name: "avx2_qmmm_i8_6x16",
                ..base
            }
        }
    }

    /// The binary kernel of the x86 sets on top of `base`: `vpopcntq` when `avx512` and the CPU
    /// has AVX-512F and VPOPCNTDQ, else the AVX2 `vpshufb` one, else scalar `popcnt`, else the
    /// generic one (`binary_variants` reaches all of them for the tests). The AVX2 set
    /// passes `avx512 = false`: it stands for a CPU without AVX-512.
    #[cfg(target_arch = "x86_64")]
    fn x86_binary(base: KernelSet, avx512: bool) -> KernelSet {
        // The sign-packer: 16 lanes into a mask register on AVX-512F, 8 through `vmovmskps`
        // on AVX (both sets have AVX2, which implies it).
        let base = if avx512 && is_x86_feature_detected!("avx512f") {
            KernelSet { bpack: crate::x86_64::avx512_bpack_f32::avx512_bpack_f32, bpack_name: "avx512_bpack_f32", ..base }
        } else if is_x86_feature_detected!("avx") {
            KernelSet { bpack: crate::x86_64::avx2_bpack_f32::avx2_bpack_f32, bpack_name: "avx2_bpack_f32", ..base }
        } else {
            base
        };
        if avx512 && is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vpopcntdq") {
            KernelSet {
                bmmm: crate::x86_64::avx512vpopcnt_bmmm_b1::avx512vpopcnt_bmmm_b1_8x8,
                bmr: crate::x86_64::avx512vpopcnt_bmmm_b1::MR,
                bmmm_name: "avx512vpopcnt_bmmm_b1_8x8",
                bmmm_sign: Some(crate::x86_64::avx512vpopcnt_bmmmsign_b1::avx512vpopcnt_bmmmsign_b1_8x8),
                ..base
            }
        } else if is_x86_feature_detected!("avx2") {
            // `vpshufb` nibble counts: 2.2-2.5x the scalar `popcnt` kernel on the binary-input
            // MLP in one process (QUANT.md, "Binary input").
            KernelSet {
                bmmm: crate::x86_64::avx2_bmmm_b1::avx2_bmmm_b1_4x8,
                bmr: crate::x86_64::avx2_bmmm_b1::MR,
                bmmm_name: "avx2_bmmm_b1_4x8",
                ..base
            }
        } else if is_x86_feature_detected!("popcnt") {
            KernelSet {
                bmmm: crate::x86_64::popcnt_bmmm_b1::popcnt_bmmm_b1_4x8,
                bmr: crate::x86_64::popcnt_bmmm_b1::MR,
                bmmm_name: "popcnt_bmmm_b1_4x8",
                ..base
            }
        } else {
            base
        }
    }

    /// `self` with each binary kernel this CPU can run in place of its own (its own first,
    /// then the others, each once): the binary parity tests run every kernel on one machine,
    /// the ones no set picks here included, and `binary_sets` times them in one process.
    #[doc(hidden)]
    pub fn binary_variants(&self) -> Vec<KernelSet> {
        // The sign tile belongs to its product tile: only the `vpopcntq` and the wasm ones have one.
        let with = |bmmm: crate::bgemm::BmmmFn, bmr: usize, bmmm_name: &'static str| KernelSet { bmmm, bmr, bmmm_name, bmmm_sign: None, ..*self };
        let mut v = vec![*self];
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vpopcntdq") {
                let mut k = with(crate::x86_64::avx512vpopcnt_bmmm_b1::avx512vpopcnt_bmmm_b1_8x8, crate::x86_64::avx512vpopcnt_bmmm_b1::MR, "avx512vpopcnt_bmmm_b1_8x8");
                k.bmmm_sign = Some(crate::x86_64::avx512vpopcnt_bmmmsign_b1::avx512vpopcnt_bmmmsign_b1_8x8);
                v.push(k);
            }
            if is_x86_feature_detected!("avx2") {
                v.push(with(crate::x86_64::avx2_bmmm_b1::avx2_bmmm_b1_4x8, crate::x86_64::avx2_bmmm_b1::MR, "avx2_bmmm_b1_4x8"));
            }
            if is_x86_feature_detected!("popcnt") {
                v.push(with(crate::x86_64::popcnt_bmmm_b1::popcnt_bmmm_b1_4x8, crate::x86_64::popcnt_bmmm_b1::MR, "popcnt_bmmm_b1_4x8"));
            }
        }
        v.push(with(crate::generic::generic_bmmm_b1::generic_bmmm_b1_4x8, crate::generic::generic_bmmm_b1::MR, "generic_bmmm_b1_4x8"));
        let mut seen = Vec::new();
        v.retain(|k| {
            let new = !seen.contains(&k.bmmm_name);
            seen.push(k.bmmm_name);
            new
        });
        v
    }

    /// The AVX-512F set's narrow sibling (`avx512_mmm_f32_24x16`, 16-column panels) for ops
    /// with at most 16 output columns, where 32-wide tiles would do half their FMAs on padding.
    /// Batch-1 GEMV on 16-wide panels is `avx2_gemv_f32_16` (it only depends on NR).
    /// `None` when this CPU lacks AVX-512F, AVX2 or FMA.
    #[cfg(target_arch = "x86_64")]
    pub fn avx512_narrow() -> Option<KernelSet> {
        KernelSet::avx512().map(|_| KernelSet {
            name: "x86_64-avx512-narrow",
            mmm_name: "avx512_mmm_f32_24x16",
            mr: crate::x86_64::avx512_mmm_f32::MR_NARROW,
            nr: crate::x86_64::avx512_mmm_f32::NR_NARROW,
            mmm: crate::x86_64::avx512_mmm_f32::avx512_mmm_f32_24x16,
            conv: crate::x86_64::avx512_mmm_f32::avx512_conv_f32_24x16,
            gemv: crate::x86_64::avx2_gemv_f32::avx2_gemv_f32_16,
            maxpool: crate::x86_64::avx2_maxpool_f32::avx2_maxpool_f32,
            dwconv: crate::x86_64::avx2_dwconv_f32::avx2_dwconv_f32,
            wino_in: crate::x86_64::avx_winograd_f32::avx512_wino_in_f32,
            wino_out: crate::x86_64::avx_winograd_f32::avx512_wino_out_f32,
            wino_min: crate::winograd::WINO_MIN,
            spmm: crate::x86_64::avx512_spmm_f32::avx512_spmm_f32_64,
            spmm_nb: crate::x86_64::avx512_spmm_f32::NB,
            spmm_name: "avx512_spmm_f32_64",
            bspmv: crate::x86_64::avx512_bspmv_f32::avx512_bspmv_f32,
            bspmv_name: "avx512_bspmv_f32",
            ..KernelSet::avx512_int8()
        })
    }

    /// The set to pack and run one op with `n` output columns. Usually `self`; the AVX-512F set
    /// hands ops with `n <= 32` to its 24×16 sibling (see `avx512_mmm_f32.rs`). Use the same
    /// answer for packing and running: the packed panel width is the set's NR.
    ///
    /// Why 32 and not 16: at `n <= 16` the 12×32 tile wastes half its FMAs on padding. At
    /// `n = 32` both tiles do the same FMAs, yet 24×16 was measured ~13 % faster on the whole
    /// CNN (its 32-channel conv: 24 rows per pass re-stream the B panel half as often as 12).
    /// From 64 columns up (the MLP's 128) 12×32 wins: it needs half the A broadcasts per FMA,
    /// 14 loads per 24 FMAs against 25 (see KERNELS.md for the numbers).
    pub fn for_width(&self, n: usize) -> KernelSet {
        #[cfg(target_arch = "x86_64")]
        if self.name == "x86_64-avx512" && n <= 2 * crate::x86_64::avx512_mmm_f32::NR_NARROW {
            if let Some(narrow) = KernelSet::avx512_narrow() {
                return KernelSet { wino_min: self.wino_min, ..narrow };
            }
        }
        let _ = n;
        *self
    }

    /// The set that runs Winograd's per-tile-element GEMMs (`winograd.rs`: `[tiles × ic] ·
    /// [ic × n]`, 16 tiles per image of a 12×12 input). On AVX-512 the 16×16 tile
    /// (`avx512_mmm_f32_16x16`), whose rows match those 16 tiles; elsewhere `for_width(n)`.
    pub(crate) fn winograd_gemm(&self, n: usize) -> KernelSet {
        #[cfg(target_arch = "x86_64")]
        if self.name.starts_with("x86_64-avx512") {
            if let Some(narrow) = KernelSet::avx512_narrow() {
                return KernelSet {
                    mmm_name: "avx512_mmm_f32_16x16",
                    mr: crate::x86_64::avx512_mmm_f32::MR_WINO,
                    mmm: crate::x86_64::avx512_mmm_f32::avx512_mmm_f32_16x16,
                    wino_min: self.wino_min,
                    ..narrow
                };
            }
        }
        self.for_width(n)
    }

    /// wasm `simd128` kernels (`wasm_mmm_f32_4x8`); only in builds with `+simd128`, where every
    /// engine that loaded the module supports them. Named `wasm-relaxed-simd` in builds with
    /// `+relaxed-simd`, whose multiply-adds are `f32x4.relaxed_madd` (`wasm/mod.rs`), and whose
    /// int8 GEMM runs weights in −64..=63 (`mdeploy quantize --bits 7`) on relaxed SIMD's 8-bit
    /// dot (`wasm_relaxed_qmmm_i7_4x16`) where this engine computes that dot exactly
    /// (`dot_is_exact`: not in Node 20's first tier); every other weight matrix, and every
    /// matrix in the simd128 build, on `i32x4.dot_i16x8_s` (pair layout).
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    pub fn wasm_simd128() -> KernelSet {
        #[cfg(target_feature = "relaxed-simd")]
        let dot7 = crate::wasm::wasm_relaxed_qmmm_i7::dot_is_exact();
        #[cfg(not(target_feature = "relaxed-simd"))]
        let dot7 = false;
        KernelSet::wasm_simd128_int8(dot7)
    }

    /// [`KernelSet::wasm_simd128`] with (`dot7`, relaxed builds only) or without the 7-bit tile.
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    fn wasm_simd128_int8(dot7: bool) -> KernelSet {
        #[cfg(target_feature = "relaxed-simd")]
        let qmmm7 = dot7.then_some((crate::wasm::wasm_relaxed_qmmm_i7::wasm_relaxed_qmmm_i7_4x16 as QmmmFn, crate::wasm::wasm_relaxed_qmmm_i7::MR));
        #[cfg(not(target_feature = "relaxed-simd"))]
        let qmmm7: Option<(QmmmFn, usize)> = {
            debug_assert!(!dot7, "the 7-bit tile needs relaxed SIMD");
            None
        };
        KernelSet {
            name: if cfg!(target_feature = "relaxed-simd") { "wasm-relaxed-simd" } else { "wasm-simd128" },
            mmm_name: "wasm_mmm_f32_4x8",
            mr: crate::wasm::wasm_mmm_f32::MR,
            nr: crate::wasm::wasm_mmm_f32::NR,
            mmm: crate::wasm::wasm_mmm_f32::wasm_mmm_f32_4x8,
            conv: crate::wasm::wasm_mmm_f32::wasm_conv_f32_4x8,
            gemv: crate::wasm::wasm_gemv_f32::wasm_gemv_f32_8,
            maxpool: crate::wasm::wasm_maxpool_f32::wasm_maxpool_f32,
            dwconv: crate::generic::generic_dwconv_f32::generic_dwconv_f32,
            // The generic transforms: this build compiles them with simd128.
            wino_in: crate::winograd::generic_wino_in_f32,
            wino_out: crate::winograd::generic_wino_out_f32,
            // Off: under V8 the 16-lane transforms spill (16 v128 registers on x86 hosts) and
            // the CNN's conv 2 took 2.3× longer than direct (KERNELS.md, "Winograd").
            wino_min: (usize::MAX, usize::MAX),
            spmm: crate::wasm::wasm_spmm_f32::wasm_spmm_f32_16,
            spmm_nb: crate::wasm::wasm_spmm_f32::NB,
            spmm_name: "wasm_spmm_f32_16",
            // The generic kernel, compiled with simd128: LLVM vectorizes its fixed-width block
            // (1.32 µs against 1.64 µs for a hand-written simd128 loop over the width, MLP first
            // layer under Node WASI) and one copy fewer keeps the package inside its size bound.
            bspmv: crate::generic::generic_bspmv_f32::generic_bspmv_f32,
            bspmv_name: "generic_bspmv_f32",
            qmmm: crate::wasm::wasm_qmmm_i8::wasm_qmmm_i8_4x16,
            qmr: crate::wasm::wasm_qmmm_i8::MR,
            qlayout: QLayout::Pair,
            // Both tiles named where the set has both (the suites and int8_sets tell them apart).
            qmmm_name: if qmmm7.is_some() { "wasm_qmmm_i8_4x16+wasm_relaxed_qmmm_i7_4x16" } else { "wasm_qmmm_i8_4x16" },
            qmmm7,
            qamx: None,
            qskip: None,
            qgather: None,
            qgmax: None,
            qepi: crate::wasm::wasm_requant_i32::wasm_qepilogue_i32::<f32>,
            qepi8: crate::wasm::wasm_requant_i32::wasm_qepilogue_i32::<u8>,
            qquant: crate::wasm::wasm_requant_i32::wasm_quantize_f32,
            qquantc: None,
            qfake: crate::quant::generic_fake_quantize,
            bmmm: crate::wasm::wasm_bmmm_b1::wasm_bmmm_b1_4x8,
            bmr: crate::wasm::wasm_bmmm_b1::MR,
            bmmm_name: "wasm_bmmm_b1_4x8",
            bmmm_sign: Some(crate::wasm::wasm_bmmmsign_b1::wasm_bmmmsign_b1_4x8),
            bepiq: Some(crate::wasm::wasm_bepilogue_i32::wasm_bepilogue_i32),
            bpack: crate::wasm::wasm_bpack_f32::wasm_bpack_f32,
            bpack_name: "wasm_bpack_f32",
        }
    }

    /// Every kernel set this CPU/build can run, best first; the last is always `generic`.
    pub fn available() -> Vec<KernelSet> {
        let mut v = Vec::new();
        #[cfg(target_arch = "x86_64")]
        if let Some(k) = KernelSet::avx512() {
            v.push(k);
        }
        // Listed on its own too, so the parity tests run its kernels on every shape.
        #[cfg(target_arch = "x86_64")]
        if let Some(k) = KernelSet::avx512_narrow() {
            v.push(k);
        }
        #[cfg(target_arch = "x86_64")]
        if let Some(k) = KernelSet::avx2_fma() {
            v.push(k);
        }
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        v.push(KernelSet::wasm_simd128());
        // The relaxed build's set again without its 7-bit tile, so the suites compare the two
        // int8 tiles on the same 7-bit weights and int8_sets times both.
        #[cfg(all(target_arch = "wasm32", target_feature = "relaxed-simd"))]
        if crate::wasm::wasm_relaxed_qmmm_i7::dot_is_exact() {
            v.push(KernelSet::wasm_simd128_int8(false));
        }
        v.push(KernelSet::generic());
        v
    }

    /// The fastest set for this CPU/build, detected once per process.
    pub fn best() -> KernelSet {
        static BEST: OnceLock<KernelSet> = OnceLock::new();
        *BEST.get_or_init(|| KernelSet::available()[0])
    }

    /// `"x86_64-avx512"`, `"x86_64-avx2-fma"`, `"wasm-simd128"` or `"generic"`.
    pub fn name(&self) -> &'static str {
        self.name
    }
    /// The GEMM micro-kernel's tract-style name, e.g. `"avx2_mmm_f32_6x16"`.
    pub fn mmm_name(&self) -> &'static str {
        self.mmm_name
    }
    /// Rows of the register tile (M direction).
    pub fn mr(&self) -> usize {
        self.mr
    }
    /// Columns of the register tile (N direction) = width of a packed B panel.
    pub fn nr(&self) -> usize {
        self.nr
    }
}
