//! Tracked inputs of a VRRP instance, run from the driver's tick: `track_interface` (up while
//! the interface is running) and `track_script` (keepalived's rules: the command runs every
//! `interval` through `sh -c`, a run longer than `timeout` is killed and fails, `rise`
//! successes bring it up and `fall` failures down, `init_fail` starts it down). Each change
//! goes to the router with [`Router::set_track`]; the router applies the weight.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lb_vrrp::Router;
use lb_vrrp::linux::Interface;

use super::Report;
use super::plan::Tracked;

const INTERFACE_CHECK: Duration = Duration::from_millis(200);

struct Input {
    source: Tracked,
    up: bool,
    /// Told to the router (false until the first tick).
    told: bool,
    next: Instant,
    running: Option<(Child, Instant)>,
    passes: u32,
    fails: u32,
}

/// The tracked inputs of one instance, in the router's track order.
pub(crate) struct Inputs {
    inputs: Vec<Input>,
}

impl Inputs {
    pub(crate) fn new(tracked: &[Tracked]) -> Inputs {
        let now = Instant::now();
        let inputs = tracked
            .iter()
            .map(|source| {
                let up = match source {
                    Tracked::Script(s) => !s.init_fail,
                    Tracked::Interface(_) => true,
                };
                Input {
                    source: source.clone(),
                    up,
                    told: false,
                    next: now,
                    running: None,
                    passes: 0,
                    fails: 0,
                }
            })
            .collect();
        Inputs { inputs }
    }

    /// Runs what is due and tells `router` what changed (`now` is the router's clock).
    pub(crate) fn tick(
        &mut self,
        now: Duration,
        router: &mut Router,
        instance: &str,
        report: &Report,
    ) {
        let wall = Instant::now();
        for (index, input) in self.inputs.iter_mut().enumerate() {
            let before = input.up;
            match &input.source {
                Tracked::Interface(name) => {
                    if wall >= input.next {
                        input.next = wall + INTERFACE_CHECK;
                        input.up = Interface::lookup(name).is_ok_and(|i| i.running);
                    }
                }
                Tracked::Script(script) => {
                    if let Some(ok) = poll_run(&mut input.running, script.timeout, wall) {
                        if ok {
                            input.fails = 0;
                            input.passes = input.passes.saturating_add(1);
                            if !input.up && input.passes >= script.rise {
                                input.up = true;
                            }
                        } else {
                            input.passes = 0;
                            input.fails = input.fails.saturating_add(1);
                            if input.up && input.fails >= script.fall {
                                input.up = false;
                            }
                        }
                    }
                    if input.running.is_none() && wall >= input.next {
                        input.next = wall + script.interval;
                        match Command::new("sh")
                            .arg("-c")
                            .arg(&script.script)
                            .stdin(Stdio::null())
                            .stdout(Stdio::null())
                            .stderr(Stdio::null())
                            .spawn()
                        {
                            Ok(child) => input.running = Some((child, wall)),
                            Err(e) => {
                                report(&format!("{instance}: track_script {}: {e}", script.name))
                            }
                        }
                    }
                }
            }
            if before != input.up || !input.told {
                if input.told || !input.up {
                    let name = match &input.source {
                        Tracked::Interface(n) => format!("track_interface {n}"),
                        Tracked::Script(s) => format!("track_script {}", s.name),
                    };
                    report(&format!(
                        "{instance}: {name} {}",
                        if input.up { "up" } else { "down" }
                    ));
                }
                input.told = true;
                if let Err(e) = router.set_track(now, index, input.up) {
                    report(&format!("{instance}: {e}"));
                }
            }
        }
    }
}

impl Drop for Inputs {
    fn drop(&mut self) {
        for input in &mut self.inputs {
            if let Some((mut child, _)) = input.running.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// The result of the input's running script, if it ended (or timed out: killed, failed).
fn poll_run(
    running: &mut Option<(Child, Instant)>,
    timeout: Duration,
    now: Instant,
) -> Option<bool> {
    let (child, started) = running.as_mut()?;
    let result = match child.try_wait() {
        Ok(Some(status)) => status.success(),
        Ok(None) if now.duration_since(*started) < timeout => return None,
        Ok(None) | Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            false
        }
    };
    *running = None;
    Some(result)
}
