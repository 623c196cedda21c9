//! Many targets on one timeline, sans-IO: which probe is due, when to wake up, and the
//! transitions that follow from outcomes. Drivers ([`crate::driver`]) run the probes.
//!
//! Adding the same check against the same address with the same tracker configuration twice
//! returns the same [`CheckId`] (counted references): the probe runs once per interval
//! however many pools ask for it, and every pool reads the one tracker.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rand_core::Rng;

use crate::wheel::Wheel;
use crate::{Admin, Check, Error, Outcome, Tracker, TrackerConfig, Transition, Transport};

/// A handle to one tracked (check, address) pair. A removed target's id never names a later
/// target, even one that reuses its slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CheckId {
    index: usize,
    incarnation: u32,
}

impl CheckId {
    /// A small number, unique among the targets tracked at one time (slots are reused after
    /// removal), for indexing the caller's own tables.
    pub fn index(self) -> usize {
        self.index
    }
}

/// What to check, where, how often and how long one run may take.
#[derive(Clone, Debug)]
pub struct Target {
    /// The address probed (ICMP uses its IP; exec checks ignore it).
    pub addr: SocketAddr,
    /// The check.
    pub check: Check,
    /// Rise, fall, intervals and the rest.
    pub tracker: TrackerConfig,
    /// The longest one run may take (keepalived `connect_timeout`, HAProxy `timeout check`).
    pub timeout: Duration,
    /// The local address probes leave from (keepalived `bindto`); the kernel's choice if
    /// `None`. TCP (connect or half-open) and UDP checks only, of the target's family.
    pub source: Option<IpAddr>,
}

impl Target {
    /// A target with no source address.
    pub fn new(
        addr: SocketAddr,
        check: Check,
        tracker: TrackerConfig,
        timeout: Duration,
    ) -> Target {
        Target {
            addr,
            check,
            tracker,
            timeout,
            source: None,
        }
    }
}

/// A probe to start now.
#[derive(Clone, Debug)]
pub struct Due<'a> {
    /// Whose probe.
    pub id: CheckId,
    /// Where.
    pub addr: SocketAddr,
    /// What.
    pub check: &'a Check,
    /// The slot it was due in (lateness = now - slot).
    pub slot: Duration,
    /// Its deadline: now + timeout.
    pub deadline: Duration,
    /// The local address to leave from, if set.
    pub source: Option<IpAddr>,
}

/// A transition of one tracked target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// Which target.
    pub id: CheckId,
    /// Its address.
    pub addr: SocketAddr,
    /// What changed.
    pub transition: Transition,
}

#[derive(Debug)]
struct Entry {
    /// Which occupant of this slot (bumped on every reuse).
    incarnation: u32,
    target: Target,
    tracker: Tracker,
    refs: u32,
    running: bool,
    /// Bumped on every reschedule; wheel items with an older value are stale.
    generation: u64,
}

/// The schedule of many trackers.
#[derive(Debug, Default)]
pub struct Checker {
    entries: Vec<Option<Entry>>,
    /// The incarnation of each slot's current (or next) occupant.
    incarnations: Vec<u32>,
    free: Vec<usize>,
    index: HashMap<(Check, SocketAddr), Vec<usize>>,
    wheel: Wheel<(usize, u64)>,
    events: VecDeque<Event>,
    len: usize,
    /// The configuration of the last tracker added, shared with the next if equal.
    last_config: Option<Arc<TrackerConfig>>,
}

impl Checker {
    /// An empty checker.
    pub fn new() -> Checker {
        Checker::default()
    }

