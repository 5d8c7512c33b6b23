//! Chooses distillation settings without looking at the test split (issue 11): every 8th
//! training digit (1,000 of the 8,000) is held out, the student trains on the other 7,000
//! exactly as `mdeploy distill` trains (Adam, one epoch of warm-up, cosine decay to 1 %,
//! batch 64, seed), and the held-out accuracy is printed. `--alpha 1` is the student trained
//! alone. Several teachers are averaged (an ensemble: the mean of their probabilities).
//!
//! ```sh
//! MDEPLOY_MNIST_DIR=... cargo run --release -p mdeploy-core --example distill_holdout -- \
//!     ARCH EPOCHS LR AUGMENT(0|1) T ALPHA TEACHER.mdm[,TEACHER.mdm...]
//! ```
//!
//! One line out: `holdout ARCH epochs=.. lr=.. aug=.. T=.. alpha=.. teachers=..: ACC % (n/1000) in S s`.

use std::time::Instant;

use mdeploy_core::data::Dataset;
use mdeploy_core::train::{Augment, Distillation, OptimizerKind, Schedule, TrainConfig, Trainer};
use mdeploy_core::{arch, Plan};
use mdeploy_testkit::mnist;

fn subset(d: &Dataset, keep: impl Fn(usize) -> bool) -> Dataset {
    let il = d.sample_len();
    let (mut img, mut lab) = (Vec::new(), Vec::new());
    for i in (0..d.n).filter(|&i| keep(i)) {
        img.extend_from_slice(&d.images[i * il..(i + 1) * il]);
        lab.push(d.labels[i]);
    }
    Dataset::new(img, lab, d.sample_shape).expect("subset")
}

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    assert!(a.len() == 7, "usage: ARCH EPOCHS LR AUGMENT(0|1) T ALPHA TEACHER[,TEACHER...]");
    let (spec, epochs, lr) = (&a[0], a[1].parse::<u32>().expect("EPOCHS"), a[2].parse::<f32>().expect("LR"));
    let augment = a[3] == "1";
    let (t, alpha) = (a[4].parse::<f32>().expect("T"), a[5].parse::<f32>().expect("ALPHA"));
    let split = mnist::split();
    // Every 8th digit of each class's training run: the split is ordered by class, so this
    // holds out 1/8 of every class.
    let train = subset(&split.train, |i| i % 8 != 7);
    let hold = subset(&split.train, |i| i % 8 == 7);
    let mut teachers: Vec<Plan> = a[6]
        .split(',')
        .map(|f| Plan::new(&mnist::read_model(std::path::Path::new(f)).unwrap_or_else(|e| panic!("{e}")), 64).expect("teacher plan"))
        .collect();
    let k = teachers.len() as f32;
    let mut tmp = Vec::new();
    let teacher = Box::new(move |x: &[f32], n: usize, out: &mut [f32]| {
        out.iter_mut().for_each(|v| *v = 0.0);
        tmp.resize(out.len(), 0.0);
        for p in teachers.iter_mut() {
            p.run(x, n, &mut tmp).map_err(|e| mdeploy_core::Error::bad_input(e.to_string()))?;
            out.iter_mut().zip(&tmp).for_each(|(o, v)| *o += v / k);
        }
        Ok(())
    });
    let config = TrainConfig {
        epochs,
        batch_size: 64,
        optimizer: OptimizerKind::Adam,
        lr,
        schedule: Schedule::Cosine { warmup_epochs: 1.0_f32.min(epochs as f32 / 2.0), min_factor: 0.01 },
        augment: augment.then(Augment::default),
        seed: 1,
        ..TrainConfig::default()
    };
    let started = Instant::now();
    let mut trainer = Trainer::new(arch::from_spec(spec, 1).expect("arch"), config).expect("trainer");
    trainer.set_loss(Box::new(Distillation::new(teacher, t, alpha).expect("loss")));
    for _ in 0..epochs {
        trainer.train_epoch(&train, &mut |_| {}).expect("epoch");
    }
    let mut plan = Plan::new(trainer.model(), 256).expect("student plan");
    let mut out = vec![0.0f32; hold.n * 10];
    for c in (0..hold.n).step_by(256) {
        let n = 256.min(hold.n - c);
        plan.run(&hold.images[c * 784..(c + n) * 784], n, &mut out[c * 10..(c + n) * 10]).expect("run");
    }
    let correct = out.chunks(10).zip(&hold.labels).filter(|(o, &l)| mdeploy_core::train::argmax(o) == l as usize).count();
    println!(
        "holdout {spec} epochs={epochs} lr={lr} aug={} T={t} alpha={alpha} teachers={}: {:.2} % ({correct}/{}) in {:.0} s",
        augment as u8,
        a[6],
        correct as f64 * 100.0 / hold.n as f64,
        hold.n,
        started.elapsed().as_secs_f64()
    );
}
