// The graph suite's cases: included (`include!`) by every runner — `core/tests/plan_graph.rs`
// (the CPU Plan on every kernel set) and `wasm/tests/gpu_graph.rs` (the WebGPU engine) — each of
// which defines `check(name, &graph, &input_shape, &inputs)` for its backend. One definition of
// what must hold, one runner per backend.

fn digits(n: usize) -> Vec<f32> {
    mnist_digits(n)
}

fn relu6() -> Op {
    Op::Clip { min: 0.0, max: 6.0 }
}

/// conv → BN → ReLU → conv → BN → Add(skip) → ReLU → GAP → Dense → Softmax.
pub fn residual(rng: &mut Rng) -> Graph {
    let mut b = GraphBuilder::new();
    let x = b.chain(0, [conv(rng, 1, 8, [3, 3], [1, 1], [1; 4], [1, 1], 1), bn(rng, 8), Op::Relu]);
    let y = b.chain(x, [conv(rng, 8, 8, [3, 3], [1, 1], [1; 4], [1, 1], 1), bn(rng, 8), Op::Relu]);
    let y = b.chain(y, [conv(rng, 8, 8, [3, 3], [1, 1], [1; 4], [1, 1], 1), bn(rng, 8)]);
    let s = b.push(Op::Add, &[x, y]);
    b.chain(s, [Op::Relu, Op::GlobalAvgPool, Op::Flatten, dense(rng, 8, 10), Op::Softmax]);
    b.finish()
}

/// One MobileNetV2 inverted residual block: 1x1 expand + BN + ReLU6, 3x3 depthwise (stride
/// `stride`) + BN + ReLU6, 1x1 project + BN, and the residual Add when the shape allows.
pub fn inverted_residual(b: &mut GraphBuilder, rng: &mut Rng, x: u32, c: usize, expand: usize, out: usize, stride: usize) -> u32 {
    let e = c * expand;
    let h = b.chain(x, [conv(rng, c, e, [1, 1], [1, 1], [0; 4], [1, 1], 1), bn(rng, e), relu6()]);
    let h = b.chain(h, [conv(rng, e, e, [3, 3], [stride, stride], [1; 4], [1, 1], e), bn(rng, e), relu6()]);
    let h = b.chain(h, [conv(rng, e, out, [1, 1], [1, 1], [0; 4], [1, 1], 1), bn(rng, out)]);
    if stride == 1 && c == out {
        b.push(Op::Add, &[x, h])
    } else {
        h
    }
}

pub fn mobilenet(rng: &mut Rng) -> Graph {
    let mut b = GraphBuilder::new();
    let x = b.chain(0, [conv(rng, 1, 8, [3, 3], [2, 2], [1; 4], [1, 1], 1), bn(rng, 8), relu6()]);
    let x = inverted_residual(&mut b, rng, x, 8, 4, 8, 1);
    let x = inverted_residual(&mut b, rng, x, 8, 3, 16, 2);
    let x = inverted_residual(&mut b, rng, x, 16, 2, 16, 1);
    b.chain(x, [Op::GlobalAvgPool, Op::Flatten, dense(rng, 16, 10), Op::Softmax]);
    b.finish()
}

#[test]
fn residual_block_with_batchnorm() {
    check("residual", &residual(&mut Rng(1)), &MNIST, &digits(6));
}

#[test]
fn mobilenet_v2_inverted_residual_blocks() {
    check("mobilenet", &mobilenet(&mut Rng(2)), &MNIST, &digits(6));
}

