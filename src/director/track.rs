//! Tracked inputs of the VRRP instances, run from the driver's tick: `track_interface` (up
//! while the interface is running) and `track_script` (keepalived's rules: the command runs
//! every `interval` through `sh -c`, a run longer than `timeout` is killed and fails, `rise`
//! successes bring it up and `fall` failures down, `init_fail` starts it down). As in
//! keepalived, each script (and interface) is watched once however many instances track it;
//! each change goes to every router tracking it with [`Router::set_track`], and each router
//! applies its own weight. A reload keeps the inputs still tracked going, with their states.

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
    /// Its first state was reported (when down) or passed over (up).
    reported: bool,
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
    /// Told the input's state since it subscribed.
    told: bool,
}

/// The distinct tracked inputs of all instances, each with the routers tracking it.
pub(crate) struct Inputs {
    inputs: Vec<(Input, Vec<Subscriber>)>,
}

impl Inputs {
    /// The inputs of `instances`, whose routers are the driver's in the same order.
    pub(crate) fn new(instances: &[InstancePlan]) -> Inputs {
        let mut inputs = Inputs { inputs: Vec::new() };
        inputs.follow(instances);
        inputs
    }

    /// Follows a new set of instances (after a reload): an input still tracked (the same
    /// script, or interface) goes on with its state, its script's run and counts, and tells
    /// its routers its state again (a router that already has it sees no change); the others
    /// start afresh; a script no longer tracked is stopped.
    pub(crate) fn follow(&mut self, instances: &[InstancePlan]) {
        let mut previous: Vec<Input> = std::mem::take(&mut self.inputs)
            .into_iter()
            .map(|(input, _)| input)
            .collect();
        let now = Instant::now();
        for (router, plan) in instances.iter().enumerate() {
            for (track, source) in plan.tracked.iter().enumerate() {
                let subscriber = Subscriber {
                    router,
                    track,
                    instance: plan.name.clone(),
                    told: false,
                };
                if let Some((_, subs)) = self
                    .inputs
                    .iter_mut()
                    .find(|(i, _)| same_source(&i.source, source))
                {
                    subs.push(subscriber);
                    continue;
                }
                let input = match previous.iter().position(|i| i.source == *source) {
                    Some(p) => previous.swap_remove(p),
                    None => Input {
                        source: source.clone(),
                        up: match source {
                            Tracked::Script(s) => !s.init_fail,
                            Tracked::Interface(_) => true,
                        },
                        reported: false,
                        next: now,
                        running: None,
                        passes: 0,
                        fails: 0,
                    },
                };
                self.inputs.push((input, vec![subscriber]));
            }
        }
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
            let changed = before != input.up;
            if changed || !input.reported {
                if input.reported || !input.up {
                    let name = match &input.source {
                        Tracked::Interface(n) => format!("track_interface {n}"),
                        Tracked::Script(s) => format!("track_script {}", s.name),
                    };
                    report(&format!("{name} {}", if input.up { "up" } else { "down" }));
                }
                input.reported = true;
            }
            for sub in subscribers.iter_mut().filter(|s| changed || !s.told) {
                sub.told = true;
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

/// One script (by name) or interface, however many instances track it.
fn same_source(a: &Tracked, b: &Tracked) -> bool {
    match (a, b) {
        (Tracked::Interface(a), Tracked::Interface(b)) => a == b,
        (Tracked::Script(a), Tracked::Script(b)) => a.name == b.name,
        _ => false,
    }
}

/// A script no longer tracked, or at the end, is stopped.
impl Drop for Input {
    fn drop(&mut self) {
        if let Some((mut child, _)) = self.running.take() {
            let _ = child.kill();
            let _ = child.wait();
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::config::parse_str_isolated;
    use crate::director::plan;

    const SCRIPTS: &str = "vrrp_script chk {\n script \"/bin/true\"\n interval 60\n weight -20\n}\n\
                           vrrp_script other {\n script \"/bin/true\"\n interval 60\n}\n";

    fn instances(tracking: &[(&str, &str)]) -> Vec<InstancePlan> {
        let mut text = SCRIPTS.to_owned();
        for (i, (name, script)) in tracking.iter().enumerate() {
            text.push_str(&format!(
                "vrrp_instance {name} {{\n interface eth0\n virtual_router_id {}\n priority 100\n\
                 virtual_ipaddress {{\n  10.0.0.{}/24\n }}\n track_script {{\n  {script}\n }}\n}}\n",
                i + 1,
                i + 100
            ));
        }
        let loaded = parse_str_isolated(&text, "t.conf").unwrap();
        plan(&loaded.config).0.instances
    }

    #[test]
    fn a_reload_keeps_a_script_still_tracked_and_tells_new_routers_its_state() {
        let mut inputs = Inputs::new(&instances(&[("A", "chk")]));
        let (chk, subs) = &mut inputs.inputs[0];
        (chk.up, chk.reported, chk.fails) = (false, true, 3);
        subs[0].told = true;

        let now_tracking = instances(&[("A", "chk"), ("B", "chk"), ("C", "other")]);
        inputs.follow(&now_tracking);
        assert_eq!(inputs.inputs.len(), 2);
        let (chk, subs) = &inputs.inputs[0];
        assert!(!chk.up && chk.reported && chk.fails == 3, "carried over");
        assert_eq!(subs.iter().map(|s| s.router).collect::<Vec<_>>(), [0, 1]);
        let (other, _) = &inputs.inputs[1];
        assert!(other.up && !other.reported, "new: starts afresh");

        let lines = Arc::new(Mutex::new(Vec::new()));
        let l = lines.clone();
        let report: Report = Arc::new(move |line: &str| l.lock().unwrap().push(line.to_owned()));
        let mut routers: Vec<Router> = now_tracking
            .iter()
            .map(|p| Router::new(p.with_primary("10.0.0.1".parse().unwrap())).unwrap())
            .collect();
        inputs.tick(Duration::ZERO, &mut routers, &report);
        let priorities: Vec<u8> = routers.iter().map(Router::effective_priority).collect();
        assert_eq!(priorities, [80, 80, 100], "both told chk is down");
        assert!(
            lines.lock().unwrap().is_empty(),
            "nothing changed: {lines:?}"
        );
    }
}
