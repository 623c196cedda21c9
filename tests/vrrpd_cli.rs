//! The `vrrpd` example's contract (lb-vrrp's issue): bad arguments give one line on stderr and
//! exit status 2 (a failure at run time, exit 1); against keepalived 2.2.7 in network
//! namespaces it prints each transition as `<unix-time-ms> <vrid> MASTER|BACKUP|FAULT
//! <reason>`, runs `--notify CMD` with `INSTANCE STATE`, and on SIGTERM sends a priority-0
//! advert (keepalived takes over after its Skew_Time, well before 3 x the interval), removes
//! its virtual address and its nftables table, and exits 0. `--realtime` and `--no-swap` are
//! checked in /proc.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lb_lab::{Host, Lan, Proc, wait_until};

fn binary() -> PathBuf {
    lb_lab::l4::example("vrrpd").expect("the vrrpd example builds")
}

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

#[test]
fn bad_arguments_exit_2_with_one_line() {
    let base = ["--interface", "eth0", "--vrid", "51", "--priority", "100"];
    let cases: &[&[&str]] = &[
        &[],
        &[
            "--interface",
            "eth0",
            "--priority",
            "100",
            "--vip",
            "10.0.0.100",
        ],
        &[
            "--interface",
            "eth0",
            "--vrid",
            "0",
            "--priority",
            "100",
            "--vip",
            "10.0.0.100",
        ],
        &[
            "--interface",
            "eth0",
            "--vrid",
            "51",
            "--priority",
            "0",
            "--vip",
            "10.0.0.100",
        ],
        &["--vip", "10.0.0.300/24"],
        &["--vip", "10.0.0.100/33"],
        &["--vip", "10.0.0.100", "--vip", "fd00::100"],
        &["--vip", "10.0.0.100", "--version", "4"],
        &[
            "--vip",
            "10.0.0.100",
            "--version",
            "2",
            "--interval-ms",
            "1500",
        ],
        &["--vip", "10.0.0.100", "--interval-ms", "15"],
        &["--vip", "fd00::100", "--version", "2"],
        &["--vip", "10.0.0.100", "--auth-pass", "secret"],
        &["--vip", "10.0.0.100", "--checksum", "crc32"],
        &["--vip", "10.0.0.100", "--realtime", "0"],
        &["--vip", "10.0.0.100", "--realtime", "100"],
        &["--vip", "10.0.0.100", "--bogus"],
    ];
    for case in cases {
        // Cases starting with --vip get the base arguments in front.
        let args: Vec<&str> = if case.first() == Some(&"--vip") {
            base.iter().chain(case.iter()).copied().collect()
        } else {
            case.to_vec()
        };
        let out = Command::new(binary()).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("vrrpd: "), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    let help = Command::new(binary()).arg("--help").output().unwrap();
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("--notify"));
    // Valid arguments, an interface that does not exist: a run-time failure, exit 1.
    let out = Command::new(binary())
        .args([
            "--interface",
            "no-such-if0",
            "--vrid",
            "51",
            "--priority",
            "100",
        ])
        .args(["--vip", "10.0.0.100"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// keepalived 2.2.7 in one host's namespace (one `vrrp_instance`), killed by pid on drop.
struct Keepalived {
    proc: Option<Proc>,
    dir: PathBuf,
}

impl Keepalived {
    fn start(host: &Host, dir: &std::path::Path, instance: &str) -> Keepalived {
        let conf = dir.join("keepalived.conf");
        std::fs::write(
            &conf,
            format!("global_defs {{\n router_id lab\n}}\nvrrp_instance V1 {{\n interface eth0\n{instance}\n}}\n"),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("keepalived.log")).unwrap();
        let mut cmd = host.ns.command("keepalived");
        cmd.args(["-n", "-l", "-D", "--vrrp", "-f"])
            .arg(&conf)
            .arg("-p")
            .arg(dir.join("keepalived.pid"))
            .arg("-r")
            .arg(dir.join("vrrp.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        Keepalived {
            proc: Some(Proc::spawn(&mut cmd).unwrap()),
            dir: dir.to_owned(),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("keepalived.log")).unwrap_or_default()
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        // The VRRP child first (it would resign when its parent dies), then the parent.
        for f in ["vrrp.pid", "keepalived.pid"] {
            if let Ok(pid) = std::fs::read_to_string(self.dir.join(f)) {
                let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
            }
        }
        drop(self.proc.take());
    }
}

/// A running vrrpd whose stdout lines are collected as they come.
struct Vrrpd {
    proc: Proc,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Vrrpd {
    fn start(host: &Host, args: &[&str]) -> Vrrpd {
        let mut cmd = host.ns.command(&binary().to_string_lossy());
        cmd.args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut proc = Proc::spawn(&mut cmd).unwrap();
        let out = proc.child_mut().stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Vrrpd { proc, lines }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits until a line with state `state` arrives after the first `after` lines; its index.
    fn wait_state(&self, state: &str, after: usize, timeout: Duration) -> Option<usize> {
        wait_until(timeout, Duration::from_millis(10), || {
            self.lines()
                .iter()
                .enumerate()
                .skip(after)
                .find(|(_, l)| l.split(' ').nth(2) == Some(state))
                .map(|(i, _)| i)
        })
    }
}

fn has_addr(host: &Host, addr: &str) -> bool {
    host.ns
        .run(&["ip", "-o", "addr", "show", "dev", "eth0"])
        .is_ok_and(|o| {
            o.split_whitespace()
                .any(|w| w.split('/').next() == Some(addr))
        })
}

const VIP: &str = "10.0.0.100";
const INTERVAL: Duration = Duration::from_secs(1);

#[test]
fn transitions_notify_and_sigterm_handover_against_keepalived() {
    if lb_lab::skip_unless_root("transitions_notify_and_sigterm_handover_against_keepalived") {
        return;
    }
    if let Err(e) = lb_lab::require_tools(&["keepalived", "nft", "chrt"]) {
        eprintln!("skipping transitions_notify_and_sigterm_handover_against_keepalived: {e}");
        return;
    }
    let dir = lb_lab::l4::TempDir(
        std::env::temp_dir().join(format!("lb-vrrpd-cli-{}", std::process::id())),
    );
    std::fs::create_dir_all(&dir.0).unwrap();
    let notify_log = dir.0.join("notify.log");
    let script = dir.0.join("notify.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$@\" >> {}\n", notify_log.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let notified = || std::fs::read_to_string(&notify_log).unwrap_or_default();

    let lan = Lan::new("vcli", 2).unwrap();
    let (ka_host, our_host) = (&lan.hosts[0], &lan.hosts[1]);
    let ka = Keepalived::start(
        ka_host,
        &dir.0,
        "state BACKUP\n version 3\n virtual_router_id 51\n priority 100\n advert_int 1\n virtual_ipaddress {\n  10.0.0.100/24\n }\n",
    );
    assert!(
        wait_until(Duration::from_secs(8), Duration::from_millis(20), || {
            has_addr(ka_host, VIP).then_some(())
        })
        .is_some(),
        "{}",
        ka.log()
    );

    // We preempt keepalived: BACKUP, then MASTER on its first (lower-priority) advert.
    let started = unix_ms();
    let script_text = script.to_string_lossy();
    let ours = Vrrpd::start(
        our_host,
        &[
            "--interface",
            "eth0",
            "--vrid",
            "51",
            "--priority",
            "200",
            "--vip",
            "10.0.0.100/24",
            "--interval-ms",
            "1000",
            "--checksum",
            "pseudo-header",
            "--notify",
            &script_text,
            "--realtime",
            "10",
            "--no-swap",
        ],
    );
    let master = ours.wait_state("MASTER", 0, Duration::from_secs(5));
    assert!(master.is_some(), "{:?}", ours.lines());
    let lines = ours.lines();
    assert_eq!(lines[0].split(' ').nth(2), Some("BACKUP"), "{lines:?}");
    for line in &lines {
        let fields: Vec<&str> = line.splitn(4, ' ').collect();
        assert_eq!(fields.len(), 4, "{line}");
        let ms: u128 = fields[0].parse().expect("unix time in ms");
        assert!((started..=unix_ms()).contains(&ms), "{line}");
        assert_eq!(fields[1], "51", "{line}");
        assert!(["MASTER", "BACKUP", "FAULT"].contains(&fields[2]), "{line}");
        assert!(!fields[3].is_empty(), "a reason: {line}");
    }
    assert!(
        wait_until(Duration::from_secs(3), Duration::from_millis(20), || {
            (has_addr(our_host, VIP) && !has_addr(ka_host, VIP)).then_some(())
        })
        .is_some(),
        "{}",
        ka.log()
    );
    assert!(
        wait_until(Duration::from_secs(2), Duration::from_millis(20), || {
            notified()
                .contains("VI_51 BACKUP\nVI_51 MASTER\n")
                .then_some(())
        })
        .is_some(),
        "{}",
        notified()
    );
    // --realtime and --no-swap: `ip netns exec` execs vrrpd under the pid we started.
    let pid = ours.proc.pid().to_string();
    let policy = Command::new("chrt").args(["-p", &pid]).output().unwrap();
    assert!(
        String::from_utf8_lossy(&policy.stdout).contains("SCHED_RR"),
        "{}",
        String::from_utf8_lossy(&policy.stdout)
    );
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let locked = status
        .lines()
        .find_map(|l| l.strip_prefix("VmLck:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse::<u64>().ok());
    assert!(locked.is_some_and(|kb| kb > 0), "{status}");
    // Without --accept a non-owner master filters its VIP with its own nftables table.
    let tables = our_host.ns.run(&["nft", "list", "tables"]).unwrap();
    assert!(tables.contains("lb_vrrp_"), "{tables}");

    // The link goes down: FAULT (and the VIP goes); back up: BACKUP, then MASTER again.
    let seen = ours.lines().len();
    our_host
        .ns
        .run(&["ip", "link", "set", "eth0", "down"])
        .unwrap();
    let fault = ours.wait_state("FAULT", seen, Duration::from_secs(3));
    assert!(fault.is_some(), "{:?}", ours.lines());
    assert!(ours.lines()[fault.unwrap()].ends_with(" FAULT link down"));
    assert!(!has_addr(our_host, VIP));
    our_host
        .ns
        .run(&["ip", "link", "set", "eth0", "up"])
        .unwrap();
    let back = ours.wait_state("MASTER", seen, Duration::from_secs(8));
    assert!(back.is_some(), "{:?}", ours.lines());
    assert!(
        wait_until(Duration::from_secs(2), Duration::from_millis(20), || {
            notified().contains("VI_51 FAULT\n").then_some(())
        })
        .is_some(),
        "{}",
        notified()
    );
    // Let keepalived hear us again and settle as backup.
    assert!(
        wait_until(Duration::from_secs(5), Duration::from_millis(20), || {
            (!has_addr(ka_host, VIP) && has_addr(our_host, VIP)).then_some(())
        })
        .is_some(),
        "{}",
        ka.log()
    );
    std::thread::sleep(INTERVAL);

    // SIGTERM: priority 0, keepalived takes over after its Skew_Time (0.61 s at priority
    // 100), well before 3 x the interval; our VIP and table are gone and we exit 0.
    let mut ours = ours;
    let t = Instant::now();
    ours.proc.signal("TERM").unwrap();
    let took = wait_until(3 * INTERVAL, Duration::from_millis(5), || {
        has_addr(ka_host, VIP).then(|| t.elapsed())
    });
    assert!(
        took.is_some_and(|d| d < 3 * INTERVAL),
        "{took:?}: {}",
        ka.log()
    );
    let status = ours.proc.wait_timeout(Duration::from_secs(3)).unwrap();
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    assert!(!has_addr(our_host, VIP));
    let tables = our_host.ns.run(&["nft", "list", "tables"]).unwrap();
    assert!(!tables.contains("lb_vrrp_"), "{tables}");
    assert!(
        ka.log().contains("priority 0"),
        "keepalived heard the priority-0 advert: {}",
        ka.log()
    );
}
