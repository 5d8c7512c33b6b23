//! Pruning (`mdeploy_train::prune`): the sparsity asked for is the one stored (global, per
//! layer, blocks, n:m), the PolynomialDecay schedule against hand-computed values, masks that
//! hold through real fine-tuning steps, the storage chosen per tensor and its round trip
//! through the `.mdm` format and the inference plan.

use mdeploy_core::data::Dataset;
use mdeploy_core::format;
use mdeploy_core::graph::{Graph, Op};
use mdeploy_core::model::{Model, Tensor, TensorData};
use mdeploy_core::rng::Rng;
use mdeploy_core::train::prune::{
    self, choose_encoding, compute_masks, encoded_bytes, Criterion, Encoding, PolynomialDecay, PruneHook, Scope,
    Structure,
};
use mdeploy_core::train::{MaskHook, TrainConfig, Trainer};
use mdeploy_core::{arch, Plan};
use mdeploy_testkit::mnist::spread_subset as subset;

fn digits(n: usize) -> Dataset {
    subset(&mdeploy_testkit::mnist::split().train, n)
}

/// A model with a Conv2d and two Dense layers of different sizes, random weights.
fn model(seed: u64) -> Model {
    let mut rng = Rng::new(seed);
    let mut t = |shape: &[usize], scale: f32| {
        let n = shape.iter().product();
        Tensor::f32(shape.to_vec(), (0..n).map(|_| rng.normal() * scale).collect())
    };
    let mut m = arch::mlp(seed);
    m.graph = Graph::sequential([
        Op::Conv2d {
            weight: t(&[4, 1, 5, 5], 0.3),
            bias: t(&[4], 0.0),
            stride: [2, 2],
            padding: [0; 4],
            dilation: [1, 1],
            groups: 1,
        },
        Op::Relu,
        Op::Flatten,
        Op::Dense { weight: t(&[4 * 12 * 12, 32], 0.05), bias: t(&[32], 0.0) },
        Op::Relu,
        Op::Dense { weight: t(&[32, 10], 0.2), bias: t(&[10], 0.0) },
        Op::Softmax,
    ]);
    m
}

fn weights(m: &Model) -> Vec<(usize, Vec<usize>, Vec<f32>)> {
    prune::prunable_nodes(m)
        .into_iter()
        .map(|i| {
            let w = &m.graph.nodes[i].op.tensors()[0].clone();
            (i, w.shape.clone(), w.to_f32_dense().unwrap())
        })
        .collect()
}

fn zeros(v: &[f32]) -> usize {
    v.iter().filter(|&&x| x == 0.0).count()
}

#[test]
fn threshold_keeps_exactly_the_weights_above_it() {
    let mut m = model(1);
    let before = weights(&m);
    prune::prune(&mut m, Criterion::Threshold(0.1), Structure::Unstructured, Scope::Global).unwrap();
    for ((_, _, b), (_, _, a)) in before.iter().zip(weights(&m)) {
        for (x, y) in b.iter().zip(&a) {
            assert_eq!(*y, if x.abs() > 0.1 { *x } else { 0.0 });
        }
    }
}

#[test]
fn global_sparsity_is_the_one_asked_for_and_drops_the_smallest() {
    let mut m = model(2);
    let before = weights(&m);
    let total: usize = before.iter().map(|w| w.2.len()).sum();
    prune::prune(&mut m, Criterion::Sparsity(0.8), Structure::Unstructured, Scope::Global).unwrap();
    let after = weights(&m);
    let pruned: usize = after.iter().map(|w| zeros(&w.2)).sum();
    assert_eq!(pruned, (0.8 * total as f64).round() as usize);
    // Every kept weight is at least as large as every dropped one, across layers.
    let (mut kept_min, mut dropped_max) = (f32::INFINITY, 0.0f32);
    for ((_, _, b), (_, _, a)) in before.iter().zip(&after) {
        for (x, y) in b.iter().zip(a) {
            if *y == 0.0 {
                dropped_max = dropped_max.max(x.abs());
            } else {
                assert_eq!(x, y, "kept weights are unchanged");
                kept_min = kept_min.min(x.abs());
            }
        }
    }
    assert!(kept_min >= dropped_max, "kept {kept_min} < dropped {dropped_max}");
    // Global ranking: the layers differ (weights of scale 0.05 lose more than those of 0.3).
    let per: Vec<f32> = after.iter().map(|w| zeros(&w.2) as f32 / w.2.len() as f32).collect();
    assert!(per[1] > 0.8 && per[0] < 0.8, "per-layer sparsities under a global target: {per:?}");
}

