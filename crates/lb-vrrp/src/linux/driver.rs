//! The run loop: virtual routers on any interfaces, in both families, and their sync groups,
//! in one thread.

mod change;
mod link;

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::builder::DriverBuilder;
use super::vmac::Vmac;
use super::{AcceptFilter, AdvertSocket, Interface, RouteNetlink};
use crate::Config;
use crate::event::{Event, State};
use crate::router::Router;
use crate::sync_group::Members;
use crate::wire::MAX_LEN;
pub use change::Routers;
use link::Link;

/// The longest a wait lasts, so a stop request and link changes are seen promptly.
const MAX_WAIT: Duration = Duration::from_millis(20);
/// How often the link state is read.
const LINK_CHECK: Duration = Duration::from_millis(200);

/// What the run loop reports to and asks of its caller ([`Driver::run_handler`]).
pub trait Handler {
    /// An event, after the driver acted on it (addresses installed, removed, announced), with
    /// the index (in [`Driver::routers`]) of the router it comes from; `None` for
    /// [`Event::GroupStateChanged`], which names its group.
    fn event(&mut self, router: Option<usize>, event: &Event);

    /// Called at least every 20 ms: the place to feed tracked inputs
    /// ([`Router::set_track`]) and to add and remove routers or regroup them while the
    /// driver runs ([`Routers`]). What it changes is acted on at once.
    fn tick(&mut self, routers: &mut Routers<'_>);
}

/// [`Handler`] made of [`Driver::run_indexed`]'s closures.
struct Callbacks<'a> {
    on_event: &'a mut dyn FnMut(Option<usize>, &Event),
    on_tick: &'a mut dyn FnMut(Duration, &mut [Router]),
}

impl Handler for Callbacks<'_> {
    fn event(&mut self, router: Option<usize>, event: &Event) {
        (self.on_event)(router, event);
    }

    fn tick(&mut self, routers: &mut Routers<'_>) {
        let now = routers.now();
        (self.on_tick)(now, routers.routers_mut());
    }
}

/// Where router `r` runs, beside `routers[r]`.
#[derive(Debug)]
struct Slot {
    /// `links[link]` carries its adverts.
    link: usize,
    /// `prefixes[i]`: the prefix length of its `vips[i]`.
    prefixes: Vec<u8>,
    /// Its sync group's index.
    group: Option<usize>,
    /// Its virtual-MAC macvlan, when enabled.
    vmac: Option<Vmac>,
}

/// Runs [`Router`]s in the calling thread, on any interfaces and in both families: sends and
/// receives their adverts on one socket per (interface, family, source address) (handing each
/// advert to the router with its VRID there), waits on all of them at once, installs, removes and announces
/// the virtual addresses, turns a link without carrier into FAULT, and runs sync groups
/// (members change state together with [`SyncGroup`](crate::SyncGroup)'s rules).
///
/// [`Driver::new`] and [`Driver::with_routers`] run routers on one interface;
/// [`Driver::builder`] anything else. Time for the routers is the time since the driver was
/// created. While it runs, [`Handler::tick`] may add, remove and regroup routers
/// ([`Routers`]) without disturbing the others.
#[derive(Debug)]
pub struct Driver {
    routers: Vec<Router>,
    /// `slots[r]`: where `routers[r]` runs.
    slots: Vec<Slot>,
    links: Vec<Link>,
    groups: Vec<Members>,
    table: RouteNetlink,
    /// Accept mode for the routers that must not accept traffic to their addresses.
    accept: AcceptFilter,
    /// Every router gets a virtual MAC ([`enable_vmac`](Self::enable_vmac)).
    vmac: bool,
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

    /// Several routers (at most 255 per family, with distinct VRIDs) on `interface`, each with
    /// its virtual addresses' prefix lengths.
    pub fn with_routers(interface: &str, routers: Vec<(Config, Vec<u8>)>) -> io::Result<Driver> {
        let mut builder = Driver::builder();
        for (config, prefixes) in routers {
            builder.router(interface, config, prefixes);
        }
        builder.build()
    }

    /// Routers on several interfaces and in both families, and sync groups of them.
    pub fn builder() -> DriverBuilder {
        DriverBuilder::default()
    }

    /// Opens what a checked `builder` needs: one socket and announcer per (interface,
    /// family, source address), one netlink socket.
    pub(super) fn open(builder: DriverBuilder) -> io::Result<Driver> {
        let now = Instant::now();
        let mut driver = Driver {
            routers: Vec::with_capacity(builder.routers.len()),
            slots: Vec::with_capacity(builder.routers.len()),
            links: Vec::new(),
            groups: Vec::new(),
            table: RouteNetlink::open()?,
            accept: AcceptFilter::new(),
            vmac: false,
            epoch: now,
            link_checked: now,
            tx_buf: Vec::with_capacity(MAX_LEN),
            rx_buf: vec![0; 65_536],
            send_errors: 0,
            bad_ip_headers: 0,
        };
        for spec in builder.routers {
            driver.add_router(&spec.interface, spec.config, spec.prefixes)?;
        }
        driver.set_sync_groups(builder.groups)?;
        Ok(driver)
    }

