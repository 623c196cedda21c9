//! Pools: several checks on one target combined (all / any / k of n), and a set of real
//! servers with keepalived's quorum, hysteresis and sorry server, `inhibit_on_failure`, and
//! Envoy's panic threshold.
//!
//! A [`Pool`] holds no trackers: the caller sets each member's health and weight from its
//! trackers (for instance [`Tracker::effective_weight`](crate::Tracker::effective_weight))
//! and reads back [`Pool::entries`], the table a balancer should program (IPVS destinations
//! and their weights).

use crate::Error;

/// How several checks on one target make one verdict (keepalived: all must pass; HAProxy:
/// check and agent; Envoy "multiple": all).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Combine {
    /// Up only while every check is up.
    All,
    /// Up while any check is up.
    Any,
    /// Up while at least this many checks are up.
    AtLeast(usize),
}

impl Combine {
    /// The combined verdict of `checks` (each `true` when that check is up). No checks: down.
    pub fn is_up(self, checks: impl IntoIterator<Item = bool>) -> bool {
        let (mut up, mut total) = (0usize, 0usize);
        for c in checks {
            total += 1;
            up += usize::from(c);
        }
        total > 0
            && match self {
                Combine::All => up == total,
                Combine::Any => up > 0,
                Combine::AtLeast(k) => up >= k,
            }
    }
}

/// A member of a [`Pool`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MemberId(pub usize);

/// Pool settings, keepalived's `virtual_server` options and Envoy's panic threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolConfig {
    /// Minimum total weight of live members (keepalived `quorum`, default 1).
    pub quorum: u64,
    /// Quorum is gained at `quorum + hysteresis` and lost below `quorum - hysteresis`.
    pub hysteresis: u64,
    /// The weight the sorry server gets while quorum is lost; `None`: no sorry server.
    pub sorry_server: Option<u32>,
    /// Keep failed members in the table with weight 0 instead of removing them
    /// (keepalived `inhibit_on_failure`): their existing connections live on.
    pub inhibit_on_failure: bool,
    /// Below this percentage of healthy members, send traffic to every member regardless of
    /// health (Envoy's panic mode, default 50). `None` or 0 disables it.
    pub panic_threshold_percent: Option<u8>,
}

impl Default for PoolConfig {
    fn default() -> PoolConfig {
        PoolConfig {
            quorum: 1,
            hysteresis: 0,
            sorry_server: None,
            inhibit_on_failure: false,
            panic_threshold_percent: None,
        }
    }
}

/// What a pool serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Live members with their weights.
    Normal,
    /// Too few healthy members: every member, healthy or not, with its weight.
    Panic,
    /// Quorum lost: the sorry server alone.
    Sorry,
}

/// One row of the table to program.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The member, or `None` for the sorry server.
    pub member: Option<MemberId>,
    /// Its weight (0: kept but given no new connections).
    pub weight: u32,
}

/// A change of the pool's quorum (keepalived's `quorum_up` / `quorum_down` notifiers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuorumChange {
    /// Live weight reached `quorum + hysteresis`.
    Gained,
    /// Live weight fell below `quorum - hysteresis`.
    Lost,
}

#[derive(Clone, Copy, Debug)]
struct Member {
    weight: u32,
    up: bool,
}

/// A set of real servers with quorum, sorry server and panic threshold.
#[derive(Clone, Debug)]
pub struct Pool {
    config: PoolConfig,
    members: Vec<Option<Member>>,
    has_quorum: bool,
}

impl Pool {
    /// An empty pool (no quorum until members are up).
    pub fn new(config: PoolConfig) -> Result<Pool, Error> {
        if config.hysteresis > config.quorum {
            return Err(Error::InvalidParameter {
                what: "hysteresis",
                why: "at most the quorum",
            });
        }
        if config.panic_threshold_percent.is_some_and(|p| p > 100) {
            return Err(Error::InvalidParameter {
                what: "panic_threshold_percent",
                why: "at most 100",
            });
        }
        Ok(Pool {
            config,
            members: Vec::new(),
            has_quorum: false,
        })
    }

    /// Adds a member, down until [`Pool::set_up`] says otherwise.
    pub fn add(&mut self, weight: u32) -> MemberId {
        self.members.push(Some(Member { weight, up: false }));
        MemberId(self.members.len() - 1)
    }

    /// Removes a member.
    pub fn remove(&mut self, id: MemberId) -> Result<Option<QuorumChange>, Error> {
        let slot = self.members.get_mut(id.0).ok_or(Error::UnknownId(id.0))?;
        slot.take().ok_or(Error::UnknownId(id.0))?;
        Ok(self.update_quorum())
    }

    fn member(&mut self, id: MemberId) -> Result<&mut Member, Error> {
        self.members
            .get_mut(id.0)
            .and_then(Option::as_mut)
            .ok_or(Error::UnknownId(id.0))
    }

    /// Sets a member's health; a quorum change may follow.
    pub fn set_up(&mut self, id: MemberId, up: bool) -> Result<Option<QuorumChange>, Error> {
        self.member(id)?.up = up;
        Ok(self.update_quorum())
    }

    /// Sets a member's weight (from slow start, an agent, a dynamic MISC_CHECK).
    pub fn set_weight(&mut self, id: MemberId, weight: u32) -> Result<Option<QuorumChange>, Error> {
        self.member(id)?.weight = weight;
        Ok(self.update_quorum())
    }