#[test]
fn per_layer_sparsity_holds_in_every_layer() {
    let mut m = model(3);
    prune::prune(&mut m, Criterion::Sparsity(0.75), Structure::Unstructured, Scope::PerLayer).unwrap();
    for (i, _, w) in weights(&m) {
        assert_eq!(zeros(&w), (0.75 * w.len() as f64).round() as usize, "node {i}");
    }
}

#[test]
fn blocks_are_kept_or_dropped_whole() {
    let mut m = model(4);
    prune::prune(&mut m, Criterion::Sparsity(0.5), Structure::Block { rows: 4, cols: 2 }, Scope::PerLayer)
        .unwrap();
    for (i, shape, w) in weights(&m) {
        let rows = shape[0];
        let cols: usize = shape[1..].iter().product();
        let mut dropped = 0;
        for br in (0..rows).step_by(4) {
            for bc in (0..cols).step_by(2) {
                let cells: Vec<f32> = (br..(br + 4).min(rows))
                    .flat_map(|r| (bc..(bc + 2).min(cols)).map(move |c| (r, c)))
                    .map(|(r, c)| w[r * cols + c])
                    .collect();
                let z = zeros(&cells);
                assert!(z == 0 || z == cells.len(), "node {i}: block ({br}, {bc}) partly pruned");
                dropped += z;
            }
        }
        // Layers whose sides are multiples of the block meet the target exactly; the conv
        // (25 columns) has partial edge blocks and stops within one block below it.
        if rows % 4 == 0 && cols % 2 == 0 {
            assert_eq!(dropped, w.len() / 2, "node {i} shape {shape:?}");
        } else {
            assert!(dropped <= w.len() / 2 && dropped + 8 > w.len() / 2, "node {i}: {dropped}");
        }
    }
}

#[test]
fn n_of_m_keeps_the_largest_n_of_every_m_inputs() {
    let mut m = model(5);
    let before = weights(&m);
    prune::prune(&mut m, Criterion::NOfM, Structure::NOfM { n: 2, m: 4 }, Scope::PerLayer).unwrap();
    for ((i, shape, b), (_, _, a)) in before.iter().zip(weights(&m)) {
        let rows = shape[0];
        let cols: usize = shape[1..].iter().product();
        let dense = matches!(m.graph.nodes[*i].op, Op::Dense { .. });
        // Runs of 4 along the input axis: down a column for Dense [in, out], along a row for Conv2d.
        let runs: Vec<Vec<usize>> = if dense {
            (0..cols).flat_map(|c| (0..rows).step_by(4).map(move |r| (r..r + 4).map(|r| r * cols + c).collect())).collect()
        } else {
            (0..rows).flat_map(|r| (0..cols).step_by(4).map(move |c| (c..(c + 4).min(cols)).map(|c| r * cols + c).collect())).collect()
        };
        for run in runs {
            let kept: Vec<usize> = run.iter().copied().filter(|&k| a[k] != 0.0).collect();
            assert_eq!(kept.len(), (run.len() * 2).div_ceil(4), "node {i}");
            let min_kept = kept.iter().map(|&k| b[k].abs()).fold(f32::INFINITY, f32::min);
            for &k in &run {
                if a[k] == 0.0 {
                    assert!(b[k].abs() <= min_kept, "node {i}: a larger weight was dropped");
                }
            }
        }
    }
    // n:m takes no target.
    let err = compute_masks(&m, Criterion::Sparsity(0.5), Structure::NOfM { n: 2, m: 4 }, Scope::Global).unwrap_err();
    assert!(err.message.contains("n:m"), "{err}");
}

#[test]
fn structures_parse_and_refuse_nonsense() {
    assert_eq!(Structure::parse("unstructured").unwrap(), Structure::Unstructured);
    assert_eq!(Structure::parse("block:4x1").unwrap(), Structure::Block { rows: 4, cols: 1 });
    assert_eq!(Structure::parse("2:4").unwrap(), Structure::NOfM { n: 2, m: 4 });
    for bad in ["", "block:0x4", "block:4", "4:2", "0:4", "2:2", "blocks:1x1", "a:b"] {
        let e = Structure::parse(bad).unwrap_err();
        assert!(e.message.contains("structure") || e.message.contains("n:m"), "{bad}: {e}");
    }
}

