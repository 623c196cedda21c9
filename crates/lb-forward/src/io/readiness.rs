//! Waiting on every interface's packet socket at once (epoll through mio, edge-triggered),
//! for the backends: a socket is registered under its port's position in the backend.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};

pub(super) struct Readiness {
    poll: Poll,
    events: Events,
}

impl Readiness {
    pub(super) fn new() -> io::Result<Readiness> {
        Ok(Readiness {
            poll: Poll::new()?,
            events: Events::with_capacity(64),
        })
    }

    /// Watches `fd` for frames, reported as port `port`.
    pub(super) fn register(&self, fd: RawFd, port: usize) -> io::Result<()> {
        self.poll
            .registry()
            .register(&mut SourceFd(&fd), Token(port), Interest::READABLE)
    }

    /// Waits up to `timeout` (`None`: forever) until a socket has frames, then calls `ready`
    /// with the port of each one that has; a wait a signal interrupts reports none.
    pub(super) fn wait(
        &mut self,
        timeout: Option<Duration>,
        mut ready: impl FnMut(usize),
    ) -> io::Result<()> {
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        for event in &self.events {
            ready(event.token().0);
        }
        Ok(())
    }
}
