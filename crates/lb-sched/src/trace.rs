//! The trace language: scripted operations on a [`Pool`], one per line, as read by the
//! `sched` example. Servers are numbered from 0 in the order they were added; a removed
//! server's number is not reused.
//!
//! ```text
//! pick [SRC [DST]]        schedule a connection; it counts as active on the server chosen
//! inactive I              one active connection of server I becomes inactive
//! end I                   one active connection of server I ends
//! expire I                one inactive connection of server I ends
//! weight I W              set server I's weight (0 quiesces it)
//! threshold I UPPER LOWER set server I's connection thresholds (0 = unset)
//! add W                   append a server with weight W
//! remove I                remove server I
//! down I | up I           server I's availability
//! drain I                 server I takes no new connections, keeps its persistent clients
//! time T                  the clock is now T seconds (fractions allowed, never backwards)
//! explain [SRC [DST]]     print why the next pick would choose what it chooses
//! ```
//!
//! Addresses are `a.b.c.d[:port]` or `[v6addr][:port]`. Blank lines and `#` comments are
//! ignored.
//!
//! ```
//! use lb_sched::trace::{Op, Tracer};
//! use lb_sched::{Algorithm, PoolConfig};
//! use rand::{SeedableRng, rngs::StdRng};
//!
//! let mut t = Tracer::new(PoolConfig::new(Algorithm::Wrr), &[5, 1, 1]).unwrap();
//! let mut rng = StdRng::seed_from_u64(0);
//! let mut out = Vec::new();
//! for line in ["pick", "pick", "# comment", "", "weight 0 0", "pick"] {
//!     if let Some(op) = Op::parse(line).unwrap() {
//!         out.extend(t.apply(&op, &mut rng).unwrap());
//!     }
//! }
//! assert_eq!(out, ["0", "0", "1"]);
//! ```

use crate::{
    Algorithm, Availability, Backend, BackendId, ConnState, Error, Pool, PoolConfig, Request,
    Thresholds,
};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::time::Duration;
use rand_core::Rng;

/// One operation.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Schedule a connection from `src` to `dst`.
    Pick {
        /// The client.
        src: SocketAddr,
        /// The virtual service address.
        dst: SocketAddr,
    },
    /// An active connection becomes inactive.
    Inactive(u32),
    /// An active connection ends.
    End(u32),
    /// An inactive connection ends.
    Expire(u32),
    /// A weight change.
    Weight(u32, u32),
    /// Threshold change: server, upper, lower.
    Threshold(u32, u32, u32),
    /// A server joins with this weight.
    Add(u32),
    /// A server leaves.
    Remove(u32),
    /// An availability change.
    Availability(u32, Availability),
    /// The clock moves to this many seconds.
    Time(Duration),
    /// Explain the next pick.
    Explain {
        /// The client.
        src: SocketAddr,
        /// The virtual service address.
        dst: SocketAddr,
    },
}

