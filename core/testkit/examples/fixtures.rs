//! Writes the committed test fixtures (`models/test/`) from their generators in
//! `mdeploy_testkit::fixtures`:
//!
//! ```text
//! cargo run --release -p mdeploy-testkit --example fixtures            # rewrite them
//! cargo run --release -p mdeploy-testkit --example fixtures -- --check # exit 1 if one differs
//! ```
//!
//! `tests/fixtures.rs` runs the same comparison as `--check` in `cargo test`, so a change to a
//! generator (or to the builders and writer it uses) that alters a file fails until the file is
//! rewritten here and committed.

use mdeploy_testkit::{fixtures, mnist};

fn run() -> Result<(), String> {
    let check = match std::env::args().nth(1).as_deref() {
        None => false,
        Some("--check") => true,
        Some(other) => return Err(format!("unknown argument {other}; usage: fixtures [--check]")),
    };
    let path = mnist::model_path(fixtures::MOBILENET_BLOCK_FILE);
    let bytes = fixtures::mobilenet_block_bytes()?;
    if check {
        let old = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if old != bytes {
            return Err(format!("{} differs from its generator; rewrite it with this example (no --check)", path.display()));
        }
        eprintln!("fixtures: {} is up to date ({} bytes)", path.display(), bytes.len());
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(&path, &bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    eprintln!("fixtures: wrote {} ({} bytes)", path.display(), bytes.len());
    Ok(())
}

fn main() -> std::process::ExitCode {
    mdeploy_testkit::tool_main("fixtures", run)
}
