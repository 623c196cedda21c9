//! The decaying flap penalty (RFC 2439's figure of merit) behind [`FlapDamping`].

use core::time::Duration;

use super::FlapDamping;

#[derive(Clone, Debug)]
pub(crate) struct Damper {
    config: FlapDamping,
    /// The penalty as of `at`.
    penalty: f64,
    at: Duration,
    suppressed: bool,
}

impl Damper {
    pub(crate) fn new(config: FlapDamping) -> Damper {
        Damper {
            config,
            penalty: 0.0,
            at: Duration::ZERO,
            suppressed: false,
        }
    }

    fn decayed(&self, now: Duration) -> f64 {
        let dt = now.saturating_sub(self.at).as_secs_f64();
        self.penalty * (-dt / self.config.half_life.as_secs_f64()).exp2()
    }

    /// Records one change of probed health at `now`.
    pub(crate) fn flap(&mut self, now: Duration) {
        let p = self.decayed(now) + f64::from(self.config.penalty);
        self.penalty = p.min(f64::from(self.config.ceiling));
        self.at = now;
        if self.penalty > f64::from(self.config.suppress) {
            self.suppressed = true;
        }
    }

    /// Ends the suppression if the penalty has decayed under `reuse`; whether it ended.
    pub(crate) fn release(&mut self, now: Duration) -> bool {
        // Also at `release_at` itself, whatever the rounding: a caller woken then must see
        // the release, or it would be woken again at the same instant forever.
        let due = self.release_at().is_some_and(|at| now >= at);
        if self.suppressed && (due || self.decayed(now) < f64::from(self.config.reuse)) {
            self.suppressed = false;
            return true;
        }
        false
    }

    pub(crate) fn suppressed(&self) -> bool {
        self.suppressed
    }

    /// When the penalty will fall under `reuse`, while suppressed.
    pub(crate) fn release_at(&self) -> Option<Duration> {
        if !self.suppressed {
            return None;
        }
        let halvings = (self.penalty / f64::from(self.config.reuse))
            .log2()
            .max(0.0);
        // A microsecond late, so that `release` at this instant succeeds despite rounding.
        let secs = self.config.half_life.as_secs_f64() * halvings + 1e-6;
        Some(self.at + Duration::from_secs_f64(secs))
    }
}
