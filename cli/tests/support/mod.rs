//! Helpers shared by the CLI test files: run the real `mdeploy` binary from the repository
//! root, read its JSON, expect failures that say what to do, and per-process temp folders.

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

/// A file `name` in this process's folder for `tag` (created if missing, never emptied: the
/// files of one test file live side by side).
pub fn tmp_file(tag: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mdeploy-cli-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// A running `mdeploy serve` (started from the repository root) and the addresses its banner
/// printed. Killed when dropped, so a failing assertion does not leave a server behind.
pub struct Served {
    pub child: std::process::Child,
    /// The banner's first `lines` lines, joined.
    pub banner: String,
    /// REST `host:port` (after `http://` or `https://`).
    pub http: String,
    /// gRPC `host:port`, when the banner has a gRPC line.
    pub grpc: Option<String>,
    /// Where its stderr goes (a file, so a chatty server never blocks on a full pipe).
    pub log: PathBuf,
}

/// Starts `mdeploy serve ARGS` and reads the first `lines` lines it prints (the REST line, the
/// gRPC line unless `--no-grpc`, then one per model or policy).
pub fn spawn_serve(args: &[&str], lines: usize) -> Served {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let log = std::env::temp_dir().join(format!("mdeploy-cli-serve-{}-{}.log", std::process::id(), N.fetch_add(1, Ordering::SeqCst)));
    let err = std::fs::File::create(&log).expect("log file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mdeploy"))
        .arg("serve")
        .args(args)
        .current_dir(root())
        .stdout(Stdio::piped())
        .stderr(err)
        .spawn()
        .expect("mdeploy serve starts");
    // Read on a thread to the end, so the server never writes into a pipe nobody reads.
    let (tx, rx) = std::sync::mpsc::channel();
    let out = BufReader::new(child.stdout.take().expect("stdout"));
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                // Nobody waits for more banner lines: keep draining.
            }
        }
    });
    let printed: Vec<String> =
        (0..lines).map_while(|_| rx.recv_timeout(std::time::Duration::from_secs(300)).ok()).collect();
    let banner = printed.join("\n");
    let after = |marker: &str| {
        printed.iter().find_map(|l| l.split(marker).nth(1).and_then(|r| r.split_whitespace().next()).map(str::to_string))
    };
    let http = after("http://").or_else(|| after("https://"));
    let grpc = after("gRPC (KServe v2) on ");
    let http = match http {
        Some(a) => a,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            let err = std::fs::read_to_string(&log).unwrap_or_default();
            panic!("no REST address in mdeploy serve's banner:\n{banner}\nstderr:\n{err}")
        }
    };
    Served { child, banner, http, grpc, log }
}

impl Served {
    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// One HTTP/1.1 request on a new connection (`connection: close`); the whole answer.
    pub fn request(&self, method: &str, path: &str, body: &str) -> String {
        use std::io::{Read, Write};
        let mut st = std::net::TcpStream::connect(&self.http).expect("connect");
        write!(
            st,
            "{method} {path} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            self.http,
            body.len()
        )
        .expect("write");
        let mut out = String::new();
        st.read_to_string(&mut out).expect("read");
        out
    }

    /// Sends SIGTERM (unix).
    #[cfg(unix)]
    pub fn sigterm(&self) {
        // SAFETY: a signal to our own child process.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
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
