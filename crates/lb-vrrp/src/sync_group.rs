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
    /// Running routers keep their states; the group starts in the state they all share (or
    /// Initialize), so its first event reports the next state they all reach.
    pub(crate) fn new(indices: Vec<usize>, routers: &mut [Router]) -> Members {
        for &i in &indices {
            routers[i].sync.grouped = true;
        }
        let mut group = Members {
            indices,
            agreed: State::Initialize,
        };
        group.agreed = group.shared_state(routers).unwrap_or(State::Initialize);
        group
    }

    /// The members' indices.
    #[cfg(any(feature = "linux", test))] // the Linux driver's, and tests'
    pub(crate) fn indices(&self) -> &[usize] {
        &self.indices
    }

    /// Takes over the state `previous` last reported when it had the same members, so that
    /// regrouping reports nothing new.
    #[cfg(any(feature = "linux", test))] // the Linux driver's, and tests'
    pub(crate) fn keep_agreed(&mut self, previous: &Members) {
        let mut a = self.indices.clone();
        let mut b = previous.indices.clone();
        a.sort_unstable();
        b.sort_unstable();
        if a == b {
            self.agreed = previous.agreed;
        }
    }

    /// Router `index` is gone and the routers after it moved down by one: renumbers the
    /// members (dropping `index` if it was one).
    #[cfg(any(feature = "linux", test))] // the Linux driver's, and tests'
    pub(crate) fn router_removed(&mut self, index: usize) {
        self.indices.retain(|&i| i != index);
        for i in &mut self.indices {
            if *i > index {
                *i -= 1;
            }
        }
    }

    /// The state every member is in, if they agree.
    fn shared_state(&self, routers: &[Router]) -> Option<State> {
        let first = routers[*self.indices.first()?].state();
        self.indices
            .iter()
            .all(|&i| routers[i].state() == first)
            .then_some(first)
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
        let to = self.shared_state(routers)?;
        if to == self.agreed {
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

#[cfg(test)]
mod tests {
    use core::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::Config;

    fn routers(n: u8) -> Vec<Router> {
        (1..=n)
            .map(|vrid| {
                let primary = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
                let vip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 100 + vrid));
                Router::new(Config::new(vrid, primary, vec![vip])).unwrap()
            })
            .collect()
    }

    fn start(routers: &mut [Router]) {
        for r in routers.iter_mut() {
            r.handle_startup(Duration::ZERO);
            while r.poll_event().is_some() {}
        }
    }

    #[test]
    fn a_new_group_of_new_routers_reports_their_first_shared_state() {
        let mut rs = routers(2);
        let mut g = Members::new(vec![0, 1], &mut rs);
        assert_eq!(g.poll_event(0, &rs), None);
        start(&mut rs);
        let event = g.poll_event(3, &rs);
        assert_eq!(
            event,
            Some(Event::GroupStateChanged {
                group: 3,
                from: State::Initialize,
                to: State::Backup
            })
        );
    }

    #[test]
    fn a_group_of_running_routers_starts_in_their_shared_state() {
        let mut rs = routers(3);
        start(&mut rs);
        let mut g = Members::new(vec![2, 0], &mut rs);
        assert!(rs[0].sync.grouped && !rs[1].sync.grouped && rs[2].sync.grouped);
        assert_eq!(
            g.poll_event(0, &rs),
            None,
            "already all backup: nothing new"
        );
    }

    #[test]
    fn regrouping_the_same_members_keeps_the_reported_state() {
        let mut rs = routers(2);
        let mut old = Members::new(vec![0, 1], &mut rs);
        start(&mut rs);
        assert!(old.poll_event(0, &rs).is_some());
        // One member moves on alone: no shared state now.
        rs[0].set_link(Duration::ZERO, false);
        let mut same = Members::new(vec![1, 0], &mut rs);
        same.keep_agreed(&old);
        assert_eq!(same.agreed, State::Backup);
        let mut other = Members::new(vec![1], &mut rs);
        other.keep_agreed(&old);
        assert_eq!(other.agreed, State::Backup, "its own shared state");
        assert_eq!(
            Members::new(vec![0], &mut rs).agreed,
            State::Fault,
            "not taken from a group of other members"
        );
    }

    #[test]
    fn removing_a_router_renumbers_the_members() {
        let mut rs = routers(4);
        let mut g = Members::new(vec![0, 2, 3], &mut rs);
        g.router_removed(2);
        assert_eq!(g.indices(), [0, 2]);
        g.router_removed(1);
        assert_eq!(g.indices(), [0, 1]);
    }

    #[test]
    fn leaving_a_group_frees_a_member_held_in_fault_by_another() {
        let mut rs = routers(2);
        let g = Members::new(vec![0, 1], &mut rs);
        start(&mut rs);
        let now = Duration::from_millis(10);
        rs[0].set_link(now, false);
        g.propagate(now, &mut rs);
        assert_eq!(rs[1].state(), State::Fault);
        while rs[1].poll_event().is_some() {}
        rs[1].leave_group(now);
        assert_eq!(rs[1].state(), State::Backup);
        assert!(!rs[1].sync.grouped);
        // Alone, its down timer makes it master (a member would only want it).
        let down = rs[1].poll_timeout().unwrap();
        rs[1].handle_timeout(down);
        assert_eq!(rs[1].state(), State::Master);
    }
}
