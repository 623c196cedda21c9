//! The run loop: virtual routers on one interface, one thread.

use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::vmac::Vmac;
use super::{AcceptFilter, AdvertSocket, Announcer, Interface, RouteNetlink};
use crate::Config;
use crate::event::{Event, State};
use crate::router::Router;
use crate::wire::{Family, MAX_LEN};

/// The longest a wait lasts, so a stop request and link changes are seen promptly.
const MAX_WAIT: Duration = Duration::from_millis(20);
/// How often the link state is read.
const LINK_CHECK: Duration = Duration::from_millis(200);

/// Runs [`Router`]s of one family on one interface in the calling thread: sends and receives
/// their adverts on one socket (handing each advert to the router with its VRID), installs,
/// removes and announces the virtual addresses, and turns a link without carrier into FAULT.
///
/// Time for the routers is the time since the driver was created.
#[derive(Debug)]
pub struct Driver {
    routers: Vec<Router>,
    /// `prefixes[r][i]`: the prefix length of router `r`'s `vips[i]`.
    prefixes: Vec<Vec<u8>>,
    /// Router index by VRID.
    by_vrid: [Option<u8>; 256],
    iface: Interface,
    socket: AdvertSocket,
    table: RouteNetlink,
    announcer: Announcer,
    /// Accept mode for the routers that must not accept traffic to their addresses.
    accept: AcceptFilter,
    /// Per router: its virtual-MAC macvlan, when enabled.
    vmacs: Vec<Option<Vmac>>,
    epoch: Instant,
    link_checked: Instant,
    tx_buf: Vec<u8>,
    rx_buf: Vec<u8>,
    send_errors: u64,
    bad_ip_headers: u64,
}

impl Driver {
    /// One router on `interface`; `config.primary` must be an address of the interface (see
    /// [`Interface::primary`]) and `prefixes[i]` is the prefix length `config.vips[i]` is
    /// installed with.
    pub fn new(interface: &str, config: Config, prefixes: Vec<u8>) -> io::Result<Driver> {
        Driver::with_routers(interface, vec![(config, prefixes)])
    }

