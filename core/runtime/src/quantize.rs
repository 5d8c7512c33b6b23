//! Post-training int8 quantization (`mdeploy quantize --bits 8`): weights per output channel,
//! symmetric int8; activations per tensor, asymmetric uint8, calibrated on sample inputs.
//! The result is an ordinary [`Model`] whose Dense/Conv2d weights are stored as int8 and whose
//! quantized activations carry an [`Op::Quantize`] node; the lowering runs those ops on the
//! integer kernels (`QUANT.md`).
//!
//! ```text
//!   f32 model ──► which values feed a Dense/Conv2d (through MaxPool/Flatten/Dropout)? ─► P
//!   for each value in P: run the f32 model up to it on the calibration samples ─► its values
//!     ─► [lo, hi] by minmax | percentile ─► scale = (hi − lo) / 255, zero point = round(−lo / scale)
//!   weights: scale[c] = max|W[:, c]| / 127, q = round_half_even(W / scale) in −127..=127
//!   graph: a Quantize node after every value of P (its readers read the quantized value)
//! ```

use crate::error::{Error, Result};
use crate::graph::{Graph, Node, Op};
use crate::kernels::quant::QParams;
use crate::model::{Model, Quant, QuantType, Tensor, TensorData};
use crate::kernels::KernelSet;
use crate::plan::Plan;

/// How an activation's range is chosen from its calibration values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Calibration {
    /// The smallest and largest value seen.
    MinMax,
    /// The `p`-th and `(100 − p)`-th percentiles (e.g. 99.99), so rare outliers are clipped
    /// instead of stretching the grid.
    Percentile(f64),
    /// The clip that keeps the most information (TensorRT's and onnxruntime's "entropy"
    /// calibration): the threshold whose quantized histogram is closest to the clipped one in
    /// KL divergence ([`kl_threshold`]), searched on each side of 0.
    Entropy,
}

/// Histogram bins per side of 0 for [`Calibration::Entropy`] (TensorRT's 2048).
pub const ENTROPY_BINS: usize = 2048;

/// The entropy (KL-divergence) threshold search on a histogram of magnitudes: `hist[b]` counts
/// the values in `[b·w, (b + 1)·w)`, the last bin also the maximum. For every candidate `i` in
/// `levels..=hist.len()` bins kept:
///
/// * `P` = `hist[..i]` with every value beyond (`hist[i..]`, the outliers the clip saturates)
///   added to its last bin;
/// * `Q` = `hist[..i]` (without the outliers) merged into `levels` chunks of `i / levels` bins
///   (the last chunk takes the remainder), each chunk's count spread evenly over the bins where
///   `P` is nonzero, zero where `P` is zero;
/// * `KL(P ‖ Q) = Σ p · ln(p / q)` over `p > 0`, both normalised; a candidate with `q = 0`
///   where `p > 0` (its whole chunk is empty but for outliers) is infinitely far (rejected).
///
/// Returns the `i` of the smallest divergence (the first on ties): the range keeps `i` bins,
/// the clip is `i · w`. A histogram with fewer bins than `levels` is kept whole.
pub fn kl_threshold(hist: &[u64], levels: usize) -> usize {
    let n = hist.len();
    if levels == 0 || n <= levels {
        return n;
    }
    let (mut best, mut best_kl) = (n, f64::INFINITY);
    let mut p = vec![0f64; n];
    let mut q = vec![0f64; n];
    let beyond: Vec<u64> = {
        // beyond[i] = Σ hist[i..]
        let mut b = vec![0u64; n + 1];
        for i in (0..n).rev() {
            b[i] = b[i + 1] + hist[i];
        }
        b
    };
    for i in levels..=n {
        for (d, &h) in p[..i].iter_mut().zip(&hist[..i]) {
            *d = h as f64;
        }
        p[i - 1] += beyond[i] as f64;
        let merged = i / levels;
        q[..i].iter_mut().for_each(|v| *v = 0.0);
        for c in 0..levels {
            let start = c * merged;
            let stop = if c + 1 == levels { i } else { start + merged };
            let sum: u64 = hist[start..stop].iter().sum();
            let nonzero = p[start..stop].iter().filter(|&&v| v > 0.0).count();
            if nonzero > 0 {
                let share = sum as f64 / nonzero as f64;
                for j in start..stop {
                    if p[j] > 0.0 {
                        q[j] = share;
                    }
                }
            }
        }
        let (ps, qs): (f64, f64) = (p[..i].iter().sum(), q[..i].iter().sum());
        if ps == 0.0 || qs == 0.0 {
            continue;
        }
        let mut kl = 0.0;
        for j in 0..i {
            if p[j] > 0.0 {
                if q[j] == 0.0 {
                    kl = f64::INFINITY;
                    break;
                }
                let (pj, qj) = (p[j] / ps, q[j] / qs);
                kl += pj * (pj / qj).ln();
            }
        }
        if kl < best_kl {
            (best, best_kl) = (i, kl);
        }
    }
    best
}