#[test]
fn polynomial_decay_matches_hand_computed_values() {
    // initial 0.2, final 0.9, steps 100..1100, power 3: s = 0.9 + (0.2 - 0.9)(1 - p)^3.
    let s = PolynomialDecay { frequency: 250, ..PolynomialDecay::new(0.2, 0.9, 100, 1100) };
    s.validate().unwrap();
    let close = |a: f32, b: f32| assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    close(s.sparsity_at(0), 0.2); // before begin: the initial sparsity
    close(s.sparsity_at(100), 0.2);
    close(s.sparsity_at(350), 0.9 - 0.7 * 0.421875); // p = 0.25: (0.75)^3 = 0.421875 -> 0.6046875
    close(s.sparsity_at(600), 0.9 - 0.7 * 0.125); // p = 0.5 -> 0.8125
    close(s.sparsity_at(850), 0.9 - 0.7 * 0.015625); // p = 0.75 -> 0.8890625
    close(s.sparsity_at(1100), 0.9);
    close(s.sparsity_at(5000), 0.9);
    let steps: Vec<u64> = (0..2000).filter(|&k| s.prunes_at(k)).collect();
    assert_eq!(steps, vec![100, 350, 600, 850, 1100]);
    // An end step off the frequency's grid is still a pruning step (the final target is met).
    let odd = PolynomialDecay { frequency: 300, ..s };
    let steps: Vec<u64> = (0..2000).filter(|&k| odd.prunes_at(k)).collect();
    assert_eq!(steps, vec![100, 400, 700, 1000, 1100]);
    for bad in [
        PolynomialDecay::new(0.5, 0.2, 0, 10),
        PolynomialDecay::new(0.0, 1.0, 0, 10),
        PolynomialDecay::new(0.0, 0.5, 10, 10),
        PolynomialDecay { frequency: 0, ..PolynomialDecay::new(0.0, 0.5, 0, 10) },
    ] {
        assert!(bad.validate().is_err(), "{bad:?}");
    }
}

/// Real fine-tuning steps on real digits: pruned weights stay exactly 0, the others move.
#[test]
fn masks_hold_during_fine_tuning() {
    let data = digits(512);
    let mut m = model(6);
    let masks = prune::prune(&mut m, Criterion::Sparsity(0.7), Structure::Unstructured, Scope::PerLayer).unwrap();
    let before = weights(&m);
    let mut t = Trainer::new(m, TrainConfig { epochs: 2, batch_size: 64, lr: 3e-3, ..TrainConfig::default() }).unwrap();
    t.add_hook(Box::new(MaskHook { masks }));
    t.fit(&data, &mut |_| {}).unwrap();
    let after = weights(t.model());
    for ((i, _, b), (_, _, a)) in before.iter().zip(&after) {
        let mut moved = 0;
        for (x, y) in b.iter().zip(a) {
            if *x == 0.0 {
                // The hook multiplies by 0, so a negative weight is held at -0.0: still zero.
                assert!(*y == 0.0, "node {i}: a pruned weight came back as {y}");
            } else if x != y {
                moved += 1;
            }
        }
        assert!(moved > 0, "node {i}: the kept weights did not train");
        assert_eq!(zeros(b), zeros(a), "node {i}");
    }
}

/// The schedule hook on real steps: masks recomputed at the scheduled steps only, sparsity
/// follows the schedule, pruned weights stay 0 between updates, the final target is met.
#[test]
fn gradual_pruning_follows_the_schedule() {
    let data = digits(640); // 10 steps of 64 per epoch
    let mut m = model(7);
    let sched = PolynomialDecay { frequency: 5, ..PolynomialDecay::new(0.3, 0.8, 0, 20) };
    let hook = PruneHook::new(&mut m, sched, Structure::Unstructured, Scope::PerLayer).unwrap();
    assert_eq!(hook.current_sparsity(), Some(0.3));
    for (i, _, w) in weights(&m) {
        assert_eq!(zeros(&w), (0.3 * w.len() as f64).round() as usize, "node {i} at step 0");
    }
    // Drive the trainer one epoch at a time and check the stored sparsity after each.
    let mut t = Trainer::new(m, TrainConfig { epochs: 3, batch_size: 64, lr: 2e-3, ..TrainConfig::default() }).unwrap();
    t.add_hook(Box::new(hook));
    let mut last_zeros: Vec<usize> = vec![0; 3];
    for epoch in 0..3u64 {
        t.train_epoch(&data, &mut |_| {}).unwrap();
        let step = (epoch + 1) * 10; // steps done
        // The masks in use are the ones of the last scheduled step <= `step`.
        let at = (0..=step).rev().find(|&k| sched.prunes_at(k)).unwrap();
        let s = sched.sparsity_at(at);
        for (k, (i, _, w)) in weights(t.model()).into_iter().enumerate() {
            let z = zeros(&w);
            assert_eq!(z, (s as f64 * w.len() as f64).round() as usize, "node {i} after {step} steps");
            assert!(z >= last_zeros[k]);
            last_zeros[k] = z;
        }
    }
}

