//! The real server's tunnel endpoint: captures IPIP / IP6IP6 / GUE frames on an interface,
//! decapsulates those addressed to its VIPs and writes the inner packets to a TUN device that
//! holds the VIPs, so the host's stack answers them (from the VIP, by normal routing).

use std::net::IpAddr;
use std::process::Command;
use std::time::Duration;

use super::{KernelRules, PacketIo, PnetIo};
use crate::decap::decapsulate;
use crate::{Error, Frame};

/// Counters of a [`TunnelEndpoint`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// Frames captured.
    pub received: u64,
    /// Inner packets written to the TUN device.
    pub decapsulated: u64,
    /// Tunnelled packets for an address that is not one of the VIPs.
    pub not_ours: u64,
    /// Tunnelled frames with inconsistent headers.
    pub malformed: u64,
    /// Inner packets the TUN device refused.
    pub write_errors: u64,
}

/// A userspace IPIP / IP6IP6 / GUE decapsulator feeding a TUN device.
///
/// It installs, and removes when dropped: the TUN device (with the VIPs as /32 and /128
/// addresses and reverse-path filtering off, since inner packets come from clients routed
/// elsewhere); an nftables table `lb_tunnel_<pid>` that drops the tunnel packets in the
/// kernel (which has no tunnel driver and would answer "protocol unreachable"); and, as every
/// LVS-TUN real needs, `net.ipv4.conf.all.arp_ignore=1` and `arp_announce=2` so that the host
/// does not answer ARP for the VIPs it now holds (the previous values come back on drop).
///
/// Reverse-path filtering is turned off on the TUN device only; a host-wide strict setting
/// (`net.ipv4.conf.all.rp_filter=1`) still wins and drops the inner packets, so such a host
/// needs loose mode (2).
pub struct TunnelEndpoint {
    tun: tun_rs::SyncDevice,
    tun_name: String,
    capture: PnetIo,
    vips: Vec<IpAddr>,
    gue_port: Option<u16>,
    frames: Vec<Frame>,
    rules: KernelRules,
    stats: EndpointStats,
    /// Sysctls changed, with the values to restore.
    restore: Vec<(String, String)>,
}

impl Drop for TunnelEndpoint {
    fn drop(&mut self) {
        for (path, value) in &self.restore {
            let _ = std::fs::write(path, value);
        }
    }
}

/// Sets a sysctl file, returning its previous value.
fn set_sysctl(path: &str, value: &str) -> Result<(String, String), Error> {
    let old = std::fs::read_to_string(path).map_err(|e| Error::io(format!("reading {path}"), e))?;
    std::fs::write(path, value).map_err(|e| Error::io(format!("writing {path}"), e))?;
    Ok((path.to_owned(), old.trim().to_owned()))
}

fn run(args: &[&str]) -> Result<(), Error> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| Error::io(format!("running {}", args[0]), e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::io(
            args.join(" "),
            std::io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
        ))
    }
}

impl TunnelEndpoint {
    /// Creates the TUN device `tun_name` holding `vips`, and captures tunnelled frames on
    /// `interface` (GUE on `gue_port` when given).
    pub fn open(
        interface: &str,
        tun_name: &str,
        vips: &[IpAddr],
        gue_port: Option<u16>,
    ) -> Result<TunnelEndpoint, Error> {
        let tun = tun_rs::DeviceBuilder::new()
            .name(tun_name)
            .packet_information(false)
            .build_sync()
            .map_err(|e| Error::io(format!("creating TUN device {tun_name}"), e))?;
        run(&["ip", "link", "set", tun_name, "up"])?;
        for vip in vips {
            match vip {
                IpAddr::V4(a) => run(&["ip", "addr", "add", &format!("{a}/32"), "dev", tun_name])?,
                IpAddr::V6(a) => run(&[
                    "ip",
                    "-6",
                    "addr",
                    "add",
                    &format!("{a}/128"),
                    "dev",
                    tun_name,
                    "nodad",
                ])?,
            }
        }
        // Inner packets come from clients whose route is not via the TUN device.
        let _ = std::fs::write(format!("/proc/sys/net/ipv4/conf/{tun_name}/rp_filter"), "0");
        let mut rules = String::from("    ip protocol ipip drop\n    ip6 nexthdr ipv6 drop\n");
        if let Some(port) = gue_port {
            rules.push_str(&format!("    udp dport {port} drop\n"));
        }
        let rules = KernelRules::install_rules("lb_tunnel", &rules)?;
        let capture = PnetIo::open(&[interface.to_owned()])
            .map_err(|e| Error::io(format!("capturing on {interface}"), e))?;
        // Last, so that nothing fails after the host's settings changed.
        let restore = vec![
            set_sysctl("/proc/sys/net/ipv4/conf/all/arp_ignore", "1")?,
            set_sysctl("/proc/sys/net/ipv4/conf/all/arp_announce", "2")?,
        ];
        Ok(TunnelEndpoint {
            tun,
            tun_name: tun_name.to_owned(),
            capture,
            vips: vips.to_vec(),
            gue_port,
            frames: (0..64).map(|_| Frame::default()).collect(),
            rules,
            stats: EndpointStats::default(),
            restore,
        })
    }

    /// The TUN device's name.
    pub fn tun_name(&self) -> &str {
        &self.tun_name
    }

    /// The nftables table it installed.
    pub fn rules(&self) -> &KernelRules {
        &self.rules
    }

    /// The counters.
    pub fn stats(&self) -> EndpointStats {
        self.stats
    }

    /// Handles one batch of captured frames, waiting up to `timeout` for them.
    pub fn poll(&mut self, timeout: Option<Duration>) -> std::io::Result<usize> {
        let n = self.capture.recv_batch(&mut self.frames, timeout)?;
        for frame in &self.frames[..n] {
            self.stats.received += 1;
            match decapsulate(frame.bytes(), self.gue_port) {
                Ok(Some(d)) if self.vips.contains(&d.inner_dst) => {
                    match self.tun.send(&frame.bytes()[d.inner]) {
                        Ok(_) => self.stats.decapsulated += 1,
                        Err(_) => self.stats.write_errors += 1,
                    }
                }
                Ok(Some(_)) => self.stats.not_ours += 1,
                Ok(None) => {}
                Err(_) => self.stats.malformed += 1,
            }
        }
        Ok(n)
    }
}
