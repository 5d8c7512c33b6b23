//! The WebGPU engine natively, on the machine's Vulkan device (lavapipe in CI):
//! `XDG_RUNTIME_DIR=<a 0700 dir> cargo test -p mdeploy-wasm --release --features native-gpu --test gpu`.
//!
//! Every `Kernel` variant on odd sizes against a plain f64 reference written here (NCHW, the
//! textbook loops: independent of the HWC layouts and weight permutations the kernels use), whole
//! hand-built programs (a residual block, a MobileNetV2 inverted residual block), the engine's
//! error paths, chunking, and the MNIST models against the CPU engine.

use mdeploy_core::lower::{Act, BinOp, Kernel, PoolKind, Program, Step, Window};
use mdeploy_testkit::block_on;
use mdeploy_wasm::gpu::GpuCore;

// ---------------------------------------------------------------- harness

fn setup() {
    // Mesa warns on every device without it; tests must not depend on the caller's environment.
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        let dir = std::env::temp_dir().join(format!("mdeploy-gpu-xdg-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
        }
        std::env::set_var("XDG_RUNTIME_DIR", &dir);
    }
}

fn engine(p: &Program, max_batch: usize) -> GpuCore {
    setup();
    match block_on(GpuCore::new(p, max_batch)) {
        Ok(e) => e,
        Err(e) => panic!("GpuCore::new: {e}"),
    }
}

fn run(p: &Program, input: &[f32], n: usize) -> Vec<f32> {
    let e = engine(p, 64);
    match block_on(e.run(input, n)) {
        Ok(v) => v,
        Err(err) => panic!("run: {err}"),
    }
}

struct Rng(u64);
impl Rng {
    fn f(&mut self) -> f32 {
        // xorshift64*: uniform in [-1, 1).
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let v = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        ((v >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.f()).collect()
    }
}

/// `|got − want| ≤ 1e-4 · max(1, max |want|)` everywhere.
fn close(got: &[f32], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    let (mut worst, mut at) = (0.0f64, 0);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let d = (*g as f64 - w).abs();
        assert!(d.is_finite(), "{what}: index {i}: got {g}, want {w}");
        if d > worst {
            (worst, at) = (d, i);
        }
    }
    assert!(worst <= 1e-4 * scale, "{what}: max abs diff {worst:e} at {at} (got {}, want {}), scale {scale}", got[at], want[at]);
}

const N: usize = 3; // samples per batch in the kernel tests

fn program(input_shape: Vec<usize>, slots: Vec<usize>, steps: Vec<Step>, output_slot: usize, output_len: usize) -> Program {
    let input_len = input_shape.iter().product();
    Program { input_shape, input_len, output_len, slots, input_slot: 0, output_slot, steps }
}

fn step(kernel: Kernel, inputs: Vec<usize>, output: usize) -> Step {
    Step { kernel, inputs, output, node: 0 }
}

// ---------------------------------------------------------------- f64 references (NCHW)

fn act_ref(v: f64, a: Act) -> f64 {
    match a {
        Act::None => v,
        Act::Relu => v.max(0.0),
        Act::Clip(lo, hi) => v.max(lo as f64).min(hi as f64),
        Act::LeakyRelu(al) => {
            if v >= 0.0 {
                v
            } else {
                v * al as f64
            }
        }
        Act::Sigmoid => 1.0 / (1.0 + (-v).exp()),
        Act::Tanh => v.tanh(),
        Act::HardSwish => v * (v + 3.0).clamp(0.0, 6.0) / 6.0,
    }
}

const ACTS: [Act; 7] = [Act::None, Act::Relu, Act::Clip(0.0, 6.0), Act::LeakyRelu(0.1), Act::Sigmoid, Act::Tanh, Act::HardSwish];

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// One sample CHW → HWC (and back with the roles swapped).
fn chw_to_hwc<T: Copy>(x: &[T], c: usize, hw: usize) -> Vec<T> {
    (0..hw * c).map(|i| x[(i % c) * hw + i / c]).collect()
}
fn hwc_to_chw<T: Copy>(x: &[T], c: usize, hw: usize) -> Vec<T> {
    (0..c * hw).map(|i| x[(i % hw) * c + i / hw]).collect()
}
/// Per sample, for a batch.
fn batch<T: Copy>(x: &[T], per: usize, f: impl Fn(&[T]) -> Vec<T>) -> Vec<T> {
    x.chunks(per).flat_map(f).collect()
}

/// A convolution in the textbook layout: weight `[oc][c/groups][kh][kw]`.
#[derive(Clone)]
struct Conv {
    c: usize,
    h: usize,
    w: usize,
    oc: usize,
    kh: usize,
    kw: usize,
    stride: [usize; 2],
    pad: [usize; 4],
    dil: [usize; 2],
    groups: usize,
    act: Act,
    weight: Vec<f32>,
    bias: Vec<f32>,
}

impl Conv {
    #[allow(clippy::too_many_arguments)]
    fn new(rng: &mut Rng, c: usize, h: usize, w: usize, oc: usize, k: [usize; 2], stride: [usize; 2], pad: [usize; 4], dil: [usize; 2], groups: usize, act: Act) -> Conv {
        let weight = rng.vec(oc * (c / groups) * k[0] * k[1]);
        let bias = rng.vec(oc);
        Conv { c, h, w, oc, kh: k[0], kw: k[1], stride, pad, dil, groups, act, weight, bias }
    }
    fn oh(&self) -> usize {
        (self.h + self.pad[0] + self.pad[2] - self.dil[0] * (self.kh - 1) - 1) / self.stride[0] + 1
    }
    fn ow(&self) -> usize {
        (self.w + self.pad[1] + self.pad[3] - self.dil[1] * (self.kw - 1) - 1) / self.stride[1] + 1
    }
    fn out_len(&self) -> usize {
        self.oc * self.oh() * self.ow()
    }
    /// One sample, CHW in and out.
    fn reference(&self, x: &[f64]) -> Vec<f64> {
        let (oh, ow) = (self.oh(), self.ow());
        let (cg, ocg) = (self.c / self.groups, self.oc / self.groups);
        let mut y = vec![0.0; self.oc * oh * ow];
        for o in 0..self.oc {
            let g = o / ocg;
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = self.bias[o] as f64;
                    for ci in 0..cg {
                        for ky in 0..self.kh {
                            for kx in 0..self.kw {
                                let iy = (oy * self.stride[0] + ky * self.dil[0]) as isize - self.pad[0] as isize;
                                let ix = (ox * self.stride[1] + kx * self.dil[1]) as isize - self.pad[1] as isize;
                                if iy < 0 || ix < 0 || iy >= self.h as isize || ix >= self.w as isize {
                                    continue;
                                }
                                let xv = x[((g * cg + ci) * self.h + iy as usize) * self.w + ix as usize];
                                let wv = self.weight[((o * cg + ci) * self.kh + ky) * self.kw + kx] as f64;
                                acc += xv * wv;
                            }
                        }
                    }
                    y[(o * oh + oy) * ow + ox] = act_ref(acc, self.act);
                }
            }
        }
        y
    }
    /// The kernel: weights permuted to per-group `[(ky, kx, ci) × ocg]`.
    fn kernel(&self) -> Kernel {
        let (cg, ocg) = (self.c / self.groups, self.oc / self.groups);
        let mut wp = vec![0.0f32; self.weight.len()];
        for o in 0..self.oc {
            let (g, og) = (o / ocg, o % ocg);
            for ci in 0..cg {
                for ky in 0..self.kh {
                    for kx in 0..self.kw {
                        wp[g * self.kh * self.kw * cg * ocg + ((ky * self.kw + kx) * cg + ci) * ocg + og] =
                            self.weight[((o * cg + ci) * self.kh + ky) * self.kw + kx];
                    }
                }
            }
        }
        let win = Window {
            c: self.c,
            h: self.h,
            w: self.w,
            kh: self.kh,
            kw: self.kw,
            sh: self.stride[0],
            sw: self.stride[1],
            pad: self.pad,
            dh: self.dil[0],
            dw: self.dil[1],
            oh: self.oh(),
            ow: self.ow(),
        };
        Kernel::Conv2d { win, out_c: self.oc, groups: self.groups, weight: wp, bias: self.bias.clone(), act: self.act }
    }
}

