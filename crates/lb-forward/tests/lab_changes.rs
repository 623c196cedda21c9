//! Changes while traffic flows, between real peers in network namespaces: persistence,
//! quiescing and removing a real (through the library, driving the datapath from a thread in
//! the director's namespace), and a flood of malformed frames that the forwarder survives and
//! counts.

mod lab_support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use lab_support::{ForwarderLab, Lab, Mode, VIP4, skip, tally};
use lb_forward::io::{Driver, KernelRules, NextHopResolver, PnetIo, interface};
use lb_forward::*;
use lb_lab::{Netns, Proc, wait_until};
use lb_sched::{Algorithm, PoolConfig};

/// The datapath running in a thread that entered the director's namespace.
struct Running {
    driver: Arc<Mutex<Driver>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn start(ns: &Netns, key: ServiceKey, reals: &[&str]) -> Running {
    let name = ns.name().to_owned();
    let reals: Vec<SocketAddr> = reals.iter().map(|r| r.parse().unwrap()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    let thread = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            lb_lab::enter_netns(&name).unwrap();
            let mut fw = Forwarder::new(Settings::default());
            fw.set_interface(interface("eth0").unwrap());
            let sched = PoolScheduler::new(PoolConfig::new(Algorithm::Rr), 1).unwrap();
            fw.add_service(key, ServiceConfig::default(), sched)
                .unwrap();
            let mut resolver = NextHopResolver::new().unwrap();
            for r in &reals {
                fw.add_real(&key, RealConfig::new(*r, 1, Method::Dr), Duration::ZERO)
                    .unwrap();
                let nh = resolver
                    .resolve_wait(r.ip(), Duration::from_secs(3))
                    .unwrap();
                fw.set_next_hop(r.ip(), nh);
            }
            let rules = KernelRules::install(&fw).unwrap();
            let io = PnetIo::open(&["eth0".to_owned()]).unwrap();
            let driver = Arc::new(Mutex::new(Driver::new(fw, Box::new(io), 64)));
            tx.send(Arc::clone(&driver)).unwrap();
            while !stop.load(Ordering::Relaxed) {
                driver
                    .lock()
                    .unwrap()
                    .poll(Some(Duration::from_millis(5)))
                    .unwrap();
            }
            drop(rules);
        })
    };
    let driver = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("datapath started");
    Running {
        driver,
        stop,
        thread: Some(thread),
    }
}

fn six(lab: &Lab) -> Vec<String> {
    (0..6)
        .map(|_| lab.http_get(&format!("http://{VIP4}/")).unwrap())
        .collect()
}

