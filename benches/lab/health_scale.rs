//! The reactor at scale: N TCP targets (listeners on distinct 127.0.0.0/8 addresses) checked
//! every interval from one thread, with connect probes (`--probe connect`, the default) or
//! half-open SYN probes (`--probe syn`, root). Prints the checker thread's CPU use, probes per second and
//! how late probes started after their slots; with `--nft`, also drops packets to 100 targets
//! with nftables and prints how long each took to be marked down, against the formula
//! fall x interval + timeout. Also prints the machine's steal time (the host running
//! something else); with `--passes`, each `poll` call's CPU, run-queue wait and steal, and a
//! breakdown of the calls with starts 50 ms late.
//!
//! ```text
//! benches/lab/health-10k.sh          # 10 000 targets, 30 s, in a throwaway namespace (root)
//! cargo bench --bench health_scale -- --targets 2000 --seconds 10 [--probe syn] [--coalesce-ms 4] [--realtime 10] [--passes]
//! ```
//!
//! Without `--bench` (as `cargo test --all-targets` runs it) it does a 2-second smoke run
//! with 200 targets. Needs a file descriptor limit above about 2.5 x targets.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use lb::health::driver::{Reactor, ReactorConfig, SynSocket};
use lb::health::probe::{parse_syn_reply, syn_segment};
use lb::health::{Check, InitialState, Jitter, State, Target, TrackerConfig};
use mio::net::TcpListener;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use rand::SeedableRng;
use rand::rngs::StdRng;

struct Args {
    targets: u32,
    seconds: u64,
    interval: Duration,
    timeout: Duration,
    fall: u32,
    nft: bool,
    /// Half-open SYN probes instead of connects.
    syn: bool,
    /// The reactor's start grid (`ReactorConfig::coalesce`); its default if `None`.
    coalesce: Option<Duration>,
    /// Run the checker thread under SCHED_FIFO at this priority (keepalived's
    /// `checker_rt_priority`), so that other load cannot keep it waiting for a CPU.
    realtime: Option<u8>,
    /// Time each `poll` call (wall, CPU, run-queue wait) and print the longest and the ones
    /// with starts 50 ms late: what made them late.
    passes: bool,
}

fn parse_args() -> Result<Args, String> {
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let bench = raw.iter().any(|a| a == "--bench");
    let mut a = if bench {
        Args {
            targets: 10_000,
            seconds: 30,
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
            fall: 3,
            nft: false,
            syn: false,
            coalesce: None,
            realtime: None,
            passes: false,
        }
    } else {
        Args {
            targets: 200,
            seconds: 2,
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
            fall: 3,
            nft: false,
            syn: false,
            coalesce: None,
            realtime: None,
            passes: false,
        }
    };
    let mut it = raw.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or(format!("{flag} needs a number"))
        };
        match flag.as_str() {
            "--bench" => {}
            "--targets" => a.targets = u32::try_from(value()?).map_err(|e| e.to_string())?,
            "--seconds" => a.seconds = value()?,
            "--interval-ms" => a.interval = Duration::from_millis(value()?),
            "--timeout-ms" => a.timeout = Duration::from_millis(value()?),
            "--fall" => a.fall = u32::try_from(value()?).map_err(|e| e.to_string())?,
            "--nft" => a.nft = true,
            "--passes" => a.passes = true,
            "--coalesce-ms" => a.coalesce = Some(Duration::from_millis(value()?)),
            "--realtime" => a.realtime = Some(u8::try_from(value()?).map_err(|e| e.to_string())?),
            "--probe" => {
                a.syn = match it.next().map(String::as_str) {
                    Some("connect") => false,
                    Some("syn") => true,
                    _ => return Err("--probe needs connect or syn".into()),
                }
            }
            // criterion-style filters and flags cargo bench may pass: not ours.
            _ => {}
        }
    }
    if a.targets == 0 || a.targets > 60_000 {
        return Err("--targets must be 1..=60000".into());
    }
    Ok(a)
}

fn addr(i: u32) -> SocketAddr {
    // 127.1.0.0 + i: distinct addresses, so 4-tuples never collide.
    let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 1, 0, 0)) + i);
    SocketAddr::from((ip, 9000))
}

/// Field `field` of this thread's scheduler statistics (nanoseconds): 0 is the CPU time it
/// ran, 1 the time it waited on a run queue, runnable but without a CPU.
fn schedstat(field: usize) -> Duration {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let ns = text
        .split_whitespace()
        .nth(field)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Duration::from_nanos(ns)
}

