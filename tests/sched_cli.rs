//! The `sched` trace tool's contract: one line per pick, `none` when nothing is eligible,
//! `--stats`, and a one-line error with exit status 2 for bad lines and bad arguments.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// The example binary, next to this test's executable; built (or brought up to date) once,
/// since cargo does not rebuild examples for `cargo test --test sched_cli`.
fn sched_binary() -> PathBuf {
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let profile: &[&str] = if cfg!(debug_assertions) {
            &[]
        } else {
            &["--release"]
        };
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--example", "sched"])
            .args(profile)
            .status()
            .expect("cargo");
        assert!(status.success(), "building the sched example failed");
    });
    let mut dir = std::env::current_exe().expect("test executable path");
    dir.pop(); // deps/
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join("examples")
        .join(format!("sched{}", std::env::consts::EXE_SUFFIX))
}

fn run(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(sched_binary())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the sched example is built by cargo test");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> Vec<String> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn wrr_5_1_1_prints_the_kernel_sequence() {
    let o = run(&["--alg", "wrr", "--weights", "5,1,1"], &"pick\n".repeat(7));
    assert!(o.status.success());
    assert_eq!(stdout(&o), ["0", "0", "0", "0", "0", "1", "2"]);
}

#[test]
fn operations_change_the_decisions() {
    let trace = "\
# comments and blank lines are ignored

pick 10.0.0.1:1000
pick 10.0.0.2
inactive 0
pick
end 1
weight 1 0
pick [2001:db8::1]:443 [2001:db8::80]:80
down 0
pick
add 4
pick
remove 2
pick
threshold 3 1 0
pick
time 5.5
pick
";
    let o = run(&["--alg", "wlc", "--weights", "1,1,1", "--stats"], trace);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines = stdout(&o);
    // wlc overheads: 0; 1; server 2 is idle: 2; 0 went inactive (1) and 1 is quiesced: 0;
    // 0 down: 2; the new server 3 is idle: 3; 2 removed: 3; thresholds are tested when a
    // connection is bound, so 3 takes one more and becomes overloaded: 3, then none.
    assert_eq!(lines[..9], ["0", "1", "2", "0", "2", "3", "3", "3", "none"]);
    assert_eq!(lines[9], "server 0: 2 picks 22.22%");
    assert!(
        lines
            .iter()
            .any(|l| l == "server 2: 2 picks 22.22% (removed)"),
        "{lines:?}"
    );
    assert_eq!(lines.last().unwrap(), "none: 1 picks 11.11%");
}

#[test]
fn persistence_and_netmask_options() {
    let trace = "pick 10.0.0.1\npick 10.0.0.200\npick 10.0.1.1\ntime 400\npick 10.0.0.1\n";
    let o = run(
        &[
            "--alg",
            "rr",
            "--weights",
            "1,1,1",
            "--persistence",
            "300",
            "--netmask",
            "255.255.255.0",
        ],
        trace,
    );
    assert_eq!(stdout(&o), ["0", "0", "1", "2"]);
    let o = run(
        &[
            "--alg",
            "rr",
            "--weights",
            "1,1",
            "--persistence",
            "60",
            "--netmask",
            "64",
        ],
        "pick [2001:db8::1]:1\npick [2001:db8::2]:1\n",
    );
    assert_eq!(stdout(&o), ["0", "0"]);
}

#[test]
fn every_algorithm_runs() {
    for alg in lb::sched::Algorithm::NAMES {
        let o = run(
            &["--alg", alg, "--weights", "1,2,3", "--seed", "9"],
            "pick 10.0.0.1:5\npick 10.0.0.2:6\nexplain 10.0.0.3:7\n",
        );
        assert!(
            o.status.success(),
            "{alg}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(stdout(&o).len() >= 3, "{alg}");
    }
}

fn fails_with(args: &[&str], stdin: &str, message: &str) {
    let o = run(args, stdin);
    assert_eq!(o.status.code(), Some(2), "{args:?} {stdin:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains(message), "{err:?} should contain {message:?}");
}

#[test]
fn bad_lines_name_their_line_and_exit_2() {
    let ok = ["--alg", "rr", "--weights", "1,1"];
    fails_with(
        &ok,
        "pick\nfrobnicate 3\n",
        "line 2: unknown operation \"frobnicate\"",
    );
    fails_with(&ok, "pick 300.1.1.1\n", "line 1: bad address");
    fails_with(&ok, "weight 9 1\n", "line 1: no server 9");
    fails_with(&ok, "remove 1\nup 1\n", "line 2: server 1 was removed");
    fails_with(&ok, "end 0\n", "line 1: server 0 has no active connection");
    fails_with(&ok, "time 5\ntime 4\n", "line 2: time goes backwards");
    fails_with(&ok, "pick 1.2.3.4 5.6.7.8 extra\n", "unexpected \"extra\"");
    fails_with(&ok, "weight 0\n", "missing weight");
}

#[test]
fn bad_arguments_exit_2_with_one_line() {
    fails_with(
        &["--alg", "nope", "--weights", "1"],
        "",
        "unknown algorithm \"nope\"",
    );
    fails_with(&["--alg", "rr"], "", "--weights");
    fails_with(&["--alg", "rr", "--weights", "1,x"], "", "invalid value");
    fails_with(
        &["--alg", "rr", "--weights", "1", "--flags", "sh-port"],
        "",
        "no flag \"sh-port\"",
    );
    fails_with(
        &["--alg", "mh", "--weights", "1", "--table-size", "1000"],
        "",
        "invalid table size 1000",
    );
    fails_with(
        &["--alg", "rr", "--weights", "1", "--persistence", "0"],
        "",
        "persistence timeout",
    );
    fails_with(
        &["--alg", "maglev", "--weights", "1", "--flags", "bounded=50"],
        "",
        "balance factor",
    );
}

#[test]
fn help_lists_algorithms_and_operations() {
    let o = run(&["--help"], "");
    assert!(o.status.success());
    let help = String::from_utf8_lossy(&o.stdout);
    for word in [
        "pick [SRC [DST]]",
        "threshold I UPPER LOWER",
        "rendezvous",
        "mh-fallback",
    ] {
        assert!(help.contains(word), "--help lacks {word}");
    }
}
