//! The director: lb-vrrp, lb-forward, lb-health and lb-sched composed into what keepalived +
//! IPVS do, driven by a keepalived.conf.
//!
//! Read top to bottom, [`run`] is the whole composition:
//!
//! 1. [`config::load`](crate::config::load()) reads the file; [`plan()`] turns it into one
//!    `lb_vrrp::Config` per `vrrp_instance`, one forwarder service per `virtual_server` (with
//!    an lb-sched pool: scheduler, flags, persistence) and one lb-health target per checker.
//!    A `virtual_server fwmark N` is one firewall-mark service over the packets the host's
//!    firewall rules mark N, read from nftables and iptables-nft ([`fwmark`] says what is
//!    translated and what is a warning).
//! 2. The datapath thread ([`datapath`](self)) runs an lb-forward driver on the interfaces,
//!    with nftables rules that keep the kernel off the handled packets.
//! 3. The health thread runs every checker in one reactor; a real lives while all its checks
//!    are up ([`Liveness`]); a dead real is removed, or kept at weight 0 with
//!    `inhibit_on_failure`; below the quorum the sorry server serves alone.
//! 4. One thread runs every VRRP instance in lb-vrrp's Linux driver, with the sync groups
//!    (members change state together; the groups' notify scripts run on their transitions):
//!    the master holds the VIPs, and the datapath forwards only while some instance here is
//!    master. Each `vrrp_script` runs once however many instances track it. `vrrp_rt_priority`
//!    and `vrrp_no_swap` in `global_defs` put that thread under `SCHED_RR` with locked memory,
//!    as keepalived does with its VRRP process: what short advert intervals need on a busy host.
//! 5. A control socket answers `list` with the service table (`ipvsadm -Ln`, with `--stats`
//!    and `--rate`) and the VRRP states; optionally `GET /metrics` serves the same in
//!    Prometheus's format.
//!
//! Reload (SIGHUP in the example): the file is read again, services and reals are changed in
//! place (established connections stay in the datapath's table), the firewall's mark rules are
//! read again, checks restart, and the VRRP thread applies the VRRP part in place, as
//! keepalived does: an instance configured as before, notify scripts aside (and whose sync
//! group, if any, has the same members, each configured as before) goes on in its state without a transition or an
//! advert out of turn; a changed instance resigns (a master sends priority 0 and removes its
//! addresses) and starts again as at startup; a removed one resigns (its notify scripts run as
//! keepalived's for a deleted instance: FAULT); a new one starts; the sync groups are
//! replaced; tracked scripts still tracked keep their state; a `vrrp_rt_priority` or
//! `vrrp_no_swap` change applies to the running thread. (keepalived 2.2.7 also keeps an
//! instance whose other settings changed, as long as its VRID, interface, family and source
//! address did not, and applies the difference; here any change restarts it.) Stop: every
//! master resigns with a priority-0 advert and removes its addresses, and the nftables rules
//! go.

mod datapath;
pub mod fwmark;
mod health;
mod liveness;
mod metrics;
mod plan;
mod status;
mod track;
mod vrrp;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use liveness::{Liveness, diff};
pub use plan::{GroupPlan, InstancePlan, Plan, ProcessPlan, RealPlan, ServicePlan, Tracked, plan};
pub use status::Status;

use crate::config::{self, Options as ReadOptions};
use datapath::{Command, Datapath};

/// Where messages (transitions, warnings, errors) go: one line each.
pub type Report = Arc<dyn Fn(&str) + Send + Sync>;

/// The packet I/O backend of the datapath.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IoKind {
    /// pnet datalink channels.
    #[default]
    Pnet,
    /// `TPACKET_V3` receive rings and `PACKET_TX_RING` transmit rings (lb-forward's `RingIo`).
    Fast,
}

/// How to run.
#[derive(Clone)]
pub struct Options {
    /// Run the VRRP instances (keepalived's `--vrrp`; off with `--check-only`).
    pub vrrp: bool,
    /// Run the virtual servers and their checks (keepalived's `--check`; off with `--vrrp-only`).
    pub services: bool,
    /// Datapath interfaces besides the VRRP instances' own.
    pub interfaces: Vec<String>,
    /// The datapath's I/O backend.
    pub io: IoKind,
    /// Forwarding threads of the datapath (at least 1), sharing one connection table and
    /// scheduler (lb-forward's `Driver::worker`).
    pub workers: usize,
    /// The control socket's path (`None`: no control socket).
    pub control: Option<PathBuf>,
    /// Where to serve Prometheus metrics (`None`: nowhere).
    pub metrics: Option<std::net::SocketAddr>,
    /// keepalived's `-i`: which `@NAME` lines apply.
    pub instance: Option<String>,
    /// Where messages go.
    pub report: Report,
}

