//! The advertisement: a [`Packet`] view over bytes and an [`AdvertRepr`] of valid values.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use core::time::Duration;

use super::checksum;
use super::{ChecksumForm, Family, HOP_LIMIT, IpMeta, Version};
use crate::DropReason;

/// Byte offsets of the fields (RFC 3768 §5.1, RFC 9568 §5.1).
mod field {
    use core::ops::Range;

    pub(super) const VER_TYPE: usize = 0;
    pub(super) const VRID: usize = 1;
    pub(super) const PRIORITY: usize = 2;
    pub(super) const COUNT: usize = 3;
    /// VRRPv2: authentication type.
    pub(super) const AUTH_TYPE: usize = 4;
    /// VRRPv2: advertisement interval in seconds.
    pub(super) const ADVER_INT: usize = 5;
    /// VRRPv3: 4 reserved bits and a 12-bit maximum advertisement interval in centiseconds.
    pub(super) const MAX_ADVER_INT: Range<usize> = 4..6;
    pub(super) const CHECKSUM: Range<usize> = 6..8;
    pub(super) const ADDRESSES: usize = 8;
}

/// Length of the fixed header.
pub const HEADER_LEN: usize = 8;
/// Length of the VRRPv2 authentication trailer.
pub const AUTH_LEN: usize = 8;

/// The only message type.
const TYPE_ADVERTISEMENT: u8 = 1;
const AUTH_NONE: u8 = 0;
const AUTH_PASS: u8 = 1;

