//! Replays every saved input of every fuzz target (`corpus/<target>/`: seeds and what fuzzing
//! kept; `regressions/<target>/`: every crash ever found, kept after its fix) through the same
//! function the fuzzer calls. CI replays, it does not fuzz (`FUZZING.md`).

use std::path::Path;

#[test]
fn every_corpus_and_regression_input_is_handled() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for &(name, target) in mdeploy_fuzz::TARGETS {
        let mut count = 0;
        for kind in ["corpus", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(kind).join(name)) else { continue };
            let mut files: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect();
            files.sort();
            for path in files {
                let bytes = std::fs::read(&path).expect("read a saved input");
                // A panic here fails the test and names the file.
                eprintln!("replay {}", path.display());
                target(&bytes);
                count += 1;
            }
        }
        assert!(count > 0, "{name}: no saved inputs; run `cargo run --release -p mdeploy-fuzz --example seeds`");
        eprintln!("{name}: {count} inputs replayed");
    }
}

/// The seeds are good requests (status 200), so fuzzing starts from inputs that reach the model,
/// and a seed-loaded model plans: a seed that is itself refused would waste the fuzzer's time.
#[test]
fn the_seeds_are_accepted() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let status: &[(&str, fn(&[u8]) -> u16)] = &[
        ("kserve_json", mdeploy_fuzz::kserve_json_status),
        ("kserve_binary", mdeploy_fuzz::kserve_binary_status),
        ("tfserving", mdeploy_fuzz::tfserving_status),
        ("image", mdeploy_fuzz::image_status),
    ];
    // `/predict` takes PNG or 784 raw bytes; PGM is for the decoder (the CLI), so a PGM seed
    // must decode, and the route answers it 415.
    let image_ok = |bytes: &[u8]| mdeploy_core::image::decode_digit(bytes, 1 << 20).is_ok();
    for (name, f) in status {
        for e in std::fs::read_dir(root.join(name)).expect("a corpus folder").flatten() {
            if e.file_name().to_string_lossy().starts_with("seed-") {
                let bytes = std::fs::read(e.path()).expect("read");
                let want = if *name == "image" && bytes.starts_with(b"P") {
                    assert!(image_ok(&bytes), "{}: the decoder refuses it", e.path().display());
                    415
                } else {
                    200
                };
                assert_eq!(f(&bytes), want, "{}", e.path().display());
            }
        }
    }
    for e in std::fs::read_dir(root.join("mdm_load")).expect("a corpus folder").flatten() {
        if e.file_name().to_string_lossy().starts_with("seed-") {
            let bytes = std::fs::read(e.path()).expect("read");
            let name = e.file_name().to_string_lossy().into_owned();
            // Signed seeds must pass mdm_load's policy, encrypted ones decrypt with its key (so
            // the fuzzer starts inside those paths); the others load as they are.
            let opts = if name.contains("signed") { mdeploy_fuzz::trust_options() } else { mdeploy_fuzz::decrypt_options() };
            let model = if name.contains("signed") || name.contains("encrypted") {
                mdeploy_core::format::read_with_options(&bytes, &opts)
                    .unwrap_or_else(|err| panic!("{}: {err}", e.path().display()))
                    .0
            } else {
                mdeploy_core::LoadedModel::read(&bytes, mdeploy_core::Trust::Verify).unwrap_or_else(|err| panic!("{}: {err}", e.path().display())).model
            };
            mdeploy_core::Plan::new(&model, 1).unwrap_or_else(|err| panic!("{}: {err}", e.path().display()));
        }
    }
}
