//! The independent reference: a [`Graph`] run in `f64` with plain NCHW loops.
//!
//! Written from the op definitions in `core/model/src/graph.rs` and the ONNX operator semantics, and
//! nothing else: it does not call the `Plan`, `lower()`, the kernels or the training code, so a
//! bug there cannot hide by being repeated here. It is slow on purpose (one sample at a time,
//! no packing, no fusion) and exact enough (`f64` accumulation) that any `f32` engine should sit
//! within ~1e-5 of it on MNIST-sized models. See `REFERENCE.md` for the conventions chosen where
//! ONNX leaves room (average pooling's divisor in ceil mode).
//!
//! The only core code it uses: [`Graph`]/[`Op`] (the data it interprets), the tensors' decoding
//! (`Tensor::to_f32_dense` for quantized or sparse weights: a format concern, not arithmetic),
//! and [`Graph::shapes`], whose answer is *compared* with the shapes computed here (a
//! disagreement is reported as an error, since one of the two is wrong).

use mdeploy_core::graph::{Graph, Op};
use mdeploy_core::model::{Tensor, TensorData};

/// One value: per-sample shape (`[n]` or `[C, H, W]`) and its elements in row-major order.
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

/// The output of `graph` for one sample `x` of shape `input_shape`.
pub fn forward(graph: &Graph, input_shape: &[usize], x: &[f32]) -> Result<Vec<f64>, String> {
    let mut values = forward_values(graph, input_shape, x)?;
    let out = graph.output as usize;
    Ok(std::mem::take(&mut values[out].data))
}

/// The outputs for `n` samples one after another in `xs` (`n × input length` values), flat.
pub fn forward_batch(graph: &Graph, input_shape: &[usize], xs: &[f32], n: usize) -> Result<Vec<f64>, String> {
    let il: usize = input_shape.iter().product();
    if il == 0 || xs.len() != n * il {
        return Err(format!("{} input values are not {n} samples of shape {input_shape:?}", xs.len()));
    }
    // Samples are independent: split them over the cores (the result does not depend on how).
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get()).clamp(1, 8).min(n.max(1));
    let run = |start: usize, end: usize| -> Result<Vec<f64>, String> {
        let mut out = Vec::new();
        for s in start..end {
            out.extend(forward(graph, input_shape, &xs[s * il..(s + 1) * il])?);
        }
        Ok(out)
    };
    if threads <= 1 {
        return run(0, n); // also where threads cannot be spawned (wasm32)
    }
    let per = n.div_ceil(threads);
    let parts: Vec<Result<Vec<f64>, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .step_by(per)
            .map(|start| {
                let end = (start + per).min(n);
                let run = &run;
                scope.spawn(move || run(start, end))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("a reference thread panicked".into()))).collect()
    });
    let mut out = Vec::new();
    for p in parts {
        out.extend(p?);
    }
    Ok(out)
}

/// Every value of the graph for one sample: `[0]` is the input, `[i + 1]` node `i`'s output.
/// Useful to find the first node where an engine departs from the reference.
pub fn forward_values(graph: &Graph, input_shape: &[usize], x: &[f32]) -> Result<Vec<Value>, String> {
    let numel: usize = input_shape.iter().product();
    if input_shape.is_empty() || numel == 0 || x.len() != numel {
        return Err(format!("input of {} values does not match the shape {input_shape:?}", x.len()));
    }
    let mut values: Vec<Value> = Vec::with_capacity(graph.nodes.len() + 1);
    values.push(Value { shape: input_shape.to_vec(), data: x.iter().map(|&v| v as f64).collect() });
    for (i, node) in graph.nodes.iter().enumerate() {
        let at = || format!("reference: {}", graph.describe_node(i));
        let mut ins = Vec::with_capacity(node.inputs.len());
        for &v in &node.inputs {
            ins.push(values.get(v as usize).ok_or_else(|| format!("{}: reads value {v}, not computed yet", at()))?);
        }
        let out = eval(&node.op, &ins).map_err(|e| format!("{}: {e}", at()))?;
        values.push(out);
    }
    if graph.output as usize >= values.len() {
        return Err(format!("reference: the output value {} does not exist", graph.output));
    }
    // Cross-check with the graph's own shape inference: they are written independently.
    let shapes = graph.shapes(input_shape).map_err(|e| format!("reference: the graph is invalid: {e}"))?;
    for (v, (val, s)) in values.iter().zip(&shapes).enumerate() {
        if &val.shape != s {
            return Err(format!(
                "reference: value {v} has shape {:?} here but {s:?} by Graph::shapes: one of the two is wrong",
                val.shape
            ));
        }
    }
    Ok(values)
}