/// A VRRP advertisement as bytes: the VRRP message, after the IP header.
///
/// The address family is not in the message (it is the IP header's), so it is part of the view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
    family: Family,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// A view without checks: accessors may then panic on a short buffer. Use
    /// [`new_checked`](Self::new_checked) on received bytes.
    pub fn new_unchecked(buffer: T, family: Family) -> Packet<T> {
        Packet { buffer, family }
    }

    /// A view after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T, family: Family) -> Result<Packet<T>, DropReason> {
        let packet = Packet::new_unchecked(buffer, family);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the buffer holds exactly the header, the announced addresses and (VRRPv2) the
    /// authentication trailer: [`DropReason::Truncated`] when shorter,
    /// [`DropReason::BadLength`] when longer, [`DropReason::BadVersion`] when the version (which
    /// decides the trailer) is neither 2 nor 3.
    pub fn check_len(&self) -> Result<(), DropReason> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(DropReason::Truncated);
        }
        let version = self.version().ok_or(DropReason::BadVersion)?;
        let expected = message_len(version, self.family, usize::from(self.count()));
        if len < expected {
            Err(DropReason::Truncated)
        } else if len > expected {
            Err(DropReason::BadLength)
        } else {
            Ok(())
        }
    }

    /// The address family this view was made for.
    pub fn family(&self) -> Family {
        self.family
    }

    /// The raw version nibble.
    pub fn version_number(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TYPE] >> 4
    }

    /// The version, if it is 2 or 3.
    pub fn version(&self) -> Option<Version> {
        match self.version_number() {
            2 => Some(Version::V2),
            3 => Some(Version::V3),
            _ => None,
        }
    }

    /// The type nibble (1 is the only type).
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TYPE] & 0x0f
    }

    /// The virtual router id.
    pub fn vrid(&self) -> u8 {
        self.buffer.as_ref()[field::VRID]
    }

    /// The sender's priority (0: the master resigns; 255: the address owner).
    pub fn priority(&self) -> u8 {
        self.buffer.as_ref()[field::PRIORITY]
    }

    /// The number of addresses.
    pub fn count(&self) -> u8 {
        self.buffer.as_ref()[field::COUNT]
    }

    /// VRRPv2: the authentication type.
    pub fn auth_type(&self) -> u8 {
        self.buffer.as_ref()[field::AUTH_TYPE]
    }

    /// VRRPv2: the advertisement interval in seconds.
    pub fn adver_int_secs(&self) -> u8 {
        self.buffer.as_ref()[field::ADVER_INT]
    }

    /// VRRPv3: the maximum advertisement interval in centiseconds (the reserved bits masked).
    pub fn max_adver_int_cs(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::MAX_ADVER_INT];
        u16::from_be_bytes([b[0], b[1]]) & 0x0fff
    }

    /// The checksum field.
    pub fn checksum(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::CHECKSUM];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The addresses as bytes, `count` of them (needs a checked view).
    pub fn addresses(&self) -> &[u8] {
        let end = field::ADDRESSES + usize::from(self.count()) * self.family.addr_len();
        &self.buffer.as_ref()[field::ADDRESSES..end]
    }

    /// VRRPv2: the 8-byte authentication data after the addresses (needs a checked view).
    pub fn auth_data(&self) -> &[u8] {
        let start = field::ADDRESSES + usize::from(self.count()) * self.family.addr_len();
        &self.buffer.as_ref()[start..start + AUTH_LEN]
    }

    /// Whether the checksum is right in `form`, for an advert from `src` to `dst`.
    pub fn verify_checksum(&self, form: ChecksumForm, src: IpAddr, dst: IpAddr) -> bool {
        checksum::verify_sum(self.buffer.as_ref(), form, src, dst) == 0xffff
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets version and type.
    pub fn set_version_type(&mut self, version: u8, msg_type: u8) {
        self.buffer.as_mut()[field::VER_TYPE] = (version << 4) | (msg_type & 0x0f);
    }

    /// Sets the VRID.
    pub fn set_vrid(&mut self, vrid: u8) {
        self.buffer.as_mut()[field::VRID] = vrid;
    }

    /// Sets the priority.
    pub fn set_priority(&mut self, priority: u8) {
        self.buffer.as_mut()[field::PRIORITY] = priority;
    }

    /// Sets the address count.
    pub fn set_count(&mut self, count: u8) {
        self.buffer.as_mut()[field::COUNT] = count;
    }

    /// VRRPv2: sets the authentication type.
    pub fn set_auth_type(&mut self, auth_type: u8) {
        self.buffer.as_mut()[field::AUTH_TYPE] = auth_type;
    }

    /// VRRPv2: sets the interval in seconds.
    pub fn set_adver_int_secs(&mut self, secs: u8) {
        self.buffer.as_mut()[field::ADVER_INT] = secs;
    }

    /// VRRPv3: sets the interval in centiseconds (12 bits kept) and clears the reserved bits.
    pub fn set_max_adver_int_cs(&mut self, cs: u16) {
        self.buffer.as_mut()[field::MAX_ADVER_INT].copy_from_slice(&(cs & 0x0fff).to_be_bytes());
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, value: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&value.to_be_bytes());
    }

    /// The addresses, writable (needs a buffer of the full length).
    pub fn addresses_mut(&mut self) -> &mut [u8] {
        let end = field::ADDRESSES + usize::from(self.count()) * self.family.addr_len();
        &mut self.buffer.as_mut()[field::ADDRESSES..end]
    }

    /// VRRPv2: the authentication data, writable.
    pub fn auth_data_mut(&mut self) -> &mut [u8] {
        let start = field::ADDRESSES + usize::from(self.count()) * self.family.addr_len();
        &mut self.buffer.as_mut()[start..start + AUTH_LEN]
    }

    /// Computes the checksum in `form` and writes it.
    pub fn fill_checksum(&mut self, form: ChecksumForm, src: IpAddr, dst: IpAddr) {
        self.set_checksum(0);
        let sum = checksum::verify_sum(self.buffer.as_ref(), form, src, dst);
        self.set_checksum(!sum);
    }
}

/// The length of a message of `version` and `family` with `count` addresses.
fn message_len(version: Version, family: Family, count: usize) -> usize {
    let trailer = match version {
        Version::V2 => AUTH_LEN,
        Version::V3 => 0,
    };
    HEADER_LEN + count * family.addr_len() + trailer
}

/// The addresses of an advert, kept as wire bytes (so parsing does not allocate): 4 or 16 bytes
/// each, per the family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Addresses<'a> {
    family: Family,
    bytes: &'a [u8],
}