/// Runs the configuration at `path` until `stop` is set; reloads it whenever `reload` is set
/// (and clears it).
pub fn run(
    path: &Path,
    options: &Options,
    stop: &AtomicBool,
    reload: &AtomicBool,
) -> Result<(), String> {
    let report = &options.report;
    let mut running = Running::start(path, options)?;
    report(&format!(
        "running {} vrrp instance(s) and {} virtual service(s) from {}",
        if running.vrrp.is_some() {
            running.plan.instances.len()
        } else {
            0
        },
        running
            .plan
            .services
            .iter()
            .map(|s| s.keys.len())
            .sum::<usize>(),
        path.display()
    ));
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        if reload.swap(false, Ordering::Relaxed) {
            match load(path, options) {
                Ok(plan) => {
                    report(&format!("reloading {}", path.display()));
                    running.reload(plan, options);
                }
                Err(e) => report(&format!(
                    "reload refused, still running the previous configuration: {e}"
                )),
            }
        }
    }
    drop(running);
    Ok(())
}

/// Reads and plans the file, reporting every warning.
fn load(path: &Path, options: &Options) -> Result<Plan, String> {
    let read = ReadOptions {
        instance: options.instance.clone(),
    };
    let loaded = config::load(path, &read).map_err(|e| e.to_string())?;
    let (plan, notes) = plan(&loaded.config);
    for w in loaded.warnings.iter().chain(&notes) {
        (options.report)(&w.to_string());
    }
    Ok(plan)
}

/// The threads of a running configuration.
struct Running {
    plan: Plan,
    status: Arc<Mutex<Status>>,
    states: vrrp::States,
    commands: Option<Sender<Command>>,
    datapath: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
    health: Option<(Arc<AtomicBool>, JoinHandle<health::Health>)>,
    /// The VRRP thread: every instance and sync group.
    vrrp: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
    /// Where the VRRP thread takes reloads.
    vrrp_reloads: Option<Sender<vrrp::Reload>>,
    control: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
    metrics: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

impl Running {
    fn start(path: &Path, options: &Options) -> Result<Running, String> {
        let plan = load(path, options)?;
        let status = Arc::new(Mutex::new(Status::default()));
        let states: vrrp::States = Arc::default();
        let mut running = Running {
            plan: Plan {
                instances: Vec::new(),
                groups: Vec::new(),
                services: Vec::new(),
                vrrp_process: ProcessPlan::default(),
            },
            status,
            states,
            commands: None,
            datapath: None,
            health: None,
            vrrp: None,
            vrrp_reloads: None,
            control: None,
            metrics: None,
        };
        if options.services && !plan.services.is_empty() {
            let liveness: Vec<Liveness> = plan
                .services
                .iter()
                .map(|s| Liveness::new(s, !s.alpha()))
                .collect();
            let mut interfaces: Vec<String> =
                plan.instances.iter().map(|i| i.interface.clone()).collect();
            interfaces.extend(options.interfaces.iter().cloned());
            interfaces.sort();
            interfaces.dedup();
            if interfaces.is_empty() {
                return Err("the datapath needs an interface: none of the vrrp_instances names one, give --interface".into());
            }
            let initial = datapath::initial_services(&plan.services, &liveness);
            let matches = fwmark::service_matches(&plan, &options.report);
            let dp = Datapath::open(
                &interfaces,
                options.io,
                options.workers,
                &initial,
                &matches,
                seed(),
                &options.report,
            )?;
            let (tx, rx) = mpsc::channel();
            let stop = Arc::new(AtomicBool::new(false));
            let (s, st, r) = (stop.clone(), running.status.clone(), options.report.clone());
            running.datapath = Some((stop, std::thread::spawn(move || dp.run(rx, &s, &st, &r))));
            if options.vrrp && !plan.instances.is_empty() {
                // Until an instance here is master, another director holds the VIPs.
                let _ = tx.send(Command::Serve(false));
            }
            running.commands = Some(tx);
            running.health =
                Some(running.start_health(plan.services.clone(), liveness, options)?);
        }
        if options.vrrp && !plan.instances.is_empty() {
            running.start_vrrp(&plan, options)?;
        }
        if let Some(path) = &options.control {
            running.control = Some(status::serve(
                path,
                running.status.clone(),
                running.states.clone(),
                options.report.clone(),
            )?);
        }
        if let Some(addr) = options.metrics {
            running.metrics = Some(metrics::serve(
                addr,
                running.status.clone(),
                running.states.clone(),
                options.report.clone(),
            )?);
        }
        running.plan = plan;
        Ok(running)
    }

