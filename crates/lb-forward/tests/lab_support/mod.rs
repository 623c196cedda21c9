//! The lab the forwarder's lab tests share: a client, a director and three real servers on one
//! Ethernet segment (an lb-lab bridge), the example binaries, and small real peers (Python's
//! HTTP server, a UDP echo server that names its host, a UDP client).
//!
//! Client 10.0.0.1 / fd00::1, director 10.0.0.2 / fd00::2 (holding the VIPs 10.0.0.100 and
//! fd00::100 on eth0, so that it answers ARP / ND for them), reals 10.0.0.3-5 / fd00::3-5.

#![allow(dead_code, unreachable_pub)]

use std::io;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use lb_lab::{Lan, Netns, Proc, wait_until};

/// The IPv4 VIP.
pub const VIP4: &str = "10.0.0.100";
/// The IPv6 VIP.
pub const VIP6: &str = "fd00::100";

/// How a real server is set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The VIPs on lo, ARP for them suppressed.
    Dr,
    /// Replies to the client routed through the director.
    Nat,
    /// A tunnel endpoint holding the VIPs (GUE on 6080 too).
    Tun,
}

/// The lab with its guards: dropping it kills every process and deletes the namespaces.
pub struct Lab {
    /// The processes started (dropped first).
    pub procs: Vec<Proc>,
    /// The stdout lines of the forwarders, by process index.
    outputs: std::collections::HashMap<usize, std::sync::mpsc::Receiver<String>>,
    /// The hosts: 0 client, 1 director, 2-4 reals.
    pub lan: Lan,
    _dirs: Vec<TempDir>,
}

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Whether the lab can run here; prints why not.
pub fn skip(test: &str) -> bool {
    if lb_lab::skip_unless_root(test) {
        return true;
    }
    if let Err(e) = lb_lab::require_tools(&["python3", "curl", "nft", "ethtool"]) {
        eprintln!("skipping {test}: {e}");
        return true;
    }
    if example("forwarder").is_none() {
        eprintln!("skipping {test}: the examples did not build");
        return true;
    }
    false
}

/// The path of an example binary of the `lb` package, built (once) for this test run.
pub fn example(name: &str) -> Option<PathBuf> {
    static BUILT: OnceLock<bool> = OnceLock::new();
    let ok = *BUILT.get_or_init(|| {
        Command::new(env!("CARGO"))
            .args([
                "build",
                "-q",
                "-p",
                "lb",
                "--example",
                "forwarder",
                "--example",
                "tunnel_endpoint",
            ])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
            .status()
            .is_ok_and(|s| s.success())
    });
    // Test binaries live in target/<profile>/deps; examples in target/<profile>/examples.
    let deps = std::env::current_exe().ok()?;
    let path = deps.parent()?.parent()?.join("examples").join(name);
    (ok && path.exists()).then_some(path)
}

impl Lab {
    /// Builds the LAN and sets each real up for `modes[i]` with an HTTP server on port 80
    /// (serving `real-<i>`) and a UDP echo server on port 53 (answering `real-<i>`).
    pub fn new(tag: &str, modes: [Mode; 3]) -> io::Result<Lab> {
        let lan = Lan::new(tag, 5)?;
        let director = &lan.hosts[1].ns;
        director.run(&["ip", "addr", "add", &format!("{VIP4}/32"), "dev", "eth0"])?;
        director.run(&[
            "ip",
            "-6",
            "addr",
            "add",
            &format!("{VIP6}/128"),
            "dev",
            "eth0",
            "nodad",
        ])?;
        let mut lab = Lab {
            procs: Vec::new(),
            outputs: std::collections::HashMap::new(),
            lan,
            _dirs: Vec::new(),
        };
        for (i, mode) in modes.into_iter().enumerate() {
            lab.setup_real(i, mode)?;
        }
        Ok(lab)
    }

    /// The client's namespace.
    pub fn client(&self) -> &Netns {
        &self.lan.hosts[0].ns
    }

    /// The director's namespace.
    pub fn director(&self) -> &Netns {
        &self.lan.hosts[1].ns
    }

    /// Real `i`'s namespace (0-2).
    pub fn real(&self, i: usize) -> &Netns {
        &self.lan.hosts[2 + i].ns
    }

