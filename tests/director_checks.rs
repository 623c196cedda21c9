//! The director end to end with one director (no VRRP: it holds the VIP itself) in the L4
//! lab, for what it runs besides the basic services: a firewall-mark service read from the
//! host's firewall rules; the sorry server under a quorum with hysteresis; MISC_CHECK with
//! `misc_dynamic` setting weights; SSL_GET with a URL digest against self-signed TLS servers;
//! an LVS-NAT service on the fast packet I/O (`--io fast`: lb-forward's TPACKET_V3 receive
//! rings and PACKET_TX_RING transmit rings), requests and NAT replies both through the rings.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use lb_lab::l4::{Lab, Mode, Stream, TempDir, VIP4, skip, tally};
use lb_lab::{Proc, wait_until};

/// Files removed when dropped.
struct Files(Vec<PathBuf>);
impl Drop for Files {
    fn drop(&mut self) {
        for f in &self.0 {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// One director running `config` on eth0 with a control socket and the `extra` arguments: the
/// director's index in `lab.procs`, its configuration file and control socket.
fn start(
    lab: &mut Lab,
    tag: &str,
    config: &str,
    extra: &[&str],
) -> (usize, PathBuf, PathBuf, Files) {
    let tmp = std::env::temp_dir();
    let id = format!("{}-{tag}", std::process::id());
    let conf = tmp.join(format!("lb-chk-{id}.conf"));
    let sock = tmp.join(format!("lb-chk-{id}.sock"));
    std::fs::write(&conf, config).unwrap();
    let (c, s) = (conf.display().to_string(), sock.display().to_string());
    let mut args = vec!["-f", &c, "--control", &s, "--interface", "eth0"];
    args.extend_from_slice(extra);
    let proc = lab
        .spawn_example(1, "director", &args, Stream::Stdout, "running")
        .unwrap();
    let files = Files(vec![conf.clone(), sock.clone()]);
    (proc, conf, sock, files)
}

fn list(socket: &Path) -> String {
    let bin = lb_lab::l4::example("director").expect("director example");
    let out = std::process::Command::new(bin)
        .arg("list")
        .arg("--control")
        .arg(socket)
        .output()
        .expect("director list");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_for(socket: &Path, secs: u64, what: impl Fn(&str) -> bool) -> Option<String> {
    wait_until(Duration::from_secs(secs), Duration::from_millis(50), || {
        Some(list(socket)).filter(|l| what(l))
    })
}

/// `curl` from the client, from `source` (one of the client's addresses).
fn get(lab: &Lab, source: &str, url: &str) -> String {
    lab.client()
        .run(&["curl", "-sS", "--max-time", "5", "--interface", source, url])
        .unwrap_or_else(|e| format!("failed: {e}"))
}

/// A second HTTP server on each real, on `port`, answering its name.
fn serve_port(lab: &mut Lab, port: u16) -> Vec<TempDir> {
    let mut dirs = Vec::new();
    for i in 0..3 {
        let dir = std::env::temp_dir().join(format!("lb-chk-{}-{port}-{i}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("index.html"), format!("real-{i}")).unwrap();
        let http = Proc::spawn(
            lab.real(i)
                .command("python3")
                .args(["-m", "http.server", &port.to_string(), "--bind", "::"])
                .arg("--directory")
                .arg(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
        .unwrap();
        lab.procs.push(http);
        let listening = format!("ss -ltn | grep -q ':{port} '");
        wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
            lab.real(i).run(&["sh", "-c", &listening]).ok()
        })
        .expect("second HTTP server listening");
        dirs.push(TempDir(dir));
    }
    dirs
}

/// `virtual_server fwmark 1`, persistent, over HTTP on ports 80 and 8080 of the VIP, marked by
/// the director's firewall: port 80 by an iptables-nft rule (when iptables is installed;
/// else natively), port 8080 by a native nftables rule. A client's connections to both ports
/// go to one real; another client's to the next; `director list` shows `FWM  1`; a reload
/// reads the changed rules.
#[test]
fn fwmark_service_with_persistence_across_two_ports() {
    if skip("fwmark_service_with_persistence_across_two_ports") {
        return;
    }
    let mut lab = Lab::new("chkfwm", [Mode::Dr; 3]).unwrap();
    let _dirs = serve_port(&mut lab, 8080);
    let director = lab.director();
    let iptables = lb_lab::require_tools(&["iptables"]).is_ok();
    if iptables {
        director
            .run(&[
                "iptables",
                "-t",
                "mangle",
                "-A",
                "PREROUTING",
                "-d",
                VIP4,
                "-p",
                "tcp",
                "-m",
                "multiport",
                "--dports",
                "80",
                "-j",
                "MARK",
                "--set-mark",
                "1",
            ])
            .unwrap();
    } else {
        eprintln!("iptables is not installed: both ports are marked by native nftables rules");
    }
    let port80 = if iptables { "" } else { "80, " };
    director
        .sh(&format!(
            "nft add table inet marks && \
             nft add chain inet marks pre '{{ type filter hook prerouting priority mangle; }}' && \
             nft add rule inet marks pre ip daddr {VIP4} tcp dport '{{ {port80}8080 }}' meta mark set 1"
        ))
        .unwrap();
    let reals: String = (0..3)
        .map(|i| {
            format!(
                "    real_server {} 80 {{\n        TCP_CHECK {{\n            connect_timeout 1\n        }}\n    }}\n",
                lab.real_ipv4(i)
            )
        })
        .collect();
    let config = format!(
        "virtual_server fwmark 1 {{\n    delay_loop 1\n    lb_algo rr\n    lb_kind DR\n    persistence_timeout 60\n{reals}}}\n"
    );
    let (proc, _, sock, _files) = start(&mut lab, "fwm", &config, &[]);
    let shown = wait_for(&sock, 10, |l| l.contains("FWM 1 takes tcp")).expect("FWM 1 listed");
    assert!(shown.contains("FWM  1 rr persistent 60"), "{shown}");
    let takes = |shown: &str| -> Vec<String> {
        let line = shown.lines().find_map(|l| l.strip_prefix("FWM 1 takes "));
        let mut keys: Vec<String> = line.unwrap_or("").split(", ").map(str::to_owned).collect();
        keys.sort();
        keys
    };
    assert_eq!(
        takes(&shown),
        [
            format!("tcp {VIP4} dport 80"),
            format!("tcp {VIP4} dport 8080")
        ],
        "{shown}"
    );
    assert_eq!(shown.matches("Route").count(), 3, "{shown}");

    // A second client address: persistence is per client, so it goes to the next real.
    lab.client()
        .run(&["ip", "addr", "add", "10.0.0.21/24", "dev", "eth0"])
        .unwrap();
    let mut firsts = Vec::new();
    for client in ["10.0.0.1", "10.0.0.21"] {
        let answers: Vec<String> = (0..3)
            .flat_map(|_| {
                [
                    get(&lab, client, &format!("http://{VIP4}/")),
                    get(&lab, client, &format!("http://{VIP4}:8080/")),
                ]
            })
            .collect();
        let counts = tally(&answers);
        assert_eq!(
            counts.len(),
            1,
            "{client}: both ports, one real: {answers:?}"
        );
        let (real, n) = counts.into_iter().next().unwrap();
        assert!(real.starts_with("real-") && n == 6, "{client}: {answers:?}");
        firsts.push(real);
    }
    assert_ne!(firsts[0], firsts[1], "round robin between the clients");

    // The rules change, the director reloads: port 8080 is no longer the service's.
    let director = lab.director();
    director
        .run(&["nft", "flush", "chain", "inet", "marks", "pre"])
        .unwrap();
    if !iptables {
        director
            .run(&[
                "nft", "add", "rule", "inet", "marks", "pre", "ip", "daddr", VIP4, "tcp", "dport",
                "80", "meta", "mark", "set", "1",
            ])
            .unwrap();
    }
    lab.procs[proc].signal("HUP").unwrap();
    let shown = wait_for(&sock, 10, |l| {
        l.contains(&format!("FWM 1 takes tcp {VIP4} dport 80\n"))
    })
    .expect("port 8080 dropped after the reload");
    assert!(shown.contains("FWM  1 rr persistent 60"), "{shown}");
    assert_eq!(
        get(&lab, "10.0.0.1", &format!("http://{VIP4}/")),
        firsts[0],
        "the persistence table survives the reload"
    );
}

/// `count` requests from the client, tallied per real.
fn spread(lab: &Lab, count: usize) -> std::collections::BTreeMap<String, usize> {
    tally(
        &(0..count)
            .map(|_| get(lab, "10.0.0.1", &format!("http://{VIP4}/")))
            .collect::<Vec<_>>(),
    )
}

/// Makes real `i` refuse (or, `false`, accept again) TCP connections to port 80, so that its
/// TCP_CHECK fails (passes).
fn refuse(lab: &Lab, i: usize, refuse: bool) {
    let script = if refuse {
        "nft add table inet block; nft add chain inet block input '{ type filter hook input priority 0; }'; nft add rule inet block input tcp dport 80 reject with tcp reset"
    } else {
        "nft delete table inet block"
    };
    lab.real(i).sh(script).unwrap();
}

/// A real's line in `director list`, e.g. `-> 10.0.0.3:80 Route 1 0 0`, with single spaces.
fn real_line(shown: &str, addr: &str) -> Option<String> {
    shown
        .lines()
        .find(|l| l.contains(&format!("-> {addr}")))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// keepalived's quorum: reals 0 and 1 (weight 2 each) under `quorum 3` and `hysteresis 1`,
/// real 2 as the sorry server. Both checks failing (live weight 0 < 3 - 1) pull the reals and
/// the sorry server serves alone; one real back (2 < 3 + 1) is not enough; both back (4)
/// restore the reals and retire the sorry server. `quorum_down` / `quorum_up` scripts run.
#[test]
fn sorry_server_while_the_quorum_is_lost() {
    if skip("sorry_server_while_the_quorum_is_lost") {
        return;
    }
    let mut lab = Lab::new("chksry", [Mode::Dr; 3]).unwrap();
    let [r0, r1, r2] = [0, 1, 2].map(|i| lab.real_ipv4(i).to_string());
    let marker =
        |what: &str| std::env::temp_dir().join(format!("lb-chk-{}-{what}", std::process::id()));
    let (lost, gained) = (marker("lost"), marker("gained"));
    let _markers = Files(vec![lost.clone(), gained.clone()]);
    let config = format!(
        "virtual_server {VIP4} 80 {{\n    delay_loop 1\n    lb_algo rr\n    lb_kind DR\n    quorum 3\n    hysteresis 1\n    \
         sorry_server {r2} 80\n    quorum_down \"/usr/bin/touch {}\"\n    quorum_up \"/usr/bin/touch {}\"\n\
         real_server {r0} 80 {{\n        weight 2\n        TCP_CHECK {{\n            connect_timeout 1\n        }}\n    }}\n\
         real_server {r1} 80 {{\n        weight 2\n        TCP_CHECK {{\n            connect_timeout 1\n        }}\n    }}\n}}\n",
        lost.display(),
        gained.display()
    );
    let (_, _, sock, _files) = start(&mut lab, "sry", &config, &[]);
    let shown = wait_for(&sock, 10, |l| l.contains("Route")).expect("service listed");
    assert!(
        real_line(&shown, &r0).is_some() && real_line(&shown, &r1).is_some(),
        "{shown}"
    );
    assert!(
        real_line(&shown, &r2).is_none(),
        "no sorry server yet: {shown}"
    );
    let counts = spread(&lab, 4);
    assert_eq!(
        (counts.get("real-0"), counts.get("real-1")),
        (Some(&2), Some(&2)),
        "{counts:?}"
    );

    refuse(&lab, 0, true);
    refuse(&lab, 1, true);
    let sorry_only = |l: &str| {
        real_line(l, &r2).is_some() && real_line(l, &r0).is_none() && real_line(l, &r1).is_none()
    };
    wait_for(&sock, 15, sorry_only).expect("the sorry server alone once both checks fail");
    wait_until(Duration::from_secs(5), Duration::from_millis(50), || {
        lost.exists().then_some(())
    })
    .expect("quorum_down ran");
    assert!(!gained.exists());
    assert_eq!(
        spread(&lab, 3).into_iter().collect::<Vec<_>>(),
        [("real-2".to_owned(), 3)]
    );

    // One real back: live weight 2, below quorum + hysteresis; the sorry server stays.
    refuse(&lab, 0, false);
    std::thread::sleep(Duration::from_secs(4));
    let shown = list(&sock);
    assert!(
        sorry_only(&shown),
        "hysteresis holds the sorry server: {shown}"
    );

    refuse(&lab, 1, false);
    let shown = wait_for(&sock, 15, |l| {
        real_line(l, &r0).is_some() && real_line(l, &r1).is_some()
    })
    .expect("both reals back");
    assert!(
        real_line(&shown, &r2).is_none(),
        "sorry server retired: {shown}"
    );
    wait_until(Duration::from_secs(5), Duration::from_millis(50), || {
        gained.exists().then_some(())
    })
    .expect("quorum_up ran");
    let counts = spread(&lab, 4);
    assert_eq!(counts.get("real-2"), None, "{counts:?}");
    assert_eq!(counts.values().sum::<usize>(), 4, "{counts:?}");
}

/// MISC_CHECK with `misc_dynamic`: each real's script exits with the code in a file; 0 is up
/// at the configured weight, 1 down, 2-255 up with weight code - 2 (keepalived's rule), seen
/// in `director list` and in wrr's distribution.
#[test]
fn misc_dynamic_exit_codes_set_weights() {
    if skip("misc_dynamic_exit_codes_set_weights") {
        return;
    }
    let mut lab = Lab::new("chkmisc", [Mode::Dr; 3]).unwrap();
    let reals: Vec<String> = (0..3).map(|i| lab.real_ipv4(i).to_string()).collect();
    let codes: Vec<PathBuf> = (0..3)
        .map(|i| std::env::temp_dir().join(format!("lb-chk-{}-code-{i}", std::process::id())))
        .collect();
    let _codes = Files(codes.clone());
    for c in &codes {
        std::fs::write(c, "0").unwrap();
    }
    let blocks: String = reals
        .iter()
        .zip(&codes)
        .map(|(r, c)| {
            format!(
                "    real_server {r} 80 {{\n        weight 1\n        MISC_CHECK {{\n            misc_path \"/bin/sh -c 'exit $(cat {})'\"\n            misc_timeout 2\n            misc_dynamic\n        }}\n    }}\n",
                c.display()
            )
        })
        .collect();
    let config = format!(
        "virtual_server {VIP4} 80 {{\n    delay_loop 1\n    lb_algo wrr\n    lb_kind DR\n{blocks}}}\n"
    );
    let (_, _, sock, _files) = start(&mut lab, "misc", &config, &[]);
    let weight = |shown: &str, i: usize| -> Option<u32> {
        real_line(shown, &reals[i])?.split(' ').nth(3)?.parse().ok()
    };
    wait_for(&sock, 10, |l| (0..3).all(|i| weight(l, i) == Some(1)))
        .expect("three reals at weight 1");

    // Exit 5: weight 3; wrr 3:1:1 over two of its periods.
    std::fs::write(&codes[0], "5").unwrap();
    wait_for(&sock, 10, |l| weight(l, 0) == Some(3)).expect("weight 3 from exit code 5");
    let counts = spread(&lab, 10);
    assert_eq!(
        counts.values().copied().collect::<Vec<_>>(),
        [6, 2, 2],
        "{counts:?}"
    );

    // Exit 2: weight 0, quiesced; exit 1: down, removed; exit 0: back at the configured 1.
    std::fs::write(&codes[0], "2").unwrap();
    wait_for(&sock, 10, |l| weight(l, 0) == Some(0)).expect("weight 0 from exit code 2");
    assert_eq!(spread(&lab, 4).get("real-0"), None);
    std::fs::write(&codes[0], "1").unwrap();
    wait_for(&sock, 10, |l| real_line(l, &reals[0]).is_none()).expect("removed on exit 1");
    std::fs::write(&codes[0], "0").unwrap();
    wait_for(&sock, 10, |l| weight(l, 0) == Some(1)).expect("back at weight 1 on exit 0");
    let counts = spread(&lab, 6);
    assert_eq!(
        counts.values().copied().collect::<Vec<_>>(),
        [2, 2, 2],
        "{counts:?}"
    );
}

/// A TLS server on port 443 of each real (Python's ssl module, a self-signed certificate made
/// here) serving `health.txt`.
fn serve_tls(lab: &mut Lab, body: &str) -> (Vec<TempDir>, TempDir) {
    let certs = TempDir(std::env::temp_dir().join(format!("lb-chk-{}-tls", std::process::id())));
    std::fs::create_dir_all(&certs.0).unwrap();
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, private) = (certs.0.join("cert.pem"), certs.0.join("key.pem"));
    std::fs::write(&cert, key.cert.pem()).unwrap();
    std::fs::write(&private, key.key_pair.serialize_pem()).unwrap();
    let server = "import functools,http.server,ssl,sys
d,c,k=sys.argv[1:4]
h=functools.partial(http.server.SimpleHTTPRequestHandler,directory=d)
s=http.server.ThreadingHTTPServer(('0.0.0.0',443),h)
x=ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
x.load_cert_chain(c,k)
s.socket=x.wrap_socket(s.socket,server_side=True)
s.serve_forever()
";
    let mut dirs = Vec::new();
    for i in 0..3 {
        let dir = std::env::temp_dir().join(format!("lb-chk-{}-tls-{i}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("health.txt"), body).unwrap();
        let p = Proc::spawn(
            lab.real(i)
                .command("python3")
                .args(["-c", server])
                .arg(&dir)
                .arg(&cert)
                .arg(&private)
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
        .unwrap();
        lab.procs.push(p);
        wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
            lab.real(i)
                .run(&["sh", "-c", "ss -ltn | grep -q ':443 '"])
                .ok()
        })
        .expect("TLS server listening");
        dirs.push(TempDir(dir));
    }
    (dirs, certs)
}

fn md5_hex(data: &[u8]) -> String {
    use md5::Digest;
    md5::Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// SSL_GET with `url { path status_code digest }` against TLS servers with a self-signed
/// certificate: the reals whose page has the configured MD5 digest are up; the one configured
/// with a wrong digest never is; a real whose page changes goes down, and comes back when the
/// page does.
#[test]
fn ssl_get_with_a_digest() {
    if skip("ssl_get_with_a_digest") {
        return;
    }
    let mut lab = Lab::new("chkssl", [Mode::Dr; 3]).unwrap();
    let body = "healthy\n";
    let (dirs, _certs) = serve_tls(&mut lab, body);
    let reals: Vec<String> = (0..3).map(|i| lab.real_ipv4(i).to_string()).collect();
    let right = md5_hex(body.as_bytes());
    let wrong = md5_hex(b"something else");
    let blocks: String = reals
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let digest = if i == 2 { &wrong } else { &right };
            format!(
                "    real_server {r} 443 {{\n        SSL_GET {{\n            url {{\n                path /health.txt\n                status_code 200\n                digest {digest}\n            }}\n            connect_timeout 2\n            retry 1\n            delay_before_retry 1\n        }}\n    }}\n"
            )
        })
        .collect();
    let config = format!(
        "virtual_server {VIP4} 443 {{\n    delay_loop 1\n    lb_algo rr\n    lb_kind DR\n{blocks}}}\n"
    );
    let (_, _, sock, _files) = start(&mut lab, "ssl", &config, &[]);
    let present = |l: &str, i: usize| real_line(l, &format!("{}:443", reals[i])).is_some();
    let shown = wait_for(&sock, 15, |l| {
        l.contains("Route") && present(l, 0) && present(l, 1) && !present(l, 2)
    })
    .expect("the reals with the right digest up, the wrong digest's down");
    assert!(shown.contains(&format!("TCP  {VIP4}:443 rr")), "{shown}");

    std::fs::write(dirs[0].0.join("health.txt"), "changed\n").unwrap();
    wait_for(&sock, 15, |l| !present(l, 0) && present(l, 1)).expect("real 0 down: digest differs");
    std::fs::write(dirs[0].0.join("health.txt"), body).unwrap();
    wait_for(&sock, 15, |l| {
        present(l, 0) && present(l, 1) && !present(l, 2)
    })
    .expect("real 0 back with the right digest");
}

/// `--io fast --workers 2`: an LVS-NAT service whose requests and replies (the reals route
/// back through the director) all pass through lb-forward's rings, on two forwarding threads
/// sharing one scheduler: wrr spreads six requests 2/2/2. The director's own TCP checks of the
/// reals' service port keep passing: the rules that keep the kernel off NAT replies spare
/// replies addressed to the director itself.
#[test]
fn nat_service_on_the_fast_io() {
    if skip("nat_service_on_the_fast_io") {
        return;
    }
    let mut lab = Lab::new("chkfast", [Mode::Nat; 3]).unwrap();
    let blocks: String = (0..3)
        .map(|i| {
            format!(
                "    real_server {} 80 {{\n        weight 1\n        TCP_CHECK {{\n            connect_timeout 1\n        }}\n    }}\n",
                lab.real_ipv4(i)
            )
        })
        .collect();
    let config = format!(
        "virtual_server {VIP4} 80 {{\n    delay_loop 1\n    lb_algo wrr\n    lb_kind NAT\n    protocol TCP\n{blocks}}}\n"
    );
    let (_, _, sock, _files) = start(
        &mut lab,
        "fast",
        &config,
        &["--io", "fast", "--workers", "2"],
    );
    wait_for(&sock, 10, |l| l.matches(" Masq ").count() == 3).expect("three NAT reals");
    let counts = spread(&lab, 6);
    assert_eq!(
        counts.values().copied().collect::<Vec<_>>(),
        [2, 2, 2],
        "{counts:?}"
    );
    // Four more rounds of checks (delay_loop 1, connect_timeout 1): a check whose replies
    // never arrive would have removed its real by now.
    std::thread::sleep(Duration::from_secs(4));
    wait_for(&sock, 1, |l| l.matches(" Masq ").count() == 3)
        .expect("the three NAT reals still pass their checks");
}
