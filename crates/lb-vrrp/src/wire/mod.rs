//! The VRRP advertisement on the wire: VRRPv2 (RFC 3768 §5) and VRRPv3 (RFC 9568 §5), for IPv4
//! and IPv6.
//!
//! [`Packet`] is a view over a byte buffer with accessors for each field (and setters when the
//! buffer is mutable); [`AdvertRepr`] is a valid advert as plain values. [`AdvertRepr::parse`]
//! applies every check a receiver must make before trusting a field (IP hop limit, version,
//! type, VRID, address count against length, interval, checksum, authentication type) and
//! returns a [`DropReason`](crate::DropReason) otherwise; [`AdvertRepr::emit`] writes a buffer of
//! [`AdvertRepr::buffer_len`] bytes and never fails.
//!
//! [`ipv4_advert`] reads the IPv4 header an IPv4 raw socket hands over with the advert.
//!
//! No function in this module panics on any input: every accessor of [`Packet`] reads only
//! within the length that [`Packet::new_checked`] verified.
//!
//! # Checksums
//!
//! | version / family | summed over |
//! |---|---|
//! | v2 (IPv4 only) | the message ([`ChecksumForm::MessageOnly`]) |
//! | v3 / IPv6 | an RFC 8200 §8.1 pseudo-header and the message ([`ChecksumForm::PseudoHeader`]) |
//! | v3 / IPv4 | RFC 9568 §5.2.8: the message; keepalived 2.2.7 and FRR: an IPv4 pseudo-header and the message. Both are accepted on receive and reported; the sender chooses. |

mod advert;
mod checksum;
mod ipv4;

pub use advert::{AUTH_LEN, Addresses, AdvertRepr, Auth, HEADER_LEN, Packet};
pub use ipv4::ipv4_advert;

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IP protocol number of VRRP.
pub const PROTOCOL: u8 = 112;
/// The IPv4 multicast group adverts are sent to.
pub const MULTICAST_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
/// The IPv6 multicast group adverts are sent to.
pub const MULTICAST_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// The only IP TTL / hop limit a VRRP advert may carry.
pub const HOP_LIMIT: u8 = 255;
/// The longest advert: VRRPv3 over IPv6 with 255 addresses.
pub const MAX_LEN: usize = HEADER_LEN + 255 * 16;

/// The protocol version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Version {
    /// VRRPv2, RFC 3768: IPv4, intervals in whole seconds, an 8-byte authentication trailer.
    V2,
    /// VRRPv3, RFC 9568 (obsoletes 5798): IPv4 and IPv6, intervals in centiseconds.
    V3,
}

impl Version {
    /// The number in the version field.
    pub fn number(self) -> u8 {
        match self {
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }
}

/// The address family of a virtual router (IPv4 and IPv6 instances with one VRID are separate
/// virtual routers, RFC 9568 §1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// IPv4: 4-byte addresses, sent to 224.0.0.18.
    Ipv4,
    /// IPv6: 16-byte addresses, sent to ff02::12.
    Ipv6,
}

impl Family {
    /// The family of `addr`.
    pub fn of(addr: IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::Ipv4,
            IpAddr::V6(_) => Family::Ipv6,
        }
    }

    /// Bytes per address.
    pub fn addr_len(self) -> usize {
        match self {
            Family::Ipv4 => 4,
            Family::Ipv6 => 16,
        }
    }

    /// The multicast group of this family.
    pub fn multicast(self) -> IpAddr {
        match self {
            Family::Ipv4 => IpAddr::V4(MULTICAST_V4),
            Family::Ipv6 => IpAddr::V6(MULTICAST_V6),
        }
    }
}

/// What a checksum is summed over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChecksumForm {
    /// The VRRP message alone: VRRPv2, and VRRPv3 over IPv4 per RFC 9568 §5.2.8.
    MessageOnly,
    /// An IP pseudo-header (source, destination, protocol 112, length) and the message: VRRPv3
    /// over IPv6 always; VRRPv3 over IPv4 as keepalived 2.2.7 and FRR send it.
    PseudoHeader,
}

impl ChecksumForm {
    /// The form `version` and `family` prescribe, with `v3_ipv4` chosen for VRRPv3 over IPv4.
    pub fn for_version(version: Version, family: Family, v3_ipv4: ChecksumForm) -> ChecksumForm {
        match (version, family) {
            (Version::V2, _) => ChecksumForm::MessageOnly,
            (Version::V3, Family::Ipv6) => ChecksumForm::PseudoHeader,
            (Version::V3, Family::Ipv4) => v3_ipv4,
        }
    }
}

/// What the IP layer says about a received advert; the parser needs it for the hop-limit rule
/// and the pseudo-header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpMeta {
    /// The IP source address.
    pub src: IpAddr,
    /// The IP destination address (the multicast group, or ours for unicast).
    pub dst: IpAddr,
    /// The IPv4 TTL or IPv6 hop limit.
    pub hop_limit: u8,
}

/// The virtual MAC of a virtual router: `00-00-5e-00-01-VRID` for IPv4, `00-00-5e-00-02-VRID`
/// for IPv6 (RFC 9568 §7.3).
pub fn virtual_mac(family: Family, vrid: u8) -> [u8; 6] {
    let kind = match family {
        Family::Ipv4 => 1,
        Family::Ipv6 => 2,
    };
    [0x00, 0x00, 0x5e, 0x00, kind, vrid]
}

#[cfg(test)]
mod tests;
