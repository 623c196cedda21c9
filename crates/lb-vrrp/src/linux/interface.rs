//! What the driver needs to know about an interface.

use std::io;
use std::net::{IpAddr, Ipv6Addr};

use nix::ifaddrs::getifaddrs;
use nix::net::if_::{InterfaceFlags, if_nametoindex};

use crate::wire::Family;

/// An interface's index, MAC, addresses and link state, read with `getifaddrs`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    /// The name (`eth0`).
    pub name: String,
    /// The index.
    pub index: u32,
    /// The MAC address (zeros when the interface has none).
    pub mac: [u8; 6],
    /// IPv4 and IPv6 addresses in the kernel's order (the first IPv4 one is the primary).
    pub addresses: Vec<IpAddr>,
    /// Up and running (carrier).
    pub running: bool,
}

impl Interface {
    /// Reads interface `name` in the current network namespace.
    pub fn lookup(name: &str) -> io::Result<Interface> {
        let index = if_nametoindex(name).map_err(io::Error::from)?;
        let mut iface = Interface {
            name: name.to_owned(),
            index,
            mac: [0; 6],
            addresses: Vec::new(),
            running: false,
        };
        for ifa in getifaddrs().map_err(io::Error::from)? {
            if ifa.interface_name != name {
                continue;
            }
            iface.running = ifa
                .flags
                .contains(InterfaceFlags::IFF_UP | InterfaceFlags::IFF_RUNNING);
            let Some(addr) = ifa.address else { continue };
            if let Some(sin) = addr.as_sockaddr_in() {
                iface.addresses.push(IpAddr::V4(sin.ip()));
            } else if let Some(sin6) = addr.as_sockaddr_in6() {
                iface.addresses.push(IpAddr::V6(sin6.ip()));
            } else if let Some(mac) = addr.as_link_addr().and_then(|l| l.addr()) {
                iface.mac = mac;
            }
        }
        Ok(iface)
    }

    /// The address adverts of `family` are sent from: the first IPv4 address, or the IPv6
    /// link-local address, skipping `exclude` (our own virtual addresses).
    pub fn primary(&self, family: Family, exclude: &[IpAddr]) -> Option<IpAddr> {
        self.addresses.iter().copied().find(|a| {
            !exclude.contains(a)
                && match (family, a) {
                    (Family::Ipv4, IpAddr::V4(_)) => true,
                    (Family::Ipv6, IpAddr::V6(v6)) => is_link_local(*v6),
                    _ => false,
                }
        })
    }
}

/// fe80::/10.
pub(crate) fn is_link_local(a: Ipv6Addr) -> bool {
    a.segments()[0] & 0xffc0 == 0xfe80
}
