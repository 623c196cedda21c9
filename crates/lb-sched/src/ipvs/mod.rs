//! The fourteen Linux IPVS schedulers (net/netfilter/ipvs/ip_vs_*.c), decision for decision.

pub(crate) mod lblc;
pub(crate) mod mh;
pub(crate) mod rr;
pub(crate) mod table;
pub(crate) mod tournament;
pub(crate) mod twos;
pub(crate) mod wrr;

pub(crate) use wrr::gcd;