impl<'a> Addresses<'a> {
    /// The addresses in `bytes`; `None` unless `bytes` holds 1 to 255 whole addresses.
    pub fn from_bytes(family: Family, bytes: &'a [u8]) -> Option<Addresses<'a>> {
        let n = bytes.len() / family.addr_len();
        let whole = bytes.len() % family.addr_len() == 0;
        (whole && (1..=255).contains(&n)).then_some(Addresses { family, bytes })
    }

    /// Appends the wire form of `addrs` to `out` (addresses of another family are skipped).
    pub fn encode(family: Family, addrs: &[IpAddr], out: &mut Vec<u8>) {
        for addr in addrs {
            match (family, addr) {
                (Family::Ipv4, IpAddr::V4(a)) => out.extend_from_slice(&a.octets()),
                (Family::Ipv6, IpAddr::V6(a)) => out.extend_from_slice(&a.octets()),
                _ => {}
            }
        }
    }

    /// The family.
    pub fn family(&self) -> Family {
        self.family
    }

    /// The wire bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// How many addresses (1 to 255).
    pub fn len(&self) -> usize {
        self.bytes.len() / self.family.addr_len()
    }

    /// Always `false`: an advert carries one address at least.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The addresses in wire order.
    pub fn iter(&self) -> impl Iterator<Item = IpAddr> + 'a {
        let family = self.family;
        self.bytes
            .chunks_exact(family.addr_len())
            .map(move |c| match family {
                Family::Ipv4 => IpAddr::V4(Ipv4Addr::new(c[0], c[1], c[2], c[3])),
                Family::Ipv6 => {
                    let mut a = [0u8; 16];
                    a.copy_from_slice(c);
                    IpAddr::V6(Ipv6Addr::from(a))
                }
            })
    }

    /// Whether both hold the same set of addresses, in any order.
    pub fn same_set(&self, other: &Addresses<'_>) -> bool {
        let contains = |set: &Addresses<'_>, a: IpAddr| set.iter().any(|b| b == a);
        self.family == other.family
            && self.iter().all(|a| contains(other, a))
            && other.iter().all(|a| contains(self, a))
    }
}

/// VRRPv2 authentication (RFC 2338 §5.3.6; keepalived `auth_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Auth {
    /// Type 0: none; the trailer is sent as zeros and ignored on receive.
    None,
    /// Type 1: a simple text password, the first 8 bytes, zero padded (keepalived `PASS`).
    Pass([u8; AUTH_LEN]),
}

impl Auth {
    /// A `Pass` from a password: keepalived uses the first 8 bytes, zero padded.
    pub fn pass(password: &[u8]) -> Auth {
        let mut data = [0u8; AUTH_LEN];
        let n = password.len().min(AUTH_LEN);
        data[..n].copy_from_slice(&password[..n]);
        Auth::Pass(data)
    }
}

/// A valid advertisement as values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdvertRepr<'a> {
    /// The version.
    pub version: Version,
    /// The VRID, 1-255.
    pub vrid: u8,
    /// The sender's priority.
    pub priority: u8,
    /// The advertisement interval: whole seconds (1-255) in VRRPv2, centiseconds (1-4095) in
    /// VRRPv3. [`emit`](Self::emit) writes the nearest value the version can carry.
    pub interval: Duration,
    /// The virtual addresses.
    pub addresses: Addresses<'a>,
    /// VRRPv2 authentication; `Auth::None` in VRRPv3.
    pub auth: Auth,
}