/// Runs one conv kernel on HWC data and checks it against the CHW reference.
fn check_conv(cv: &Conv, seed: u64, what: &str) {
    let mut rng = Rng(seed);
    let in_len = cv.c * cv.h * cv.w;
    let x = rng.vec(N * in_len); // CHW per sample
    let x_hwc = batch(&x, in_len, |s| chw_to_hwc(s, cv.c, cv.h * cv.w));
    let out = cv.out_len();
    let p = program(vec![cv.c, cv.h, cv.w], vec![in_len, out], vec![step(cv.kernel(), vec![0], 1)], 1, out);
    let got = run(&p, &x_hwc, N);
    let got_chw = batch(&got, out, |s| hwc_to_chw(s, cv.oc, cv.oh() * cv.ow()));
    let want = batch(&f64s(&x), in_len, |s| cv.reference(s));
    close(&got_chw, &want, what);
}

// ---------------------------------------------------------------- one kernel at a time

#[test]
fn transpose_both_ways() {
    let (c, hw) = (5, 7 * 3);
    let x = Rng(1).vec(N * c * hw);
    for to_hwc in [true, false] {
        let p = program(vec![c * hw], vec![c * hw, c * hw], vec![step(Kernel::Transpose { c, hw, to_hwc }, vec![0], 1)], 1, c * hw);
        let got = run(&p, &x, N);
        let want = if to_hwc { batch(&f64s(&x), c * hw, |s| chw_to_hwc(s, c, hw)) } else { batch(&f64s(&x), c * hw, |s| hwc_to_chw(s, c, hw)) };
        close(&got, &want, &format!("transpose to_hwc={to_hwc}"));
    }
}

#[test]
fn dense_with_every_act() {
    let (k, out) = (37, 13);
    let mut rng = Rng(2);
    let x = rng.vec(N * k);
    let weight = rng.vec(k * out);
    let bias = rng.vec(out);
    for act in ACTS {
        let p = program(
            vec![k],
            vec![k, out],
            vec![step(Kernel::Dense { k, out, weight: weight.clone(), bias: bias.clone(), act }, vec![0], 1)],
            1,
            out,
        );
        let got = run(&p, &x, N);
        let mut want = vec![];
        for s in 0..N {
            for o in 0..out {
                let acc: f64 = (0..k).map(|i| x[s * k + i] as f64 * weight[i * out + o] as f64).sum::<f64>() + bias[o] as f64;
                want.push(act_ref(acc, act));
            }
        }
        close(&got, &want, &format!("dense {act:?}"));
    }
}

#[test]
fn conv2d_plain_padded_relu() {
    let cv = Conv::new(&mut Rng(3), 3, 11, 9, 5, [3, 3], [1, 1], [1, 1, 1, 1], [1, 1], 1, Act::Relu);
    check_conv(&cv, 30, "conv 3x3 pad 1");
}

#[test]
fn conv2d_strided_dilated_asymmetric_hardswish() {
    let cv = Conv::new(&mut Rng(4), 4, 13, 10, 6, [3, 2], [2, 3], [0, 1, 2, 1], [2, 1], 1, Act::HardSwish);
    check_conv(&cv, 40, "conv stride 2x3 dilation 2x1 pad [0,1,2,1]");
}

#[test]
fn conv2d_grouped_leaky() {
    let cv = Conv::new(&mut Rng(5), 6, 7, 9, 9, [3, 3], [1, 1], [1, 2, 1, 0], [1, 1], 3, Act::LeakyRelu(0.2));
    check_conv(&cv, 50, "conv groups 3");
}

#[test]
fn conv2d_depthwise_stride2_relu6() {
    let cv = Conv::new(&mut Rng(6), 7, 11, 9, 7, [3, 3], [2, 2], [1, 1, 1, 1], [1, 1], 7, Act::Clip(0.0, 6.0));
    check_conv(&cv, 60, "depthwise stride 2");
}

#[test]
fn conv2d_depthwise_multiplier_sigmoid_and_tanh() {
    for (i, act) in [Act::Sigmoid, Act::Tanh].into_iter().enumerate() {
        let cv = Conv::new(&mut Rng(7 + i as u64), 4, 5, 7, 8, [3, 1], [1, 2], [2, 0, 0, 1], [1, 1], 4, act);
        check_conv(&cv, 70 + i as u64, &format!("depthwise ×2 {act:?}"));
    }
}

#[test]
fn conv2d_1x1_single_channel_input() {
    let cv = Conv::new(&mut Rng(8), 1, 9, 9, 3, [1, 1], [1, 1], [0; 4], [1, 1], 1, Act::None);
    check_conv(&cv, 80, "conv 1x1 from one channel");
}

/// One pooling case: CHW reference, ONNX semantics (count_include_pad: the window clipped to
/// the padded image).
#[allow(clippy::too_many_arguments)] // the textbook parameter list, spelled out
fn pool_ref(x: &[f64], c: usize, h: usize, w: usize, k: [usize; 2], s: [usize; 2], pad: [usize; 4], oh: usize, ow: usize, kind: PoolKind) -> Vec<f64> {
    let mut y = vec![];
    for ch in 0..c {
        for oy in 0..oh {
            for ox in 0..ow {
                let (mut m, mut sum, mut count, mut padded) = (f64::NEG_INFINITY, 0.0, 0, 0);
                for ky in 0..k[0] {
                    for kx in 0..k[1] {
                        let iy = (oy * s[0] + ky) as isize - pad[0] as isize;
                        let ix = (ox * s[1] + kx) as isize - pad[1] as isize;
                        if iy >= (h + pad[2]) as isize || ix >= (w + pad[3]) as isize {
                            continue;
                        }
                        padded += 1;
                        if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                            continue;
                        }
                        let v = x[(ch * h + iy as usize) * w + ix as usize];
                        m = m.max(v);
                        sum += v;
                        count += 1;
                    }
                }
                y.push(match kind {
                    PoolKind::Max => m,
                    PoolKind::Avg { count_include_pad: false } => sum / count as f64,
                    PoolKind::Avg { count_include_pad: true } => sum / padded as f64,
                });
            }
        }
    }
    // Back to CHW order was kept: y is [c][oh][ow].
    y
}

#[test]
fn pool_max_and_avg_with_padding() {
    let (c, h, w) = (5, 9, 8);
    let x = Rng(9).vec(N * c * h * w);
    let kinds = [PoolKind::Max, PoolKind::Avg { count_include_pad: false }, PoolKind::Avg { count_include_pad: true }];
    // (kernel, stride, pad, ceil_mode)
    let cases = [([2, 2], [2, 2], [0, 0, 0, 0], false), ([3, 3], [2, 2], [1, 0, 1, 1], false), ([3, 2], [2, 3], [1, 1, 0, 1], true)];
    for (k, s, pad, ceil) in cases {
        // The graph's own output-size rule (ceil mode drops a last window starting in the padding).
        let oh = mdeploy_core::graph::window_out(h, k[0], s[0], pad[0], pad[2], 1, ceil).unwrap();
        let ow = mdeploy_core::graph::window_out(w, k[1], s[1], pad[1], pad[3], 1, ceil).unwrap();
        for kind in kinds {
            let win = Window { c, h, w, kh: k[0], kw: k[1], sh: s[0], sw: s[1], pad, dh: 1, dw: 1, oh, ow };
            let (il, ol) = (c * h * w, c * oh * ow);
            let p = program(vec![c, h, w], vec![il, ol], vec![step(Kernel::Pool { kind, win }, vec![0], 1)], 1, ol);
            let got = run(&p, &batch(&x, il, |s| chw_to_hwc(s, c, h * w)), N);
            let got = batch(&got, ol, |s| hwc_to_chw(s, c, oh * ow));
            let want = batch(&f64s(&x), il, |sm| pool_ref(sm, c, h, w, k, s, pad, oh, ow, kind));
            close(&got, &want, &format!("pool {kind:?} k {k:?} s {s:?} pad {pad:?} ceil {ceil}"));
        }
    }
}

