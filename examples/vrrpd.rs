//! `vrrpd`: one VRRP virtual router on one interface, wire-compatible with keepalived.
//!
//! ```text
//! vrrpd --interface eth0 --vrid 51 --priority 150 --vip 10.0.0.100/24 --interval-ms 100
//! vrrpd --interface eth0 --vrid 51 --priority 150 --vip 10.0.0.100/24 --interval-ms 10 \
//!       --realtime 50 --no-swap    # short intervals: real-time scheduling, no swapping
//! ```
//!
//! Prints each state change on stdout as `<unix-time-ms> <vrid> MASTER|BACKUP|FAULT <reason>`
//! and interop warnings on stderr as `<unix-time-ms> <vrid> WARNING <text>`. On SIGTERM or
//! SIGINT a master sends a priority-0 advert (a backup takes over after Skew_Time) and every
//! virtual address is removed. `--notify CMD` runs `CMD VI_<vrid> MASTER|BACKUP|FAULT` through
//! `sh` on each change, like keepalived's `notify`. Bad arguments: a one-line error, exit 2;
//! a failure at run time (no such interface, no permission): a one-line error, exit 1. Needs
//! root (raw sockets, netlink).

use std::net::IpAddr;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Parser, ValueEnum};
use lb::vrrp::linux::{Driver, Interface, realtime};
use lb::vrrp::wire::{Auth, Family, Version};
use lb::vrrp::{ChecksumMode, Config, Event, State};

#[path = "support/cli.rs"]
mod support;

/// Run one VRRP (RFC 3768 / RFC 9568) virtual router on an interface.
#[derive(Parser, Debug)]
#[command(name = "vrrpd", disable_version_flag = true)]
struct Cli {
    /// The interface to run on (adverts are sent from its first IPv4 address, or its IPv6
    /// link-local address for IPv6 virtual addresses).
    #[arg(long, value_name = "IF")]
    interface: String,
    /// Virtual router id.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=255))]
    vrid: u8,
    /// Priority: 1-254, or 255 when this host owns the virtual addresses.
    #[arg(long, value_name = "P", value_parser = clap::value_parser!(u8).range(1..=255))]
    priority: u8,
    /// A virtual address with its prefix length (repeat for more; one family).
    #[arg(long = "vip", value_name = "ADDR/PREFIX", required = true, value_parser = parse_vip)]
    vips: Vec<(IpAddr, u8)>,
    /// Protocol version: 2 (RFC 3768, IPv4, whole seconds) or 3 (RFC 9568).
    #[arg(long, value_name = "2|3", default_value_t = 3, value_parser = clap::value_parser!(u8).range(2..=3))]
    version: u8,
    /// Advertisement interval in milliseconds (v2: a multiple of 1000; v3: of 10).
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    interval_ms: u64,
    /// Do not preempt a lower-priority master.
    #[arg(long)]
    nopreempt: bool,
    /// After first hearing a lower-priority master, wait this long before preempting it.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    preempt_delay_ms: u64,
    /// Accept packets addressed to the virtual addresses as a non-owner master. Without it
    /// (RFC 9568 §6.4.3, RFC 3768 §6.4.3) an nftables table drops them, ARP and neighbour
    /// discovery excepted; keepalived accepts by default unless vrrp_strict. Needs `nft`.
    #[arg(long)]
    accept: bool,
    /// Send adverts to these peers instead of the multicast group (keepalived unicast_peer).
    #[arg(long = "unicast-peer", value_name = "IP", num_args = 1..)]
    unicast_peers: Vec<IpAddr>,
    /// VRRPv2 simple-text password (keepalived auth_type PASS; first 8 bytes).
    #[arg(long, value_name = "PASS")]
    auth_pass: Option<String>,
    /// VRRPv3-over-IPv4 checksum to send: rfc9568 (message only), pseudo-header (keepalived
    /// 2.2.7, FRR) or auto (RFC 9568 until a peer is heard, then the peers' form).
    #[arg(long, value_enum, default_value_t = Checksum::Auto)]
    checksum: Checksum,
    /// Run `CMD INSTANCE STATE` (through sh) on each state change, like keepalived's notify.
    #[arg(long, value_name = "CMD")]
    notify: Option<String>,
    /// Run the router under the real-time SCHED_RR policy at this priority (1-99), like
    /// keepalived's vrrp_rt_priority: what keeps a 10 ms interval free of spurious takeovers
    /// on a busy machine. Notify commands still run under the normal scheduler.
    #[arg(long, value_name = "PRIO", value_parser = clap::value_parser!(u8).range(1..=99))]
    realtime: Option<u8>,
    /// Lock the process in memory so it never waits for swap (keepalived's vrrp_no_swap).
    #[arg(long)]
    no_swap: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Checksum {
    Rfc9568,
    PseudoHeader,
    Auto,
}

fn parse_vip(s: &str) -> Result<(IpAddr, u8), String> {
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| format!("{addr:?} is not an IP address"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) => p
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| format!("bad prefix length {p:?} (0-{max})"))?,
    };
    Ok((addr, prefix))
}

