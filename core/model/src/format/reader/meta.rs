//! The META section: name, version, input shape, labels, preprocessing, provenance.

use crate::error::{Error, Result};
use crate::format::codes;
use crate::format::cursor::Cursor;
use crate::model::{Metadata, Preprocessing, Provenance, MAX_ACTIVATION_ELEMS};

pub(super) fn parse_bool(c: &mut Cursor, what: &str) -> Result<bool> {
    match c.u8(what)? {
        0 => Ok(false),
        1 => Ok(true),
        v => Err(c.err(format_args!("{what} must be 0 or 1, found {v}"))),
    }
}

pub(super) fn parse_meta(c: &mut Cursor, allow_trailing: bool) -> Result<Metadata> {
    let name = c.string("model name")?;
    let version = c.string("model version")?;
    let rank = c.u8("input rank")? as usize;
    if rank > codes::MAX_RANK {
        return Err(c.err(format_args!(
            "input rank {rank} is more than the limit of {}",
            codes::MAX_RANK
        )));
    }
    let mut input_shape = Vec::with_capacity(rank);
    for d in 0..rank {
        input_shape.push(c.usize32(format_args!("input dimension {d}"))?);
    }
    // Model::validate bounds every layer's output but not the input itself (a graph with no
    // layers would let a host size an input buffer from an unchecked product).
    let input_elems = input_shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d));
    if input_elems.is_none_or(|n| n > MAX_ACTIVATION_ELEMS) {
        return Err(c.err(format_args!(
            "input shape {input_shape:?} has more than {MAX_ACTIVATION_ELEMS} elements per sample"
        )));
    }
    let n_labels = c.count("label count", codes::MAX_LABELS, 4)?;
    let mut labels = Vec::new();
    for i in 0..n_labels {
        labels.push(c.string(format_args!("label {i}"))?);
    }
    let recipe = c.string("preprocessing recipe")?;
    let range = [
        c.finite_f32("preprocessing range low")?,
        c.finite_f32("preprocessing range high")?,
    ];
    let ink_high = parse_bool(c, "preprocessing ink_high")?;
    let data = c.string("provenance data")?;
    let split = c.string("provenance split")?;
    let arch = c.string("provenance arch")?;
    let epochs = c.u32("provenance epochs")?;
    let seed = c.u64("provenance seed")?;
    let has_acc = parse_bool(c, "provenance test accuracy presence")?;
    let at = c.offset();
    let acc = c.f32("provenance test accuracy")?;
    let test_accuracy = if has_acc {
        if !(0.0..=1.0).contains(&acc) {
            return Err(Error::bad_model(format!(
                "META section, file offset {at}: test accuracy {acc} is outside 0..=1"
            )));
        }
        Some(acc)
    } else {
        if acc.to_bits() != 0 {
            return Err(Error::bad_model(format!(
                "META section, file offset {at}: absent test accuracy must be stored as 0"
            )));
        }
        None
    };
    let n_extra = c.count("extra provenance count", codes::MAX_EXTRA, 8)?;
    let mut extra = Vec::new();
    for i in 0..n_extra {
        let k = c.string(format_args!("extra provenance key {i}"))?;
        let v = c.string(format_args!("extra provenance value {i}"))?;
        extra.push((k, v));
    }
    c.finish(allow_trailing)?;
    Ok(Metadata {
        name,
        version,
        input_shape,
        labels,
        preprocessing: Preprocessing {
            recipe,
            range,
            ink_high,
        },
        provenance: Provenance {
            data,
            split,
            arch,
            epochs,
            seed,
            test_accuracy,
            extra,
        },
    })
}

