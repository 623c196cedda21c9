//! The health thread: one lb-health reactor runs every checker; each transition updates the
//! real's [`Liveness`] and the datapath gets the difference (keepalived's remove, or weight 0
//! with `inhibit_on_failure`, and the quorum's sorry server).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::time::Duration;

use lb_forward::RealConfig;
use lb_health::driver::{Reactor, ReactorConfig};
use lb_health::{Check, CheckId, Reason, State, Verdict};
use rand::rngs::StdRng;

use super::Report;
use super::datapath::Command;
use super::liveness::{Liveness, diff};
use super::plan::ServicePlan;

/// Which (service, real, check) slots a deduplicated check id feeds.
type Slots = HashMap<CheckId, Vec<(usize, usize, usize)>>;

pub(crate) struct Health {
    reactor: Reactor<StdRng>,
    slots: Slots,
    /// The MISC_CHECKs with `misc_dynamic`, whose exit codes set weights.
    dynamic: Vec<CheckId>,
    services: Vec<ServicePlan>,
    liveness: Vec<Liveness>,
    current: Vec<Vec<RealConfig>>,
}

impl Health {
    /// Registers every check of `services`; `liveness` and `current` describe what the datapath
    /// was given.
    pub(crate) fn new(
        services: Vec<ServicePlan>,
        liveness: Vec<Liveness>,
    ) -> Result<Health, String> {
        let rng: StdRng = rand::make_rng();
        let mut reactor = Reactor::new(ReactorConfig::default(), rng)
            .map_err(|e| format!("health reactor: {e}"))?;
        let mut slots: Slots = HashMap::new();
        let mut dynamic = Vec::new();
        for (s, service) in services.iter().enumerate() {
            for (r, real) in service.reals.iter().enumerate() {
                for (c, target) in real.checks.iter().enumerate() {
                    let id = reactor
                        .add(target.clone())
                        .map_err(|e| format!("check of {}: {e}", real.config.addr))?;
                    slots.entry(id).or_default().push((s, r, c));
                    if matches!(&target.check, Check::Exec(e) if e.dynamic)
                        && !dynamic.contains(&id)
                    {
                        dynamic.push(id);
                    }
                }
            }
        }
        let current = services
            .iter()
            .zip(&liveness)
            .map(|(s, l)| l.desired(s))
            .collect();
        Ok(Health {
            reactor,
            slots,
            dynamic,
            services,
            liveness,
            current,
        })
    }

    /// Runs until `stop`; returns itself so that a reload can carry the checks' states over.
    pub(crate) fn run(
        mut self,
        stop: &AtomicBool,
        commands: &Sender<Command>,
        report: &Report,
    ) -> Health {
        while !stop.load(Ordering::Relaxed) {
            if let Err(e) = self.reactor.poll(Some(Duration::from_millis(100))) {
                report(&format!("health checks: {e}"));
                std::thread::sleep(Duration::from_millis(100));
            }
            let mut touched = Vec::new();
            while let Some(event) = self.reactor.poll_event() {
                let up = event.transition.to == State::Up;
                for &(s, r, c) in self.slots.get(&event.id).into_iter().flatten() {
                    let real = &self.services[s].reals[r];
                    if self.liveness[s].set(r, c, up) {
                        let state = if up { "UP" } else { "DOWN" };
                        report(&format!(
                            "real {} of {} {state} ({})",
                            real.config.addr, self.services[s].keys[0], event.transition.reason
                        ));
                        let script = if up {
                            &real.notify_up
                        } else {
                            &real.notify_down
                        };
                        if let Some(script) = script {
                            super::notify(script, &[], report);
                        }
                    }
                    touched.push(s);
                }
            }
            touched.extend(self.dynamic_weights(report));
            touched.sort_unstable();
            touched.dedup();
            for s in touched {
                self.push(s, commands, report);
            }
        }
        self
    }

