//! VRRP (RFC 3768 v2, RFC 9568 v3; IPv4 and IPv6) as a sans-IO library that interoperates with
//! keepalived, and a Linux driver behind the `linux` feature.
//!
//! A [`Router`] is one virtual router: a VRID on one interface in one family. It never reads a
//! clock, opens a socket or spawns a thread: time is a [`Duration`](core::time::Duration) since
//! an epoch the caller picks, received adverts are bytes handed to
//! [`handle_advert`](Router::handle_advert), and what the router wants done comes out of
//! `poll_*` calls. That makes every behaviour reproducible in a simulator (see the crate's
//! `tests/sim.rs`) and lets any runtime drive it.
//!
//! | module | holds |
//! |---|---|
//! | [`wire`] | the advert codec: [`wire::Packet`] view, [`wire::AdvertRepr`], checksum forms |
//! | [`Router`], [`Config`] | the state machine: Initialize / Backup / Master / Fault, preemption, preempt delay, accept mode, owner, priority-0 resignation, tracking weights, unicast peers, announcements |
//! | [`SyncGroup`] | keepalived's sync groups: members change state together |
//! | [`timers`] | Skew_Time and Master_Down_Interval for both versions |
//! | `linux` (feature) | the driver: raw sockets, netlink VIPs, gratuitous ARP / unsolicited NA, accept mode (nftables), optional virtual MAC (macvlan), many VRIDs on many interfaces and sync groups on one thread, the run loop (routers added and removed while the others run on) |
//!
//! # Run loop
//!
//! After each input, send what [`poll_transmit`](Router::poll_transmit) returns (IP protocol
//! 112, TTL / hop limit 255), act on [`poll_event`](Router::poll_event) (install the virtual
//! addresses on becoming master, remove them on leaving, announce them on
//! [`Event::Announce`]), and sleep until [`poll_timeout`](Router::poll_timeout) or the next
//! advert. Here two routers share a wire in virtual time:
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//! use std::time::Duration;
//! use lb_vrrp::{Config, Event, Router, State, wire::IpMeta};
//!
//! let vip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 100));
//! let router = |last: u8, priority: u8| {
//!     let mut c = Config::new(51, IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)), vec![vip]);
//!     c.priority = priority;
//!     c.interval = Duration::from_millis(100);
//!     Router::new(c).unwrap()
//! };
//! let mut routers = [router(1, 200), router(2, 100)];
//! let mut now = Duration::ZERO;
//! for r in &mut routers {
//!     r.handle_startup(now);
//! }
//! let mut buf = Vec::new();
//! while now < Duration::from_secs(2) {
//!     // Deliver every advert to the other router, then report events.
//!     for i in 0..2 {
//!         while let Some(tx) = routers[i].poll_transmit(&mut buf) {
//!             let ip = IpMeta { src: tx.src, dst: tx.dst, hop_limit: 255 };
//!             routers[1 - i].handle_advert(now, &ip, &buf);
//!         }
//!     }
//!     for r in &mut routers {
//!         while let Some(event) = r.poll_event() {
//!             if let Event::StateChanged { vrid, to, reason, .. } = event {
//!                 println!("{} {vrid} {to} {reason}", now.as_millis());
//!             }
//!         }
//!     }
//!     // Jump to the next timeout.
//!     now = routers.iter().filter_map(Router::poll_timeout).min().unwrap();
//!     for r in &mut routers {
//!         r.handle_timeout(now);
//!     }
//! }
//! assert_eq!(routers[0].state(), State::Master);
//! assert_eq!(routers[1].state(), State::Backup);
//! ```
//!
//! # keepalived interoperation
//!
//! keepalived 2.2.7 (Debian 12) sums VRRPv3-over-IPv4 checksums with a pseudo-header, which
//! RFC 9568 dropped: set [`Config::checksum`] to [`ChecksumMode::PseudoHeader`] or
//! [`ChecksumMode::Auto`] next to it. It drops adverts of another version, another VRRPv2
//! interval, another authentication or another address set; this crate reports each of those as
//! an [`InteropWarning`] so a silent dual-master has a named cause.
// The sans-IO core never uses `unsafe`; only the Linux driver's `realtime` module does (the
// scheduler call nix does not wrap), so the `linux` feature relaxes forbid to deny.
#![cfg_attr(not(feature = "linux"), forbid(unsafe_code))]
#![cfg_attr(feature = "linux", deny(unsafe_code))]

mod config;
mod error;
mod event;
mod router;
mod sync_group;
pub mod timers;
pub mod wire;

#[cfg(feature = "linux")]
pub mod linux;

pub use config::{Announce, ChecksumMode, Config, Track};
pub use error::{Counters, DropReason, Error};
pub use event::{Event, InteropWarning, Reason, State};
pub use router::{Router, Transmit};
pub use sync_group::SyncGroup;
