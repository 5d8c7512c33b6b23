//! Uniform parameter blocks, described once.
//!
//! Every kernel's uniform is a flat struct of 32-bit words (`u32` or `f32`). Its [`Spec`] (field
//! names and types, in order) is the single description: [`Spec::wgsl`] writes the WGSL
//! `struct P` that is prepended to the kernel's source at pipeline creation, and [`Params`]
//! fills the words *by name*, so the Rust side never keeps a byte offset that could drift from
//! the shader. WGSL lays a struct of 4-byte scalars out densely in declaration order; the
//! struct is padded to a multiple of 16 bytes (uniform buffers are bound in 16-byte units).

use crate::error::WasmError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    U32,
    F32,
}

/// A uniform struct: `(field name, type)` in declaration order.
pub type Spec = &'static [(&'static str, Ty)];

/// Words after padding to a 16-byte multiple.
pub fn padded_words(spec: Spec) -> usize {
    spec.len().div_ceil(4).max(1) * 4
}

/// The WGSL declaration of `spec` as `struct P`.
pub fn wgsl(spec: Spec) -> String {
    let mut s = String::from("struct P {\n");
    for (name, ty) in spec {
        let t = match ty {
            Ty::U32 => "u32",
            Ty::F32 => "f32",
        };
        s.push_str(&format!("  {name}: {t},\n"));
    }
    for i in spec.len()..padded_words(spec) {
        s.push_str(&format!("  _pad{i}: u32,\n"));
    }
    s.push_str("}\n");
    s
}

/// Index of `name` in `spec`.
pub fn index(spec: Spec, name: &str) -> Option<usize> {
    spec.iter().position(|(n, _)| *n == name)
}

/// The words of one uniform, filled by field name. Every field but those named in `finish`'s
/// `later` must be set exactly once.
pub struct Params {
    spec: Spec,
    words: Vec<u32>,
    set: Vec<bool>,
    kernel: &'static str,
}

fn internal(kernel: &str, what: String) -> WasmError {
    // A mismatch between a kernel's Rust side and its Spec: a bug in this crate, not in the model.
    WasmError::new("UNSUPPORTED", format!("internal error in the WebGPU {kernel} kernel: {what}; use {{ backend: 'cpu' }} and report this"))
}

impl Params {
    pub fn new(kernel: &'static str, spec: Spec) -> Params {
        Params { spec, words: vec![0; padded_words(spec)], set: vec![false; spec.len()], kernel }
    }

    fn slot(&mut self, name: &str, ty: Ty) -> Result<usize, WasmError> {
        let i = index(self.spec, name).ok_or_else(|| internal(self.kernel, format!("no uniform field `{name}`")))?;
        if self.spec[i].1 != ty {
            return Err(internal(self.kernel, format!("uniform field `{name}` is not {ty:?}")));
        }
        if std::mem::replace(&mut self.set[i], true) {
            return Err(internal(self.kernel, format!("uniform field `{name}` set twice")));
        }
        Ok(i)
    }

    /// Sets a `u32` field; sizes that do not fit 32 bits are refused naming the kernel.
    pub fn u(mut self, name: &str, v: usize) -> Result<Params, WasmError> {
        let w = u32::try_from(v).map_err(|_| {
            WasmError::new(
                "UNSUPPORTED",
                format!("{}: {name} = {v} is too large for the WebGPU kernels (limit 2^32-1); use {{ backend: 'cpu' }}", self.kernel),
            )
        })?;
        let i = self.slot(name, Ty::U32)?;
        self.words[i] = w;
        Ok(self)
    }

    pub fn f(mut self, name: &str, v: f32) -> Result<Params, WasmError> {
        let i = self.slot(name, Ty::F32)?;
        self.words[i] = v.to_bits();
        Ok(self)
    }

    /// The words, checking every field except `later` (set per batch) was given.
    pub fn finish(self, later: &[&str]) -> Result<Vec<u32>, WasmError> {
        for (i, (name, _)) in self.spec.iter().enumerate() {
            if !self.set[i] && !later.contains(name) {
                return Err(internal(self.kernel, format!("uniform field `{name}` never set")));
            }
        }
        Ok(self.words)
    }
}

pub fn bytes(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Spec = &[("n", Ty::U32), ("k", Ty::U32), ("alpha", Ty::F32), ("z", Ty::U32), ("q", Ty::U32)];

    #[test]
    fn struct_text_and_words_agree() {
        let text = wgsl(S);
        assert!(text.contains("  n: u32,\n  k: u32,\n  alpha: f32,\n  z: u32,\n  q: u32,\n  _pad5: u32,"), "{text}");
        assert_eq!(padded_words(S), 8);
        let w = Params::new("T", S).u("k", 7).unwrap().f("alpha", 0.5).unwrap().u("z", 1).unwrap().u("q", 2).unwrap();
        let w = w.finish(&["n"]).unwrap();
        assert_eq!(w, vec![0, 7, 0.5f32.to_bits(), 1, 2, 0, 0, 0]);
    }

    #[test]
    fn mistakes_are_errors() {
        assert!(Params::new("T", S).u("nope", 1).is_err());
        assert!(Params::new("T", S).f("k", 1.0).is_err());
        assert!(Params::new("T", S).u("k", 1).unwrap().u("k", 2).is_err());
        assert!(Params::new("T", S).u("k", 1).unwrap().finish(&["n"]).is_err());
        assert!(Params::new("T", S).u("k", usize::MAX).is_err());
    }
}