#[test]
fn global_avg_pool() {
    let (c, hw) = (6, 5 * 7);
    let x = Rng(10).vec(N * c * hw); // HWC
    let p = program(vec![c, 5, 7], vec![c * hw, c], vec![step(Kernel::GlobalAvgPool { c, hw }, vec![0], 1)], 1, c);
    let got = run(&p, &x, N);
    let want: Vec<f64> = (0..N * c).map(|i| (0..hw).map(|px| x[(i / c) * hw * c + px * c + i % c] as f64).sum::<f64>() / hw as f64).collect();
    close(&got, &want, "global average pool");
}

/// `b` for the binary/concat tests is computed on the GPU from the input by an Affine step
/// (each element its own scale and shift), itself checked in `affine_hwc_and_flat`.
fn affine_of(rng: &mut Rng, c: usize, hw: usize) -> (Kernel, Vec<f32>, Vec<f32>) {
    let (scale, shift) = (rng.vec(c), rng.vec(c));
    (Kernel::Affine { c, hw, scale: scale.clone(), shift: shift.clone(), act: Act::None }, scale, shift)
}

#[test]
fn binary_add_and_mul_full_and_per_channel() {
    let (c, hw) = (7, 3 * 5);
    let len = c * hw;
    let mut rng = Rng(11);
    let x = rng.vec(N * len);
    let (aff, scale, shift) = affine_of(&mut rng, c, hw);
    let b_full: Vec<f64> = (0..N * len).map(|i| x[i] as f64 * scale[i % c] as f64 + shift[i % c] as f64).collect();
    // Per channel: b = the global average of x (c values per sample).
    let b_chan: Vec<f64> = (0..N * c).map(|i| (0..hw).map(|px| x[(i / c) * len + px * c + i % c] as f64).sum::<f64>() / hw as f64).collect();
    for op in [BinOp::Add, BinOp::Mul] {
        for per_channel in [false, true] {
            for (act, in_place) in [(Act::None, false), (Act::Relu, true), (Act::Sigmoid, false)] {
                let (b_step, b_len) = if per_channel { (Kernel::GlobalAvgPool { c, hw }, c) } else { (aff.clone(), len) };
                // In place: the sum overwrites a (slot 0), as the lowering does when a dies there.
                let out = if in_place { 0 } else { 2 };
                let p = program(
                    vec![c, 3, 5],
                    vec![len, b_len, len],
                    vec![
                        step(b_step, vec![0], 1),
                        step(Kernel::Binary { op, len, b_per_channel: per_channel.then_some(c), act }, vec![0, 1], out),
                    ],
                    out,
                    len,
                );
                let got = run(&p, &x, N);
                let want: Vec<f64> = (0..N * len)
                    .map(|i| {
                        let a = x[i] as f64;
                        let b = if per_channel { b_chan[(i / len) * c + i % c] } else { b_full[i] };
                        act_ref(if op == BinOp::Add { a + b } else { a * b }, act)
                    })
                    .collect();
                close(&got, &want, &format!("binary {op:?} per_channel={per_channel} {act:?} in_place={in_place}"));
            }
        }
    }
}

#[test]
fn concat_three_inputs() {
    let (c0, hw) = (3, 5);
    let mut rng = Rng(12);
    let x = rng.vec(N * c0 * hw);
    let (aff, scale, shift) = affine_of(&mut rng, c0, hw);
    // The third input: 2 channels from a 1x1 convolution of x (HWC, h = 1, w = 5).
    let cv = Conv::new(&mut rng, c0, 1, hw, 2, [1, 1], [1, 1], [0; 4], [1, 1], 1, Act::None);
    let channels = vec![c0, c0, 2];
    let total = 2 * c0 + 2;
    let p = program(
        vec![c0, 1, hw],
        vec![c0 * hw, c0 * hw, 2 * hw, total * hw],
        vec![step(aff, vec![0], 1), step(cv.kernel(), vec![0], 2), step(Kernel::Concat { channels, hw }, vec![0, 1, 2], 3)],
        3,
        total * hw,
    );
    let got = run(&p, &x, N);
    let mut want = vec![];
    for s in 0..N {
        let xs = &x[s * c0 * hw..(s + 1) * c0 * hw];
        let conv = chw_to_hwc(&cv.reference(&hwc_to_chw(&f64s(xs), c0, hw)), 2, hw);
        for px in 0..hw {
            want.extend((0..c0).map(|ch| xs[px * c0 + ch] as f64));
            want.extend((0..c0).map(|ch| xs[px * c0 + ch] as f64 * scale[ch] as f64 + shift[ch] as f64));
            want.extend((0..2).map(|ch| conv[px * 2 + ch]));
        }
    }
    close(&got, &want, "concat");
}

#[test]
fn act_in_place_and_not() {
    let len = 29;
    let x: Vec<f32> = Rng(13).vec(N * len).iter().map(|v| v * 8.0).collect(); // cover relu6's top, tanh's tails
    for act in ACTS {
        for in_place in [false, true] {
            let (slots, out) = if in_place { (vec![len], 0) } else { (vec![len, len], 1) };
            let p = program(vec![len], slots, vec![step(Kernel::Act { act, len }, vec![0], out)], out, len);
            let got = run(&p, &x, N);
            close(&got, &x.iter().map(|&v| act_ref(v as f64, act)).collect::<Vec<_>>(), &format!("act {act:?} in_place={in_place}"));
        }
    }
}

#[test]
fn affine_hwc_and_flat() {
    for (c, hw, act, in_place) in [(5, 11, Act::HardSwish, false), (13, 1, Act::LeakyRelu(0.3), true), (3, 7, Act::None, true)] {
        let mut rng = Rng(14 + c as u64);
        let x = rng.vec(N * c * hw);
        let (scale, shift) = (rng.vec(c), rng.vec(c));
        let out = usize::from(!in_place);
        let p = program(
            vec![c * hw],
            vec![c * hw, c * hw],
            vec![step(Kernel::Affine { c, hw, scale: scale.clone(), shift: shift.clone(), act }, vec![0], out)],
            out,
            c * hw,
        );
        let got = run(&p, &x, N);
        let want: Vec<f64> = x.iter().enumerate().map(|(i, &v)| act_ref(v as f64 * scale[i % c] as f64 + shift[i % c] as f64, act)).collect();
        close(&got, &want, &format!("affine c={c} hw={hw} in_place={in_place}"));
    }
}

#[test]
fn softmax_in_place_and_not() {
    let len = 13;
    let x: Vec<f32> = Rng(15).vec(N * len).iter().map(|v| v * 50.0).collect(); // exp would overflow without the max
    let want: Vec<f64> = x
        .chunks(len)
        .flat_map(|s| {
            let m = s.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
            let e: Vec<f64> = s.iter().map(|&v| (v as f64 - m).exp()).collect();
            let sum: f64 = e.iter().sum();
            e.into_iter().map(move |v| v / sum)
        })
        .collect();
    for in_place in [false, true] {
        let (slots, out) = if in_place { (vec![len], 0) } else { (vec![len, len], 1) };
        let p = program(vec![len], slots, vec![step(Kernel::Softmax { len }, vec![0], out)], out, len);
        close(&run(&p, &x, N), &want, &format!("softmax in_place={in_place}"));
    }
}

#[test]
fn copy() {
    let len = 17;
    let x = Rng(16).vec(N * len);
    let p = program(vec![len], vec![len, len + 4], vec![step(Kernel::Copy { len }, vec![0], 1)], 1, len);
    close(&run(&p, &x, N), &f64s(&x), "copy");
}