/// A line that is not a valid operation, or an operation that cannot apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceError(pub String);

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<Error> for TraceError {
    fn from(e: Error) -> Self {
        TraceError(e.to_string())
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, TraceError> {
    Err(TraceError(msg.into()))
}

const ANY: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

/// Parses `a.b.c.d`, `a.b.c.d:port`, `[v6]` or `[v6]:port`.
pub fn parse_endpoint(s: &str) -> Result<SocketAddr, TraceError> {
    let bad = || {
        TraceError(format!(
            "bad address {s:?}: expected a.b.c.d[:port] or [v6addr][:port]"
        ))
    };
    if let Some(rest) = s.strip_prefix('[') {
        let (ip, after) = rest.split_once(']').ok_or_else(bad)?;
        let ip: IpAddr = ip.parse::<core::net::Ipv6Addr>().map_err(|_| bad())?.into();
        let port = match after {
            "" => 0,
            p => p
                .strip_prefix(':')
                .and_then(|p| p.parse().ok())
                .ok_or_else(bad)?,
        };
        return Ok(SocketAddr::new(ip, port));
    }
    let (ip, port) = match s.split_once(':') {
        Some((ip, port)) => (ip, port.parse::<u16>().map_err(|_| bad())?),
        None => (s, 0),
    };
    let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
    Ok(SocketAddr::new(ip.into(), port))
}

fn number<T: core::str::FromStr>(what: &str, s: Option<&str>) -> Result<T, TraceError> {
    let s = s.ok_or_else(|| TraceError(format!("missing {what}")))?;
    s.parse()
        .map_err(|_| TraceError(format!("bad {what} {s:?}")))
}

impl Op {
    /// Parses one line; `Ok(None)` for a blank line or a comment.
    pub fn parse(line: &str) -> Result<Option<Op>, TraceError> {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut words = line.split_whitespace();
        let Some(verb) = words.next() else {
            return Ok(None);
        };
        let server = |w: Option<&str>| number::<u32>("server index", w);
        let op = match verb {
            "pick" | "explain" => {
                let src = words.next().map(parse_endpoint).transpose()?.unwrap_or(ANY);
                let dst = words.next().map(parse_endpoint).transpose()?.unwrap_or(ANY);
                if verb == "pick" {
                    Op::Pick { src, dst }
                } else {
                    Op::Explain { src, dst }
                }
            }
            "inactive" => Op::Inactive(server(words.next())?),
            "end" => Op::End(server(words.next())?),
            "expire" => Op::Expire(server(words.next())?),
            "weight" => Op::Weight(server(words.next())?, number("weight", words.next())?),
            "threshold" => Op::Threshold(
                server(words.next())?,
                number("upper threshold", words.next())?,
                number("lower threshold", words.next())?,
            ),
            "add" => Op::Add(number("weight", words.next())?),
            "remove" => Op::Remove(server(words.next())?),
            "down" => Op::Availability(server(words.next())?, Availability::Down),
            "up" => Op::Availability(server(words.next())?, Availability::Up),
            "drain" => Op::Availability(server(words.next())?, Availability::Draining),
            "time" => {
                let t: f64 = number("time", words.next())?;
                if !(t.is_finite() && (0.0..=1e12).contains(&t)) {
                    return err(format!("bad time {t}: expected seconds from 0"));
                }
                Op::Time(Duration::from_secs_f64(t))
            }
            other => return err(format!("unknown operation {other:?}")),
        };
        match words.next() {
            Some(extra) => err(format!("unexpected {extra:?} after {verb}")),
            None => Ok(Some(op)),
        }
    }
}

/// A pool driven by trace operations, with per-server pick counts.
#[derive(Debug)]
pub struct Tracer {
    pool: Pool,
    now: Duration,
    /// Picks per server index; the length is the next index.
    picks: Vec<u64>,
    /// Picks that found no server.
    misses: u64,
}

impl Tracer {
    /// Servers `0..weights.len()` with these weights.
    pub fn new(config: PoolConfig, weights: &[u32]) -> Result<Self, Error> {
        let backends = weights
            .iter()
            .enumerate()
            .map(|(i, &w)| Backend::new(BackendId(i as u32), w));
        Ok(Tracer {
            pool: Pool::with_backends(config, backends)?,
            now: Duration::ZERO,
            picks: alloc::vec![0; weights.len()],
            misses: 0,
        })
    }

    /// The pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    fn id(&self, index: u32) -> Result<BackendId, TraceError> {
        let id = BackendId(index);
        if self.pool.backend(id).is_some() {
            Ok(id)
        } else if (index as usize) < self.picks.len() {
            err(format!("server {index} was removed"))
        } else {
            err(format!("no server {index}"))
        }
    }

    /// Applies one operation; returns the lines it prints.
    pub fn apply(&mut self, op: &Op, rng: &mut dyn Rng) -> Result<Vec<String>, TraceError> {
        let now = self.now;
        match *op {
            Op::Pick { src, dst } => {
                let req = Request {
                    src,
                    dst,
                    key: None,
                };
                return Ok(alloc::vec![match self.pool.pick(&req, now, rng) {
                    Some(id) => {
                        self.pool.conn_opened(id, ConnState::Active)?;
                        self.picks[id.0 as usize] += 1;
                        id.0.to_string()
                    }
                    None => {
                        self.misses += 1;
                        String::from("none")
                    }
                }]);
            }
            Op::Explain { src, dst } => {
                let explanation = self.pool.explain(
                    &Request {
                        src,
                        dst,
                        key: None,
                    },
                    now,
                    rng,
                );
                return Ok(explanation.to_string().lines().map(String::from).collect());
            }
            Op::Inactive(i) => {
                let id = self.with_load(i, |l| l.active > 0, "active connection")?;
                self.pool
                    .conn_changed(id, ConnState::Active, ConnState::Inactive)?;
            }
            Op::End(i) => {
                let id = self.with_load(i, |l| l.active > 0, "active connection")?;
                self.pool.conn_closed(id, ConnState::Active)?;
            }
            Op::Expire(i) => {
                let id = self.with_load(i, |l| l.inactive > 0, "inactive connection")?;
                self.pool.conn_closed(id, ConnState::Inactive)?;
            }
            Op::Weight(i, w) => self.pool.set_weight(self.id(i)?, w, now)?,
            Op::Threshold(i, upper, lower) => self
                .pool
                .set_thresholds(self.id(i)?, Thresholds { upper, lower })?,
            Op::Add(w) => {
                let index = u32::try_from(self.picks.len())
                    .map_err(|_| TraceError("too many servers".into()))?;
                self.pool.add(Backend::new(BackendId(index), w), now)?;
                self.picks.push(0);
            }
            Op::Remove(i) => {
                self.pool.remove(self.id(i)?)?;
            }
            Op::Availability(i, a) => self.pool.set_availability(self.id(i)?, a, now)?,
            Op::Time(t) => {
                if t < self.now {
                    return err("time goes backwards");
                }
                self.now = t;
                self.pool.expire(t);
            }
        }
        Ok(Vec::new())
    }

    fn with_load(
        &self,
        index: u32,
        has: impl Fn(&crate::Load) -> bool,
        what: &str,
    ) -> Result<BackendId, TraceError> {
        let id = self.id(index)?;
        match self.pool.backend(id) {
            Some(b) if has(&b.load()) => Ok(id),
            _ => err(format!("server {index} has no {what}")),
        }
    }

    /// Each server's share of the picks, one line per server, and the misses.
    pub fn stats(&self) -> Vec<String> {
        let total: u64 = self.picks.iter().sum::<u64>() + self.misses;
        let pct = |n: u64| {
            if total == 0 {
                0.0
            } else {
                100.0 * n as f64 / total as f64
            }
        };
        let mut lines: Vec<String> = self
            .picks
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let gone = if self.pool.backend(BackendId(i as u32)).is_none() {
                    " (removed)"
                } else {
                    ""
                };
                format!("server {i}: {n} picks {:.2}%{gone}", pct(n))
            })
            .collect();
        lines.push(format!(
            "none: {} picks {:.2}%",
            self.misses,
            pct(self.misses)
        ));
        lines
    }
}