    /// Distinct targets tracked.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is tracked.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Starts tracking `target` at `now`, or adds a reference to an identical one.
    pub fn add(
        &mut self,
        target: Target,
        now: Duration,
        rng: &mut impl Rng,
    ) -> Result<CheckId, Error> {
        if target.timeout.is_zero() {
            return Err(Error::InvalidParameter {
                what: "timeout",
                why: "greater than zero",
            });
        }
        if let Some(source) = target.source {
            if source.is_ipv4() != target.addr.is_ipv4() {
                return Err(Error::InvalidParameter {
                    what: "source",
                    why: "of the target's address family",
                });
            }
            if !matches!(
                target.check.transport(),
                Transport::Tcp | Transport::Udp | Transport::RawTcp
            ) {
                return Err(Error::InvalidParameter {
                    what: "source",
                    why: "only for TCP (connect or half-open) and UDP checks",
                });
            }
        }
        let key = (target.check.clone(), target.addr);
        if let Some(ids) = self.index.get(&key) {
            for &i in ids {
                if let Some(e) = self.entries[i].as_mut() {
                    if e.target.tracker == target.tracker
                        && e.target.timeout == target.timeout
                        && e.target.source == target.source
                    {
                        e.refs += 1;
                        return Ok(CheckId {
                            index: i,
                            incarnation: e.incarnation,
                        });
                    }
                }
            }
        }
        let config = match &self.last_config {
            Some(c) if **c == target.tracker => c.clone(),
            _ => Arc::new(target.tracker),
        };
        let tracker = Tracker::shared(config.clone(), now, rng)?;
        self.last_config = Some(config);
        let mut entry = Entry {
            incarnation: 0,
            target,
            tracker,
            refs: 1,
            running: false,
            generation: 0,
        };
        let i = match self.free.pop() {
            Some(i) => {
                entry.incarnation = self.incarnations[i];
                self.entries[i] = Some(entry);
                i
            }
            None => {
                self.entries.push(Some(entry));
                self.incarnations.push(0);
                self.entries.len() - 1
            }
        };
        let id = CheckId {
            index: i,
            incarnation: self.incarnations[i],
        };
        self.index.entry(key).or_default().push(i);
        self.len += 1;
        self.drain_transitions(i);
        self.schedule(i);
        Ok(id)
    }

    /// Drops one reference; the target stops being tracked with the last. Whether it existed.
    pub fn remove(&mut self, id: CheckId) -> bool {
        let Some(e) = self.entry_mut(id) else {
            return false;
        };
        e.refs -= 1;
        if e.refs > 0 {
            return true;
        }
        let key = (e.target.check.clone(), e.target.addr);
        self.entries[id.index] = None;
        self.incarnations[id.index] = self.incarnations[id.index].wrapping_add(1);
        self.free.push(id.index);
        self.len -= 1;
        if let Some(ids) = self.index.get_mut(&key) {
            ids.retain(|&i| i != id.index);
            if ids.is_empty() {
                self.index.remove(&key);
            }
        }
        true
    }

    /// The tracker of `id`.
    pub fn tracker(&self, id: CheckId) -> Option<&Tracker> {
        self.entry(id).map(|e| &e.tracker)
    }

    /// The target of `id`.
    pub fn target(&self, id: CheckId) -> Option<&Target> {
        self.entry(id).map(|e| &e.target)
    }

    fn entry(&self, id: CheckId) -> Option<&Entry> {
        self.entries
            .get(id.index)
            .and_then(Option::as_ref)
            .filter(|e| e.incarnation == id.incarnation)
    }

    fn entry_mut(&mut self, id: CheckId) -> Option<&mut Entry> {
        self.entries
            .get_mut(id.index)
            .and_then(Option::as_mut)
            .filter(|e| e.incarnation == id.incarnation)
    }

    /// Sets the administrative state of `id`.
    pub fn set_admin(&mut self, id: CheckId, now: Duration, admin: Admin) -> Result<(), Error> {
        let e = self.entry_mut(id).ok_or(Error::UnknownId(id.index))?;
        e.tracker.set_admin(now, admin);
        self.drain_transitions(id.index);
        self.schedule(id.index);
        Ok(())
    }

    fn schedule(&mut self, i: usize) {
        if let Some(e) = self.entries[i].as_mut() {
            e.generation += 1;
            if let Some(at) = e.tracker.poll_timeout() {
                self.wheel.insert(at, (i, e.generation));
            }
        }
    }

    fn drain_transitions(&mut self, i: usize) {
        if let Some(e) = self.entries[i].as_mut() {
            while let Some(transition) = e.tracker.poll_transition() {
                self.events.push_back(Event {
                    id: CheckId {
                        index: i,
                        incarnation: e.incarnation,
                    },
                    addr: e.target.addr,
                    transition,
                });
            }
        }
    }

