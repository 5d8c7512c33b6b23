//! Distillation (`mdeploy_train::Distillation`): Hinton's loss and its gradient against a case
//! computed by hand and against finite differences, alpha = 1 being plain training bit for
//! bit, and a real teacher (the inference plan of the shipped MLP) driving a student.

use mdeploy_core::data::Dataset;
use mdeploy_core::train::{Batch, CrossEntropy, Distillation, Loss, TrainConfig, Trainer};
use mdeploy_core::{arch, format, Plan};
use mdeploy_testkit::mnist::spread_subset as subset;

fn run(loss: &mut dyn Loss, z: &[f32], labels: &[u8], k: usize) -> (f32, Vec<f32>) {
    let n = labels.len();
    let inputs = vec![0.0; n];
    let mut g = vec![0.0; z.len()];
    let l = loss.loss_and_grad(z, k, &Batch { inputs: &inputs, labels, n }, &mut g).unwrap();
    (l, g)
}

/// By hand: teacher p = (0.64, 0.16, 0.16, 0.04), T = 2 → p^(1/2) = (0.8, 0.4, 0.4, 0.2) / 1.8
/// = q = (4/9, 2/9, 2/9, 1/9). Student logits 0 → softmax(z) = softmax(z/T) = 1/4 each.
/// Label 0, alpha 0.5:
///   hard = −ln(1/4) = ln 4;  soft = −Σ q ln(1/4) = ln 4;  loss = 0.5·ln 4 + 0.5·4·ln 4 = 2.5·ln 4
///   ∂hard = (1/4 − 1, 1/4, 1/4, 1/4);  ∂soft·T² = T·(1/4 − q) = 2·(−7/36, 1/36, 1/36, 5/36)
///   grad = 0.5·∂hard + 0.5·T²∂soft = (−0.375 − 7/36, 0.125 + 1/36, 0.125 + 1/36, 0.125 + 5/36)
#[test]
fn loss_and_gradient_match_a_hand_computed_case() {
    let teacher = Box::new(|_: &[f32], n: usize, out: &mut [f32]| {
        assert_eq!(n, 1);
        out.copy_from_slice(&[0.64, 0.16, 0.16, 0.04]);
        Ok(())
    });
    let mut d = Distillation::new(teacher, 2.0, 0.5).unwrap();
    let (l, g) = run(&mut d, &[0.0; 4], &[0], 4);
    let ln4 = 4f32.ln();
    assert!((l - 2.5 * ln4).abs() < 1e-5, "loss {l} vs {}", 2.5 * ln4);
    let want = [-0.375 - 7.0 / 36.0, 0.125 + 1.0 / 36.0, 0.125 + 1.0 / 36.0, 0.125 + 5.0 / 36.0];
    for (a, b) in g.iter().zip(want) {
        assert!((a - b).abs() < 1e-6, "{g:?} vs {want:?}");
    }
    // The soft targets themselves.
    let mut p = [0.64, 0.16, 0.16, 0.04];
    Distillation::soften(&mut p, 2.0);
    for (a, b) in p.iter().zip([4.0 / 9.0, 2.0 / 9.0, 2.0 / 9.0, 1.0 / 9.0]) {
        assert!((a - b).abs() < 1e-6, "{p:?}");
    }
}

/// The gradient is the derivative of the loss (central differences, f64 reference of the
/// formula written out independently), on random logits, several rows, T = 3, alpha = 0.3.
#[test]
fn gradient_matches_finite_differences() {
    let (n, k, t, alpha) = (3usize, 5usize, 3.0f64, 0.3f64);
    let mut rng = mdeploy_core::rng::Rng::new(11);
    let z: Vec<f32> = (0..n * k).map(|_| rng.normal() * 2.0).collect();
    let tp: Vec<f32> = {
        let raw: Vec<f32> = (0..n * k).map(|_| rng.uniform(0.01, 1.0)).collect();
        raw.chunks(k).flat_map(|r| { let s: f32 = r.iter().sum(); r.iter().map(move |v| v / s).collect::<Vec<_>>() }).collect()
    };
    let labels = [1u8, 4, 0];
    // Independent f64 loss: mean over rows of alpha·CE(z, label) + (1 − alpha)·T²·CE(z/T, q).
    let loss64 = |z: &[f64]| -> f64 {
        let lsm = |v: Vec<f64>| { let m = v.iter().cloned().fold(f64::MIN, f64::max); let s: f64 = v.iter().map(|x| (x - m).exp()).sum(); v.iter().map(|x| x - m - s.ln()).collect::<Vec<_>>() };
        let mut total = 0.0;
        for r in 0..n {
            let row = &z[r * k..(r + 1) * k];
            let p = &tp[r * k..(r + 1) * k];
            let q: Vec<f64> = { let w: Vec<f64> = p.iter().map(|&v| (v as f64).powf(1.0 / t)).collect(); let s: f64 = w.iter().sum(); w.iter().map(|v| v / s).collect() };
            let hard = -lsm(row.to_vec())[labels[r] as usize];
            let soft: f64 = -q.iter().zip(lsm(row.iter().map(|v| v / t).collect())).map(|(q, l)| q * l).sum::<f64>();
            total += alpha * hard + (1.0 - alpha) * t * t * soft;
        }
        total / n as f64
    };
    let tp2 = tp.clone();
    let teacher = Box::new(move |_: &[f32], _: usize, out: &mut [f32]| { out.copy_from_slice(&tp2); Ok(()) });
    let mut d = Distillation::new(teacher, t as f32, alpha as f32).unwrap();
    let (l, g) = run(&mut d, &z, &labels, k);
    let z64: Vec<f64> = z.iter().map(|&v| v as f64).collect();
    // The loss value may differ from the f64 one by rounding only.
    assert!((l as f64 - loss64(&z64)).abs() < 1e-4, "{l} vs {}", loss64(&z64));
    for i in 0..z.len() {
        let h = 1e-4;
        let (mut a, mut b) = (z64.clone(), z64.clone());
        a[i] += h;
        b[i] -= h;
        let fd = (loss64(&a) - loss64(&b)) / (2.0 * h);
        assert!((g[i] as f64 - fd).abs() < 1e-5, "logit {i}: {} vs {fd}", g[i]);
    }
}