    fn setup_real(&mut self, i: usize, mode: Mode) -> io::Result<()> {
        let name = format!("real-{i}");
        let dir = std::env::temp_dir().join(format!(
            "lb-forward-lab-{}-{}-{i}",
            std::process::id(),
            self.lan.switch.name()
        ));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("index.html"), &name)?;
        let ns = &self.lan.hosts[2 + i].ns;
        let bind_udp = match mode {
            Mode::Dr => {
                ns.run(&["ip", "addr", "add", &format!("{VIP4}/32"), "dev", "lo"])?;
                ns.run(&[
                    "ip",
                    "-6",
                    "addr",
                    "add",
                    &format!("{VIP6}/128"),
                    "dev",
                    "lo",
                    "nodad",
                ])?;
                for k in ["all", "eth0"] {
                    ns.run(&["sysctl", "-qw", &format!("net.ipv4.conf.{k}.arp_ignore=1")])?;
                    ns.run(&[
                        "sysctl",
                        "-qw",
                        &format!("net.ipv4.conf.{k}.arp_announce=2"),
                    ])?;
                }
                true
            }
            Mode::Nat => {
                ns.run(&["ip", "route", "add", "10.0.0.1/32", "via", "10.0.0.2"])?;
                ns.run(&["ip", "-6", "route", "add", "fd00::1/128", "via", "fd00::2"])?;
                false
            }
            Mode::Tun => {
                let tun = example("tunnel_endpoint")
                    .ok_or_else(|| io::Error::other("no tunnel_endpoint"))?;
                let tun = tun.to_string_lossy().into_owned();
                let p = ns.spawn(&[
                    &tun,
                    "--interface",
                    "eth0",
                    "--vip",
                    VIP4,
                    "--vip",
                    VIP6,
                    "--gue-port",
                    "6080",
                ])?;
                self.procs.push(p);
                // The endpoint's device must hold the VIPs before servers bind to them.
                let ready = wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
                    ns.run(&["ip", "-br", "addr", "show", "dev", "lbtun0"])
                        .ok()
                        .filter(|o| o.contains(VIP4) && o.contains(VIP6))
                });
                if ready.is_none() {
                    return Err(io::Error::other("tunnel_endpoint did not come up"));
                }
                true
            }
        };
        let http = Proc::spawn(
            ns.command("python3")
                .args(["-m", "http.server", "80", "--bind", "::", "--directory"])
                .arg(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )?;
        self.procs.push(http);
        for vip in [VIP4, VIP6] {
            let bind = if bind_udp {
                vip
            } else if vip.contains(':') {
                "::"
            } else {
                "0.0.0.0"
            };
            let udp = Proc::spawn(
                ns.command("python3")
                    .args(["-c", UDP_ECHO, bind, "53", &name]),
            )?;
            self.procs.push(udp);
        }
        let line = Proc::spawn(ns.command("python3").args(["-c", LINE_SERVER, "7", &name]))?;
        self.procs.push(line);
        self._dirs.push(TempDir(dir));
        // Wait for the HTTP server to listen.
        let up = wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
            ns.run(&["sh", "-c", "ss -ltn | grep -q ':80 '"]).ok()
        });
        if up.is_none() {
            return Err(io::Error::other("http server did not start"));
        }
        Ok(())
    }

    /// Starts the forwarder example in the director with these arguments (after
    /// `--interface eth0`), and waits until it is ready.
    pub fn forwarder(&mut self, args: &[&str]) -> io::Result<usize> {
        let bin = example("forwarder").ok_or_else(|| io::Error::other("no forwarder"))?;
        let mut cmd = self.director().command(&bin.to_string_lossy());
        cmd.args(["--interface", "eth0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut p = Proc::spawn(&mut cmd)?;
        let stderr = p
            .child_mut()
            .stderr
            .take()
            .ok_or_else(|| io::Error::other("no stderr"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads stderr to the end (so the process never blocks on a full pipe), reporting
        // whether "ready" came, or what came before the process ended.
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut seen = String::new();
            let mut told = false;
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if !told {
                    seen.push_str(&line);
                    seen.push('\n');
                    if line.contains("ready") {
                        let _ = tx.send(Ok(()));
                        told = true;
                    }
                }
            }
            if !told {
                let _ = tx.send(Err(seen));
            }
        });
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Ok(())) => {}
            Ok(Err(seen)) => return Err(io::Error::other(format!("forwarder exited: {seen}"))),
            Err(_) => return Err(io::Error::other("forwarder not ready after 20 s")),
        }
        let stdout = p
            .child_mut()
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("no stdout"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        self.procs.push(p);
        self.outputs.insert(self.procs.len() - 1, rx);
        Ok(self.procs.len() - 1)
    }

    /// The statistics table of forwarder `idx` (asked for with SIGUSR1), waiting up to 10 s.
    pub fn stats(&self, idx: usize) -> io::Result<String> {
        let rx = self
            .outputs
            .get(&idx)
            .ok_or_else(|| io::Error::other("not a forwarder"))?;
        while rx.try_recv().is_ok() {}
        self.procs[idx].signal("USR1")?;
        let mut table = String::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(line) => {
                    table.push_str(&line);
                    table.push('\n');
                    if line.starts_with("drops:") {
                        return Ok(table);
                    }
                }
                Err(_) => break,
            }
        }
        Err(io::Error::other(format!("no statistics table: {table}")))
    }

    /// Packets in and out of forwarder `idx`'s service (its table's first service line).
    pub fn packets_in_out(&self, idx: usize) -> io::Result<(u64, u64)> {
        let table = self.stats(idx)?;
        let line = table
            .lines()
            .find(|l| l.starts_with("tcp:") || l.starts_with("udp:"))
            .ok_or_else(|| io::Error::other(format!("no service line: {table}")))?;
        let cols: Vec<&str> = line.split_whitespace().collect();
        let num = |i: usize| -> io::Result<u64> {
            cols.get(i)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| io::Error::other(format!("bad service line: {line}")))
        };
        Ok((num(2)?, num(3)?))
    }

    /// `curl` from the client; the body (the real's name).
    pub fn http_get(&self, url: &str) -> io::Result<String> {
        self.client()
            .run(&["curl", "-sS", "--max-time", "5", "-g", url])
    }

    /// Sends one UDP datagram from a fresh port of the client to `vip`:`port` and returns the
    /// answer (from a socket connected to the VIP, so an answer from any other source is not
    /// accepted).
    pub fn udp_query(&self, vip: &str, port: u16) -> io::Result<String> {
        self.client()
            .run(&["python3", "-c", UDP_QUERY, vip, &port.to_string()])
    }
}

