//! A virtual router's configuration: what keepalived's `vrrp_instance` block holds.

use core::net::IpAddr;
use core::time::Duration;

use crate::Error;
use crate::wire::{Auth, ChecksumForm, Family, Version};

/// Which VRRPv3-over-IPv4 checksum form to send (the receiver accepts both).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ChecksumMode {
    /// RFC 9568 §5.2.8: the message alone. keepalived 2.2.7 rejects it ("invalid checksum").
    #[default]
    Rfc9568,
    /// With an IPv4 pseudo-header, as keepalived 2.2.7 and FRR send it.
    PseudoHeader,
    /// RFC 9568's form until a peer is heard, then the form the peers use.
    Auto,
}

impl ChecksumMode {
    /// The form to send before any peer is heard.
    pub fn initial_form(self) -> ChecksumForm {
        match self {
            ChecksumMode::PseudoHeader => ChecksumForm::PseudoHeader,
            ChecksumMode::Rfc9568 | ChecksumMode::Auto => ChecksumForm::MessageOnly,
        }
    }
}

/// Gratuitous ARP / unsolicited neighbour advertisement schedule on becoming master, with
/// keepalived's names and defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Announce {
    /// `garp_master_repeat`: announcements per burst (default 5).
    pub repeat: u32,
    /// `vrrp_garp_interval` / `vrrp_gna_interval`: the gap between announcements of a burst
    /// (default 0: all at once).
    pub interval: Duration,
    /// `garp_master_delay`: the second burst this long after becoming master (default 5 s;
    /// zero: no second burst).
    pub delay: Duration,
    /// `garp_master_refresh`: one more announcement this often while master (default zero: off).
    pub refresh: Duration,
}

impl Default for Announce {
    fn default() -> Announce {
        Announce {
            repeat: 5,
            interval: Duration::ZERO,
            delay: Duration::from_secs(5),
            refresh: Duration::ZERO,
        }
    }
}

/// A tracked input (keepalived `track_interface`, `track_script`, `track_file`): its state is
/// fed through [`Router::set_track`](crate::Router::set_track).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Track {
    /// A name for events ("eth1", "chk_nginx").
    pub name: String,
    /// keepalived's weight: positive, added to the priority while the input is up; negative,
    /// added while it is down; zero, the router goes to FAULT while it is down.
    pub weight: i32,
}

/// One virtual router's settings. [`Config::new`] fills keepalived's defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Virtual router id, 1-255.
    pub vrid: u8,
    /// Configured priority, 1-255; 255 means this router owns the addresses.
    pub priority: u8,
    /// The protocol version (VRRPv2 only for IPv4).
    pub version: Version,
    /// Advertisement interval: whole seconds (1-255) for VRRPv2, a multiple of 10 ms
    /// (10 ms-40.95 s) for VRRPv3.
    pub interval: Duration,
    /// Preempt a lower-priority master (default true; keepalived `nopreempt` clears it).
    pub preempt: bool,
    /// keepalived `preempt_delay`: after first hearing a lower-priority master, wait this long
    /// before preempting it.
    pub preempt_delay: Duration,
    /// Accept_Mode: a non-owner master accepts packets addressed to the virtual addresses.
    /// Default false, as RFC 9568 §6.1 (VRRPv3) and RFC 3768 §6.4.3 (VRRPv2 has no
    /// Accept_Mode: a non-owner master MUST NOT accept them) want. keepalived 2.2.7's default
    /// differs: `accept` unless `vrrp_strict`; under `vrrp_strict`, `no_accept`, and `accept`
    /// is refused for VRRPv2; the owner (priority 255) always accepts. Setting it for VRRPv2
    /// is keepalived's non-strict behaviour. Reported by
    /// [`Router::accepts_vip_traffic`](crate::Router::accepts_vip_traffic); the Linux driver
    /// enforces it with nftables (`linux::AcceptFilter`).
    pub accept: bool,
    /// The virtual addresses (1-255, one family; for IPv6 the first SHOULD be link-local).
    pub vips: Vec<IpAddr>,
    /// This router's own address on the interface: the IPv4 primary address or the IPv6
    /// link-local address. It is the advert source and breaks priority ties.
    pub primary: IpAddr,
    /// keepalived `unicast_peer`: send to each of these instead of the multicast group.
    pub unicast_peers: Vec<IpAddr>,
    /// VRRPv2 authentication (keepalived `auth_type PASS`).
    pub auth: Auth,
    /// VRRPv3-over-IPv4 checksum form to send.
    pub checksum: ChecksumMode,
    /// Gratuitous ARP / NA schedule.
    pub announce: Announce,
    /// Tracked inputs; all start up.
    pub tracks: Vec<Track>,
}

impl Config {
    /// A VRRPv3 router with priority 100, a 1 s interval, preemption on, no delay, accept mode
    /// off, multicast, RFC 9568 checksums and keepalived's announcement defaults.
    pub fn new(vrid: u8, primary: IpAddr, vips: Vec<IpAddr>) -> Config {
        Config {
            vrid,
            priority: 100,
            version: Version::V3,
            interval: Duration::from_secs(1),
            preempt: true,
            preempt_delay: Duration::ZERO,
            accept: false,
            vips,
            primary,
            unicast_peers: Vec::new(),
            auth: Auth::None,
            checksum: ChecksumMode::default(),
            announce: Announce::default(),
            tracks: Vec::new(),
        }
    }

    /// Whether a master with this configuration accepts packets addressed to the virtual
    /// addresses: it owns them (priority 255) or [`accept`](Self::accept) is set.
    pub fn accepts_vip_traffic(&self) -> bool {
        self.priority == 255 || self.accept
    }

    /// The family of the virtual router (its primary address's).
    pub fn family(&self) -> Family {
        Family::of(self.primary)
    }

    /// Checks every rule of the field docs.
    pub fn validate(&self) -> Result<(), Error> {
        if self.vrid == 0 {
            return Err(Error::ZeroVrid);
        }
        if self.priority == 0 {
            return Err(Error::ZeroPriority);
        }
        if !(1..=255).contains(&self.vips.len()) {
            return Err(Error::VipCount(self.vips.len()));
        }
        let family = self.family();
        if let Some(a) = self
            .vips
            .iter()
            .chain(&self.unicast_peers)
            .find(|a| Family::of(**a) != family)
        {
            return Err(Error::MixedFamilies(*a));
        }
        match self.version {
            Version::V2 => {
                if family == Family::Ipv6 {
                    return Err(Error::V2Ipv6);
                }
                let whole = self.interval.subsec_nanos() == 0;
                if !whole || !(1..=255).contains(&self.interval.as_secs()) {
                    return Err(Error::Interval(
                        self.interval,
                        "VRRPv2 carries 1 to 255 whole seconds",
                    ));
                }
            }
            Version::V3 => {
                if self.auth != Auth::None {
                    return Err(Error::AuthNeedsV2);
                }
                let ms = self.interval.as_millis();
                if self.interval.subsec_nanos() % 10_000_000 != 0 || !(10..=40_950).contains(&ms) {
                    return Err(Error::Interval(
                        self.interval,
                        "VRRPv3 carries 10 ms to 40.95 s in centiseconds",
                    ));
                }
            }
        }
        Ok(())
    }
}
