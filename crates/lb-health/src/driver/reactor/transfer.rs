//! Moving bytes for runs in flight: reacting to readiness, feeding probe sessions, writing
//! what they say to send.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use rand_core::Rng;

use super::{Io, Reactor};
use crate::probe::{parse_echo_reply, parse_syn_reply, transport_failure};
use crate::{Outcome, Probe, Reason, Step};

/// Queues `bytes` after `out`: moved in when nothing is queued (no copy, no allocation).
fn append(out: &mut Vec<u8>, bytes: Vec<u8>) {
    if out.is_empty() {
        *out = bytes;
    } else {
        out.extend_from_slice(&bytes);
    }
}

impl<R: Rng> Reactor<R> {
    /// Acts on a probe's step for run `key`.
    pub(super) fn process(&mut self, key: usize, step: Step, now: Duration) {
        match step {
            Step::NeedMore => {}
            Step::Done(o) => self.complete(key, o, now),
            Step::Send(bytes) => {
                let Some(run) = self.runs.get_mut(key) else {
                    return;
                };
                append(&mut run.out, bytes);
                self.flush(key, now);
            }
            Step::Finish(bytes, o) => {
                let Some(run) = self.runs.get_mut(key) else {
                    return;
                };
                append(&mut run.out, bytes);
                run.finish = Some(o);
                self.flush(key, now);
            }
        }
    }