#[test]
fn quiesce_and_remove_reals_while_serving() {
    if skip("quiesce_and_remove_reals_while_serving") {
        return;
    }
    let lab = Lab::new("fq", [Mode::Dr; 3]).unwrap();
    let http = ServiceKey::new(Protocol::Tcp, "10.0.0.100:80".parse().unwrap());
    let lines = ServiceKey::new(Protocol::Tcp, "10.0.0.100:7".parse().unwrap());
    let reals = ["10.0.0.3:0", "10.0.0.4:0", "10.0.0.5:0"];
    let web = start(lab.director(), http, &reals);
    let line = start(lab.director(), lines, &reals);

    // A long-lived connection: one answer now, one after the real is quiesced.
    let go = std::env::temp_dir().join(format!("lb-forward-go-{}", std::process::id()));
    let _ = std::fs::remove_file(&go);
    let script = format!(
        "import socket,os,time\ns=socket.create_connection(('{VIP4}',7),timeout=5)\nf=s.makefile('rb')\ns.sendall(b'a\\n')\nprint(f.readline().decode().strip(),flush=True)\nwhile not os.path.exists('{}'):\n    time.sleep(0.05)\ns.sendall(b'b\\n')\nprint(f.readline().decode().strip(),flush=True)\n",
        go.display()
    );
    let mut long = Proc::spawn(
        lab.client()
            .command("python3")
            .args(["-c", &script])
            .stdout(Stdio::piped()),
    )
    .unwrap();
    let mut out = BufReader::new(long.child_mut().stdout.take().unwrap()).lines();
    let first = out.next().unwrap().unwrap();
    assert!(first.starts_with("real-"), "{first}");
    let index: usize = first["real-".len()..].parse().unwrap();

    // Quiesce that real on both services: weight 0.
    for (running, key) in [(&web, http), (&line, lines)] {
        let d = running.driver.lock().unwrap();
        d.forwarder()
            .edit_real(
                &key,
                reals[index].parse().unwrap(),
                0,
                false,
                Duration::ZERO,
            )
            .unwrap();
    }
    std::fs::write(&go, b"go").unwrap();
    let second = out.next().unwrap().unwrap();
    assert_eq!(
        second, first,
        "the established connection stays on the quiesced real"
    );
    let _ = std::fs::remove_file(&go);
    let t = tally(&six(&lab));
    assert!(
        !t.contains_key(&first),
        "no new connection on the quiesced real: {t:?}"
    );
    assert_eq!(t.values().sum::<usize>(), 6);

    // Remove another real: every new connection goes to the one left.
    let other = (index + 1) % 3;
    web.driver
        .lock()
        .unwrap()
        .forwarder()
        .remove_real(&http, reals[other].parse().unwrap())
        .unwrap();
    let t = tally(&six(&lab));
    assert_eq!(t.len(), 1, "{t:?}");
    assert_eq!(t.values().sum::<usize>(), 6);

    // Back to weight 1: it takes connections again.
    web.driver
        .lock()
        .unwrap()
        .forwarder()
        .edit_real(
            &http,
            reals[index].parse().unwrap(),
            1,
            false,
            Duration::ZERO,
        )
        .unwrap();
    let t = tally(&six(&lab));
    assert_eq!(t.len(), 2, "{t:?}");
    assert!(t.contains_key(&first));
    let status = web.driver.lock().unwrap().forwarder().status();
    assert_eq!(status[0].reals.len(), 2);
}

#[test]
fn persistence_keeps_each_client_on_one_real() {
    if skip("persistence_keeps_each_client_on_one_real") {
        return;
    }
    let mut lab = Lab::new("fp", [Mode::Dr; 3]).unwrap();
    lab.client()
        .run(&["ip", "addr", "add", "10.0.0.11/24", "dev", "eth0"])
        .unwrap();
    lab.forwarder(&[
        "--service",
        "tcp:10.0.0.100:80",
        "--scheduler",
        "rr",
        "--persistence",
        "60",
        "--real",
        "10.0.0.3:80",
        "--real",
        "10.0.0.4:80",
        "--real",
        "10.0.0.5:80",
    ])
    .unwrap();
    let from = |src: &str| -> Vec<String> {
        (0..6)
            .map(|_| {
                lab.client()
                    .run(&[
                        "curl",
                        "-sS",
                        "--max-time",
                        "5",
                        "--interface",
                        src,
                        &format!("http://{VIP4}/"),
                    ])
                    .unwrap()
            })
            .collect()
    };
    let a = tally(&from("10.0.0.1"));
    let b = tally(&from("10.0.0.11"));
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(b.len(), 1, "{b:?}");
    assert_ne!(
        a.keys().next(),
        b.keys().next(),
        "two clients, two reals (rr)"
    );
}

#[test]
fn malformed_flood_is_counted_and_survived() {
    if skip("malformed_flood_is_counted_and_survived") {
        return;
    }
    if let Err(e) = lb_lab::require_tools(&["trafgen"]) {
        eprintln!("skipping malformed_flood_is_counted_and_survived: {e}");
        return;
    }
    for io in ["pnet", "fast"] {
        flood(io);
    }
}

