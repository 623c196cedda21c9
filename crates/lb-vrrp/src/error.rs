//! The crate's error types: [`Error`] for configuration, [`DropReason`] for every advert that is
//! not acted on (a small `Copy` type, returned by the parser and counted by the router).

use core::fmt;

/// What can be wrong with a [`Config`](crate::Config). Receiving never fails: bad adverts are
/// dropped and counted by [`DropReason`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// VRID 0 does not exist; VRIDs are 1 to 255.
    #[error("invalid VRID 0 (1-255)")]
    ZeroVrid,
    /// Priority 0 is reserved for the resignation advert.
    #[error("invalid priority 0 (1-255; 0 is sent only on shutdown)")]
    ZeroPriority,
    /// An advertisement interval the protocol version cannot carry.
    #[error("invalid advertisement interval {0:?}: {1}")]
    Interval(core::time::Duration, &'static str),
    /// A virtual router needs one virtual address at least and at most 255.
    #[error("a virtual router needs 1 to 255 virtual addresses, not {0}")]
    VipCount(usize),
    /// All addresses of one virtual router (virtual addresses, the primary address and unicast
    /// peers) must be of one family.
    #[error("address {0} is not of the virtual router's family")]
    MixedFamilies(core::net::IpAddr),
    /// VRRPv2 carries IPv4 only.
    #[error("VRRPv2 carries IPv4 only; use version 3 for IPv6")]
    V2Ipv6,
    /// Authentication exists in VRRPv2 only (keepalived ignores it with version 3).
    #[error("authentication exists in VRRPv2 only")]
    AuthNeedsV2,
    /// A tracked input's id is not in the configuration.
    #[error("no tracked input {0}")]
    UnknownTrack(usize),
    /// A sync group's members must have distinct (family, VRID) pairs.
    #[error("two sync group members share VRID {0}")]
    DuplicateMember(u8),
}

/// Why an advert was dropped (not acted on). Parse failures come from
/// [`AdvertRepr::parse`](crate::wire::AdvertRepr::parse), the others from the
/// [`Router`](crate::Router)'s receive rules; [`Counters`](crate::Counters) counts each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum DropReason {
    /// Shorter than the header, or than the addresses and trailer it announces.
    Truncated,
    /// Longer than the header, addresses and trailer (keepalived 2.2.7 requires an exact length).
    BadLength,
    /// IP TTL / hop limit other than 255 (RFC 3768 §7.1, RFC 9568 §7.1).
    BadTtl,
    /// Version neither 2 nor 3.
    BadVersion,
    /// Type other than 1 (advertisement).
    BadType,
    /// VRID 0.
    ZeroVrid,
    /// Address count 0 (RFC 9568 erratum 8299).
    ZeroCount,
    /// Advertisement interval 0 (RFC 9568 erratum 8301).
    ZeroInterval,
    /// The checksum matches none of the forms accepted for this version and family.
    BadChecksum,
    /// VRRPv2 authentication type other than 0 (none) and 1 (simple text).
    UnknownAuthType,
    /// An IPv6 advert from VRRPv2, which carries IPv4 only.
    V2OverIpv6,
    /// The advert is for another virtual router.
    OtherVrid,
    /// The advert's version is not ours (keepalived does the same; both sides become master).
    VersionMismatch,
    /// VRRPv2 authentication type or password differs from ours.
    AuthMismatch,
    /// VRRPv2 interval differs from ours: RFC 3768 §7.1 says discard.
    IntervalMismatch,
    /// Our own advert, looped back to us.
    OwnAdvert,
    /// The router is not running (Initialize or Fault).
    NotRunning,
    /// The IPv4 header around the advert is malformed or not protocol 112
    /// ([`ipv4_advert`](crate::wire::ipv4_advert)).
    BadIpHeader,
}

impl DropReason {
    /// Every reason, in counter order.
    pub const ALL: [DropReason; 18] = [
        DropReason::Truncated,
        DropReason::BadLength,
        DropReason::BadTtl,
        DropReason::BadVersion,
        DropReason::BadType,
        DropReason::ZeroVrid,
        DropReason::ZeroCount,
        DropReason::ZeroInterval,
        DropReason::BadChecksum,
        DropReason::UnknownAuthType,
        DropReason::V2OverIpv6,
        DropReason::OtherVrid,
        DropReason::VersionMismatch,
        DropReason::AuthMismatch,
        DropReason::IntervalMismatch,
        DropReason::OwnAdvert,
        DropReason::NotRunning,
        DropReason::BadIpHeader,
    ];

    /// A short lowercase name (`bad-ttl`), for logs and metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Truncated => "truncated",
            DropReason::BadLength => "bad-length",
            DropReason::BadTtl => "bad-ttl",
            DropReason::BadVersion => "bad-version",
            DropReason::BadType => "bad-type",
            DropReason::ZeroVrid => "zero-vrid",
            DropReason::ZeroCount => "zero-count",
            DropReason::ZeroInterval => "zero-interval",
            DropReason::BadChecksum => "bad-checksum",
            DropReason::UnknownAuthType => "unknown-auth-type",
            DropReason::V2OverIpv6 => "v2-over-ipv6",
            DropReason::OtherVrid => "other-vrid",
            DropReason::VersionMismatch => "version-mismatch",
            DropReason::AuthMismatch => "auth-mismatch",
            DropReason::IntervalMismatch => "interval-mismatch",
            DropReason::OwnAdvert => "own-advert",
            DropReason::NotRunning => "not-running",
            DropReason::BadIpHeader => "bad-ip-header",
        }
    }

    /// The counter slot: variants are declared in [`ALL`](Self::ALL) order.
    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::error::Error for DropReason {}

/// Dropped adverts counted by [`DropReason`], plus the adverts accepted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    dropped: [u64; DropReason::ALL.len()],
    /// Adverts that passed every receive check.
    pub accepted: u64,
    /// Adverts this router sent (one per destination).
    pub sent: u64,
}

// `index` relies on declaration order matching `ALL`.
const _: () = {
    let mut i = 0;
    while i < DropReason::ALL.len() {
        assert!(DropReason::ALL[i] as usize == i);
        i += 1;
    }
};

impl Counters {
    /// How many adverts were dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason.index()]
    }

    /// Every drop reason with its count, in [`DropReason::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL.iter().map(|r| (*r, self.dropped(*r)))
    }

    /// The sum over all reasons.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }

    pub(crate) fn count_drop(&mut self, reason: DropReason) {
        self.dropped[reason.index()] += 1;
    }
}
