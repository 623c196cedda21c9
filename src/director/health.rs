//! The health thread: one lb-health reactor runs every checker; each transition updates the
//! real's [`Liveness`] and the datapath gets the difference (keepalived's remove, or weight 0
//! with `inhibit_on_failure`, and the quorum's sorry server).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::time::Duration;

use lb_forward::RealConfig;
use lb_health::driver::{Reactor, ReactorConfig};
use lb_health::{CheckId, State};
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
        for (s, service) in services.iter().enumerate() {
            for (r, real) in service.reals.iter().enumerate() {
                for (c, target) in real.checks.iter().enumerate() {
                    let id = reactor
                        .add(target.clone())
                        .map_err(|e| format!("check of {}: {e}", real.config.addr))?;
                    slots.entry(id).or_default().push((s, r, c));
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
            services,
            liveness,
            current,
        })
    }

    /// Runs until `stop`.
    pub(crate) fn run(mut self, stop: &AtomicBool, commands: &Sender<Command>, report: &Report) {
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
            touched.sort_unstable();
            touched.dedup();
            for s in touched {
                self.push(s, commands, report);
            }
        }
    }

    /// Sends the datapath what changed for service `s`.
    fn push(&mut self, s: usize, commands: &Sender<Command>, report: &Report) {
        let service = &self.services[s];
        if self.liveness[s].update_quorum(service) {
            let state = if self.liveness[s].quorum_up() {
                "gained"
            } else {
                "lost"
            };
            report(&format!("{} quorum {state}", service.keys[0]));
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
