//! Writes the `keys` rows of the bad-input table (tests/bad-inputs/table.json) as files, for the
//! Node suites (the npm package in Node and Chromium): each row's model file and the good file
//! after it, made with the library calls `mdeploy sign` / `mdeploy encrypt` run
//! (tests/bad-inputs/table.rs, which the Rust suites call directly), and a manifest.
//!
//! ```text
//! cargo run --release -p mdeploy-core --example bad_key_fixtures -- <out-dir>
//! ```
//! `<out-dir>/keys.json`: `{ rows: { <row name>: { file, good, trusted, decryptionKey,
//! keyFile } } }`, `file`/`good` relative to `<out-dir>`, `trusted` the `.pub` texts of the
//! trusted keys (or null), `decryptionKey` the `.enckey` text (or null), `keyFile`
//! `{ for, text }` for a damaged-key-file row. tests/bad-inputs/table.mjs reads it.

#[path = "../../tests/bad-inputs/table.rs"]
mod table;

use serde_json::json;
use std::path::Path;
use std::process::ExitCode;

fn run(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models");
    let t = table::table();
    let mut rows = serde_json::Map::new();
    for (i, row) in t["keys"].as_array().ok_or("table.json has no keys section")?.iter().enumerate() {
        let case = table::key_case(row, &models);
        let (file, good) = (format!("key-{i}.mdm"), format!("key-{i}.good.mdm"));
        std::fs::write(dir.join(&file), &case.bytes).map_err(|e| format!("{file}: {e}"))?;
        std::fs::write(dir.join(&good), &case.good).map_err(|e| format!("{good}: {e}"))?;
        rows.insert(
            table::s(row, "name").to_string(),
            json!({
                "file": file, "good": good, "trusted": case.trusted, "decryptionKey": case.decryption_key,
                "keyFile": case.key_file.map(|(f, text)| json!({ "for": f, "text": text })),
            }),
        );
    }
    let manifest = serde_json::to_string_pretty(&json!({ "rows": rows })).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("keys.json"), manifest).map_err(|e| format!("keys.json: {e}"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir] = args.as_slice() else {
        eprintln!("usage: bad_key_fixtures <out-dir>");
        return ExitCode::from(2);
    };
    match run(Path::new(dir)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bad_key_fixtures: {e}");
            ExitCode::FAILURE
        }
    }
}
