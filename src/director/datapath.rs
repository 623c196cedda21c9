//! The datapath thread: an lb-forward [`Driver`] on the configured interfaces, the nftables
//! rules that keep the kernel off the handled packets, next hops refreshed every second, and
//! commands from the other threads applied between batches; and the extra forwarding threads
//! (`--workers`), each a [`Driver::worker`] on the same forwarder, that only forward.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use lb_forward::io::{Driver, KernelRules, NextHopResolver, PnetCalls, PnetIo, RingIo, boxed};
use lb_forward::{
    Forwarder, MatchKey, PoolScheduler, RealConfig, ServiceConfig, ServiceKey, Settings,
};
use lb_sched::PoolConfig;

use super::{IoKind, Report, Status};

/// A change the datapath applies between two batches.
#[derive(Debug)]
pub(crate) enum Command {
    /// Add a service (without reals).
    AddService(ServiceKey, ServiceConfig, PoolConfig),
    /// Remove a service and its reals.
    RemoveService(ServiceKey),
    /// Add a real, or change its weight and method.
    Upsert(ServiceKey, RealConfig),
    /// Remove a real.
    Remove(ServiceKey, SocketAddr),
    /// Set the packets a firewall-mark service takes.
    SetMatches(ServiceKey, Vec<MatchKey>),
    /// Serve (this director holds the VIPs) or not.
    Serve(bool),
}

/// Everything the thread needs, built before it starts so that errors reach the caller.
pub(crate) struct Datapath {
    driver: Driver,
    /// Drivers of the extra forwarding threads, sharing `driver`'s forwarder.
    workers: Vec<Driver>,
    rules: KernelRules,
    resolver: NextHopResolver,
    seed: u64,
}

impl Datapath {
    /// Opens the interfaces, installs the nftables rules and the initial services.
    pub(crate) fn open(
        interfaces: &[String],
        io: IoKind,
        workers: usize,
        services: &[(ServiceKey, ServiceConfig, PoolConfig, Vec<RealConfig>)],
        matches: &[(ServiceKey, Vec<MatchKey>)],
        seed: u64,
        report: &Report,
    ) -> Result<Datapath, String> {
        let mut fw = Forwarder::new(Settings {
            hash_seed: seed,
            ..Settings::default()
        });
        let mut indices = Vec::new();
        for name in interfaces {
            let iface =
                lb_forward::io::interface(name).map_err(|e| format!("interface {name}: {e}"))?;
            if let Err(e) = lb_forward::io::disable_offloads(name) {
                report(&format!(
                    "could not turn offloads off on {name} ({e}); frames larger than one MTU are dropped as truncated"
                ));
            }
            indices.push(iface.index);
            fw.set_interface(iface);
        }
        for (key, config, pool, reals) in services {
            let sched =
                PoolScheduler::new(pool.clone(), seed).map_err(|e| format!("{key}: {e}"))?;
            fw.add_service(*key, *config, sched)
                .map_err(|e| format!("{key}: {e}"))?;
            for real in reals {
                fw.add_real(key, *real, Duration::ZERO)
                    .map_err(|e| format!("{key} real {}: {e}", real.addr))?;
            }
        }
        for (key, keys) in matches {
            fw.set_matches(key, keys)
                .map_err(|e| format!("{key}: {e}"))?;
        }
        let mut resolver = NextHopResolver::new().map_err(|e| format!("netlink: {e}"))?;
        refresh_next_hops(&mut resolver, &mut fw, Duration::from_secs(1), report);
        let rules =
            KernelRules::install(&fw).map_err(|e| format!("installing nftables rules: {e}"))?;
        let mut ios = match io {
            IoKind::Pnet => boxed(
                PnetIo::open_many(interfaces, PnetCalls::Batched, workers)
                    .map_err(|e| format!("pnet: {e}"))?,
            ),
            IoKind::Fast => {
                boxed(RingIo::open_many(&indices, workers).map_err(|e| format!("fast io: {e}"))?)
            }
        };
        let driver = Driver::new(fw, ios.remove(0), 64);
        Ok(Datapath {
            workers: ios.into_iter().map(|io| driver.worker(io)).collect(),
            driver,
            rules,
            resolver,
            seed,
        })
    }

