//! `director`: keepalived + IPVS in one process, from a keepalived.conf.
//!
//! ```text
//! director -f /etc/keepalived/keepalived.conf                 run VRRP, checks and the datapath
//! director -f keepalived.conf --check-config                  read, print warnings, exit
//! director -f keepalived.conf --vrrp-only | --check-only      one half, like keepalived's -P / -C
//! director list [--stats] [--rate]                            the service table of a running director
//! director -f keepalived.conf --metrics 127.0.0.1:9100        also Prometheus metrics
//! director -f keepalived.conf --io fast --workers 2           ring I/O, two forwarding threads
//! ```
//!
//! `virtual_server fwmark N` takes the packets that the host's prerouting rules mark N
//! (`nft -j list ruleset`, and `iptables-save` for iptables-nft's tables); rules it cannot
//! translate exactly are warnings (see `lb::director::fwmark`), and SIGHUP reads them again.
//!
//! Messages go to stdout, one per line; VRRP transitions as
//! `<unix-time-ms> <vrid> MASTER|BACKUP|FAULT <reason> (<instance>)`, a `vrrp_sync_group`'s as
//! `<unix-time-ms> group <name> MASTER|BACKUP|FAULT|INIT (every member)`. SIGHUP reloads the file
//! without dropping established connections, and unchanged VRRP instances keep their state
//! (no transition; see `lb::director`); SIGTERM / SIGINT resign VRRP (priority 0) and
//! remove the addresses and nftables rules the director installed. Bad arguments: a one-line
//! error, exit 2; a configuration that cannot be read: exit 1. Needs root to run.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use lb::config::{Options as ReadOptions, WarningKind};
use lb::director::{self, IoKind, Options};

#[path = "support/signals.rs"]
mod signals;
#[path = "support/cli.rs"]
mod support;

/// Run a keepalived.conf: VRRP for the addresses, health checks, and an L4 datapath.
#[derive(Parser, Debug)]
#[command(
    name = "director",
    disable_version_flag = true,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    /// The configuration file (keepalived.conf syntax).
    #[arg(short = 'f', long = "use-file", value_name = "FILE")]
    file: Option<PathBuf>,
    /// Read the configuration, print every warning and a summary, and exit.
    #[arg(long)]
    check_config: bool,
    /// Run only the VRRP instances (keepalived --vrrp).
    #[arg(long, conflicts_with = "check_only")]
    vrrp_only: bool,
    /// Run only the virtual servers and their checks (keepalived --check).
    #[arg(long)]
    check_only: bool,
    /// A datapath interface besides the VRRP instances' own (repeat for more).
    #[arg(long = "interface", value_name = "IF")]
    interfaces: Vec<String>,
    /// The datapath's packet I/O.
    #[arg(long, value_enum, default_value_t = Io::Pnet)]
    io: Io,
    /// Forwarding threads, each with sockets of its own (one PACKET_FANOUT group per
    /// interface), sharing one connection table and scheduler.
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=64))]
    workers: u8,
    /// The control socket `director list` talks to.
    #[arg(long, value_name = "PATH", default_value = director::DEFAULT_CONTROL)]
    control: PathBuf,
    /// Serve Prometheus metrics on this address (`GET /metrics`).
    #[arg(long, value_name = "ADDR:PORT")]
    metrics: Option<std::net::SocketAddr>,
    /// keepalived's -i: lines starting `@NAME` apply.
    #[arg(short = 'i', long = "config-id", value_name = "NAME")]
    instance: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Print a running director's service table (like `ipvsadm -Ln`) and VRRP states.
    List {
        /// Packet, byte and connection totals.
        #[arg(long)]
        stats: bool,
        /// Per-second rates.
        #[arg(long)]
        rate: bool,
        /// The control socket.
        #[arg(long, value_name = "PATH", default_value = director::DEFAULT_CONTROL)]
        control: PathBuf,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Io {
    /// pnet datalink channels.
    Pnet,
    /// TPACKET_V3 receive rings and PACKET_TX_RING transmit rings.
    Fast,
}

fn usage_error(message: impl std::fmt::Display) -> ExitCode {
    support::usage_error("director", message)
}

fn main() -> ExitCode {
    let cli = match support::parse::<Cli>("director") {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    if let Some(Cmd::List {
        stats,
        rate,
        control,
    }) = &cli.command
    {
        let request = match (stats, rate) {
            (false, false) => "list".to_owned(),
            (s, r) => format!(
                "list{}{}",
                if *s { " --stats" } else { "" },
                if *r { " --rate" } else { "" }
            ),
        };
        return match director::request(control, &request) {
            Ok(answer) => {
                print!("{answer}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!(
                    "director: no director answers on {}: {e}",
                    control.display()
                );
                ExitCode::FAILURE
            }
        };
    }
    let Some(file) = cli.file.clone() else {
        return usage_error("-f FILE is required (or `director list`)");
    };
    if cli.check_config {
        return check_config(&file, cli.instance.clone());
    }
    let report: director::Report = Arc::new(|line: &str| println!("{line}"));
    let options = Options {
        vrrp: !cli.check_only,
        services: !cli.vrrp_only,
        interfaces: cli.interfaces.clone(),
        io: match cli.io {
            Io::Pnet => IoKind::Pnet,
            Io::Fast => IoKind::Fast,
        },
        workers: usize::from(cli.workers),
        control: Some(cli.control.clone()),
        metrics: cli.metrics,
        instance: cli.instance.clone(),
        report,
    };
    let (stop, reload) = match signals::flags(signal_hook::consts::SIGHUP) {
        Ok(flags) => flags,
        Err(e) => {
            eprintln!("director: {e}");
            return ExitCode::FAILURE;
        }
    };
    match director::run(&file, &options, &stop, &reload) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("director: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--check-config`: warnings on stderr, a summary on stdout; exit 1 when the file cannot be
/// read at all.
fn check_config(file: &std::path::Path, instance: Option<String>) -> ExitCode {
    let loaded = match lb::config::load(file, &ReadOptions { instance }) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let (plan, notes) = director::plan(&loaded.config);
    for w in loaded.warnings.iter().chain(&notes) {
        eprintln!("{w}");
    }
    let c = &loaded.config;
    let reals: usize = c.virtual_servers.iter().map(|v| v.reals.len()).sum();
    let checks: usize = plan
        .services
        .iter()
        .flat_map(|s| &s.reals)
        .map(|r| r.checks.len())
        .sum();
    let unknown = loaded
        .warnings
        .iter()
        .filter(|w| w.kind == WarningKind::Unknown)
        .count();
    println!(
        "{}: {} vrrp_instance(s) ({} runnable, {} sync group(s)), {} virtual_server(s) ({} runnable), {reals} real_server(s), {checks} check(s); {} warning(s), {unknown} unknown keyword(s)",
        file.display(),
        c.vrrp_instances.len(),
        plan.instances.len(),
        plan.groups.len(),
        c.virtual_servers.len(),
        plan.services.len(),
        loaded.warnings.len() + notes.len(),
    );
    ExitCode::SUCCESS
}
