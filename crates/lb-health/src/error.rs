//! The crate's error type.

/// What can go wrong configuring a tracker, a probe, a pool or a driver. Probing itself never
/// returns an error: a failed probe is an [`Outcome`](crate::Outcome) with a [`Reason`](crate::Reason).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A parameter outside its range.
    #[error("invalid {what}: {why}")]
    InvalidParameter {
        /// The parameter.
        what: &'static str,
        /// What is accepted.
        why: &'static str,
    },
    /// A check this driver cannot run.
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
    /// A status-code set such as `200-299 503` that does not parse.
    #[error("invalid status set {0:?}: expected codes or ranges like `200-299 503`")]
    InvalidStatusSet(String),
    /// A hex string (optionally with `X` nibble wildcards) that does not parse.
    #[error("invalid hex {0:?}: expected pairs of hex digits (X for any nibble where allowed)")]
    InvalidHex(String),
    /// A regular expression that does not compile.
    #[error("invalid regex: {0}")]
    InvalidRegex(String),
    /// An MD5 digest that is not 32 hex digits.
    #[error("invalid digest {0:?}: expected 32 hex digits")]
    InvalidDigest(String),
    /// A DNS name that is not a sequence of 1-63 byte labels, at most 255 bytes.
    #[error("invalid dns name {0:?}")]
    InvalidDnsName(String),
    /// A value that cannot go into an HTTP request line or header.
    #[error("invalid http {what} {value:?}")]
    InvalidHttp {
        /// Which part of the request.
        what: &'static str,
        /// The value given.
        value: String,
    },
    /// A target URL that does not parse (see [`crate::url`]).
    #[error("invalid target {url:?}: {why}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong.
        why: &'static str,
    },
    /// A pool member, check or target id that is not there.
    #[error("unknown id {0}")]
    UnknownId(usize),
    /// TLS was asked for but the crate was built without the `tls` feature.
    #[error("tls needs the `tls` feature of lb-health")]
    TlsUnavailable,
    /// The TLS configuration was rejected (bad server name).
    #[error("tls: {0}")]
    Tls(String),
}
