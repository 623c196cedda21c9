//! Network namespaces, veth links and a bridged LAN of hosts.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::process::Proc;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A network namespace, deleted (after killing the processes still inside it) when dropped.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a namespace named `lb-TAG-PID-N` with `lo` up and IPv6 duplicate address
    /// detection off (addresses are usable at once).
    pub fn new(tag: &str) -> io::Result<Netns> {
        let name = format!(
            "lb-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run_checked(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Netns { name };
        ns.run(&["ip", "link", "set", "lo", "up"])?;
        for key in [
            "net.ipv6.conf.all.accept_dad",
            "net.ipv6.conf.default.accept_dad",
        ] {
            ns.run(&["sysctl", "-qw", &format!("{key}=0")])?;
        }
        Ok(ns)
    }

    /// The namespace's name (for `ip netns exec`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs `program` inside this namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// Runs `args` inside the namespace; its stdout, or an error with its stderr when it fails.
    pub fn run(&self, args: &[&str]) -> io::Result<String> {
        let (program, rest) = args
            .split_first()
            .ok_or_else(|| io::Error::other("empty command"))?;
        run_checked(self.command(program).args(rest))
    }

    /// Runs a `sh -c` script inside the namespace.
    pub fn sh(&self, script: &str) -> io::Result<String> {
        self.run(&["sh", "-c", script])
    }

    /// Starts `args` inside the namespace as a guarded process (killed when dropped).
    pub fn spawn(&self, args: &[&str]) -> io::Result<Proc> {
        let (program, rest) = args
            .split_first()
            .ok_or_else(|| io::Error::other("empty command"))?;
        Proc::spawn(self.command(program).args(rest))
    }

    /// Pids of the processes inside the namespace.
    pub fn pids(&self) -> Vec<u32> {
        Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Whatever a test started in here and did not reap: kill those pids, then the namespace.
        for pid in self.pids() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Moves the calling thread (only it: `setns` is per thread) into the namespace named `name`,
/// so that the sockets it opens live there. Run it on a thread of its own.
pub fn enter_netns(name: &str) -> io::Result<()> {
    let file = std::fs::File::open(format!("/run/netns/{name}"))?;
    nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(io::Error::from)
}

/// A veth pair created directly inside two namespaces: `a_if` in `a`, `b_if` in `b`, both up.
/// Interface names are per namespace, so plain names like `eth0` never collide between tests.
pub fn veth(a: &Netns, a_if: &str, b: &Netns, b_if: &str) -> io::Result<()> {
    run_checked(Command::new("ip").args([
        "link",
        "add",
        a_if,
        "netns",
        a.name(),
        "type",
        "veth",
        "peer",
        "name",
        b_if,
        "netns",
        b.name(),
    ]))?;
    a.run(&["ip", "link", "set", a_if, "up"])?;
    b.run(&["ip", "link", "set", b_if, "up"])?;
    Ok(())
}

/// An interface name of at most 15 bytes built from `prefix` and `n`.
pub fn ifname(prefix: &str, n: usize) -> String {
    let suffix = n.to_string();
    let keep = 15usize.saturating_sub(suffix.len()).min(prefix.len());
    format!("{}{suffix}", &prefix[..keep])
}

/// One host of a [`Lan`]: its namespace and its LAN interface's addresses.
#[derive(Debug)]
pub struct Host {
    /// The host's namespace.
    pub ns: Netns,
    /// The LAN interface inside `ns` (`eth0`).
    pub ifname: String,
    /// `10.0.0.(i+1)/24`.
    pub ipv4: Ipv4Addr,
    /// `fd00::(i+1)/64`.
    pub ipv6: Ipv6Addr,
    /// `02:00:00:00:00:(i+1)`.
    pub mac: [u8; 6],
}

/// Hosts on one Ethernet segment: a switch namespace holding bridge `br0`, and `n` host
/// namespaces each with `eth0` plugged into it. Host `i` has `10.0.0.(i+1)/24`, `fd00::(i+1)/64`
/// and MAC `02:00:00:00:00:(i+1)`; checksum and segmentation offloads are off when `ethtool` is
/// installed (frames on the wire are then complete and at most one MTU).
#[derive(Debug)]
pub struct Lan {
    /// The hosts, in order (dropped before the switch).
    pub hosts: Vec<Host>,
    /// The namespace holding the bridge.
    pub switch: Netns,
}

impl Lan {
    /// Builds the LAN; `tag` goes into the namespace names.
    pub fn new(tag: &str, n: usize) -> io::Result<Lan> {
        assert!(n < 250, "a /24 LAN");
        let switch = Netns::new(&format!("{tag}sw"))?;
        switch.run(&["ip", "link", "add", "br0", "type", "bridge"])?;
        switch.run(&["ip", "link", "set", "br0", "up"])?;
        let offloads = crate::require_tools(&["ethtool"]).is_ok();
        let mut hosts = Vec::with_capacity(n);
        for i in 0..n {
            let ns = Netns::new(&format!("{tag}{i}"))?;
            let last = u8::try_from(i + 1).expect("n < 250");
            let (ipv4, ipv6, mac) = plug(&switch, &ns, 0, last, offloads)?;
            hosts.push(Host {
                ns,
                ifname: "eth0".into(),
                ipv4,
                ipv6,
                mac,
            });
        }
        Ok(Lan { hosts, switch })
    }

    /// Plugs `hosts` (indices into [`Lan::hosts`]) into a second segment `n` (1-9): bridge
    /// `br{n}` in the switch namespace, and in each host `eth{n}` with `10.n.0.(i+1)/24`,
    /// `fd00:n::(i+1)/64` and MAC `02:00:00:00:0n:(i+1)`. [`Lan::port`] names a host's port
    /// on the bridge: setting it down takes the host's carrier away.
    pub fn add_segment(&self, n: u8, hosts: &[usize]) -> io::Result<()> {
        assert!((1..=9).contains(&n), "segments 1-9");
        let bridge = format!("br{n}");
        self.switch
            .run(&["ip", "link", "add", &bridge, "type", "bridge"])?;
        self.switch.run(&["ip", "link", "set", &bridge, "up"])?;
        let offloads = crate::require_tools(&["ethtool"]).is_ok();
        for &i in hosts {
            let last = u8::try_from(i + 1).expect("n < 250");
            plug(&self.switch, &self.hosts[i].ns, n, last, offloads)?;
        }
        Ok(())
    }

    /// The switch-side port of host `host` on segment `n` (0: the LAN itself).
    pub fn port(n: u8, host: usize) -> String {
        if n == 0 {
            ifname("p", host)
        } else {
            ifname(&format!("s{n}p"), host)
        }
    }
}

/// Connects `ns` to segment `n`'s bridge as host `last` (1-249): `eth{n}` with the segment's
/// addresses and MAC, checksum and segmentation offloads off with `offloads` (`ethtool`).
fn plug(
    switch: &Netns,
    ns: &Netns,
    n: u8,
    last: u8,
    offloads: bool,
) -> io::Result<(Ipv4Addr, Ipv6Addr, [u8; 6])> {
    let eth = format!("eth{n}");
    let port = Lan::port(n, usize::from(last) - 1);
    let bridge = format!("br{n}");
    veth(ns, &eth, switch, &port)?;
    switch.run(&["ip", "link", "set", &port, "master", &bridge])?;
    let mac = [2, 0, 0, 0, n, last];
    let mac_text = mac.map(|b| format!("{b:02x}")).join(":");
    let ipv4 = Ipv4Addr::new(10, n, 0, last);
    let ipv6 = Ipv6Addr::new(0xfd00, u16::from(n), 0, 0, 0, 0, 0, u16::from(last));
    ns.run(&["ip", "link", "set", &eth, "address", &mac_text])?;
    ns.run(&["ip", "addr", "add", &format!("{ipv4}/24"), "dev", &eth])?;
    ns.run(&[
        "ip",
        "-6",
        "addr",
        "add",
        &format!("{ipv6}/64"),
        "dev",
        &eth,
        "nodad",
    ])?;
    if offloads {
        ns.run(&[
            "ethtool", "-K", &eth, "tx", "off", "gso", "off", "gro", "off", "tso", "off",
        ])?;
    }
    Ok((ipv4, ipv6, mac))
}

fn run_checked(cmd: &mut Command) -> io::Result<String> {
    let out = cmd
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("running {cmd:?}: {e}")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(io::Error::other(format!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}
