//! The algorithms by name, with their parameters.

use crate::Error;
use alloc::string::ToString;

/// The table sizes IPVS's `mh` can be built with (`primes[]` in ip_vs_mh.c).
pub const MH_PRIMES: [u32; 10] = [
    251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071,
];
/// `mh`'s default table size (Kconfig `IP_VS_MH_TAB_INDEX` 12).
pub const MH_DEFAULT_TABLE: u32 = 4093;
/// The default bits of the `sh` and `dh` tables (Kconfig `IP_VS_SH_TAB_BITS`, `IP_VS_DH_TAB_BITS`).
pub const HASH_TABLE_BITS: u8 = 8;
/// The default Maglev table size (Envoy's and the paper's).
pub const MAGLEV_DEFAULT_TABLE: u32 = 65537;
/// The default ring points per unit of weight (nginx's and pingora's ketama: 160).
pub const RING_DEFAULT_POINTS: u32 = 160;

/// A scheduling algorithm and its parameters.
///
/// The first fourteen are the Linux IPVS schedulers under their `ipvsadm -s` names, with the
/// kernel's decisions on the same ordered backend list. The others come from nginx, Envoy,
/// HAProxy and the consistent-hashing literature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// IPVS `rr`: round robin over schedulable backends.
    Rr,
    /// IPVS `wrr`: weighted round robin, gcd-stepped and interleaved (5,1,1 gives
    /// `0 0 0 0 0 1 2`).
    Wrr,
    /// IPVS `lc`: fewest connections (`active * 256 + inactive`); weight only excludes 0.
    Lc,
    /// IPVS `wlc`: fewest connections per unit of weight.
    Wlc,
    /// IPVS `sed`: shortest expected delay, `(active + 1) / weight`.
    Sed,
    /// IPVS `nq`: the first idle backend, else `sed`.
    Nq,
    /// IPVS `lblc`: locality-based least connection: a destination address sticks to a
    /// backend until that backend is overloaded by the locality rule (more active connections
    /// than its weight while another backend is below half of its own). As in the kernel, the
    /// upper connection threshold does not move a cached destination.
    Lblc,
    /// IPVS `lblcr`: `lblc` with a set of backends per destination address.
    Lblcr,
    /// IPVS `dh`: a static table keyed by the destination address.
    Dh {
        /// log2 of the table size (IPVS default 8: 256 buckets).
        table_bits: u8,
    },
    /// IPVS `sh`: a static weighted table keyed by the source address.
    Sh {
        /// `sh-fallback`: probe on when the backend found is unavailable.
        fallback: bool,
        /// `sh-port`: hash the source port too.
        port: bool,
        /// log2 of the table size (IPVS default 8: 256 buckets).
        table_bits: u8,
    },
    /// IPVS `mh`: Maglev hashing of the source address, as the kernel builds it.
    Mh {
        /// `mh-fallback`: probe on when the backend found is unavailable.
        fallback: bool,
        /// `mh-port`: hash the source port too.
        port: bool,
        /// One of [`MH_PRIMES`] (IPVS default 4093).
        table_size: u32,
    },
    /// IPVS `fo`: weighted failover: the highest weight wins.
    Fo,
    /// IPVS `ovf`: weighted overflow: the highest weight with active connections below its
    /// weight.
    Ovf,
    /// IPVS `twos`: weighted random power of two choices.
    Twos,
    /// nginx's smooth weighted round robin.
    Swrr,
    /// Earliest deadline first weighted round robin (Envoy).
    Edf,
    /// Weighted random.
    Random,
    /// Power of d choices on outstanding load, weighted (Envoy's least request).
    P2c {
        /// How many random candidates to compare (2 or more).
        choices: u8,
    },
    /// Consistent hashing on a ketama ring.
    Ring {
        /// Points on the ring per unit of weight.
        points_per_weight: u32,
    },
    /// Weighted Maglev with any prime table size; rebuilds keep as many slots as they can.
    Maglev {
        /// A prime (default 65537).
        table_size: u32,
    },
    /// Weighted rendezvous (highest random weight) hashing.
    Rendezvous,
    /// Jump consistent hashing, weighted by slot expansion, with JumpBackHash (Ertl 2024):
    /// the same law as Lamping and Veach's jump hash in expected constant time. Adding a
    /// backend at the end or marking one down moves only its own keys; removing one from the
    /// middle renumbers those after it and moves about half the keys, so mark backends down
    /// rather than remove them.
    Jump,
    /// [`Algorithm::Jump`] with Lamping and Veach's own function (the values of their paper's
    /// code), for keys that must land where other implementations of it put them. About
    /// ln(slots) + 1 dependent floating-point steps per pick.
    JumpClassic,
}