    pub(super) fn flush(&mut self, key: usize, now: Duration) {
        let Some(run) = self.runs.get_mut(key) else {
            return;
        };
        let result: io::Result<()> = match &mut run.io {
            Io::Tcp { stream, .. } => loop {
                if run.out.is_empty() {
                    break Ok(());
                }
                match stream.write(&run.out) {
                    Ok(n) => {
                        run.out.drain(..n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            },
            Io::Udp(socket) => {
                let r = socket.send(&run.out).map(drop);
                run.out.clear();
                r
            }
            Io::Icmp { v6, dst, .. } => {
                let dst = socket2::SockAddr::from(SocketAddr::new(dst.ip(), 0));
                let r = match &self.icmp[usize::from(*v6)] {
                    Some(s) => s.send_to(&run.out, &dst).map(drop),
                    None => Err(io::Error::other("no icmp socket")),
                };
                run.out.clear();
                r
            }
            // Commands take no input; half-open runs have no session (`open` sent the SYN).
            Io::Exec { .. } | Io::RawTcp { .. } => Ok(()),
        };
        match result {
            Err(e) => self.complete(key, transport_failure(&e), now),
            Ok(()) if run.out.is_empty() => {
                if let Some(o) = run.finish.take() {
                    self.complete(key, o, now);
                }
            }
            Ok(()) => {}
        }
    }

    pub(super) fn ready_run(
        &mut self,
        key: usize,
        readable: bool,
        writable: bool,
        error: bool,
        now: Duration,
    ) {
        let Some(run) = self.runs.get_mut(key) else {
            return;
        };
        match &mut run.io {
            Io::Tcp { stream, connected } => {
                if !*connected {
                    // Writable without EPOLLERR means the connect succeeded: no syscall to
                    // confirm it. Errors are read with SO_ERROR; a readable-only wakeup is
                    // confirmed with getpeername.
                    if error || !writable {
                        if let Some(e) = stream.take_error().unwrap_or_else(Some) {
                            return self.complete(key, transport_failure(&e), now);
                        }
                    }
                    if !writable {
                        match stream.peer_addr() {
                            Ok(_) => {}
                            Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                            Err(e) => return self.complete(key, transport_failure(&e), now),
                        }
                    }
                    *connected = true;
                    let step = run.session.as_mut().map_or(Step::NeedMore, Probe::start);
                    self.process(key, step, now);
                } else if writable {
                    self.flush(key, now);
                }
                if readable {
                    self.read_stream(key, now);
                }
            }
            Io::Udp(_) => {
                if readable {
                    self.read_datagrams(key, now);
                }
            }
            Io::Icmp { .. } | Io::Exec { .. } | Io::RawTcp { .. } => {}
        }
    }

    /// True while run `key` (as of `serial`) still exists.
    pub(super) fn alive(&self, key: usize, serial: u64) -> bool {
        self.runs.get(key).is_some_and(|r| r.serial == serial)
    }

    pub(super) fn read_stream(&mut self, key: usize, now: Duration) {
        let Some(serial) = self.runs.get(key).map(|r| r.serial) else {
            return;
        };
        while self.alive(key, serial) {
            let Some(run) = self.runs.get_mut(key) else {
                return;
            };
            let Io::Tcp { stream, .. } = &mut run.io else {
                return;
            };
            let Some(session) = run.session.as_mut() else {
                return;
            };
            let step = match stream.read(&mut self.buf) {
                Ok(0) => {
                    let step = session.on_eof();
                    match step {
                        Step::NeedMore => Step::Done(Outcome::fail(Reason::Closed)),
                        s => s,
                    }
                }
                Ok(n) => session.on_bytes(&self.buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Step::Done(transport_failure(&e)),
            };
            self.process(key, step, now);
        }
    }

    pub(super) fn read_datagrams(&mut self, key: usize, now: Duration) {
        let Some(serial) = self.runs.get(key).map(|r| r.serial) else {
            return;
        };
        while self.alive(key, serial) {
            let Some(run) = self.runs.get_mut(key) else {
                return;
            };
            let Io::Udp(socket) = &mut run.io else {
                return;
            };
            let Some(session) = run.session.as_mut() else {
                return;
            };
            let step = match socket.recv(&mut self.buf) {
                Ok(n) => session.on_bytes(&self.buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Step::Done(transport_failure(&e)),
            };
            self.process(key, step, now);
        }
    }

    pub(super) fn icmp_readable(&mut self, v6: bool, now: Duration) {
        loop {
            let n = match self.icmp[usize::from(v6)]
                .as_ref()
                .map(|mut s| s.read(&mut self.buf))
            {
                Some(Ok(n)) => n,
                Some(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                _ => return,
            };
            // Only the runs whose sequence number the reply carries (raw sockets see every
            // echo reply on the host).
            let Some((_, seq, _)) = parse_echo_reply(&self.buf[..n], v6) else {
                continue;
            };
            let waiting = self
                .icmp_waiting
                .get(&(v6, seq))
                .cloned()
                .unwrap_or_default();
            for key in waiting {
                let packet = &self.buf[..n];
                let step = self
                    .runs
                    .get_mut(key)
                    .and_then(|r| r.session.as_mut())
                    .map_or(Step::NeedMore, |s| s.on_bytes(packet));
                self.process(key, step, now);
            }
        }
    }

    /// Replies to half-open SYNs on raw socket `raw` (its filter passes only SYN-ACKs and
    /// RSTs to our port), each to the run its acknowledgment number names, if that run waits
    /// for exactly this sender and number.
    pub(super) fn raw_tcp_readable(&mut self, raw: usize, now: Duration) {
        // Every socket with unread replies is read before the next burst of SYNs.
        self.syn_unread = 0;
        loop {
            let result = match self.raw_tcp.get(raw) {
                Some(socket) => socket.recv_batch(&mut self.replies, &mut self.reply_from),
                None => return,
            };
            let read = match result {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            for i in 0..read {
                let (len, from) = self.reply_from[i];
                let Some(segment) = parse_syn_reply(&self.replies[i][..len], from) else {
                    continue;
                };
                let key = self.isn_keys.key(segment.ack);
                // Sent from this socket, whose port the reply is addressed to.
                let waits = self
                    .runs
                    .get(key)
                    .is_some_and(|r| r.io.awaits_syn_reply(raw, segment.from, segment.ack));
                if waits && self.raw_tcp.get(raw).map(|r| r.port()) == Some(segment.to_port) {
                    self.complete(key, segment.reply.outcome(), now);
                }
            }
            // A short read emptied the queue: a reply queued later wakes epoll (or the next
            // read after a send).
            if read < self.replies.len() {
                return;
            }
        }
    }
}
