//! Winograd suite: `KernelSet::winograd_conv` (F(2×2, 5×5), `kernels/src/winograd.rs`) on every
//! available kernel set against an f64 direct convolution and against the f32 direct one (im2col
//! through the same set's GEMM), over edge sizes: odd and even H/W, outputs of 1 pixel, padding
//! 0, 1, 2 and asymmetric, 1/3/16/17 input channels, output channels around the 16-channel
//! transform width and the tiles' NR, a block boundary (more tiles than one block), ReLU and no
//! clamp, NaN-filled outputs (every output must be written, nothing read).

use mdeploy_core::kernels::{winograd_supported, KernelSet, MatRef, Window};
use mdeploy_testkit::{Rng, RngExt};

/// A 5×5 stride-1 window over an `h × w × c` input with `pad` = [top, left, bottom, right].
fn window(c: usize, h: usize, w: usize, pad: [usize; 4]) -> Window {
    let (oh, ow) = (h + pad[0] + pad[2] - 4, w + pad[1] + pad[3] - 4);
    Window { c, h, w, kh: 5, kw: 5, sh: 1, sw: 1, pad, dh: 1, dw: 1, oh, ow }
}

/// Input under tap (ky, kx) of output pixel (oy, ox), channel ci: None in the padding.
fn tap(win: &Window, oy: usize, ox: usize, ky: usize, kx: usize) -> Option<usize> {
    let y = (oy + ky).checked_sub(win.pad[0]).filter(|&y| y < win.h)?;
    let x = (ox + kx).checked_sub(win.pad[1]).filter(|&x| x < win.w)?;
    Some(y * win.w + x)
}

/// f64 direct convolution (HWC in and out, weight `[(ky, kx, ci) × oc]`) and, per output, the
/// sum of |terms| (the scale rounding errors are relative to).
fn reference(win: &Window, oc: usize, x: &[f32], wt: &[f32], bias: &[f32]) -> (Vec<f64>, Vec<f64>) {
    let c = win.c;
    let mut y = vec![0.0; win.oh * win.ow * oc];
    let mut mag = vec![0.0; y.len()];
    for oy in 0..win.oh {
        for ox in 0..win.ow {
            for o in 0..oc {
                let (mut s, mut a) = (bias[o] as f64, (bias[o] as f64).abs());
                for ky in 0..5 {
                    for kx in 0..5 {
                        let Some(p) = tap(win, oy, ox, ky, kx) else { continue };
                        for ci in 0..c {
                            let t = x[p * c + ci] as f64 * wt[((ky * 5 + kx) * c + ci) * oc + o] as f64;
                            s += t;
                            a += t.abs();
                        }
                    }
                }
                y[(oy * win.ow + ox) * oc + o] = s;
                mag[(oy * win.ow + ox) * oc + o] = a;
            }
        }
    }
    (y, mag)
}

/// The f32 direct convolution: im2col rows through the set's GEMM, plus bias.
fn direct(ks: KernelSet, win: &Window, oc: usize, x: &[f32], wt: &[f32], bias: &[f32]) -> Vec<f32> {
    let (m, k) = (win.oh * win.ow, 25 * win.c);
    let mut cols = vec![0.0f32; m * k];
    for oy in 0..win.oh {
        for ox in 0..win.ow {
            for ky in 0..5 {
                for kx in 0..5 {
                    if let Some(p) = tap(win, oy, ox, ky, kx) {
                        let at = (oy * win.ow + ox) * k + (ky * 5 + kx) * win.c;
                        cols[at..at + win.c].copy_from_slice(&x[p * win.c..(p + 1) * win.c]);
                    }
                }
            }
        }
    }
    let mut y = vec![0.0f32; m * oc];
    ks.gemm(m, oc, k, MatRef::row_major(&cols, k), MatRef::row_major(wt, oc), &mut y, oc, false);
    for row in y.chunks_exact_mut(oc) {
        for (v, b) in row.iter_mut().zip(bias) {
            *v += b;
        }
    }
    y
}

