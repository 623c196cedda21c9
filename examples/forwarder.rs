//! `forwarder`: an IPVS-like layer-4 director in user space, on `lb-forward`.
//!
//! ```text
//! forwarder --interface eth0 --service tcp:10.0.0.100:80 --scheduler wrr \
//!     --real 10.0.0.3:80,weight=3,method=dr --real 10.0.0.4:80,method=nat \
//!     --real 10.0.0.5:80,method=tun [--persistence 300] [--io pnet|fast|pnet-per-frame] [--stats-interval 5]
//!     [--workers 2] [--realtime 10 --cpu 1]
//! ```
//!
//! At start it turns checksum and segmentation offloads off on its interfaces (so that the
//! frames it sends and the ones GRO would merge are complete; frames a veth peer on this host
//! sends with a partial checksum are completed by the core, and a peer's GSO frames, larger
//! than one MTU, are counted as truncated: turn segmentation offload off on that peer),
//! resolves each real's egress interface and next-hop MAC from the kernel's
//! routing and neighbour tables (running ARP / ND when needed), and installs an nftables table
//! `lb_forward_<pid>` that stops the kernel from acting on the packets it handles (see
//! `lb_forward::io::KernelRules`). SIGUSR1, or every `--stats-interval` seconds, prints the
//! statistics table; SIGTERM or SIGINT removes the table and exits. Bad arguments: a one-line
//! error and exit status 2. On a host whose CPUs other work also wants, `--realtime PRIO --cpu N`
//! runs the forwarding thread under SCHED_RR on CPU N, as a datapath is usually deployed
//! (the lab's `fast-rt` row, BENCHMARKS.md). `--workers N` runs N forwarding threads, each on
//! sockets of its own that the kernel's `PACKET_FANOUT` gives a share of the flows, all
//! sharing one connection table and scheduler (`lb_forward::io::Driver::worker`), so that the
//! kernel's per-frame work of receiving and sending runs on several CPUs at once.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use lb::forward::io::{Driver, KernelRules, NextHopResolver, PnetCalls, PnetIo, RingIo, boxed};
use lb::forward::report::stats_table;
use lb::forward::{
    Encap, Forwarder, Method, PoolScheduler, Protocol, RealConfig, ServiceConfig, ServiceKey,
    ServiceStatus, Settings, Timeouts,
};
use lb::sched::{Algorithm, Persistence, PoolConfig};
use lb::vrrp::linux::realtime;
use nix::sched::{CpuSet, sched_setaffinity};
use nix::unistd::Pid;

#[path = "support/signals.rs"]
mod signals;
#[path = "support/cli.rs"]
mod support;

