//! tract (8-16 MB of wasm) must never reach a wasm artifact: only the native CLI may depend on
//! this crate. Every other workspace manifest is read and must name neither mdeploy-onnx nor a
//! tract crate (a wasm crate can only reach tract through one of them).

use std::path::Path;

#[test]
fn only_the_cli_depends_on_the_onnx_bridge() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let workspace = std::fs::read_to_string(root.join("Cargo.toml")).expect("workspace Cargo.toml");
    let members_line = workspace.lines().find(|l| l.trim_start().starts_with("members")).expect("members line");
    let members: Vec<&str> = members_line.split('"').skip(1).step_by(2).collect();
    assert!(members.contains(&"core/onnx") && members.contains(&"wasm"), "{members:?}");
    for member in members {
        if member == "cli" || member == "core/onnx" {
            continue;
        }
        let manifest = root.join(member).join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest).unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
        for needle in ["mdeploy-onnx", "tract"] {
            assert!(
                !text.lines().any(|l| !l.trim_start().starts_with('#') && l.contains(needle)),
                "{} depends on {needle}: tract must stay out of wasm artifacts (only cli/ may use core/onnx)",
                manifest.display()
            );
        }
    }
}
