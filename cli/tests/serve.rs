//! `mdeploy serve` end to end: the binary on a real repository, a real HTTP request, SIGTERM.
//! (The server itself is tested in serve/server/tests/.)

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

fn get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    write!(s, "GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n").expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

#[test]
fn serve_answers_on_the_address_it_prints_and_stops_on_sigterm() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let repo = std::env::temp_dir().join(format!("mdeploy-cli-serve-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&repo);
    std::fs::create_dir_all(repo.join("mnist-cnn/1")).expect("repo");
    std::fs::copy(root.join("models/mnist-cnn.mdm"), repo.join("mnist-cnn/1/model.mdm")).expect("model");

    let mut child = Command::new(env!("CARGO_BIN_EXE_mdeploy"))
        .args(["serve", "--repository"])
        .arg(&repo)
        .args(["--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mdeploy serve starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut printed = Vec::new();
    for _ in 0..3 {
        printed.push(lines.next().expect("a line").expect("utf-8"));
    }
    let text = printed.join("\n");
    assert!(text.contains("gRPC (KServe v2) on 127.0.0.1:"), "{text}");
    assert!(text.contains("mnist-cnn v1"), "{text}");
    let addr = printed[0]
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {text}"))
        .to_string();
    let ready = get(&addr, "/v2/models/mnist-cnn/ready");
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    assert!(ready.contains(r#"{"name":"mnist-cnn","ready":true}"#), "{ready}");

    // SIGTERM: a clean stop, exit status 0.
    #[cfg(unix)]
    {
        // SAFETY: sending a signal to our own child process.
        unsafe {
            libc::kill(child.id() as i32, libc::SIGTERM);
        }
        let status = child.wait().expect("wait");
        assert!(status.success(), "exit status after SIGTERM: {status}");
    }
    #[cfg(not(unix))]
    {
        let _ = child.kill();
    }
    let _ = std::fs::remove_dir_all(&repo);
}