    /// Gives every router its virtual MAC, `00-00-5e-00-01-VRID` (IPv4) or
    /// `00-00-5e-00-02-VRID` (IPv6), as keepalived's `use_vmac`: a private-mode macvlan
    /// (`vrrp.VRID`, `vrrp6.VRID`) on the interface carries the router's adverts, its
    /// gratuitous ARPs or unsolicited neighbour advertisements and its virtual addresses, so
    /// neighbours keep one MAC for the VIP across failovers. The interface settings are
    /// keepalived's (see the `vmac` module: `arp_ignore` / `arp_announce` for IPv4, no
    /// generated link-local address and the parent's one for IPv6). Routers added later get
    /// theirs too. A macvlan is deleted with its router, or when the driver is dropped. Call
    /// before [`run`](Self::run).
    pub fn enable_vmac(&mut self) -> io::Result<()> {
        self.vmac = true;
        for (router, slot) in self.routers.iter().zip(&mut self.slots) {
            if slot.vmac.is_none() {
                let parent = &self.links[slot.link].iface;
                slot.vmac = Some(Vmac::create(&mut self.table, parent, router.config())?);
            }
        }
        Ok(())
    }

    /// The first router: state, counters, configuration. Panics when there is none (only
    /// [`Routers::remove`] leaves a driver without routers).
    pub fn router(&self) -> &Router {
        &self.routers[0]
    }

