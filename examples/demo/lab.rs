//! The demo's scenario in a network-namespace lab (root): two `director` processes running
//! examples/demo/keepalived.conf (`-i a`, `-i b`), three reals with Python HTTP servers, and a
//! client issuing a request every few milliseconds, all on one bridge.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lb_lab::l4::{Lab, Mode, Stream, VIP4, example};
use lb_lab::{Proc, wait_until};

use super::{Phase, Scenario, Summary};

/// Why the lab cannot run here, if it cannot.
pub(crate) fn unavailable() -> Option<String> {
    if !lb_lab::is_root() {
        return Some("not root: network namespaces need root".into());
    }
    lb_lab::require_tools(&["ip", "python3", "curl", "nft", "ethtool"]).err()
}

/// A client in its namespace: one HTTP GET every `interval`, printing `<ms> <body>` or
/// `<ms> FAIL` per request.
const CLIENT: &str = "import sys,time,urllib.request
url,gap=sys.argv[1],float(sys.argv[2])
t0=time.monotonic()
while True:
    t=time.monotonic()
    try:
        body=urllib.request.urlopen(url,timeout=0.5).read().decode().strip()
    except Exception:
        body='FAIL'
    print(int((t-t0)*1000),body,flush=True)
    time.sleep(max(0.0,gap-(time.monotonic()-t)))
";

fn list(socket: &PathBuf) -> String {
    let Some(bin) = example("director") else {
        return String::new();
    };
    std::process::Command::new(bin)
        .args(["list", "--control"])
        .arg(socket)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Runs the scenario in the lab.
pub(crate) fn run(scenario: &Scenario) -> Result<Summary, String> {
    let e = |e: std::io::Error| e.to_string();
    println!(
        "demo: building the lab (client 10.0.0.1, directors 10.0.0.2-3, reals 10.0.0.4-6, VIP {VIP4})"
    );
    let mut lab = Lab::with_directors("demo", 2, [Mode::Dr; 3]).map_err(e)?;
    let conf = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/demo/keepalived.conf"
    ));
    let sockets: Vec<PathBuf> = ["a", "b"]
        .iter()
        .map(|n| std::env::temp_dir().join(format!("lb-demo-{}-{n}.sock", std::process::id())))
        .collect();
    let mut directors = Vec::new();
    for (i, name) in ["a", "b"].iter().enumerate() {
        let conf = conf.display().to_string();
        let sock = sockets[i].display().to_string();
        let args = ["-f", conf.as_str(), "-i", name, "--control", sock.as_str()];
        directors.push(
            lab.spawn_example(1 + i, "director", &args, Stream::Stdout, "running")
                .map_err(e)?,
        );
        println!(
            "demo: director {name} started (director {})",
            args.join(" ")
        );
    }
    let master = wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
        sockets
            .iter()
            .position(|s| list(s).contains("VRRP VI_1 MASTER"))
    })
    .ok_or("no director became master")?;
    println!(
        "demo: director {} is master; `director list` on it says:\n{}",
        ["a", "b"][master],
        list(&sockets[master])
    );

    let url = format!("http://{VIP4}/");
    let gap = scenario.request_interval.as_secs_f64().to_string();
    let mut client = Proc::spawn(
        lab.lan.hosts[0]
            .ns
            .command("python3")
            .args(["-c", CLIENT, &url, &gap])
            .stdout(Stdio::piped()),
    )
    .map_err(e)?;
    let stdout = client.child_mut().stdout.take().ok_or("no client output")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    let start = Instant::now();
    let mut summary = Summary::default();
    let mut phase = 0usize;
    let mut killed: Option<Instant> = None;
    let mut last_print = Instant::now();
    let mut window = Phase::default();
    let mut blocked = false;
    while start.elapsed() < scenario.end() - scenario.warmup {
        let now = start.elapsed() + scenario.warmup;
        while phase < scenario.phases.len() && now >= scenario.phases[phase].start {
            let p = &scenario.phases[phase];
            println!("{:>8.3}  -- {} --", now.as_secs_f64(), p.name);
            if p.kill_master {
                lab.procs[directors[master]].signal("KILL").map_err(e)?;
                lab.director_n(master)
                    .run(&["ip", "link", "set", "eth0", "down"])
                    .map_err(e)?;
                killed = Some(Instant::now());
                println!(
                    "{:>8.3}  director {} killed (SIGKILL, link down)",
                    now.as_secs_f64(),
                    ["a", "b"][master]
                );
            }
            summary.phases.push(Phase {
                name: p.name.clone(),
                ..Phase::default()
            });
            phase += 1;
        }
        let down = scenario.real_down(scenario.down.0, now);
        if down != blocked {
            let real = lab.real(scenario.down.0);
            let script = if down {
                "nft add table inet demo; nft add chain inet demo input '{ type filter hook input priority 0; }'; nft add rule inet demo input tcp dport 80 reject with tcp reset"
            } else {
                "nft delete table inet demo"
            };
            real.sh(script).map_err(e)?;
            blocked = down;
            println!(
                "{:>8.3}  real 10.0.0.{} {}",
                now.as_secs_f64(),
                4 + scenario.down.0,
                if down {
                    "stops serving (its port 80 now refuses)"
                } else {
                    "serves again"
                }
            );
        }
        if let Some(t) = killed {
            let survivor = &sockets[1 - master];
            if list(survivor).contains("VRRP VI_1 MASTER") {
                summary.takeover = Some(t.elapsed());
                println!(
                    "{:>8.3}  director {} is master ({:.3} s after the kill, as seen by polling)",
                    now.as_secs_f64(),
                    ["a", "b"][1 - master],
                    t.elapsed().as_secs_f64()
                );
                killed = None;
            }
        }
        while let Ok(line) = rx.try_recv() {
            let body = line.split_once(' ').map_or("", |(_, b)| b);
            let slot = body
                .strip_prefix("real-")
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|n| *n < 3);
            for p in summary
                .phases
                .last_mut()
                .into_iter()
                .chain(Some(&mut window))
            {
                match slot {
                    Some(r) => p.per_real[r] += 1,
                    None => p.failed += 1,
                }
            }
        }
        if last_print.elapsed() >= Duration::from_secs(1) {
            println!(
                "{:>8.3}  last second: 10.0.0.4 {:>3}  10.0.0.5 {:>3}  10.0.0.6 {:>3}  failed {:>3}",
                now.as_secs_f64(),
                window.per_real[0],
                window.per_real[1],
                window.per_real[2],
                window.failed
            );
            window = Phase::default();
            last_print = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    println!(
        "demo: the surviving director's table:\n{}",
        list(&sockets[1 - master])
    );
    drop(client);
    for s in &sockets {
        let _ = std::fs::remove_file(s);
    }
    Ok(summary)
}
