//! keepalived's rules from check results to what the datapath serves, pure: a real is alive
//! while every one of its checkers is up; a dead real is removed, or kept with weight 0 under
//! `inhibit_on_failure`; while the live weight is below the quorum (with hysteresis) every
//! real is pulled and the sorry server, if any, serves alone. A MISC_CHECK with
//! `misc_dynamic` sets its real's weight to its exit code - 2 (2-255), back to the configured
//! one on exit 0.

use std::net::SocketAddr;

use lb_forward::RealConfig;

use super::plan::ServicePlan;

/// The live state of one service's reals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Liveness {
    /// Per real, per check: up?
    checks: Vec<Vec<bool>>,
    /// Per real: the weight a dynamic MISC_CHECK set, instead of the configured one.
    weights: Vec<Option<u32>>,
    quorum_up: bool,
}

impl Liveness {
    /// Everything up (keepalived's start without `alpha`) or down (`alpha`), per `initially_up`.
    pub fn new(service: &ServicePlan, initially_up: bool) -> Liveness {
        let checks: Vec<Vec<bool>> = service
            .reals
            .iter()
            .map(|r| vec![initially_up; r.checks.len()])
            .collect();
        let mut live = Liveness {
            weights: vec![None; checks.len()],
            checks,
            quorum_up: true,
        };
        live.quorum_up = live.live_weight(service) >= service.quorum;
        live
    }

    /// Records check `check` of real `real`; returns whether the real's aliveness changed.
    pub fn set(&mut self, real: usize, check: usize, up: bool) -> bool {
        let before = self.alive(real);
        if let Some(slot) = self.checks.get_mut(real).and_then(|c| c.get_mut(check)) {
            *slot = up;
        }
        before != self.alive(real)
    }

    /// Sets the weight a dynamic MISC_CHECK reported for `real` (`None`: the configured
    /// one); returns whether it changed.
    pub fn set_weight(&mut self, real: usize, weight: Option<u32>) -> bool {
        match self.weights.get_mut(real) {
            Some(w) if *w != weight => {
                *w = weight;
                true
            }
            _ => false,
        }
    }

    /// The weight a dynamic MISC_CHECK set for `real`, if any.
    pub fn dynamic_weight(&self, real: usize) -> Option<u32> {
        self.weights.get(real).copied().flatten()
    }

    /// The weight of `real` while alive: the dynamic one, else the configured one.
    fn weight(&self, service: &ServicePlan, real: usize) -> u32 {
        self.weights
            .get(real)
            .copied()
            .flatten()
            .unwrap_or(service.reals[real].config.weight)
    }

    /// Whether check `check` of `real` is up.
    pub fn check_up(&self, real: usize, check: usize) -> Option<bool> {
        self.checks.get(real)?.get(check).copied()
    }

    /// Whether every check of `real` is up (a real without checks is always alive).
    pub fn alive(&self, real: usize) -> bool {
        self.checks
            .get(real)
            .is_some_and(|c| c.iter().all(|up| *up))
    }

    fn live_weight(&self, service: &ServicePlan) -> u32 {
        (0..service.reals.len())
            .filter(|&r| self.alive(r))
            .map(|r| self.weight(service, r))
            .sum()
    }

    /// Updates the quorum state (gained at quorum + hysteresis, lost below quorum - hysteresis);
    /// returns whether it changed.
    pub fn update_quorum(&mut self, service: &ServicePlan) -> bool {
        let live = self.live_weight(service);
        let was = self.quorum_up;
        if was && live < service.quorum.saturating_sub(service.hysteresis) {
            self.quorum_up = false;
        } else if !was && live >= service.quorum.saturating_add(service.hysteresis) {
            self.quorum_up = true;
        }
        was != self.quorum_up
    }

    /// Whether the quorum holds.
    pub fn quorum_up(&self) -> bool {
        self.quorum_up
    }

    /// What the datapath should hold for this service: each real present with its weight.
    pub fn desired(&self, service: &ServicePlan) -> Vec<RealConfig> {
        if !self.quorum_up {
            if let Some(sorry) = service.sorry {
                return vec![sorry];
            }
        }
        let mut out = Vec::new();
        for (i, real) in service.reals.iter().enumerate() {
            let mut config = real.config;
            config.weight = self.weight(service, i);
            if !self.quorum_up || !self.alive(i) {
                if !real.inhibit_on_failure {
                    continue;
                }
                config.weight = 0;
            }
            out.push(config);
        }
        out
    }
}

