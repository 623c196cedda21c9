//! The `healthcheck` example's contract: one JSON line per transition (the initial one
//! included) with `ts_ms`, `target`, `state`, `reason` in that order; exit 0 on SIGTERM; a
//! one-line error and exit status 2 for bad arguments.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The example binary, built once (cargo does not rebuild examples for `cargo test --test`).
fn binary() -> PathBuf {
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let profile: &[&str] = if cfg!(debug_assertions) {
            &[]
        } else {
            &["--release"]
        };
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--example", "healthcheck"])
            .args(profile)
            .status()
            .expect("cargo");
        assert!(status.success(), "building the healthcheck example failed");
    });
    let mut dir = std::env::current_exe().expect("test executable path");
    dir.pop();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join("examples")
        .join(format!("healthcheck{}", std::env::consts::EXE_SUFFIX))
}

#[test]
fn bad_arguments_exit_2_with_one_line() {
    for args in [
        &[][..],
        &["--rise", "0", "tcp://127.0.0.1:1"],
        &["--interval-ms", "x", "tcp://127.0.0.1:1"],
        &["ftp://127.0.0.1:21"],
        &["tcp://127.0.0.1"],
        &["udp://127.0.0.1:53"],
        &["http://127.0.0.1/?expect=abc"],
    ] {
        let out = Command::new(binary()).args(args).output().expect("run");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("healthcheck: "), "{err}");
        assert!(out.stdout.is_empty());
    }
    let help = Command::new(binary()).arg("--help").output().expect("run");
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("udp://HOST:PORT?send=HEX"));
}

#[test]
fn json_lines_per_transition_until_sigterm() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let up = listener.local_addr().unwrap();
    let refused = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (up_t, refused_t) = (format!("tcp://{up}"), format!("tcp://{refused}"));
    let mut child = Command::new(binary())
        .args([
            "--interval-ms",
            "50",
            "--timeout-ms",
            "300",
            "--rise",
            "1",
            "--fall",
            "2",
        ])
        .args([&up_t, &refused_t, "exec:/bin/true"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let next = || {
        rx.recv_timeout(Duration::from_secs(5))
            .expect("a line within 5 s")
    };
    let mut initial = Vec::new();
    for _ in 0..3 {
        let line = next();
        let keys: Vec<usize> = ["\"ts_ms\"", "\"target\"", "\"state\"", "\"reason\""]
            .iter()
            .map(|k| line.find(k).expect(k))
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "key order: {line}");
        let v: serde_json::Value = serde_json::from_str(&line).expect("json");
        assert!(v["ts_ms"].as_u64().unwrap() > 1_600_000_000_000);
        initial.push((
            v["target"].as_str().unwrap().to_owned(),
            v["state"].as_str().unwrap().to_owned(),
            v["reason"].as_str().unwrap().to_owned(),
        ));
    }
    initial.sort();
    let mut expected = vec![
        (
            "exec:/bin/true".to_owned(),
            "up".to_owned(),
            "exit code 0".to_owned(),
        ),
        (up_t.clone(), "up".to_owned(), "connected".to_owned()),
        (
            refused_t.clone(),
            "down".to_owned(),
            "connection refused".to_owned(),
        ),
    ];
    expected.sort();
    assert_eq!(initial, expected);
    // The listener goes away: a down transition follows for that target only.
    drop(listener);
    let v: serde_json::Value = serde_json::from_str(&next()).unwrap();
    assert_eq!(
        (v["target"].as_str(), v["state"].as_str()),
        (Some(up_t.as_str()), Some("down"))
    );
    assert_eq!(v["reason"], "connection refused");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert_eq!(status.code(), Some(0));
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("healthcheck did not exit on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
