//! The catalogue of WGSL kernels: one file per [`Kernel`](mdeploy_core::lower::Kernel) variant
//! beside this file, plus what the Rust side generates around each (the uniform struct from its
//! [`Spec`], the binding declarations, the fused-activation epilogue). A kernel file holds only
//! its `main`; everything it refers to (`p`, `y`, the inputs and weights by name, `act`, `ld`,
//! `flat`) comes from [`source`].

use super::params::{self, Spec, Ty};
use mdeploy_core::lower::Act;

/// `@workgroup_size` of every kernel (written as a literal in each file): one invocation per
/// output value, except softmax (one per sample).
pub const WG: u64 = 64;


pub struct Def {
    /// File stem and pipeline label.
    pub name: &'static str,
    pub source: &'static str,
    /// Uniform fields; a kernel with `act` ends with `act: u32, act_a: f32, act_b: f32` (the
    /// epilogue's operands, see `ACT_WGSL`).
    pub params: Spec,
    /// Read-only storage inputs that are activations (slots), bound after `y` in this order.
    pub inputs: &'static [&'static str],
    /// Read-only storage inputs uploaded once at load (weights), bound after the inputs.
    /// `name` is an `array<f32>`; `name:u32` / `name:i32` an array of that type (the integer
    /// kernels' packed weights, biases and multipliers, uploaded as their bits).
    pub weights: &'static [&'static str],
    /// WGSL prepended to the kernel file after the declarations (the integer epilogue).
    pub prelude: &'static str,
    pub act: bool,
    /// Reads its first input through `ld(i)`, so the same source can run in place (input 0 is
    /// then the output buffer itself, read through `y`: WebGPU forbids binding one buffer both
    /// read-only and read-write in a dispatch). Elementwise kernels only: each invocation reads
    /// its own element before writing it.
    pub in_place: bool,
}

macro_rules! def {
    ($name:literal, [$($f:literal : $t:ident),*], inputs [$($i:literal),*], weights [$($w:literal),*], act false, in_place $ip:literal) => {
        Def {
            name: $name,
            source: include_str!(concat!($name, ".wgsl")),
            params: &[$(($f, Ty::$t)),*],
            inputs: &[$($i),*],
            weights: &[$($w),*],
            prelude: "",
            act: false,
            in_place: $ip,
        }
    };
    ($name:literal, [$($f:literal : $t:ident),*], inputs [$($i:literal),*], weights [$($w:literal),*], act true, in_place $ip:literal) => {
        Def {
            name: $name,
            source: include_str!(concat!($name, ".wgsl")),
            params: &[$(($f, Ty::$t)),*, ("act", Ty::U32), ("act_a", Ty::F32), ("act_b", Ty::F32)],
            inputs: &[$($i),*],
            weights: &[$($w),*],
            prelude: "",
            act: true,
            in_place: $ip,
        }
    };
}

pub const TRANSPOSE: Def = def!("transpose", ["n": U32, "c": U32, "hw": U32, "to_hwc": U32], inputs ["x"], weights [], act false, in_place false);
pub const DENSE: Def = def!("dense", ["n": U32, "k": U32, "out": U32], inputs ["x"], weights ["w", "b"], act true, in_place false);
pub const CONV2D: Def = def!("conv2d",
    ["n": U32, "c": U32, "h": U32, "w": U32, "kh": U32, "kw": U32, "sh": U32, "sw": U32,
     "pt": U32, "pl": U32, "dh": U32, "dw": U32, "oh": U32, "ow": U32, "oc": U32, "groups": U32],
    inputs ["x"], weights ["wt", "b"], act true, in_place false);
pub const POOL: Def = def!("pool",
    ["n": U32, "c": U32, "h": U32, "w": U32, "kh": U32, "kw": U32, "sh": U32, "sw": U32,
     "pt": U32, "pl": U32, "pb": U32, "pr": U32, "oh": U32, "ow": U32, "kind": U32],
    inputs ["x"], weights [], act false, in_place false);
pub const GLOBAL_AVG_POOL: Def = def!("global_avg_pool", ["n": U32, "c": U32, "hw": U32], inputs ["x"], weights [], act false, in_place false);
pub const BINARY: Def = def!("binary", ["n": U32, "len": U32, "bc": U32, "op": U32], inputs ["a", "b"], weights [], act true, in_place true);
pub const CONCAT: Def = def!("concat", ["n": U32, "hw": U32, "cin": U32, "ctot": U32, "coff": U32], inputs ["x"], weights [], act false, in_place false);
pub const ACT: Def = def!("act", ["n": U32, "len": U32], inputs ["x"], weights [], act true, in_place true);
pub const AFFINE: Def = def!("affine", ["n": U32, "c": U32, "hw": U32, "one": F32], inputs ["x"], weights ["scale", "shift"], act true, in_place true);
pub const SOFTMAX: Def = def!("softmax", ["n": U32, "len": U32], inputs ["x"], weights [], act false, in_place true);
pub const COPY: Def = def!("copy", ["n": U32, "len": U32], inputs ["x"], weights [], act false, in_place false);

