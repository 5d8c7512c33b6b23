//! The vocabulary of a kernel call: epilogue activations, binary ops and window geometry.
//! The lowering (`mdeploy-runtime`) emits these and the kernels read them, so they live here,
//! below both.

/// An elementwise function applied on the way out of a kernel (or alone, [`Kernel::Act`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Act {
    None,
    Relu,
    /// `min(max(x, lo), hi)`; ReLU6 is `Clip(0, 6)`.
    Clip(f32, f32),
    LeakyRelu(f32),
    Sigmoid,
    Tanh,
    HardSwish,
}

/// `Add` or `Mul`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Mul,
}

/// Window geometry of a convolution or pooling over one HWC sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Input channels, height, width.
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    /// `[top, left, bottom, right]`.
    pub pad: [usize; 4],
    pub dh: usize,
    pub dw: usize,
    pub oh: usize,
    pub ow: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolKind {
    Max,
    /// Average; `count_include_pad` divides by the whole window.
    Avg { count_include_pad: bool },
}

/// Geometry of a max pooling over one sample stored HWC (channels innermost, so every window
/// element is a contiguous `c`-vector: SIMD runs across channels, whatever the window).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolGeom {
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub oh: usize,
    pub ow: usize,
}

impl PoolGeom {
    /// Output size follows the model's rule (no padding, floor): `(h - kh) / sh + 1`.
    /// `None` when the window does not fit or a size is zero.
    pub fn new(
        c: usize,
        h: usize,
        w: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
    ) -> Option<PoolGeom> {
        let [kh, kw] = kernel;
        let [sh, sw] = stride;
        if c == 0 || kh == 0 || kw == 0 || sh == 0 || sw == 0 || h < kh || w < kw {
            return None;
        }
        Some(PoolGeom {
            c,
            h,
            w,
            kh,
            kw,
            sh,
            sw,
            oh: (h - kh) / sh + 1,
            ow: (w - kw) / sw + 1,
        })
    }
    pub fn in_len(&self) -> usize {
        self.c * self.h * self.w
    }
    pub fn out_len(&self) -> usize {
        self.c * self.oh * self.ow
    }
}