/// A tensor's values in f64 (quantized and sparse tensors decoded by the format's own rules).
fn t64(t: &Tensor) -> Result<Vec<f64>, String> {
    let v: Vec<f32> = match &t.data {
        TensorData::F32(v) => v.clone(),
        _ => t.to_f32_dense().map_err(|e| e.to_string())?,
    };
    if v.len() != t.shape.iter().product::<usize>() {
        return Err(format!("tensor of shape {:?} holds {} values", t.shape, v.len()));
    }
    Ok(v.into_iter().map(f64::from).collect())
}

fn chw(v: &Value, what: &str) -> Result<(usize, usize, usize), String> {
    match v.shape[..] {
        [c, h, w] => Ok((c, h, w)),
        _ => Err(format!("{what} needs a [C, H, W] input, got {:?}", v.shape)),
    }
}

/// Output length along one axis (ONNX `pads` and `ceil_mode`; PyTorch's rule that the last
/// window must start inside the input or the leading padding).
fn out_len(input: usize, k: usize, stride: usize, lo: usize, hi: usize, dil: usize, ceil: bool) -> Result<usize, String> {
    let span = k.saturating_sub(1) * dil + 1;
    let padded = input + lo + hi;
    if k == 0 || stride == 0 || dil == 0 || padded < span {
        return Err(format!("window {k} (stride {stride}, pads {lo}+{hi}, dilation {dil}) does not fit {input}"));
    }
    let room = padded - span;
    let mut out = if ceil { room.div_ceil(stride) + 1 } else { room / stride + 1 };
    if ceil && (out - 1) * stride >= input + lo {
        out -= 1;
    }
    Ok(out)
}

fn unary(x: &Value, f: impl Fn(f64) -> f64) -> Value {
    Value { shape: x.shape.clone(), data: x.data.iter().map(|&v| f(v)).collect() }
}

