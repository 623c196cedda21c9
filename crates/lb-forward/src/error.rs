//! The crate's errors: [`Error`] for configuration and I/O set-up, and [`DropReason`], the
//! small `Copy` reason the datapath gives (and counts) for every frame it drops.

/// What can go wrong configuring a [`Forwarder`](crate::Forwarder) or setting up packet I/O.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A service with this key already exists.
    #[error("service {0} already exists")]
    DuplicateService(crate::ServiceKey),
    /// No service with this key.
    #[error("no service {0}")]
    UnknownService(crate::ServiceKey),
    /// This real server is already in the service.
    #[error("real server {0} is already in the service")]
    DuplicateReal(core::net::SocketAddr),
    /// No such real server in the service.
    #[error("no real server {0} in the service")]
    UnknownReal(core::net::SocketAddr),
    /// A setting outside its range, or settings that do not go together.
    #[error("invalid {what}: {why}")]
    Invalid {
        /// The setting.
        what: &'static str,
        /// What is accepted.
        why: &'static str,
    },
    /// The scheduler refused a change.
    #[error("scheduler: {0}")]
    Scheduler(#[from] lb_sched::Error),
    /// An operating-system call failed (packet I/O, netlink, nftables).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl Error {
    /// An [`Error::Io`] with a context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

macro_rules! drop_reasons {
    ($($(#[doc = $doc:literal])* $name:ident => $text:literal,)*) => {
        /// Why the datapath dropped a frame. Every drop is counted by reason
        /// ([`Stats::drops`](crate::Stats::drops)).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum DropReason {
            $($(#[doc = $doc])* $name,)*
        }

        impl DropReason {
            /// Every reason, in counter order.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$name,)*];
            /// The number of reasons.
            pub const COUNT: usize = Self::ALL.len();

            /// A short lowercase name, for tables and logs.
            pub fn name(self) -> &'static str {
                match self {
                    $(DropReason::$name => $text,)*
                }
            }
        }
    };
}

drop_reasons! {
    /// Shorter than an Ethernet header, or than the headers it announces.
    Truncated => "truncated",
    /// An IP header with a wrong version, header length or total length.
    BadIpHeader => "bad ip header",
    /// An IPv4 header whose checksum is wrong.
    BadIpChecksum => "bad ip checksum",
    /// A TCP or UDP header with an impossible length.
    BadL4Header => "bad l4 header",
    /// An IP fragment for a virtual service: reassembly is not done here.
    Fragment => "fragment",
    /// A frame from an interface the forwarder was not told about.
    UnknownInterface => "unknown interface",
    /// A TCP segment for a service that is not a SYN and matches no connection.
    NoConnection => "no connection",
    /// The scheduler found no real server that can take a new connection.
    NoReal => "no real server",
    /// The connection's real server was removed (`expire_nodest_conn` decides what follows).
    RealRemoved => "real removed",
    /// The real server's next hop (egress interface and MAC) is not known yet.
    NoNextHop => "no next hop",
    /// The connection table is full of connections the size policy keeps.
    TableFull => "table full",
    /// A new NAT connection's reply (real address and port to client address and port) is
    /// already another connection's: the same client port reached the same real through two
    /// services. Its replies could not be told apart, so the newer connection is refused.
    ReplyTupleTaken => "reply tuple taken",
    /// Encapsulation would exceed the egress MTU and the packet may not be fragmented; an
    /// ICMP fragmentation-needed or Packet Too Big went back when the packet was not ICMP.
    TooBig => "too big",
    /// The frame buffer has no room for the encapsulation headers.
    NoHeadroom => "no headroom",
    /// The egress interface has no address of the real's family for the tunnel source.
    NoTunnelSource => "no tunnel source",
    /// An ICMP error that belongs to no tracked connection.
    UntrackedIcmp => "untracked icmp",
    /// Handled, but the packet I/O backend could not send it (the link went down, the
    /// transmit queue was full); counted by [`io::Driver`](crate::io::Driver).
    NotSent => "not sent",
}

impl core::fmt::Display for DropReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}
