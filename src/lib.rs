//! `lb`: an LVS (IPVS) + keepalived toolkit as a family of Rust crates.
//!
//! This facade re-exports each crate as a module:
//!
//! | module | crate | what it holds |
//! |---|---|---|
//! | [`sched`] | `lb-sched` | the 14 IPVS schedulers, consistent hashing, persistence, slow start |
//! | [`health`] | `lb-health` | sans-IO health trackers and probes, outlier detection, pools, a reactor driver |
//!
//! Later crates (`vrrp`, `forward`) and the `director` join as they land.
#![forbid(unsafe_code)]

pub use lb_health as health;
pub use lb_sched as sched;

/// The README's examples, compiled and run as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