/// This thread's CPU time and run-queue wait so far (schedstat fields 0 and 1), read from a
/// file opened once by this thread: one `pread` a call, cheap enough to bracket every `poll`.
struct ThreadClock(std::fs::File);

impl ThreadClock {
    fn open() -> ThreadClock {
        ThreadClock(std::fs::File::open("/proc/thread-self/schedstat").expect("schedstat"))
    }

    fn read(&self) -> (Duration, Duration) {
        use std::os::unix::fs::FileExt;
        let mut buf = [0u8; 128];
        let n = self.0.read_at(&mut buf, 0).unwrap_or(0);
        let text = std::str::from_utf8(&buf[..n]).unwrap_or("");
        let mut f = text
            .split_whitespace()
            .map(|v| Duration::from_nanos(v.parse().unwrap_or(0)));
        (f.next().unwrap_or_default(), f.next().unwrap_or_default())
    }
}

/// The machine's steal time so far, all CPUs (`/proc/stat`, 10 ms ticks): time the host ran
/// something else while this guest's CPUs had work. Opened once, one `pread` a call.
struct StealClock(std::fs::File);

impl StealClock {
    fn open() -> StealClock {
        StealClock(std::fs::File::open("/proc/stat").expect("/proc/stat"))
    }

    fn read(&self) -> Duration {
        use std::os::unix::fs::FileExt;
        let mut buf = [0u8; 256];
        let n = self.0.read_at(&mut buf, 0).unwrap_or(0);
        let text = std::str::from_utf8(&buf[..n]).unwrap_or("");
        // "cpu  user nice system idle iowait irq softirq steal ...".
        let ticks: u64 = text
            .split_whitespace()
            .nth(8)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        Duration::from_millis(ticks * 10)
    }
}

/// One `poll` call: how long it took, the CPU it used, how long it waited for a CPU, and its
/// starts 50 ms or more late (with the largest lateness so far).
#[derive(Clone, Copy, Default)]
struct Pass {
    wall: Duration,
    cpu: Duration,
    wait: Duration,
    /// Steal of the whole machine (both CPUs) during the call, 10 ms ticks.
    steal: Duration,
    late: u64,
    max_late: Duration,
}

/// The `--passes` summary: the work per wake-up, and what the late passes (and the pass
/// before each) spent their time on. Wall minus CPU minus run-queue wait is sleep in
/// `epoll_wait` plus time the guest's CPU was taken away by the host (steal, which the
/// machine-wide counter shows).
fn print_passes(passes: &[Pass]) {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mut cpu: Vec<Duration> = passes.iter().map(|p| p.cpu).collect();
    cpu.sort_unstable();
    let pct = |q: f64| {
        cpu.get(((cpu.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or_default()
    };
    println!(
        "  passes: {} poll calls; CPU per call median {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms; calls with CPU >= 10 ms: {}",
        passes.len(),
        ms(pct(0.5)),
        ms(pct(0.99)),
        ms(pct(0.999)),
        ms(cpu.last().copied().unwrap_or_default()),
        passes
            .iter()
            .filter(|p| p.cpu >= Duration::from_millis(10))
            .count()
    );
    let max_wait = passes.iter().map(|p| p.wait).max().unwrap_or_default();
    println!(
        "  passes: run-queue wait in one call max {:.2} ms; calls that waited >= 10 ms: {}",
        ms(max_wait),
        passes
            .iter()
            .filter(|p| p.wait >= Duration::from_millis(10))
            .count()
    );
    let late: Vec<usize> = (0..passes.len()).filter(|&i| passes[i].late > 0).collect();
    let steal = |p: &[Pass]| p.iter().map(|p| p.steal).sum::<Duration>();
    let late_steal = late.iter().map(|&i| passes[i].steal).sum::<Duration>();
    println!(
        "  passes with starts >= 50 ms late: {} (machine steal during them {:.0} ms; during all passes {:.0} ms)",
        late.len(),
        ms(late_steal),
        ms(steal(passes))
    );
    for &i in late.iter().take(8) {
        let (p, before) = (
            passes[i],
            i.checked_sub(1).map(|j| passes[j]).unwrap_or_default(),
        );
        println!(
            "    {} late (max so far {:.1} ms): wall {:.1} ms = CPU {:.2} + run queue {:.2} + sleep/steal {:.1} (machine steal {:.0}); pass before: wall {:.1}, CPU {:.2}, run queue {:.2}",
            p.late,
            ms(p.max_late),
            ms(p.wall),
            ms(p.cpu),
            ms(p.wait),
            ms(p.wall.saturating_sub(p.cpu + p.wait)),
            ms(p.steal),
            ms(before.wall),
            ms(before.cpu),
            ms(before.wait)
        );
    }
}

/// This thread's CPU time so far in user space and in the kernel (clock ticks of
/// `/proc/thread-self/stat`, 10 ms each at the usual USER_HZ: coarse, fine over seconds).
fn user_kernel_ticks() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/thread-self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) end with ')'; utime and stime
    // are the 14th and 15th fields, the 12th and 13th after it.
    let rest = text.rsplit_once(')').map_or("", |(_, r)| r);
    let mut f = rest.split_whitespace().skip(11);
    let mut next = || f.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    (next(), next())
}

/// This thread's CPU time so far.
fn thread_cpu() -> Duration {
    schedstat(0)
}

/// The machine's CPU pressure (PSI "some" over the last 60 s, %): how much runnable work
/// waited for a CPU. High values mean other load, and lateness figures that measure it.
fn cpu_pressure() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/pressure/cpu").ok()?;
    let some = text.lines().find(|l| l.starts_with("some"))?;
    some.split_whitespace()
        .find_map(|f| f.strip_prefix("avg60="))?
        .parse()
        .ok()
}

