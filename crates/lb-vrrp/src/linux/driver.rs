//! The run loop: one router on one interface.

use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{AddressTable, AdvertSocket, Announcer, Interface};
use crate::Config;
use crate::event::{Event, State};
use crate::router::Router;
use crate::wire::{Family, MAX_LEN};

/// The longest a wait lasts, so a stop request and link changes are seen promptly.
const MAX_WAIT: Duration = Duration::from_millis(20);
/// How often the link state is read.
const LINK_CHECK: Duration = Duration::from_millis(200);

/// Runs one [`Router`] on one interface: sends and receives adverts, installs, removes and
/// announces the virtual addresses, and turns a link without carrier into FAULT.
///
/// Time for the router is the time since the driver was created.
#[derive(Debug)]
pub struct Driver {
    router: Router,
    iface: Interface,
    prefixes: Vec<u8>,
    socket: AdvertSocket,
    table: AddressTable,
    announcer: Announcer,
    epoch: Instant,
    link_checked: Instant,
    tx_buf: Vec<u8>,
    rx_buf: Vec<u8>,
    send_errors: u64,
}

impl Driver {
    /// Opens the sockets on `interface` for `config`, whose [`Config::primary`] must be an
    /// address of the interface (see [`Interface::primary`]); `prefixes[i]` is the prefix
    /// length `config.vips[i]` is installed with.
    pub fn new(interface: &str, config: Config, prefixes: Vec<u8>) -> io::Result<Driver> {
        if prefixes.len() != config.vips.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "one prefix length per virtual address",
            ));
        }
        let iface = Interface::lookup(interface)?;
        let family = config.family();
        let socket = AdvertSocket::open(&iface, family, config.primary)?;
        let link_local = match (family, config.primary) {
            (Family::Ipv6, IpAddr::V6(ll)) => Some(ll),
            _ => None,
        };
        let announcer = Announcer::open(&iface, link_local)?;
        let table = AddressTable::open()?;
        let router =
            Router::new(config).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let now = Instant::now();
        Ok(Driver {
            router,
            iface,
            prefixes,
            socket,
            table,
            announcer,
            epoch: now,
            link_checked: now,
            tx_buf: Vec::with_capacity(MAX_LEN),
            rx_buf: vec![0; 65_536],
            send_errors: 0,
        })
    }

    /// The router (state, counters, configuration).
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// The router, to set tracked inputs; the effects are acted on by the next
    /// [`run`](Self::run) or [`shutdown`](Self::shutdown).
    pub fn router_mut(&mut self) -> &mut Router {
        &mut self.router
    }

    /// Adverts that could not be sent (the socket said no; the router carries on).
    pub fn send_errors(&self) -> u64 {
        self.send_errors
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// Starts the router (if not yet) and runs until `stop` is set. Each event is acted on
    /// (addresses installed on becoming master, removed on leaving, announced), then handed to
    /// `on_event`.
    pub fn run(&mut self, stop: &AtomicBool, on_event: &mut dyn FnMut(&Event)) -> io::Result<()> {
        let now = self.now();
        if self.router.state() == State::Initialize {
            self.router
                .set_link(now, Interface::lookup(&self.iface.name)?.running);
            self.router.handle_startup(now);
        }
        self.flush(on_event)?;
        while !stop.load(Ordering::Relaxed) {
            let now = self.now();
            let wait = self
                .router
                .poll_timeout()
                .map_or(MAX_WAIT, |t| t.saturating_sub(now))
                .min(MAX_WAIT);
            if self.socket.wait(wait)? {
                while let Some(rx) = self.socket.recv(&mut self.rx_buf)? {
                    let bytes = &self.rx_buf[rx.range];
                    self.router.handle_advert(self.now(), &rx.meta, bytes);
                    self.flush(on_event)?;
                }
            }
            let now = self.now();
            if self.router.poll_timeout().is_some_and(|t| t <= now) {
                self.router.handle_timeout(now);
            }
            if self.link_checked.elapsed() >= LINK_CHECK {
                self.link_checked = Instant::now();
                let running = Interface::lookup(&self.iface.name)
                    .map(|i| i.running)
                    .unwrap_or(false);
                self.router.set_link(now, running);
            }
            self.flush(on_event)?;
        }
        Ok(())
    }

    /// Graceful stop: a master sends its priority-0 advert and removes its addresses.
    pub fn shutdown(&mut self, on_event: &mut dyn FnMut(&Event)) -> io::Result<()> {
        self.router.handle_shutdown(self.now());
        self.flush(on_event)
    }

    /// Sends what the router wants sent and acts on its events.
    fn flush(&mut self, on_event: &mut dyn FnMut(&Event)) -> io::Result<()> {
        while let Some(tx) = self.router.poll_transmit(&mut self.tx_buf) {
            if self
                .socket
                .send(&self.tx_buf, tx.dst, self.iface.index)
                .is_err()
            {
                self.send_errors += 1;
            }
        }
        while let Some(event) = self.router.poll_event() {
            match &event {
                Event::StateChanged {
                    to: State::Master, ..
                } => self.set_vips(true)?,
                Event::StateChanged {
                    from: State::Master,
                    ..
                } => self.set_vips(false)?,
                Event::Announce { .. } => {
                    for vip in &self.router.config().vips {
                        // A lost announcement is repeated by the schedule; not fatal.
                        let _ = self.announcer.announce(*vip);
                    }
                }
                _ => {}
            }
            on_event(&event);
        }
        Ok(())
    }

    fn set_vips(&mut self, install: bool) -> io::Result<()> {
        for (vip, prefix) in self.router.config().vips.iter().zip(&self.prefixes) {
            if install {
                self.table.add(self.iface.index, *vip, *prefix)?;
            } else {
                self.table.remove(self.iface.index, *vip, *prefix)?;
            }
        }
        Ok(())
    }
}
