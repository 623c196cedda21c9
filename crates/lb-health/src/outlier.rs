//! Passive outlier detection (Envoy's outlier detection, linkerd's failure accrual): judge
//! hosts by the outcomes of real requests, eject the bad ones for a while.
//!
//! Feed every request's result to [`OutlierDetector::record`] (consecutive-failure ejections
//! happen there, at once) and call [`OutlierDetector::handle_timeout`] at
//! [`OutlierDetector::poll_timeout`]: each sweep returns hosts whose ejection ran out, and
//! judges the interval's success rates and failure percentages. An ejection lasts
//! `base_ejection_time x times ejected`, capped at `max_ejection_time`, plus random jitter;
//! at most `max_ejection_percent` of hosts are ejected at once, but one always may be.

use std::collections::VecDeque;
use std::time::Duration;

use rand_core::Rng;

use crate::Error;
use crate::tracker::uniform;

/// A host of an [`OutlierDetector`]: an index the caller assigns, `0..hosts`.
pub type HostId = usize;

/// The result of one request, as the detector sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestOutcome {
    /// The request succeeded.
    Success,
    /// A failure of the host (a 5xx, a reset).
    Failure,
    /// A gateway failure (502, 503, 504): counts as a failure and toward
    /// `consecutive_gateway_failures`.
    GatewayFailure,
    /// A failure to reach the host (connect refused or timed out).
    LocalOriginFailure,
}

impl RequestOutcome {
    fn is_failure(self) -> bool {
        self != RequestOutcome::Success
    }
}

/// Success-rate ejection: hosts whose success rate is below `mean - stdev_factor x stdev`
/// of the hosts with enough requests.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SuccessRate {
    /// Hosts with enough volume needed for the statistic (Envoy: 5).
    pub minimum_hosts: usize,
    /// Requests a host needs in the interval to be judged (Envoy: 100).
    pub request_volume: u64,
    /// The number of standard deviations (Envoy: 1.9).
    pub stdev_factor: f64,
}

/// Failure-percentage ejection: hosts failing at least `threshold_percent` of requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailurePercentage {
    /// The ejection threshold (Envoy: 85).
    pub threshold_percent: u8,
    /// Hosts with enough volume needed (Envoy: 5).
    pub minimum_hosts: usize,
    /// Requests a host needs in the interval (Envoy: 50).
    pub request_volume: u64,
}

/// Outlier detection settings; [`OutlierConfig::default`] is Envoy's defaults with its
/// enforcing ones on (consecutive failures 5, success rate) and the rest off.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OutlierConfig {
    /// Eject after this many failures in a row (Envoy `consecutive_5xx`).
    pub consecutive_failures: Option<u32>,
    /// Eject after this many gateway failures in a row.
    pub consecutive_gateway_failures: Option<u32>,
    /// Success-rate ejection.
    pub success_rate: Option<SuccessRate>,
    /// Failure-percentage ejection.
    pub failure_percentage: Option<FailurePercentage>,
    /// Time between sweeps (Envoy: 10 s).
    pub interval: Duration,
    /// Ejection time per time ejected (Envoy: 30 s).
    pub base_ejection_time: Duration,
    /// The longest ejection (Envoy: 300 s).
    pub max_ejection_time: Duration,
    /// Random time added to each ejection, up to this.
    pub max_ejection_jitter: Duration,
    /// The most hosts ejected at once, in percent (Envoy: 10); one host always may be.
    pub max_ejection_percent: u8,
}

impl Default for OutlierConfig {
    fn default() -> OutlierConfig {
        OutlierConfig {
            consecutive_failures: Some(5),
            consecutive_gateway_failures: None,
            success_rate: Some(SuccessRate {
                minimum_hosts: 5,
                request_volume: 100,
                stdev_factor: 1.9,
            }),
            failure_percentage: None,
            interval: Duration::from_secs(10),
            base_ejection_time: Duration::from_secs(30),
            max_ejection_time: Duration::from_secs(300),
            max_ejection_jitter: Duration::ZERO,
            max_ejection_percent: 10,
        }
    }
}