// ---------------------------------------------------------------- whole programs

/// NCHW input → HWC → conv3x3+ReLU → conv3x3 → add the input, ReLU → NCHW.
#[test]
fn residual_block() {
    let (c, h, w) = (8, 9, 7);
    let hw = h * w;
    let len = c * hw;
    let mut rng = Rng(17);
    let c1 = Conv::new(&mut rng, c, h, w, c, [3, 3], [1, 1], [1, 1, 1, 1], [1, 1], 1, Act::Relu);
    let c2 = Conv::new(&mut rng, c, h, w, c, [3, 3], [1, 1], [1, 1, 1, 1], [1, 1], 1, Act::None);
    // Slots by liveness, as a lowering would: 0 input (CHW), 1 x (HWC, live to the add),
    // 2 conv1, 0 again for conv2, 2 the sum, 0 the result back in CHW.
    let p = program(
        vec![c, h, w],
        vec![len, len, len],
        vec![
            step(Kernel::Transpose { c, hw, to_hwc: true }, vec![0], 1),
            step(c1.kernel(), vec![1], 2),
            step(c2.kernel(), vec![2], 0),
            step(Kernel::Binary { op: BinOp::Add, len, b_per_channel: None, act: Act::Relu }, vec![0, 1], 2),
            step(Kernel::Transpose { c, hw, to_hwc: false }, vec![2], 0),
        ],
        0,
        len,
    );
    let x = rng.vec(N * len);
    let got = run(&p, &x, N);
    let want = batch(&f64s(&x), len, |s| {
        let y = c2.reference(&c1.reference(s));
        y.iter().zip(s).map(|(a, b)| (a + b).max(0.0)).collect()
    });
    close(&got, &want, "residual block");
}

/// MobileNetV2 inverted residual (stride 2, so no skip) followed by one with the skip:
/// expand 1x1 + ReLU6 → depthwise 3x3 stride 2 + ReLU6 → project 1x1 (linear), then
/// expand → depthwise stride 1 → project, + input; then global average pool and a classifier
/// with softmax.
#[test]
fn mobilenet_v2_inverted_residual_blocks() {
    let (c, h, w, t, co) = (4, 11, 9, 6, 5);
    let relu6 = Act::Clip(0.0, 6.0);
    let mut rng = Rng(18);
    let e1 = Conv::new(&mut rng, c, h, w, c * t, [1, 1], [1, 1], [0; 4], [1, 1], 1, relu6);
    let d1 = Conv::new(&mut rng, c * t, h, w, c * t, [3, 3], [2, 2], [1, 1, 1, 1], [1, 1], c * t, relu6);
    let (h2, w2) = (d1.oh(), d1.ow());
    let p1 = Conv::new(&mut rng, c * t, h2, w2, co, [1, 1], [1, 1], [0; 4], [1, 1], 1, Act::None);
    let e2 = Conv::new(&mut rng, co, h2, w2, co * t, [1, 1], [1, 1], [0; 4], [1, 1], 1, relu6);
    let d2 = Conv::new(&mut rng, co * t, h2, w2, co * t, [3, 3], [1, 1], [1, 1, 1, 1], [1, 1], co * t, relu6);
    let p2 = Conv::new(&mut rng, co * t, h2, w2, co, [1, 1], [1, 1], [0; 4], [1, 1], 1, Act::None);
    let classes = 3;
    let fc_w = rng.vec(co * classes);
    let fc_b = rng.vec(classes);
    let (hw, hw2) = (h * w, h2 * w2);
    let p = program(
        vec![c, h, w],
        vec![c * hw, c * hw, c * t * hw, c * t * hw2, co * hw2, co * t * hw2, co * t * hw2, co * hw2, co * hw2, co, classes],
        vec![
            step(Kernel::Transpose { c, hw, to_hwc: true }, vec![0], 1),
            step(e1.kernel(), vec![1], 2),
            step(d1.kernel(), vec![2], 3),
            step(p1.kernel(), vec![3], 4),
            step(e2.kernel(), vec![4], 5),
            step(d2.kernel(), vec![5], 6),
            step(p2.kernel(), vec![6], 7),
            step(Kernel::Binary { op: BinOp::Add, len: co * hw2, b_per_channel: None, act: Act::None }, vec![7, 4], 8),
            step(Kernel::GlobalAvgPool { c: co, hw: hw2 }, vec![8], 9),
            step(Kernel::Dense { k: co, out: classes, weight: fc_w.clone(), bias: fc_b.clone(), act: Act::None }, vec![9], 10),
            step(Kernel::Softmax { len: classes }, vec![10], 10),
        ],
        10,
        classes,
    );
    let x: Vec<f32> = rng.vec(N * c * hw).iter().map(|v| v * 3.0).collect();
    let got = run(&p, &x, N);
    let want = batch(&f64s(&x), c * hw, |s| {
        let b1 = p1.reference(&d1.reference(&e1.reference(s)));
        let b2 = p2.reference(&d2.reference(&e2.reference(&b1)));
        let sum: Vec<f64> = b2.iter().zip(&b1).map(|(a, b)| a + b).collect();
        let gap: Vec<f64> = (0..co).map(|ch| sum[ch * hw2..(ch + 1) * hw2].iter().sum::<f64>() / hw2 as f64).collect();
        let logits: Vec<f64> = (0..classes).map(|o| fc_b[o] as f64 + (0..co).map(|i| gap[i] * fc_w[i * classes + o] as f64).sum::<f64>()).collect();
        let m = logits.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v));
        let e: Vec<f64> = logits.iter().map(|v| (v - m).exp()).collect();
        let z: f64 = e.iter().sum();
        e.iter().map(|v| v / z).collect()
    });
    close(&got, &want, "MobileNetV2 blocks");
}

// ---------------------------------------------------------------- engine behaviour

fn dense_program(k: usize, out: usize, seed: u64) -> Program {
    let mut rng = Rng(seed);
    let kernel = Kernel::Dense { k, out, weight: rng.vec(k * out), bias: rng.vec(out), act: Act::Relu };
    program(vec![k], vec![k, out], vec![step(kernel, vec![0], 1)], 1, out)
}

#[test]
fn chunked_batches_match_one_batch() {
    let p = dense_program(19, 7, 19);
    let x = Rng(20).vec(11 * 19);
    let whole = run(&p, &x, 11);
    let e = engine(&p, 4);
    assert_eq!(e.chunk(), 4);
    // 11 = 4 + 4 + 3: the uniforms' sample count changes between submits.
    let chunked = block_on(e.run(&x, 11)).unwrap();
    assert_eq!(whole, chunked);
    // And again (the uniforms now hold 3, the first chunk needs 4 again).
    assert_eq!(block_on(e.run(&x, 11)).unwrap(), whole);
    assert_eq!(block_on(e.run(&x[..19], 1)).unwrap(), whole[..7]);
}

