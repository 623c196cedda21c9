//! What a [`Driver`] runs: routers on interfaces and sync groups of them, checked before
//! anything is opened.

use std::io;

use super::Driver;
use crate::Config;

/// One router to run.
#[derive(Debug)]
pub(super) struct Spec {
    pub(super) interface: String,
    pub(super) config: Config,
    pub(super) prefixes: Vec<u8>,
}

/// Collects the routers and sync groups of a [`Driver`] ([`Driver::builder`]).
///
/// ```no_run
/// use std::sync::atomic::AtomicBool;
/// use lb_vrrp::linux::{Driver, Interface};
/// use lb_vrrp::{Config, wire::Family};
///
/// # fn main() -> std::io::Result<()> {
/// let mut builder = Driver::builder();
/// let mut members = Vec::new();
/// for (interface, vrid, vip) in [("eth0", 51, "192.0.2.100"), ("eth1", 52, "10.1.0.254")] {
///     let vip = vip.parse().unwrap();
///     let primary = Interface::lookup(interface)?.primary(Family::Ipv4, &[vip]).unwrap();
///     members.push(builder.router(interface, Config::new(vrid, primary, vec![vip]), vec![24]));
/// }
/// builder.sync_group(members); // both master, or neither
/// let mut driver = builder.build()?;
/// driver.run(&AtomicBool::new(false), &mut |e| println!("{e:?}"))
/// # }
/// ```
#[derive(Debug, Default)]
pub struct DriverBuilder {
    pub(super) routers: Vec<Spec>,
    pub(super) groups: Vec<Vec<usize>>,
}

impl DriverBuilder {
    /// Adds a router on `interface`: `config.primary` must be an address of the interface
    /// (see [`Interface::primary`](super::Interface::primary)) and `prefixes[i]` is the prefix
    /// length `config.vips[i]` is installed with. Returns its index in
    /// [`Driver::routers`].
    pub fn router(&mut self, interface: &str, config: Config, prefixes: Vec<u8>) -> usize {
        self.routers.push(Spec {
            interface: interface.to_owned(),
            config,
            prefixes,
        });
        self.routers.len() - 1
    }

    /// Makes the routers at `members` (indices [`router`](Self::router) returned) a sync
    /// group; returns its index, the `group` of its
    /// [`Event::GroupStateChanged`](crate::Event::GroupStateChanged).
    pub fn sync_group(&mut self, members: Vec<usize>) -> usize {
        self.groups.push(members);
        self.groups.len() - 1
    }

    /// Checks the routers (valid configurations; distinct VRIDs per interface and family) and
    /// the groups (not empty; each router in at most one), then opens the sockets.
    pub fn build(self) -> io::Result<Driver> {
        self.check()?;
        Driver::open(self)
    }

    fn check(&self) -> io::Result<()> {
        let invalid = |what: String| Err(io::Error::new(io::ErrorKind::InvalidInput, what));
        if self.routers.is_empty() {
            return invalid("no virtual router".into());
        }
        for (i, a) in self.routers.iter().enumerate() {
            if a.prefixes.len() != a.config.vips.len() {
                return invalid("one prefix length per virtual address".into());
            }
            let link = a.config.family();
            for b in self.routers[..i]
                .iter()
                .filter(|b| b.interface == a.interface && b.config.family() == link)
            {
                if b.config.vrid == a.config.vrid {
                    return invalid(format!(
                        "VRID {} twice on {} (at most 255 virtual routers with distinct VRIDs per interface and family)",
                        a.config.vrid, a.interface
                    ));
                }
            }
        }
        let mut grouped = vec![false; self.routers.len()];
        for members in &self.groups {
            if members.is_empty() {
                return invalid("an empty sync group".into());
            }
            for &m in members {
                match grouped.get_mut(m) {
                    None => return invalid(format!("no router {m} for a sync group")),
                    Some(true) => return invalid(format!("router {m} is in sync groups twice")),
                    Some(slot) => *slot = true,
                }
            }
        }
        Ok(())
    }
}