/// The entropy clip of magnitudes `mags` (all finite and >= 0) with `levels` grid steps: a
/// histogram of [`ENTROPY_BINS`] bins over `[0, max]`, then [`kl_threshold`]. 0 when empty.
fn entropy_clip(mags: &[f32], levels: usize) -> f32 {
    let max = mags.iter().copied().fold(0f32, f32::max);
    if !(max > 0.0) {
        return 0.0;
    }
    let w = f64::from(max) / ENTROPY_BINS as f64;
    let mut hist = vec![0u64; ENTROPY_BINS];
    for &m in mags {
        let b = ((f64::from(m) / w) as usize).min(ENTROPY_BINS - 1);
        hist[b] += 1;
    }
    let kept = kl_threshold(&hist, levels);
    if kept == ENTROPY_BINS {
        max
    } else {
        (kept as f64 * w) as f32
    }
}

/// What [`quantize`] did, for the report.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantReport {
    /// Per quantized activation: the graph value (before rewriting), and its grid.
    pub activations: Vec<(usize, QParams)>,
    /// Dense/Conv2d ops whose weights became int8.
    pub weights: usize,
}

/// The `[lo, hi]` range of `values` for `method`, always containing 0 (so that real 0, the
/// padding and ReLU's floor, is exactly on the grid). `values` is reordered.
pub fn range(values: &mut [f32], method: Calibration) -> (f32, f32) {
    let finite = |v: &f32| v.is_finite();
    let (lo, hi) = match method {
        Calibration::MinMax => values.iter().filter(|v| finite(v)).fold((0.0f32, 0.0f32), |(l, h), &v| (l.min(v), h.max(v))),
        Calibration::Percentile(p) => {
            let mut v: Vec<f32> = values.iter().copied().filter(finite).collect();
            if v.is_empty() {
                return (0.0, 0.0);
            }
            v.sort_by(f32::total_cmp);
            // Nearest rank: the value below which p % of the values lie.
            let rank = |q: f64| {
                let r = (q / 100.0 * v.len() as f64).ceil() as usize;
                v[r.clamp(1, v.len()) - 1]
            };
            let p = p.clamp(50.0, 100.0);
            (rank(100.0 - p).min(0.0), rank(p).max(0.0))
        }
        Calibration::Entropy => {
            // The uint8 grid has 255 steps for both sides together: a one-sided value (after a
            // ReLU, pixels) gives them all to its side; a two-sided one searches each side with
            // 128, TensorRT's symmetric int8 levels.
            let pos: Vec<f32> = values.iter().copied().filter(|v| finite(v) && *v > 0.0).collect();
            let neg: Vec<f32> = values.iter().copied().filter(|v| finite(v) && *v < 0.0).map(|v| -v).collect();
            let levels = if pos.is_empty() || neg.is_empty() { 255 } else { 128 };
            (-entropy_clip(&neg, levels), entropy_clip(&pos, levels))
        }
    };
    (lo, hi)
}

