//! What the forwarder asks of the host: interface facts, offloads off, and the nftables rules
//! that stop the kernel from acting on the packets the forwarder handles.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::{Command, Stdio};

use crate::service::{InterfaceConfig, MatchKey, Method};
use crate::{Error, Forwarder, Scheduler};

/// The index, MAC, MTU and first IPv4 / IPv6 addresses of an interface (for tunnel sources).
pub fn interface(name: &str) -> Result<InterfaceConfig, Error> {
    let found = pnet_datalink::interfaces()
        .into_iter()
        .find(|i| i.name == name)
        .ok_or_else(|| {
            Error::io(
                format!("interface {name}"),
                std::io::ErrorKind::NotFound.into(),
            )
        })?;
    let mac = found.mac.map(|m| m.octets()).ok_or(Error::Invalid {
        what: "interface",
        why: "an Ethernet interface with a MAC address",
    })?;
    // From rtnetlink rather than /sys, which shows the namespace sysfs was mounted in, not the
    // caller's.
    let mtu = super::NextHopResolver::new()?
        .link_mtu(found.index)?
        .min(u32::from(u16::MAX)) as u16;
    let ipv4 = found.ips.iter().find_map(|n| match n.ip() {
        IpAddr::V4(a) => Some(a),
        IpAddr::V6(_) => None,
    });
    // A global address: tunnel packets leave the link.
    let ipv6 = found.ips.iter().find_map(|n| match n.ip() {
        IpAddr::V6(a) if (a.segments()[0] & 0xffc0) != 0xfe80 => Some(a),
        _ => None,
    });
    Ok(InterfaceConfig {
        index: found.index,
        mac,
        mtu,
        ipv4,
        ipv6,
    })
}

/// Turns checksum offload and segmentation offloads off on an interface (`ethtool -K`), so that
/// the frames the host's own stack and GRO hand to capture sockets on it carry complete
/// checksums and are at most one MTU long. A veth peer's offloads are the peer's: its partial
/// checksums are flagged by the backends and completed by the core
/// ([`Frame::partial_checksum`](crate::Frame)); its GSO frames exceed the receive buffers and
/// are dropped as truncated, counted.
pub fn disable_offloads(name: &str) -> Result<(), Error> {
    let out = Command::new("ethtool")
        .args([
            "-K", name, "rx", "off", "tx", "off", "gso", "off", "gro", "off", "tso", "off",
        ])
        .output()
        .map_err(|e| Error::io("running ethtool", e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::io(
            format!("ethtool -K {name}"),
            std::io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
        ))
    }
}

/// An nftables table the forwarder installs and removes (on drop), named
/// `lb_forward_<pid>`, with one `prerouting` chain at the raw priority (-300) that drops:
/// - packets to each service's VIP and port, and those of each firewall-mark service's match
///   keys (the forwarder handles them; otherwise a host that holds the VIP would answer them,
///   for example with a TCP reset);
/// - NAT replies from each NAT real's address and port that are not addressed to this host (the
///   forwarder rewrites them; otherwise a host with forwarding on would route them unchanged):
///   for a firewall-mark service, from the real's port, or from the ports of each match key
///   when the real keeps the port. Replies to the host's own connections to a real (a health
///   check of its service port) still reach the host's stack (`fib daddr type != local`).
///
/// Capture sockets see frames before netfilter, so the forwarder still gets them. ARP and
/// neighbour discovery are not touched: the host still answers for the VIP.
#[derive(Debug)]
pub struct KernelRules {
    table: String,
    installed: bool,
}

