//! Lab support for the keepalived interop tests: real keepalived 2.2.7 in one host's network
//! namespace, our driver in a thread moved into another's, an injector of hand-made adverts.
//! Everything is torn down by guards (processes by pid, namespaces by lb-lab), also on failure.

#![allow(dead_code)] // each test file uses a different part

use std::fs::File;
use std::io;
use std::net::{IpAddr, SocketAddrV4};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lb_lab::{Host, Proc};
use lb_vrrp::linux::{Driver, Handler, Interface, Routers};
use lb_vrrp::wire::Version;
use lb_vrrp::{ChecksumMode, Config, Counters, Event, InteropWarning, State};

/// Whether this test should run: root, `ip` and keepalived present. Prints why not.
pub(crate) fn skip(test: &str) -> bool {
    if lb_lab::skip_unless_root(test) {
        return true;
    }
    if let Err(e) = lb_lab::require_tools(&["keepalived"]) {
        eprintln!("skipping {test}: {e}");
        return true;
    }
    false
}

static NEXT_DIR: AtomicU32 = AtomicU32::new(0);

fn temp_dir() -> io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "lb-vrrp-{}-{}",
        std::process::id(),
        NEXT_DIR.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A keepalived process (and its VRRP child) in one host's namespace.
pub(crate) struct Keepalived {
    proc: Option<Proc>,
    dir: PathBuf,
}

impl Keepalived {
    /// Starts keepalived with one `vrrp_instance V1 { ... }` holding `instance` (the interface
    /// line is added).
    pub(crate) fn start(host: &Host, instance: &str) -> io::Result<Keepalived> {
        Keepalived::start_conf(
            host,
            &format!(
                "vrrp_instance V1 {{\n interface {}\n{instance}\n}}\n",
                host.ifname
            ),
        )
    }

