//! The director end to end with one director (no VRRP: it holds the VIP itself) in the L4
//! lab, for what it runs besides the basic services: a firewall-mark service read from the
//! host's firewall rules.

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

/// One director running `config` on eth0 with a control socket: the director's index in
/// `lab.procs`, its configuration file and control socket.
fn start(lab: &mut Lab, tag: &str, config: &str) -> (usize, PathBuf, PathBuf, Files) {
    let tmp = std::env::temp_dir();
    let id = format!("{}-{tag}", std::process::id());
    let conf = tmp.join(format!("lb-chk-{id}.conf"));
    let sock = tmp.join(format!("lb-chk-{id}.sock"));
    std::fs::write(&conf, config).unwrap();
    let (c, s) = (conf.display().to_string(), sock.display().to_string());
    let proc = lab
        .spawn_example(
            1,
            "director",
            &["-f", &c, "--control", &s, "--interface", "eth0"],
            Stream::Stdout,
            "running",
        )
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
    let (proc, _, sock, _files) = start(&mut lab, "fwm", &config);
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