fn eval(op: &Op, ins: &[&Value]) -> Result<Value, String> {
    let x = ins.first().ok_or("no input")?;
    Ok(match op {
        Op::Dense { weight, bias } => {
            let (fin, fout) = match weight.shape[..] {
                [a, b] => (a, b),
                _ => return Err(format!("Dense weight shape {:?}", weight.shape)),
            };
            if x.shape != [fin] {
                return Err(format!("Dense {fin}->{fout} on an input of shape {:?}", x.shape));
            }
            let (w, b) = (t64(weight)?, t64(bias)?);
            let mut y = b;
            for (i, &xi) in x.data.iter().enumerate() {
                for (j, yj) in y.iter_mut().enumerate() {
                    *yj += xi * w[i * fout + j];
                }
            }
            Value { shape: vec![fout], data: y }
        }
        Op::Conv2d { weight, bias, stride, padding, dilation, groups } => {
            let (ic, h, w) = chw(x, "Conv2d")?;
            let (oc, icg, kh, kw) = match weight.shape[..] {
                [a, b, c, d] => (a, b, c, d),
                _ => return Err(format!("Conv2d weight shape {:?}", weight.shape)),
            };
            let g = *groups;
            if g == 0 || ic % g != 0 || oc % g != 0 || icg != ic / g {
                return Err(format!("Conv2d groups {g} with {ic} -> {oc} channels and weight {:?}", weight.shape));
            }
            let ocg = oc / g;
            let oh = out_len(h, kh, stride[0], padding[0], padding[2], dilation[0], false)?;
            let ow = out_len(w, kw, stride[1], padding[1], padding[3], dilation[1], false)?;
            let (wt, b) = (t64(weight)?, t64(bias)?);
            let mut y = vec![0.0; oc * oh * ow];
            for o in 0..oc {
                let group = o / ocg;
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut s = b[o];
                        for c in 0..icg {
                            let xc = group * icg + c;
                            for ky in 0..kh {
                                // Signed: a tap in the padding reads zero.
                                let iy = (oy * stride[0] + ky * dilation[0]) as isize - padding[0] as isize;
                                if iy < 0 || iy >= h as isize {
                                    continue;
                                }
                                for kx in 0..kw {
                                    let ix = (ox * stride[1] + kx * dilation[1]) as isize - padding[1] as isize;
                                    if ix < 0 || ix >= w as isize {
                                        continue;
                                    }
                                    s += x.data[(xc * h + iy as usize) * w + ix as usize]
                                        * wt[((o * icg + c) * kh + ky) * kw + kx];
                                }
                            }
                        }
                        y[(o * oh + oy) * ow + ox] = s;
                    }
                }
            }
            Value { shape: vec![oc, oh, ow], data: y }
        }
        Op::BatchNorm { gamma, beta, mean, var, eps } => {
            let c = x.shape[0];
            let (g, b, m, v) = (t64(gamma)?, t64(beta)?, t64(mean)?, t64(var)?);
            if [g.len(), b.len(), m.len(), v.len()] != [c; 4] {
                return Err(format!("BatchNorm tensors are not [{c}]"));
            }
            let per = x.data.len() / c; // 1 for a flat input, H×W for [C, H, W]
            let mut y = x.data.clone();
            for ch in 0..c {
                let scale = g[ch] / (v[ch] + *eps as f64).sqrt();
                for e in &mut y[ch * per..(ch + 1) * per] {
                    *e = (*e - m[ch]) * scale + b[ch];
                }
            }
            Value { shape: x.shape.clone(), data: y }
        }
        Op::Add | Op::Mul => {
            let (a, b) = (ins[0], *ins.get(1).ok_or("needs two inputs")?);
            let f = |p: f64, q: f64| if matches!(op, Op::Add) { p + q } else { p * q };
            let per_channel_pair = a.data.len() == b.data.len()
                && (a.shape.len() == 1 && b.shape == [a.shape[0], 1, 1] || b.shape.len() == 1 && a.shape == [b.shape[0], 1, 1]);
            if a.shape == b.shape || per_channel_pair {
                // Same elements in the same order; a [C] against [C, 1, 1] gives [C, 1, 1].
                let shape = if a.shape.len() >= b.shape.len() { a.shape.clone() } else { b.shape.clone() };
                Value { shape, data: a.data.iter().zip(&b.data).map(|(&p, &q)| f(p, q)).collect() }
            } else {
                // One side is per channel ([C] or [C, 1, 1]) against [C, H, W]; keep operand order.
                let (big, small, big_first) = if a.shape.len() == 3 && a.data.len() > b.data.len() {
                    (a, b, true)
                } else {
                    (b, a, false)
                };
                let (c, h, w) = chw(big, op.name())?;
                if small.data.len() != c || !(small.shape == [c] || small.shape == [c, 1, 1]) {
                    return Err(format!("cannot broadcast {:?} with {:?}", a.shape, b.shape));
                }
                let mut y = Vec::with_capacity(big.data.len());
                for ch in 0..c {
                    for &e in &big.data[ch * h * w..(ch + 1) * h * w] {
                        let s = small.data[ch];
                        y.push(if big_first { f(e, s) } else { f(s, e) });
                    }
                }
                Value { shape: big.shape.clone(), data: y }
            }
        }
        Op::Concat => {
            // Axis 0 is outermost in row-major order: concatenation is appending.
            let rest = &x.shape[1..];
            let mut shape = x.shape.clone();
            shape[0] = 0;
            let mut data = Vec::new();
            for v in ins {
                if &v.shape[1..] != rest {
                    return Err(format!("Concat of {:?} and {:?}", x.shape, v.shape));
                }
                shape[0] += v.shape[0];
                data.extend_from_slice(&v.data);
            }
            Value { shape, data }
        }
        Op::MaxPool2d { kernel, stride, padding, ceil_mode } => {
            pool(x, *kernel, *stride, *padding, *ceil_mode, None)?
        }
        Op::AvgPool2d { kernel, stride, padding, ceil_mode, count_include_pad } => {
            pool(x, *kernel, *stride, *padding, *ceil_mode, Some(*count_include_pad))?
        }
        Op::GlobalAvgPool => {
            let (c, h, w) = chw(x, "GlobalAvgPool")?;
            let data = (0..c).map(|ch| x.data[ch * h * w..(ch + 1) * h * w].iter().sum::<f64>() / (h * w) as f64).collect();
            Value { shape: vec![c, 1, 1], data }
        }
        Op::Flatten => Value { shape: vec![x.data.len()], data: x.data.clone() },
        Op::Reshape { shape } => {
            if shape.iter().product::<usize>() != x.data.len() {
                return Err(format!("Reshape {:?} to {shape:?}", x.shape));
            }
            Value { shape: shape.clone(), data: x.data.clone() }
        }
        Op::Relu => unary(x, |v| v.max(0.0)),
        Op::Clip { min, max } => {
            let (lo, hi) = (*min as f64, *max as f64);
            unary(x, |v| v.max(lo).min(hi))
        }
        Op::LeakyRelu { alpha } => {
            let a = *alpha as f64;
            unary(x, |v| if v < 0.0 { a * v } else { v })
        }
        Op::Sigmoid => unary(x, |v| 1.0 / (1.0 + (-v).exp())),
        Op::Tanh => unary(x, f64::tanh),
        Op::HardSwish => unary(x, |v| v * (v + 3.0).clamp(0.0, 6.0) / 6.0),
        // In f64 (the runtime divides in f32: at exact ties the two may pick neighbours).
        Op::Quantize { scale, zero_point } => {
            let (s, z) = (*scale as f64, *zero_point as f64);
            unary(x, |v| s * (((v / s).round_ties_even() + z).clamp(0.0, 255.0) - z))
        }
        Op::Sign => unary(x, |v| if v >= 0.0 { 1.0 } else { -1.0 }),
        Op::Softmax => {
            if x.shape.len() != 1 {
                return Err(format!("Softmax over the flat sample needs a flat input, got {:?}", x.shape));
            }
            // Shifted by the maximum so that huge logits do not overflow exp().
            let m = x.data.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = x.data.iter().map(|&v| (v - m).exp()).collect();
            let s: f64 = e.iter().sum();
            Value { shape: x.shape.clone(), data: e.into_iter().map(|v| v / s).collect() }
        }
        Op::Dropout { .. } | Op::Identity => (*x).clone(),
    })
}

