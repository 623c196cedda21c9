//! Drivers: thin I/O loops that run the sans-IO probes of a [`Checker`](crate::Checker).
//!
//! [`Reactor`] is single-threaded (mio): thousands of probes in flight from one thread, with a
//! bound on concurrent runs and a deadline per run.

mod reactor;
mod sockets;

pub use reactor::{Reactor, ReactorConfig, ReactorStats};
