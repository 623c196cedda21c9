//! One target's health: rise/fall counting, probe scheduling, admin states, slow start, flap
//! damping and a history of recent outcomes.
//!
//! A [`Tracker`] is a pure state machine. The caller asks [`Tracker::next_probe_at`] when to
//! probe, feeds each result to [`Tracker::observe`], wakes it at [`Tracker::poll_timeout`] with
//! [`Tracker::handle_timeout`] (damping releases), and drains [`Tracker::poll_transition`].

mod config;
mod damping;
mod ring;

use core::time::Duration;
use std::sync::Arc;

use rand_core::Rng;

pub use config::{
    Backoff, Counting, FlapDamping, InitialState, Intervals, Jitter, SlowStart, TrackerConfig,
};

use crate::agent::AgentReport;
use crate::{Error, Outcome, Reason, ReportedWeight, Verdict};
use damping::Damper;
use ring::Ring;

/// What the probes say about a target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Health {
    /// No conclusive probe yet (initial state `Unknown`).
    Unknown,
    /// Passing.
    Up,
    /// Failing.
    Down,
}

/// An administrative state set by an operator or reported by an agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Admin {
    /// Normal service.
    Ready,
    /// Alive but takes no new traffic (weight 0); probes go on.
    Drain,
    /// Out of service: no probes, no traffic.
    Maint,
}

/// The state a tracker publishes: health with damping and the administrative state applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// No conclusive probe yet.
    Unknown,
    /// Serving.
    Up,
    /// Not serving: probes fail, or flap damping holds it.
    Down,
    /// Healthy but drained by an operator or its agent.
    Drain,
    /// In maintenance: not probed.
    Maint,
}

impl State {
    /// `"up"`, `"down"`, `"unknown"`, `"drain"` or `"maint"`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Unknown => "unknown",
            State::Up => "up",
            State::Down => "down",
            State::Drain => "drain",
            State::Maint => "maint",
        }
    }
}

/// A change of published state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    /// When it happened.
    pub at: Duration,
    /// The state before (`Unknown` for the initial transition).
    pub from: State,
    /// The state after.
    pub to: State,
    /// The outcome's reason, or [`Reason::Initial`], [`Reason::Admin`], [`Reason::Damped`],
    /// [`Reason::Undamped`].
    pub reason: Reason,
}

/// One outcome as kept in the history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observation {
    /// When it was observed.
    pub at: Duration,
    /// Its verdict.
    pub verdict: Verdict,
    /// Its reason.
    pub reason: Reason,
    /// Its latency, if measured.
    pub latency: Option<Duration>,
}

/// Counts since creation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrackerStats {
    /// Passing outcomes.
    pub passes: u64,
    /// Failing outcomes (hard failures included).
    pub failures: u64,
    /// Inconclusive outcomes.
    pub inconclusive: u64,
    /// Published transitions (the initial one included).
    pub transitions: u64,
}

/// One target's health state machine.
#[derive(Clone, Debug)]
pub struct Tracker {
    /// Shared by the trackers a [`Checker`](crate::Checker) adds with one configuration:
    /// thousands of targets read one copy (cache-friendly) instead of one each.
    config: Arc<TrackerConfig>,
    health: Health,
    /// Consecutive: opposite results since the last steady state. Saturating: HAProxy's
    /// `health` in `[0, rise + fall - 1]`.
    counter: u32,
    admin: Admin,
    agent_admin: Admin,
    next_probe: Option<Duration>,
    failures_while_down: u32,
    recovered_at: Option<Duration>,
    /// Boxed: most trackers have none, and the hot record stays small.
    damper: Option<Box<Damper>>,
    reported_weight: Option<ReportedWeight>,
    reported_maxconn: Option<u32>,
    published: State,
    history: Ring<Observation>,
    pending: Ring<Transition>,
    stats: TrackerStats,
}

impl Tracker {
    /// A tracker created at `now`; its first probe falls at a random time within the warm-up.
    /// Queues the initial transition unless the initial state is `Unknown`.
    pub fn new(config: TrackerConfig, now: Duration, rng: &mut impl Rng) -> Result<Tracker, Error> {
        Tracker::shared(Arc::new(config), now, rng)
    }