/// The uint8 grid of `[lo, hi]` (containing 0): `scale = (hi − lo) / 255`, `zero_point =
/// round(−lo / scale)`. An all-zero range gets scale 1 (every value is then 0 exactly).
pub fn grid(lo: f32, hi: f32) -> QParams {
    let span = hi - lo;
    if !(span.is_finite() && span > 0.0) {
        return QParams { scale: 1.0, zero_point: 0 };
    }
    let scale = span / 255.0;
    let zero_point = (-lo / scale).round_ties_even().clamp(0.0, 255.0) as i32;
    QParams { scale, zero_point }
}

/// Per-channel symmetric int8 of a Dense (`[in, out]`, channel axis 1) or Conv2d (OIHW, axis 0)
/// weight: `scale[c] = max|w| / 127` over channel `c` (1 for an all-zero channel), values
/// `round_half_even(w / scale)` clamped to −127..=127.
pub fn quantize_weight(t: &Tensor, axis: usize) -> Result<Tensor> {
    quantize_weight_bits(t, axis, 8)
}

/// Per-channel symmetric `bits`-bit weights (2..=8), the grid of
/// [`crate::kernels::qweights::channel_grid`]: 8 bits stored as `I8`, fewer as signed packed
/// (`SPACKED` in the file) with codes in `−(2^(bits−1) − 1)..=2^(bits−1) − 1`, zero points 0.
pub fn quantize_weight_bits(t: &Tensor, axis: usize, bits: u8) -> Result<Tensor> {
    if !(2..=8).contains(&bits) {
        return Err(Error::bad_input(format!("{bits}-bit weights: choose 8, 4 or 2 bits (2..=8 work)")));
    }
    let w = t.to_f32_dense()?;
    let c_n = *t.shape.get(axis).ok_or_else(|| Error::bad_model("weight has no channel axis"))?;
    let inner: usize = t.shape[axis + 1..].iter().product();
    let (codes, scales) = crate::kernels::qweights::channel_grid(&w, c_n, inner, bits);
    let (qtype, raw) = if bits == 8 {
        (QuantType::I8, codes.iter().map(|&q| q as u8).collect())
    } else {
        // Two's complement in the low `bits` bits (the SPACKED layout, MDM_FORMAT.md).
        let mask = (1u16 << bits) as u8 - 1;
        let low: Vec<u8> = codes.iter().map(|&q| (q as u8) & mask).collect();
        (QuantType::Packed { bits, signed: true }, crate::format::pack_bits(&low, bits)?)
    };
    Ok(Tensor {
        shape: t.shape.clone(),
        data: TensorData::Quantized { qtype, quant: Quant::PerChannel { axis, scales, zero_points: vec![0; c_n] }, raw },
    })
}

/// Every f32 weight of a Dense / Conv2d (one group) of `model` to `bits`-bit codes
/// ([`quantize_weight_bits`]); weights already quantized are left as they are. Returns the
/// model and how many weights changed. The second half of QAT: train with fake-quantized
/// weights on a graph from [`calibrate_activations`], then store them with this.
pub fn quantize_weights(model: &Model, bits: u8) -> Result<(Model, usize)> {
    let mut out = model.clone();
    let mut n = 0;
    for node in &mut out.graph.nodes {
        let (weight, axis) = match &mut node.op {
            Op::Dense { weight, .. } => (weight, 1),
            Op::Conv2d { weight, groups: 1, .. } => (weight, 0),
            _ => continue,
        };
        if matches!(weight.data, TensorData::F32(_)) {
            *weight = quantize_weight_bits(weight, axis, bits)?;
            n += 1;
        }
    }
    out.validate()?;
    Ok((out, n))
}

