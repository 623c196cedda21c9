//! How a tracker counts, schedules and softens: its configuration.

use core::time::Duration;

use crate::Error;

/// How passes and failures add up to a state change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Counting {
    /// `fall` failures in a row mark an up target down; `rise` passes in a row bring a down
    /// target up; one opposite result resets the count. pingora and Envoy count this way, and
    /// so does HAProxy in effect: its `health` counter jumps back to its maximum on any pass
    /// while up, and to 0 on any failure while down (src/check.c).
    Consecutive,
    /// One saturating counter in `[0, rise + fall - 1]`, up while it is at least `rise` (the
    /// range of HAProxy's `health`), stepped by one per result: a pass while degrading undoes
    /// one failure instead of all of them, so intermittent failures add up (with fall 3,
    /// `F F P F F` marks the target down; consecutive counting never would). Reaching `rise`
    /// from below jumps to the top and dropping below `rise` jumps to 0, as in HAProxy.
    Saturating,
}

/// The state a tracker starts in (HAProxy `init-state`, keepalived `alpha`, Envoy's "one
/// success marks a new host healthy"). Every choice but [`InitialState::Unknown`] emits an
/// initial transition at creation; `Unknown` emits one at the first conclusive outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InitialState {
    /// Up; `fall` failures mark it down (HAProxy `fully-up`, keepalived's default).
    Up,
    /// Up, but one failure marks it down (HAProxy `up`, its default).
    UpFragile,
    /// Down; one pass brings it up (HAProxy `down`, keepalived `alpha`).
    DownFragile,
    /// Down; `rise` passes bring it up (HAProxy `fully-down`).
    Down,
    /// Neither until the first conclusive outcome, which decides at once (Envoy at startup).
    Unknown,
}

/// Probe intervals per state (HAProxy `inter`/`fastinter`/`downinter`, Envoy's interval and
/// edge intervals, keepalived `delay_loop`/`delay_before_retry`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Intervals {
    /// Up and steady.
    pub up: Duration,
    /// Up with failures counted toward `fall` (keepalived `delay_before_retry`).
    pub falling: Duration,
    /// Down and steady (grows with [`Backoff`] if set).
    pub down: Duration,
    /// Down with passes counted toward `rise`.
    pub rising: Duration,
    /// Not yet known (initial state `Unknown`).
    pub unknown: Duration,
}

impl Intervals {
    /// The same interval in every state.
    pub fn uniform(every: Duration) -> Intervals {
        Intervals {
            up: every,
            falling: every,
            down: every,
            rising: every,
            unknown: every,
        }
    }

    /// HAProxy's three: `inter` while up, `fastinter` while changing state or unknown,
    /// `downinter` while down.
    pub fn haproxy(inter: Duration, fastinter: Duration, downinter: Duration) -> Intervals {
        Intervals {
            up: inter,
            falling: fastinter,
            down: downinter,
            rising: fastinter,
            unknown: fastinter,
        }
    }
}

/// Random spread of probe times, so thousands of targets do not probe in lockstep.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Jitter {
    /// The first probe runs at a uniformly random time in `[0, warmup]` after creation
    /// (keepalived `warmup`, Envoy `initial_jitter`).
    pub warmup: Duration,
    /// Each interval is scaled by a uniformly random factor in `[1 - p/100, 1 + p/100]`
    /// (HAProxy `spread-checks`, at most 50).
    pub spread_percent: u8,
}

/// Exponential backoff of probes to a dead target: after `n` failed probes while steadily
/// down, the next one waits `min(down * factor^n, max)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Backoff {
    /// Growth per failed probe (at least 2).
    pub factor: u32,
    /// The longest wait.
    pub max: Duration,
}

/// Slow start after recovery (never at creation): the effective weight grows from
/// `min_percent` to 100 % over `window`, as `max(min, (t / window)^(1 / aggression))`
/// (Envoy's formula; aggression 1.0 is HAProxy's linear `slowstart`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SlowStart {
    /// How long the ramp lasts.
    pub window: Duration,
    /// Curve exponent, > 0: above 1 ramps fast at first, below 1 slowly.
    pub aggression: f64,
    /// The weight at the start of the ramp, in percent (Envoy: 10).
    pub min_percent: u8,
}

