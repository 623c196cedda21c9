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
        if self.routers.is_empty() {
            return Err(invalid("no virtual router".into()));
        }
        for (i, spec) in self.routers.iter().enumerate() {
            let before = self.routers[..i]
                .iter()
                .map(|b| (b.interface.as_str(), &b.config));
            check_router(before, &spec.interface, &spec.config, &spec.prefixes)?;
        }
        check_groups(self.routers.len(), &self.groups)
    }
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what)
}

/// Checks a router to run on `interface` beside `running` (interface, configuration) ones:
/// one prefix length per virtual address; a VRID not yet running on the interface in its
/// family.
pub(super) fn check_router<'a>(
    mut running: impl Iterator<Item = (&'a str, &'a Config)>,
    interface: &str,
    config: &Config,
    prefixes: &[u8],
) -> io::Result<()> {
    if prefixes.len() != config.vips.len() {
        return Err(invalid("one prefix length per virtual address".into()));
    }
    let family = config.family();
    if running.any(|(i, c)| i == interface && c.family() == family && c.vrid == config.vrid) {
        return Err(invalid(format!(
            "VRID {} twice on {interface} (at most 255 virtual routers with distinct VRIDs per interface and family)",
            config.vrid
        )));
    }
    Ok(())
}

/// Checks sync groups of `routers` routers: not empty, each router in at most one.
pub(super) fn check_groups(routers: usize, groups: &[Vec<usize>]) -> io::Result<()> {
    let mut grouped = vec![false; routers];
    for members in groups {
        if members.is_empty() {
            return Err(invalid("an empty sync group".into()));
        }
        for &m in members {
            match grouped.get_mut(m) {
                None => return Err(invalid(format!("no router {m} for a sync group"))),
                Some(true) => return Err(invalid(format!("router {m} is in sync groups twice"))),
                Some(slot) => *slot = true,
            }
        }
    }
    Ok(())
}