/// Binary weights of a Dense (`[in, out]`), XNOR-Net's per-output-channel form: `alpha[c] =
/// mean|W[:, c]|` (the scale that minimises `Σ (w − alpha · sign(w))²`), signs `w >= 0` → +1,
/// stored as 1-bit `SPACKED` (0 → −1, 1 → +1), zero points 0 (QUANT.md, "Binary").
pub fn binarize_weight(t: &Tensor) -> Result<Tensor> {
    let [k, n] = t.shape[..] else {
        return Err(Error::bad_input(format!("binary weights: a Dense weight is [in, out], got {:?}", t.shape)));
    };
    let w = t.to_f32_dense()?;
    if let Some(i) = w.iter().position(|v| !v.is_finite()) {
        return Err(Error::bad_model(format!("binary weights: weight {i} is {} (not finite)", w[i])));
    }
    let scales: Vec<f32> = (0..n)
        .map(|c| ((0..k).map(|p| f64::from(w[p * n + c].abs())).sum::<f64>() / k.max(1) as f64) as f32)
        .collect();
    let codes: Vec<u8> = w.iter().map(|&v| u8::from(v >= 0.0)).collect();
    Ok(Tensor {
        shape: t.shape.clone(),
        data: TensorData::Quantized {
            qtype: QuantType::Packed { bits: 1, signed: true },
            quant: Quant::PerChannel { axis: 1, scales, zero_points: vec![0; n] },
            raw: crate::format::pack_bits(&codes, 1)?,
        },
    })
}

/// Every f32 Dense weight of `model` whose input is a `Op::Sign` to binary
/// ([`binarize_weight`]); the other layers are left as they are (the kept 8-bit first and last
/// layers). Returns the model and how many weights changed.
pub fn binarize_weights(model: &Model) -> Result<(Model, usize)> {
    let mut out = model.clone();
    let mut n = 0;
    let signs: Vec<bool> = out.graph.nodes.iter().map(|nd| matches!(nd.op, Op::Sign)).collect();
    for node in &mut out.graph.nodes {
        let v = node.inputs.first().copied().unwrap_or(0) as usize;
        if let Op::Dense { weight, .. } = &mut node.op {
            if v > 0 && signs[v - 1] && matches!(weight.data, TensorData::F32(_)) {
                *weight = binarize_weight(weight)?;
                n += 1;
            }
        }
    }
    out.validate()?;
    Ok((out, n))
}

/// A Dense that already has binary weights (it reads a Sign; no Quantize before it).
fn binary_dense(op: &Op) -> bool {
    matches!(op, Op::Dense { weight, .. } if crate::lower_quant::is_binary(weight))
}

/// `--bits 1` (QUANT.md, "Binary"): every Dense whose input is a `Sign` gets binary weights
/// ([`binarize_weights`]); the others (the first and last layers) get int8 weights and
/// calibrated `Quantize` inputs exactly as [`quantize`] does, so they run on the integer
/// kernels. The model must already have its Sign nodes (`arch::mlp_binary`, trained with QAT).
pub fn quantize_binary(model: &Model, calib: &[f32], n: usize, method: Calibration, progress: impl FnMut(usize, usize)) -> Result<(Model, QuantReport)> {
    let (b, nb) = binarize_weights(model)?;
    if nb == 0 {
        return Err(Error::bad_input(
            "--bits 1: the model has no Dense after a Sign, so nothing to binarize; make a binary \
             architecture (e.g. `mdeploy distill --arch mlp-binary:512x1`) or choose --bits 8, 4 or 2",
        ));
    }
    let (q, mut report) = rewrite(&b, calib, n, method, Some(8), progress)?;
    report.weights += nb;
    Ok((q, report))
}

/// Ops the quantizer turns to int8 (the integer kernels' scope in this slice).
fn quantizable(op: &Op) -> bool {
    matches!(op, Op::Dense { .. } | Op::Conv2d { groups: 1, .. })
}

/// Ops through which a value keeps its grid (so their input is where the Quantize goes).
fn keeps_grid(op: &Op) -> bool {
    matches!(op, Op::MaxPool2d { .. } | Op::Flatten | Op::Reshape { .. } | Op::Dropout { .. } | Op::Identity)
}