#[test]
fn squeeze_and_excitation_gate() {
    let rng = &mut Rng(3);
    let mut b = GraphBuilder::new();
    let x = b.chain(0, [conv(rng, 1, 8, [3, 3], [1, 1], [1; 4], [1, 1], 1), Op::Relu, Op::maxpool2d([2, 2], [2, 2])]);
    // The gate's Dense layers start the batched stage: the Mul and the convs after it run there.
    let gate = b.chain(x, [Op::GlobalAvgPool, Op::Flatten, dense(rng, 8, 4), Op::Relu, dense(rng, 4, 8), Op::Sigmoid]);
    let y = b.push(Op::Mul, &[x, gate]);
    // A [C, 1, 1] gate too (Reshape of the flat gate), on the other side of the Mul.
    let gate2 = b.push(Op::Reshape { shape: vec![8, 1, 1] }, &[gate]);
    let y = b.push(Op::Mul, &[gate2, y]);
    let y = b.chain(y, [conv(rng, 8, 6, [3, 3], [1, 1], [1; 4], [1, 1], 1), Op::HardSwish]);
    b.chain(y, [Op::Flatten, dense(rng, 6 * 14 * 14, 10), Op::Softmax]);
    check("se", &b.finish(), &MNIST, &digits(5));
}

#[test]
fn concat_and_padded_ceil_pools() {
    let rng = &mut Rng(4);
    let mut b = GraphBuilder::new();
    let a = b.push(conv(rng, 1, 4, [3, 3], [1, 1], [1; 4], [1, 1], 1), &[0]);
    let a = b.push(Op::Relu, &[a]);
    let c = b.push(conv(rng, 1, 3, [5, 5], [1, 1], [2; 4], [1, 1], 1), &[0]);
    let p = b.push(Op::MaxPool2d { kernel: [3, 3], stride: [1, 1], padding: [1; 4], ceil_mode: false }, &[0]);
    let cat = b.push(Op::Concat, &[a, c, p]);
    let y = b.chain(
        cat,
        [
            conv(rng, 8, 6, [1, 1], [1, 1], [0; 4], [1, 1], 1),
            Op::Tanh,
            Op::AvgPool2d { kernel: [3, 3], stride: [2, 2], padding: [1; 4], ceil_mode: true, count_include_pad: false },
            Op::AvgPool2d { kernel: [2, 2], stride: [2, 2], padding: [0, 0, 1, 1], ceil_mode: true, count_include_pad: true },
            Op::MaxPool2d { kernel: [3, 3], stride: [2, 2], padding: [1, 0, 1, 2], ceil_mode: true },
        ],
    );
    let g1 = b.push(Op::GlobalAvgPool, &[y]);
    let g2 = b.push(Op::GlobalAvgPool, &[cat]);
    // Concat of [C, 1, 1] values and of flat values.
    let gg = b.push(Op::Concat, &[g1, g2]);
    let f = b.push(Op::Flatten, &[gg]);
    let f2 = b.push(Op::Flatten, &[y]);
    let ff = b.push(Op::Concat, &[f, f2]);
    let mut g = b.finish_at(ff);
    let n = g.shapes(&MNIST).expect("shapes")[ff as usize][0];
    g.nodes.push(Node::new(dense(rng, n, 10), vec![ff]));
    g.nodes.push(Node::new(Op::Softmax, vec![ff + 1]));
    g.output = ff + 2;
    check("concat+pools", &g, &MNIST, &digits(5));
}

#[test]
fn grouped_dilated_asymmetric_convs_and_activations() {
    let rng = &mut Rng(5);
    let g = Graph::sequential([
        conv(rng, 1, 6, [3, 3], [1, 1], [1, 0, 2, 1], [1, 1], 1),
        Op::LeakyRelu { alpha: 0.1 },
        conv(rng, 6, 6, [3, 3], [1, 1], [2, 2, 2, 2], [2, 2], 3),
        Op::Sigmoid,
        conv(rng, 6, 4, [2, 3], [2, 1], [0, 1, 1, 0], [1, 2], 2),
        Op::MaxPool2d { kernel: [3, 3], stride: [2, 2], padding: [1; 4], ceil_mode: true },
        Op::HardSwish,
        Op::Clip { min: -0.5, max: 0.7 },
        Op::Flatten,
        Op::Dropout { rate: 0.3 },
        dense(rng, 4 * 8 * 13, 10),
        Op::Tanh,
    ]);
    g.validate(&MNIST).expect("valid");
    check("grouped", &g, &MNIST, &digits(5));
}