    /// Applies the weights of the dynamic MISC_CHECKs (keepalived's `misc_dynamic`: the last
    /// passing exit code 2-255 sets the weight to code - 2, exit 0 restores the configured
    /// weight); returns the services whose weights changed.
    fn dynamic_weights(&mut self, report: &Report) -> Vec<usize> {
        let mut touched = Vec::new();
        for id in &self.dynamic {
            let Some(tracker) = self.reactor.checker().tracker(*id) else {
                continue;
            };
            let last_pass = tracker.history().rev().find(|o| o.verdict == Verdict::Pass);
            let Some(code) = last_pass.and_then(|o| match o.reason {
                Reason::ExitCode(c) => Some(c),
                _ => None,
            }) else {
                continue;
            };
            let weight = (code >= 2).then(|| u32::from(code) - 2);
            for &(s, r, _) in self.slots.get(id).into_iter().flatten() {
                if self.liveness[s].set_weight(r, weight) {
                    let real = &self.services[s].reals[r];
                    let shown = weight.unwrap_or(real.config.weight);
                    report(&format!(
                        "real {} of {} weight {shown} (MISC_CHECK exit code {code})",
                        real.config.addr, self.services[s].keys[0]
                    ));
                    touched.push(s);
                }
            }
        }
        touched
    }

    /// What the datapath holds for the service with `key`, if this plan had it.
    pub(crate) fn current(&self, key: &lb_forward::ServiceKey) -> Option<&[RealConfig]> {
        let s = self.services.iter().position(|s| s.keys.contains(key))?;
        Some(&self.current[s])
    }

    /// Copies the state of every check that `service` shares with this plan (same service,
    /// same real, same check against the same address) into `live`.
    pub(crate) fn carry_into(&self, service: &ServicePlan, live: &mut Liveness) {
        let Some(old_s) = self
            .services
            .iter()
            .position(|s| s.keys.first() == service.keys.first())
        else {
            return;
        };
        let old = &self.services[old_s];
        for (r, real) in service.reals.iter().enumerate() {
            let Some(old_r) = old
                .reals
                .iter()
                .position(|o| o.config.addr == real.config.addr)
            else {
                continue;
            };
            for (c, target) in real.checks.iter().enumerate() {
                let same =
                    |t: &&lb_health::Target| t.addr == target.addr && t.check == target.check;
                if let Some(old_c) = old.reals[old_r].checks.iter().position(|t| same(&t)) {
                    if let Some(up) = self.liveness[old_s].check_up(old_r, old_c) {
                        live.set(r, c, up);
                    }
                    if matches!(&target.check, Check::Exec(e) if e.dynamic) {
                        live.set_weight(r, self.liveness[old_s].dynamic_weight(old_r));
                    }
                }
            }
        }
        live.update_quorum(service);
    }

    /// Sends the datapath what changed for service `s`.
    fn push(&mut self, s: usize, commands: &Sender<Command>, report: &Report) {
        let service = &self.services[s];
        if self.liveness[s].update_quorum(service) {
            let up = self.liveness[s].quorum_up();
            let state = if up { "gained" } else { "lost" };
            report(&format!("{} quorum {state}", service.keys[0]));
            let script = if up {
                &service.quorum_up
            } else {
                &service.quorum_down
            };
            if let Some(script) = script {
                super::notify(script, &[], report);
            }
        }
        let desired = self.liveness[s].desired(service);
        let (remove, upsert) = diff(&self.current[s], &desired);
        for key in &service.keys {
            for addr in &remove {
                let _ = commands.send(Command::Remove(*key, *addr));
            }
            for real in &upsert {
                let _ = commands.send(Command::Upsert(*key, *real));
            }
        }
        self.current[s] = desired;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_str_isolated;
    use crate::director::plan::plan;

    fn services(weight: u32) -> Vec<ServicePlan> {
        let text = format!(
            "virtual_server 10.0.0.100 80 {{\n lb_algo rr\n lb_kind DR\n\
             real_server 10.0.0.1 80 {{\n weight {weight}\n TCP_CHECK {{\n }}\n }}\n\
             real_server 10.0.0.2 80 {{\n TCP_CHECK {{\n }}\n }}\n}}\n"
        );
        plan(&parse_str_isolated(&text, "t.conf").unwrap().config)
            .0
            .services
    }

    #[test]
    fn a_reload_keeps_what_the_checks_found() {
        let before = services(1);
        let mut live = Liveness::new(&before[0], true);
        live.set(1, 0, false);
        let health = Health::new(before, vec![live]).unwrap();
        let key = health.services[0].keys[0];
        assert_eq!(
            health.current(&key).unwrap().len(),
            1,
            "10.0.0.2 is out of the datapath"
        );

        let after = services(5);
        let mut carried = Liveness::new(&after[0], true);
        health.carry_into(&after[0], &mut carried);
        let desired = carried.desired(&after[0]);
        assert_eq!(desired.len(), 1, "still out after the reload: {desired:?}");
        assert_eq!(
            (desired[0].addr.port(), desired[0].weight),
            (80, 5),
            "the new weight applies"
        );
    }
}