    fn start_health(
        &self,
        services: Vec<ServicePlan>,
        liveness: Vec<Liveness>,
        options: &Options,
    ) -> Result<(Arc<AtomicBool>, JoinHandle<health::Health>), String> {
        let health = health::Health::new(services, liveness)?;
        let tx = self.commands.clone().ok_or("no datapath")?;
        let stop = Arc::new(AtomicBool::new(false));
        let (s, r) = (stop.clone(), options.report.clone());
        Ok((stop, std::thread::spawn(move || health.run(&s, &tx, &r))))
    }

    /// Starts the VRRP thread running `plan`'s instances and groups.
    fn start_vrrp(&mut self, plan: &Plan, options: &Options) -> Result<(), String> {
        let driver = vrrp::open(&plan.instances, &plan.groups)?;
        let stop = Arc::new(AtomicBool::new(false));
        let (reloads_tx, reloads) = mpsc::channel();
        let commands = self.commands.clone().unwrap_or_else(|| mpsc::channel().0);
        let (s, st, r) = (stop.clone(), self.states.clone(), options.report.clone());
        let (instances, groups) = (plan.instances.clone(), plan.groups.clone());
        let process = plan.vrrp_process;
        let handle = std::thread::spawn(move || {
            let thread = vrrp::Thread {
                stop: &s,
                reloads,
                states: &st,
                commands: &commands,
                report: &r,
            };
            thread.run(driver, instances, groups, process);
        });
        self.vrrp = Some((stop, handle));
        self.vrrp_reloads = Some(reloads_tx);
        Ok(())
    }

