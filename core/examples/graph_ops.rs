//! Graph-op speed by kernel set (generic included, so a SIMD kernel shows what it pays):
//! a MobileNetV2-style network (stem conv, inverted residual blocks with 1x1 expand + ReLU6,
//! 3x3 depthwise stride 1 and 2 + ReLU6, 1x1 project, residual Add) and a residual network
//! with BatchNorm, seeded weights, real test digits. Minimum time per call over many rounds,
//! sets interleaved round by round (see `kernel_sets.rs` for why the minimum).
//!
//! `cargo run --release -p mdeploy-core --example graph_ops [ROUNDS]`

use mdeploy_core::graph::{Graph, GraphBuilder, Op, ValueId};
use mdeploy_core::kernels::KernelSet;
use mdeploy_core::model::Tensor;
use mdeploy_core::Plan;
use std::time::Instant;

#[path = "../benches/common/mnist.rs"]
mod mnist;

struct Seeded(u64);
impl Seeded {
    fn t(&mut self, shape: &[usize], scale: f32) -> Tensor {
        let n = shape.iter().product();
        let v = (0..n)
            .map(|_| {
                self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0) * scale
            })
            .collect();
        Tensor::f32(shape.to_vec(), v)
    }
    fn conv(&mut self, ic: usize, oc: usize, k: usize, stride: usize, groups: usize) -> Op {
        let s = (6.0 / ((ic / groups) * k * k) as f32).sqrt();
        let p = k / 2;
        Op::Conv2d {
            weight: self.t(&[oc, ic / groups, k, k], s),
            bias: self.t(&[oc], 0.1),
            stride: [stride, stride],
            padding: [p; 4],
            dilation: [1, 1],
            groups,
        }
    }
    fn bn(&mut self, c: usize) -> Op {
        let var = Tensor::f32(vec![c], vec![0.8; c]);
        Op::BatchNorm { gamma: self.t(&[c], 0.5), beta: self.t(&[c], 0.1), mean: self.t(&[c], 0.1), var, eps: 1e-5 }
    }
}

fn relu6() -> Op {
    Op::Clip { min: 0.0, max: 6.0 }
}

fn mobilenet(r: &mut Seeded) -> Graph {
    let mut b = GraphBuilder::new();
    let mut x = b.chain(0, [r.conv(1, 16, 3, 2, 1), r.bn(16), relu6()]);
    let mut c = 16;
    for (expand, out, stride) in [(4, 16, 1), (4, 24, 2), (4, 24, 1), (4, 32, 1)] {
        let e = c * expand;
        let h = b.chain(x, [r.conv(c, e, 1, 1, 1), r.bn(e), relu6()]);
        let h = b.chain(h, [r.conv(e, e, 3, stride, e), r.bn(e), relu6()]);
        let h: ValueId = b.chain(h, [r.conv(e, out, 1, 1, 1), r.bn(out)]);
        x = if stride == 1 && c == out { b.push(Op::Add, &[x, h]) } else { h };
        c = out;
    }
    let d = Op::Dense { weight: r.t(&[c, 10], 0.3), bias: r.t(&[10], 0.1) };
    b.chain(x, [Op::GlobalAvgPool, Op::Flatten, d, Op::Softmax]);
    b.finish()
}

fn resnet(r: &mut Seeded) -> Graph {
    let mut b = GraphBuilder::new();
    let mut x = b.chain(0, [r.conv(1, 16, 3, 1, 1), r.bn(16), Op::Relu]);
    for _ in 0..2 {
        let y = b.chain(x, [r.conv(16, 16, 3, 1, 1), r.bn(16), Op::Relu, r.conv(16, 16, 3, 1, 1), r.bn(16)]);
        let s = b.push(Op::Add, &[x, y]);
        x = b.push(Op::Relu, &[s]);
    }
    let d = Op::Dense { weight: r.t(&[16, 10], 0.3), bias: r.t(&[10], 0.1) };
    b.chain(x, [Op::GlobalAvgPool, Op::Flatten, d, Op::Softmax]);
    b.finish()
}

fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(20);
    let (digits, _) = mnist::test_digits().unwrap_or_else(|e| panic!("{e}"));
    let sets = KernelSet::available();
    for (name, g) in [("mobilenet", mobilenet(&mut Seeded(1))), ("resnet", resnet(&mut Seeded(2)))] {
        for batch in [1usize, 64] {
            let calls = if batch == 1 { 64 } else { 1 };
            let mut plans: Vec<_> =
                sets.iter().map(|&ks| Plan::from_graph(&g, &[1, 28, 28], batch, ks).expect("plan")).collect();
            let mut out = vec![0.0f32; batch * plans[0].output_len()];
            let mut best = vec![f64::INFINITY; sets.len()];
            for _ in 0..rounds {
                for (i, plan) in plans.iter_mut().enumerate() {
                    let t = Instant::now();
                    for c in 0..calls {
                        plan.run(&digits[c * batch * 784..(c + 1) * batch * 784], batch, &mut out).expect("run");
                    }
                    best[i] = best[i].min(t.elapsed().as_secs_f64());
                }
            }
            for (ks, t) in sets.iter().zip(&best) {
                let per_img = t / (calls * batch) as f64;
                println!("{name}/batch{batch:<4} {:<22} {:>9.2} µs/image", ks.name(), per_img * 1e6);
            }
        }
    }
}
