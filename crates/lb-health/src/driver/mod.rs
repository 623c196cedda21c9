//! Drivers: thin I/O loops that run the sans-IO probes of a [`Checker`](crate::Checker).
//!
//! [`Reactor`] (feature `reactor`, default) is single-threaded (mio): thousands of probes in
//! flight from one thread, with a bound on concurrent runs and a deadline per run.
//! `tokio::TokioChecker` (feature `tokio`) runs each probe as a tokio task.

#[cfg(feature = "reactor")]
mod mmsg;
#[cfg(feature = "reactor")]
mod reactor;
mod sockets;
#[cfg(feature = "tokio")]
pub mod tokio;

#[cfg(feature = "reactor")]
pub use reactor::{Reactor, ReactorConfig, ReactorStats};
#[cfg(feature = "reactor")]
pub use sockets::SynSocket;
