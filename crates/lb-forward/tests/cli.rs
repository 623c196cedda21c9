//! The examples' command-line contracts: bad arguments give one line on stderr and exit
//! status 2; `--help` exits 0. (Needs no privileges: the arguments are rejected before any
//! socket is opened.)

mod lab_support;

use std::process::Command;

fn run(example: &str, args: &[&str]) -> (Option<i32>, String) {
    let bin = lab_support::example(example).expect("the examples build");
    let out = Command::new(bin).args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_arguments_exit_2_with_one_line() {
    let cases: &[(&str, &[&str])] = &[
        ("forwarder", &[]),
        (
            "forwarder",
            &[
                "--interface",
                "eth0",
                "--service",
                "sctp:10.0.0.1:80",
                "--real",
                "10.0.0.2:80",
            ],
        ),
        (
            "forwarder",
            &[
                "--interface",
                "eth0",
                "--service",
                "tcp:10.0.0.1",
                "--real",
                "10.0.0.2:80",
            ],
        ),
        (
            "forwarder",
            &[
                "--interface",
                "eth0",
                "--service",
                "tcp:10.0.0.1:80",
                "--real",
                "10.0.0.2:80,method=gre",
            ],
        ),
        (
            "forwarder",
            &[
                "--interface",
                "eth0",
                "--service",
                "tcp:10.0.0.1:80",
                "--real",
                "10.0.0.2:80,weight=x",
            ],
        ),
        (
            "forwarder",
            &[
                "--interface",
                "eth0",
                "--service",
                "tcp:10.0.0.1:80",
                "--real",
                "10.0.0.2:80",
                "--scheduler",
                "nope",
            ],
        ),
        (
            "forwarder",
            &[
                "--interface",
                "eth0",
                "--service",
                "tcp:10.0.0.1:80",
                "--real",
                "10.0.0.2:80",
                "--io",
                "xdp",
            ],
        ),
        (
            "forwarder",
            &[
                "--interface",
                "eth0",
                "--service",
                "tcp:10.0.0.1:80",
                "--real",
                "10.0.0.2:80",
                "--ops",
            ],
        ),
        (
            "forwarder",
            &[
                "--interface",
                "eth0",
                "--service",
                "tcp:10.0.0.1:80",
                "--real",
                "10.0.0.2:80",
                "--stats-interval",
                "0",
            ],
        ),
        (
            "forwarder",
            &[
                "--interface",
                "eth0",
                "--service",
                "tcp:10.0.0.1:80",
                "--real",
                "10.0.0.2:80",
                "--set",
                "900",
                "120",
            ],
        ),
        (
            "forwarder",
            &[
                "--interface",
                "eth0",
                "--service",
                "tcp:10.0.0.1:80",
                "--real",
                "10.0.0.2:80",
                "--max-connections",
                "99999999999",
            ],
        ),
        (
            "forwarder",
            &[
                "--interface",
                "eth0",
                "--service",
                "tcp:10.0.0.1:80",
                "--real",
                "10.0.0.2:80",
                "--realtime",
                "100",
            ],
        ),
        (
            "forwarder",
            &[
                "--interface",
                "eth0",
                "--service",
                "tcp:10.0.0.1:80",
                "--real",
                "10.0.0.2:80",
                "--workers",
                "0",
            ],
        ),
        (
            "forwarder",
            &[
                "--interface",
                "eth0",
                "--service",
                "tcp:10.0.0.1:80",
                "--real",
                "10.0.0.2:80",
                "--cpu",
                "0,one",
            ],
        ),
        ("tunnel_endpoint", &["--interface", "eth0"]),
        (
            "tunnel_endpoint",
            &["--interface", "eth0", "--vip", "not-an-address"],
        ),
        (
            "tunnel_endpoint",
            &[
                "--interface",
                "eth0",
                "--vip",
                "10.0.0.1",
                "--tun-name",
                "a-name-far-too-long",
            ],
        ),
    ];
    for (example, args) in cases {
        assert_usage_error(example, args);
    }
}

/// Reals that do not fit their service are refused like any bad argument, before the
/// forwarder touches the host (the interface named does not exist: had the arguments been
/// taken, the run would have failed on it with status 1).
#[test]
fn reals_that_do_not_fit_the_service_exit_2() {
    for args in [
        "--service udp:10.0.0.1:9 --real [2001:db8::2]:9",
        "--service udp:10.0.0.1:9 --real 10.0.0.2:53,method=dr",
        "--service udp:10.0.0.1:9 --real 10.0.0.2:0,method=tun --real 10.0.0.2:0",
        "--service udp:10.0.0.1:0 --real 10.0.0.2:53,method=nat",
        "--service udp:10.0.0.1:9 --ops --real 10.0.0.2:9,method=nat",
    ] {
        let args: Vec<&str> = ["--interface", "lbnone0", "--scheduler", "rr"]
            .into_iter()
            .chain(args.split_whitespace())
            .collect();
        assert_usage_error("forwarder", &args);
    }
}

fn assert_usage_error(example: &str, args: &[&str]) {
    let (code, stderr) = run(example, args);
    assert_eq!(code, Some(2), "{example} {args:?}: {stderr}");
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "{example} {args:?}: {stderr}"
    );
    assert!(stderr.starts_with(&format!("{example}: ")), "{stderr}");
}

#[test]
fn help_exits_0() {
    for example in ["forwarder", "tunnel_endpoint"] {
        let bin = lab_support::example(example).expect("the examples build");
        let out = Command::new(bin).arg("--help").output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        assert!(String::from_utf8_lossy(&out.stdout).contains("--interface"));
    }
}