/// A user-space IPVS: balance a virtual service over real servers by direct routing, NAT or
/// IPIP / IP6IP6 / GUE tunnels.
#[derive(Parser, Debug)]
#[command(name = "forwarder", version)]
struct Cli {
    /// An interface to receive and send on (repeat for several).
    #[arg(long = "interface", required = true, value_name = "IF")]
    interfaces: Vec<String>,
    /// The virtual service: tcp:10.0.0.100:80, udp:[fd00::100]:53 (port 0: every port).
    #[arg(long, value_name = "PROTO:VIP:PORT")]
    service: String,
    /// The scheduler: an ipvsadm name (rr wrr lc wlc sed nq lblc lblcr dh sh mh fo ovf twos)
    /// or one of lb-sched's others.
    #[arg(long, default_value = "wlc", value_name = "ALG")]
    scheduler: String,
    /// A real server: IP:PORT[,weight=W][,method=dr|nat|tun][,gue=PORT]. PORT 0 keeps the
    /// service port; `gue=PORT` tunnels in GUE to that port instead of IPIP.
    #[arg(
        long = "real",
        required = true,
        value_name = "IP:PORT[,weight=W][,method=M]"
    )]
    reals: Vec<String>,
    /// Client persistence timeout in seconds (ipvsadm -p).
    #[arg(long, value_name = "SECS")]
    persistence: Option<u64>,
    /// The packet I/O backend: pnet (portable; a batch per recvmmsg / sendmmsg on pnet's
    /// socket), fast (TPACKET_V3 receive rings and PACKET_TX_RING transmit rings), or
    /// pnet-per-frame (pnet's own one-frame calls: the naive loop, for comparison).
    #[arg(long, value_enum, default_value_t = IoKind::Pnet)]
    io: IoKind,
    /// Print the statistics table every SECS seconds (also on SIGUSR1).
    #[arg(long, value_name = "SECS")]
    stats_interval: Option<u64>,
    /// Clamp the MSS of SYNs tunnelled to TUN reals to what fits the tunnel.
    #[arg(long)]
    mss_clamp: bool,
    /// One-packet scheduling for a UDP service (ipvsadm -o).
    #[arg(long)]
    ops: bool,
    /// Connection table size (allocated at start, about 250 bytes per entry).
    #[arg(long, default_value_t = 1 << 18, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1 << 24))]
    max_connections: u32,
    /// Connection timeouts in seconds, like `ipvsadm --set TCP TCPFIN UDP` (0 keeps a default:
    /// 900 120 300).
    #[arg(long = "set", num_args = 3, value_names = ["TCP", "TCPFIN", "UDP"])]
    timeouts: Option<Vec<u64>>,
    /// Expire the connections of a removed real on their next packet (IPVS
    /// `expire_nodest_conn`) instead of dropping their packets until they time out.
    #[arg(long)]
    expire_nodest_conn: bool,
    /// Frames per receive / send batch (1 gives a one-frame-at-a-time loop, for comparison).
    #[arg(long, default_value_t = 64, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    batch: u16,
    /// Run the forwarding thread under the real-time SCHED_RR policy at this priority (1-99),
    /// like keepalived's `vrrp_rt_priority`: on a busy host it then runs whenever frames wait
    /// instead of taking turns with other processes. Best with --cpu. Under a full load it
    /// never sleeps: the kernel's real-time throttling (`kernel.sched_rt_runtime_us`, 95 % by
    /// default) is what leaves that CPU's other work some time.
    #[arg(long, value_name = "PRIO", value_parser = clap::value_parser!(u8).range(1..=99))]
    realtime: Option<u8>,
    /// Run the forwarder on these CPUs: with one, every thread on it; with several, the i-th
    /// forwarding thread (see --workers) on the i-th CPU of the list (cycling).
    #[arg(long, value_name = "CPU[,CPU...]", value_delimiter = ',')]
    cpu: Vec<usize>,
    /// Forwarding threads, each with sockets of its own on every interface (in one
    /// PACKET_FANOUT group per interface, which spreads flows over them), sharing one
    /// connection table, scheduler and statistics.
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=64))]
    workers: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum IoKind {
    Pnet,
    Fast,
    PnetPerFrame,
}

fn parse_service(s: &str) -> Result<ServiceKey, String> {
    let (proto, addr) = s
        .split_once(':')
        .ok_or_else(|| format!("--service {s:?}: expected PROTO:VIP:PORT"))?;
    let protocol = match proto {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        _ => return Err(format!("--service {s:?}: protocol must be tcp or udp")),
    };
    let vip: SocketAddr = addr
        .parse()
        .map_err(|_| format!("--service {s:?}: bad VIP:PORT (IPv6 as [addr]:port)"))?;
    Ok(ServiceKey::new(protocol, vip))
}

fn parse_real(s: &str, mss_clamp: bool) -> Result<RealConfig, String> {
    let mut parts = s.split(',');
    let addr: SocketAddr = parts
        .next()
        .unwrap_or_default()
        .parse()
        .map_err(|_| format!("--real {s:?}: bad IP:PORT"))?;
    let mut weight = 1;
    let mut method = "dr";
    let mut gue = None;
    for opt in parts {
        let (k, v) = opt
            .split_once('=')
            .ok_or_else(|| format!("--real {s:?}: option {opt:?} is not key=value"))?;
        match k {
            "weight" => weight = v.parse().map_err(|_| format!("--real {s:?}: bad weight"))?,
            "method" => method = v,
            "gue" => {
                gue = Some(
                    v.parse()
                        .map_err(|_| format!("--real {s:?}: bad GUE port"))?,
                )
            }
            _ => return Err(format!("--real {s:?}: unknown option {k:?}")),
        }
    }
    let method = match (method, gue) {
        ("dr", None) => Method::Dr,
        ("nat", None) => Method::Nat,
        ("tun", None) => Method::Tunnel(Encap::Ip),
        ("tun", Some(port)) => Method::Tunnel(Encap::Gue { port }),
        (m, None) => return Err(format!("--real {s:?}: method {m:?} is not dr, nat or tun")),
        (_, Some(_)) => return Err(format!("--real {s:?}: gue= needs method=tun")),
    };
    Ok(RealConfig {
        addr,
        weight,
        method,
        clamp_mss: mss_clamp && matches!(method, Method::Tunnel(_)),
    })
}

fn usage_error(msg: impl std::fmt::Display) -> ExitCode {
    support::usage_error("forwarder", msg)
}

fn fail(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("forwarder: {msg}");
    ExitCode::from(1)
}