/// Relative error bound of one output, against Σ|terms|: the f64 reference's outputs are exact
/// to ~1e-16, so this is the f32 Winograd's own error. Measured worst case over this suite:
/// see the test's message; F(2×2, 5×5) loses about 3 bits more than the direct sum (its
/// transforms add values up to ~100× the tile's inputs, KERNELS.md "Winograd").
const TOL: f64 = 5e-6;

fn check(ks: KernelSet, win: &Window, oc: usize, relu: bool, seed: u64) -> f64 {
    let mut rng = Rng::new(seed);
    // ReLU-like inputs (non-negative, a quarter exact zeros) and He-scaled weights, like a
    // CNN's second layer; plus some negative inputs so no sign pattern is special.
    let x: Vec<f32> = (0..win.h * win.w * win.c)
        .map(|_| {
            let v = rng.uniform(-0.5, 1.5);
            if v < 0.0 && rng.below(2) == 0 { 0.0 } else { v }
        })
        .collect();
    let wt = rng.signed(25 * win.c * oc, (6.0 / (25.0 * win.c as f32)).sqrt());
    let bias = rng.signed(oc, 0.5);
    let (want, mag) = reference(win, oc, &x, &wt, &bias);
    let dir = direct(ks, win, oc, &x, &wt, &bias);
    let w = ks.winograd_pack(win, oc, &wt).expect("a 5×5 stride-1 window is supported");
    assert_eq!((w.ic(), w.oc()), (win.c, oc));
    let mut got = vec![f32::NAN; win.oh * win.ow * oc];
    let mut apanel = vec![0.0f32; 64 * win.c];
    let mut scratch = vec![f32::NAN; ks.winograd_scratch(&w)];
    let clamp = relu.then_some((0.0, f32::INFINITY));
    ks.winograd_conv(&w, win, &x, &bias, clamp, &mut got, &mut apanel, &mut scratch);
    let what = format!("[{}] {win:?} oc {oc} relu {relu}", ks.name());
    let mut worst = 0.0f64;
    for i in 0..got.len() {
        let (r, d) = if relu { (want[i].max(0.0), dir[i].max(0.0)) } else { (want[i], dir[i]) };
        let g = got[i] as f64;
        assert!(g.is_finite(), "{what}: output {i} is {g} (not written?)");
        let err = (g - r).abs() / mag[i].max(1e-30);
        worst = worst.max(err);
        assert!(err <= TOL, "{what}: output {i} is {g}, f64 reference {r}, Σ|terms| {}", mag[i]);
        // And the f32 direct convolution: both within their bounds of the same value.
        assert!((g - d as f64).abs() <= (TOL + 1e-6) * mag[i] + 1e-30, "{what}: output {i} is {g}, direct {d}");
        if relu {
            assert!(g >= 0.0, "{what}: output {i} = {g} after ReLU");
        }
    }
    worst
}

#[test]
fn winograd_matches_f64_and_direct_on_edge_sizes() {
    let mut worst = 0.0f64;
    let mut seed = 1;
    for ks in KernelSet::available() {
        // (c, h, w, pad, oc): the CNN's conv 2 first, then the edges.
        let cases: &[(usize, usize, usize, [usize; 4], usize)] = &[
            (16, 12, 12, [0; 4], 32),
            (16, 12, 12, [0; 4], 16),
            (1, 5, 5, [0; 4], 1),        // one output pixel, one tile, 3 of its 4 outputs dropped
            (3, 7, 9, [0; 4], 5),        // odd outputs (3×5): edge tiles
            (17, 9, 8, [1; 4], 17),      // 17 channels: a 1-channel tail in both transforms
            (16, 11, 13, [2; 4], 33),    // "same" padding, odd sizes, 33 = 2 panels + 1
            (3, 6, 6, [2, 0, 1, 2], 16), // asymmetric padding
            (4, 2, 3, [2; 4], 7),        // input smaller than the kernel, all from the padding
            (8, 28, 28, [2; 4], 16),     // 196 tiles: several blocks
            (17, 14, 15, [1, 2, 2, 1], 40),
        ];
        for &(c, h, w, pad, oc) in cases {
            let win = window(c, h, w, pad);
            assert!(winograd_supported(&win, 1));
            for relu in [false, true] {
                worst = worst.max(check(ks, &win, oc, relu, seed));
                seed += 1;
            }
        }
    }
    eprintln!("worst error / Σ|terms|: {worst:.2e} (bound {TOL:.0e})");
}