    /// The routers: in the order given, less those removed, then those added.
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
        self.run_indexed(stop, &mut |_, event| on_event(event), on_tick)
    }

    /// [`run_with`](Self::run_with), handing `on_event` the index (in
    /// [`routers`](Self::routers)) of the router each event comes from; `None` for
    /// [`Event::GroupStateChanged`], which names its group.
    pub fn run_indexed(
        &mut self,
        stop: &AtomicBool,
        on_event: &mut dyn FnMut(Option<usize>, &Event),
        on_tick: &mut dyn FnMut(Duration, &mut [Router]),
    ) -> io::Result<()> {
        self.run_handler(stop, &mut Callbacks { on_event, on_tick })
    }

    /// [`run_indexed`](Self::run_indexed) with one [`Handler`] for events and ticks, whose
    /// tick may also add, remove and regroup routers ([`Routers`]); routers added start
    /// right after the tick.
    pub fn run_handler(&mut self, stop: &AtomicBool, handler: &mut dyn Handler) -> io::Result<()> {
        let mut on_event = |i: Option<usize>, e: &Event| handler.event(i, e);
        for l in 0..self.links.len() {
            self.links[l].running = Interface::lookup(&self.links[l].iface.name)?.running;
        }
        let now = self.now();
        self.start_new(now);
        self.act_on_all(now, &mut on_event)?;
        while !stop.load(Ordering::Relaxed) {
            let now = self.now();
            let next = self.routers.iter().filter_map(Router::poll_timeout).min();
            let wait = next
                .map_or(MAX_WAIT, |t| t.saturating_sub(now))
                .min(MAX_WAIT);
            let mut on_event = |i: Option<usize>, e: &Event| handler.event(i, e);
            if AdvertSocket::wait_any(self.links.iter().map(|l| &l.socket), wait)? {
                for l in 0..self.links.len() {
                    self.receive(l, &mut on_event)?;
                }
            }
            let now = self.now();
            for i in 0..self.routers.len() {
                if self.routers[i].poll_timeout().is_some_and(|t| t <= now) {
                    self.routers[i].handle_timeout(now);
                    self.act_on(i, now, &mut on_event)?;
                }
            }
            handler.tick(&mut Routers::new(self, now));
            let mut on_event = |i: Option<usize>, e: &Event| handler.event(i, e);
            self.start_new(now);
            self.act_on_all(now, &mut on_event)?;
            if self.link_checked.elapsed() >= LINK_CHECK {
                self.link_checked = Instant::now();
                for link in &mut self.links {
                    link.running = Interface::lookup(&link.iface.name).is_ok_and(|i| i.running);
                }
                for (r, slot) in self.routers.iter_mut().zip(&self.slots) {
                    r.set_link(now, self.links[slot.link].running);
                }
                self.act_on_all(now, &mut on_event)?;
            }
        }
        Ok(())
    }

    /// Starts the routers still in Initialize (new ones) on their links' state.
    fn start_new(&mut self, now: Duration) {
        for (r, slot) in self.routers.iter_mut().zip(&self.slots) {
            if r.state() == State::Initialize {
                r.set_link(now, self.links[slot.link].running);
                r.handle_startup(now);
            }
        }
    }

    /// Hands every advert queued on link `l` to its router.
    fn receive(
        &mut self,
        l: usize,
        on_event: &mut dyn FnMut(Option<usize>, &Event),
    ) -> io::Result<()> {
        loop {
            let link = &self.links[l];
            let rx = match link.socket.recv(&mut self.rx_buf) {
                Ok(Some(rx)) => rx,
                Ok(None) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    self.bad_ip_headers += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let bytes = &self.rx_buf[rx.range];
            // Another VRID's advert goes to the link's first router, which counts it.
            let i = link.index.router(bytes.get(1).copied().unwrap_or(0));
            let now = self.epoch.elapsed();
            self.routers[i].handle_advert(now, &rx.meta, bytes);
            self.act_on(i, now, on_event)?;
        }
    }

    /// Graceful stop: masters send their priority-0 adverts and remove their addresses.
    pub fn shutdown(&mut self, on_event: &mut dyn FnMut(&Event)) -> io::Result<()> {
        self.shutdown_indexed(&mut |_, event| on_event(event))
    }

    /// [`shutdown`](Self::shutdown) with router indices, as [`run_indexed`](Self::run_indexed).
    pub fn shutdown_indexed(
        &mut self,
        on_event: &mut dyn FnMut(Option<usize>, &Event),
    ) -> io::Result<()> {
        let now = self.now();
        for r in &mut self.routers {
            r.handle_shutdown(now);
        }
        self.act_on_all(now, on_event)
    }

    /// After an input to router `i`: its sync group's rules, then what it (or its group)
    /// wants done.
    fn act_on(
        &mut self,
        i: usize,
        now: Duration,
        on_event: &mut dyn FnMut(Option<usize>, &Event),
    ) -> io::Result<()> {
        match self.slots[i].group {
            Some(g) => self.act_on_group(g, now, on_event),
            None => self.flush(i, on_event),
        }
    }

    fn act_on_all(
        &mut self,
        now: Duration,
        on_event: &mut dyn FnMut(Option<usize>, &Event),
    ) -> io::Result<()> {
        for g in 0..self.groups.len() {
            self.act_on_group(g, now, on_event)?;
        }
        for i in 0..self.routers.len() {
            if self.slots[i].group.is_none() {
                self.flush(i, on_event)?;
            }
        }
        Ok(())
    }

    fn act_on_group(
        &mut self,
        g: usize,
        now: Duration,
        on_event: &mut dyn FnMut(Option<usize>, &Event),
    ) -> io::Result<()> {
        self.groups[g].propagate(now, &mut self.routers);
        for k in 0..self.groups[g].indices().len() {
            let i = self.groups[g].indices()[k];
            self.flush(i, on_event)?;
        }
        if let Some(event) = self.groups[g].poll_event(g, &self.routers) {
            on_event(None, &event);
        }
        Ok(())
    }

    /// Sends what router `i` wants sent and acts on its events.
    fn flush(
        &mut self,
        i: usize,
        on_event: &mut dyn FnMut(Option<usize>, &Event),
    ) -> io::Result<()> {
        let slot = &self.slots[i];
        let sender = match &slot.vmac {
            Some(vmac) => &vmac.sender,
            None => self.links[slot.link].socket.sender(),
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
                    let slot = &mut self.slots[i];
                    let announcer = match &mut slot.vmac {
                        Some(vmac) => &mut vmac.announcer,
                        None => &mut self.links[slot.link].announcer,
                    };
                    for vip in &self.routers[i].config().vips {
                        // A lost announcement is repeated by the schedule; not fatal.
                        let _ = announcer.announce(*vip);
                    }
                }
                _ => {}
            }
            on_event(Some(i), &event);
        }
        Ok(())
    }

    fn set_vips(&mut self, i: usize, install: bool) -> io::Result<()> {
        let router = &self.routers[i];
        let slot = &self.slots[i];
        let (index, ifname) = match &slot.vmac {
            Some(vmac) => (vmac.index, &vmac.name),
            None => {
                let iface = &self.links[slot.link].iface;
                (iface.index, &iface.name)
            }
        };
        // Accept mode: dropping starts before the addresses arrive and ends after they left.
        let filtered = !router.config().accepts_vip_traffic();
        if install && filtered {
            self.accept.block(ifname, &router.config().vips)?;
        }
        for (vip, prefix) in router.config().vips.iter().zip(&slot.prefixes) {
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
        for vmac in self.slots.iter().filter_map(|s| s.vmac.as_ref()) {
            // Best effort: the interface may already be gone with its namespace.
            let _ = self.table.delete_link(vmac.index);
        }
    }
}
