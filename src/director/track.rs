//! Tracked inputs of the VRRP instances, run from the driver's tick: `track_interface` (up
//! while the interface is running) and `track_script` (keepalived's rules: the command runs
//! every `interval` through `sh -c`, a run longer than `timeout` is killed and fails, `rise`
//! successes bring it up and `fall` failures down, `init_fail` starts it down). As in
//! keepalived, each script (and interface) is watched once however many instances track it;
//! each change goes to every router tracking it with [`Router::set_track`], and each router
//! applies its own weight.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lb_vrrp::Router;
use lb_vrrp::linux::Interface;

use super::Report;
use super::plan::{InstancePlan, Tracked};

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

/// Who is told about an input: router `router`'s track `track` (the instance's index and its
/// index in the router's tracks).
struct Subscriber {
    router: usize,
    track: usize,
    instance: String,
}

/// The distinct tracked inputs of all instances, each with the routers tracking it.
pub(crate) struct Inputs {
    inputs: Vec<(Input, Vec<Subscriber>)>,
}

impl Inputs {
    /// The inputs of `instances`, whose routers are the driver's in the same order.
    pub(crate) fn new(instances: &[InstancePlan]) -> Inputs {
        let now = Instant::now();
        let mut inputs: Vec<(Input, Vec<Subscriber>)> = Vec::new();
        for (router, plan) in instances.iter().enumerate() {
            for (track, source) in plan.tracked.iter().enumerate() {
                let subscriber = Subscriber {
                    router,
                    track,
                    instance: plan.name.clone(),
                };
                if let Some((_, subs)) = inputs
                    .iter_mut()
                    .find(|(i, _)| same_source(&i.source, source))
                {
                    subs.push(subscriber);
                    continue;
                }
                let up = match source {
                    Tracked::Script(s) => !s.init_fail,
                    Tracked::Interface(_) => true,
                };
                let input = Input {
                    source: source.clone(),
                    up,
                    told: false,
                    next: now,
                    running: None,
                    passes: 0,
                    fails: 0,
                };
                inputs.push((input, vec![subscriber]));
            }
        }
        Inputs { inputs }
    }

    /// Runs what is due and tells the routers tracking it what changed (`now` is the
    /// routers' clock).
    pub(crate) fn tick(&mut self, now: Duration, routers: &mut [Router], report: &Report) {
        let wall = Instant::now();
        for (input, subscribers) in &mut self.inputs {
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
                            Err(e) => report(&format!("track_script {}: {e}", script.name)),
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
                    report(&format!("{name} {}", if input.up { "up" } else { "down" }));
                }
                input.told = true;
                for sub in subscribers.iter() {
                    let result = routers
                        .get_mut(sub.router)
                        .map(|r| r.set_track(now, sub.track, input.up));
                    if let Some(Err(e)) = result {
                        report(&format!("{}: {e}", sub.instance));
                    }
                }
            }
        }
    }
}

/// One script (by name) or interface, however many instances track it.
fn same_source(a: &Tracked, b: &Tracked) -> bool {
    match (a, b) {
        (Tracked::Interface(a), Tracked::Interface(b)) => a == b,
        (Tracked::Script(a), Tracked::Script(b)) => a.name == b.name,
        _ => false,
    }
}

impl Drop for Inputs {
    fn drop(&mut self) {
        for (input, _) in &mut self.inputs {
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