/// A per-process seed for the connection table's hash, from the kernel's generator.
fn seed() -> u64 {
    let mut b = [0u8; 8];
    if let Ok(bytes) = std::fs::read("/proc/sys/kernel/random/uuid") {
        for (i, c) in bytes.iter().enumerate() {
            b[i % 8] ^= c.rotate_left(i as u32);
        }
    }
    u64::from_le_bytes(b) ^ u64::from(std::process::id())
}

fn main() -> ExitCode {
    let cli = match support::parse::<Cli>("forwarder") {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let key = match parse_service(&cli.service) {
        Ok(k) => k,
        Err(e) => return usage_error(e),
    };
    let reals: Vec<RealConfig> = match cli
        .reals
        .iter()
        .map(|r| parse_real(r, cli.mss_clamp))
        .collect()
    {
        Ok(r) => r,
        Err(e) => return usage_error(e),
    };
    let algorithm = match Algorithm::from_name(&cli.scheduler) {
        Ok(a) => a,
        Err(e) => return usage_error(format!("--scheduler: {e}")),
    };
    let mut pool = PoolConfig::new(algorithm);
    if let Some(secs) = cli.persistence {
        match Persistence::new(Duration::from_secs(secs)) {
            Ok(p) => pool = pool.with_persistence(p),
            Err(e) => return usage_error(format!("--persistence: {e}")),
        }
    }
    if cli.ops && key.protocol != Protocol::Udp {
        return usage_error("--ops: UDP services only");
    }
    if cli.stats_interval == Some(0) {
        return usage_error("--stats-interval: at least 1 second");
    }
    // Reals that do not fit the service are bad arguments too: found before anything is
    // changed on the host.
    let fw = match build(&cli, key, &reals, pool) {
        Ok(fw) => fw,
        Err(e) => return usage_error(e),
    };
    match run(&cli, fw, key, reals.len()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

/// The forwarder with its service and reals, before it touches the host.
fn build(
    cli: &Cli,
    key: ServiceKey,
    reals: &[RealConfig],
    pool: PoolConfig,
) -> Result<Forwarder, String> {
    let mut timeouts = Timeouts::default();
    if let Some(t) = &cli.timeouts {
        let secs = |i: usize| Duration::from_secs(t.get(i).copied().unwrap_or(0));
        timeouts.set(secs(0), secs(1), secs(2));
    }
    let settings = Settings {
        max_connections: cli.max_connections as usize,
        hash_seed: seed(),
        timeouts,
        expire_nodest_conn: cli.expire_nodest_conn,
    };
    let mut fw = Forwarder::new(settings);
    let sched = PoolScheduler::new(pool, seed()).map_err(|e| format!("--scheduler: {e}"))?;
    let config = ServiceConfig {
        one_packet: cli.ops,
    };
    fw.add_service(key, config, sched)
        .map_err(|e| format!("--service {key}: {e}"))?;
    for r in reals {
        fw.add_real(&key, *r, Duration::ZERO)
            .map_err(|e| format!("--real {}: {e}", r.addr))?;
    }
    Ok(fw)
}

/// Pins the calling thread, and the threads it starts from now on, to `cpu`.
fn pin_to_cpu(cpu: usize) -> nix::Result<()> {
    let mut set = CpuSet::new();
    set.set(cpu)?;
    sched_setaffinity(Pid::from_raw(0), &set)
}

fn run(cli: &Cli, mut fw: Forwarder, key: ServiceKey, reals: usize) -> Result<(), String> {
    // First, so that a signal from now on is a clean stop that removes what was installed.
    let (term, usr1) = signals::flags(signal_hook::consts::SIGUSR1)?;
    let mut indices = Vec::new();
    for name in &cli.interfaces {
        let iface = lb::forward::io::interface(name).map_err(|e| e.to_string())?;
        match lb::forward::io::disable_offloads(name) {
            Ok(()) => eprintln!(
                "forwarder: checksum and segmentation offloads turned off on {name} (a local peer's GSO frames are dropped as truncated: turn TSO/GSO off on it)"
            ),
            Err(e) => eprintln!(
                "forwarder: could not turn offloads off on {name} ({e}); frames larger than one MTU are dropped as truncated"
            ),
        }
        indices.push(iface.index);
        fw.set_interface(iface);
    }
    let mut resolver = NextHopResolver::new().map_err(|e| e.to_string())?;
    resolve(&mut resolver, &mut fw, Duration::from_secs(2));
    let mut rules =
        KernelRules::install(&fw).map_err(|e| format!("installing nftables rules: {e}"))?;
    eprintln!("forwarder: nftables table inet {} installed", rules.table());

    // Before the I/O threads start: they inherit the CPU, not the real-time policy (on
    // another CPU they would compete with whatever runs there, which measured slower).
    if let [cpu] = cli.cpu[..] {
        pin_to_cpu(cpu)
            .map_err(|e| format!("--cpu {cpu}: not a CPU this process may run on ({e})"))?;
    }
    if let Some(priority) = cli.realtime {
        realtime::set_realtime(priority).map_err(|e| format!("--realtime {priority}: {e}"))?;
    }
    let workers = usize::from(cli.workers);
    let mut ios = match cli.io {
        IoKind::Pnet => boxed(
            PnetIo::open_many(&cli.interfaces, PnetCalls::Batched, workers)
                .map_err(|e| format!("pnet: {e}"))?,
        ),
        IoKind::Fast => {
            boxed(RingIo::open_many(&indices, workers).map_err(|e| format!("fast io: {e}"))?)
        }
        IoKind::PnetPerFrame => boxed(
            PnetIo::open_many(&cli.interfaces, PnetCalls::PerFrame, workers)
                .map_err(|e| format!("pnet: {e}"))?,
        ),
    };
    let mut driver = Driver::new(fw, ios.remove(0), usize::from(cli.batch));
    let mut threads = Vec::new();
    let cpu_of = |i: usize| (cli.cpu.len() > 1).then(|| cli.cpu[i % cli.cpu.len()]);
    if let Some(cpu) = cpu_of(0) {
        pin_to_cpu(cpu)
            .map_err(|e| format!("--cpu {cpu}: not a CPU this process may run on ({e})"))?;
    }
    for (i, io) in ios.into_iter().enumerate() {
        let mut worker = driver.worker(io);
        let cpu = cpu_of(i + 1);
        let (term, realtime) = (Arc::clone(&term), cli.realtime);
        let thread = std::thread::Builder::new()
            .name("lb-forward".into())
            .spawn(move || -> Result<(), String> {
                if let Some(cpu) = cpu {
                    pin_to_cpu(cpu).map_err(|e| format!("--cpu {cpu}: {e}"))?;
                }
                if let Some(priority) = realtime {
                    realtime::set_realtime(priority)
                        .map_err(|e| format!("--realtime {priority}: {e}"))?;
                }
                worker.run(&term).map_err(|e| format!("packet I/O: {e}"))
            })
            .map_err(|e| format!("starting a worker: {e}"))?;
        threads.push(thread);
    }
    eprintln!(
        "forwarder: {} on {} with {} io ({} worker(s)), {} real(s); ready",
        key,
        cli.interfaces.join(","),
        driver.io_name(),
        workers,
        reals
    );
    let interval = cli.stats_interval.map(Duration::from_secs);
    let mut last_stats = Instant::now();
    let mut last_snapshot: (Vec<ServiceStatus>, Instant) =
        (driver.forwarder().status(), Instant::now());
    let mut last_resolve = Instant::now();
    let mut result = Ok(());
    while !term.load(Ordering::Relaxed) {
        if let Err(e) = driver.poll(Some(Duration::from_millis(100))) {
            result = Err(format!("packet I/O: {e}"));
            break;
        }
        if threads.iter().any(|t| t.is_finished()) {
            break;
        }
        // Next hops change (neighbours age, routes move): refresh them every second.
        if last_resolve.elapsed() >= Duration::from_secs(1) {
            resolve(&mut resolver, &mut driver.forwarder(), Duration::ZERO);
            last_resolve = Instant::now();
        }
        let due = interval.is_some_and(|i| last_stats.elapsed() >= i);
        if usr1.swap(false, Ordering::Relaxed) || due {
            let forwarder = driver.forwarder();
            let now = forwarder.status();
            let elapsed = last_snapshot.1.elapsed();
            let table = stats_table(
                &now,
                Some((&last_snapshot.0, elapsed)),
                forwarder.stats(),
                forwarder.connection_count(),
            );
            drop(forwarder);
            println!("{table}");
            last_snapshot = (now, Instant::now());
            last_stats = Instant::now();
        }
    }
    // The workers stop on `term`; the first error any of them met is reported.
    term.store(true, Ordering::Relaxed);
    for thread in threads {
        let outcome = thread
            .join()
            .unwrap_or_else(|_| Err("a worker panicked".into()));
        if result.is_ok() {
            result = outcome;
        }
    }
    rules
        .remove()
        .map_err(|e| format!("removing nftables rules: {e}"))?;
    eprintln!("forwarder: nftables table removed; exiting");
    result
}

fn resolve(resolver: &mut NextHopResolver, fw: &mut Forwarder, wait: Duration) {
    for note in resolver.refresh(fw, wait) {
        eprintln!("forwarder: {note}");
    }
}
