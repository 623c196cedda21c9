//! Gratuitous ARP and unsolicited neighbour advertisements for the virtual addresses.

use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddrV6};

use pnet_datalink::{Channel, DataLinkSender};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::Interface;

/// All-nodes multicast, where unsolicited neighbour advertisements go (RFC 4861 §7.2.6).
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// Sends announcements on one interface from one MAC address.
pub struct Announcer {
    mac: [u8; 6],
    ifindex: u32,
    arp: Option<Box<dyn DataLinkSender>>,
    icmp6: Option<Socket>,
}

impl core::fmt::Debug for Announcer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Announcer")
            .field("mac", &self.mac)
            .field("ifindex", &self.ifindex)
            .finish()
    }
}

impl Announcer {
    /// Opens what announcing `family`-`v6` addresses needs: an `AF_PACKET` sender for ARP, or a
    /// raw ICMPv6 socket sending from `link_local`.
    pub fn open(iface: &Interface, link_local: Option<Ipv6Addr>) -> io::Result<Announcer> {
        let mut announcer = Announcer {
            mac: iface.mac,
            ifindex: iface.index,
            arp: None,
            icmp6: None,
        };
        match link_local {
            None => {
                let ni = pnet_datalink::interfaces()
                    .into_iter()
                    .find(|i| i.name == iface.name)
                    .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "interface gone"))?;
                let config = pnet_datalink::Config {
                    read_buffer_size: 64,
                    ..Default::default()
                };
                match pnet_datalink::channel(&ni, config)? {
                    Channel::Ethernet(tx, _rx) => announcer.arp = Some(tx),
                    _ => return Err(io::Error::other("no Ethernet channel")),
                }
            }
            Some(ll) => {
                let s = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
                s.bind_device(Some(iface.name.as_bytes()))?;
                // RFC 4861 §7.1.2: receivers drop NAs whose hop limit is not 255.
                s.set_multicast_hops_v6(255)?;
                s.set_multicast_if_v6(iface.index)?;
                s.bind(&SockAddr::from(SocketAddrV6::new(ll, 0, 0, iface.index)))?;
                s.set_recv_buffer_size(0)?;
                announcer.icmp6 = Some(s);
            }
        }
        Ok(announcer)
    }

    /// Announces `addr`: a gratuitous ARP for IPv4, an unsolicited NA for IPv6.
    pub fn announce(&mut self, addr: IpAddr) -> io::Result<()> {
        match addr {
            IpAddr::V4(a) => {
                let frame = gratuitous_arp(self.mac, a.octets());
                if let Some(tx) = self.arp.as_mut() {
                    tx.send_to(&frame, None).unwrap_or(Ok(()))?;
                }
            }
            IpAddr::V6(a) => {
                let na = unsolicited_na(self.mac, a);
                if let Some(s) = &self.icmp6 {
                    s.send_to(
                        &na,
                        &SockAddr::from(SocketAddrV6::new(ALL_NODES, 0, 0, self.ifindex)),
                    )?;
                }
            }
        }
        Ok(())
    }
}

/// A broadcast ARP request for `ip` from `ip` (RFC 5227 §3 announcement, as keepalived sends),
/// padded to the Ethernet minimum.
pub(crate) fn gratuitous_arp(mac: [u8; 6], ip: [u8; 4]) -> [u8; 60] {
    let mut f = [0u8; 60];
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    f[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]); // Ethernet, IPv4, request
    f[22..28].copy_from_slice(&mac);
    f[28..32].copy_from_slice(&ip);
    f[38..42].copy_from_slice(&ip);
    f
}

/// An ICMPv6 neighbour advertisement for `target` with Router and Override set (RFC 9568
/// §6.4.2) and the target link-layer address option; the kernel fills the checksum.
pub(crate) fn unsolicited_na(mac: [u8; 6], target: Ipv6Addr) -> [u8; 32] {
    let mut m = [0u8; 32];
    m[0] = 136; // neighbour advertisement
    m[4] = 0xa0; // R and O; not S (unsolicited)
    m[8..24].copy_from_slice(&target.octets());
    m[24] = 2; // target link-layer address
    m[25] = 1; // in units of 8 bytes
    m[26..32].copy_from_slice(&mac);
    m
}
