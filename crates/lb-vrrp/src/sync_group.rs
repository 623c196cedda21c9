//! keepalived's `vrrp_sync_group`: virtual routers that change state together.
//!
//! [`SyncGroup`] documents the rules (keepalived 2.2.7's `vrrp_sync.c`, `vrrp_scheduler.c`,
//! `vrrp_track.c`); [`Members::propagate`] applies them, for [`SyncGroup`] and for the Linux
//! driver alike.

use core::time::Duration;

use crate::Error;
use crate::event::{Event, Reason, State};
use crate::router::{Router, Transmit};
use crate::wire::{Family, IpMeta};

/// A router's part in a sync group (held by the [`Router`]).
#[derive(Clone, Debug, Default)]
pub(crate) struct SyncMember {
    /// A member: its down timer running out makes it want master, not take it.
    pub(crate) grouped: bool,
    /// Why it wants master (keepalived's wantstate MASTER) while held in backup.
    pub(crate) want_master: Option<Reason>,
    /// The VRID of another member whose own fault holds this one in FAULT.
    pub(crate) fault: Option<u8>,
    /// Its last state change not forced by the group, for the group to propagate.
    pub(crate) changed_to: Option<State>,
}

/// The members of one sync group, as indices into a slice of routers, and the state they last
/// all shared.
#[derive(Clone, Debug)]
pub(crate) struct Members {
    indices: Vec<usize>,
    agreed: State,
}

impl Members {
    /// Makes `routers[indices]` one group (indices valid and distinct, checked by the caller).
    pub(crate) fn new(indices: Vec<usize>, routers: &mut [Router]) -> Members {
        for &i in &indices {
            routers[i].sync.grouped = true;
        }
        Members {
            indices,
            agreed: State::Initialize,
        }
    }

    /// The members' indices.
    pub(crate) fn indices(&self) -> &[usize] {
        &self.indices
    }

    /// Applies the group's rules after any input to a member (see the module doc).
    pub(crate) fn propagate(&self, now: Duration, routers: &mut [Router]) {
        let at_fault: Vec<(usize, u8)> = self
            .indices
            .iter()
            .filter(|&&i| routers[i].own_fault().is_some())
            .map(|&i| (i, routers[i].vrid()))
            .collect();
        for &i in &self.indices {
            let other = at_fault
                .iter()
                .find(|(j, _)| *j != i)
                .map(|(_, vrid)| *vrid);
            routers[i].set_sync_fault(now, other);
        }
        let mut backed_off = None;
        for &i in &self.indices {
            if routers[i].sync.changed_to.take() == Some(State::Backup) {
                backed_off = Some(routers[i].vrid());
            }
        }
        if let Some(vrid) = backed_off {
            for &i in &self.indices {
                routers[i].sync_backup(now, vrid);
            }
        }
        let all_want = self.indices.iter().all(|&i| {
            let r = &routers[i];
            r.state() == State::Master
                || (r.state() == State::Backup && r.sync.want_master.is_some())
        });
        if all_want {
            let last = self
                .indices
                .iter()
                .find(|&&i| routers[i].state() == State::Backup)
                .map(|&i| routers[i].vrid());
            if let Some(vrid) = last {
                for &i in &self.indices {
                    routers[i].sync_master(now, vrid);
                }
            }
        }
        // Forced changes are not propagated again.
        for &i in &self.indices {
            routers[i].sync.changed_to = None;
        }
    }

    /// [`Event::GroupStateChanged`] once every member has reached a state the group was not in.
    pub(crate) fn poll_event(&mut self, group: usize, routers: &[Router]) -> Option<Event> {
        let to = routers[*self.indices.first()?].state();
        if to == self.agreed || self.indices.iter().any(|&i| routers[i].state() != to) {
            return None;
        }
        let from = core::mem::replace(&mut self.agreed, to);
        Some(Event::GroupStateChanged { group, from, to })
    }
}

/// Virtual routers that change state together (keepalived's `vrrp_sync_group`, with its rules:
/// see below): one at fault puts all in FAULT; the group becomes master only when every member
/// wants master; one master going back to backup takes the others along.
///
/// It has the same run loop as a [`Router`]; adverts go to the member with the advert's VRID and
/// family (others are dropped). Besides the members' events it reports
/// [`Event::GroupStateChanged`] (group 0) each time all members reach a new state.
///
/// # Rules
///
/// - **FAULT**: while any member is at fault by itself (its link, or a tracked input with
///   weight 0, is down), every member is in FAULT; a master entering it resigns with a
///   priority-0 advert. When the last such fault clears, every member enters BACKUP.
/// - **MASTER**: a member whose Master_Down_Interval runs out (or that owns its addresses)
///   only *wants* master, stays backup and runs its down timer again; when every member wants
///   master, all become master at once (keepalived prefers backup "to avoid thrashing").
/// - **BACKUP**: a master member that goes back to backup (it heard a higher priority) takes
///   every other member back to backup, without a priority-0 advert.
///
/// Differences from keepalived 2.2.7: tracked weights apply as configured, where keepalived's
/// configuration reader ignores members' weights unless the group sets
/// `sync_group_tracking_weight` (the `lb` director applies that rule when it reads
/// keepalived.conf).
#[derive(Debug)]
pub struct SyncGroup {
    members: Vec<Router>,
    group: Members,
}

impl SyncGroup {
    /// A group of `members`, each with its own (family, VRID).
    pub fn new(mut members: Vec<Router>) -> Result<SyncGroup, Error> {
        for (i, a) in members.iter().enumerate() {
            if members[..i]
                .iter()
                .any(|b| b.vrid() == a.vrid() && b.config().family() == a.config().family())
            {
                return Err(Error::DuplicateMember(a.vrid()));
            }
        }
        let group = Members::new((0..members.len()).collect(), &mut members);
        Ok(SyncGroup { members, group })
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

    /// Applies the group's rules; call after changing a member directly.
    pub fn sync(&mut self, now: Duration) {
        self.group.propagate(now, &mut self.members);
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

    /// The next event of any member, then the group's own.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.members
            .iter_mut()
            .find_map(Router::poll_event)
            .or_else(|| self.group.poll_event(0, &self.members))
    }
}