    /// Starts keepalived with `conf` after a `global_defs` block.
    pub(crate) fn start_conf(host: &Host, conf: &str) -> io::Result<Keepalived> {
        let dir = temp_dir()?;
        let path = dir.join("keepalived.conf");
        std::fs::write(&path, format!("global_defs {{\n router_id lab\n}}\n{conf}"))?;
        let log = File::create(dir.join("log"))?;
        let mut cmd = host.ns.command("keepalived");
        cmd.args(["-n", "-l", "-D", "--vrrp", "-f"])
            .arg(&path)
            .arg("-p")
            .arg(dir.join("keepalived.pid"))
            .arg("-r")
            .arg(dir.join("vrrp.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let proc = Proc::spawn(&mut cmd)?;
        Ok(Keepalived {
            proc: Some(proc),
            dir,
        })
    }

    /// The log so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    fn pids(&self) -> Vec<String> {
        ["vrrp.pid", "keepalived.pid"]
            .iter()
            .filter_map(|f| std::fs::read_to_string(self.dir.join(f)).ok())
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// Hard failure: SIGKILL to every keepalived process (no priority-0 advert).
    pub(crate) fn kill_all(&mut self) {
        for pid in self.pids() {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
        }
        if let Some(mut p) = self.proc.take() {
            let _ = p.wait_timeout(Duration::from_secs(2));
        }
    }

    /// Graceful stop (SIGTERM): keepalived sends priority 0 and removes its addresses.
    pub(crate) fn term(&mut self) {
        if let Some(p) = &self.proc {
            let _ = p.signal("TERM");
        }
    }

    /// Waits until the log has `needle` `count` times.
    pub(crate) fn wait_log(&self, needle: &str, count: usize, timeout: Duration) -> bool {
        lb_lab::wait_until(timeout, Duration::from_millis(5), || {
            (self.log().matches(needle).count() >= count).then_some(())
        })
        .is_some()
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        self.kill_all();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether `addr` is on `host`'s LAN interface.
pub(crate) fn has_addr(host: &Host, addr: &str) -> bool {
    has_addr_on(host, &host.ifname, addr)
}

/// Whether `addr` is on `host`'s interface `dev`.
pub(crate) fn has_addr_on(host: &Host, dev: &str, addr: &str) -> bool {
    host.ns
        .run(&["ip", "-o", "addr", "show", "dev", dev])
        .map(|out| {
            out.split_whitespace()
                .any(|w| w.split('/').next() == Some(addr))
        })
        .unwrap_or(false)
}

/// Waits until `addr` is (or is not) on `host` for `timeout`.
pub(crate) fn wait_addr(
    host: &Host,
    addr: &str,
    present: bool,
    timeout: Duration,
) -> Option<Instant> {
    lb_lab::wait_until(timeout, Duration::from_millis(2), || {
        (has_addr(host, addr) == present).then(Instant::now)
    })
}

/// A change to a running driver, made in its thread from its tick: the routers, and where
/// the events of a removed router go.
pub(crate) type Change =
    Box<dyn FnOnce(&mut Routers<'_>, &mut dyn FnMut(&Event)) -> io::Result<()> + Send>;

type Events = Arc<Mutex<Vec<(Instant, Event)>>>;

/// The driver thread's [`Handler`]: records events, applies the changes sent to it.
struct Recorder {
    events: Events,
    changes: mpsc::Receiver<(Change, mpsc::Sender<io::Result<()>>)>,
}

impl Recorder {
    fn record(events: &Events, event: &Event) {
        events.lock().unwrap().push((Instant::now(), event.clone()));
    }
}

impl Handler for Recorder {
    fn event(&mut self, _router: Option<usize>, event: &Event) {
        Recorder::record(&self.events, event);
    }

    fn tick(&mut self, routers: &mut Routers<'_>) {
        while let Ok((change, done)) = self.changes.try_recv() {
            let events = self.events.clone();
            let _ = done.send(change(routers, &mut |e| Recorder::record(&events, e)));
        }
    }
}

/// Our router: the Linux driver running in a thread inside a host's namespace.
pub(crate) struct Ours {
    stop: Arc<AtomicBool>,
    graceful: Arc<AtomicBool>,
    events: Events,
    changes: mpsc::Sender<(Change, mpsc::Sender<io::Result<()>>)>,
    handle: Option<JoinHandle<io::Result<Counters>>>,
    tid: Option<u32>,
}

impl Ours {
    /// Starts `config` on `host`'s LAN interface; its primary address is replaced by the
    /// interface's own (IPv4 primary or IPv6 link-local). VIPs get prefix /24 or /64.
    pub(crate) fn start(host: &Host, config: Config) -> io::Result<Ours> {
        let prefix = if config.family() == lb_vrrp::wire::Family::Ipv4 {
            24
        } else {
            64
        };
        let prefixes = vec![prefix; config.vips.len()];
        Ours::start_many(host, vec![(config, prefixes)])
    }

    /// Starts one driver running all of `routers` (configurations with their VIPs' prefix
    /// lengths) in one thread on `host`'s LAN interface.
    pub(crate) fn start_many(host: &Host, routers: Vec<(Config, Vec<u8>)>) -> io::Result<Ours> {
        Ours::start_with(host, routers, false)
    }

    /// [`start_many`](Self::start_many), with virtual MACs when `vmac`.
    pub(crate) fn start_with(
        host: &Host,
        mut routers: Vec<(Config, Vec<u8>)>,
        vmac: bool,
    ) -> io::Result<Ours> {
        let ifname = host.ifname.clone();
        Ours::start_driver(host, move || {
            let iface = Interface::lookup(&ifname)?;
            for (config, _) in &mut routers {
                config.primary = primary(&iface, config)?;
            }
            let mut driver = Driver::with_routers(&ifname, routers)?;
            if vmac {
                driver.enable_vmac()?;
            }
            Ok(driver)
        })
    }

    /// Runs the driver `build` makes inside `host`'s namespace, in a thread.
    pub(crate) fn start_driver(
        host: &Host,
        build: impl FnOnce() -> io::Result<Driver> + Send + 'static,
    ) -> io::Result<Ours> {
        let stop = Arc::new(AtomicBool::new(false));
        let graceful = Arc::new(AtomicBool::new(false));
        let events: Events = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        let (changes, changes_rx) = mpsc::channel();
        let ns_name = host.ns.name().to_owned();
        let (s, g, e) = (stop.clone(), graceful.clone(), events.clone());
        let handle = std::thread::spawn(move || -> io::Result<Counters> {
            let setup = lb_lab::enter_netns(&ns_name).and_then(|()| build());
            let mut driver = match setup {
                Ok(d) => {
                    // This thread's id, to read its CPU time from /proc.
                    let tid = std::fs::read_link("/proc/thread-self").ok().and_then(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .and_then(|n| n.parse().ok())
                    });
                    let _ = ready_tx.send(Ok(tid));
                    d
                }
                Err(err) => {
                    let _ = ready_tx.send(Err(io::Error::new(err.kind(), err.to_string())));
                    return Err(err);
                }
            };
            let mut recorder = Recorder {
                events: e.clone(),
                changes: changes_rx,
            };
            driver.run_handler(&s, &mut recorder)?;
            if g.load(Ordering::Relaxed) {
                driver.shutdown(&mut |ev| Recorder::record(&e, ev))?;
            }
            let mut total = Counters::default();
            for r in driver.routers() {
                let c = r.counters();
                total.accepted += c.accepted;
                total.sent += c.sent;
            }
            Ok(if driver.routers().len() == 1 {
                driver.router().counters().clone()
            } else {
                total
            })
        });
        let tid = ready_rx
            .recv()
            .map_err(|_| io::Error::other("driver thread died"))??;
        Ok(Ours {
            stop,
            graceful,
            events,
            changes,
            handle: Some(handle),
            tid,
        })
    }

    /// Applies `change` in the driver's thread at its next tick; its result.
    pub(crate) fn change(
        &self,
        change: impl FnOnce(&mut Routers<'_>, &mut dyn FnMut(&Event)) -> io::Result<()> + Send + 'static,
    ) -> io::Result<()> {
        let (done, result) = mpsc::channel();
        self.changes
            .send((Box::new(change), done))
            .map_err(|_| io::Error::other("driver thread gone"))?;
        result
            .recv_timeout(Duration::from_secs(5))
            .map_err(|_| io::Error::other("change not applied"))?
    }

    /// The events so far: (when, event).
    pub(crate) fn events(&self) -> Vec<(Instant, Event)> {
        self.events.lock().unwrap().clone()
    }

    /// CPU time (user + system) the driver's thread has used, from /proc.
    pub(crate) fn cpu_time(&self) -> Option<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/self/task/{}/stat", self.tid?)).ok()?;
        // Fields after the parenthesised name: state is field 3, utime 14, stime 15.
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        let hz: u64 = Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())?;
        Some(Duration::from_millis(ticks * 1000 / hz))
    }

    /// The last state router `vrid` entered (Initialize before the first change).
    pub(crate) fn state_of(&self, vrid: u8) -> State {
        self.events
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find_map(|(_, e)| match e {
                Event::StateChanged { vrid: v, to, .. } if *v == vrid => Some(*to),
                _ => None,
            })
            .unwrap_or(State::Initialize)
    }

    /// The sync groups' changes so far: (group, from, to).
    pub(crate) fn group_changes(&self) -> Vec<(usize, State, State)> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(_, e)| match e {
                Event::GroupStateChanged { group, from, to } => Some((*group, *from, *to)),
                _ => None,
            })
            .collect()
    }

    /// The last state entered (Initialize before the first change).
    pub(crate) fn state(&self) -> State {
        self.events
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find_map(|(_, e)| match e {
                Event::StateChanged { to, .. } => Some(*to),
                _ => None,
            })
            .unwrap_or(State::Initialize)
    }

    /// The state changes so far: (when, to, reason text).
    pub(crate) fn changes(&self) -> Vec<(Instant, State, String)> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(t, e)| match e {
                Event::StateChanged { to, reason, .. } => Some((*t, *to, reason.to_string())),
                _ => None,
            })
            .collect()
    }

    /// The interop warnings so far.
    pub(crate) fn warnings(&self) -> Vec<InteropWarning> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Warning { warning, .. } => Some(warning.clone()),
                _ => None,
            })
            .collect()
    }

    /// Waits until the router has warned `warning` (the advert that causes it may arrive just
    /// after what the test waited for, such as the peer's VIP).
    pub(crate) fn wait_warning(&self, warning: &InteropWarning, timeout: Duration) -> bool {
        lb_lab::wait_until(timeout, Duration::from_millis(2), || {
            self.warnings().contains(warning).then_some(())
        })
        .is_some()
    }

    /// Waits until the router enters `state` after `since`; when it did.
    pub(crate) fn wait_state(
        &self,
        state: State,
        since: Instant,
        timeout: Duration,
    ) -> Option<Instant> {
        lb_lab::wait_until(timeout, Duration::from_millis(2), || {
            self.changes()
                .into_iter()
                .find(|(t, s, _)| *s == state && *t >= since)
                .map(|c| c.0)
        })
    }

    /// Stops the driver: gracefully (priority 0, addresses removed) or as if killed (nothing
    /// more is sent). Returns the router's counters.
    pub(crate) fn stop(mut self, graceful: bool) -> io::Result<Counters> {
        self.graceful.store(graceful, Ordering::Relaxed);
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().map_or_else(
            || Err(io::Error::other("stopped")),
            |h| {
                h.join()
                    .map_err(|_| io::Error::other("driver thread panicked"))?
            },
        )
    }
}