#[test]
fn bad_programs_are_refused_at_load() {
    setup();
    let mut p = dense_program(5, 3, 21);
    p.slots[1] = 2; // the output does not fit its slot
    let e = block_on(GpuCore::new(&p, 8)).err().unwrap();
    assert_eq!(e.code, "BAD_MODEL");
    assert!(e.message.contains("output slot 1 cannot hold 3 floats"), "{}", e.message);

    let mut p = dense_program(5, 3, 21);
    p.slots[0] = 4; // the input slot is too small for what the Dense reads
    p.input_len = 4;
    p.input_shape = vec![4];
    let e = block_on(GpuCore::new(&p, 8)).err().unwrap();
    assert_eq!(e.code, "BAD_MODEL");
    assert!(e.message.contains("step 0 (Dense, graph node 0): reads 5 floats per sample in slot 0, which holds 4"), "{}", e.message);

    let mut p = dense_program(5, 3, 21);
    p.steps[0].output = 0; // a Dense in place
    p.slots[0] = 5;
    let e = block_on(GpuCore::new(&p, 8)).err().unwrap();
    assert_eq!(e.code, "BAD_MODEL");
    assert!(e.message.contains("in place"), "{}", e.message);

    let mut p = dense_program(5, 3, 21);
    if let Kernel::Dense { weight, .. } = &mut p.steps[0].kernel {
        weight.pop();
    }
    let e = block_on(GpuCore::new(&p, 8)).err().unwrap();
    assert!(e.message.contains("weight has 14 values, expected 15"), "{}", e.message);

    let mut p = dense_program(5, 3, 21);
    p.steps[0].inputs.push(0);
    assert_eq!(block_on(GpuCore::new(&p, 8)).err().unwrap().code, "BAD_MODEL");

    // Sizes beyond the kernels' 32-bit words: UNSUPPORTED, naming the kernel and the field.
    let c = 1usize << 33;
    let p = program(vec![c], vec![c, c], vec![step(Kernel::Transpose { c, hw: 1, to_hwc: true }, vec![0], 1)], 1, c);
    let e = block_on(GpuCore::new(&p, 8)).err().unwrap();
    assert_eq!(e.code, "UNSUPPORTED");
    assert!(e.message.starts_with("Transpose: c = 8589934592 is too large"), "{}", e.message);
}

#[test]
fn bad_inputs_dispose_and_lost_device() {
    let p = dense_program(6, 2, 22);
    let e = engine(&p, 8);
    assert!(!e.adapter().is_empty());
    assert_eq!(block_on(e.run(&[0.0; 5], 1)).err().unwrap().code, "BAD_INPUT");
    assert_eq!(block_on(e.run(&[], 0)).err().unwrap().code, "BAD_INPUT");
    let mut nan = vec![0.0; 12];
    nan[7] = f32::NAN;
    let err = block_on(e.run(&nan, 2)).err().unwrap();
    assert!(err.message.contains("sample 1, element 1"), "{}", err.message);
    e.dispose();
    assert_eq!(block_on(e.run(&[0.0; 6], 1)).err().unwrap().code, "DISPOSED");
    e.dispose(); // twice is fine

    let e = engine(&p, 8);
    e.lose_device_for_testing();
    let err = block_on(e.run(&[0.0; 6], 1)).err().unwrap();
    assert_eq!(err.code, "NO_WEBGPU", "{}", err.message);
}

// ---------------------------------------------------------------- the shipped models

/// The MNIST models through `program_for` on the GPU against the CPU engine.
#[test]
fn mnist_models_match_the_cpu_engine() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    for name in ["mnist-mlp.mdm", "mnist-cnn.mdm"] {
        let bytes = match std::fs::read(root.join(name)) {
            Ok(b) => b,
            Err(e) => panic!("{name}: {e} (the default models are committed under models/)"),
        };
        let model = mdeploy_core::format::read(&bytes).unwrap();
        let program = mdeploy_wasm::gpu::program_for(&model).unwrap();
        let n = 9;
        let x: Vec<f32> = Rng(23).vec(n * model.input_len()).iter().map(|v| (v + 1.0) / 2.0).collect();
        let mut cpu = mdeploy_wasm::engine::EngineCore::new(&bytes, "cpu", 16).unwrap();
        let want = cpu.run(&x, n).unwrap();
        let got = run(&program, &x, n);
        close(&got, &f64s(&want), name);
    }
}

// ---------------------------------------------------------------- sparse kernels

/// A 90 %-pruned model's program (SparseDense / SparseConv2d steps, which the engine densifies
/// on upload) against the CPU plan of the same program on 200 real test digits.
fn sparse_model_matches_cpu(file: &str, only_conv: bool) {
    let model = mdeploy_testkit::mnist::trained_model(file).unwrap_or_else(|e| panic!("{e}"));
    let model = mdeploy_testkit::prune::pruned_sparse(model, 0.9, only_conv).unwrap_or_else(|e| panic!("{e}"));
    let p = mdeploy_core::lower::lower(&model.graph, &model.meta.input_shape).unwrap();
    let sparse = p.steps.iter().filter(|s| s.kernel.name().starts_with("Sparse")).count();
    assert!(sparse >= 2, "{file}: only {sparse} sparse steps");
    let (xs, labels) = mdeploy_testkit::mnist::test_subset(&mdeploy_testkit::mnist::interleaved_test_indices(20)).unwrap();
    let n = labels.len();
    let got = run(&p, &xs, n);
    let budget = mdeploy_core::budget::arena_budget(&model.graph);
    let mut plan = mdeploy_core::Plan::from_program(p.clone(), 64, mdeploy_core::kernels::KernelSet::best(), budget).unwrap();
    let mut want = vec![0.0f32; n * p.output_len];
    plan.run(&xs, n, &mut want).unwrap();
    let want: Vec<f64> = want.iter().map(|&v| v as f64).collect();
    close(&got, &want, file);
}

#[test]
fn sparse_mlp_runs_densified() {
    sparse_model_matches_cpu("mnist-mlp.mdm", false);
}

#[test]
fn sparse_cnn_convs_run_densified() {
    sparse_model_matches_cpu("mnist-cnn.mdm", true);
}

#[test]
fn hostile_sparse_weights_are_refused_at_load() {
    setup();
    let w = mdeploy_core::lower::SparseW::from_dense(5, 3, &Rng(3).vec(15));
    let sp = |w: mdeploy_core::lower::SparseW| {
        let kernel = Kernel::SparseDense { k: 5, out: 3, weight: w, bias: vec![0.0; 3], act: Act::None };
        program(vec![5], vec![5, 3], vec![step(kernel, vec![0], 1)], 1, 3)
    };
    let mut bad_idx = w.clone();
    bad_idx.idx[0] = 99;
    let mut huge = w.clone();
    huge.rows = 1 << 40;
    for (what, w) in [("index", bad_idx), ("size", huge)] {
        let e = block_on(GpuCore::new(&sp(w), 8)).err().unwrap_or_else(|| panic!("{what}: accepted"));
        assert_eq!(e.code, "BAD_MODEL", "{what}: {}", e.message);
        assert!(e.message.contains("SparseDense"), "{what}: {}", e.message);
    }
    // Consistent but huge once densified: refused before allocating it.
    let big = 1usize << 28;
    let w_big = mdeploy_core::lower::SparseW { rows: big, cols: 3, ptr: vec![0, 1, 1, 1], idx: vec![7], val: vec![1.0] };
    let kernel = Kernel::SparseDense { k: big, out: 3, weight: w_big, bias: vec![0.0; 3], act: Act::None };
    let e = block_on(GpuCore::new(&program(vec![big], vec![big, 3], vec![step(kernel, vec![0], 1)], 1, 3), 8)).err().expect("huge accepted");
    assert_eq!(e.code, "UNSUPPORTED", "{}", e.message);
    assert!(e.message.contains("too large to densify"), "{}", e.message);
    // The good one loads and runs like its dense twin.
    let x = Rng(4).vec(2 * 5);
    let dense = Program { steps: sp(w.clone()).steps.into_iter().map(|mut s| { s.kernel = s.kernel.densified(); s }).collect(), ..sp(w.clone()) };
    assert_eq!(run(&sp(w), &x, 2), run(&dense, &x, 2));
}

// ---------------------------------------------------------------- integer kernels (QUANT.md)

use mdeploy_core::kernels::quant::{epilogue_row, QOut, QParams, Requant};

/// Bit-for-bit equality of two f32 vectors, naming the first difference.
fn same_bits(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let diff = got.iter().zip(want).filter(|(g, w)| g.to_bits() != w.to_bits()).count();
    if let Some(i) = got.iter().zip(want).position(|(g, w)| g.to_bits() != w.to_bits()) {
        panic!("{what}: {diff} of {} values differ in their bits; first at {i}: got {} ({:#x}), want {} ({:#x})", got.len(), got[i], got[i].to_bits(), want[i], want[i].to_bits());
    }
}

