//! The Linux driver (feature `linux`): runs [`Router`](crate::Router)s on one or several
//! interfaces, and their sync groups.
//!
//! - [`AdvertSocket`]: raw IP sockets for protocol 112, joined to 224.0.0.18 / ff02::12 on the
//!   interface, TTL / hop limit 255, multicast loopback off (the router also drops adverts from
//!   its own address, so it never reacts to itself).
//! - [`RouteNetlink`]: virtual addresses added and removed through rtnetlink
//!   (`netlink-packet-route`), IPv6 ones without duplicate address detection; the macvlan
//!   interfaces that carry a virtual MAC (keepalived `use_vmac`).
//! - [`Announcer`]: gratuitous ARP (an ARP request for the address, from the address) through
//!   an `AF_PACKET` socket, unsolicited neighbour advertisements (R and O set, target
//!   link-layer option) through a raw ICMPv6 socket.
//! - [`AcceptFilter`]: accept mode: an nftables table that drops packets to the virtual
//!   addresses of a non-owner master without [`Config::accept`](crate::Config::accept), as
//!   keepalived 2.2.7 does (neighbour discovery and ARP still pass). Needs the `nft` program.
//! - [`realtime`]: `SCHED_RR` for the driver's thread and locked memory (keepalived
//!   `vrrp_rt_priority`, `vrrp_no_swap`), what keeps a 10 ms interval free of spurious
//!   takeovers on a loaded machine.
//! - [`Driver`]: the run loop: poll the sockets (one per interface, family and source) until the
//!   routers' next timeout, feed adverts and timeouts, apply the sync groups' rules, send
//!   adverts, install / remove / announce addresses, watch the links (down: FAULT).
//!   [`DriverBuilder`] puts routers on several interfaces and groups them; a [`Handler`]'s
//!   tick adds, removes and regroups routers while the others run on ([`Routers`]).
//!
//! Everything is opened in the calling thread's network namespace. Needs `CAP_NET_RAW` and
//! `CAP_NET_ADMIN`.
//!
//! ```no_run
//! use std::sync::atomic::AtomicBool;
//! use lb_vrrp::linux::{Driver, Interface};
//! use lb_vrrp::{Config, Event, wire::Family};
//!
//! # fn main() -> std::io::Result<()> {
//! let vip = "10.0.0.100".parse().unwrap();
//! let primary = Interface::lookup("eth0")?.primary(Family::Ipv4, &[vip]).expect("an IPv4 address");
//! let mut config = Config::new(51, primary, vec![vip]);
//! config.priority = 150;
//! let mut driver = Driver::new("eth0", config, vec![24])?;
//! let stop = AtomicBool::new(false); // set it from a signal handler
//! let mut print = |e: &Event| println!("{e:?}");
//! driver.run(&stop, &mut print)?;
//! driver.shutdown(&mut print) // priority 0, addresses removed
//! # }
//! ```

mod accept;
mod announce;
mod builder;
mod driver;
mod interface;
mod netlink;
pub mod realtime;
mod socket;
mod vmac;

pub use accept::AcceptFilter;
pub use announce::Announcer;
pub use builder::DriverBuilder;
pub use driver::{Driver, Handler, Routers};
pub use interface::Interface;
pub use netlink::RouteNetlink;
pub use socket::{AdvertSender, AdvertSocket, Received};