    /// [`Tracker::new`] with a configuration other trackers may share.
    pub(crate) fn shared(
        config: Arc<TrackerConfig>,
        now: Duration,
        rng: &mut impl Rng,
    ) -> Result<Tracker, Error> {
        config.validate()?;
        let mut t = Tracker {
            health: Health::Unknown,
            counter: 0,
            admin: Admin::Ready,
            agent_admin: Admin::Ready,
            next_probe: Some(now + uniform(rng, config.jitter.warmup)),
            failures_while_down: 0,
            recovered_at: None,
            damper: config.damping.map(|d| Box::new(Damper::new(d))),
            reported_weight: None,
            reported_maxconn: None,
            published: State::Unknown,
            history: Ring::new(config.history),
            // A handful of transitions between polls is plenty; older ones are dropped first.
            pending: Ring::new(8),
            stats: TrackerStats::default(),
            config,
        };
        t.reset_to_initial();
        t.publish(now, Reason::Initial);
        Ok(t)
    }

    fn reset_to_initial(&mut self) {
        let TrackerConfig {
            rise,
            fall,
            counting,
            ..
        } = *self.config;
        let top = rise + fall - 1;
        (self.health, self.counter) = match (self.config.initial, counting) {
            (InitialState::Unknown, _) => (Health::Unknown, 0),
            (InitialState::Up, Counting::Consecutive) => (Health::Up, 0),
            (InitialState::Up, Counting::Saturating) => (Health::Up, top),
            (InitialState::UpFragile, Counting::Consecutive) => (Health::Up, fall - 1),
            (InitialState::UpFragile, Counting::Saturating) => (Health::Up, rise),
            (InitialState::DownFragile, Counting::Consecutive) => (Health::Down, rise - 1),
            (InitialState::DownFragile, Counting::Saturating) => (Health::Down, rise - 1),
            (InitialState::Down, _) => (Health::Down, 0),
        };
        self.failures_while_down = 0;
    }

    /// The configuration.
    pub fn config(&self) -> &TrackerConfig {
        &self.config
    }

    /// The published state.
    pub fn state(&self) -> State {
        self.published
    }

    /// What the probes alone say (no damping, no admin state).
    pub fn health(&self) -> Health {
        self.health
    }

    /// The administrative state in force: the stronger of the operator's and the agent's.
    pub fn admin(&self) -> Admin {
        self.admin.max(self.agent_admin)
    }

    /// When the next probe is due; `None` in maintenance.
    #[must_use]
    pub fn next_probe_at(&self) -> Option<Duration> {
        self.next_probe
    }

    /// The earliest time the tracker wants to be called: the next probe or the end of a
    /// damping suppression. Call [`Tracker::handle_timeout`] then.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Duration> {
        let release = self.damper.as_deref().and_then(Damper::release_at);
        match (self.next_probe, release) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Releases a damping suppression whose time has come (a transition may follow).
    pub fn handle_timeout(&mut self, now: Duration) {
        if self.damper.as_mut().is_some_and(|d| d.release(now)) {
            self.publish(now, Reason::Undamped);
        }
    }

    /// The next transition, oldest first.
    #[must_use]
    pub fn poll_transition(&mut self) -> Option<Transition> {
        self.pending.pop_front()
    }

    /// The last outcomes, oldest first.
    pub fn history(&self) -> impl DoubleEndedIterator<Item = &Observation> + ExactSizeIterator {
        self.history.iter()
    }

    /// Counts since creation.
    pub fn stats(&self) -> TrackerStats {
        self.stats
    }

    /// The last `maxconn` an agent reported.
    pub fn reported_maxconn(&self) -> Option<u32> {
        self.reported_maxconn
    }