    /// When to call [`Checker::poll_due`] next (it may be early, never late).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Duration> {
        self.wheel.next_at()
    }

    /// The next probe due at `now`, marked running until [`Checker::report`]. Also applies
    /// damping releases that are due.
    pub fn poll_due(&mut self, now: Duration) -> Option<Due<'_>> {
        while let Some((_, (i, generation))) = self.wheel.pop_due(now) {
            let Some(e) = self.entries[i].as_mut() else {
                continue;
            };
            if e.generation != generation {
                continue;
            }
            e.tracker.handle_timeout(now);
            if e.running {
                // `report` reschedules it.
                self.drain_transitions(i);
                continue;
            }
            let due = e.tracker.next_probe_at().filter(|&slot| slot <= now);
            self.drain_transitions(i);
            match due {
                Some(slot) => {
                    let e = self.entries[i].as_mut()?;
                    e.running = true;
                    e.generation += 1;
                    let e = self.entries[i].as_ref()?;
                    return Some(Due {
                        id: CheckId {
                            index: i,
                            incarnation: e.incarnation,
                        },
                        addr: e.target.addr,
                        check: &e.target.check,
                        slot,
                        deadline: now + e.target.timeout,
                        source: e.target.source,
                    });
                }
                None => self.schedule(i),
            }
        }
        None
    }

    /// The outcome of the run [`Checker::poll_due`] handed out for `id`.
    pub fn report(&mut self, id: CheckId, now: Duration, outcome: &Outcome, rng: &mut impl Rng) {
        let Some(e) = self.entry_mut(id) else {
            return;
        };
        e.running = false;
        e.tracker.observe(now, outcome, rng);
        self.drain_transitions(id.index);
        self.schedule(id.index);
    }

    /// The next transition of any target.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InitialState, Reason, State};
    use rand::{SeedableRng, rngs::StdRng};

    fn target(port: u16) -> Target {
        let mut tracker = TrackerConfig::new(Duration::from_secs(1));
        tracker.initial = InitialState::Up;
        tracker.rise = 1;
        tracker.fall = 1;
        Target {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            check: Check::Tcp,
            tracker,
            timeout: Duration::from_millis(500),
            source: None,
        }
    }

    #[test]
    fn identical_targets_share_one_probe() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut c = Checker::new();
        let a = c.add(target(80), Duration::ZERO, &mut rng).unwrap();
        let b = c.add(target(80), Duration::ZERO, &mut rng).unwrap();
        let other = c.add(target(81), Duration::ZERO, &mut rng).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, other);
        assert_eq!(c.len(), 2);
        // Ten seconds of probing: each distinct target runs ten times.
        let mut runs = HashMap::<CheckId, u32>::new();
        let mut now = Duration::ZERO;
        while now < Duration::from_secs(10) {
            let mut started = Vec::new();
            while let Some(d) = c.poll_due(now) {
                started.push(d.id);
            }
            for id in started {
                *runs.entry(id).or_default() += 1;
                c.report(id, now, &Outcome::pass(Reason::Connected), &mut rng);
            }
            now = c.poll_timeout().unwrap();
        }
        assert_eq!(runs[&a], 10);
        assert_eq!(runs[&other], 10);
        assert!(c.remove(a));
        assert_eq!(c.len(), 2, "one reference left");
        assert!(c.remove(b));
        assert_eq!(c.len(), 1);
        assert!(!c.remove(b));
        // The slot is reused, the old id does not name the newcomer.
        let newcomer = c.add(target(82), Duration::ZERO, &mut rng).unwrap();
        assert_eq!(newcomer.index(), a.index());
        assert_ne!(newcomer, a);
        assert!(c.tracker(a).is_none());
        c.report(a, Duration::ZERO, &Outcome::fail(Reason::Timeout), &mut rng);
        assert_eq!(c.tracker(newcomer).unwrap().stats().failures, 0);
    }

    #[test]
    fn running_probe_is_not_started_twice_and_events_flow() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut c = Checker::new();
        let id = c.add(target(80), Duration::ZERO, &mut rng).unwrap();
        assert_eq!(c.poll_event().unwrap().transition.to, State::Up);
        assert!(c.poll_due(Duration::ZERO).is_some());
        assert!(
            c.poll_due(Duration::from_secs(5)).is_none(),
            "still running"
        );
        c.report(
            id,
            Duration::from_secs(5),
            &Outcome::fail(Reason::Timeout),
            &mut rng,
        );
        let ev = c.poll_event().unwrap();
        assert_eq!(
            (ev.id, ev.transition.to, ev.transition.reason),
            (id, State::Down, Reason::Timeout)
        );
        c.set_admin(id, Duration::from_secs(6), Admin::Maint)
            .unwrap();
        assert_eq!(c.poll_event().unwrap().transition.to, State::Maint);
        assert!(c.poll_due(Duration::from_secs(60)).is_none());
    }
}
