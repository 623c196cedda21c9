//! Changing a driver's routers while it runs: add, remove, regroup, without disturbing the
//! routers that stay.

use std::io;
use std::time::Duration;

use super::link::{Link, index_links};
use super::{Driver, Slot};
use crate::Config;
use crate::event::Event;
use crate::linux::builder::{check_groups, check_router};
use crate::linux::vmac::Vmac;
use crate::router::Router;
use crate::sync_group::Members;

/// A running driver's routers, as [`Handler::tick`](super::Handler::tick) sees them: read
/// them, feed their tracked inputs, add and remove routers, regroup them. The other routers
/// go on undisturbed: their state, timers and addresses stay.
///
/// Indices are positions in [`routers`](Self::routers), as in events: an added router comes
/// last, and removing router `i` moves every router after it down by one (as
/// [`Vec::remove`]); group indices are positions in the last
/// [`set_sync_groups`](Self::set_sync_groups).
#[derive(Debug)]
pub struct Routers<'a> {
    driver: &'a mut Driver,
    now: Duration,
}

impl<'a> Routers<'a> {
    pub(super) fn new(driver: &'a mut Driver, now: Duration) -> Routers<'a> {
        Routers { driver, now }
    }

    /// The routers' clock.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// The routers.
    pub fn routers(&self) -> &[Router] {
        &self.driver.routers
    }

    /// The routers, to set tracked inputs ([`Router::set_track`]).
    pub fn routers_mut(&mut self) -> &mut [Router] {
        &mut self.driver.routers
    }

    /// Adds a router as [`DriverBuilder::router`](crate::linux::DriverBuilder::router) does
    /// (opening its link's socket if no router uses it yet, and its virtual MAC with
    /// [`Driver::enable_vmac`]); it starts when the tick returns, after the groups set in the
    /// same tick. Returns its index. Refused (nothing changed) when its VRID already runs on
    /// the interface in its family, or its configuration is invalid.
    pub fn add(&mut self, interface: &str, config: Config, prefixes: Vec<u8>) -> io::Result<usize> {
        self.driver.add_router(interface, config, prefixes)
    }

    /// Removes router `index`: it resigns (a master sends a priority-0 advert and removes its
    /// addresses and accept-mode entries; its events go to `on_event`), its virtual MAC is
    /// deleted, and its link closed if no other router uses it. It leaves its sync group.
    /// The routers after it move down by one.
    pub fn remove(&mut self, index: usize, on_event: &mut dyn FnMut(&Event)) -> io::Result<()> {
        self.driver.remove_router(index, self.now, on_event)
    }

    /// Replaces the sync groups by `groups` (router indices; each router in at most one).
    /// Routers keep their states; a group with the members of a previous one goes on from
    /// its state, a new one from the state its members share. Routers left out are no longer
    /// held by a group.
    pub fn set_sync_groups(&mut self, groups: Vec<Vec<usize>>) -> io::Result<()> {
        self.driver.set_sync_groups(groups)
    }
}

impl Driver {
    /// Adds a router (not started) and indexes it.
    pub(super) fn add_router(
        &mut self,
        interface: &str,
        config: Config,
        prefixes: Vec<u8>,
    ) -> io::Result<usize> {
        let running = self
            .routers
            .iter()
            .zip(&self.slots)
            .map(|(r, s)| (self.links[s.link].iface.name.as_str(), r.config()));
        check_router(running, interface, &config, &prefixes)?;
        let router =
            Router::new(config).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let primary = router.config().primary;
        let link = match self
            .links
            .iter()
            .position(|l| l.iface.name == interface && l.primary == primary)
        {
            Some(l) => l,
            None => {
                self.links.push(Link::open(interface, primary)?);
                self.links.len() - 1
            }
        };
        let opened = self.prepare(link, &router);
        let vmac = match opened {
            Ok(vmac) => vmac,
            Err(e) => {
                self.reindex(); // closes the link if it was opened for this router
                return Err(e);
            }
        };
        self.routers.push(router);
        self.slots.push(Slot {
            link,
            prefixes,
            group: None,
            vmac,
        });
        self.reindex();
        Ok(self.routers.len() - 1)
    }

    /// What `router` on `link` needs besides its socket: the accept-mode table of its family,
    /// its virtual MAC.
    fn prepare(&mut self, link: usize, router: &Router) -> io::Result<Option<Vmac>> {
        let config = router.config();
        if !config.accepts_vip_traffic() {
            self.accept.prepare(config.family())?;
        }
        if !self.vmac {
            return Ok(None);
        }
        Vmac::create(&mut self.table, &self.links[link].iface, config).map(Some)
    }

    /// Resigns router `i` and removes it.
    pub(super) fn remove_router(
        &mut self,
        i: usize,
        now: Duration,
        on_event: &mut dyn FnMut(&Event),
    ) -> io::Result<()> {
        if i >= self.routers.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("no router {i}"),
            ));
        }
        self.routers[i].handle_shutdown(now);
        let resigned = self.flush(i, &mut |_, event| on_event(event));
        self.routers.remove(i);
        let slot = self.slots.remove(i);
        for group in &mut self.groups {
            group.router_removed(i);
        }
        for s in &mut self.slots {
            if let Some(g) = s.group.as_mut().filter(|g| **g > i) {
                *g -= 1;
            }
        }
        self.reindex();
        let deleted = match slot.vmac {
            Some(vmac) => self.table.delete_link(vmac.index),
            None => Ok(()),
        };
        resigned.and(deleted)
    }

    /// Replaces the sync groups (see [`Routers::set_sync_groups`]).
    pub(super) fn set_sync_groups(&mut self, groups: Vec<Vec<usize>>) -> io::Result<()> {
        check_groups(self.routers.len(), &groups)?;
        let now = self.now();
        let previous = std::mem::take(&mut self.groups);
        for slot in &mut self.slots {
            slot.group = None;
        }
        for (g, members) in groups.into_iter().enumerate() {
            for &m in &members {
                self.slots[m].group = Some(g);
            }
            let mut group = Members::new(members, &mut self.routers);
            for old in &previous {
                group.keep_agreed(old);
            }
            self.groups.push(group);
        }
        for (router, slot) in self.routers.iter_mut().zip(&self.slots) {
            if slot.group.is_none() {
                router.leave_group(now);
            }
        }
        Ok(())
    }

    /// Indexes the links for the routers now running and closes those no router uses.
    fn reindex(&mut self) {
        let mut link_of: Vec<usize> = self.slots.iter().map(|s| s.link).collect();
        let vrids: Vec<u8> = self.routers.iter().map(Router::vrid).collect();
        let index = index_links(&mut link_of, &vrids, self.links.len());
        for (slot, link) in self.slots.iter_mut().zip(link_of) {
            slot.link = link;
        }
        let links = std::mem::take(&mut self.links);
        for (mut link, index) in links.into_iter().zip(index) {
            if let Some(index) = index {
                link.index = index;
                self.links.push(link);
            }
        }
    }
}