    /// Feeds one probe outcome observed at `now`, and schedules the next probe one interval
    /// after the slot this probe was due in (never before `now`).
    pub fn observe(&mut self, now: Duration, outcome: &Outcome, rng: &mut impl Rng) {
        self.history.push_back(Observation {
            at: now,
            verdict: outcome.verdict,
            reason: outcome.reason,
            latency: outcome.latency,
        });
        if let Some(w) = outcome.weight {
            self.reported_weight = Some(w);
        }
        if let Some(report) = &outcome.agent {
            self.apply_agent(report);
        }
        let before = self.health;
        match outcome.verdict {
            Verdict::Pass => {
                self.stats.passes += 1;
                self.count(true);
            }
            Verdict::Fail => {
                self.stats.failures += 1;
                self.count(false);
            }
            Verdict::HardFail => {
                self.stats.failures += 1;
                self.health = Health::Down;
                self.counter = 0;
            }
            Verdict::Inconclusive => self.stats.inconclusive += 1,
        }
        // Backoff grows with failures while steadily down and restarts once the target is up.
        if self.health != Health::Down {
            self.failures_while_down = 0;
        } else if before == Health::Down
            && matches!(outcome.verdict, Verdict::Fail | Verdict::HardFail)
        {
            self.failures_while_down = self.failures_while_down.saturating_add(1);
        }
        if before != Health::Unknown && before != self.health {
            if let Some(d) = &mut self.damper {
                d.flap(now);
            }
        }
        let released = self.damper.as_mut().is_some_and(|d| d.release(now));
        if self.next_probe.is_some() {
            let slot = self.next_probe.map_or(now, |s| s.min(now));
            let next = slot + self.jittered(self.interval(), rng);
            self.next_probe = Some(next.max(now));
        }
        let reason = if released && self.health == Health::Up {
            Reason::Undamped
        } else {
            outcome.reason
        };
        self.publish(now, reason);
    }

    fn count(&mut self, pass: bool) {
        let TrackerConfig { rise, fall, .. } = *self.config;
        let top = rise + fall - 1;
        if self.health == Health::Unknown {
            // The first conclusive outcome decides (Envoy's startup rule).
            (self.health, self.counter) = match (pass, self.config.counting) {
                (true, Counting::Saturating) => (Health::Up, top),
                (true, Counting::Consecutive) => (Health::Up, 0),
                (false, _) => (Health::Down, 0),
            };
            return;
        }
        match self.config.counting {
            Counting::Consecutive => {
                let opposite = (self.health == Health::Up) != pass;
                if !opposite {
                    self.counter = 0;
                    return;
                }
                self.counter += 1;
                let needed = if pass { rise } else { fall };
                if self.counter >= needed {
                    self.counter = 0;
                    self.health = if pass { Health::Up } else { Health::Down };
                }
            }
            Counting::Saturating => {
                if pass && self.counter < top {
                    self.counter += 1;
                    if self.counter == rise {
                        self.counter = top;
                    }
                } else if !pass && self.counter > 0 {
                    self.counter -= 1;
                    if self.counter + 1 == rise {
                        self.counter = 0;
                    }
                }
                self.health = if self.counter >= rise {
                    Health::Up
                } else {
                    Health::Down
                };
            }
        }
    }

    fn apply_agent(&mut self, report: &AgentReport) {
        if let Some(w) = report.weight_percent {
            self.reported_weight = Some(ReportedWeight::Percent(w));
        }
        if let Some(m) = report.maxconn {
            self.reported_maxconn = Some(m);
        }
        if let Some(a) = report.admin {
            self.agent_admin = a;
        }
    }

    /// The interval for the current state, before jitter.
    pub fn interval(&self) -> Duration {
        let i = &self.config.intervals;
        let changing = match self.config.counting {
            Counting::Consecutive => self.counter > 0,
            Counting::Saturating => match self.health {
                Health::Up => self.counter < self.config.rise + self.config.fall - 1,
                _ => self.counter > 0,
            },
        };
        match (self.health, changing) {
            (Health::Unknown, _) => i.unknown,
            (Health::Up, false) => i.up,
            (Health::Up, true) => i.falling,
            (Health::Down, true) => i.rising,
            (Health::Down, false) => match self.config.backoff {
                None => i.down,
                Some(b) => {
                    let factor = u64::from(b.factor)
                        .checked_pow(self.failures_while_down)
                        .unwrap_or(u64::MAX);
                    let nanos = u64::try_from(i.down.as_nanos())
                        .unwrap_or(u64::MAX)
                        .saturating_mul(factor);
                    Duration::from_nanos(nanos).min(b.max)
                }
            },
        }
    }