impl Algorithm {
    /// Every algorithm name [`Algorithm::from_name`] accepts.
    pub const NAMES: [&'static str; 23] = [
        "rr",
        "wrr",
        "lc",
        "wlc",
        "sed",
        "nq",
        "lblc",
        "lblcr",
        "dh",
        "sh",
        "mh",
        "fo",
        "ovf",
        "twos",
        "swrr",
        "edf",
        "random",
        "p2c",
        "ring",
        "maglev",
        "rendezvous",
        "jump",
        "jump-classic",
    ];

    /// The algorithm with this name and its default parameters.
    pub fn from_name(name: &str) -> Result<Algorithm, Error> {
        Ok(match name {
            "rr" => Algorithm::Rr,
            "wrr" => Algorithm::Wrr,
            "lc" => Algorithm::Lc,
            "wlc" => Algorithm::Wlc,
            "sed" => Algorithm::Sed,
            "nq" => Algorithm::Nq,
            "lblc" => Algorithm::Lblc,
            "lblcr" => Algorithm::Lblcr,
            "dh" => Algorithm::Dh {
                table_bits: HASH_TABLE_BITS,
            },
            "sh" => Algorithm::Sh {
                fallback: false,
                port: false,
                table_bits: HASH_TABLE_BITS,
            },
            "mh" => Algorithm::Mh {
                fallback: false,
                port: false,
                table_size: MH_DEFAULT_TABLE,
            },
            "fo" => Algorithm::Fo,
            "ovf" => Algorithm::Ovf,
            "twos" => Algorithm::Twos,
            "swrr" => Algorithm::Swrr,
            "edf" => Algorithm::Edf,
            "random" => Algorithm::Random,
            "p2c" => Algorithm::P2c { choices: 2 },
            "ring" => Algorithm::Ring {
                points_per_weight: RING_DEFAULT_POINTS,
            },
            "maglev" => Algorithm::Maglev {
                table_size: MAGLEV_DEFAULT_TABLE,
            },
            "rendezvous" => Algorithm::Rendezvous,
            "jump" => Algorithm::Jump,
            "jump-classic" => Algorithm::JumpClassic,
            other => return Err(Error::UnknownAlgorithm(other.to_string())),
        })
    }