    fn live(&self) -> impl Iterator<Item = (usize, &Member)> {
        self.members
            .iter()
            .enumerate()
            .filter_map(|(i, m)| m.as_ref().map(|m| (i, m)))
    }

    /// The total weight of live members.
    pub fn live_weight(&self) -> u64 {
        self.live()
            .filter(|(_, m)| m.up)
            .map(|(_, m)| u64::from(m.weight))
            .sum()
    }

    /// Whether the pool has quorum.
    pub fn has_quorum(&self) -> bool {
        self.has_quorum
    }

    fn update_quorum(&mut self) -> Option<QuorumChange> {
        let live = self.live_weight();
        let PoolConfig {
            quorum, hysteresis, ..
        } = self.config;
        if !self.has_quorum && live >= quorum.saturating_add(hysteresis) {
            self.has_quorum = true;
            Some(QuorumChange::Gained)
        } else if self.has_quorum && live < quorum - hysteresis {
            self.has_quorum = false;
            Some(QuorumChange::Lost)
        } else {
            None
        }
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        if !self.has_quorum && self.config.sorry_server.is_some() {
            return Mode::Sorry;
        }
        if let Some(p) = self.config.panic_threshold_percent.filter(|&p| p > 0) {
            let total = self.live().count();
            let healthy = self.live().filter(|(_, m)| m.up).count();
            if total > 0 && healthy * 100 < usize::from(p) * total {
                return Mode::Panic;
            }
        }
        Mode::Normal
    }

    /// The table to program: in `Sorry` mode the sorry server alone; in `Panic` mode every
    /// member; otherwise live members, plus failed ones at weight 0 with `inhibit_on_failure`.
    pub fn entries(&self) -> Vec<Entry> {
        match (self.mode(), self.config.sorry_server) {
            (Mode::Sorry, Some(weight)) => vec![Entry {
                member: None,
                weight,
            }],
            (Mode::Panic, _) => self
                .live()
                .map(|(i, m)| Entry {
                    member: Some(MemberId(i)),
                    weight: m.weight,
                })
                .collect(),
            _ => self
                .live()
                .filter(|(_, m)| m.up || self.config.inhibit_on_failure)
                .map(|(i, m)| Entry {
                    member: Some(MemberId(i)),
                    weight: if m.up { m.weight } else { 0 },
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combining_checks() {
        assert!(Combine::All.is_up([true, true]));
        assert!(!Combine::All.is_up([true, false]));
        assert!(Combine::Any.is_up([false, true]));
        assert!(!Combine::Any.is_up([]));
        assert!(Combine::AtLeast(2).is_up([true, false, true]));
        assert!(!Combine::AtLeast(2).is_up([true, false, false]));
    }

    #[test]
    fn quorum_with_hysteresis_and_sorry_server() {
        let mut pool = Pool::new(PoolConfig {
            quorum: 3,
            hysteresis: 1,
            sorry_server: Some(1),
            ..PoolConfig::default()
        })
        .unwrap();
        let m: Vec<MemberId> = (0..5).map(|_| pool.add(1)).collect();
        assert_eq!(pool.mode(), Mode::Sorry);
        // Gained at quorum + hysteresis = 4 live, not before.
        for (i, id) in m.iter().enumerate().take(4) {
            let change = pool.set_up(*id, true).unwrap();
            assert_eq!(change, (i == 3).then_some(QuorumChange::Gained), "{i}");
        }
        assert_eq!(pool.entries().len(), 4);
        // Lost below quorum - hysteresis = 2 live: at 1, not at 3 or 2.
        assert_eq!(pool.set_up(m[0], false).unwrap(), None);
        assert_eq!(pool.set_up(m[1], false).unwrap(), None);
        assert_eq!(pool.set_up(m[2], false).unwrap(), Some(QuorumChange::Lost));
        assert_eq!(
            pool.entries(),
            [Entry {
                member: None,
                weight: 1
            }]
        );
        // Weight counts, not members: one heavy member restores quorum.
        assert_eq!(
            pool.set_weight(m[3], 4).unwrap(),
            Some(QuorumChange::Gained)
        );
    }

    #[test]
    fn inhibit_on_failure_and_panic() {
        let mut pool = Pool::new(PoolConfig {
            inhibit_on_failure: true,
            panic_threshold_percent: Some(50),
            ..PoolConfig::default()
        })
        .unwrap();
        let a = pool.add(10);
        let b = pool.add(20);
        let c = pool.add(30);
        pool.set_up(a, true).unwrap();
        pool.set_up(b, true).unwrap();
        assert_eq!(pool.mode(), Mode::Normal);
        let weights: Vec<u32> = pool.entries().iter().map(|e| e.weight).collect();
        assert_eq!(weights, [10, 20, 0], "failed member kept at weight 0");
        pool.set_up(b, false).unwrap();
        // One healthy of three (33 %) is under the 50 % panic threshold: everyone serves.
        assert_eq!(pool.mode(), Mode::Panic);
        let weights: Vec<u32> = pool.entries().iter().map(|e| e.weight).collect();
        assert_eq!(weights, [10, 20, 30]);
        pool.remove(c).unwrap();
        assert_eq!(pool.mode(), Mode::Normal, "one of two is 50 %");
        assert!(pool.remove(c).is_err());
        assert!(
            Pool::new(PoolConfig {
                quorum: 1,
                hysteresis: 2,
                ..PoolConfig::default()
            })
            .is_err()
        );
    }
}
