//! Where the trained CNN's batch-1 time goes, step by step: plans of every prefix of
//! `models/mnist-cnn.mdm`'s layer chain (conv 1, + pool, + conv 2, ...), each kernel set, raced
//! in one process, interleaved round by round, the MINIMUM thread CPU time per digit over the
//! rounds (a call = 256 consecutive test digits, one by one). A step's cost is its prefix's
//! time minus the previous prefix's; each prefix also copies its last value out, so a step
//! that shrinks the output (a pool) is credited with the smaller copy.
//!
//! `MDEPLOY_MNIST_DIR=... cargo run --release -p mdeploy-core --example cnn_steps [ROUNDS]`

use mdeploy_core::kernels::KernelSet;
use mdeploy_core::{Graph, Plan};
use mdeploy_testkit::{mnist, thread_time};

fn main() {
    let rounds: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(30);
    let (digits, _) = mnist::test_digits().unwrap_or_else(|e| panic!("{e}"));
    let model = mnist::trained_model("mnist-cnn.mdm").unwrap_or_else(|e| panic!("{e}"));
    let ops: Vec<_> = model.graph.as_sequential().expect("the CNN is a chain").into_iter().cloned().collect();
    let sets: Vec<KernelSet> = KernelSet::available().into_iter().filter(|k| k.name() != "generic").collect();
    const CALLS: usize = 256;
    let il = 784;
    for ks in sets {
        // Prefixes 1..=n; identity-at-inference ops (Flatten) fold into the next prefix.
        let mut names = Vec::new();
        let mut plans = Vec::new();
        for n in 1..=ops.len() {
            if n < ops.len() && ops[n - 1].is_identity_at_inference() {
                continue;
            }
            let g = Graph::sequential(ops[..n].iter().cloned());
            match Plan::from_graph(&g, &model.meta.input_shape, 1, ks) {
                Ok(p) => {
                    names.push(ops[n - 1].name().to_string());
                    plans.push(p);
                }
                Err(e) => eprintln!("prefix {n} ({}): {e}", ops[n - 1].name()),
            }
        }
        let mut outs: Vec<Vec<f32>> = plans.iter().map(|p| vec![0.0; p.output_len()]).collect();
        let mut best = vec![f64::INFINITY; plans.len()];
        for _ in 0..rounds {
            for (i, plan) in plans.iter_mut().enumerate() {
                let t = thread_time();
                for c in 0..CALLS {
                    let x = &digits[(c * il) % (digits.len() - il + 1)..][..il];
                    plan.run(x, 1, &mut outs[i]).expect("run");
                }
                best[i] = best[i].min((thread_time() - t) / CALLS as f64);
            }
        }
        println!("{} (min of {rounds} rounds, µs per digit, thread CPU time)", ks.name());
        let mut prev = 0.0;
        for (name, t) in names.iter().zip(&best) {
            println!("  + {name:<12} prefix {:>7.2}  step {:>7.2}", t * 1e6, (t - prev) * 1e6);
            prev = *t;
        }
    }
}
