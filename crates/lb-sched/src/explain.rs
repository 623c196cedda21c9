//! Why a backend was (or would be) chosen.

use crate::hash::ConsistentHash;
use crate::ipvs::tournament::Rule;
use crate::scheduler::Scheduler;
use crate::{Algorithm, BackendId, Exclusion, Load, Pool, Request};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;
use rand_core::Rng;

/// The score an algorithm gave one backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Score {
    /// The algorithm does not rank backends (round robin, random: see the note).
    Unranked,
    /// A cost to minimise, `numerator / denominator` (IPVS `wlc`: overhead / weight).
    Cost {
        /// The load term.
        numerator: u64,
        /// The weight term.
        denominator: u32,
    },
    /// A weight to maximise (`fo`, `ovf`).
    Weight(u32),
    /// The backend's share of a hash table, ring or weight space.
    Share(u64),
}

/// One backend as the algorithm saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The backend.
    pub id: BackendId,
    /// Its configured and effective (slow-start) weights.
    pub weight: u32,
    /// The weight the algorithm used.
    pub effective_weight: u32,
    /// Its load counters.
    pub load: Load,
    /// Why it could not take a new connection, if it could not.
    pub exclusion: Option<Exclusion>,
    /// Its score.
    pub score: Score,
}

/// How the choice was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// A persistence template named the backend.
    Persistence,
    /// The algorithm chose it.
    Algorithm,
    /// No backend could take the connection.
    NoneAvailable,
}

/// The answer of [`Pool::explain`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    /// The algorithm.
    pub algorithm: Algorithm,
    /// The backend chosen.
    pub chosen: Option<BackendId>,
    /// How.
    pub decision: Decision,
    /// Every backend in list order.
    pub candidates: Vec<Candidate>,
    /// Algorithm-specific context: cursor, pass floor, bucket or slot read.
    pub note: String,
}

impl Pool {
    /// What [`Pool::pick`] would choose now and why, without changing this pool (the pick is
    /// made on a copy, with the same `rng`).
    pub fn explain(&self, req: &Request, now: Duration, rng: &mut dyn Rng) -> Explanation {
        let persistent = self.persistent_backend(req.src.ip());
        let note = self.note(req);
        let mut probe = self.clone();
        let chosen = probe.pick(req, now, rng);
        let decision = match chosen {
            None => Decision::NoneAvailable,
            Some(id) if persistent == Some(id) => Decision::Persistence,
            Some(_) => Decision::Algorithm,
        };
        let shares = match self.scheduler() {
            Scheduler::Hash(hash) | Scheduler::BoundedHash { hash, .. } => {
                Some(hash.shares(self.backends()))
            }
            Scheduler::Sh { table, .. } | Scheduler::Dh(table) => Some(
                table
                    .bucket_counts(self.len())
                    .into_iter()
                    .map(u64::from)
                    .collect::<Vec<_>>(),
            ),
            Scheduler::Mh(table) => Some(table.slot_counts(self.len())),
            _ => None,
        };
        let candidates = self
            .backends()
            .iter()
            .enumerate()
            .map(|(pos, b)| {
                let score = match (self.scheduler(), &shares) {
                    (_, Some(shares)) => Score::Share(shares.get(pos).copied().unwrap_or(0)),
                    (Scheduler::Best(t), _) if matches!(t.rule(), Rule::Fo | Rule::Ovf) => {
                        Score::Weight(b.effective_weight)
                    }
                    (Scheduler::Best(t), _) => {
                        let (numerator, denominator) = t.rule().cost(b);
                        Score::Cost {
                            numerator,
                            denominator,
                        }
                    }
                    (Scheduler::Locality(_) | Scheduler::Twos(_), _) => Score::Cost {
                        numerator: b.load.ipvs_overhead(),
                        denominator: b.effective_weight,
                    },
                    (Scheduler::P2c { .. }, _) => Score::Cost {
                        numerator: b.load.outstanding() + 1,
                        denominator: b.effective_weight,
                    },
                    _ => Score::Unranked,
                };
                let mut exclusion = b.exclusion();
                if exclusion.is_none() {
                    let over = match self.scheduler() {
                        Scheduler::Best(t) => !t.rule().admits(b),
                        Scheduler::Locality(l) => l.overloaded(b),
                        _ => false,
                    };
                    if over {
                        exclusion = Some(Exclusion::AtCapacity);
                    }
                }
                Candidate {
                    id: b.id,
                    weight: b.weight,
                    effective_weight: b.effective_weight,
                    load: b.load,
                    exclusion,
                    score,
                }
            })
            .collect();
        Explanation {
            algorithm: self.algorithm(),
            chosen,
            decision,
            candidates,
            note,
        }
    }