#[test]
fn flat_graphs_batchnorm_and_shared_values() {
    let rng = &mut Rng(6);
    let mut b = GraphBuilder::new();
    // BatchNorm straight on the input (nothing to fold into) and on a Dense (folded).
    let x = b.chain(0, [bn(rng, 1), Op::Flatten, dense(rng, 784, 32), bn(rng, 32), Op::Tanh]);
    // `a` has two readers: its ReLU must not fuse into the Dense.
    let a = b.push(dense(rng, 32, 32), &[x]);
    let r = b.push(Op::Relu, &[a]);
    let s = b.push(Op::Add, &[a, r]);
    let s = b.push(bn(rng, 32), &[s]);
    b.chain(s, [dense(rng, 32, 10), Op::Softmax]);
    check("flat", &b.finish(), &MNIST, &digits(5));
}

#[test]
fn spatial_outputs_leave_in_nchw_order() {
    let rng = &mut Rng(7);
    // No Dense: the output is a conv activation, transposed back on exit.
    let g = Graph::sequential([conv(rng, 1, 5, [3, 3], [2, 2], [1; 4], [1, 1], 1), Op::Relu]);
    check("spatial out", &g, &MNIST, &digits(3));
    // Flatten of an HWC value into a non-Dense consumer (Softmax), as the output.
    let g = Graph::sequential([conv(rng, 1, 3, [3, 3], [3, 3], [0; 4], [1, 1], 1), Op::Flatten, Op::Softmax]);
    check("flatten softmax", &g, &MNIST, &digits(3));
    // Reshape of an HWC value to another 3-D shape, then a conv.
    let g = Graph::sequential([
        conv(rng, 1, 4, [3, 3], [1, 1], [1; 4], [1, 1], 1),
        Op::Reshape { shape: vec![16, 14, 14] },
        conv(rng, 16, 4, [1, 1], [1, 1], [0; 4], [1, 1], 1),
        Op::Flatten,
        dense(rng, 4 * 14 * 14, 10),
    ]);
    check("reshape", &g, &MNIST, &digits(3));
    // Nothing but identities: the output is the input.
    let g = Graph::sequential([Op::Dropout { rate: 0.1 }, Op::Identity]);
    check("identity", &g, &MNIST, &digits(2));
}

#[test]
fn multi_channel_inputs_are_transposed_on_entry() {
    let rng = &mut Rng(8);
    // Three digits as the three channels of one input.
    let d = digits(6);
    let g = Graph::sequential([
        conv(rng, 3, 8, [3, 3], [1, 1], [1; 4], [1, 1], 1),
        Op::Relu,
        Op::maxpool2d([2, 2], [2, 2]),
        Op::Flatten,
        dense(rng, 8 * 14 * 14, 10),
    ]);
    check("3-channel", &g, &[3, 28, 28], &d);
    // Pooling and an activation straight on a multi-channel input, then a Dense.
    let g = Graph::sequential([
        Op::AvgPool2d { kernel: [2, 2], stride: [2, 2], padding: [0; 4], ceil_mode: false, count_include_pad: false },
        Op::Sigmoid,
        Op::Flatten,
        dense(rng, 3 * 14 * 14, 7),
    ]);
    check("3-channel pool", &g, &[3, 28, 28], &d);
}