/// A UDP echo server: answers each datagram with its host's name.
const UDP_ECHO: &str = "import socket,sys
a,p,n=sys.argv[1],int(sys.argv[2]),sys.argv[3].encode()
s=socket.socket(socket.AF_INET6 if ':' in a else socket.AF_INET,socket.SOCK_DGRAM)
s.bind((a,p))
while True:
    d,peer=s.recvfrom(4096)
    s.sendto(n,peer)
";

/// A TCP server on every address: answers each line with its host's name, per connection.
const LINE_SERVER: &str = "import socket,sys,threading
p,n=int(sys.argv[1]),sys.argv[2].encode()
s=socket.socket(socket.AF_INET6,socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)
s.bind(('::',p))
s.listen(64)
def serve(c):
    f=c.makefile('rb')
    for _ in f:
        c.sendall(n+b'\\n')
while True:
    c,_=s.accept()
    threading.Thread(target=serve,args=(c,),daemon=True).start()
";

/// A UDP client: one query, up to three tries, prints the answer.
const UDP_QUERY: &str = "import socket,sys
a,p=sys.argv[1],int(sys.argv[2])
s=socket.socket(socket.AF_INET6 if ':' in a else socket.AF_INET,socket.SOCK_DGRAM)
s.connect((a,p))
s.settimeout(1.5)
for _ in range(3):
    s.send(b'who')
    try:
        print(s.recv(4096).decode(),end='')
        sys.exit(0)
    except socket.timeout:
        pass
sys.exit(1)
";

/// Counts answers per real name.
pub fn tally(answers: &[String]) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    for a in answers {
        *m.entry(a.trim().to_owned()).or_insert(0) += 1;
    }
    m
}