impl<'a> AdvertRepr<'a> {
    /// Parses and validates an advert received with `ip` (the family is `ip.src`'s). Returns the
    /// advert and the checksum form it verified in. Like keepalived it does not require the
    /// first IPv6 address to be link-local (RFC 9568 §5.2.9, erratum 8300): keepalived only
    /// warns about it, and peers configured without one must still interoperate.
    pub fn parse(
        packet: &Packet<&'a [u8]>,
        ip: &IpMeta,
    ) -> Result<(AdvertRepr<'a>, ChecksumForm), DropReason> {
        if ip.hop_limit != HOP_LIMIT {
            return Err(DropReason::BadTtl);
        }
        let family = packet.family();
        packet.check_len()?;
        let version = packet.version().ok_or(DropReason::BadVersion)?;
        if version == Version::V2 && family == Family::Ipv6 {
            return Err(DropReason::V2OverIpv6);
        }
        if packet.msg_type() != TYPE_ADVERTISEMENT {
            return Err(DropReason::BadType);
        }
        if packet.vrid() == 0 {
            return Err(DropReason::ZeroVrid);
        }
        // The buffer itself, so the addresses borrow for 'a rather than for `packet`.
        let buffer: &'a [u8] = packet.buffer;
        let end = field::ADDRESSES + usize::from(packet.count()) * family.addr_len();
        let addresses = Addresses::from_bytes(family, &buffer[field::ADDRESSES..end])
            .ok_or(DropReason::ZeroCount)?;
        let interval = match version {
            Version::V2 => Duration::from_secs(u64::from(packet.adver_int_secs())),
            Version::V3 => Duration::from_millis(u64::from(packet.max_adver_int_cs()) * 10),
        };
        if interval.is_zero() {
            return Err(DropReason::ZeroInterval);
        }
        // The message is summed once; each form adds its part to that sum.
        let bytes = packet.buffer;
        let sum = checksum::add(0, bytes);
        let ok = |form| checksum::with_form(sum, bytes.len(), form, ip.src, ip.dst) == 0xffff;
        let form = match (version, family) {
            (Version::V2, _) => ChecksumForm::MessageOnly,
            (Version::V3, Family::Ipv6) => ChecksumForm::PseudoHeader,
            // RFC 9568 form first; keepalived 2.2.7's pseudo-header form otherwise.
            (Version::V3, Family::Ipv4) if ok(ChecksumForm::MessageOnly) => {
                ChecksumForm::MessageOnly
            }
            (Version::V3, Family::Ipv4) => ChecksumForm::PseudoHeader,
        };
        if !ok(form) {
            return Err(DropReason::BadChecksum);
        }
        let auth = match version {
            Version::V3 => Auth::None,
            Version::V2 => match packet.auth_type() {
                AUTH_NONE => Auth::None,
                AUTH_PASS => {
                    let mut data = [0u8; AUTH_LEN];
                    data.copy_from_slice(packet.auth_data());
                    Auth::Pass(data)
                }
                _ => return Err(DropReason::UnknownAuthType),
            },
        };
        Ok((
            AdvertRepr {
                version,
                vrid: packet.vrid(),
                priority: packet.priority(),
                interval,
                addresses,
                auth,
            },
            form,
        ))
    }

    /// The message length [`emit`](Self::emit) writes.
    pub fn buffer_len(&self) -> usize {
        message_len(self.version, self.addresses.family(), self.addresses.len())
    }

    /// Writes the advert into `buffer` (at least [`buffer_len`](Self::buffer_len) bytes; only
    /// that prefix is written) with its checksum in `form` for an advert from `src` to `dst`.
    /// VRRPv2 always sums the message alone, VRRPv3 over IPv6 always with the pseudo-header, so
    /// `form` matters for VRRPv3 over IPv4 only. The interval is rounded down to what the
    /// version carries and kept within 1-255 s (v2) or 1-4095 cs (v3).
    ///
    /// # Panics
    ///
    /// When `buffer` is shorter than [`buffer_len`](Self::buffer_len): a caller bug, not input.
    pub fn emit(&self, buffer: &mut [u8], form: ChecksumForm, src: IpAddr, dst: IpAddr) {
        let len = self.buffer_len();
        let family = self.addresses.family();
        let mut packet = Packet::new_unchecked(&mut buffer[..len], family);
        packet.set_version_type(self.version.number(), TYPE_ADVERTISEMENT);
        packet.set_vrid(self.vrid);
        packet.set_priority(self.priority);
        // from_bytes guarantees 1 to 255 addresses.
        packet.set_count(self.addresses.len() as u8);
        match self.version {
            Version::V2 => {
                let secs = self.interval.as_secs().clamp(1, 255) as u8;
                packet.set_adver_int_secs(secs);
                let (kind, data) = match self.auth {
                    Auth::None => (AUTH_NONE, [0u8; AUTH_LEN]),
                    Auth::Pass(data) => (AUTH_PASS, data),
                };
                packet.set_auth_type(kind);
                packet.auth_data_mut().copy_from_slice(&data);
            }
            Version::V3 => {
                let cs = (self.interval.as_millis() / 10).clamp(1, 4095) as u16;
                packet.set_max_adver_int_cs(cs);
            }
        }
        packet
            .addresses_mut()
            .copy_from_slice(self.addresses.as_bytes());
        let form = ChecksumForm::for_version(self.version, family, form);
        packet.fill_checksum(form, src, dst);
    }
}