#[test]
fn bad_settings_and_bad_teachers_are_refused() {
    let ok = || Box::new(|_: &[f32], _: usize, _: &mut [f32]| Ok(())) as mdeploy_core::train::Teacher<'static>;
    assert!(Distillation::new(ok(), 0.0, 0.5).is_err());
    assert!(Distillation::new(ok(), f32::NAN, 0.5).is_err());
    assert!(Distillation::new(ok(), 2.0, 1.5).is_err());
    // A teacher whose outputs are not probabilities (here: all zero, as an untouched buffer).
    let mut d = Distillation::new(Box::new(|_: &[f32], _: usize, out: &mut [f32]| { out.fill(0.0); Ok(()) }), 2.0, 0.5).unwrap();
    let inputs = [0.0];
    let mut g = [0.0; 3];
    let e = d.loss_and_grad(&[1.0, 2.0, 3.0], 3, &Batch { inputs: &inputs, labels: &[0], n: 1 }, &mut g).unwrap_err();
    assert!(e.message.contains("teacher"), "{e}");
}

fn digits(n: usize) -> Dataset {
    subset(&mdeploy_testkit::mnist::split().train, n)
}

/// alpha = 1 is plain training: the same model bit for bit as the default cross-entropy.
#[test]
fn alpha_one_is_training_alone() {
    let data = digits(256);
    let cfg = TrainConfig { epochs: 1, batch_size: 32, ..TrainConfig::default() };
    let mut alone = Trainer::new(arch::mlp_hidden(3, &[16]), cfg.clone()).unwrap();
    alone.set_loss(Box::new(CrossEntropy::new(0.0)));
    alone.fit(&data, &mut |_| {}).unwrap();
    let mut d = Trainer::new(arch::mlp_hidden(3, &[16]), cfg).unwrap();
    d.set_loss(Box::new(Distillation::new(Box::new(|_: &[f32], _: usize, _: &mut [f32]| panic!("not consulted")), 4.0, 1.0).unwrap()));
    d.fit(&data, &mut |_| {}).unwrap();
    assert_eq!(format::write(alone.model()).unwrap(), format::write(d.model()).unwrap());
}

/// A real teacher: the shipped MLP through the inference plan, on the batches the student
/// sees. With alpha = 0 the student never sees a label, so whatever it gets right it learnt
/// from the teacher: after 2 short epochs it agrees with the teacher on over half of 400 test
/// digits (chance: about 10 %; a teacher path that fed noise would stay near it).
#[test]
fn a_real_teacher_teaches() {
    let ws = mdeploy_testkit::mnist::workspace();
    let teacher_model = format::read(&std::fs::read(ws.join("models/mnist-mlp.mdm")).unwrap()).unwrap();
    let mut plan = Plan::new(&teacher_model, 64).unwrap();
    let teacher = Box::new(move |x: &[f32], n: usize, out: &mut [f32]| plan.run(x, n, out));
    let mut t = Trainer::new(arch::mlp_hidden(5, &[32]), TrainConfig { epochs: 2, batch_size: 64, ..TrainConfig::default() }).unwrap();
    t.set_loss(Box::new(Distillation::new(teacher, 4.0, 0.0).unwrap()));
    t.fit(&digits(2000), &mut |_| {}).unwrap();
    let x = &mdeploy_testkit::mnist::interleaved_test_digits(40);
    let n = x.len() / 784;
    let (mut a, mut b) = (vec![0.0; n * 10], vec![0.0; n * 10]);
    Plan::new(&teacher_model, n).unwrap().run(x, n, &mut a).unwrap();
    Plan::new(t.model(), n).unwrap().run(x, n, &mut b).unwrap();
    let am = |v: &[f32]| mdeploy_core::train::argmax(v);
    let agree = a.chunks(10).zip(b.chunks(10)).filter(|(p, q)| am(p) == am(q)).count();
    // Without labels the student can only have learnt the teacher's answers.
    assert!(agree * 2 > n, "student agrees with the teacher on {agree} / {n}");
}
