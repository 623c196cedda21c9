//! What `director list` shows: the service table in `ipvsadm -Ln`'s layout (or with
//! `--stats` / `--rate`, lb-forward's statistics table), the VRRP states, served over a Unix
//! control socket.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lb_forward::{Forwarder, Method, ServiceStatus, Stats};

use super::Report;
use super::vrrp::States;

/// A snapshot of the datapath, refreshed by its thread a few times a second.
#[derive(Debug, Default, Clone)]
pub struct Status {
    services: Vec<(ServiceStatus, String)>,
    earlier: Option<(Vec<ServiceStatus>, Instant)>,
    taken: Option<Instant>,
    stats: Stats,
    connections: usize,
    serving: bool,
}

impl Status {
    /// Takes a snapshot of `fw`; the snapshot of about a second ago is kept for rates.
    pub(crate) fn publish(&mut self, fw: &Forwarder, serving: bool) {
        let now = Instant::now();
        if self
            .earlier
            .as_ref()
            .is_none_or(|(_, t)| now.duration_since(*t) >= Duration::from_secs(1))
        {
            let previous: Vec<ServiceStatus> =
                self.services.iter().map(|(s, _)| s.clone()).collect();
            self.earlier = self.taken.map(|t| (previous, t));
        }
        self.services = fw
            .status()
            .into_iter()
            .map(|s| {
                let scheduler = fw.scheduler(&s.key).map(|sched| {
                    let pool = sched.pool();
                    match &pool.config().persistence {
                        Some(p) => format!(
                            "{} persistent {}",
                            pool.algorithm().name(),
                            p.timeout().as_secs()
                        ),
                        None => pool.algorithm().name().to_owned(),
                    }
                });
                (s, scheduler.unwrap_or_default())
            })
            .collect();
        self.taken = Some(now);
        self.stats = fw.stats().clone();
        self.connections = fw.connection_count();
        self.serving = serving;
    }

    /// `ipvsadm -Ln`: each service with its scheduler (a firewall-mark service as `FWM N`),
    /// each real with its forwarding method, weight and active / inactive connections; then
    /// the packets each firewall-mark service takes.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "Prot LocalAddress:Port Scheduler Flags");
        let _ = writeln!(
            out,
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn"
        );
        for (s, scheduler) in &self.services {
            if s.key.is_fwmark() {
                let family = if s.key.vip.is_ipv6() { " IPv6" } else { "" };
                let _ = writeln!(out, "FWM  {}{family} {scheduler}", s.key.fwmark);
            } else {
                let protocol = s.key.protocol.name().to_uppercase();
                let vip = std::net::SocketAddr::new(s.key.vip, s.key.port);
                let _ = writeln!(out, "{protocol:<4} {vip} {scheduler}");
            }
            for r in &s.reals {
                let forward = match r.config.method {
                    Method::Dr => "Route",
                    Method::Nat => "Masq",
                    Method::Tunnel(_) => "Tunnel",
                };
                let _ = writeln!(
                    out,
                    "  -> {:<28} {forward:<7} {:<6} {:<10} {}",
                    r.config.addr.to_string(),
                    r.config.weight,
                    r.active,
                    r.inactive
                );
            }
        }
        for (s, _) in self.services.iter().filter(|(s, _)| s.key.is_fwmark()) {
            let keys: Vec<String> = s.matches.iter().map(|m| m.to_string()).collect();
            let keys = if keys.is_empty() {
                "nothing (no rule sets the mark)".to_owned()
            } else {
                keys.join(", ")
            };
            let _ = writeln!(out, "{} takes {keys}", s.key);
        }
        out
    }

    /// `ipvsadm -Ln --stats --rate`.
    pub fn stats_table(&self) -> String {
        let services: Vec<ServiceStatus> = self.services.iter().map(|(s, _)| s.clone()).collect();
        let earlier = match (&self.earlier, self.taken) {
            (Some((e, t)), Some(now)) => Some((e.as_slice(), now.duration_since(*t))),
            _ => None,
        };
        lb_forward::report::stats_table(&services, earlier, &self.stats, self.connections)
    }

    /// The services with their scheduler descriptions.
    pub(crate) fn services(&self) -> &[(ServiceStatus, String)] {
        &self.services
    }

    /// Whether the datapath is forwarding (this director holds the VIPs).
    pub fn serving(&self) -> bool {
        self.serving
    }
}

/// The reply to one control request.
fn answer(request: &str, status: &Mutex<Status>, states: &States) -> String {
    let Ok(status) = status.lock() else {
        return "error: status unavailable\n".into();
    };
    let mut out = match request.trim() {
        "list" => status.table(),
        "list --stats" | "list --rate" | "list --stats --rate" | "list --rate --stats" => {
            status.stats_table()
        }
        other => return format!("error: unknown request {other:?} (list [--stats] [--rate])\n"),
    };
    if let Ok(states) = states.lock() {
        let mut names: Vec<_> = states.iter().collect();
        names.sort_by(|a, b| a.0.cmp(b.0));
        for (name, state) in names {
            let _ = writeln!(out, "VRRP {name} {state}");
        }
    }
    let _ = writeln!(
        out,
        "datapath {}",
        if status.serving {
            "serving"
        } else {
            "standing by"
        }
    );
    out
}

/// Serves requests on a Unix socket at `path` until the returned flag is set.
pub(crate) fn serve(
    path: &Path,
    status: Arc<Mutex<Status>>,
    states: States,
    report: Report,
) -> Result<(Arc<AtomicBool>, JoinHandle<()>), String> {
    // A socket left by a previous run that is gone: nothing answers on it any more.
    if UnixStream::connect(path).is_err() {
        let _ = std::fs::remove_file(path);
    }
    let listener =
        UnixListener::bind(path).map_err(|e| format!("control socket {}: {e}", path.display()))?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let path = path.to_owned();
    let handle = std::thread::spawn(move || {
        while !flag.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((stream, _)) => {
                    let _ = stream.set_nonblocking(false);
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
                    let mut line = String::new();
                    let mut reader = BufReader::new(&stream);
                    if reader.read_line(&mut line).is_ok() {
                        let _ = (&stream).write_all(answer(&line, &status, &states).as_bytes());
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(e) => {
                    report(&format!("control socket: {e}"));
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
        let _ = std::fs::remove_file(&path);
    });
    Ok((stop, handle))
}

/// Sends one request to a running director and returns its answer.
pub(crate) fn request(path: &Path, request: &str) -> std::io::Result<String> {
    let mut stream = UnixStream::connect(path)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(format!("{request}\n").as_bytes())?;
    let mut out = String::new();
    stream.read_to_string(&mut out)?;
    Ok(out)
}