/// Max pooling (`avg == None`) or average pooling (`avg == Some(count_include_pad)`).
///
/// Padded cells never win a max. The average's divisor: with `count_include_pad`, the cells of
/// the window that lie inside the *padded* input (input plus `padding`; a ceil-mode window that
/// hangs past the trailing padding does not count the overhang: PyTorch's and ONNX Runtime's
/// rule); without it, the cells inside the input.
fn pool(
    x: &Value,
    k: [usize; 2],
    s: [usize; 2],
    p: [usize; 4],
    ceil: bool,
    avg: Option<bool>,
) -> Result<Value, String> {
    let (c, h, w) = chw(x, if avg.is_some() { "AvgPool2d" } else { "MaxPool2d" })?;
    let oh = out_len(h, k[0], s[0], p[0], p[2], 1, ceil)?;
    let ow = out_len(w, k[1], s[1], p[1], p[3], 1, ceil)?;
    let mut y = vec![0.0; c * oh * ow];
    for ch in 0..c {
        for oy in 0..oh {
            for ox in 0..ow {
                // Window in padded coordinates: rows y0..y0+k of the input shifted by the pad.
                let y0 = (oy * s[0]) as isize - p[0] as isize;
                let x0 = (ox * s[1]) as isize - p[1] as isize;
                let (mut max, mut sum, mut inside, mut in_padded) = (f64::NEG_INFINITY, 0.0, 0usize, 0usize);
                for ky in 0..k[0] as isize {
                    for kx in 0..k[1] as isize {
                        let (iy, ix) = (y0 + ky, x0 + kx);
                        if iy < h as isize + p[2] as isize && ix < w as isize + p[3] as isize {
                            in_padded += 1; // iy, ix >= -pad by construction
                        }
                        if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                            continue;
                        }
                        let v = x.data[(ch * h + iy as usize) * w + ix as usize];
                        max = max.max(v);
                        sum += v;
                        inside += 1;
                    }
                }
                if inside == 0 {
                    return Err(format!("a pooling window at ({oy}, {ox}) covers no input cell"));
                }
                y[(ch * oh + oy) * ow + ox] = match avg {
                    None => max,
                    Some(true) => sum / in_padded as f64,
                    Some(false) => sum / inside as f64,
                };
            }
        }
    }
    Ok(Value { shape: vec![c, oh, ow], data: y })
}

#[cfg(test)]
mod tests;