/// Quantizes `model` to int8, calibrating on `calib` (`n` samples of the model's input).
/// `progress(done, total)` is called after each calibrated activation.
pub fn quantize(model: &Model, calib: &[f32], n: usize, method: Calibration, progress: impl FnMut(usize, usize)) -> Result<(Model, QuantReport)> {
    quantize_bits(model, calib, n, method, 8, progress)
}

/// As [`quantize`] with `bits`-bit weights (8, 4, 2; 2..=8 work): activations stay uint8, the
/// weights are stored packed and widen to int8 codes at plan time (QUANT.md, "n-bit weights").
pub fn quantize_bits(model: &Model, calib: &[f32], n: usize, method: Calibration, bits: u8, progress: impl FnMut(usize, usize)) -> Result<(Model, QuantReport)> {
    if !(2..=8).contains(&bits) {
        return Err(Error::bad_input(format!("{bits}-bit weights: choose 8, 4 or 2 bits (2..=8 work)")));
    }
    rewrite(model, calib, n, method, Some(bits), progress)
}

/// The activation half of [`quantize`]: the same calibrated `Quantize` nodes, weights left in
/// f32 (the graph quantization-aware training fine-tunes; [`quantize_weights`] finishes it).
pub fn calibrate_activations(model: &Model, calib: &[f32], n: usize, method: Calibration, progress: impl FnMut(usize, usize)) -> Result<(Model, QuantReport)> {
    rewrite(model, calib, n, method, None, progress)
}

