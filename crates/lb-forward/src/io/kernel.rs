//! What the forwarder asks of the host: interface facts, offloads off, and the nftables rules
//! that stop the kernel from acting on the packets the forwarder handles.

use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, Stdio};

use crate::service::{InterfaceConfig, Method, ServiceKey};
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
/// captured frames carry complete checksums and are at most one MTU long.
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
/// - packets to each service's VIP and port (the forwarder handles them; otherwise a host that
///   holds the VIP would answer them, for example with a TCP reset);
/// - NAT replies from each NAT real's address and port (the forwarder rewrites them; otherwise
///   a host with forwarding on would route them unchanged).
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
            rules.push_str(&format!("    {}\n", match_service(&svc.key)));
            for r in &svc.reals {
                if r.config.method == Method::Nat {
                    let port = match r.config.addr.port() {
                        0 => svc.key.port,
                        p => p,
                    };
                    let fam = family(r.config.addr.ip());
                    let proto = svc.key.protocol.name();
                    let sport = if port == 0 {
                        format!("meta l4proto {proto}")
                    } else {
                        format!("{proto} sport {port}")
                    };
                    rules.push_str(&format!(
                        "    {fam} saddr {} {sport} drop\n",
                        r.config.addr.ip()
                    ));
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

fn match_service(key: &ServiceKey) -> String {
    let proto = key.protocol.name();
    let port = if key.port == 0 {
        format!("meta l4proto {proto}")
    } else {
        format!("{proto} dport {}", key.port)
    };
    format!("{} daddr {} {port} drop", family(key.vip), key.vip)
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