/// Flap damping in the style of BGP route-flap damping (RFC 2439): every state change of the
/// probed health adds `penalty`; the penalty halves every `half_life`; above `suppress` the
/// target is held down, and released once the penalty decays under `reuse`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlapDamping {
    /// Added per change of probed health.
    pub penalty: u32,
    /// Halving time of the penalty.
    pub half_life: Duration,
    /// Hold the target down while the penalty is above this.
    pub suppress: u32,
    /// Release once the penalty falls below this (less than `suppress`).
    pub reuse: u32,
    /// The penalty never exceeds this, which bounds the longest suppression.
    pub ceiling: u32,
}

/// Everything a [`Tracker`](crate::Tracker) needs. Start from [`TrackerConfig::new`] (HAProxy's
/// defaults) or [`TrackerConfig::keepalived`] and change fields.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrackerConfig {
    /// Passes that bring a down target up (at least 1).
    pub rise: u32,
    /// Failures that mark an up target down (at least 1).
    pub fall: u32,
    /// How passes and failures count.
    pub counting: Counting,
    /// The starting state.
    pub initial: InitialState,
    /// Probe intervals per state.
    pub intervals: Intervals,
    /// Spread of probe times.
    pub jitter: Jitter,
    /// Backoff for dead targets.
    pub backoff: Option<Backoff>,
    /// Slow start after recovery.
    pub slow_start: Option<SlowStart>,
    /// Flap damping.
    pub damping: Option<FlapDamping>,
    /// How many recent outcomes to keep for "why is it down".
    pub history: usize,
}

impl TrackerConfig {
    /// One interval in every state, rise 2 and fall 3 (HAProxy's defaults), consecutive
    /// counting, unknown until the first conclusive probe (Envoy's startup rule), no jitter,
    /// backoff, slow start or damping, 16 outcomes of history.
    pub fn new(interval: Duration) -> TrackerConfig {
        TrackerConfig {
            rise: 2,
            fall: 3,
            counting: Counting::Consecutive,
            initial: InitialState::Unknown,
            intervals: Intervals::uniform(interval),
            jitter: Jitter::default(),
            backoff: None,
            slow_start: None,
            damping: None,
            history: 16,
        }
    }

    /// keepalived's checker logic: up at start (`alpha` starts down, one success brings it
    /// up), down after `retry + 1` failures retried `delay_before_retry` apart, one success
    /// brings a down target up, probes every `delay_loop`, first probe within `warmup`.
    pub fn keepalived(
        delay_loop: Duration,
        retry: u32,
        delay_before_retry: Duration,
        warmup: Duration,
        alpha: bool,
    ) -> TrackerConfig {
        TrackerConfig {
            rise: 1,
            fall: retry.saturating_add(1),
            counting: Counting::Consecutive,
            initial: if alpha {
                InitialState::DownFragile
            } else {
                InitialState::Up
            },
            intervals: Intervals {
                up: delay_loop,
                falling: delay_before_retry,
                down: delay_loop,
                rising: delay_loop,
                unknown: delay_loop,
            },
            jitter: Jitter {
                warmup,
                spread_percent: 0,
            },
            backoff: None,
            slow_start: None,
            damping: None,
            history: 16,
        }
    }

    /// Checks the ranges: rise and fall at least 1, intervals non-zero, spread at most 50 %,
    /// backoff factor at least 2, slow-start window non-zero and aggression positive, damping
    /// thresholds ordered.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |what, why| Err(Error::InvalidParameter { what, why });
        if self.rise == 0 || self.fall == 0 {
            return bad("rise/fall", "at least 1");
        }
        if self.rise.checked_add(self.fall).is_none() {
            return bad("rise/fall", "rise + fall must fit in u32");
        }
        let i = &self.intervals;
        if [i.up, i.falling, i.down, i.rising, i.unknown].contains(&Duration::ZERO) {
            return bad("interval", "greater than zero");
        }
        if self.jitter.spread_percent > 50 {
            return bad("spread_percent", "at most 50");
        }
        if let Some(b) = self.backoff {
            if b.factor < 2 || b.max < i.down {
                return bad(
                    "backoff",
                    "factor at least 2 and max at least the down interval",
                );
            }
        }
        if let Some(s) = self.slow_start {
            if s.window.is_zero() || !(s.aggression.is_finite() && s.aggression > 0.0) {
                return bad("slow_start", "a non-zero window and a positive aggression");
            }
            if s.min_percent > 100 {
                return bad("slow_start.min_percent", "at most 100");
            }
        }
        if let Some(d) = self.damping {
            if d.half_life.is_zero()
                || d.reuse == 0
                || d.reuse >= d.suppress
                || d.ceiling < d.suppress
            {
                return bad(
                    "damping",
                    "a non-zero half-life and 0 < reuse < suppress <= ceiling",
                );
            }
        }
        Ok(())
    }
}
