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
use lb_vrrp::linux::{Driver, Interface};
use lb_vrrp::{Config, Counters, Event, InteropWarning, State};

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
        let dir = temp_dir()?;
        let conf = dir.join("keepalived.conf");
        std::fs::write(
            &conf,
            format!(
                "global_defs {{\n router_id lab\n}}\nvrrp_instance V1 {{\n interface {}\n{instance}\n}}\n",
                host.ifname
            ),
        )?;
        let log = File::create(dir.join("log"))?;
        let mut cmd = host.ns.command("keepalived");
        cmd.args(["-n", "-l", "-D", "--vrrp", "-f"])
            .arg(&conf)
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
    host.ns
        .run(&["ip", "-o", "addr", "show", "dev", &host.ifname])
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

/// Moves the calling thread into network namespace `ns` (an `ip netns` name).
fn enter(ns: &str) -> io::Result<()> {
    let file = File::open(format!("/var/run/netns/{ns}"))?;
    nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(io::Error::from)
}

/// Our router: the Linux driver running in a thread inside a host's namespace.
pub(crate) struct Ours {
    stop: Arc<AtomicBool>,
    graceful: Arc<AtomicBool>,
    events: Arc<Mutex<Vec<(Instant, Event)>>>,
    handle: Option<JoinHandle<io::Result<Counters>>>,
}

impl Ours {
    /// Starts `config` on `host`'s LAN interface; its primary address is replaced by the
    /// interface's own (IPv4 primary or IPv6 link-local). VIPs get prefix /24 or /64.
    pub(crate) fn start(host: &Host, mut config: Config) -> io::Result<Ours> {
        let stop = Arc::new(AtomicBool::new(false));
        let graceful = Arc::new(AtomicBool::new(false));
        let events = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = mpsc::channel();
        let ns_name = host.ns.name().to_owned();
        let ifname = host.ifname.clone();
        let (s, g, e) = (stop.clone(), graceful.clone(), events.clone());
        let handle = std::thread::spawn(move || -> io::Result<Counters> {
            let setup = (|| {
                enter(&ns_name)?;
                let iface = Interface::lookup(&ifname)?;
                config.primary = iface
                    .primary(config.family(), &config.vips)
                    .ok_or_else(|| io::Error::other("no primary address"))?;
                let prefixes = config
                    .vips
                    .iter()
                    .map(|v| if v.is_ipv4() { 24 } else { 64 })
                    .collect();
                Driver::new(&ifname, config, prefixes)
            })();
            let mut driver = match setup {
                Ok(d) => {
                    let _ = ready_tx.send(Ok(()));
                    d
                }
                Err(err) => {
                    let _ = ready_tx.send(Err(io::Error::new(err.kind(), err.to_string())));
                    return Err(err);
                }
            };
            let mut record = |ev: &Event| e.lock().unwrap().push((Instant::now(), ev.clone()));
            driver.run(&s, &mut record)?;
            if g.load(Ordering::Relaxed) {
                driver.shutdown(&mut record)?;
            }
            Ok(driver.router().counters().clone())
        });
        ready_rx
            .recv()
            .map_err(|_| io::Error::other("driver thread died"))??;
        Ok(Ours {
            stop,
            graceful,
            events,
            handle: Some(handle),
        })
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

/// Sends raw IPv4 packets of protocol 112 with the given TTL from `host` to 224.0.0.18, each
/// `payload` a VRRP message (sent as is: bad checksums, lengths and counts included).
pub(crate) fn inject_v4(host: &Host, packets: Vec<(u8, Vec<u8>)>) -> io::Result<()> {
    let ns_name = host.ns.name().to_owned();
    let src = host.ipv4;
    let ifname = host.ifname.clone();
    std::thread::spawn(move || -> io::Result<()> {
        enter(&ns_name)?;
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