impl Drop for Ours {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The address `config`'s adverts leave `iface` from (its primary address).
pub(crate) fn primary(iface: &Interface, config: &Config) -> io::Result<IpAddr> {
    iface
        .primary(config.family(), &config.vips)
        .ok_or_else(|| io::Error::other("no primary address"))
}

/// Sends raw IPv4 packets of protocol 112 with the given TTL from `host` to 224.0.0.18, each
/// `payload` a VRRP message (sent as is: bad checksums, lengths and counts included).
pub(crate) fn inject_v4(host: &Host, packets: Vec<(u8, Vec<u8>)>) -> io::Result<()> {
    let ns_name = host.ns.name().to_owned();
    let src = host.ipv4;
    let ifname = host.ifname.clone();
    std::thread::spawn(move || -> io::Result<()> {
        lb_lab::enter_netns(&ns_name)?;
        let s = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::RAW,
            Some(socket2::Protocol::from(112)),
        )?;
        s.set_header_included_v4(true)?;
        s.bind_device(Some(ifname.as_bytes()))?;
        let dst = lb_vrrp::wire::MULTICAST_V4;
        for (ttl, payload) in packets {
            let total = 20 + payload.len();
            let mut p = vec![0x45, 0xc0];
            p.extend_from_slice(&(total as u16).to_be_bytes());
            p.extend_from_slice(&[0, 0, 0, 0, ttl, 112, 0, 0]);
            p.extend_from_slice(&src.octets());
            p.extend_from_slice(&dst.octets());
            p.extend_from_slice(&payload);
            s.send_to(&p, &socket2::SockAddr::from(SocketAddrV4::new(dst, 0)))?;
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    })
    .join()
    .map_err(|_| io::Error::other("injector panicked"))?
}

/// The address text of a host's IPv4 address (for keepalived's log lines).
pub(crate) fn v4(host: &Host) -> IpAddr {
    IpAddr::V4(host.ipv4)
}

// Shared settings of the keepalived interop tests.

pub(crate) const VIP: &str = "10.0.0.100";
pub(crate) const I: Duration = Duration::from_millis(100);
pub(crate) const SEC: Duration = Duration::from_secs(1);

pub(crate) fn vip() -> IpAddr {
    VIP.parse().unwrap()
}

/// keepalived's instance block: VRRPv3 at 100 ms with one VIP, plus `extra` lines.
pub(crate) fn ka_v3(priority: u8, extra: &str) -> String {
    format!(
        "state BACKUP\n version 3\n virtual_router_id 51\n priority {priority}\n advert_int 0.1\n virtual_ipaddress {{\n  {VIP}/24\n }}\n{extra}"
    )
}

pub(crate) fn ka_v2(priority: u8, extra: &str) -> String {
    format!(
        "state BACKUP\n version 2\n virtual_router_id 51\n priority {priority}\n advert_int 1\n virtual_ipaddress {{\n  {VIP}/24\n }}\n{extra}"
    )
}

/// Our VRRPv3 router at 100 ms in keepalived 2.2.7's checksum form (the primary address is
/// filled in by the lab from the interface).
pub(crate) fn ours_v3(priority: u8) -> Config {
    let mut c = Config::new(51, IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), vec![vip()]);
    c.priority = priority;
    c.interval = I;
    c.checksum = ChecksumMode::PseudoHeader;
    c
}

pub(crate) fn ours_v2(priority: u8) -> Config {
    let mut c = ours_v3(priority);
    c.version = Version::V2;
    c.interval = SEC;
    c
}

/// Long enough for any election at 100 ms to settle.
pub(crate) const SETTLE_V3: Duration = Duration::from_secs(3);
pub(crate) const SETTLE_V2: Duration = Duration::from_secs(8);

/// Holds for `d` and checks nobody changed state meanwhile.
pub(crate) fn steady(ours: &Ours, d: Duration) -> usize {
    let before = ours.changes().len();
    std::thread::sleep(d);
    ours.changes().len() - before
}