    /// Runs until `stop`, with the extra forwarding threads; removes the nftables rules on the
    /// way out.
    pub(crate) fn run(
        mut self,
        commands: Receiver<Command>,
        stop: &AtomicBool,
        status: &Mutex<Status>,
        report: &Report,
    ) {
        let serving = AtomicBool::new(true);
        let workers = std::mem::take(&mut self.workers);
        std::thread::scope(|scope| {
            for mut worker in workers {
                let serving = &serving;
                scope.spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        forward(&mut worker, serving, report);
                    }
                });
            }
            self.control(commands, stop, &serving, status, report);
        });
        if let Err(e) = self.rules.remove() {
            report(&format!("removing nftables rules: {e}"));
        }
    }

    /// The datapath thread's loop: forwards, and between batches applies commands, updates
    /// the rules, next hops and the published status.
    fn control(
        &mut self,
        commands: Receiver<Command>,
        stop: &AtomicBool,
        serving: &AtomicBool,
        status: &Mutex<Status>,
        report: &Report,
    ) {
        let mut last_resolve = Instant::now();
        let mut last_status = Instant::now() - Duration::from_secs(1);
        let mut rules_stale = false;
        while !stop.load(Ordering::Relaxed) {
            forward(&mut self.driver, serving, report);
            while let Ok(command) = commands.try_recv() {
                match self.apply(command, report) {
                    Applied::Serve(s) => serving.store(s, Ordering::Relaxed),
                    Applied::ServicesChanged => rules_stale = true,
                    Applied::Reals => {}
                }
            }
            if rules_stale {
                match self.rules.update(&self.driver.forwarder()) {
                    Ok(()) => rules_stale = false,
                    Err(e) => report(&format!("updating nftables rules: {e}")),
                }
            }
            if last_resolve.elapsed() >= Duration::from_secs(1) {
                refresh_next_hops(
                    &mut self.resolver,
                    &mut self.driver.forwarder(),
                    Duration::ZERO,
                    report,
                );
                last_resolve = Instant::now();
            }
            if last_status.elapsed() >= Duration::from_millis(250) {
                if let Ok(mut s) = status.lock() {
                    s.publish(&self.driver.forwarder(), serving.load(Ordering::Relaxed));
                }
                last_status = Instant::now();
            }
        }
    }

    fn apply(&mut self, command: Command, report: &Report) -> Applied {
        let now = self.driver.now();
        let mut fw = self.driver.forwarder();
        let result = match command {
            Command::Serve(s) => return Applied::Serve(s),
            Command::AddService(key, config, pool) => {
                let r = PoolScheduler::new(pool, self.seed)
                    .and_then(|sched| fw.add_service(key, config, sched))
                    .map_err(|e| format!("adding {key}: {e}"));
                if let Err(e) = r {
                    report(&e);
                }
                return Applied::ServicesChanged;
            }
            Command::RemoveService(key) => {
                if let Err(e) = fw.remove_service(&key) {
                    report(&format!("removing {key}: {e}"));
                }
                return Applied::ServicesChanged;
            }
            Command::SetMatches(key, keys) => {
                if let Err(e) = fw.set_matches(&key, &keys) {
                    report(&format!("{key}: {e}"));
                }
                return Applied::ServicesChanged;
            }
            Command::Upsert(key, real) => {
                match fw.edit_real(&key, real.addr, real.weight, real.clamp_mss, now) {
                    Ok(()) => Ok(()),
                    Err(_) => fw.add_real(&key, real, now).map(|()| {
                        refresh_next_hops(&mut self.resolver, &mut fw, Duration::ZERO, report);
                    }),
                }
                .map_err(|e| format!("{key} real {}: {e}", real.addr))
            }
            Command::Remove(key, addr) => fw
                .remove_real(&key, addr)
                .map_err(|e| format!("{key} removing {addr}: {e}")),
        };
        if let Err(e) = result {
            report(&e);
        }
        Applied::Reals
    }
}

/// One batch, or a pause of 50 ms while not serving: a backup does not forward (the VIPs are
/// elsewhere, and frames still captured here, from stale neighbour caches, are left to the
/// kernel's rules, which drop them).
fn forward(driver: &mut Driver, serving: &AtomicBool, report: &Report) {
    if serving.load(Ordering::Relaxed) {
        if let Err(e) = driver.poll(Some(Duration::from_millis(50))) {
            report(&format!("packet I/O: {e}"));
            std::thread::sleep(Duration::from_millis(50));
        }
    } else {
        std::thread::sleep(Duration::from_millis(50));
    }
}

enum Applied {
    Serve(bool),
    ServicesChanged,
    Reals,
}

/// Asks the kernel for each real's next hop (waiting up to `wait` for neighbour resolution).
fn refresh_next_hops(
    resolver: &mut NextHopResolver,
    fw: &mut Forwarder,
    wait: Duration,
    report: &Report,
) {
    for note in resolver.refresh(fw, wait) {
        report(&note);
    }
}

/// The reals a service's plan puts in the datapath now; used by the caller for the initial set.
pub(crate) fn initial_services(
    services: &[super::plan::ServicePlan],
    liveness: &[super::liveness::Liveness],
) -> Vec<(ServiceKey, ServiceConfig, PoolConfig, Vec<RealConfig>)> {
    let mut out = Vec::new();
    for (service, live) in services.iter().zip(liveness) {
        for key in &service.keys {
            out.push((
                *key,
                service.config,
                service.pool.clone(),
                live.desired(service),
            ));
        }
    }
    out
}
