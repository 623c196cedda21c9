//! The crate's error type.

use crate::BackendId;

/// What can go wrong configuring a [`Pool`](crate::Pool). Picking never fails: it returns
/// `None` when no backend can take the connection.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The algorithm name is not one of [`Algorithm::NAMES`](crate::Algorithm::NAMES).
    #[error("unknown algorithm {0:?}")]
    UnknownAlgorithm(alloc::string::String),
    /// A flag this algorithm does not have (IPVS: `sh-fallback`, `sh-port`, `mh-fallback`,
    /// `mh-port`).
    #[error("algorithm {algorithm} has no flag {flag:?}")]
    UnknownFlag {
        /// The algorithm's name.
        algorithm: &'static str,
        /// The flag given.
        flag: alloc::string::String,
    },
    /// A table size the algorithm cannot use.
    #[error("invalid table size {size} for {algorithm}: {why}")]
    InvalidTableSize {
        /// The algorithm's name.
        algorithm: &'static str,
        /// The size given.
        size: u32,
        /// What the algorithm accepts.
        why: &'static str,
    },
    /// A parameter outside its range.
    #[error("invalid {what}: {why}")]
    InvalidParameter {
        /// The parameter.
        what: &'static str,
        /// What is accepted.
        why: &'static str,
    },
    /// A backend with this id is already in the pool.
    #[error("backend {0} is already in the pool")]
    DuplicateBackend(BackendId),
    /// No backend with this id is in the pool.
    #[error("no backend {0} in the pool")]
    UnknownBackend(BackendId),
    /// The pool is full: tables index backends with 32 bits, and `mh` and `maglev` need
    /// at most one backend per table slot.
    #[error("too many backends for this algorithm (at most {0})")]
    TooManyBackends(usize),
    /// Bounded load applies to the consistent hashes only.
    #[error("bounded load needs a consistent hash (ring, maglev, rendezvous, jump), not {0}")]
    BoundedLoadNeedsHash(&'static str),
}