    /// Several routers (at most 255, distinct VRIDs, one family and one primary address) on
    /// `interface`, each with its virtual addresses' prefix lengths.
    pub fn with_routers(interface: &str, routers: Vec<(Config, Vec<u8>)>) -> io::Result<Driver> {
        let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, what.to_owned());
        let (first, _) = routers
            .first()
            .ok_or_else(|| invalid("no virtual router"))?;
        let (family, primary) = (first.family(), first.primary);
        let mut by_vrid = [None; 256];
        for (i, (config, prefixes)) in routers.iter().enumerate() {
            if prefixes.len() != config.vips.len() {
                return Err(invalid("one prefix length per virtual address"));
            }
            if config.primary != primary {
                return Err(invalid(
                    "all virtual routers of a driver share one primary address",
                ));
            }
            let slot = &mut by_vrid[usize::from(config.vrid)];
            if slot.is_some() || i > 254 {
                return Err(invalid("at most 255 virtual routers with distinct VRIDs"));
            }
            *slot = u8::try_from(i).ok();
        }
        let iface = Interface::lookup(interface)?;
        let socket = AdvertSocket::open(&iface, family, primary)?;
        let link_local = match (family, primary) {
            (Family::Ipv6, IpAddr::V6(ll)) => Some(ll),
            _ => None,
        };
        let announcer = Announcer::open(&iface, link_local)?;
        let table = RouteNetlink::open()?;
        let mut accept = AcceptFilter::new();
        if routers.iter().any(|(c, _)| !c.accepts_vip_traffic()) {
            accept.prepare(family)?;
        }
        let mut built = Vec::with_capacity(routers.len());
        let mut prefixes = Vec::with_capacity(routers.len());
        for (config, p) in routers {
            built.push(
                Router::new(config).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
            );
            prefixes.push(p);
        }
        let now = Instant::now();
        Ok(Driver {
            routers: built,
            prefixes,
            by_vrid,
            iface,
            socket,
            table,
            announcer,
            accept,
            vmacs: Vec::new(),
            epoch: now,
            link_checked: now,
            tx_buf: Vec::with_capacity(MAX_LEN),
            rx_buf: vec![0; 65_536],
            send_errors: 0,
            bad_ip_headers: 0,
        })
    }

    /// Gives every router its virtual MAC, `00-00-5e-00-01-VRID` (IPv4) or
    /// `00-00-5e-00-02-VRID` (IPv6), as keepalived's `use_vmac`: a private-mode macvlan
    /// (`vrrp.VRID`, `vrrp6.VRID`) on the interface carries the router's adverts, its
    /// gratuitous ARPs or unsolicited neighbour advertisements and its virtual addresses, so
    /// neighbours keep one MAC for the VIP across failovers. The interface settings are
    /// keepalived's (see the `vmac` module: `arp_ignore` / `arp_announce` for IPv4, no
    /// generated link-local address and the parent's one for IPv6). The macvlans are deleted
    /// when the driver is dropped. Call before [`run`](Self::run).
    pub fn enable_vmac(&mut self) -> io::Result<()> {
        for router in &self.routers {
            let vmac = Vmac::create(&mut self.table, &self.iface, router.config())?;
            self.vmacs.push(Some(vmac));
        }
        Ok(())
    }

    /// The first (or only) router: state, counters, configuration.
    pub fn router(&self) -> &Router {
        &self.routers[0]
    }

    /// The routers in the order given.
    pub fn routers(&self) -> &[Router] {
        &self.routers
    }

    /// The routers, to set tracked inputs; the effects are acted on by the next
    /// [`run`](Self::run) or [`shutdown`](Self::shutdown).
    pub fn routers_mut(&mut self) -> &mut [Router] {
        &mut self.routers
    }

    /// Adverts that could not be sent (the socket said no; the router carries on).
    pub fn send_errors(&self) -> u64 {
        self.send_errors
    }

    /// Datagrams dropped before any router saw them because their IPv4 header was malformed
    /// ([`DropReason::BadIpHeader`](crate::DropReason::BadIpHeader)).
    pub fn bad_ip_headers(&self) -> u64 {
        self.bad_ip_headers
    }

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// Starts the routers (those not yet started) and runs until `stop` is set. Each event is
    /// acted on (addresses installed on becoming master, removed on leaving, announced), then
    /// handed to `on_event`.
    pub fn run(&mut self, stop: &AtomicBool, on_event: &mut dyn FnMut(&Event)) -> io::Result<()> {
        self.run_with(stop, on_event, &mut |_, _| {})
    }

    /// [`run`](Self::run), calling `on_tick` with the routers' clock and the routers at least
    /// every 20 ms: the place to feed tracked inputs ([`Router::set_track`]) from scripts,
    /// files or other interfaces while the driver runs. What they change is acted on at once.
    pub fn run_with(
        &mut self,
        stop: &AtomicBool,
        on_event: &mut dyn FnMut(&Event),
        on_tick: &mut dyn FnMut(Duration, &mut [Router]),
    ) -> io::Result<()> {
        let now = self.now();
        let running = Interface::lookup(&self.iface.name)?.running;
        for r in &mut self.routers {
            if r.state() == State::Initialize {
                r.set_link(now, running);
                r.handle_startup(now);
            }
        }
        self.flush_all(on_event)?;
        while !stop.load(Ordering::Relaxed) {
            let now = self.now();
            let next = self.routers.iter().filter_map(Router::poll_timeout).min();
            let wait = next
                .map_or(MAX_WAIT, |t| t.saturating_sub(now))
                .min(MAX_WAIT);
            if self.socket.wait(wait)? {
                loop {
                    let rx = match self.socket.recv(&mut self.rx_buf) {
                        Ok(Some(rx)) => rx,
                        Ok(None) => break,
                        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                            self.bad_ip_headers += 1;
                            continue;
                        }
                        Err(e) => return Err(e),
                    };
                    let bytes = &self.rx_buf[rx.range];
                    // Another VRID's advert goes to the first router, which counts it.
                    let vrid = bytes.get(1).copied().unwrap_or(0);
                    let i = usize::from(self.by_vrid[usize::from(vrid)].unwrap_or(0));
                    let now = self.epoch.elapsed();
                    self.routers[i].handle_advert(now, &rx.meta, bytes);
                    self.flush(i, on_event)?;
                }
            }
            let now = self.now();
            for i in 0..self.routers.len() {
                if self.routers[i].poll_timeout().is_some_and(|t| t <= now) {
                    self.routers[i].handle_timeout(now);
                    self.flush(i, on_event)?;
                }
            }
            on_tick(now, &mut self.routers);
            self.flush_all(on_event)?;
            if self.link_checked.elapsed() >= LINK_CHECK {
                self.link_checked = Instant::now();
                let running = Interface::lookup(&self.iface.name).is_ok_and(|i| i.running);
                for r in &mut self.routers {
                    r.set_link(now, running);
                }
                self.flush_all(on_event)?;
            }
        }
        Ok(())
    }

    /// Graceful stop: masters send their priority-0 adverts and remove their addresses.
    pub fn shutdown(&mut self, on_event: &mut dyn FnMut(&Event)) -> io::Result<()> {
        let now = self.now();
        for r in &mut self.routers {
            r.handle_shutdown(now);
        }
        self.flush_all(on_event)
    }

    fn flush_all(&mut self, on_event: &mut dyn FnMut(&Event)) -> io::Result<()> {
        for i in 0..self.routers.len() {
            self.flush(i, on_event)?;
        }
        Ok(())
    }

    /// Sends what router `i` wants sent and acts on its events.
    fn flush(&mut self, i: usize, on_event: &mut dyn FnMut(&Event)) -> io::Result<()> {
        let sender = match self.vmacs.get(i) {
            Some(Some(vmac)) => &vmac.sender,
            _ => self.socket.sender(),
        };
        while let Some(tx) = self.routers[i].poll_transmit(&mut self.tx_buf) {
            if sender.send(&self.tx_buf, tx.dst).is_err() {
                self.send_errors += 1;
            }
        }
        while let Some(event) = self.routers[i].poll_event() {
            match &event {
                Event::StateChanged {
                    to: State::Master, ..
                } => self.set_vips(i, true)?,
                Event::StateChanged {
                    from: State::Master,
                    ..
                } => self.set_vips(i, false)?,
                Event::Announce { .. } => {
                    let announcer = match self.vmacs.get_mut(i) {
                        Some(Some(vmac)) => &mut vmac.announcer,
                        _ => &mut self.announcer,
                    };
                    for vip in &self.routers[i].config().vips {
                        // A lost announcement is repeated by the schedule; not fatal.
                        let _ = announcer.announce(*vip);
                    }
                }
                _ => {}
            }
            on_event(&event);
        }
        Ok(())
    }

    fn set_vips(&mut self, i: usize, install: bool) -> io::Result<()> {
        let router = &self.routers[i];
        let (index, ifname) = match self.vmacs.get(i) {
            Some(Some(vmac)) => (vmac.index, &vmac.name),
            _ => (self.iface.index, &self.iface.name),
        };
        // Accept mode: dropping starts before the addresses arrive and ends after they left.
        let filtered = !router.config().accepts_vip_traffic();
        if install && filtered {
            self.accept.block(ifname, &router.config().vips)?;
        }
        for (vip, prefix) in router.config().vips.iter().zip(&self.prefixes[i]) {
            if install {
                self.table.add(index, *vip, *prefix)?;
            } else {
                self.table.remove(index, *vip, *prefix)?;
            }
        }
        if !install && filtered {
            self.accept.unblock(ifname, &router.config().vips)?;
        }
        Ok(())
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        for vmac in self.vmacs.iter().flatten() {
            // Best effort: the interface may already be gone with its namespace.
            let _ = self.table.delete_link(vmac.index);
        }
    }
}