/// The CPU executor's output for a hand-made program (the reference of the whole-program tests).
fn cpu_plan(p: &Program, x: &[f32], n: usize) -> Vec<f32> {
    let mut plan = mdeploy_core::Plan::from_program(p.clone(), 64, mdeploy_core::kernels::KernelSet::best(), 1 << 30).unwrap();
    let mut y = vec![0.0f32; n * p.output_len];
    plan.run(x, n, &mut y).unwrap();
    y
}

struct IRng(u64);
impl IRng {
    fn u(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) % n
    }
    fn codes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.u(256) as u8).collect()
    }
    /// int8 weights `[k, cols]` with ±127 sprinkled in and column `zero_col` all zeros.
    fn weights(&mut self, k: usize, cols: usize, zero_col: usize) -> Vec<i8> {
        (0..k * cols)
            .map(|i| match (i % cols == zero_col, self.u(9)) {
                (true, _) => 0,
                (false, 0) => if self.u(2) == 0 { 127 } else { -127 },
                _ => (self.u(255) as i32 - 127) as i8,
            })
            .collect()
    }
}

/// Requantization epilogues over 5 columns that hit every branch of `Requant::apply`: a plain
/// multiplier, a left shift that saturates, a right shift of 31, the zero multiplier, and an
/// ordinary one under a bias that saturates `acc + bias`.
fn requant_cols(out: QParams, lo: i32) -> QOut {
    let mult = [3.7e-4, 900.0, 2.0f64.powi(-31) * 1.5, 1e-12, 2.1e-2].iter().map(|&m| Requant::from_real(m).unwrap()).collect();
    QOut::Requant { out, mult, lo }
}

/// The integer steps' reference: codes from the on-grid inputs, i64 sums, then `epilogue_row`
/// (the specification in `core/kernels/src/quant.rs`). `rows` are the im2col rows of codes.
fn int_ref(rows: &[Vec<u8>], w: &[i8], cols: usize, bias: &[i32], epi: &QOut) -> Vec<f32> {
    let mut y = vec![0.0f32; rows.len() * cols];
    for (r, row) in rows.iter().enumerate() {
        let acc: Vec<i32> = (0..cols).map(|c| row.iter().enumerate().map(|(k, &q)| i64::from(q) * i64::from(w[k * cols + c])).sum::<i64>() as i32).collect();
        epilogue_row(&acc, bias, epi, &mut y[r * cols..(r + 1) * cols]);
    }
    y
}

#[test]
fn qdense_matches_the_integer_spec_bit_for_bit() {
    let (k, cols, n) = (37, 5, 4); // k not a multiple of 4: the packed words' padding bytes
    let xg = QParams { scale: 0.0173, zero_point: 91 };
    let mut r = IRng(7);
    let w = r.weights(k, cols, 2);
    let codes = r.codes(n * k);
    let x: Vec<f32> = codes.iter().map(|&q| xg.dequantize(i32::from(q))).collect();
    let rows: Vec<Vec<u8>> = codes.chunks(k).map(|c| c.to_vec()).collect();
    // Column 3's bias saturates acc + bias upward, column 4's downward.
    let bias = vec![-91 * 3, 12_345, 0, i32::MAX - 5, i32::MIN + 7];
    for (what, epi) in [
        ("requantized", requant_cols(QParams { scale: 0.05, zero_point: 3 }, 0)),
        ("requantized, ReLU floor", requant_cols(QParams { scale: 0.05, zero_point: 200 }, 200)),
        ("dequantized", QOut::Dequant { scale: vec![1e-3, 0.37, 1.0, 3e-9, 7.5], relu: false }),
        ("dequantized, ReLU", QOut::Dequant { scale: vec![1e-3, 0.37, 1.0, 3e-9, 7.5], relu: true }),
    ] {
        let kernel = Kernel::QDense { k, out: cols, weight: w.clone(), bias: bias.clone(), input: xg, epi: epi.clone() };
        let p = program(vec![k], vec![k, cols], vec![step(kernel, vec![0], 1)], 1, cols);
        same_bits(&run(&p, &x, n), &int_ref(&rows, &w, cols, &bias, &epi), what);
    }
    // Sums beyond 2^24 through the dequantized path (WGSL's i32 -> f32 need not round there).
    let big = vec![(1 << 30) + 12_345_679, -(1 << 29) - 77_777_777, 16_777_217, -16_777_219, 33_554_435];
    let epi = QOut::Dequant { scale: vec![1.0; cols], relu: false };
    let kernel = Kernel::QDense { k, out: cols, weight: w.clone(), bias: big.clone(), input: xg, epi: epi.clone() };
    let p = program(vec![k], vec![k, cols], vec![step(kernel, vec![0], 1)], 1, cols);
    same_bits(&run(&p, &x, n), &int_ref(&rows, &w, cols, &big, &epi), "dequantized sums beyond 2^24");
}

/// The requantization's ties and extremes, one column per case: k = 1, the input code 0, so
/// `acc + bias` is the column's bias; every integer in −700..=700 through multipliers whose
/// `srdhm` and rounding shift both hit ties (0.5, 0.125, 0.75, 1.5 · 2^−10: QUANT.md's double
/// rounding `1535 · 2^−10`), and i32 extremes through a saturating left shift.
#[test]
fn requantization_ties_and_extremes_match_the_spec() {
    let mut bias = Vec::new();
    let mut mult = Vec::new();
    for m in [0.5, 0.125, 0.75, 1.5 * 2f64.powi(-10)] {
        for x in -700..=700 {
            bias.push(x);
            mult.push(Requant::from_real(m).unwrap());
        }
    }
    for x in [i32::MAX, i32::MIN, i32::MAX / 3, i32::MIN / 3 - 1, 1 << 20, -(1 << 20) - 1] {
        for m in [900.0, 3.0, 1e-9, 2f64.powi(-31) * 1.5] {
            bias.push(x);
            mult.push(Requant::from_real(m).unwrap());
        }
    }
    let cols = bias.len();
    let xg = QParams { scale: 1.0, zero_point: 0 };
    let epi = QOut::Requant { out: QParams { scale: 1.0, zero_point: 128 }, mult, lo: 0 };
    let weight = vec![1i8; cols];
    let kernel = Kernel::QDense { k: 1, out: cols, weight: weight.clone(), bias: bias.clone(), input: xg, epi: epi.clone() };
    let p = program(vec![1], vec![1, cols], vec![step(kernel, vec![0], 1)], 1, cols);
    same_bits(&run(&p, &[0.0], 1), &int_ref(&[vec![0u8]], &weight, cols, &bias, &epi), "requantization ties and extremes");
}

