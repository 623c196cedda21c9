//! `lb`: an LVS (IPVS) + keepalived toolkit as a family of Rust crates.
//!
//! This facade re-exports each crate as a module:
//!
//! | module | crate | what it holds |
//! |---|---|---|
//! | [`sched`] | `lb-sched` | the 14 IPVS schedulers, consistent hashing, persistence, slow start |
//! | [`vrrp`] | `lb-vrrp` | sans-IO VRRPv2/v3 codec and router state machine, keepalived-compatible; Linux driver |
//! | [`forward`] | `lb-forward` | the DR / NAT / TUN datapath with a connection table; packet I/O for Linux |
//! | [`health`] | `lb-health` | sans-IO health trackers and probes, outlier detection, pools, a reactor driver |
//! | [`config`] | (here) | a keepalived.conf reader with keepalived 2.2.7's defaults and warnings |
//! | [`director`] | (here) | the crates composed into a keepalived + IPVS director driven by keepalived.conf |
#![forbid(unsafe_code)]

pub use lb_forward as forward;
pub use lb_health as health;
pub use lb_sched as sched;
pub use lb_vrrp as vrrp;

pub mod config;
pub mod director;

/// The README's examples, compiled and run as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