/// The changes that turn `current` into `desired`: reals to remove, then reals to add or edit.
pub fn diff(current: &[RealConfig], desired: &[RealConfig]) -> (Vec<SocketAddr>, Vec<RealConfig>) {
    let remove = current
        .iter()
        .filter(|c| !desired.iter().any(|d| d.addr == c.addr))
        .map(|c| c.addr)
        .collect();
    let upsert = desired
        .iter()
        .filter(|d| !current.contains(d))
        .copied()
        .collect();
    (remove, upsert)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_str_isolated;
    use crate::director::plan::plan;

    fn service(text: &str) -> ServicePlan {
        let loaded = parse_str_isolated(text, "t.conf").unwrap();
        plan(&loaded.config).0.services.remove(0)
    }

    const TWO: &str = "virtual_server 10.0.0.100 80 {\n lb_algo rr\n lb_kind DR\n quorum 3\n hysteresis 1\n\
        sorry_server 10.0.0.9 80\n\
        real_server 10.0.0.1 80 {\n weight 2\n TCP_CHECK {\n }\n }\n\
        real_server 10.0.0.2 80 {\n weight 2\n inhibit_on_failure\n TCP_CHECK {\n }\n HTTP_GET {\n url {\n path /\n }\n }\n }\n}\n";

    #[test]
    fn a_real_lives_while_every_check_is_up_and_inhibit_keeps_it_at_weight_zero() {
        let s = service(TWO);
        let mut live = Liveness::new(&s, true);
        let weights = |l: &Liveness| {
            l.desired(&s)
                .iter()
                .map(|r| (r.addr.ip().to_string(), r.weight))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            weights(&live),
            [("10.0.0.1".into(), 2), ("10.0.0.2".into(), 2)]
        );
        assert!(
            live.set(1, 1, false),
            "one of two checks down kills the real"
        );
        assert!(!live.set(1, 0, false));
        assert_eq!(
            weights(&live),
            [("10.0.0.1".into(), 2), ("10.0.0.2".into(), 0)],
            "inhibited, not removed"
        );
        assert!(!live.set(1, 0, true), "still one check down");
        assert!(live.set(1, 1, true));
        assert!(live.set(0, 0, false));
        assert_eq!(
            weights(&live),
            [("10.0.0.2".into(), 2)],
            "removed without inhibit_on_failure"
        );
    }

    #[test]
    fn quorum_with_hysteresis_pulls_everything_for_the_sorry_server() {
        let s = service(TWO);
        let mut live = Liveness::new(&s, true);
        live.set(0, 0, false); // live weight 2: not below quorum - hysteresis = 2
        assert!(!live.update_quorum(&s) && live.quorum_up());
        live.set(1, 0, false); // live weight 0
        assert!(live.update_quorum(&s) && !live.quorum_up());
        assert_eq!(
            live.desired(&s)
                .iter()
                .map(|r| r.addr.to_string())
                .collect::<Vec<_>>(),
            ["10.0.0.9:80"]
        );
        live.set(0, 0, true); // 2: not yet quorum + hysteresis = 4
        assert!(!live.update_quorum(&s));
        live.set(1, 0, true); // 4
        assert!(live.update_quorum(&s) && live.quorum_up());
        assert_eq!(live.desired(&s).len(), 2);
    }

    #[test]
    fn a_dynamic_weight_replaces_the_configured_one_and_counts_for_the_quorum() {
        let s = service(TWO);
        let mut live = Liveness::new(&s, true);
        assert!(live.set_weight(0, Some(5)));
        assert!(!live.set_weight(0, Some(5)), "unchanged");
        assert_eq!(live.desired(&s)[0].weight, 5);
        live.set(1, 0, false); // 10.0.0.2 down: live weight 5, still >= quorum 3 - 1
        assert!(!live.update_quorum(&s) && live.quorum_up());
        assert!(live.set_weight(0, Some(0)));
        assert!(
            live.update_quorum(&s) && !live.quorum_up(),
            "weight 0 loses the quorum"
        );
        assert!(live.set_weight(0, None));
        assert_eq!(
            live.desired(&s)[0].addr.to_string(),
            "10.0.0.9:80",
            "sorry server"
        );
        live.set(1, 0, true);
        assert!(live.update_quorum(&s));
        assert_eq!(live.desired(&s)[0].weight, 2, "configured again");
    }

    #[test]
    fn diff_removes_then_upserts() {
        let s = service(TWO);
        let all: Vec<RealConfig> = s.reals.iter().map(|r| r.config).collect();
        let mut changed = all[1];
        changed.weight = 0;
        let (remove, upsert) = diff(&all, &[changed]);
        assert_eq!(remove, [all[0].addr]);
        assert_eq!(upsert, [changed]);
        assert_eq!(diff(&all, &all), (vec![], vec![]));
    }
}