#[test]
fn qconv2d_padded_strided_dilated_matches_the_integer_spec() {
    let (c, h, wd, oc) = (3, 7, 6, 5);
    let (kh, kw, sh, sw, dh, dw) = (3, 2, 2, 1, 1, 2);
    let pad = [1, 2, 2, 1];
    let oh = (h + pad[0] + pad[2] - dh * (kh - 1) - 1) / sh + 1;
    let ow = (wd + pad[1] + pad[3] - dw * (kw - 1) - 1) / sw + 1;
    let win = Window { c, h, w: wd, kh, kw, sh, sw, pad, dh, dw, oh, ow };
    let xg = QParams { scale: 0.0041, zero_point: 17 };
    let mut r = IRng(11);
    let kk = kh * kw * c;
    let w = r.weights(kk, oc, 1);
    let n = 3;
    let codes = r.codes(n * h * wd * c); // HWC
    let x: Vec<f32> = codes.iter().map(|&q| xg.dequantize(i32::from(q))).collect();
    // im2col in (ky, kx, ci) order; padded cells are the zero point.
    let mut rows = Vec::new();
    for s in 0..n {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut row = Vec::with_capacity(kk);
                for ky in 0..kh {
                    for kx in 0..kw {
                        let yy = (oy * sh + ky * dh) as isize - pad[0] as isize;
                        let xx = (ox * sw + kx * dw) as isize - pad[1] as isize;
                        for ci in 0..c {
                            let inside = yy >= 0 && yy < h as isize && xx >= 0 && xx < wd as isize;
                            row.push(if inside { codes[s * h * wd * c + (yy as usize * wd + xx as usize) * c + ci] } else { 17 });
                        }
                    }
                }
                rows.push(row);
            }
        }
    }
    let bias = vec![-17 * 5, 999, 0, i32::MAX - 1, -40_000];
    for (what, epi) in [
        ("requantized, ReLU floor", requant_cols(QParams { scale: 0.02, zero_point: 9 }, 9)),
        ("dequantized", QOut::Dequant { scale: vec![0.5, 1e-4, 2.0, 1e-9, 0.031], relu: false }),
    ] {
        let kernel = Kernel::QConv2d { win, out_c: oc, weight: w.clone(), bias: bias.clone(), input: xg, epi: epi.clone() };
        let p = program(vec![h * wd * c], vec![h * wd * c, oh * ow * oc], vec![step(kernel, vec![0], 1)], 1, oh * ow * oc);
        same_bits(&run(&p, &x, n), &int_ref(&rows, &w, oc, &bias, &epi), what);
    }
}

/// A whole integer program as the lowering writes them (Quantize of the input, requantizing
/// QDense, dequantizing QDense, Softmax in place) against the CPU executor, on inputs that are
/// off the grid: exact ties of `x / s`, negatives, values far beyond the range.
#[test]
fn integer_program_quantizes_input_and_softmax_like_the_cpu() {
    let (k, h, o, n) = (23, 9, 6, 7);
    let xg = QParams { scale: 0.25, zero_point: 40 };
    let hg = QParams { scale: 0.11, zero_point: 5 };
    let mut r = IRng(5);
    let w1 = r.weights(k, h, 4);
    let w2 = r.weights(h, o, 0);
    let mult1: Vec<Requant> = (0..h).map(|c| Requant::from_real(0.25 * (0.004 + c as f64 * 1e-3) / 0.11).unwrap()).collect();
    let steps = vec![
        step(Kernel::Quantize { len: k, q: xg }, vec![0], 1),
        step(Kernel::QDense { k, out: h, weight: w1, bias: (0..h as i32).map(|c| c * 37 - 100).collect(), input: xg, epi: QOut::Requant { out: hg, mult: mult1, lo: 5 } }, vec![1], 2),
        step(Kernel::QDense { k: h, out: o, weight: w2, bias: vec![3, -2, 1000, 0, -77, 5], input: hg, epi: QOut::Dequant { scale: vec![0.01, 0.02, 0.005, 0.03, 0.011, 0.017], relu: false } }, vec![2], 3),
        step(Kernel::Softmax { len: o }, vec![3], 3),
    ];
    let p = program(vec![k], vec![k, k, h, o], steps, 3, o);
    // Ties (0.125 = half a step, 0.375, …), −0, values that clamp, ordinary values.
    let x: Vec<f32> = (0..n * k).map(|i| match i % 5 { 0 => (i as f32 - 60.0) * 0.125, 1 => -0.0, 2 => 1e6 * if i % 2 == 0 { 1.0 } else { -1.0 }, _ => (i as f32 * 0.731).sin() * 20.0 }).collect();
    let e = engine(&p, 64);
    let got = block_on(e.run(&x, n)).unwrap();
    same_bits(&got, &cpu_plan(&p, &x, n), "Quantize > QDense > QDense > Softmax");
}

/// A Quantize of an intermediate value (quantize.wgsl: thresholds from the CPU's own quantize,
/// no division) gives the CPU's bits on every threshold and its two neighbours, exact ties of
/// `x / s`, ±0, subnormals, ±f32::MAX and values that clamp, on four grids. (NaN and ±∞ cannot
/// be program inputs, the engines refuse them, and WGSL does not promise IEEE specials.)
#[test]
fn intermediate_quantize_gives_the_cpu_bits() {
    let next = |x: f32, up: bool| -> f32 {
        // The adjacent f32 (finite inputs), through the ordered keys.
        let b = x.to_bits() as i64;
        let k = if b >> 31 == 1 { -(b & 0x7fff_ffff) } else { b };
        let k = if up { k + 1 } else { k - 1 };
        if k < 0 { f32::from_bits(0x8000_0000 | (-k) as u32) } else { f32::from_bits(k as u32) }
    };
    for q in [
        QParams { scale: 1.0 / 255.0, zero_point: 0 },
        QParams { scale: 0.11, zero_point: 5 },
        QParams { scale: 0.25, zero_point: 40 },
        QParams { scale: 3.7e-3, zero_point: 255 },
    ] {
        let thr = mdeploy_wasm::gpu::engine::quantize_thresholds(q).expect("a normal grid has thresholds");
        // The thresholds themselves, against the CPU's function: thr[j] is the first f32 with code >= j.
        for j in 1..=255usize {
            assert!(i32::from(q.quantize(thr[j])) >= j as i32 && (i32::from(q.quantize(next(thr[j], false))) < j as i32), "{q:?}: threshold {j}");
        }
        let mut x: Vec<f32> = thr[1..].iter().flat_map(|&t| [next(t, false), t, next(t, true)]).collect();
        x.extend((-300..300).map(|i| (i as f32 + 0.5) * q.scale)); // ties of x / s (where exact)
        x.extend([0.0, -0.0, 1e-45, -1e-45, 1e-39, -1e-39, f32::MAX, f32::MIN, 1e6, -1e6]);
        let len = 31;
        x.resize(x.len().div_ceil(len) * len, 0.5);
        let n = x.len() / len;
        // Act(None) first, so the Quantize reads an intermediate value; then once in place.
        for in_place in [false, true] {
            let out = if in_place { 1 } else { 2 };
            let steps = vec![step(Kernel::Act { act: Act::None, len }, vec![0], 1), step(Kernel::Quantize { len, q }, vec![1], out)];
            let p = program(vec![len], vec![len, len, len], steps, out, len);
            let got = block_on(engine(&p, 64).run(&x, n)).unwrap();
            same_bits(&got, &cpu_plan(&p, &x, n), &format!("intermediate Quantize {q:?}, in place {in_place}"));
        }
    }
}

/// What the WGSL cannot reproduce exactly is refused, so `'auto'` keeps it on the CPU: a
/// subnormal grid or dequantization scale (a GPU may flush subnormals to zero).
#[test]
fn subnormal_scales_are_refused() {
    setup();
    let q = QParams { scale: 1e-40, zero_point: 0 };
    assert!(mdeploy_wasm::gpu::engine::quantize_thresholds(q).is_none());
    let steps = vec![step(Kernel::Act { act: Act::Relu, len: 4 }, vec![0], 1), step(Kernel::Quantize { len: 4, q }, vec![1], 2)];
    let p = program(vec![4], vec![4, 4, 4], steps, 2, 4);
    let e = block_on(GpuCore::new(&p, 8)).err().expect("a Quantize with a subnormal scale was accepted by WebGPU");
    assert_eq!(e.code, "UNSUPPORTED", "{}", e.message);
    assert!(e.message.contains("Quantize") && e.message.contains("backend: 'cpu'"), "{}", e.message);
    // A subnormal dequantization scale.
    let q = QParams { scale: 1.0 / 255.0, zero_point: 0 };
    let kernel = Kernel::QDense { k: 2, out: 1, weight: vec![1, 2], bias: vec![0], input: q, epi: QOut::Dequant { scale: vec![1e-40], relu: false } };
    let p = program(vec![2], vec![2, 1], vec![step(kernel, vec![0], 1)], 1, 1);
    let e = block_on(GpuCore::new(&p, 8)).err().expect("a subnormal scale was accepted by WebGPU");
    assert_eq!(e.code, "UNSUPPORTED", "{}", e.message);
    assert!(e.message.contains("not a normal f32"), "{}", e.message);
    // A subnormal binary scale.
    let kernel = Kernel::BDense { k: 2, out: 1, plus: vec![true, false], alpha: vec![1e-40], bias: vec![0.0], act: Act::None };
    let p = program(vec![2], vec![2, 1], vec![step(kernel, vec![0], 1)], 1, 1);
    let e = block_on(GpuCore::new(&p, 8)).err().expect("a subnormal binary scale was accepted by WebGPU");
    assert_eq!(e.code, "UNSUPPORTED", "{}", e.message);
    assert!(e.message.contains("BDense") && e.message.contains("not a normal f32"), "{}", e.message);
}