    fn jittered(&self, interval: Duration, rng: &mut impl Rng) -> Duration {
        let p = u32::from(self.config.jitter.spread_percent);
        if p == 0 {
            return interval;
        }
        let spread = interval * p / 100;
        interval - spread + uniform(rng, spread * 2)
    }

    /// Sets the operator's administrative state at `now`. Entering maintenance stops probing;
    /// leaving it restarts from the initial state with a probe at once (HAProxy applies
    /// `init-state` to servers leaving maintenance).
    pub fn set_admin(&mut self, now: Duration, admin: Admin) {
        let was_maint = self.admin() == Admin::Maint;
        self.admin = admin;
        let is_maint = self.admin() == Admin::Maint;
        if is_maint && !was_maint {
            self.next_probe = None;
        } else if was_maint && !is_maint {
            self.reset_to_initial();
            self.next_probe = Some(now);
        }
        self.publish(now, Reason::Admin);
    }

    /// The weight to give the target at `now`, from its configured weight: 0 unless up; the
    /// reported weight (agent percentage or dynamic MISC_CHECK absolute) replaces the
    /// configured one; slow start ramps it after a recovery. A positive weight stays at least 1
    /// during the ramp.
    pub fn effective_weight(&self, now: Duration, configured: u32) -> u32 {
        if self.published != State::Up {
            return 0;
        }
        let base = match self.reported_weight {
            None => configured,
            Some(ReportedWeight::Absolute(w)) => w,
            Some(ReportedWeight::Percent(p)) => {
                u32::try_from(u64::from(configured) * u64::from(p) / 100).unwrap_or(u32::MAX)
            }
        };
        let (Some(ss), Some(since)) = (self.config.slow_start, self.recovered_at) else {
            return base;
        };
        let elapsed = now.saturating_sub(since);
        if elapsed >= ss.window || base == 0 {
            return base;
        }
        let t = elapsed.as_secs_f64().max(1e-9) / ss.window.as_secs_f64();
        let factor = t
            .powf(1.0 / ss.aggression)
            .max(f64::from(ss.min_percent) / 100.0)
            .min(1.0);
        // Truncation is the intent: a fraction of an integer weight, at least 1.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let w = (f64::from(base) * factor) as u32;
        w.max(1)
    }

    /// When flap damping will release the target, while it holds it.
    pub fn damped_until(&self) -> Option<Duration> {
        self.damper.as_deref().and_then(Damper::release_at)
    }

    /// Whether flap damping holds the target down now.
    pub fn is_damped(&self) -> bool {
        self.damper.as_deref().is_some_and(Damper::suppressed)
    }

    fn publish(&mut self, now: Duration, reason: Reason) {
        let state = match (self.admin(), self.health, self.is_damped()) {
            (Admin::Maint, _, _) => State::Maint,
            (_, Health::Unknown, _) => State::Unknown,
            (_, Health::Down, _) | (_, Health::Up, true) => State::Down,
            (Admin::Drain, Health::Up, false) => State::Drain,
            (Admin::Ready, Health::Up, false) => State::Up,
        };
        if state == self.published {
            return;
        }
        let reason = if self.health == Health::Up && self.is_damped() && state == State::Down {
            Reason::Damped
        } else {
            reason
        };
        // Slow start after a recovery or maintenance, never at creation (HAProxy).
        if state == State::Up && matches!(self.published, State::Down | State::Maint) {
            self.recovered_at = Some(now);
        }
        self.pending.push_back(Transition {
            at: now,
            from: self.published,
            to: state,
            reason,
        });
        self.stats.transitions += 1;
        self.published = state;
    }
}

/// A uniformly random duration in `[0, max]`.
pub(crate) fn uniform(rng: &mut impl Rng, max: Duration) -> Duration {
    let max = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    if max == 0 {
        return Duration::ZERO;
    }
    // The modulo bias over 64 random bits is below 2^-30 for any realistic interval.
    Duration::from_nanos(rng.next_u64() % max.saturating_add(1).max(1))
}