/// Why a host was ejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EjectReason {
    /// `consecutive_failures` in a row.
    ConsecutiveFailures,
    /// `consecutive_gateway_failures` in a row.
    ConsecutiveGatewayFailures,
    /// Success rate below the pool's mean minus the deviation.
    SuccessRate,
    /// Failure percentage at or above the threshold.
    FailurePercentage,
}

/// An ejection or its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutlierEvent {
    /// `host` is ejected until `until`.
    Ejected {
        /// The host.
        host: HostId,
        /// Why.
        reason: EjectReason,
        /// When it returns.
        until: Duration,
    },
    /// `host` is back.
    Returned {
        /// The host.
        host: HostId,
    },
}

#[derive(Clone, Debug, Default)]
struct HostState {
    consecutive: u32,
    consecutive_gateway: u32,
    successes: u64,
    failures: u64,
    ejected_until: Option<Duration>,
    times_ejected: u32,
    ejected_this_interval: bool,
}

/// Passive outlier detection over a fixed set of hosts.
#[derive(Clone, Debug)]
pub struct OutlierDetector {
    config: OutlierConfig,
    hosts: Vec<HostState>,
    next_sweep: Duration,
    events: VecDeque<OutlierEvent>,
}

impl OutlierDetector {
    /// A detector for `hosts` hosts, starting at `now`.
    pub fn new(
        config: OutlierConfig,
        hosts: usize,
        now: Duration,
    ) -> Result<OutlierDetector, Error> {
        if config.interval.is_zero() || config.base_ejection_time.is_zero() {
            return Err(Error::InvalidParameter {
                what: "outlier interval/base_ejection_time",
                why: "greater than zero",
            });
        }
        if config.max_ejection_percent > 100
            || config
                .failure_percentage
                .is_some_and(|f| f.threshold_percent > 100)
        {
            return Err(Error::InvalidParameter {
                what: "outlier percentage",
                why: "at most 100",
            });
        }
        if config
            .success_rate
            .is_some_and(|s| !(s.stdev_factor.is_finite() && s.stdev_factor >= 0.0))
        {
            return Err(Error::InvalidParameter {
                what: "stdev_factor",
                why: "finite and not negative",
            });
        }
        Ok(OutlierDetector {
            config,
            hosts: vec![HostState::default(); hosts],
            next_sweep: now + config.interval,
            events: VecDeque::new(),
        })
    }

    /// Whether `host` is ejected.
    pub fn is_ejected(&self, host: HostId) -> bool {
        self.hosts
            .get(host)
            .is_some_and(|h| h.ejected_until.is_some())
    }

    /// Hosts ejected now.
    pub fn ejected_count(&self) -> usize {
        self.hosts
            .iter()
            .filter(|h| h.ejected_until.is_some())
            .count()
    }

    /// When to call [`OutlierDetector::handle_timeout`].
    #[must_use]
    pub fn poll_timeout(&self) -> Duration {
        self.next_sweep
    }