/// `BDense` against a reference written here (the sign bits of the input, the ±1 products
/// summed as integers, then `alpha·dot + bias` in f32, as QUANT.md specifies), bit for bit: k =
/// 37 (a word's padding bits) and 70 (three words), zero inputs (+1), −0 (+1), an all-zero
/// scale, ReLU and none.
#[test]
fn bdense_matches_the_binary_spec_bit_for_bit() {
    for (k, out, act) in [(37usize, 5usize, Act::None), (70, 9, Act::Relu), (1, 3, Act::None)] {
        let n = 6;
        let mut r = IRng(k as u64 * 31 + 7);
        let plus: Vec<bool> = (0..k * out).map(|_| r.u(2) == 1).collect();
        let alpha: Vec<f32> = (0..out).map(|c| if c == 1 { 0.0 } else { 0.013 + c as f32 * 0.0071 }).collect();
        let bias: Vec<f32> = (0..out).map(|c| (c as f32 - 2.0) * 0.37).collect();
        let mut x: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.618).sin()).collect();
        for (i, v) in x.iter_mut().enumerate() {
            match i % 11 {
                0 => *v = 0.0,
                1 => *v = -0.0,
                _ => {}
            }
        }
        let mut want = vec![0.0f32; n * out];
        for s in 0..n {
            for c in 0..out {
                let dot: i32 = (0..k).map(|j| if (x[s * k + j] >= 0.0) == plus[j * out + c] { 1 } else { -1 }).sum();
                let v = alpha[c] * dot as f32 + bias[c];
                want[s * out + c] = if act == Act::Relu { v.max(0.0) } else { v };
            }
        }
        let kernel = Kernel::BDense { k, out, plus, alpha, bias, act };
        let p = program(vec![k], vec![k, out], vec![step(kernel, vec![0], 1)], 1, out);
        let got = run(&p, &x, n);
        same_bits(&got, &want, &format!("BDense k {k} out {out}"));
        same_bits(&got, &cpu_plan(&p, &x, n), &format!("BDense k {k} out {out} vs the CPU executor"));
    }
}

/// A whole binary program as the lowering writes them (QUANT.md, "Binary"): Quantize of the
/// input, dequantizing QDense, Affine (BatchNorm), Sign in place, BDense, Affine + ReLU, an
/// intermediate Quantize in place, QDense, Softmax, against the CPU executor bit for bit.
#[test]
fn binary_program_gives_the_cpu_bits() {
    let (k, h, o, n) = (29, 40, 7, 9);
    let xg = QParams { scale: 1.0 / 255.0, zero_point: 0 };
    let hg = QParams { scale: 0.093, zero_point: 3 };
    let mut r = IRng(11);
    let w1 = r.weights(k, h, 2);
    let w2 = r.weights(h, o, 1);
    let plus: Vec<bool> = (0..h * h).map(|_| r.u(2) == 1).collect();
    let mut f = Rng(3);
    let bn = |f: &mut Rng| (f.vec(h).iter().map(|v| 1.0 + 0.5 * v).collect::<Vec<f32>>(), f.vec(h));
    let (s1, t1) = bn(&mut f);
    let (s2, t2) = bn(&mut f);
    let alpha: Vec<f32> = f.vec(h).iter().map(|v| 0.02 + 0.01 * v.abs()).collect();
    let steps = vec![
        step(Kernel::Quantize { len: k, q: xg }, vec![0], 1),
        step(Kernel::QDense { k, out: h, weight: w1, bias: (0..h as i32).map(|c| c * 13 - 200).collect(), input: xg, epi: QOut::Dequant { scale: (0..h).map(|c| 1e-3 + c as f32 * 1e-5).collect(), relu: false } }, vec![1], 2),
        step(Kernel::Affine { c: h, hw: 1, scale: s1, shift: t1, act: Act::None }, vec![2], 2),
        step(Kernel::Sign { len: h }, vec![2], 2),
        step(Kernel::BDense { k: h, out: h, plus, alpha, bias: f.vec(h), act: Act::None }, vec![2], 3),
        step(Kernel::Affine { c: h, hw: 1, scale: s2, shift: t2, act: Act::Relu }, vec![3], 3),
        step(Kernel::Quantize { len: h, q: hg }, vec![3], 3),
        step(Kernel::QDense { k: h, out: o, weight: w2, bias: vec![5, -9, 300, 0, -1, 77, 2], input: hg, epi: QOut::Dequant { scale: vec![0.01, 0.02, 0.005, 0.03, 0.011, 0.017, 0.004], relu: false } }, vec![3], 4),
        step(Kernel::Softmax { len: o }, vec![4], 4),
    ];
    let p = program(vec![k], vec![k, k, h, h, o], steps, 4, o);
    let x: Vec<f32> = (0..n * k).map(|i| ((i as f32 * 0.377).sin() + 1.0) / 2.0).collect();
    let got = block_on(engine(&p, 64).run(&x, n)).unwrap();
    same_bits(&got, &cpu_plan(&p, &x, n), "Quantize > QDense > Affine > Sign > BDense > Affine+ReLU > Quantize > QDense > Softmax");
}

/// The default integer and binary models (models/bitexact.json) on WebGPU give the CPU
/// engine's output bits on the fixed split's 2,000 test digits.
#[test]
fn integer_default_models_give_the_cpu_bits() {
    let (xs, labels) = mdeploy_testkit::mnist::test_digits().unwrap_or_else(|e| panic!("{e}"));
    let n = labels.len();
    assert_eq!(n, 2000);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    // The one list (models/bitexact.json), which every host's bit-exactness suite reads.
    let list = std::fs::read_to_string(root.join("bitexact.json")).unwrap_or_else(|e| panic!("models/bitexact.json: {e}"));
    let names: Vec<String> = serde_json::from_str(&list).unwrap_or_else(|e| panic!("models/bitexact.json: {e}"));
    assert!(names.iter().any(|n| n == "mnist-mlp-binary.mdm"), "the binary default is in models/bitexact.json");
    for name in &names {
        let bytes = std::fs::read(root.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let model = mdeploy_core::format::read(&bytes).unwrap();
        let program = mdeploy_wasm::gpu::program_for(&model).unwrap();
        let integer = program.steps.iter().filter(|s| matches!(s.kernel, Kernel::QDense { .. } | Kernel::QConv2d { .. } | Kernel::BDense { .. })).count();
        assert!(integer >= 2, "{name}: only {integer} integer steps");
        let mut cpu = mdeploy_wasm::engine::EngineCore::new(&bytes, "cpu", 256).unwrap();
        let want = cpu.run(&xs, n).unwrap();
        let e = engine(&program, 256);
        let got = block_on(e.run(&xs, n)).unwrap_or_else(|err| panic!("{name}: {err}"));
        same_bits(&got, &want, name);
        // The digest as native_ref and the JS suites write it (one FNV-1a step per f32 word).
        let fnv = got.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, v| (h ^ u64::from(v.to_bits())).wrapping_mul(0x100_0000_01b3));
        eprintln!("{name}: {integer} integer steps, 2000 digits, WebGPU = CPU bits, FNV-1a {fnv:016x}");
    }
}