    /// Applies a new plan: services and reals changed in place, checks restarted, VRRP
    /// instances changed in place ([`vrrp::Reload`]).
    fn reload(&mut self, plan: Plan, options: &Options) {
        let report = &options.report;
        if let Some(tx) = self.commands.clone() {
            // The checks' states carry over: a real that is down stays down.
            let previous = self.health.take().and_then(|(stop, handle)| {
                stop.store(true, Ordering::Relaxed);
                handle.join().ok()
            });
            let old: HashMap<_, _> = self
                .plan
                .services
                .iter()
                .flat_map(|s| s.keys.iter().map(move |k| (*k, s)))
                .collect();
            let liveness: Vec<Liveness> = plan
                .services
                .iter()
                .map(|s| {
                    let mut live = Liveness::new(s, !s.alpha());
                    if let Some(previous) = &previous {
                        previous.carry_into(s, &mut live);
                    }
                    live
                })
                .collect();
            let previous_health = previous.as_ref();
            for (service, live) in plan.services.iter().zip(&liveness) {
                let desired = live.desired(service);
                for key in &service.keys {
                    let current: Vec<_> = match old.get(key) {
                        Some(previous)
                            if previous.pool == service.pool
                                && previous.config == service.config =>
                        {
                            match previous_health.and_then(|h| h.current(key)) {
                                Some(current) => current.to_vec(),
                                None => {
                                    Liveness::new(previous, !previous.alpha()).desired(previous)
                                }
                            }
                        }
                        Some(_) => {
                            let _ = tx.send(Command::RemoveService(*key));
                            let _ = tx.send(Command::AddService(
                                *key,
                                service.config,
                                service.pool.clone(),
                            ));
                            Vec::new()
                        }
                        None => {
                            let _ = tx.send(Command::AddService(
                                *key,
                                service.config,
                                service.pool.clone(),
                            ));
                            Vec::new()
                        }
                    };
                    let (remove, upsert) = diff(&current, &desired);
                    for addr in remove {
                        let _ = tx.send(Command::Remove(*key, addr));
                    }
                    for real in upsert {
                        let _ = tx.send(Command::Upsert(*key, real));
                    }
                }
            }
            let kept: Vec<_> = plan.services.iter().flat_map(|s| s.keys.clone()).collect();
            for key in old.keys().filter(|k| !kept.contains(k)) {
                let _ = tx.send(Command::RemoveService(*key));
            }
            // The firewall's rules may have changed too: read them again.
            for (key, matches) in fwmark::service_matches(&plan, report) {
                let _ = tx.send(Command::SetMatches(key, matches));
            }
            match self.start_health(plan.services.clone(), liveness, options) {
                Ok(h) => self.health = Some(h),
                Err(e) => report(&format!("reload: health checks not restarted: {e}")),
            }
        }
        let vrrp_changed = plan.instances != self.plan.instances
            || plan.groups != self.plan.groups
            || plan.vrrp_process != self.plan.vrrp_process;
        if options.vrrp && vrrp_changed {
            self.reload_vrrp(&plan, options);
        }
        self.plan = plan;
    }
}

impl Running {
    /// Hands the VRRP part of `plan` to the running VRRP thread (which applies it in place),
    /// starts the thread when there was none, or stops it when no instance is left.
    fn reload_vrrp(&mut self, plan: &Plan, options: &Options) {
        let report = &options.report;
        if plan.instances.is_empty() {
            if self.vrrp.is_some() {
                report("reload: no VRRP instance left; VRRP stopped");
            }
            stop_thread(self.vrrp.take());
            self.vrrp_reloads = None;
            return;
        }
        let reload = vrrp::Reload {
            instances: plan.instances.clone(),
            groups: plan.groups.clone(),
            process: plan.vrrp_process,
        };
        let sent = self.vrrp_reloads.as_ref().map(|tx| tx.send(reload));
        if let Some(Ok(())) = sent {
            report("reload: VRRP instances applied in place (unchanged ones keep their state)");
            return;
        }
        // No thread, or it ended: start one.
        stop_thread(self.vrrp.take());
        if let Ok(mut s) = self.states.lock() {
            s.clear();
        }
        if let Err(e) = self.start_vrrp(plan, options) {
            report(&format!("reload: {e}"));
        }
    }
}

/// Stopping (also when starting failed half way): every VRRP master resigns, the checks stop,
/// the datapath removes its nftables rules.
impl Drop for Running {
    fn drop(&mut self) {
        stop_thread(self.vrrp.take());
        stop_thread(self.health.take());
        stop_thread(self.datapath.take());
        stop_thread(self.control.take());
        stop_thread(self.metrics.take());
    }
}

/// Sets a thread's stop flag and waits for it.
fn stop_thread<T>(thread: Option<(Arc<AtomicBool>, JoinHandle<T>)>) {
    if let Some((flag, handle)) = thread {
        flag.store(true, Ordering::Relaxed);
        let _ = handle.join();
    }
}

impl ServicePlan {
    /// keepalived `alpha`: reals start down until their checks pass.
    fn alpha(&self) -> bool {
        self.reals
            .iter()
            .flat_map(|r| &r.checks)
            .any(|t| t.tracker.initial != lb_health::InitialState::Up)
    }
}

/// Runs a notify script through `sh -c` with `args` appended (keepalived's `notify` gets
/// `INSTANCE NAME STATE PRIORITY`), without waiting for it.
pub(crate) fn notify(script: &str, args: &[&str], report: &Report) {
    let mut line = script.to_owned();
    for a in args {
        line.push_str(" '");
        line.push_str(&a.replace('\'', "'\\''"));
        line.push('\'');
    }
    match std::process::Command::new("sh")
        .arg("-c")
        .arg(&line)
        .spawn()
    {
        // Reaped by a thread of its own so that no zombie is left behind.
        Ok(mut child) => {
            std::thread::spawn(move || child.wait());
        }
        Err(e) => report(&format!("notify script {script:?}: {e}")),
    }
}

/// Milliseconds since the Unix epoch (the prefix of transition lines).
pub(crate) fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

fn seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    (nanos as u64) ^ u64::from(std::process::id()).rotate_left(32)
}

/// A control socket request: `list`, `list --stats`, `list --rate`.
pub fn request(path: &Path, request: &str) -> std::io::Result<String> {
    status::request(path, request)
}

/// The default control socket.
pub const DEFAULT_CONTROL: &str = "/run/lb-director.sock";
