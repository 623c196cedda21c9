//! Shared helpers for the real-peer tests: tiny servers on threads, and running one probe
//! through the reactor.
#![allow(dead_code, unreachable_pub)] // each test file uses a different subset

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lb_health::driver::{Reactor, ReactorConfig};
use lb_health::{Check, Event, InitialState, Observation, Target, TrackerConfig};
use rand::{SeedableRng, rngs::StdRng};

/// A server thread stopped (and joined) on drop.
pub struct Server {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A TCP server on 127.0.0.1 that runs `handle` for each connection (on its own thread).
pub fn tcp_server(handle: impl Fn(TcpStream) + Send + Sync + 'static) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    serve_listener(listener, handle)
}

pub fn serve_listener(
    listener: TcpListener,
    handle: impl Fn(TcpStream) + Send + Sync + 'static,
) -> Server {
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let handle = Arc::new(handle);
    let thread = std::thread::spawn(move || {
        while !flag.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    let h = handle.clone();
                    std::thread::spawn(move || h(s));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(2)),
            }
        }
    });
    Server {
        addr,
        stop,
        thread: Some(thread),
    }
}

/// Reads a request head (up to the blank line), ignoring errors.
pub fn read_head(s: &mut TcpStream) {
    let mut buf = Vec::new();
    let mut b = [0u8; 1024];
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&b[..n]),
        }
    }
}

/// An HTTP server answering every request with `response` (after reading the head).
pub fn http_server(response: &'static [u8]) -> Server {
    tcp_server(move |mut s| {
        read_head(&mut s);
        let _ = s.write_all(response);
    })
}

/// A UDP server on 127.0.0.1 answering each datagram with `reply(datagram)` if `Some`.
pub fn udp_server(reply: impl Fn(&[u8]) -> Option<Vec<u8>> + Send + 'static) -> Server {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(5)))
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while !flag.load(Ordering::Relaxed) {
            if let Ok((n, from)) = socket.recv_from(&mut buf) {
                if let Some(r) = reply(&buf[..n]) {
                    let _ = socket.send_to(&r, from);
                }
            }
        }
    });
    Server {
        addr,
        stop,
        thread: Some(thread),
    }
}

pub fn reactor() -> Reactor<StdRng> {
    Reactor::new(ReactorConfig::default(), StdRng::seed_from_u64(7)).unwrap()
}

/// A tracker config probing every `every`, starting `initial`, with these thresholds.
pub fn tracker(every: Duration, initial: InitialState, rise: u32, fall: u32) -> TrackerConfig {
    let mut t = TrackerConfig::new(every);
    t.initial = initial;
    t.rise = rise;
    t.fall = fall;
    t
}

/// Runs one probe of `check` against `addr` and returns what the tracker recorded.
pub fn probe_once(check: Check, addr: SocketAddr, timeout: Duration) -> Observation {
    let mut r = reactor();
    let id = r
        .add(Target {
            addr,
            check,
            tracker: tracker(Duration::from_secs(60), InitialState::Unknown, 1, 1),
            timeout,
            source: None,
        })
        .unwrap();
    let deadline = Instant::now() + timeout + Duration::from_secs(5);
    while Instant::now() < deadline {
        r.poll(Some(Duration::from_millis(20))).unwrap();
        let t = r.checker().tracker(id).unwrap();
        if let Some(o) = t.history().next() {
            return *o;
        }
    }
    panic!("no outcome within the deadline");
}

/// Polls `r` until `n` events arrived or `limit` passed; returns them.
pub fn events(r: &mut Reactor<StdRng>, n: usize, limit: Duration) -> Vec<Event> {
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    while out.len() < n && Instant::now() < deadline {
        r.poll(Some(Duration::from_millis(20))).unwrap();
        while let Some(e) = r.poll_event() {
            out.push(e);
        }
    }
    out
}