/// Accepts and drops connections on every listener until told to stop; returns its CPU time.
fn serve(
    listeners: Vec<TcpListener>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Duration {
    let mut poll = Poll::new().expect("poll");
    let mut listeners = listeners;
    for (i, l) in listeners.iter_mut().enumerate() {
        poll.registry()
            .register(l, Token(i), Interest::READABLE)
            .expect("register");
    }
    let mut events = Events::with_capacity(1024);
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let _ = poll.poll(&mut events, Some(Duration::from_millis(100)));
        for e in events.iter() {
            let l = &listeners[e.token().0];
            while let Ok((s, _)) = l.accept() {
                drop(s);
            }
        }
    }
    thread_cpu()
}

/// The kernel's floor of a connect probe: the same TCP handshake and reset close, done by the
/// simplest possible loop (blocking connect, linger 0, close) on this thread. On loopback the
/// kernel work of both ends runs in the connecting thread, so this is most of what any
/// checker pays.
fn connect_floor(n: u32) {
    for i in 0..n {
        if let Ok(s) = std::net::TcpStream::connect(addr(i)) {
            let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
        }
    }
}

/// The kernel's floor of a half-open probe: a SYN through the same filtered raw socket the
/// reactor uses, then its SYN-ACK read (waiting in epoll if it is not queued yet; on loopback
/// it is, the whole exchange and the kernel's RST run inside `sendto`), one target at a time.
fn syn_floor(n: u32) {
    let source = {
        let probe = std::net::UdpSocket::bind("0.0.0.0:0").expect("udp");
        probe.connect(addr(0)).expect("route");
        probe.local_addr().expect("source").ip()
    };
    let raw = SynSocket::open(source).expect("raw socket (root or CAP_NET_RAW)");
    let src = SocketAddr::new(source, raw.port());
    let mut poll = Poll::new().expect("poll");
    let fd = std::os::fd::AsRawFd::as_raw_fd(&raw);
    poll.registry()
        .register(&mut SourceFd(&fd), Token(0), Interest::READABLE)
        .expect("register");
    let mut events = Events::with_capacity(4);
    let mut buf = [0u8; 1500];
    let mut missed = 0;
    for i in 0..n {
        let (dst, isn) = (addr(i), i.wrapping_mul(2_654_435_761));
        let Some(syn) = syn_segment(src, dst, isn) else {
            return;
        };
        raw.send(&syn, dst.ip()).expect("send SYN");
        let deadline = Instant::now() + Duration::from_millis(500);
        loop {
            match raw.recv(&mut buf) {
                Ok((len, from)) => {
                    let reply = parse_syn_reply(&buf[..len], from);
                    if reply.is_some_and(|r| r.from == dst && r.ack == isn.wrapping_add(1)) {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        missed += 1;
                        break;
                    }
                    let _ = poll.poll(&mut events, Some(Duration::from_millis(100)));
                }
                Err(e) => panic!("recv: {e}"),
            }
        }
    }
    if missed > 0 {
        eprintln!("health_scale: syn floor: {missed} of {n} SYNs unanswered");
    }
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("health_scale: {e}");
            std::process::exit(2);
        }
    };
    let mut listeners = Vec::with_capacity(args.targets as usize);
    for i in 0..args.targets {
        match TcpListener::bind(addr(i)) {
            Ok(l) => listeners.push(l),
            Err(e) => {
                eprintln!(
                    "health_scale: listener {i} on {}: {e} (raise the fd limit: ulimit -n)",
                    addr(i)
                );
                std::process::exit(1);
            }
        }
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let server = {
        let stop = stop.clone();
        std::thread::spawn(move || serve(listeners, stop))
    };

    // The checker thread only: the listener thread above keeps the default scheduling.
    if let Some(priority) = args.realtime {
        if let Err(e) = lb::vrrp::linux::realtime::set_realtime(priority) {
            eprintln!("health_scale: --realtime {priority}: {e}");
            std::process::exit(1);
        }
    }
    let floor_n = args.targets.min(10_000);
    let floor_cpu0 = thread_cpu();
    if args.syn {
        syn_floor(floor_n);
    } else {
        connect_floor(floor_n);
    }
    let floor_per_probe = (thread_cpu() - floor_cpu0) / floor_n;

    let mut tracker = TrackerConfig::new(args.interval);
    tracker.initial = InitialState::Up;
    tracker.rise = 2;
    tracker.fall = args.fall;
    // Spread the first probes over one interval, as keepalived's warmup does.
    tracker.jitter = Jitter {
        warmup: args.interval,
        spread_percent: 0,
    };
    let defaults = ReactorConfig::default();
    let config = ReactorConfig {
        max_in_flight: 4096,
        coalesce: args.coalesce.unwrap_or(defaults.coalesce),
        ..defaults
    };
    let mut reactor = Reactor::new(config, StdRng::seed_from_u64(1)).expect("reactor");
    let mut ids = Vec::with_capacity(args.targets as usize);
    for i in 0..args.targets {
        let target = Target {
            addr: addr(i),
            check: if args.syn {
                Check::TcpHalfOpen
            } else {
                Check::Tcp
            },
            tracker,
            timeout: args.timeout,
            source: None,
        };
        ids.push(reactor.add(target).expect("target"));
    }
    let mut downs = 0u64;
    let run_for = |reactor: &mut Reactor<StdRng>,
                   d: Duration,
                   downs: &mut u64,
                   mut passes: Option<&mut Vec<Pass>>| {
        let (clock, steal) = (ThreadClock::open(), StealClock::open());
        let end = Instant::now() + d;
        while Instant::now() < end {
            let traced = passes
                .as_ref()
                .map(|_| (Instant::now(), clock.read(), steal.read(), reactor.stats()));
            reactor
                .poll(Some(Duration::from_millis(100)))
                .expect("poll");
            if let (Some(passes), Some((t0, (cpu0, wait0), steal0, s0))) = (passes.as_mut(), traced)
            {
                let (cpu, wait) = clock.read();
                let s = reactor.stats();
                passes.push(Pass {
                    wall: t0.elapsed(),
                    cpu: cpu.saturating_sub(cpu0),
                    wait: wait.saturating_sub(wait0),
                    steal: steal.read().saturating_sub(steal0),
                    late: s.lateness_histogram[4] - s0.lateness_histogram[4],
                    max_late: s.max_lateness,
                });
            }
            while let Some(e) = reactor.poll_event() {
                if e.transition.to == State::Down {
                    *downs += 1;
                }
            }
        }
    };
    // Warm-up: two intervals, so every target has settled into its slot.
    run_for(&mut reactor, args.interval * 2, &mut downs, None);
    reactor.reset_stats();
    let (cpu0, wait0, wall0) = (thread_cpu(), schedstat(1), Instant::now());
    let ticks0 = user_kernel_ticks();
    let steal_clock = StealClock::open();
    let steal0 = steal_clock.read();
    let mut passes = Vec::new();
    run_for(
        &mut reactor,
        Duration::from_secs(args.seconds),
        &mut downs,
        args.passes.then_some(&mut passes),
    );
    let (cpu, wall) = (thread_cpu() - cpu0, wall0.elapsed());
    let ticks = user_kernel_ticks();
    let (user, kernel) = (ticks.0 - ticks0.0, ticks.1 - ticks0.1);
    let waited = schedstat(1).saturating_sub(wait0);
    let stolen = steal_clock.read().saturating_sub(steal0);
    let s = reactor.stats();
    println!(
        "health_scale: {} TCP targets, {} probes, every {:?}, timeout {:?}, started on a {:?} grid, one checker thread{}, {:.1} s measured",
        args.targets,
        if args.syn { "half-open SYN" } else { "connect" },
        args.interval,
        args.timeout,
        config.coalesce,
        args.realtime
            .map(|p| format!(" (SCHED_FIFO {p})"))
            .unwrap_or_default(),
        wall.as_secs_f64()
    );
    println!(
        "  checker thread CPU: {:.1} % of one core ({:.3} s CPU)",
        100.0 * cpu.as_secs_f64() / wall.as_secs_f64(),
        cpu.as_secs_f64()
    );
    println!(
        "  of which user space {:.0} %, kernel {:.0} % (clock ticks)",
        100.0 * user as f64 / (user + kernel).max(1) as f64,
        100.0 * kernel as f64 / (user + kernel).max(1) as f64
    );
    println!(
        "  probes started: {} ({:.0}/s), completed {}, passed {}, timeouts {}, local errors {}, peak in flight {}",
        s.started,
        s.started as f64 / wall.as_secs_f64(),
        s.completed,
        s.passed,
        s.timeouts,
        s.local_errors,
        s.peak_in_flight
    );
    println!(
        "  start lateness after the slot: max {:.2} ms; <1 ms {}, 1-5 ms {}, 5-10 ms {}, 10-50 ms {}, >=50 ms {}",
        s.max_lateness.as_secs_f64() * 1e3,
        s.lateness_histogram[0],
        s.lateness_histogram[1],
        s.lateness_histogram[2],
        s.lateness_histogram[3],
        s.lateness_histogram[4]
    );
    println!(
        "  checker thread runnable but waiting for a CPU (run queue): {:.1} ms in total",
        waited.as_secs_f64() * 1e3
    );
    println!(
        "  machine steal (all CPUs: time the host ran something else): {:.0} ms",
        stolen.as_secs_f64() * 1e3
    );
    println!("  targets marked down during the run: {downs}");
    if args.passes {
        print_passes(&passes);
    }
    if let Some(p) = cpu_pressure() {
        println!("  machine CPU pressure (PSI some, avg60) at the end: {p:.1} %");
    }
    let per_probe = cpu
        .checked_div(u32::try_from(s.started.max(1)).unwrap_or(u32::MAX))
        .unwrap_or_default();
    println!(
        "  CPU per probe: reactor {:.1} us; kernel floor ({}, same thread) {:.1} us = {:.1} % of a core at this rate",
        per_probe.as_secs_f64() * 1e6,
        if args.syn {
            "SYN sent, SYN-ACK read, one at a time"
        } else {
            "blocking connect + reset close"
        },
        floor_per_probe.as_secs_f64() * 1e6,
        100.0 * floor_per_probe.as_secs_f64() * s.started as f64 / wall.as_secs_f64()
    );

    if args.nft {
        // Drop SYNs to 100 targets where they arrive (the input hook: a drop on output would
        // fail a raw socket's sendto at once instead of making the probe time out); each is
        // marked down after `fall` timeouts.
        let victims: Vec<String> = (0..100)
            .map(|k| addr(k * (args.targets / 100).max(1)).ip().to_string())
            .collect();
        let rule = format!(
            "nft add table inet hcscale && nft add chain inet hcscale in '{{ type filter hook input priority 0; }}' && nft add rule inet hcscale in ip daddr {{ {} }} tcp dport 9000 tcp flags syn drop",
            victims.join(", ")
        );
        let ok = std::process::Command::new("sh")
            .args(["-c", &rule])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            eprintln!("health_scale: nft rule failed (root, inside a namespace?)");
        } else {
            let t0 = Instant::now();
            let mut latencies = Vec::new();
            let end = t0 + args.interval * (args.fall + 3) + args.timeout * args.fall;
            while latencies.len() < victims.len() && Instant::now() < end {
                reactor.poll(Some(Duration::from_millis(20))).expect("poll");
                while let Some(e) = reactor.poll_event() {
                    if e.transition.to == State::Down {
                        latencies.push(t0.elapsed());
                    }
                }
            }
            let _ = std::process::Command::new("nft")
                .args(["delete", "table", "inet", "hcscale"])
                .status();
            latencies.sort();
            let pct = |p: usize| {
                latencies
                    .get((latencies.len() * p / 100).min(latencies.len().saturating_sub(1)))
                    .map_or(0.0, |d| d.as_secs_f64())
            };
            println!(
                "  detection after an nftables drop of {} targets: {} marked down; min {:.3} s, median {:.3} s, max {:.3} s; formula fall x interval + timeout = {:.3} s",
                victims.len(),
                latencies.len(),
                pct(0),
                pct(50),
                pct(100),
                (args.interval * args.fall + args.timeout).as_secs_f64()
            );
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let server_cpu = server.join().unwrap_or_default();
    println!(
        "  (listener thread CPU over the whole run: {:.3} s)",
        server_cpu.as_secs_f64()
    );
}