impl KernelRules {
    /// The rule lines for the forwarder's current services and reals.
    pub fn forwarder_rules<S: Scheduler>(fw: &Forwarder<S>) -> String {
        let mut rules = String::new();
        for svc in fw.status() {
            // What the service takes: protocol, destination and destination ports.
            let keys: Vec<MatchKey> = if svc.key.is_fwmark() {
                svc.matches.clone()
            } else {
                let any = MatchKey::host(svc.key.protocol, svc.key.vip);
                vec![match svc.key.port {
                    0 => any,
                    p => any.ports(p, p),
                }]
            };
            for key in &keys {
                let dst = format!("{} daddr {}", family(key.addr), network(key));
                rules.push_str(&format!("    {dst} {} drop\n", ports(key, "dport")));
            }
            for r in svc.reals.iter().filter(|r| r.config.method == Method::Nat) {
                let src = format!(
                    "{} saddr {}",
                    family(r.config.addr.ip()),
                    r.config.addr.ip()
                );
                let mut seen = Vec::new();
                for key in &keys {
                    let sport = match r.config.addr.port() {
                        0 => ports(key, "sport"),
                        p => ports(&key.ports(p, p), "sport"),
                    };
                    if !seen.contains(&sport) {
                        rules
                            .push_str(&format!("    {src} {sport} fib daddr type != local drop\n"));
                        seen.push(sport);
                    }
                }
            }
        }
        rules
    }

    /// Installs the rules for `fw` in a table named `lb_forward_<pid>`.
    pub fn install<S: Scheduler>(fw: &Forwarder<S>) -> Result<KernelRules, Error> {
        Self::install_rules("lb_forward", &Self::forwarder_rules(fw))
    }

    /// Installs `rules` (lines of an nftables chain) in the prerouting chain of a table named
    /// `<prefix>_<pid>`.
    pub fn install_rules(prefix: &str, rules: &str) -> Result<KernelRules, Error> {
        let mut k = KernelRules {
            table: format!("{prefix}_{}", std::process::id()),
            installed: false,
        };
        k.update_rules(rules)?;
        Ok(k)
    }

    /// Replaces the rules with those for `fw`'s current services (after a change).
    pub fn update<S: Scheduler>(&mut self, fw: &Forwarder<S>) -> Result<(), Error> {
        self.update_rules(&Self::forwarder_rules(fw))
    }

    /// Replaces the chain's rules.
    pub fn update_rules(&mut self, rules: &str) -> Result<(), Error> {
        let mut script = String::new();
        if self.installed {
            script.push_str(&format!("delete table inet {}\n", self.table));
        }
        script.push_str(&format!(
            "table inet {} {{\n  chain prerouting {{\n    type filter hook prerouting priority -300; policy accept;\n{rules}  }}\n}}\n",
            self.table
        ));
        nft(&script)?;
        self.installed = true;
        Ok(())
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Removes the table now.
    pub fn remove(&mut self) -> Result<(), Error> {
        if self.installed {
            nft(&format!("delete table inet {}\n", self.table))?;
            self.installed = false;
        }
        Ok(())
    }
}

impl Drop for KernelRules {
    fn drop(&mut self) {
        let _ = self.remove();
    }
}

fn family(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "ip",
        IpAddr::V6(_) => "ip6",
    }
}

/// `10.0.0.100` or `10.0.0.0/24`.
fn network(key: &MatchKey) -> String {
    let full = if key.addr.is_ipv6() { 128 } else { 32 };
    if key.prefix_len >= full {
        return key.addr.to_string();
    }
    // nft refuses a prefix with host bits set.
    let bits = key.prefix_len;
    let net = match key.addr {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(
            u32::from(a) & u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0),
        )),
        IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(
            u128::from(a) & u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0),
        )),
    };
    format!("{net}/{bits}")
}

/// `tcp dport 80`, `tcp dport 80-90`, or `meta l4proto tcp` for every port (`field` is
/// `dport` or `sport`).
fn ports(key: &MatchKey, field: &str) -> String {
    let proto = key.protocol.name();
    match (key.first_port, key.last_port) {
        (0, u16::MAX) => format!("meta l4proto {proto}"),
        (a, b) if a == b => format!("{proto} {field} {a}"),
        (a, b) => format!("{proto} {field} {a}-{b}"),
    }
}

fn nft(script: &str) -> Result<(), Error> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::io("running nft", e))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| Error::io("writing to nft", e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::io("running nft", e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::io(
            "nft",
            std::io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
        ))
    }
}