fn usage_error(msg: impl std::fmt::Display) -> ExitCode {
    support::usage_error("vrrpd", msg)
}

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

fn main() -> ExitCode {
    let cli = match support::parse::<Cli>("vrrpd") {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let vips: Vec<IpAddr> = cli.vips.iter().map(|v| v.0).collect();
    let family = Family::of(vips[0]);
    // The source address comes from the interface; validate the rest first so bad arguments
    // exit 2 before anything touches the system.
    let unspecified = match family {
        Family::Ipv4 => IpAddr::from([0u8; 4]),
        Family::Ipv6 => IpAddr::from([0u8; 16]),
    };
    let mut config = Config::new(cli.vrid, unspecified, vips.clone());
    config.priority = cli.priority;
    config.version = if cli.version == 2 {
        Version::V2
    } else {
        Version::V3
    };
    config.interval = Duration::from_millis(cli.interval_ms);
    config.preempt = !cli.nopreempt;
    config.preempt_delay = Duration::from_millis(cli.preempt_delay_ms);
    config.accept = cli.accept;
    config.unicast_peers = cli.unicast_peers.clone();
    config.auth = cli
        .auth_pass
        .as_deref()
        .map_or(Auth::None, |p| Auth::pass(p.as_bytes()));
    config.checksum = match cli.checksum {
        Checksum::Rfc9568 => ChecksumMode::Rfc9568,
        Checksum::PseudoHeader => ChecksumMode::PseudoHeader,
        Checksum::Auto => ChecksumMode::Auto,
    };
    if let Err(e) = config.validate() {
        return usage_error(e);
    }
    let iface = match Interface::lookup(&cli.interface) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("vrrpd: interface {}: {e}", cli.interface);
            return ExitCode::from(1);
        }
    };
    let Some(primary) = iface.primary(family, &vips) else {
        eprintln!(
            "vrrpd: {} has no address to send {family:?} adverts from",
            cli.interface
        );
        return ExitCode::from(1);
    };
    config.primary = primary;
    let prefixes = cli.vips.iter().map(|v| v.1).collect();
    let mut driver = match Driver::new(&cli.interface, config, prefixes) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("vrrpd: {e}");
            return ExitCode::from(1);
        }
    };
    if let Some(priority) = cli.realtime {
        if let Err(e) = realtime::set_realtime(priority) {
            eprintln!("vrrpd: real-time priority {priority}: {e}");
            return ExitCode::from(1);
        }
    }
    if cli.no_swap {
        if let Err(e) = realtime::lock_memory() {
            eprintln!("vrrpd: locking memory: {e}");
            return ExitCode::from(1);
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(signal, Arc::clone(&stop)) {
            eprintln!("vrrpd: signal handler: {e}");
            return ExitCode::from(1);
        }
    }
    let notify = cli.notify.clone();
    let mut on_event = move |event: &Event| match event {
        Event::StateChanged {
            vrid, to, reason, ..
        } if *to != State::Initialize => {
            println!("{} {vrid} {to} {reason}", unix_ms());
            if let Some(cmd) = &notify {
                run_notify(cmd, *vrid, *to);
            }
        }
        Event::Warning { vrid, warning } => eprintln!("{} {vrid} WARNING {warning}", unix_ms()),
        _ => {}
    };
    let result = driver
        .run(&stop, &mut on_event)
        .and_then(|()| driver.shutdown(&mut on_event));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vrrpd: {e}");
            // Leave no address behind on the way out.
            let _ = driver.shutdown(&mut |_| {});
            ExitCode::from(1)
        }
    }
}

/// keepalived's `notify`: `CMD INSTANCE STATE`, not waited for (a thread reaps it).
fn run_notify(cmd: &str, vrid: u8, state: State) {
    let child = Command::new("sh")
        .arg("-c")
        .arg(format!("{cmd} \"$@\""))
        .arg("vrrpd-notify")
        .arg(format!("VI_{vrid}"))
        .arg(state.name())
        .spawn();
    match child {
        Ok(mut child) => {
            std::thread::spawn(move || child.wait());
        }
        Err(e) => eprintln!("{} {vrid} WARNING notify {cmd:?}: {e}", unix_ms()),
    }
}
