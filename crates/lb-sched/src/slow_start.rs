//! Slow start: a backend that joins or recovers ramps its effective weight up over a window,
//! with Envoy's formula `weight * max(min_percent, (t / window) ^ (1 / aggression))`.
//!
//! The ramp changes the weight every algorithm reads, so it works with all of them: tables are
//! rebuilt as the ramped weights change (at most [`SlowStart::STEPS`] times per window).
//! Weights are integers, as in IPVS: a weight of 1 cannot ramp; use larger weights (100) for a
//! fine ramp.

use crate::Error;
use core::time::Duration;

/// Slow-start settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SlowStart {
    window: Duration,
    aggression: f64,
    min_percent: u8,
}

impl SlowStart {
    /// How many times per window the ramped weights are recomputed.
    pub const STEPS: u32 = 100;

    /// A linear ramp over `window` starting at 10% (Envoy's defaults for aggression and
    /// `min_weight_percent`).
    pub fn new(window: Duration) -> Result<Self, Error> {
        if window.is_zero() {
            return Err(Error::InvalidParameter {
                what: "slow start window",
                why: "above zero",
            });
        }
        Ok(SlowStart {
            window,
            aggression: 1.0,
            min_percent: 10,
        })
    }

    /// Sets the aggression: above 1 ramps faster at first, below 1 slower.
    pub fn with_aggression(mut self, aggression: f64) -> Result<Self, Error> {
        if !(aggression.is_finite() && aggression > 0.0) {
            return Err(Error::InvalidParameter {
                what: "slow start aggression",
                why: "above 0",
            });
        }
        self.aggression = aggression;
        Ok(self)
    }

    /// Sets the weight the ramp starts from, in percent of the full weight (0 to 100).
    pub fn with_min_percent(mut self, percent: u8) -> Result<Self, Error> {
        if percent > 100 {
            return Err(Error::InvalidParameter {
                what: "slow start minimum",
                why: "0 to 100",
            });
        }
        self.min_percent = percent;
        Ok(self)
    }

    /// The ramp's length.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// The ramped weight `elapsed` into the ramp, or `None` once the ramp is over. A non-zero
    /// weight never ramps below 1.
    pub fn ramp(&self, weight: u32, elapsed: Duration) -> Option<u32> {
        if elapsed >= self.window {
            return None;
        }
        if weight == 0 {
            return Some(0);
        }
        let t = elapsed.as_secs_f64().max(1e-3) / self.window.as_secs_f64();
        let factor = libm::pow(t, 1.0 / self.aggression).max(self.min_percent as f64 / 100.0);
        Some(((weight as f64 * factor) as u32).clamp(1, weight))
    }

    /// How often ramps are recomputed.
    pub(crate) fn step(&self) -> Duration {
        self.window / Self::STEPS
    }
}