    /// The next ejection or return.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<OutlierEvent> {
        self.events.pop_front()
    }

    fn may_eject(&self) -> bool {
        let ejected = self.ejected_count();
        ejected == 0
            || ejected * 100 < usize::from(self.config.max_ejection_percent) * self.hosts.len()
    }

    fn eject(&mut self, host: HostId, reason: EjectReason, now: Duration, rng: &mut impl Rng) {
        if self.hosts[host].ejected_until.is_some() || !self.may_eject() {
            return;
        }
        let c = &self.config;
        let h = &mut self.hosts[host];
        h.times_ejected = h.times_ejected.saturating_add(1);
        let time = c
            .base_ejection_time
            .saturating_mul(h.times_ejected)
            .min(c.max_ejection_time.max(c.base_ejection_time));
        let until = now + time + uniform(rng, c.max_ejection_jitter);
        h.ejected_until = Some(until);
        h.ejected_this_interval = true;
        h.consecutive = 0;
        h.consecutive_gateway = 0;
        self.events.push_back(OutlierEvent::Ejected {
            host,
            reason,
            until,
        });
    }

    /// Records one request's outcome for `host`; a consecutive-failure ejection may follow.
    /// Unknown hosts are ignored.
    pub fn record(
        &mut self,
        now: Duration,
        host: HostId,
        outcome: RequestOutcome,
        rng: &mut impl Rng,
    ) {
        let Some(h) = self.hosts.get_mut(host) else {
            return;
        };
        if outcome.is_failure() {
            h.failures += 1;
            h.consecutive += 1;
        } else {
            h.successes += 1;
            h.consecutive = 0;
        }
        if outcome == RequestOutcome::GatewayFailure {
            h.consecutive_gateway += 1;
        } else {
            h.consecutive_gateway = 0;
        }
        let (consecutive, gateway) = (h.consecutive, h.consecutive_gateway);
        if self
            .config
            .consecutive_failures
            .is_some_and(|n| consecutive >= n)
        {
            self.eject(host, EjectReason::ConsecutiveFailures, now, rng);
        } else if self
            .config
            .consecutive_gateway_failures
            .is_some_and(|n| gateway >= n)
        {
            self.eject(host, EjectReason::ConsecutiveGatewayFailures, now, rng);
        }
    }

    /// An active health check passed: an ejected host returns at once (Envoy's
    /// `successful_active_health_check_uneject_host`).
    pub fn active_check_passed(&mut self, host: HostId) {
        if let Some(h) = self.hosts.get_mut(host) {
            if h.ejected_until.take().is_some() {
                self.events.push_back(OutlierEvent::Returned { host });
            }
        }
    }

    /// The sweep: returns hosts whose ejection ended, judges the interval's statistics, and
    /// starts the next interval. Does nothing before [`OutlierDetector::poll_timeout`].
    pub fn handle_timeout(&mut self, now: Duration, rng: &mut impl Rng) {
        if now < self.next_sweep {
            return;
        }
        for (host, h) in self.hosts.iter_mut().enumerate() {
            if h.ejected_until.is_some_and(|u| u <= now) {
                h.ejected_until = None;
                // It spent (part of) this interval ejected: no credit yet.
                h.ejected_this_interval = true;
                self.events.push_back(OutlierEvent::Returned { host });
            }
        }
        if let Some(sr) = self.config.success_rate {
            let rates: Vec<(HostId, f64)> = self.judged(sr.request_volume);
            if rates.len() >= sr.minimum_hosts && !rates.is_empty() {
                let n = rates.len() as f64;
                let mean = rates.iter().map(|r| r.1).sum::<f64>() / n;
                let var = rates.iter().map(|r| (r.1 - mean).powi(2)).sum::<f64>() / n;
                let floor = mean - sr.stdev_factor * var.sqrt();
                for (host, rate) in rates {
                    if rate < floor {
                        self.eject(host, EjectReason::SuccessRate, now, rng);
                    }
                }
            }
        }
        if let Some(fp) = self.config.failure_percentage {
            let rates = self.judged(fp.request_volume);
            if rates.len() >= fp.minimum_hosts {
                for (host, rate) in rates {
                    if (1.0 - rate) * 100.0 >= f64::from(fp.threshold_percent) {
                        self.eject(host, EjectReason::FailurePercentage, now, rng);
                    }
                }
            }
        }
        for h in &mut self.hosts {
            // A host not ejected in an interval works off one past ejection (Envoy).
            if !h.ejected_this_interval && h.ejected_until.is_none() {
                h.times_ejected = h.times_ejected.saturating_sub(1);
            }
            h.ejected_this_interval = false;
            h.successes = 0;
            h.failures = 0;
        }
        // Catch up whole intervals if the caller was late.
        while self.next_sweep <= now {
            self.next_sweep += self.config.interval;
        }
    }

    /// Success rates of the non-ejected hosts with at least `volume` requests.
    fn judged(&self, volume: u64) -> Vec<(HostId, f64)> {
        self.hosts
            .iter()
            .enumerate()
            .filter(|(_, h)| h.ejected_until.is_none())
            .filter_map(|(i, h)| {
                let total = h.successes + h.failures;
                (total >= volume.max(1)).then(|| (i, h.successes as f64 / total as f64))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{SeedableRng, rngs::StdRng};

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn consecutive_failures_eject_with_growing_time() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut d = OutlierDetector::new(OutlierConfig::default(), 10, Duration::ZERO).unwrap();
        for _ in 0..4 {
            d.record(SEC, 3, RequestOutcome::LocalOriginFailure, &mut rng);
        }
        d.record(SEC, 3, RequestOutcome::Success, &mut rng);
        assert!(d.poll_event().is_none(), "a success resets the count");
        for _ in 0..5 {
            d.record(SEC, 3, RequestOutcome::Failure, &mut rng);
        }
        assert_eq!(
            d.poll_event(),
            Some(OutlierEvent::Ejected {
                host: 3,
                reason: EjectReason::ConsecutiveFailures,
                until: 31 * SEC
            })
        );
        // Only 10 % of 10 hosts may be ejected: a second bad host stays.
        for _ in 0..5 {
            d.record(SEC, 4, RequestOutcome::Failure, &mut rng);
        }
        assert!(!d.is_ejected(4));
        d.handle_timeout(10 * SEC, &mut rng);
        d.handle_timeout(40 * SEC, &mut rng);
        assert_eq!(d.poll_event(), Some(OutlierEvent::Returned { host: 3 }));
        // Ejected again: twice the base time.
        for _ in 0..5 {
            d.record(41 * SEC, 3, RequestOutcome::Failure, &mut rng);
        }
        assert_eq!(
            d.poll_event(),
            Some(OutlierEvent::Ejected {
                host: 3,
                reason: EjectReason::ConsecutiveFailures,
                until: 101 * SEC
            })
        );
        d.active_check_passed(3);
        assert_eq!(d.poll_event(), Some(OutlierEvent::Returned { host: 3 }));
    }

    #[test]
    fn success_rate_and_failure_percentage() {
        let mut rng = StdRng::seed_from_u64(1);
        let config = OutlierConfig {
            consecutive_failures: None,
            failure_percentage: Some(FailurePercentage {
                threshold_percent: 85,
                minimum_hosts: 5,
                request_volume: 50,
            }),
            max_ejection_percent: 50,
            ..OutlierConfig::default()
        };
        let mut d = OutlierDetector::new(config, 6, Duration::ZERO).unwrap();
        // Five hosts at 99 % success, one at 60 %: below mean - 1.9 stdev.
        for host in 0..6 {
            for i in 0..100 {
                let ok = if host == 5 { i % 10 < 6 } else { i != 0 };
                let o = if ok {
                    RequestOutcome::Success
                } else {
                    RequestOutcome::Failure
                };
                d.record(SEC, host, o, &mut rng);
            }
        }
        d.handle_timeout(10 * SEC, &mut rng);
        assert!(matches!(
            d.poll_event(),
            Some(OutlierEvent::Ejected {
                host: 5,
                reason: EjectReason::SuccessRate,
                ..
            })
        ));
        assert!(d.poll_event().is_none());
        // Next interval: host 0 fails 90 %: failure percentage (success rate needs the volume
        // of five non-ejected hosts, which it has too; either reason ejects it once).
        for host in 0..5 {
            for i in 0..100 {
                let ok = if host == 0 { i % 10 == 0 } else { true };
                let o = if ok {
                    RequestOutcome::Success
                } else {
                    RequestOutcome::Failure
                };
                d.record(11 * SEC, host, o, &mut rng);
            }
        }
        d.handle_timeout(20 * SEC, &mut rng);
        assert!(matches!(
            d.poll_event(),
            Some(OutlierEvent::Ejected { host: 0, .. })
        ));
        assert_eq!(d.ejected_count(), 2);
    }

    #[test]
    fn rejects_bad_configs() {
        let bad = OutlierConfig {
            interval: Duration::ZERO,
            ..OutlierConfig::default()
        };
        assert!(OutlierDetector::new(bad, 1, Duration::ZERO).is_err());
        let bad = OutlierConfig {
            max_ejection_percent: 101,
            ..OutlierConfig::default()
        };
        assert!(OutlierDetector::new(bad, 1, Duration::ZERO).is_err());
    }
}