/// Builds an algorithm from its name, IPVS flags and a table size, as the trace tool's
/// options give them. Flags may also be `bounded=PERCENT` (bounded load for the consistent
/// hashes) and `slow-start=SECONDS`.
pub fn config(name: &str, flags: &[&str], table_size: Option<u32>) -> Result<PoolConfig, Error> {
    let mut algorithm = Algorithm::from_name(name)?;
    if let Some(size) = table_size {
        algorithm = algorithm.with_table_size(size)?;
    }
    let mut bounded = None;
    let mut slow = None;
    for flag in flags {
        if let Some(v) = flag.strip_prefix("bounded=") {
            let factor = v.parse().map_err(|_| Error::InvalidParameter {
                what: "bounded",
                why: "a percentage",
            })?;
            bounded = Some(crate::BoundedLoad::new(factor)?);
        } else if let Some(v) = flag.strip_prefix("slow-start=") {
            let secs: f64 = v.parse().map_err(|_| Error::InvalidParameter {
                what: "slow-start",
                why: "seconds",
            })?;
            if !(secs.is_finite() && secs > 0.0 && secs < 1e9) {
                return Err(Error::InvalidParameter {
                    what: "slow-start",
                    why: "seconds above 0",
                });
            }
            slow = Some(crate::SlowStart::new(Duration::from_secs_f64(secs))?);
        } else {
            algorithm = algorithm.with_flag(flag)?;
        }
    }
    let mut config = PoolConfig::new(algorithm);
    config.bounded_load = bounded;
    config.slow_start = slow;
    Ok(config)
}