fn rewrite(model: &Model, calib: &[f32], n: usize, method: Calibration, bits: Option<u8>, mut progress: impl FnMut(usize, usize)) -> Result<(Model, QuantReport)> {
    let g = &model.graph;
    let il = model.input_len();
    if n == 0 || calib.len() != n * il {
        return Err(Error::bad_input(format!(
            "calibration needs at least 1 sample of {il} values; got {} values for {n} samples",
            calib.len()
        )));
    }
    model.validate()?;
    // Values to quantize: each quantized op's input, walked back through grid-keeping ops.
    let mut points: Vec<usize> = Vec::new();
    for node in &g.nodes {
        if !quantizable(&node.op) || binary_dense(&node.op) {
            continue;
        }
        let mut v = node.inputs[0] as usize;
        while v > 0 && keeps_grid(&g.nodes[v - 1].op) {
            v = g.nodes[v - 1].inputs[0] as usize;
        }
        if !points.contains(&v) {
            points.push(v);
        }
    }
    points.sort_unstable();
    let mut grids: Vec<Option<QParams>> = vec![None; g.nodes.len() + 1];
    let mut report = QuantReport { activations: Vec::new(), weights: 0 };
    for (done, &v) in points.iter().enumerate() {
        let values = if v == 0 {
            calib.to_vec()
        } else {
            let sub = Graph { nodes: g.nodes.clone(), output: v as u32 };
            // The generic kernels, so that the ranges (and the file) are the same on every host:
            // the SIMD sets sum in other orders, which moves a range by an ulp and can move a
            // scale or a zero point.
            let mut plan = Plan::from_graph(&sub, &model.meta.input_shape, 256, KernelSet::generic())?;
            let ol = plan.output_len();
            let mut out = vec![0.0f32; n * ol];
            plan.run(calib, n, &mut out)?;
            out
        };
        let mut values = values;
        let (lo, hi) = range(&mut values, method);
        let q = grid(lo, hi);
        grids[v] = Some(q);
        report.activations.push((v, q));
        progress(done + 1, points.len());
    }
    // Rewrite: weights to int8, a Quantize node after every calibrated value.
    let mut nodes: Vec<Node> = Vec::with_capacity(g.nodes.len() + points.len());
    let mut map = vec![0u32; g.nodes.len() + 1];
    let quant_node = |v: u32, q: QParams, name: String| Node {
        op: Op::Quantize { scale: q.scale, zero_point: q.zero_point },
        inputs: vec![v],
        name,
    };
    if let Some(q) = grids[0] {
        nodes.push(quant_node(0, q, "quantize input".into()));
        map[0] = nodes.len() as u32;
    }
    for (i, node) in g.nodes.iter().enumerate() {
        let mut node = node.clone();
        node.inputs = node.inputs.iter().map(|&v| map[v as usize]).collect();
        match (&mut node.op, bits) {
            // Binary weights (`quantize_binary`) stay as they are; their input is a Sign.
            (Op::Dense { weight, .. }, Some(_)) if crate::lower_quant::is_binary(weight) => {}
            (Op::Dense { weight, .. }, Some(bits)) => {
                *weight = quantize_weight_bits(weight, 1, bits)?;
                report.weights += 1;
            }
            (Op::Conv2d { weight, groups: 1, .. }, Some(bits)) => {
                *weight = quantize_weight_bits(weight, 0, bits)?;
                report.weights += 1;
            }
            _ => {}
        }
        let name = node.name.clone();
        nodes.push(node);
        map[i + 1] = nodes.len() as u32;
        if let Some(q) = grids[i + 1] {
            let label = if name.is_empty() { format!("quantize value {}", i + 1) } else { format!("quantize {name}") };
            nodes.push(quant_node(nodes.len() as u32, q, label));
            map[i + 1] = nodes.len() as u32;
        }
    }
    let out = Model {
        meta: model.meta.clone(),
        graph: Graph { output: map[g.output as usize], nodes },
    };
    out.validate()?;
    Ok((out, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minmax_hand_case() {
        // Range [-1, 2] → scale 3/255, zero point round(1 / (3/255)) = round(85) = 85.
        let mut v = [0.5, -1.0, 2.0, 1.0];
        assert_eq!(range(&mut v, Calibration::MinMax), (-1.0, 2.0));
        let q = grid(-1.0, 2.0);
        assert_eq!(q.scale, 3.0 / 255.0);
        assert_eq!(q.zero_point, 85);
        // Non-negative data (after a ReLU): the range starts at 0, zero point 0.
        let mut v = [0.25, 3.0, 1.0];
        assert_eq!(range(&mut v, Calibration::MinMax), (0.0, 3.0));
        assert_eq!(grid(0.0, 3.0), QParams { scale: 3.0 / 255.0, zero_point: 0 });
        // NaN and infinities are ignored; an all-zero value gets scale 1.
        let mut v = [f32::NAN, f32::INFINITY, 0.0];
        assert_eq!(range(&mut v, Calibration::MinMax), (0.0, 0.0));
        assert_eq!(grid(0.0, 0.0), QParams { scale: 1.0, zero_point: 0 });
    }

    #[test]
    fn percentile_hand_case() {
        // 0.01, 0.02, ..., 10.00 and one outlier 1000: 1001 values. The 99th percentile by
        // nearest rank is value number ceil(0.99 · 1001) = 991, i.e. 9.91; the 1st is
        // value number ceil(0.01 · 1001) = 11, i.e. 0.11, so the range is [0, 9.91].
        let mut v: Vec<f32> = (1..=1000).map(|i| i as f32 / 100.0).collect();
        v.push(1000.0);
        let (lo, hi) = range(&mut v, Calibration::Percentile(99.0));
        assert_eq!((lo, hi), (0.0, 9.91));
        // Symmetric data around 0: −5..=5 in steps of 1 (11 values), 90th percentile: ranks
        // ceil(0.1 · 11) = 2 → −4 and ceil(0.9 · 11) = 10 → 4.
        let mut v: Vec<f32> = (-5..=5).map(|i| i as f32).collect();
        assert_eq!(range(&mut v, Calibration::Percentile(90.0)), (-4.0, 4.0));
        // minmax on the same data keeps the outlier.
        let mut v: Vec<f32> = (1..=1000).map(|i| i as f32 / 100.0).chain([1000.0]).collect();
        assert_eq!(range(&mut v, Calibration::MinMax), (0.0, 1000.0));
    }

    #[test]
    fn entropy_hand_case() {
        // hist [8, 4, 0, 0, 0, 0, 0, 1] into 2 levels. Candidates (P with outliers in its last
        // bin; Q = hist[..i] merged into 2 chunks, spread over P's nonzero bins):
        //   i = 2: P = [8, 5]/13, Q = [8, 4]/12: KL = 8/13 ln(12/13) + 5/13 ln(15/13) = 0.00578
        //   i = 3: P = [8, 4, 1]/13, Q = [8, 2, 2]/12: KL = 0.0799
        //   i = 4..=7: the last chunk of hist is empty but P's last bin holds the outlier: ∞
        //   i = 8: P = [8, 4, 0, 0, 0, 0, 0, 1]/13, Q = [6, 6, 0, 0, 0, 0, 0, 1]/13: KL = 0.0523
        // so 2 bins are kept: the outlier is clipped.
        assert_eq!(kl_threshold(&[8, 4, 0, 0, 0, 0, 0, 1], 2), 2);
        // [2, 2, 1, 1]: i = 2: 0.0566, i = 3: 0.0095, i = 4: P = Q, 0: nothing clipped.
        assert_eq!(kl_threshold(&[2, 2, 1, 1], 2), 4);
        // Fewer bins than levels: kept whole.
        assert_eq!(kl_threshold(&[1, 2, 3], 4), 3);
        // Values: 10,000 spread evenly over (0, 1] and one outlier at 5. minmax stretches the
        // grid to 5 (a fifth of the codes for the data); entropy clips near 1. (The clip is
        // never below 255 of the 2048 bins, an eighth of the maximum: TensorRT's lower bound.)
        let mut v: Vec<f32> = (1..=10_000).map(|i| i as f32 / 10_000.0).chain([5.0]).collect();
        let (lo, hi) = range(&mut v, Calibration::Entropy);
        eprintln!("entropy clip of (0, 1] + an outlier at 5: {hi}");
        assert_eq!(lo, 0.0);
        assert!((0.95..=1.1).contains(&hi), "entropy clip {hi}");
        assert_eq!(range(&mut v, Calibration::MinMax), (0.0, 5.0));
        // Without the outlier nothing is worth clipping: the whole range (the histogram's top
        // edge, the maximum) is kept.
        let mut v: Vec<f32> = (1..=10_000).map(|i| i as f32 / 10_000.0).collect();
        assert_eq!(range(&mut v, Calibration::Entropy), (0.0, 1.0));
        // Two-sided: each side searched on its own; an all-NaN input gives the empty range.
        let mut v: Vec<f32> = (1..=10_000).map(|i| i as f32 / 10_000.0).flat_map(|x| [x, -2.0 * x]).collect();
        let (lo, hi) = range(&mut v, Calibration::Entropy);
        eprintln!("entropy range of a two-sided uniform: [{lo}, {hi}]");
        assert!((-2.0..=-1.8).contains(&lo) && (0.9..=1.0).contains(&hi), "{lo} {hi}");
        assert_eq!(range(&mut [f32::NAN], Calibration::Entropy), (0.0, 0.0));
    }

    #[test]
    fn weights_hand_case() {
        // Dense [2 in, 2 out]: column 0 = (1, −0.5) → scale 1/127, q = (127, −64) (−63.5 → −64,
        // half to even); column 1 = (0.2, 0.1) → scale 0.2/127, q = (127, 64) (63.5 → 64).
        let t = Tensor::f32(vec![2, 2], vec![1.0, 0.2, -0.5, 0.1]);
        let q = quantize_weight(&t, 1).unwrap();
        let TensorData::Quantized { qtype: QuantType::I8, quant: Quant::PerChannel { axis: 1, scales, zero_points }, raw } = q.data else {
            panic!("not per-channel int8")
        };
        assert_eq!(scales, vec![1.0 / 127.0, 0.2 / 127.0]);
        assert_eq!(zero_points, vec![0, 0]);
        assert_eq!(raw.iter().map(|&b| b as i8).collect::<Vec<_>>(), vec![127, 127, -64, 64]);
    }
}
