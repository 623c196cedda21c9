//! An L4 load-balancing lab: a client, one or more directors and three real servers on one
//! Ethernet segment (a [`Lan`]), the `lb` package's example binaries, and small real peers
//! (Python's HTTP server, a UDP echo server that names its host, a UDP client).
//!
//! Client 10.0.0.1 / fd00::1; directors 10.0.0.2... / fd00::2...; then the reals. With one
//! director ([`Lab::new`]) it holds the VIPs 10.0.0.100 and fd00::100 on eth0 (so that it
//! answers ARP / ND for them); with several ([`Lab::with_directors`]) VRRP decides who holds them.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use crate::{Lan, Netns, Proc, wait_until};

/// The IPv4 VIP.
pub const VIP4: &str = "10.0.0.100";
/// The IPv6 VIP.
pub const VIP6: &str = "fd00::100";

/// The reals' gateway to the client in NAT mode when several directors share it by VRRP.
pub const GATEWAY4: &str = "10.0.0.254";
/// The IPv6 gateway, likewise.
pub const GATEWAY6: &str = "fd00::254";

/// An output stream of a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

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
#[derive(Debug)]
pub struct Lab {
    /// The processes started (dropped first).
    pub procs: Vec<Proc>,
    /// The hosts: 0 client, then the directors, then the three reals.
    pub lan: Lan,
    directors: usize,
    _dirs: Vec<TempDir>,
}

/// A directory removed when dropped.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Whether the lab can run here; prints why not.
pub fn skip(test: &str) -> bool {
    if crate::skip_unless_root(test) {
        return true;
    }
    if let Err(e) = crate::require_tools(&["python3", "curl", "nft", "ethtool"]) {
        eprintln!("skipping {test}: {e}");
        return true;
    }
    false
}

/// The path of an example binary of the `lb` package, built (once per name) for this run in
/// the profile of the running executable (a test, or an example such as the demo).
pub fn example(name: &str) -> Option<PathBuf> {
    static BUILT: OnceLock<Mutex<HashMap<String, bool>>> = OnceLock::new();
    // Test binaries live in target/<profile>/deps, examples in target/<profile>/examples.
    let exe = std::env::current_exe().ok()?;
    let profile_dir = exe.parent()?.parent()?.to_owned();
    let release = profile_dir.file_name().is_some_and(|p| p == "release");
    let mut built = BUILT.get_or_init(Mutex::default).lock().ok()?;
    let ok = *built.entry(name.to_owned()).or_insert_with(|| {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-q", "-p", "lb", "--example", name])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
        if release {
            cmd.arg("--release");
        }
        cmd.status().is_ok_and(|s| s.success())
    });
    let path = profile_dir.join("examples").join(name);
    (ok && path.exists()).then_some(path)
}

impl Lab {
    /// One director holding the VIPs, and three reals set up for `modes[i]`, each with an
    /// HTTP server on port 80 (serving `real-<i>`) and a UDP echo server on port 53 (answering
    /// `real-<i>`).
    pub fn new(tag: &str, modes: [Mode; 3]) -> io::Result<Lab> {
        let lab = Lab::with_directors(tag, 1, modes)?;
        let director = lab.director();
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
        Ok(lab)
    }

    /// `directors` directors (without the VIPs: VRRP places them) and three reals as in
    /// [`Lab::new`].
    pub fn with_directors(tag: &str, directors: usize, modes: [Mode; 3]) -> io::Result<Lab> {
        let lan = Lan::new(tag, 4 + directors)?;
        let mut lab = Lab {
            procs: Vec::new(),
            lan,
            directors,
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

    /// The (first) director's namespace.
    pub fn director(&self) -> &Netns {
        &self.lan.hosts[1].ns
    }

    /// Director `i`'s namespace (from 0).
    pub fn director_n(&self, i: usize) -> &Netns {
        &self.lan.hosts[1 + i].ns
    }

    /// Real `i`'s namespace (0-2).
    pub fn real(&self, i: usize) -> &Netns {
        &self.lan.hosts[1 + self.directors + i].ns
    }

    /// Real `i`'s IPv4 address.
    pub fn real_ipv4(&self, i: usize) -> std::net::Ipv4Addr {
        self.lan.hosts[1 + self.directors + i].ipv4
    }

    fn setup_real(&mut self, i: usize, mode: Mode) -> io::Result<()> {
        let name = format!("real-{i}");
        let dir = std::env::temp_dir().join(format!(
            "lb-lab-{}-{}-{i}",
            std::process::id(),
            self.lan.switch.name()
        ));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("index.html"), &name)?;
        let ns = &self.lan.hosts[1 + self.directors + i].ns;
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
                // Replies to the client go back through the director: the only one, or the
                // gateway VIP a VRRP pair holds (keepalived's classic LVS-NAT setup).
                let (gw4, gw6) = if self.directors == 1 {
                    ("10.0.0.2", "fd00::2")
                } else {
                    (GATEWAY4, GATEWAY6)
                };
                ns.run(&["ip", "route", "add", "10.0.0.1/32", "via", gw4])?;
                ns.run(&["ip", "-6", "route", "add", "fd00::1/128", "via", gw6])?;
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

    /// Starts example `name` in host `ns` with `args`, waits until a line of its `watch`
    /// stream contains `ready`, keeps it (killed when the lab drops) and returns its index in
    /// [`Lab::procs`]. The watched stream goes on being read (and dropped) so that the process
    /// never blocks on it; the other stays piped for the caller to take.
    pub fn spawn_example(
        &mut self,
        ns: usize,
        name: &str,
        args: &[&str],
        watch: Stream,
        ready: &str,
    ) -> io::Result<usize> {
        let bin = example(name)
            .ok_or_else(|| io::Error::other(format!("example {name} did not build")))?;
        let mut cmd = self.lan.hosts[ns].ns.command(&bin.to_string_lossy());
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut p = Proc::spawn(&mut cmd)?;
        let pipe: Box<dyn std::io::Read + Send> = match watch {
            Stream::Stdout => p.child_mut().stdout.take().map(|o| Box::new(o) as _),
            Stream::Stderr => p.child_mut().stderr.take().map(|e| Box::new(e) as _),
        }
        .ok_or_else(|| io::Error::other("no output pipe"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        let marker = ready.to_owned();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send((line.contains(&marker), line));
            }
        });
        let mut seen = String::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok((true, _)) => break,
                Ok((false, line)) => {
                    seen.push_str(&line);
                    seen.push('\n');
                }
                Err(_) => {
                    return Err(io::Error::other(format!(
                        "{name} did not become ready: {seen}"
                    )));
                }
            }
        }
        self.procs.push(p);
        Ok(self.procs.len() - 1)
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
v6=':' in a
s=socket.socket(socket.AF_INET6 if v6 else socket.AF_INET,socket.SOCK_DGRAM)
if v6:
    s.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_V6ONLY,1)
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
