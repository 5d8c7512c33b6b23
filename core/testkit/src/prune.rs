//! Magnitude pruning for the sparse-kernel tests and benches (the one copy): keep the weights
//! whose |w| is above a quantile of the layer's |w|, store them sparse (CSR over axis 0) and
//! round-trip the model through the real `.mdm` writer and reader.

use mdeploy_core::model::{Model, TensorData};
use mdeploy_core::Op;

/// Zeroes the entries of `v` whose |value| is at or below the `q` quantile of |v| (so at least
/// a fraction `q` become zero; ties at the cut go too).
pub fn magnitude(v: &mut [f32], q: f64) {
    if v.is_empty() {
        return;
    }
    let mut mags: Vec<f32> = v.iter().map(|x| x.abs()).collect();
    mags.sort_by(|a, b| a.total_cmp(b));
    let cut = mags[((mags.len() as f64 * q) as usize).min(mags.len() - 1)];
    for x in v.iter_mut() {
        if x.abs() <= cut {
            *x = 0.0;
        }
    }
}

/// `model` with its Dense and Conv2d weights (only the Conv2d ones when `only_conv`) pruned to
/// `q` zeros each and stored as CSR, written and read back with the real writer and reader.
pub fn pruned_sparse(mut model: Model, q: f64, only_conv: bool) -> Result<Model, String> {
    for node in &mut model.graph.nodes {
        let is_conv = matches!(node.op, Op::Conv2d { .. });
        if let Op::Dense { weight, .. } | Op::Conv2d { weight, .. } = &mut node.op {
            if only_conv && !is_conv {
                continue;
            }
            let mut v = weight.to_f32_dense().map_err(|e| e.to_string())?;
            magnitude(&mut v, q);
            let rows = weight.shape.first().copied().unwrap_or(1).max(1);
            let cols = v.len() / rows;
            let (mut row_ptr, mut col_idx, mut values) = (vec![0u32], Vec::new(), Vec::new());
            for r in 0..rows {
                for c in 0..cols {
                    if v[r * cols + c] != 0.0 {
                        col_idx.push(c as u32);
                        values.push(v[r * cols + c]);
                    }
                }
                row_ptr.push(col_idx.len() as u32);
            }
            weight.data = TensorData::SparseCsr { row_ptr, col_idx, values };
        }
    }
    let bytes = mdeploy_core::format::write(&model).map_err(|e| format!("write the pruned model: {e}"))?;
    mdeploy_core::format::read(&bytes).map_err(|e| format!("read the pruned model back: {e}"))
}
