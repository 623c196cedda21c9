//! An optional Prometheus endpoint: `GET /metrics` in the text exposition format, with the
//! counters of each service and real, each real's weight and connections, each VRRP
//! instance's state and whether the datapath serves.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use lb_forward::Counters;
use lb_vrrp::State;

use super::Report;
use super::status::Status;
use super::vrrp::States;

fn counters(out: &mut String, prefix: &str, labels: &str, c: &Counters) {
    let _ = writeln!(out, "{prefix}_connections_total{{{labels}}} {}", c.conns);
    for (dir, packets, bytes) in [
        ("in", c.packets_in, c.bytes_in),
        ("out", c.packets_out, c.bytes_out),
    ] {
        let _ = writeln!(
            out,
            "{prefix}_packets_total{{{labels},direction=\"{dir}\"}} {packets}"
        );
        let _ = writeln!(
            out,
            "{prefix}_bytes_total{{{labels},direction=\"{dir}\"}} {bytes}"
        );
    }
}

/// The exposition text.
pub(crate) fn render(status: &Status, states: &[(String, State)]) -> String {
    let mut out = String::new();
    for (s, _) in status.services() {
        let service = format!("service=\"{}\"", s.key);
        counters(&mut out, "lb_service", &service, &s.counters);
        for r in &s.reals {
            let labels = format!("{service},real=\"{}\"", r.config.addr);
            counters(&mut out, "lb_real", &labels, &r.counters);
            let _ = writeln!(out, "lb_real_weight{{{labels}}} {}", r.config.weight);
            let _ = writeln!(out, "lb_real_active_connections{{{labels}}} {}", r.active);
            let _ = writeln!(
                out,
                "lb_real_inactive_connections{{{labels}}} {}",
                r.inactive
            );
        }
    }
    for (name, state) in states {
        for s in [
            State::Master,
            State::Backup,
            State::Fault,
            State::Initialize,
        ] {
            let _ = writeln!(
                out,
                "lb_vrrp_state{{instance=\"{name}\",state=\"{s}\"}} {}",
                u8::from(*state == s)
            );
        }
    }
    let _ = writeln!(out, "lb_datapath_serving {}", u8::from(status.serving()));
    out
}

/// Serves `GET /metrics` on `addr` until the returned flag is set.
pub(crate) fn serve(
    addr: SocketAddr,
    status: Arc<Mutex<Status>>,
    states: States,
    report: Report,
) -> Result<(Arc<AtomicBool>, JoinHandle<()>), String> {
    let listener = TcpListener::bind(addr).map_err(|e| format!("metrics on {addr}: {e}"))?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let handle = std::thread::spawn(move || {
        while !flag.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    let _ = stream.set_nonblocking(false);
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
                    let mut request = [0u8; 1024];
                    let n = stream.read(&mut request).unwrap_or(0);
                    let (code, body) = if request[..n].starts_with(b"GET /metrics") {
                        let states: Vec<(String, State)> = states
                            .lock()
                            .map(|s| s.iter().map(|(k, v)| (k.clone(), *v)).collect())
                            .unwrap_or_default();
                        let text = status
                            .lock()
                            .map(|s| render(&s, &states))
                            .unwrap_or_default();
                        ("200 OK", text)
                    } else {
                        ("404 Not Found", "GET /metrics\n".to_owned())
                    };
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {code}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(e) => {
                    report(&format!("metrics: {e}"));
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    });
    Ok((stop, handle))
}