    fn note(&self, req: &Request) -> String {
        let after = |cursor: Option<usize>| match cursor {
            Some(c) => format!("scan starts after position {c}"),
            None => String::from("scan starts at the list head"),
        };
        match self.scheduler() {
            Scheduler::Rr(s) => after(s.cursor()),
            Scheduler::Wrr(s) => format!("weight floor {}", s.floor()),
            Scheduler::Best(t) => format!("{:?}: lowest cost, first in list on a tie", t.rule()),
            Scheduler::Locality(l) => {
                format!("{} cached destinations; key {}", l.entries(), req.dst.ip())
            }
            Scheduler::Dh(t) => format!(
                "bucket {} for destination {}",
                t.dh_bucket(&req.dst),
                req.dst.ip()
            ),
            Scheduler::Sh { table, port, .. } => {
                format!(
                    "bucket {} for source {}",
                    table.sh_first_bucket(&req.src, *port),
                    req.src
                )
            }
            Scheduler::Mh(table) => {
                format!("slot {} for source {}", table.slot(&req.src), req.src)
            }
            Scheduler::Hash(hash) | Scheduler::BoundedHash { hash, .. } => {
                let kind = match hash {
                    ConsistentHash::Ring(_) => "ring",
                    ConsistentHash::Maglev(_) => "maglev",
                    ConsistentHash::Rendezvous(_) => "rendezvous",
                    ConsistentHash::Jump(_) => "jump",
                    ConsistentHash::JumpClassic(_) => "jump-classic",
                };
                format!("{kind} key {:#018x}", req.hash_key())
            }
            Scheduler::Twos(_) | Scheduler::Random(_) | Scheduler::P2c { .. } => {
                String::from("weighted random draws")
            }
            Scheduler::Swrr(_) => String::from("smooth weighted round robin cycle"),
            Scheduler::Edf(_) => String::from("earliest deadline first"),
        }
    }
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.chosen {
            Some(id) => writeln!(
                f,
                "{} chose {id} ({:?}); {}",
                self.algorithm, self.decision, self.note
            )?,
            None => writeln!(f, "{} chose none; {}", self.algorithm, self.note)?,
        }
        for c in &self.candidates {
            let mark = if Some(c.id) == self.chosen { '*' } else { ' ' };
            write!(
                f,
                "{mark} {:>6} weight {:>5} (effective {:>5}) active {:>6} inactive {:>6} in-flight {:>6}",
                c.id,
                c.weight,
                c.effective_weight,
                c.load.active,
                c.load.inactive,
                c.load.in_flight
            )?;
            match c.score {
                Score::Unranked => {}
                Score::Cost {
                    numerator,
                    denominator,
                } => write!(f, " cost {numerator}/{denominator}")?,
                Score::Weight(w) => write!(f, " rank weight {w}")?,
                Score::Share(s) => write!(f, " share {s}")?,
            }
            match c.exclusion {
                Some(why) => writeln!(f, " excluded: {why}")?,
                None => writeln!(f)?,
            }
        }
        Ok(())
    }
}
