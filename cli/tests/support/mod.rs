//! Helpers shared by the CLI test files: run the real `mdeploy` binary from the repository
//! root, read its JSON, expect failures that say what to do, and per-process temp folders.
//! (cli.rs, convert.rs, export.rs and prune.rs still keep their own copies: moving them here
//! is welcome.)

#![allow(dead_code)] // each test file uses a different subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn mdeploy(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mdeploy"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("the mdeploy binary runs")
}

pub fn ok(args: &[&str]) -> String {
    let out = mdeploy(args);
    assert!(
        out.status.success(),
        "mdeploy {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn ok_json(args: &[&str]) -> serde_json::Value {
    let stdout = ok(args);
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("mdeploy {args:?} printed no JSON ({e}): {stdout}"))
}

/// Runs a command that must fail (exit status not 0) with an error naming every needle.
pub fn fails_with(args: &[&str], needles: &[&str]) -> String {
    let out = mdeploy(args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "mdeploy {args:?} should fail, printed {}",
        String::from_utf8_lossy(&out.stdout)
    );
    for n in needles {
        assert!(err.contains(n), "mdeploy {args:?}: error {err:?} should mention {n:?}");
    }
    err
}

/// A fresh folder for one test (`tag`) of this process.
pub fn tmp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mdeploy-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// What one run of the `mdeploy` binary did.
pub struct Run {
    pub args: Vec<String>,
    /// The exit code (`None`: killed by a signal, or by [`run_cli`]'s time limit).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `mdeploy ARGS` from the repository root with no stdin, killing it after `limit` (a
/// command that should fail at once must not hang a suite: a server that starts anyway, say).
pub fn run_cli(args: &[&str], limit: std::time::Duration) -> Run {
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_mdeploy"))
        .args(args)
        .current_dir(root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the mdeploy binary runs");
    let start = std::time::Instant::now();
    while child.try_wait().expect("waits for mdeploy").is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("mdeploy's output");
    Run {
        args: args.iter().map(|a| a.to_string()).collect(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl Run {
    /// A refusal as every command gives one: exit status 1 (not 0, not a panic's 101, not killed),
    /// no "panicked" on stderr, and an `error: ...` line naming each needle (case-insensitive).
    pub fn refused(&self, what: &str, needles: &[&str]) {
        let ctx = format!("{what}: mdeploy {:?} (exit {:?})\nstderr: {}\nstdout: {}", self.args, self.code, self.stderr, self.stdout);
        assert_eq!(self.code, Some(1), "{ctx}");
        assert!(!self.stderr.contains("panicked"), "{ctx}");
        assert!(self.stderr.starts_with("error: "), "{ctx}");
        let err = self.stderr.to_lowercase();
        for n in needles {
            assert!(err.contains(&n.to_lowercase()), "{ctx}\nshould mention {n:?}");
        }
    }

    pub fn succeeded(&self, what: &str) {
        assert_eq!(self.code, Some(0), "{what}: mdeploy {:?}\nstderr: {}", self.args, self.stderr);
    }
}