    /// The algorithm's name (its `ipvsadm -s` name for the IPVS ones).
    pub fn name(&self) -> &'static str {
        match self {
            Algorithm::Rr => "rr",
            Algorithm::Wrr => "wrr",
            Algorithm::Lc => "lc",
            Algorithm::Wlc => "wlc",
            Algorithm::Sed => "sed",
            Algorithm::Nq => "nq",
            Algorithm::Lblc => "lblc",
            Algorithm::Lblcr => "lblcr",
            Algorithm::Dh { .. } => "dh",
            Algorithm::Sh { .. } => "sh",
            Algorithm::Mh { .. } => "mh",
            Algorithm::Fo => "fo",
            Algorithm::Ovf => "ovf",
            Algorithm::Twos => "twos",
            Algorithm::Swrr => "swrr",
            Algorithm::Edf => "edf",
            Algorithm::Random => "random",
            Algorithm::P2c { .. } => "p2c",
            Algorithm::Ring { .. } => "ring",
            Algorithm::Maglev { .. } => "maglev",
            Algorithm::Rendezvous => "rendezvous",
            Algorithm::Jump => "jump",
            Algorithm::JumpClassic => "jump-classic",
        }
    }

    /// Sets an IPVS scheduler flag by its `ipvsadm -b` name: `sh-fallback`, `sh-port`,
    /// `mh-fallback`, `mh-port`.
    pub fn with_flag(mut self, flag: &str) -> Result<Algorithm, Error> {
        match (&mut self, flag) {
            (Algorithm::Sh { fallback, .. }, "sh-fallback")
            | (Algorithm::Mh { fallback, .. }, "mh-fallback") => *fallback = true,
            (Algorithm::Sh { port, .. }, "sh-port") | (Algorithm::Mh { port, .. }, "mh-port") => {
                *port = true
            }
            _ => {
                return Err(Error::UnknownFlag {
                    algorithm: self.name(),
                    flag: flag.to_string(),
                });
            }
        }
        Ok(self)
    }

    /// Sets the table size of a table-based algorithm: `mh` (one of [`MH_PRIMES`]), `maglev`
    /// (any prime), `sh` and `dh` (a power of two from 16 to 2^20, like IPVS's Kconfig).
    pub fn with_table_size(mut self, size: u32) -> Result<Algorithm, Error> {
        let invalid = |algorithm, why| {
            Err(Error::InvalidTableSize {
                algorithm,
                size,
                why,
            })
        };
        match &mut self {
            Algorithm::Mh { table_size, .. } => {
                if !MH_PRIMES.contains(&size) {
                    return invalid(
                        "mh",
                        "one of 251 509 1021 2039 4093 8191 16381 32749 65521 131071",
                    );
                }
                *table_size = size;
            }
            Algorithm::Maglev { table_size } => {
                if !is_prime(size) || size > MAGLEV_MAX_TABLE {
                    return invalid("maglev", "a prime up to 5000011");
                }
                *table_size = size;
            }
            Algorithm::Sh { table_bits, .. } | Algorithm::Dh { table_bits } => {
                if !size.is_power_of_two() || !(16..=1 << 20).contains(&size) {
                    return invalid(self.name(), "a power of two from 16 to 1048576");
                }
                *table_bits = size.trailing_zeros() as u8;
            }
            _ => return invalid(self.name(), "this algorithm has no table"),
        }
        Ok(self)
    }

    /// Whether this is one of the consistent hashes that [`BoundedLoad`](crate::BoundedLoad)
    /// wraps.
    pub fn is_consistent_hash(&self) -> bool {
        matches!(
            self,
            Algorithm::Ring { .. }
                | Algorithm::Maglev { .. }
                | Algorithm::Rendezvous
                | Algorithm::Jump
                | Algorithm::JumpClassic
        )
    }

    /// Checks parameters that the enum's fields cannot express.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        match *self {
            Algorithm::P2c { choices } if choices < 2 => Err(Error::InvalidParameter {
                what: "p2c choices",
                why: "at least 2",
            }),
            Algorithm::Ring { points_per_weight }
                if !(1..=RING_MAX_POINTS).contains(&points_per_weight) =>
            {
                Err(Error::InvalidParameter {
                    what: "ring points per weight",
                    why: "1 to 65536",
                })
            }
            Algorithm::Maglev { table_size } => self.with_table_size(table_size).map(|_| ()),
            Algorithm::Mh { table_size, .. } => self.with_table_size(table_size).map(|_| ()),
            Algorithm::Sh { table_bits, .. } | Algorithm::Dh { table_bits }
                if !(4..=20).contains(&table_bits) =>
            {
                Err(Error::InvalidParameter {
                    what: "table bits",
                    why: "4 to 20",
                })
            }
            _ => Ok(()),
        }
    }
}

/// The largest Maglev table (Envoy's limit).
pub const MAGLEV_MAX_TABLE: u32 = 5_000_011;
/// The most ring points per unit of weight.
pub const RING_MAX_POINTS: u32 = 65536;

impl core::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

impl core::str::FromStr for Algorithm {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Algorithm::from_name(s)
    }
}

/// Trial division: table sizes are at most a few million, checked once per configuration.
pub(crate) fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    let n = n as u64;
    let mut d = 2u64;
    while d * d <= n {
        if n % d == 0 {
            return false;
        }
        d += 1;
    }
    true
}
