//! `tunnel_endpoint`: the real server's side of the forwarder's TUN mode, for hosts whose
//! kernel has no ipip / ip6tnl / fou (as in many containers).
//!
//! ```text
//! tunnel_endpoint --interface eth0 --vip 10.0.0.100 [--vip fd00::100] [--gue-port 6080]
//! ```
//!
//! It creates a TUN device holding the VIPs, captures IPIP / IP6IP6 (and GUE) packets arriving
//! on the interface, and writes the inner packets (those addressed to a VIP) into the device;
//! the host answers them and the replies leave by normal routing with the VIP as source. An
//! nftables table `lb_tunnel_<pid>` drops the tunnel packets in the kernel. SIGUSR1 or
//! `--stats-interval` prints counters; SIGTERM or SIGINT removes the table and the device.
//! Bad arguments: a one-line error and exit status 2.

use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::Parser;
use lb::forward::io::TunnelEndpoint;

#[path = "support/signals.rs"]
mod signals;
#[path = "support/cli.rs"]
mod support;

/// Decapsulate IPIP / IP6IP6 / GUE packets from a director into a TUN device holding the VIPs.
#[derive(Parser, Debug)]
#[command(name = "tunnel_endpoint", version)]
struct Cli {
    /// The interface tunnelled packets arrive on.
    #[arg(long, value_name = "IF")]
    interface: String,
    /// A virtual IP to accept (repeat for several).
    #[arg(long = "vip", required = true, value_name = "ADDR")]
    vips: Vec<IpAddr>,
    /// Also decapsulate GUE on this UDP port.
    #[arg(long, value_name = "PORT")]
    gue_port: Option<u16>,
    /// The TUN device's name.
    #[arg(long, default_value = "lbtun0", value_name = "NAME")]
    tun_name: String,
    /// Print counters every SECS seconds (also on SIGUSR1).
    #[arg(long, value_name = "SECS")]
    stats_interval: Option<u64>,
}

fn main() -> ExitCode {
    let cli = match support::parse::<Cli>("tunnel_endpoint") {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    if cli.tun_name.is_empty() || cli.tun_name.len() > 15 {
        return support::usage_error("tunnel_endpoint", "--tun-name must be 1 to 15 bytes");
    }
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tunnel_endpoint: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: &Cli) -> Result<(), String> {
    let mut endpoint = TunnelEndpoint::open(&cli.interface, &cli.tun_name, &cli.vips, cli.gue_port)
        .map_err(|e| e.to_string())?;
    let (term, usr1) = signals::flags(signal_hook::consts::SIGUSR1)?;
    eprintln!(
        "tunnel_endpoint: {} holds {:?}; decapsulating from {}; nftables table inet {}; ready",
        endpoint.tun_name(),
        cli.vips,
        cli.interface,
        endpoint.rules().table()
    );
    let interval = cli.stats_interval.map(Duration::from_secs);
    let mut last = Instant::now();
    while !term.load(Ordering::Relaxed) {
        endpoint
            .poll(Some(Duration::from_millis(100)))
            .map_err(|e| format!("capture: {e}"))?;
        if usr1.swap(false, Ordering::Relaxed) || interval.is_some_and(|i| last.elapsed() >= i) {
            let s = endpoint.stats();
            println!(
                "received {} decapsulated {} not-ours {} malformed {} write-errors {}",
                s.received, s.decapsulated, s.not_ours, s.malformed, s.write_errors
            );
            last = Instant::now();
        }
    }
    drop(endpoint);
    eprintln!("tunnel_endpoint: device and nftables table removed; exiting");
    Ok(())
}