#[test]
fn only_5x5_stride_1_single_group_windows_are_taken() {
    // On by default in the x86 sets only (generic and wasm: slower there, KERNELS.md).
    // The CNN's conv 2 (16 → 32 on 12×12): on by default in the x86 sets only.
    let w = window(16, 12, 12, [0; 4]);
    for k in KernelSet::available() {
        let on = k.name().starts_with("x86_64");
        assert_eq!(k.winograd_pays(&w, 1, 32), on, "{}", k.name());
    }
    let ks = KernelSet::best().winograd_from(16, 32);
    assert!(ks.winograd_pays(&w, 1, 32) && winograd_supported(&w, 1));
    assert!(!ks.winograd_pays(&w, 1, 16), "16 output channels: under the threshold");
    assert!(!ks.winograd_pays(&window(8, 12, 12, [0; 4]), 1, 32), "8 input channels: under the threshold");
    assert!(!ks.winograd_pays(&w, 2, 32) && !winograd_supported(&w, 2), "grouped");
    assert!(!ks.winograd_pays(&window(1, 28, 28, [0; 4]), 1, 16), "the CNN's conv 1: the direct conv is faster");
    assert!(ks.winograd_from(1, 1).winograd_pays(&window(1, 28, 28, [0; 4]), 1, 16));
    assert!(!ks.winograd_from(usize::MAX, usize::MAX).winograd_pays(&w, 1, 32), "turned off");
    // Turned off stays off on the AVX-512 set's narrow sibling (the one 16/32-channel ops use).
    assert!(!ks.winograd_from(usize::MAX, usize::MAX).for_width(16).winograd_pays(&w, 1, 32));
    let other = [
        Window { sh: 2, sw: 2, oh: 4, ow: 4, ..w },
        Window { dh: 2, dw: 2, oh: 4, ow: 4, ..w },
        Window { kh: 3, kw: 3, oh: 10, ow: 10, ..w },
        Window { kh: 5, kw: 3, ow: 10, ..w },
    ];
    for o in other {
        assert!(!winograd_supported(&o, 1) && ks.winograd_pack(&o, 8, &vec![0.0; o.kh * o.kw * 16 * 8]).is_none(), "{o:?}");
    }
}

/// A 5×5 layer whose Winograd scratch (36 × ~64 tiles × (ic + oc) floats) would pass the
/// executor's cap (4 Mi floats, like the padded copy) stays on the direct convolution: the plan
/// gives the same bits as with Winograd turned off. 16 → 2,000 channels on a 5×5 input.
#[test]
fn layers_too_wide_for_the_scratch_cap_stay_direct() {
    use mdeploy_core::model::{Metadata, Model};
    use mdeploy_core::{Graph, Plan};
    let mut rng = Rng::new(77);
    let (ic, oc) = (16, 2000);
    let model = Model {
        meta: Metadata { input_shape: vec![ic, 5, 5], ..Default::default() },
        graph: Graph::sequential(vec![mdeploy_testkit::builders::conv(&mut rng, ic, oc, 5, 1, 0, 1)]),
    };
    let x = rng.signed(ic * 25, 1.0);
    for ks in KernelSet::available() {
        assert!(ks.winograd_from(16, 32).winograd_pays(&window(ic, 5, 5, [0; 4]), 1, oc));
        let mut a = vec![f32::NAN; oc];
        let mut b = vec![f32::NAN; oc];
        Plan::with_kernels(&model, 1, ks.winograd_from(16, 32)).expect("plan").run(&x, 1, &mut a).expect("run");
        Plan::with_kernels(&model, 1, ks.winograd_from(usize::MAX, usize::MAX)).expect("plan").run(&x, 1, &mut b).expect("run");
        assert_eq!(a, b, "[{}] the wide layer ran through Winograd", ks.name());
    }
}