#[test]
fn encoding_choice_is_the_smallest_the_reader_accepts() {
    // A 784x128 weight: dense f32 = 401,424 B, CSR = 3,188 + 8·nnz B, bitmask = 12,576 + 4·nnz B,
    // so dense wins below ~3 % sparsity, CSR above ~97.7 %, the bitmask in between.
    for (nnz, expected) in [(100_352, Encoding::Dense), (99_000, Encoding::Dense), (60_000, Encoding::Bitmask), (10_035, Encoding::Bitmask), (2_346, Encoding::Csr)] {
        let sizes = encoded_bytes(100_352, 784, nnz);
        let min = sizes.iter().min_by_key(|s| s.1).unwrap();
        assert_eq!(min.0, expected, "nnz {nnz}: {sizes:?}");
        assert_eq!(choose_encoding(100_352, 784, nnz), expected, "nnz {nnz}");
    }
    // An all-zero weight: CSR is smallest but breaks the format's expansion bound; bitmask it is.
    let sizes = encoded_bytes(100_352, 1, 0);
    assert_eq!(sizes.iter().min_by_key(|s| s.1).unwrap().0, Encoding::Csr);
    assert_eq!(choose_encoding(100_352, 1, 0), Encoding::Bitmask);
}

/// Pruned, stored sparse, written, read back: the same weights, the chosen encodings, a
/// smaller file, and the plan's outputs equal to the dense pruned model's.
#[test]
fn sparse_storage_round_trips_through_the_format_and_the_plan() {
    let mut m = model(8);
    prune::prune(&mut m, Criterion::Sparsity(0.9), Structure::Unstructured, Scope::PerLayer).unwrap();
    let dense = m.clone();
    let chosen = prune::store_sparse(&mut m).unwrap();
    for (i, enc) in &chosen {
        let w = &m.graph.nodes[*i].op.tensors()[0].clone();
        let stored = match &w.data {
            TensorData::F32(_) => Encoding::Dense,
            TensorData::SparseCsr { .. } => Encoding::Csr,
            TensorData::SparseBitmask { .. } => Encoding::Bitmask,
            d => panic!("{d:?}"),
        };
        assert_eq!(stored, *enc);
        assert_ne!(stored, Encoding::Dense, "node {i} at 90 % should be sparse");
    }
    let bytes = format::write(&m).unwrap();
    let dense_bytes = format::write(&dense).unwrap();
    assert!(bytes.len() * 3 < dense_bytes.len(), "{} vs {}", bytes.len(), dense_bytes.len());
    let back = format::read(&bytes).unwrap();
    assert_eq!(weights(&back).iter().map(|w| &w.2).collect::<Vec<_>>(), weights(&dense).iter().map(|w| &w.2).collect::<Vec<_>>());
    let report = prune::layer_sparsity(&back).unwrap();
    for (r, (i, enc)) in report.iter().zip(&chosen) {
        assert_eq!((r.node, r.encoding), (*i, enc.name()));
        assert_eq!(r.total - r.nonzeros, (0.9 * r.total as f64).round() as usize);
    }
    let x = mdeploy_testkit::mnist::interleaved_test_digits(3);
    let n = x.len() / 784;
    let (mut a, mut b) = (vec![0.0; n * 10], vec![0.0; n * 10]);
    Plan::new(&back, n).unwrap().run(&x, n, &mut a).unwrap();
    Plan::new(&dense, n).unwrap().run(&x, n, &mut b).unwrap();
    // Same weights; a sparse kernel may sum in another order, hence the tolerance.
    for (p, q) in a.iter().zip(&b) {
        assert!((p - q).abs() < 1e-5, "{p} vs {q}");
    }
}
