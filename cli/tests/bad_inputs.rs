//! The bad-input table (tests/bad-inputs/table.json) through the `mdeploy` binary: every bad
//! model file through `mdeploy info`, `mdeploy predict` and `mdeploy verify`, and every key row
//! through the command that takes its keys (`verify --pub`, `decrypt --key`, `serve --trust-dir`
//! / `--decryption-key` for damaged key files, `predict` for an encrypted model given no key).
//! Each is refused with exit status 1, no panic, and an `error:` line with the row's code (the
//! key-file rows print the file and the problem, no code) and `says`; the same command on the
//! good file right after succeeds.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;
use support::{root, run_cli, s as p, tmp_dir};

#[path = "../../tests/bad-inputs/table.rs"]
mod table;
use table::{key_case, model_bytes, s, table};

const LIMIT: Duration = Duration::from_secs(120);
const DIGIT: &str = "samples/digit-7.png";

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let f = dir.join(name);
    std::fs::write(&f, bytes).expect("fixture");
    f
}

/// The publisher's `.pub` in a folder of its own (what `--pub` and `--trust-dir` take).
fn publisher_pub(dir: &Path) -> PathBuf {
    let keys = dir.join("trusted");
    std::fs::create_dir_all(&keys).expect("key dir");
    write(&keys, "publisher.pub", table::signer("publisher").public_key().to_text().as_bytes());
    keys
}

#[test]
fn every_bad_model_file_is_refused_by_info_predict_and_verify_and_the_good_model_works_after() {
    let dir = tmp_dir("bad-models");
    let keys = publisher_pub(&dir);
    let good = root().join("models/mnist-mlp.mdm");
    let signed = write(&dir, "signed.mdm", &mdeploy_core::format::sign(&std::fs::read(&good).expect("model"), &table::signer("publisher")).expect("signs"));
    let t = table();
    let rows = t["models"].as_array().expect("models");
    assert!(rows.len() >= 10);
    for (i, row) in rows.iter().enumerate() {
        let name = s(row, "name");
        let f = write(&dir, &format!("bad-{i}.mdm"), &model_bytes(row, &root().join("models")));
        let needles = [s(row, "code"), s(row, "says")];
        run_cli(&["info", p(&f)], LIMIT).refused(&format!("info: {name}"), &needles);
        run_cli(&["info", p(&good)], LIMIT).succeeded(&format!("info of the good model after {name}"));
        run_cli(&["predict", p(&f), DIGIT], LIMIT).refused(&format!("predict: {name}"), &needles);
        let ok = run_cli(&["predict", p(&good), DIGIT, "--json"], LIMIT);
        ok.succeeded(&format!("predict with the good model after {name}"));
        let v: serde_json::Value = serde_json::from_str(&ok.stdout).expect("predict --json prints JSON");
        assert_eq!(v["class"], 7, "the good model after {name}: {v}");
        // `verify` checks the header and digest, then the policy, before any section is parsed
        // (core/model/src/format/trust.rs): a file whose header is intact is "not signed"
        // first. `signed_message` runs exactly those header checks.
        let bytes = std::fs::read(&f).expect("fixture");
        let verify_says = match mdeploy_core::format::signed_message(&bytes) {
            Ok(_) => ["UNTRUSTED", "not signed"],
            Err(_) => needles,
        };
        run_cli(&["verify", p(&f), "--pub", p(&keys)], LIMIT).refused(&format!("verify: {name}"), &verify_says);
        run_cli(&["verify", p(&signed), "--pub", p(&keys)], LIMIT).succeeded(&format!("verify of a signed model after {name}"));
    }
}

/// The command a key row goes through, on `file`, with its keys written under `dir`.
fn key_command(case: &table::KeyCase, file: &Path, dir: &Path) -> Vec<String> {
    let out = dir.join("out.mdm");
    let trusted = |texts: &[String]| {
        let keys = dir.join("trusted");
        let _ = std::fs::remove_dir_all(&keys);
        std::fs::create_dir_all(&keys).expect("key dir");
        for (i, t) in texts.iter().enumerate() {
            write(&keys, &format!("key-{i}.pub"), t.as_bytes());
        }
        keys
    };
    let strs = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    match (&case.key_file, &case.trusted, &case.decryption_key) {
        (Some((what, text)), _, _) if what == "trust" => {
            let keys = trusted(std::slice::from_ref(text));
            strs(&["verify", p(file), "--pub", p(&keys)])
        }
        (Some((_, text)), _, _) => {
            let key = write(dir, "given.enckey", text.as_bytes());
            strs(&["decrypt", p(file), "--key", p(&key), "--out", p(&out)])
        }
        (None, Some(t), _) => {
            let keys = trusted(t);
            strs(&["verify", p(file), "--pub", p(&keys)])
        }
        (None, None, Some(k)) => {
            let key = write(dir, "given.enckey", k.as_bytes());
            strs(&["decrypt", p(file), "--key", p(&key), "--out", p(&out)])
        }
        (None, None, None) => strs(&["predict", p(file), DIGIT]),
    }
}

#[test]
fn every_key_row_is_refused_by_the_command_that_takes_its_keys_and_the_good_file_works_after() {
    let t = table();
    let rows = t["keys"].as_array().expect("keys");
    assert!(rows.len() >= 10);
    for (i, row) in rows.iter().enumerate() {
        let name = s(row, "name");
        let dir = tmp_dir(&format!("bad-keys-{i}"));
        let case = key_case(row, &root().join("models"));
        let bad = write(&dir, "bad.mdm", &case.bytes);
        let good = write(&dir, "good.mdm", &case.good);
        let mut needles = vec![s(row, "says")];
        if case.key_file.is_none() {
            needles.push(s(row, "code"));
        }
        let args = key_command(&case, &bad, &dir);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_cli(&args, LIMIT).refused(name, &needles);
        // The same command on the good file, with good keys.
        let fixed = table::KeyCase { key_file: None, bytes: case.good.clone(), ..case };
        let args = key_command(&fixed, &good, &dir);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_cli(&args, LIMIT).succeeded(&format!("the good file after {name}"));

        // A damaged key file also stops `mdeploy serve` before it listens, naming the file.
        if let Some((what, text)) = &case.key_file {
            let repo = dir.join("repo");
            std::fs::create_dir_all(repo.join("mlp/1")).expect("repo");
            std::fs::copy(&good, repo.join("mlp/1/model.mdm")).expect("model");
            let (flag, path, file) = if what == "trust" {
                let keys = dir.join("serve-keys");
                std::fs::create_dir_all(&keys).expect("key dir");
                write(&keys, "damaged.pub", text.as_bytes());
                ("--trust-dir", keys, "damaged.pub")
            } else {
                ("--decryption-key", write(&dir, "damaged.enckey", text.as_bytes()), "damaged.enckey")
            };
            let r = run_cli(&["serve", "--repository", p(&repo), "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0", flag, p(&path)], Duration::from_secs(60));
            r.refused(&format!("serve {flag}: {name}"), &[s(row, "says"), file]);
        }
    }
}
