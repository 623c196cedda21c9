//! Virtual MACs (keepalived `use_vmac`): a private-mode macvlan per router with the MAC
//! `00-00-5e-00-01-VRID` (IPv4) or `00-00-5e-00-02-VRID` (IPv6) (RFC 9568 §7.3) carries the
//! router's adverts, announcements and virtual addresses, so neighbours keep one MAC for the
//! virtual addresses across failovers.
//!
//! Set up as keepalived 2.2.7 does (`keepalived/vrrp/vrrp_vmac.c`):
//! - IPv4 (`vrrp.VRID`): `arp_ignore` 1 and `arp_announce` 2 on the parent and the macvlan, so
//!   each answers ARP only for its own addresses and never announces a virtual address with
//!   the parent's MAC.
//! - IPv6 (`vrrp6.VRID`): IPv6 enabled (`disable_ipv6` 0) with `addr_gen_mode` 1 (none) before
//!   the link goes up, so the macvlan gets no link-local address of its own (RFC 9568 §7.4);
//!   then the parent's link-local address is added to it (no duplicate address detection), so
//!   adverts leave from the router's usual address with the virtual MAC, and unsolicited
//!   neighbour advertisements carry the virtual MAC.

use std::io;
use std::net::IpAddr;

use super::{AdvertSender, Announcer, Interface, RouteNetlink};
use crate::Config;
use crate::wire::{Family, virtual_mac};

/// A router's macvlan carrying its virtual MAC, and its sockets.
#[derive(Debug)]
pub(super) struct Vmac {
    pub(super) index: u32,
    pub(super) name: String,
    pub(super) sender: AdvertSender,
    pub(super) announcer: Announcer,
}

impl Vmac {
    /// Creates the macvlan of the router configured by `config` on `parent`, up, with its
    /// sockets; on failure it is deleted again.
    pub(super) fn create(
        table: &mut RouteNetlink,
        parent: &Interface,
        config: &Config,
    ) -> io::Result<Vmac> {
        let family = config.family();
        let name = match family {
            Family::Ipv4 => format!("vrrp.{}", config.vrid),
            Family::Ipv6 => format!("vrrp6.{}", config.vrid),
        };
        let index = table.create_macvlan(parent.index, &name, virtual_mac(family, config.vrid))?;
        configure(table, parent, config, index, &name).inspect_err(|_| {
            let _ = table.delete_link(index);
        })
    }
}

fn configure(
    table: &mut RouteNetlink,
    parent: &Interface,
    config: &Config,
    index: u32,
    name: &str,
) -> io::Result<Vmac> {
    let link_local = match config.primary {
        IpAddr::V4(_) => {
            set_arp_sysctls(&parent.name)?;
            set_arp_sysctls(name)?;
            table.set_up(index)?;
            None
        }
        IpAddr::V6(ll) => {
            ipv6_sysctl(name, "disable_ipv6", "0")?;
            ipv6_sysctl(name, "addr_gen_mode", "1")?;
            table.set_up(index)?;
            table.add(index, config.primary, 64)?;
            Some(ll)
        }
    };
    let iface = Interface::lookup(name)?;
    Ok(Vmac {
        index,
        name: name.to_owned(),
        sender: AdvertSender::open(&iface, config.primary)?,
        announcer: Announcer::open(&iface, link_local)?,
    })
}

/// `arp_ignore = 1`: answer ARP only for addresses configured on the interface asked;
/// `arp_announce = 2`: ask with the interface's own address as the sender, so replies from a
/// virtual address that leave by the parent do not teach neighbours the parent's MAC for it.
fn set_arp_sysctls(ifname: &str) -> io::Result<()> {
    // /proc/sys/net resolves to the calling thread's network namespace.
    let conf = format!("/proc/sys/net/ipv4/conf/{ifname}");
    std::fs::write(format!("{conf}/arp_ignore"), "1")?;
    std::fs::write(format!("{conf}/arp_announce"), "2")
}

fn ipv6_sysctl(ifname: &str, key: &str, value: &str) -> io::Result<()> {
    std::fs::write(format!("/proc/sys/net/ipv6/conf/{ifname}/{key}"), value)
}
