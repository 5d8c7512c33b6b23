//! Tensor data from JSON, flattened while it is parsed.
//!
//! `data` may be flat (`[0, 0.5, ...]`) or nested (`[[[...]]]`), as the Open Inference Protocol
//! and TensorFlow Serving both allow. Going through `serde_json::Value` would cost ~40 bytes per
//! number (a 10 MB body of `0,` would become ~200 MB); this visitor writes each number straight
//! into a `Vec<f32>` and remembers what the dtype checks need (was every value an integer in
//! 0..=255? the first non-finite one?), because JSON does not promise `datatype` comes first.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// Numbers of one tensor in row-major order, plus facts about them.
#[derive(Debug, Default)]
pub struct FlatData {
    pub values: Vec<f32>,
    /// Every value is an integer in 0..=255 (what `UINT8` requires).
    pub all_u8: bool,
    /// Index of the first value that is not a finite f32 (e.g. `1e39` overflows f32).
    pub first_non_finite: Option<usize>,
}

impl FlatData {
    pub(crate) fn push(&mut self, v: f64) {
        let f = v as f32;
        if !f.is_finite() && self.first_non_finite.is_none() {
            self.first_non_finite = Some(self.values.len());
        }
        if !((0.0..=255.0).contains(&v) && v.fract() == 0.0) {
            self.all_u8 = false;
        }
        self.values.push(f);
    }
}

impl<'de> Deserialize<'de> for FlatData {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut out = FlatData { values: Vec::new(), all_u8: true, first_non_finite: None };
        Flatten(&mut out).deserialize(d)?;
        Ok(out)
    }
}

/// Appends one JSON value (a number or a nested array of numbers) to the target.
struct Flatten<'a>(&'a mut FlatData);

impl<'de> DeserializeSeed<'de> for Flatten<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Flatten<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number or a (nested) array of numbers")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.0.push(v as f64);
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.0.push(v as f64);
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.0.push(v);
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        // serde_json bounds the nesting depth (128), so this recursion is bounded too.
        while seq.next_element_seed(Flatten(&mut *self.0))?.is_some() {}
        Ok(())
    }
}

/// A TensorFlow Serving instance or columnar `inputs`: either a bare tensor or an object of
/// named tensors (`{"input": [...]}`).
#[derive(Debug)]
pub enum Named {
    Tensor(FlatData),
    Map(Vec<(String, FlatData)>),
}

impl<'de> Deserialize<'de> for Named {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NamedVisitor)
    }
}

struct NamedVisitor;

impl<'de> Visitor<'de> for NamedVisitor {
    type Value = Named;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a tensor (a number or nested array of numbers) or an object of named tensors")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Named, E> {
        let mut t = FlatData { all_u8: true, ..FlatData::default() };
        t.push(v as f64);
        Ok(Named::Tensor(t))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Named, E> {
        let mut t = FlatData { all_u8: true, ..FlatData::default() };
        t.push(v as f64);
        Ok(Named::Tensor(t))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Named, E> {
        let mut t = FlatData { all_u8: true, ..FlatData::default() };
        t.push(v);
        Ok(Named::Tensor(t))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Named, A::Error> {
        let mut t = FlatData { all_u8: true, ..FlatData::default() };
        Flatten(&mut t).visit_seq(seq)?;
        Ok(Named::Tensor(t))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Named, A::Error> {
        let mut out = Vec::new();
        while let Some(k) = map.next_key::<String>()? {
            let v = map.next_value::<FlatData>()?;
            out.push((k, v));
        }
        Ok(Named::Map(out))
    }
}
