//! `healthcheck`: check targets until interrupted, printing one JSON line per state change.
//!
//! ```text
//! cargo run --example healthcheck -- --interval-ms 1000 tcp://127.0.0.1:22 http://127.0.0.1:8080/health?expect=200-299
//! {"ts_ms":1763712000123,"target":"tcp://127.0.0.1:22","state":"up","reason":"connected"}
//! ```
//!
//! Every target's first line is its initial state, decided by its first probe; later lines
//! are transitions after `--rise` passes or `--fall` failures. Runs until SIGINT or SIGTERM.
//! Bad arguments print a one-line error and exit with status 2.

use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use lb::health::driver::{Reactor, ReactorConfig};
use lb::health::url::parse_target_url;
use lb::health::{InitialState, State, Target, TrackerConfig};
use rand::rngs::StdRng;

#[path = "support/cli.rs"]
mod support;

const AFTER_HELP: &str = "\
TARGETS:
  tcp://HOST:PORT                          TCP connect
  tcp+syn://HOST:PORT                      TCP half-open: a SYN; SYN-ACK = up, RST = down (refused); the
                                           application never sees a connection (needs root or CAP_NET_RAW)
  http://HOST[:PORT]/PATH[?expect=CODES]   HTTP GET; CODES like 200-299,503 (default 200-299)
  https://HOST[:PORT]/PATH[?expect=CODES]  the same over TLS (certificate not verified)
  udp://HOST:PORT?send=HEX[&expect=HEX]    one datagram; the reply must match expect over their common
                                           length (X = any nibble; keepalived UDP_CHECK require_reply);
                                           without expect, only an ICMP port unreachable fails it
  icmp://HOST                              ICMP echo (needs root or ping_group_range)
  exec:/path/to/script                     exit 0 = up, 1 = down, 2-255 = up with weight code - 2
                                           (keepalived MISC_CHECK with misc_dynamic)
HOST is an IPv4 address, [IPv6] or a name.

OUTPUT (stdout, one JSON object per line):
  {\"ts_ms\":UNIX_MS,\"target\":\"TARGET\",\"state\":\"up\"|\"down\",\"reason\":\"...\"}";

/// Health-check targets and print their state changes as JSON lines.
#[derive(Parser, Debug)]
#[command(name = "healthcheck", after_help = AFTER_HELP)]
struct Cli {
    /// Milliseconds between probes of one target.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..))]
    interval_ms: u64,
    /// Milliseconds one probe may take before it counts as failed.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    timeout_ms: u64,
    /// Consecutive passes that bring a down target up.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    rise: u32,
    /// Consecutive failures that mark an up target down.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    fall: u32,
    /// What to check (see TARGETS below).
    #[arg(required = true, value_name = "TARGET")]
    targets: Vec<String>,
}

fn usage_error(msg: impl std::fmt::Display) -> ExitCode {
    support::usage_error("healthcheck", msg)
}

fn resolve(host: &str, port: u16) -> Option<SocketAddr> {
    (host, port).to_socket_addrs().ok()?.next()
}

fn main() -> ExitCode {
    let cli = match support::parse::<Cli>("healthcheck") {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let interval = Duration::from_millis(cli.interval_ms);
    let mut tracker = TrackerConfig::new(interval);
    tracker.initial = InitialState::Unknown;
    tracker.rise = cli.rise;
    tracker.fall = cli.fall;
    let mut targets = Vec::new();
    for text in &cli.targets {
        let url = match parse_target_url(text) {
            Ok(u) => u,
            Err(e) => return usage_error(e),
        };
        let addr = match &url.host {
            None => SocketAddr::from(([127, 0, 0, 1], 0)),
            Some(h) => match resolve(h, url.port) {
                Some(a) => a,
                None => return usage_error(format!("cannot resolve {h:?} in {text:?}")),
            },
        };
        targets.push((
            text.clone(),
            Target {
                addr,
                check: url.check,
                tracker,
                timeout: Duration::from_millis(cli.timeout_ms),
                source: None,
            },
        ));
    }

    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(signal, stop.clone()) {
            eprintln!("healthcheck: cannot install a signal handler: {e}");
            return ExitCode::FAILURE;
        }
    }
    let rng: StdRng = rand::make_rng();
    let mut reactor = match Reactor::new(ReactorConfig::default(), rng) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("healthcheck: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The same target given twice is probed once and reported under each spelling.
    let mut names: HashMap<_, Vec<String>> = HashMap::new();
    for (text, target) in targets {
        match reactor.add(target) {
            Ok(id) => names.entry(id).or_default().push(text),
            Err(e) => return usage_error(format!("{text}: {e}")),
        }
    }
    let mut out = BufWriter::new(std::io::stdout().lock());
    while !stop.load(Ordering::Relaxed) {
        if let Err(e) = reactor.poll(Some(Duration::from_millis(100))) {
            eprintln!("healthcheck: {e}");
            return ExitCode::FAILURE;
        }
        let mut wrote = false;
        while let Some(event) = reactor.poll_event() {
            let state = match event.transition.to {
                State::Up => "up",
                // No admin states here: anything not up is down.
                _ => "down",
            };
            let ts_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            for name in names.get(&event.id).into_iter().flatten() {
                // Written by hand to keep the contract's key order; serde_json escapes the strings.
                let _ = writeln!(
                    out,
                    "{{\"ts_ms\":{ts_ms},\"target\":{},\"state\":\"{state}\",\"reason\":{}}}",
                    serde_json::Value::from(name.as_str()),
                    serde_json::Value::from(event.transition.reason.to_string()),
                );
                wrote = true;
            }
        }
        if wrote && out.flush().is_err() {
            // stdout is gone (a closed pipe): nobody is listening any more.
            return ExitCode::SUCCESS;
        }
    }
    ExitCode::SUCCESS
}
