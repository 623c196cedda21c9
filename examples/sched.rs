//! `sched`: replay a trace of connection events against any lb-sched algorithm.
//!
//! ```text
//! printf 'pick\npick\npick\n' | cargo run --release --example sched -- --alg wrr --weights 5,1,1
//! ```
//!
//! Reads operations from stdin (see `--help` and the `lb_sched::trace` docs), prints one line
//! per `pick`: the 0-based index of the server chosen, or `none`. A bad line prints a one-line
//! error with its line number on stderr and exits with status 2.

use clap::Parser;
use lb::sched::trace::{Op, Tracer, config};
use lb::sched::{Algorithm, Persistence};
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::io::{BufRead, BufWriter, Write};
use std::process::ExitCode;
use std::time::Duration;

#[path = "support/cli.rs"]
mod support;

const AFTER_HELP: &str = "\
OPERATIONS (stdin, one per line; blank lines and # comments are ignored):
  pick [SRC [DST]]         schedule a connection (it counts as active on the server chosen);
                           prints the server index or `none`. SRC/DST: a.b.c.d[:port] or [v6addr][:port]
  explain [SRC [DST]]      print why the next pick would choose what it chooses
  inactive I               one active connection of server I becomes inactive
  end I                    one active connection of server I ends
  expire I                 one inactive connection of server I ends
  weight I W               set server I's weight (0 quiesces it)
  threshold I UPPER LOWER  connection thresholds (0 = unset), like ipvsadm -x / -y
  add W                    append a server with weight W (it gets the next index)
  remove I                 remove server I (other indices do not change)
  down I | up I | drain I  server I's availability
  time T                   the clock is now T seconds

ALGORITHMS:
  IPVS:   rr wrr lc wlc sed nq lblc lblcr dh sh mh fo ovf twos
  others: swrr edf random p2c ring maglev rendezvous jump jump-classic

FLAGS (--flags, comma-separated):
  sh-fallback sh-port mh-fallback mh-port   the IPVS scheduler flags
  bounded=PERCENT                           bounded load for ring, maglev, rendezvous, jump(-classic)
  slow-start=SECONDS                        ramp weights of servers that join or come back up

EXAMPLE:
  printf 'pick\\npick\\npick\\npick\\npick\\npick\\npick\\n' | sched --alg wrr --weights 5,1,1
  prints 0 0 0 0 0 1 2, one per line, as the kernel's wrr does.";

/// Replay a trace of connection events against a scheduling algorithm.
#[derive(Parser, Debug)]
#[command(name = "sched", version, after_help = AFTER_HELP)]
struct Cli {
    /// The algorithm (see ALGORITHMS).
    #[arg(long, value_name = "ALG")]
    alg: String,
    /// The servers' initial weights, in list order: server 0 first.
    #[arg(long, value_name = "W0,W1,...", value_delimiter = ',', num_args = 1.., required = true)]
    weights: Vec<u32>,
    /// Scheduler flags (see FLAGS).
    #[arg(long, value_name = "F,...", value_delimiter = ',')]
    flags: Vec<String>,
    /// Table size: mh (one of its primes), maglev (a prime), sh / dh (a power of two).
    #[arg(long, value_name = "M")]
    table_size: Option<u32>,
    /// Seed for the algorithms that draw random numbers.
    #[arg(long, value_name = "S", default_value_t = 1)]
    seed: u64,
    /// Persistence timeout in seconds, like ipvsadm -p.
    #[arg(long, value_name = "SECS")]
    persistence: Option<u64>,
    /// Persistence granularity: an IPv4 netmask (255.255.255.0) or an IPv6 prefix length (64).
    #[arg(long, value_name = "MASK", requires = "persistence")]
    netmask: Option<String>,
    /// Print each server's share of the picks at the end.
    #[arg(long)]
    stats: bool,
}

fn persistence(secs: u64, netmask: Option<&str>) -> Result<Persistence, String> {
    let p = Persistence::new(Duration::from_secs(secs)).map_err(|e| e.to_string())?;
    let Some(mask) = netmask else { return Ok(p) };
    let p = if mask.contains('.') {
        let mask = mask.parse().map_err(|_| format!("bad netmask {mask:?}"))?;
        p.with_v4_netmask(mask)
    } else {
        let prefix = mask.parse().map_err(|_| format!("bad netmask {mask:?}"))?;
        p.with_v6_prefix(prefix)
    };
    p.map_err(|e| e.to_string())
}

fn usage_error(msg: impl std::fmt::Display) -> ExitCode {
    support::usage_error("sched", msg)
}

fn main() -> ExitCode {
    let cli = match support::parse::<Cli>("sched") {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    if !Algorithm::NAMES.contains(&cli.alg.as_str()) {
        return usage_error(format!("unknown algorithm {:?} (see --help)", cli.alg));
    }
    let flags: Vec<&str> = cli
        .flags
        .iter()
        .map(String::as_str)
        .filter(|f| !f.is_empty())
        .collect();
    let mut pool_config = match config(&cli.alg, &flags, cli.table_size) {
        Ok(c) => c,
        Err(e) => return usage_error(e),
    };
    if let Some(secs) = cli.persistence {
        match persistence(secs, cli.netmask.as_deref()) {
            Ok(p) => pool_config.persistence = Some(p),
            Err(e) => return usage_error(e),
        }
    }
    let mut tracer = match Tracer::new(pool_config, &cli.weights) {
        Ok(t) => t,
        Err(e) => return usage_error(e),
    };
    let mut rng = StdRng::seed_from_u64(cli.seed);
    let stdin = std::io::stdin().lock();
    let mut out = BufWriter::new(std::io::stdout().lock());
    for (n, line) in stdin.lines().enumerate() {
        let line = match line {
            Ok(line) => line,
            Err(e) => {
                let _ = out.flush();
                eprintln!("sched: line {}: {e}", n + 1);
                return ExitCode::from(2);
            }
        };
        let result = Op::parse(&line).and_then(|op| match op {
            Some(op) => tracer.apply(&op, &mut rng),
            None => Ok(Vec::new()),
        });
        match result {
            Ok(lines) => {
                for l in lines {
                    if writeln!(out, "{l}").is_err() {
                        return ExitCode::SUCCESS; // stdout closed: nothing more to say
                    }
                }
            }
            Err(e) => {
                let _ = out.flush();
                eprintln!("sched: line {}: {e}", n + 1);
                return ExitCode::from(2);
            }
        }
    }
    if cli.stats {
        for l in tracer.stats() {
            let _ = writeln!(out, "{l}");
        }
    }
    let _ = out.flush();
    ExitCode::SUCCESS
}
