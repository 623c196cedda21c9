//! Health checking as primitives: trackers, probes, outlier detection, pools, drivers.
#![cfg_attr(not(feature = "reactor"), forbid(unsafe_code))]

mod agent;
mod checker;
#[cfg(feature = "reactor")]
pub mod driver;
mod error;
mod outcome;
pub mod outlier;
pub mod pool;
pub mod probe;
mod tracker;
pub mod url;

pub use agent::{AgentError, AgentHealth, AgentReport, parse_agent_line};
pub use checker::{CheckId, Checker, Due, Event, Target};
pub use error::Error;
pub use outcome::{Outcome, Reason, ReportedWeight, Verdict};
pub use probe::{Check, Probe, Session, Step, Transport};
pub use rand_core::Rng;
pub use tracker::{
    Admin, Backoff, Counting, FlapDamping, Health, InitialState, Intervals, Jitter, Observation,
    SlowStart, State, Tracker, TrackerConfig, TrackerStats, Transition,
};
