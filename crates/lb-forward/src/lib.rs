//! A user-space layer-4 load-balancer datapath that does what Linux IPVS does: Direct
//! Routing, NAT and IPIP / IP6IP6 / GUE tunnelling to real servers, with a connection table
//! that tracks TCP like IPVS, schedulers from `lb-sched`, statistics like `ipvsadm --stats`,
//! and packet I/O backends for Linux.
//!
//! # Run loop
//!
//! The core, [`Forwarder`], is sans-IO: a frame and the time in, a [`Verdict`] out (the frame
//! rewritten in place). It reads no clock, opens no socket and allocates nothing per packet;
//! the connection table is allocated up front. A driver (the `io` module's, or yours) feeds it
//! batches of frames, sends the ones it says to send, and calls [`Forwarder::expire`] now and
//! then.
//!
//! ```
//! use core::time::Duration;
//! use lb_forward::*;
//! use lb_sched::{Algorithm, PoolConfig};
//!
//! let mut fw = Forwarder::new(Settings::default());
//! fw.set_interface(InterfaceConfig {
//!     index: 2,
//!     mac: [2, 0, 0, 0, 0, 0xd],
//!     mtu: 1500,
//!     ipv4: Some("10.0.0.2".parse().unwrap()),
//!     ipv6: None,
//! });
//! let http = ServiceKey::new(Protocol::Tcp, "10.0.0.100:80".parse().unwrap());
//! let wrr = PoolScheduler::new(PoolConfig::new(Algorithm::Wrr), 1).unwrap();
//! fw.add_service(http, ServiceConfig::default(), wrr).unwrap();
//! let real = RealConfig::new("10.0.0.3:0".parse().unwrap(), 1, Method::Dr);
//! fw.add_real(&http, real, Duration::ZERO).unwrap();
//! // The driver resolves each real's next hop (the io module asks the kernel).
//! fw.set_next_hop(real.addr.ip(), Some(NextHop { interface: 2, mac: [2, 0, 0, 0, 0, 3] }));
//!
//! // A SYN from 10.0.0.1:40000 to the VIP arrives on interface 2...
//! let syn = lb_forward::testing::tcp(
//!     [2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 0xd],
//!     "10.0.0.1:40000".parse().unwrap(), "10.0.0.100:80".parse().unwrap(),
//!     lb_forward::testing::SYN, b"",
//! );
//! let mut frame = Frame::from_bytes(&syn, 2);
//! let now = Duration::from_secs(1);
//! assert_eq!(fw.process(now, &mut frame), Verdict::Transmit);
//! assert_eq!(&frame.bytes()[..6], &[2, 0, 0, 0, 0, 3]); // DR: only the MACs change
//! assert_eq!(frame.interface, 2);
//! assert_eq!(fw.connection_count(), 1);
//! let _expired = fw.expire(now, 256); // now and then
//! ```
//!
//! # What the datapath does
//!
//! - **Services**: protocol + VIP + port, or + VIP alone (port 0), or a firewall mark: one
//!   service over every packet of its [`MatchKey`]s (destination prefix, protocol and port
//!   range: what the rules setting the mark match); each with its own [`Scheduler`]
//!   ([`PoolScheduler`] runs any lb-sched algorithm, with persistence) and real servers with
//!   their own [`Method`] and weight. Everything can
//!   change while traffic flows: weight 0 quiesces a real (its connections go on), removal
//!   follows [`Settings::expire_nodest_conn`].
//! - **Connections**: keyed by the 5-tuple; TCP follows IPVS's state tables and timeouts
//!   ([`Timeouts`], settable like `ipvsadm --set`); established / other counts go to the
//!   scheduler; the table has a fixed size and a documented eviction policy
//!   ([`Settings::max_connections`]); UDP services may schedule each datagram alone
//!   ([`ServiceConfig::one_packet`]).
//! - **Modes**: DR rewrites the MACs; NAT rewrites the destination (and the source of
//!   replies) with RFC 1624 incremental checksums, keeping a zero UDP checksum; TUN wraps in
//!   IPIP / IP6IP6 or GUE, answers too-big packets with ICMP fragmentation-needed / Packet Too
//!   Big, and can clamp the MSS of SYNs.
//! - **ICMP errors** quoting a tracked connection's packet go to the right real (translated
//!   for NAT) or back to the client.
//! - **Bad input** never panics: every length is checked, and each dropped frame is counted
//!   under a [`DropReason`] in [`Stats`].
//! - **Checksum offload of local senders**: a frame flagged [`Frame::partial_checksum`] (a veth
//!   peer on this host left its TCP / UDP checksum to offload) has it completed before any
//!   rewrite; a frame longer than its buffer (a peer's GSO frame) is dropped as truncated.
//!
//! - **Statistics**: [`report::stats_table`] prints them like `ipvsadm -Ln --stats --rate`.
//!
//! What it does not do: reassemble fragments (fragments for a VIP are dropped and counted),
//! fragment packets that do not fit a tunnel, mix families between VIP and real, or verify TCP
//! and UDP checksums on the way in (incremental updates keep a bad checksum bad, so the
//! receiver still rejects it).
//!
//! # Around the core
//!
//! - `io` (feature `io`, Linux): the [`io::PacketIo`] batch trait with a pnet backend and a
//!   `TPACKET_V3` ring backend, the [`io::Driver`] run loop (on one thread, or on several
//!   sharing one forwarder, each fed by `PACKET_FANOUT`), next hops from rtnetlink, the
//!   nftables rules that keep the kernel off the forwarder's packets, and
//!   [`io::TunnelEndpoint`], the userspace decapsulator for real servers without ipip.
//!   `examples/forwarder.rs` and `examples/tunnel_endpoint.rs` at the workspace root are the
//!   command-line tools built on them.
//! - [`decap`]: finding the inner packet of an IPIP / IP6IP6 / GUE frame (sans-IO).
//! - [`testing`]: frame builders and a checksum verifier for tests, benches and fuzzing.
#![warn(clippy::unwrap_used)]

mod checksum;
mod conn;
mod datapath;
pub mod decap;
mod error;
mod forwarder;
mod frame;
mod icmp;
mod index;
mod prefetch;
pub mod report;
mod rewrite;
mod scheduler;
mod service;
mod state;
mod stats;
pub mod testing;
mod wire;

#[cfg(all(feature = "io", target_os = "linux"))]
pub mod io;

pub use datapath::Verdict;
pub use error::{DropReason, Error};
pub use forwarder::{ConnectionInfo, Forwarder, RealStatus, ServiceStatus};
pub use frame::{DEFAULT_CAPACITY, Frame, HEADROOM};
pub use scheduler::{PoolScheduler, RealId, Scheduler};
pub use service::{
    Encap, InterfaceConfig, MatchKey, Method, NextHop, Protocol, RealConfig, ServiceConfig,
    ServiceKey, Settings,
};
pub use state::{ConnState, Timeouts};
pub use stats::{Counters, Rates, Stats};