/// The flood against a forwarder on the `io` backend.
fn flood(io: &str) {
    let mut lab = Lab::new(&format!("ff{io}"), [Mode::Dr; 3]).unwrap();
    // With br_netfilter loaded the bridge itself drops IPv4 frames with invalid headers; let
    // them through to the director.
    for key in ["bridge-nf-call-iptables", "bridge-nf-call-ip6tables"] {
        let _ = lab
            .lan
            .switch
            .run(&["sysctl", "-qw", &format!("net.bridge.{key}=0")]);
    }
    let idx = lab
        .forwarder(&[
            "--service",
            "tcp:10.0.0.100:80",
            "--scheduler",
            "rr",
            "--real",
            "10.0.0.3:80",
            "--real",
            "10.0.0.4:80",
            "--real",
            "10.0.0.5:80",
            "--io",
            io,
        ])
        .unwrap();
    assert!(
        lab.http_get(&format!("http://{VIP4}/"))
            .unwrap()
            .starts_with("real-"),
        "{io}"
    );

    // Random bytes as IPv4 headers, and IPv4 packets to the VIP with a cut TCP header.
    let conf = std::env::temp_dir().join(format!("lb-forward-flood-{}.cfg", std::process::id()));
    std::fs::write(
        &conf,
        "{ eth(da=02:00:00:00:00:02, sa=02:00:00:00:00:01, type=0x0800), drnd(40) }\n\
         { eth(da=02:00:00:00:00:02, sa=02:00:00:00:00:01), ipv4(saddr=10.0.0.1, daddr=10.0.0.100, proto=6), drnd(10) }\n",
    )
    .unwrap();
    let sent = 20_000;
    lab.client()
        .run(&[
            "trafgen",
            "--dev",
            "eth0",
            "--conf",
            &conf.to_string_lossy(),
            "-n",
            &sent.to_string(),
            "-q",
        ])
        .unwrap();
    let _ = std::fs::remove_file(&conf);

    // Still serving, still running.
    assert!(
        lab.http_get(&format!("http://{VIP4}/"))
            .unwrap()
            .starts_with("real-")
    );
    assert_eq!(
        lab.procs[idx]
            .wait_timeout(Duration::from_millis(10))
            .unwrap(),
        None
    );

    // The statistics table (SIGUSR1) counts the drops by reason.
    let drops = wait_until(Duration::from_secs(10), Duration::from_millis(200), || {
        let table = lab.stats(idx).ok()?;
        let line = table.lines().find(|l| l.starts_with("drops:"))?.to_owned();
        let total: u64 = line
            .split_whitespace()
            .filter_map(|kv| kv.rsplit_once('=')?.1.parse::<u64>().ok())
            .sum();
        (total > sent / 2).then_some(line)
    });
    let line = drops.unwrap_or_else(|| panic!("{io}: the flood's drops were not counted"));
    assert!(line.contains("bad ip header="), "{io}: {line}");
    assert!(line.contains("truncated="), "{io}: {line}");
}

#[test]
fn sigterm_removes_what_was_installed() {
    if skip("sigterm_removes_what_was_installed") {
        return;
    }
    let mut lab = Lab::new("fsig", [Mode::Tun, Mode::Dr, Mode::Dr]).unwrap();
    let real = lab.real(0);
    assert_eq!(
        real.run(&["sysctl", "-n", "net.ipv4.conf.all.arp_ignore"])
            .unwrap()
            .trim(),
        "1"
    );
    assert!(
        real.run(&["nft", "list", "tables"])
            .unwrap()
            .contains("lb_tunnel_")
    );
    let idx = lab
        .forwarder(&[
            "--service",
            "tcp:10.0.0.100:80",
            "--real",
            "10.0.0.3:80,method=tun",
        ])
        .unwrap();
    assert!(
        lab.director()
            .run(&["nft", "list", "tables"])
            .unwrap()
            .contains("lb_forward_")
    );
    assert!(
        lab.http_get(&format!("http://{VIP4}/"))
            .unwrap()
            .starts_with("real-0")
    );

    lab.procs[idx].signal("TERM").unwrap();
    let status = lab.procs[idx].wait_timeout(Duration::from_secs(5)).unwrap();
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    assert!(
        !lab.director()
            .run(&["nft", "list", "tables"])
            .unwrap()
            .contains("lb_forward_")
    );

    // The tunnel endpoint was the first process started on real 0.
    lab.procs[0].signal("TERM").unwrap();
    let status = lab.procs[0].wait_timeout(Duration::from_secs(5)).unwrap();
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    let real = lab.real(0);
    assert!(
        !real
            .run(&["nft", "list", "tables"])
            .unwrap()
            .contains("lb_tunnel_")
    );
    assert!(
        real.run(&["ip", "link", "show", "lbtun0"]).is_err(),
        "the TUN device is gone"
    );
    assert_eq!(
        real.run(&["sysctl", "-n", "net.ipv4.conf.all.arp_ignore"])
            .unwrap()
            .trim(),
        "0"
    );
}