/// Seeded random graphs over cropped MNIST digits: convs (any groups, stride, dilation,
/// padding), pools, BatchNorm, activations, residual Adds, SE Muls, Concats, then a head.
#[test]
fn random_graphs() {
    let d = digits(40);
    for seed in 0..60u64 {
        let rng = &mut Rng(1000 + seed);
        let (c0, h0, w0) = (1 + rng.below(3), 9 + rng.below(8), 9 + rng.below(8));
        let shape = [c0, h0, w0];
        // Channel k of sample s: a crop of digit (s·c0 + k), offset so it holds ink.
        let mut x = Vec::new();
        for s in 0..3 {
            for k in 0..c0 {
                let dig = &d[((s * c0 + k) % 40) * 784..][..784];
                for y in 0..h0 {
                    for xx in 0..w0 {
                        x.push(dig[(y + 6) * 28 + xx + 6]);
                    }
                }
            }
        }
        let mut nodes: Vec<Node> = Vec::new();
        fn push(nodes: &mut Vec<Node>, op: Op, ins: &[u32]) -> u32 {
            nodes.push(Node::new(op, ins.to_vec()));
            nodes.len() as u32
        }
        let mut shapes = vec![shape.to_vec()];
        let mut vals: Vec<u32> = vec![0];
        let ops = 3 + rng.below(7);
        for _ in 0..ops {
            let spatial: Vec<u32> = vals.iter().copied().filter(|&u| shapes[u as usize].len() == 3).collect();
            let v = spatial[rng.below(spatial.len())];
            let s = shapes[v as usize].clone();
            let c = s[0];
            let op = match rng.below(11) {
                0 | 1 => {
                    let groups = [1, c][rng.below(2)];
                    let oc = if groups == 1 { 1 + rng.below(9) } else { c * (1 + rng.below(2)) };
                    let k = [1 + rng.below(3), 1 + rng.below(3)];
                    let st = [1 + rng.below(2), 1 + rng.below(2)];
                    let dil = [1 + rng.below(2), 1 + rng.below(2)];
                    let pad = [rng.below(2), rng.below(2), rng.below(3), rng.below(2)];
                    conv(rng, c, oc, k, st, pad, dil, groups)
                }
                2 => {
                    let k = [1 + rng.below(3), 1 + rng.below(3)];
                    let pad = [rng.below(k[0]), rng.below(k[1]), rng.below(k[0]), rng.below(k[1])];
                    let (st, ceil) = ([1 + rng.below(2), 1 + rng.below(2)], rng.below(2) == 0);
                    if rng.below(2) == 0 {
                        Op::MaxPool2d { kernel: k, stride: st, padding: pad, ceil_mode: ceil }
                    } else {
                        Op::AvgPool2d { kernel: k, stride: st, padding: pad, ceil_mode: ceil, count_include_pad: rng.below(2) == 0 }
                    }
                }
                3 => bn(rng, c),
                4 => [Op::Relu, relu6(), Op::LeakyRelu { alpha: 0.2 }, Op::Sigmoid, Op::Tanh, Op::HardSwish][rng.below(6)].clone(),
                5 | 6 => {
                    // Add or Mul with another value of the same shape, or a GAP gate.
                    let same: Vec<u32> = vals.iter().copied().filter(|&u| shapes[u as usize] == s && u != v).collect();
                    let other = if !same.is_empty() && rng.below(2) == 0 {
                        same[rng.below(same.len())]
                    } else {
                        let gap = push(&mut nodes, Op::GlobalAvgPool, &[v]);
                        shapes.push(vec![c, 1, 1]);
                        vals.push(gap);
                        gap
                    };
                    let op = if rng.below(2) == 0 { Op::Add } else { Op::Mul };
                    let id = push(&mut nodes, op, &[v, other]);
                    shapes.push(s.clone());
                    vals.push(id);
                    continue;
                }
                7 => {
                    let same: Vec<u32> =
                        vals.iter().copied().filter(|&u| shapes[u as usize].len() == 3 && shapes[u as usize][1..] == s[1..]).collect();
                    let other = same[rng.below(same.len())];
                    let id = push(&mut nodes, Op::Concat, &[v, other, v]);
                    let mut ns = s.clone();
                    ns[0] = 2 * c + shapes[other as usize][0];
                    shapes.push(ns);
                    vals.push(id);
                    continue;
                }
                8 | 9 => {
                    // Flatten (an HWC value's order travels with it), then back to some 3-D shape.
                    let (h, w) = (s[1], s[2]);
                    let f = push(&mut nodes, Op::Flatten, &[v]);
                    shapes.push(vec![c * h * w]);
                    vals.push(f);
                    let target = [vec![c, h, w], vec![h, c, w], vec![c * h, w, 1], vec![1, c * h, w]][rng.below(4)].clone();
                    let id = push(&mut nodes, Op::Reshape { shape: target.clone() }, &[f]);
                    shapes.push(target);
                    vals.push(id);
                    continue;
                }
                _ => Op::Identity,
            };
            let id = push(&mut nodes, op, &[v]);
            let g = Graph { nodes: nodes.clone(), output: id };
            match g.shapes(&shape) {
                Ok(all) if all[id as usize].len() == 3 => {
                    shapes.push(all[id as usize].clone());
                    vals.push(id);
                }
                _ => {
                    nodes.pop();
                }
            }
        }
        let last = *vals.iter().rev().find(|&&u| shapes[u as usize].len() == 3).expect("input at least");
        let s = shapes[last as usize].clone();
        let n: usize = s.iter().product();
        if rng.below(3) > 0 {
            let f = push(&mut nodes, Op::Flatten, &[last]);
            let y = push(&mut nodes, dense(rng, n, 7), &[f]);
            push(&mut nodes, Op::Softmax, &[y]);
        }
        let g = Graph { output: nodes.len() as u32, nodes };
        if std::env::var("DUMP").is_ok() {
            eprintln!("{seed}: {shape:?} {:#?}", mdeploy_core::lower::lower(&g, &shape).map(|p| p.steps.iter().map(|s| format!("{:?}", s.kernel).chars().take(300).collect::<String>()).collect::<Vec<_>>()));
        }
        check(&format!("random graph {seed}"), &g, &shape, &x);
    }
}

