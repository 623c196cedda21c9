//! keepalived's `vrrp_sync_group`: virtual routers that change state together.

use core::time::Duration;

use crate::Error;
use crate::event::{Event, State};
use crate::router::{Router, Transmit};
use crate::wire::{Family, IpMeta};

/// Virtual routers that change state together: when one becomes master, the others become
/// master; when one falls back to backup, the others do; while one is in FAULT, all are.
///
/// It has the same run loop as a [`Router`]; adverts go to the member with the advert's VRID and
/// family (others are dropped).
#[derive(Debug)]
pub struct SyncGroup {
    members: Vec<Router>,
}

impl SyncGroup {
    /// A group of `members`, each with its own (family, VRID).
    pub fn new(members: Vec<Router>) -> Result<SyncGroup, Error> {
        for (i, a) in members.iter().enumerate() {
            if members[..i]
                .iter()
                .any(|b| b.vrid() == a.vrid() && b.config().family() == a.config().family())
            {
                return Err(Error::DuplicateMember(a.vrid()));
            }
        }
        Ok(SyncGroup { members })
    }

    /// The members.
    pub fn members(&self) -> &[Router] {
        &self.members
    }

    /// A member, to set its tracked inputs (then call [`sync`](Self::sync)).
    pub fn member_mut(&mut self, index: usize) -> Option<&mut Router> {
        self.members.get_mut(index)
    }

    /// Starts every member.
    pub fn handle_startup(&mut self, now: Duration) {
        for m in &mut self.members {
            m.handle_startup(now);
        }
        self.sync(now);
    }

    /// Shuts every member down.
    pub fn handle_shutdown(&mut self, now: Duration) {
        for m in &mut self.members {
            m.handle_shutdown(now);
        }
        self.sync(now);
    }

    /// Hands an advert to the member it is for.
    pub fn handle_advert(&mut self, now: Duration, ip: &IpMeta, bytes: &[u8]) {
        let family = Family::of(ip.src);
        let vrid = bytes.get(1).copied();
        if let Some(m) = self
            .members
            .iter_mut()
            .find(|m| Some(m.vrid()) == vrid && m.config().family() == family)
        {
            m.handle_advert(now, ip, bytes);
        } else if let Some(m) = self.members.first_mut() {
            // Counted once, by the first member.
            m.handle_advert(now, ip, bytes);
        }
        self.sync(now);
    }

    /// Runs every member's timers.
    pub fn handle_timeout(&mut self, now: Duration) {
        for m in &mut self.members {
            m.handle_timeout(now);
        }
        self.sync(now);
    }

    /// Propagates state changes between members; call after changing a member directly.
    pub fn sync(&mut self, now: Duration) {
        // A forced change is not propagated again, so this settles in one pass per change.
        for i in 0..self.members.len() {
            let Some(to) = self.members[i].sync_pending.take() else {
                continue;
            };
            let vrid = self.members[i].vrid();
            for (j, other) in self.members.iter_mut().enumerate() {
                if j == i {
                    continue;
                }
                match to {
                    State::Fault => {
                        other.sync_fault = true;
                        other.reevaluate(now);
                    }
                    State::Master | State::Backup => {
                        if other.sync_fault {
                            other.sync_fault = false;
                            other.reevaluate(now);
                        }
                        other.follow(now, to, vrid);
                    }
                    State::Initialize => {}
                }
                other.sync_pending = None;
            }
        }
    }

    /// The earliest member timeout.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Duration> {
        self.members.iter().filter_map(Router::poll_timeout).min()
    }

    /// The next advert of any member.
    #[must_use]
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<Transmit> {
        self.members.iter_mut().find_map(|m| m.poll_transmit(buf))
    }

    /// The next event of any member.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.members.iter_mut().find_map(Router::poll_event)
    }
}