/// The integer kernels' shared uniform tail (`qepi.wgsl`): the input grid (`inv` = 1/s_x, `zp`)
/// and the epilogue (`mode` 0 requantize / 1 dequantize, `relu`, `ozp`, `lo`, `oscale`).
const QEPI: &str = include_str!("qepi.wgsl");
pub const QDENSE: Def = Def {
    prelude: QEPI,
    ..def!("qdense",
        ["n": U32, "k": U32, "out": U32, "inv": F32, "zp": U32, "mode": U32, "relu": U32, "ozp": U32, "lo": U32, "oscale": F32],
        inputs ["x"], weights ["w:u32", "bias:i32", "mult:i32", "shift:i32", "dscale"], act false, in_place false)
};
pub const QCONV2D: Def = Def {
    prelude: QEPI,
    ..def!("qconv2d",
        ["n": U32, "c": U32, "h": U32, "w": U32, "kh": U32, "kw": U32, "sh": U32, "sw": U32,
         "pt": U32, "pl": U32, "dh": U32, "dw": U32, "oh": U32, "ow": U32, "oc": U32,
         "inv": F32, "zp": U32, "mode": U32, "relu": U32, "ozp": U32, "lo": U32, "oscale": F32],
        inputs ["x"], weights ["wt:u32", "bias:i32", "mult:i32", "shift:i32", "dscale"], act false, in_place false)
};

/// The binary kernels (QUANT.md, "Binary"): `Sign` writes ±1, `BDense` reads the signs of its
/// input as bits (`wb`: the ±1 weights, 32 rows per `u32` per column) and XORs + counts them;
/// `one` is 1.0, there to keep the product and the bias from being fused (see the file).
pub const SIGN: Def = def!("sign", ["n": U32, "len": U32], inputs ["x"], weights [], act false, in_place true);
pub const BDENSE: Def = def!("bdense", ["n": U32, "k": U32, "out": U32, "one": F32], inputs ["x"], weights ["wb:u32", "alpha", "bias"], act true, in_place false);
/// A `Quantize` of an intermediate value, exact through thresholds computed on the CPU
/// (`thr`, 256 values: index j is the smallest input whose code is >= j; 0 unused).
pub const QUANTIZE: Def = def!("quantize", ["n": U32, "len": U32, "zp": U32, "scale": F32], inputs ["x"], weights ["thr"], act false, in_place true);

/// Every kernel, in a fixed order (pipelines are cached by index into this list).
pub const ALL: [&Def; 16] =
    [&TRANSPOSE, &DENSE, &CONV2D, &POOL, &GLOBAL_AVG_POOL, &BINARY, &CONCAT, &ACT, &AFFINE, &SOFTMAX, &COPY, &QDENSE, &QCONV2D, &SIGN, &BDENSE, &QUANTIZE];

impl Def {
    /// The uniform's fields (act fields included when `act`).
    pub fn spec(&self) -> Spec {
        self.params
    }

    /// The full WGSL: generated declarations, then the kernel file.
    pub fn source(&self, in_place: bool) -> String {
        let mut s = String::new();
        s.push_str(&params::wgsl(self.spec()));
        s.push_str("@group(0) @binding(0) var<uniform> p: P;\n");
        s.push_str("@group(0) @binding(1) var<storage, read_write> y: array<f32>;\n");
        // Binding numbers: 0 = `p`, 1 = `y`, then the inputs (in place: not input 0), then the
        // weights; engine.rs binds in the same order.
        let mut b = 2;
        let skip = usize::from(in_place);
        for name in &self.inputs[skip..] {
            s.push_str(&format!("@group(0) @binding({b}) var<storage, read> {name}: array<f32>;\n"));
            b += 1;
        }
        for spec in self.weights {
            let (name, ty) = spec.split_once(':').unwrap_or((*spec, "f32"));
            s.push_str(&format!("@group(0) @binding({b}) var<storage, read> {name}: array<{ty}>;\n"));
            b += 1;
        }
        if self.in_place {
            let src = if in_place { "y" } else { self.inputs[0] };
            s.push_str(&format!("fn ld(i: u32) -> f32 {{ return {src}[i]; }}\n"));
        }
        // A 2-D dispatch (≤ 65535 workgroups per dimension) flattened back to one index.
        s.push_str("fn flat(wg: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 { return (wg.y * nwg.x + wg.x) * 64u + li; }\n");
        if self.act {
            s.push_str(ACT_WGSL);
        }
        s.push_str(self.prelude);
        s.push_str(self.source);
        s
    }
}

/// The fused epilogue, the same function as the CPU's (`core`'s `Act`): codes from [`act_words`].
const ACT_WGSL: &str = "
fn act(v: f32) -> f32 {
  switch p.act {
    case 1u: { return max(v, 0.0); }
    case 2u: { return min(max(v, p.act_a), p.act_b); }
    case 3u: { return select(v * p.act_a, v, v >= 0.0); }
    case 4u: { return 1.0 / (1.0 + exp(-v)); }
    case 5u: {
      // tanh through exp(-2|v|) <= 1: never inf/inf for large |v|.
      let e = exp(-2.0 * abs(v));
      return sign(v) * (1.0 - e) / (1.0 + e);
    }
    case 6u: { return v * min(max(v + 3.0, 0.0), 6.0) / 6.0; }
    default: { return v; }
  }
}
";

/// `(act, act_a, act_b)` for [`ACT_WGSL`].
pub fn act_words(a: Act) -> (usize, f32, f32) {
    match a {
        Act::None => (0, 0.0, 0.0),
        Act::Relu => (1, 0.0, 0.0),
        Act::Clip(lo, hi) => (2, lo, hi),
        Act::LeakyRelu(alpha) => (3, alpha, 0.0),
        Act::Sigmoid => (4, 0.0, 0.0),
        Act::Tanh => (5, 0.0, 0.0),
        Act::HardSwish => (6, 0.0, 0.0),
    }
}