/// Every op on its own between a 4-channel stem conv (so its input is an HWC value) and a
/// Dense head, on MNIST digits.
#[test]
fn every_op_alone() {
    let rng = &mut Rng(10);
    let pool = |kind: usize, k: usize, s: usize, pad: [usize; 4], ceil: bool| match kind {
        0 => Op::MaxPool2d { kernel: [k, k], stride: [s, s], padding: pad, ceil_mode: ceil },
        i => Op::AvgPool2d { kernel: [k, k], stride: [s, s], padding: pad, ceil_mode: ceil, count_include_pad: i == 2 },
    };
    let mut unary: Vec<(&str, Op)> = vec![
        ("batchnorm", bn(rng, 4)),
        ("relu", Op::Relu),
        ("clip", Op::Clip { min: -0.25, max: 0.5 }),
        ("leaky", Op::LeakyRelu { alpha: 0.3 }),
        ("sigmoid", Op::Sigmoid),
        ("tanh", Op::Tanh),
        ("hardswish", Op::HardSwish),
        ("dropout", Op::Dropout { rate: 0.5 }),
        ("identity", Op::Identity),
        ("gap", Op::GlobalAvgPool),
        ("reshape", Op::Reshape { shape: vec![8, 28, 14] }),
        ("conv 5x5 s2 asym", conv(rng, 4, 6, [5, 5], [2, 2], [2, 1, 0, 2], [1, 1], 1)),
        ("conv dilated", conv(rng, 4, 5, [3, 3], [1, 1], [2; 4], [2, 2], 1)),
        ("conv grouped", conv(rng, 4, 6, [3, 1], [1, 2], [1, 0, 1, 0], [1, 1], 2)),
        ("depthwise", conv(rng, 4, 4, [3, 3], [2, 2], [1; 4], [1, 1], 4)),
    ];
    for kind in 0..3 {
        unary.push(("pool 2x2", pool(kind, 2, 2, [0; 4], false)));
        unary.push(("pool 3x3 s2 pad ceil", pool(kind, 3, 2, [1; 4], true)));
        unary.push(("pool 3x3 s3 asym ceil", pool(kind, 3, 3, [0, 2, 1, 0], true)));
    }
    for (name, op) in unary {
        let mut b = GraphBuilder::new();
        let x = b.push(conv(rng, 1, 4, [3, 3], [1, 1], [1; 4], [1, 1], 1), &[0]);
        let y = b.push(op, &[x]);
        let mut g = b.finish_at(y);
        let n: usize = g.shapes(&MNIST).expect("shapes")[y as usize].iter().product();
        g.nodes.push(Node::new(Op::Flatten, vec![y]));
        g.nodes.push(Node::new(dense(rng, n, 10), vec![y + 1]));
        g.nodes.push(Node::new(Op::Softmax, vec![y + 2]));
        g.output = y + 3;
        check(name, &g, &MNIST, &digits(4));
    }
    for (name, op) in [("add", Op::Add), ("mul", Op::Mul), ("concat", Op::Concat)] {
        let mut b = GraphBuilder::new();
        let x = b.push(conv(rng, 1, 4, [3, 3], [1, 1], [1; 4], [1, 1], 1), &[0]);
        let y = b.push(conv(rng, 1, 4, [5, 5], [1, 1], [2; 4], [1, 1], 1), &[0]);
        let z = b.push(op, &[x, y]);
        let n = if name == "concat" { 8 * 784 } else { 4 * 784 };
        b.chain(z, [Op::Flatten, dense(rng, n, 10)]);
        check(name, &b.finish(), &MNIST, &digits(4));
    }
    // A per-channel operand that is a Flatten of an HWC value: [2, 2, 2] flattened is [8],
    // broadcast over an [8, H, W] value.
    let mut b = GraphBuilder::new();
    let x = b.push(conv(rng, 1, 8, [3, 3], [1, 1], [1; 4], [1, 1], 1), &[0]);
    let small = b.chain(0, [Op::AvgPool2d { kernel: [14, 14], stride: [14, 14], padding: [0; 4], ceil_mode: false, count_include_pad: false }]);
    let small = b.chain(small, [conv(rng, 1, 2, [1, 1], [1, 1], [0; 4], [1, 1], 1), Op::Flatten]);
    let z = b.push(Op::Mul, &[x, small]);
    b.chain(z, [Op::Flatten, dense(rng, 8 * 784, 10)]);
    check("flattened HWC gate", &b.finish(), &MNIST, &digits(3));

    // Both operands the same value (never run in place over itself).
    for op in [Op::Add, Op::Mul] {
        let mut b = GraphBuilder::new();
        let x = b.push(conv(rng, 1, 4, [3, 3], [1, 1], [1; 4], [1, 1], 1), &[0]);
        let z = b.push(op, &[x, x]);
        b.chain(z, [Op::Flatten, dense(rng, 4 * 784, 10)]);
        check("x op x", &b.finish(), &MNIST, &digits(3));
    }
}


#[test]
fn batchnorm_covers_values_of_every_rank() {
    // BatchNorm normalises over axis 0 whatever the rank. The lowering once built a kernel over
    // only the first C floats of a [C, L] value: as the output the plan refused to build, before
    // another op it read past the kernel's buffer and panicked (found by the ONNX node tests).
    let rng = &mut Rng(12);
    let g = Graph::sequential([Op::Reshape { shape: vec![28, 28] }, bn(rng, 28), Op::Relu, Op::Flatten, dense(rng, 784, 10)]);
    check("bn [C, L] then ops", &g, &MNIST, &digits(3));
    let g = Graph::sequential([Op::Reshape { shape: vec![28, 28] }, bn(rng, 28)]);
    check("bn [C, L] as the output", &g, &MNIST, &digits(3));
    // A [C, L] view of a conv's output (stored HWC, so made plain first).
    let g = Graph::sequential([
        conv(rng, 1, 4, [3, 3], [1, 1], [1; 4], [1, 1], 1),
        Op::Reshape { shape: vec![4, 784] },
        bn(rng, 4),
        Op::Sigmoid,
    ]);
    check("bn [C, L] of a conv output", &g, &MNIST, &digits(3));
}
