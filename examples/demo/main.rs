//! `demo`: the director in action. As root, a namespace lab: a client, two directors in a
//! VRRP pair running `director` from a keepalived.conf (LVS-DR, round robin, TCP_CHECK), and
//! three real servers running HTTP. It drives HTTP traffic through the VIP, shows the
//! per-real distribution, kills the master (SIGKILL) and shows the takeover while traffic goes
//! on, stops one real's server and starts it again, and ends with a summary table.
//!
//! Not root: the same scenario runs in a deterministic simulator (the same crates' sans-IO
//! cores on a virtual clock), and the output says so.
//!
//! ```text
//! cargo run --release --example demo            # the lab as root, else the simulator
//! cargo run --release --example demo -- --sim   # the simulator in any case
//! ```

mod lab;
mod sim;

use std::process::ExitCode;
use std::time::Duration;

/// A named stretch of the scenario.
#[derive(Debug, Clone)]
pub(crate) struct PhaseSpec {
    /// What happens in it.
    pub(crate) name: String,
    /// When it starts.
    pub(crate) start: Duration,
    /// Whether the master director is killed at its start.
    pub(crate) kill_master: bool,
}

/// The scenario both modes run.
#[derive(Debug, Clone)]
pub(crate) struct Scenario {
    /// Time for the VRRP election before traffic starts.
    pub(crate) warmup: Duration,
    /// The phases, in order.
    pub(crate) phases: Vec<PhaseSpec>,
    /// The real whose server stops, and when it is down.
    pub(crate) down: (usize, Duration, Duration),
    /// Gap between client requests.
    pub(crate) request_interval: Duration,
    /// The health check's delay_loop.
    pub(crate) check_interval: Duration,
    /// Length of the last phase.
    pub(crate) tail: Duration,
}

impl Scenario {
    fn standard() -> Scenario {
        let s = Duration::from_secs;
        let phase = |name: &str, start: Duration, kill_master: bool| PhaseSpec {
            name: name.into(),
            start,
            kill_master,
        };
        Scenario {
            warmup: s(2),
            phases: vec![
                phase("steady state", s(2), false),
                phase("master director killed", s(5), true),
                phase("real 10.0.0.5 stops serving", s(8), false),
                phase("real 10.0.0.5 serves again", s(12), false),
            ],
            down: (1, s(8), s(12)),
            request_interval: Duration::from_millis(20),
            check_interval: s(1),
            tail: s(4),
        }
    }

    /// When the scenario ends.
    pub(crate) fn end(&self) -> Duration {
        self.phases.last().map_or(self.warmup, |p| p.start) + self.tail
    }

    /// Whether real `r`'s server is stopped at `now`.
    pub(crate) fn real_down(&self, r: usize, now: Duration) -> bool {
        let (real, from, to) = self.down;
        r == real && now >= from && now < to
    }
}

/// Requests answered per real, and failed, in one phase.
#[derive(Debug, Clone, Default)]
pub(crate) struct Phase {
    /// The phase's name.
    pub(crate) name: String,
    /// Answers from 10.0.0.4, .5, .6.
    pub(crate) per_real: [u32; 3],
    /// Requests that got no answer (no director holding the VIP yet, or a dead real not yet
    /// detected).
    pub(crate) failed: u32,
}

/// What the run measured.
#[derive(Debug, Clone, Default)]
pub(crate) struct Summary {
    /// Per phase.
    pub(crate) phases: Vec<Phase>,
    /// From killing the master to the backup becoming master.
    pub(crate) takeover: Option<Duration>,
}

impl Summary {
    fn print(&self, mode: &str) {
        println!();
        println!("summary ({mode})");
        println!(
            "{:<32} {:>10} {:>10} {:>10} {:>8}",
            "phase", "10.0.0.4", "10.0.0.5", "10.0.0.6", "failed"
        );
        for p in &self.phases {
            println!(
                "{:<32} {:>10} {:>10} {:>10} {:>8}",
                p.name, p.per_real[0], p.per_real[1], p.per_real[2], p.failed
            );
        }
        match self.takeover {
            Some(t) => println!(
                "takeover after the master was killed: {:.3} s",
                t.as_secs_f64()
            ),
            None => println!("takeover after the master was killed: not observed"),
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let force_sim = match args.as_slice() {
        [] => false,
        [flag] if flag == "--sim" => true,
        _ => {
            eprintln!("demo: usage: demo [--sim]");
            return ExitCode::from(2);
        }
    };
    let scenario = Scenario::standard();
    let why_sim = if force_sim {
        Some("--sim given".to_owned())
    } else {
        lab::unavailable()
    };
    match why_sim {
        None => match lab::run(&scenario) {
            Ok(summary) => {
                summary.print("network namespace lab, real processes");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("demo: the lab failed: {e}");
                ExitCode::FAILURE
            }
        },
        Some(why) => {
            println!("demo: running the scenario in the deterministic simulator ({why})");
            let summary = sim::run(&scenario, &mut |line| println!("{line}"));
            summary.print("deterministic simulator, virtual time");
            ExitCode::SUCCESS
        }
    }
}
