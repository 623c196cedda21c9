//! The per-packet path: [`Forwarder::process`] takes one received frame and returns what to do
//! with it, rewriting it in place. No allocation, no clock, no I/O.

use core::net::SocketAddr;
use core::time::Duration;

use crate::conn::{Conn, FlowKey, Hit};
use crate::forwarder::{Forwarder, VipKey, ip_addr, live_real};
use crate::frame::Frame;
use crate::rewrite::{Side, Tunnel, clamp_mss, encapsulate, nat};
use crate::scheduler::{RealId, Scheduler};
use crate::service::{Method, NextHop, nanos};
use crate::state::{ConnState, Direction, next_tcp};
use crate::wire::{
    self, ETH_LEN, Family, L4, PROTO_TCP, PROTO_UDP, Packet, Quoted, TCP_RST, TCP_SYN,
};
use crate::{DropReason, icmp};

/// What to do with a frame after [`Forwarder::process`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Verdict {
    /// Send the frame's (rewritten) bytes on `frame.interface`, which now names the egress
    /// interface.
    Transmit,
    /// Drop it; counted under this reason.
    Drop(DropReason),
    /// Not the forwarder's: no virtual service or tracked connection, or a frame it sent
    /// itself. Leave it to the host.
    Ignore,
}

/// What rewriting a packet for its real needs, copied out of the table entry (from its first
/// two cache lines only).
#[derive(Clone, Copy)]
struct Route {
    method: Method,
    raddr: [u8; 16],
    rport: u16,
    flow_hash: u32,
}

impl Route {
    #[inline(always)]
    fn of(c: &Conn) -> Route {
        Route {
            method: c.method,
            raddr: c.raddr,
            rport: c.rport,
            flow_hash: c.flow_hash,
        }
    }
}

/// Where a packet to a real leaves: the egress interface's position in the interface list,
/// the next hop's MAC, and whether the real clamps the MSS of SYNs.
#[derive(Clone, Copy)]
struct Hop {
    egress: usize,
    mac: [u8; 6],
    clamp: bool,
}

impl Flow {
    /// The flow of a TCP segment or UDP datagram; `None` for other packets.
    fn of(l4: &L4) -> Option<Flow> {
        match *l4 {
            L4::Tcp {
                sport,
                dport,
                flags,
                hdr_len,
            } => Some(Flow {
                proto: PROTO_TCP,
                sport,
                dport,
                flags,
                tcp_hdr_len: hdr_len,
            }),
            L4::Udp { sport, dport } => Some(Flow {
                proto: PROTO_UDP,
                sport,
                dport,
                flags: 0,
                tcp_hdr_len: 0,
            }),
            L4::IcmpError | L4::Other => None,
        }
    }
}

/// The interface a frame arrived on: what the datapath needs of it.
#[derive(Clone, Copy)]
struct Ingress {
    index: u32,
    mac: [u8; 6],
}

/// The transport fields of the packet being handled.
#[derive(Clone, Copy)]
struct Flow {
    proto: u8,
    sport: u16,
    dport: u16,
    flags: u8,
    tcp_hdr_len: usize,
}

impl<S: Scheduler> Forwarder<S> {
    /// Handles one frame received on `frame.interface` at time `now` (any monotonic clock,
    /// the same for every call). The frame is rewritten in place when the verdict is
    /// [`Verdict::Transmit`].
    pub fn process(&mut self, now: Duration, frame: &mut Frame) -> Verdict {
        self.stats.received += 1;
        let verdict = self.handle(now, frame);
        match verdict {
            Verdict::Transmit => self.stats.forwarded += 1,
            Verdict::Drop(reason) => self.stats.drop(reason),
            Verdict::Ignore => self.stats.ignored += 1,
        }
        verdict
    }

    /// A hint before [`process`](Self::process) of a batch: starts loading the
    /// connection-table memory each frame's lookup will read (its index slot, then its
    /// connection), so that the cache misses of a batch overlap instead of coming one after
    /// another; once the table outgrows the caches they are most of a lookup's cost. It
    /// changes nothing else: leaving it out only costs time.
    pub fn prefetch(&self, frames: &[Frame]) {
        const CHUNK: usize = 32;
        let mut hashes = [None; CHUNK];
        for chunk in frames.chunks(CHUNK) {
            for (frame, hash) in chunk.iter().zip(&mut hashes) {
                *hash = self.flow_hash(frame);
                if let Some(h) = *hash {
                    self.conns.prefetch_index(h);
                }
            }
            for h in hashes[..chunk.len()].iter().flatten() {
                self.conns.prefetch_conn(*h);
            }
        }
    }

    /// The connection-table hash of a frame's flow, as [`handle`](Self::handle) computes it.
    fn flow_hash(&self, frame: &Frame) -> Option<u64> {
        let bytes = frame.bytes();
        let pkt = wire::parse(bytes).ok()??;
        let flow = Flow::of(&pkt.l4).filter(|_| !pkt.ip.fragment)?;
        let key = FlowKey::of_packet(bytes, &pkt.ip, flow.proto, flow.sport, flow.dport);
        Some(self.conns.hash(&key))
    }

    #[inline(always)]
    fn handle(&mut self, now: Duration, frame: &mut Frame) -> Verdict {
        let Some(ingress) = self
            .interfaces
            .iter()
            .find(|i| i.index == frame.interface)
            .map(|i| Ingress {
                index: i.index,
                mac: i.mac,
            })
        else {
            return Verdict::Drop(DropReason::UnknownInterface);
        };
        let bytes = frame.bytes();
        let src_mac: Option<[u8; 6]> = bytes.get(6..12).and_then(|m| m.try_into().ok());
        if src_mac == Some(ingress.mac) {
            // Our own transmission, looped back to a capture socket.
            return Verdict::Ignore;
        }
        let pkt = match wire::parse(bytes) {
            Ok(Some(p)) => p,
            Ok(None) => return Verdict::Ignore,
            Err(reason) => return Verdict::Drop(reason),
        };
        if pkt.ip.fragment {
            return if self.is_vip(&pkt.ip.dst, pkt.ip.family) {
                Verdict::Drop(DropReason::Fragment)
            } else {
                Verdict::Ignore
            };
        }
        if let L4::IcmpError = pkt.l4 {
            return match wire::quoted(frame.bytes(), &pkt.ip) {
                Ok(Some(q)) => self.icmp_error(now, frame, &ingress, &pkt, &q),
                Ok(None) => Verdict::Ignore,
                Err(reason) => Verdict::Drop(reason),
            };
        }
        let Some(flow) = Flow::of(&pkt.l4) else {
            return Verdict::Ignore;
        };
        let ip = &pkt.ip;
        if frame.partial_checksum {
            // `parse` checked that the transport header (and so its checksum field) lies
            // within `l4..end`.
            let at = if flow.proto == PROTO_TCP { 16 } else { 6 };
            crate::checksum::complete(&mut frame.bytes_mut()[ip.l4()..ip.end], at);
            frame.partial_checksum = false;
        }
        let key = FlowKey::of_packet(frame.bytes(), ip, flow.proto, flow.sport, flow.dport);
        let hash = self.conns.hash(&key);
        if let Some(hit) = self.conns.lookup_hashed(&key, hash) {
            let expired = self
                .conns
                .get(hit.index)
                .is_none_or(|c| c.expires <= nanos(now));
            if !expired {
                return if hit.reply {
                    self.reply(now, frame, &pkt, flow, hit.index)
                } else {
                    self.inbound(now, frame, &ingress, &pkt, flow, hit.index)
                };
            }
            // Timed out but not swept yet: a packet of a new connection or a late one.
            self.remove_conn(hit.index, now);
            self.stats.expired += 1;
        }
        let Some(service) = self.service_for(flow.proto, ip.family, &ip.dst, flow.dport) else {
            return Verdict::Ignore;
        };
        self.new_connection(now, frame, &ingress, &pkt, flow, (key, hash), service)
    }

    /// Whether `addr` is a VIP or in a firewall-mark service's destination prefix.
    fn is_vip(&self, addr: &[u8; 16], family: Family) -> bool {
        self.vips.contains_key(&(*addr, family))
            || self
                .marks
                .iter()
                .any(|m| m.family == family && u128::from_be_bytes(*addr) & m.mask == m.net)
    }

    /// The service of a new flow: a firewall-mark service first (as IPVS looks up the mark
    /// first), then the exact address and port, then the address on every port.
    fn service_for(&self, proto: u8, family: Family, vip: &[u8; 16], port: u16) -> Option<u32> {
        if let Some(m) = self
            .marks
            .iter()
            .find(|m| m.takes(proto, family, vip, port))
        {
            return Some(m.service);
        }
        let mut k = VipKey {
            proto,
            family,
            vip: *vip,
            port,
            mark: 0,
        };
        if let Some(&i) = self.by_key.get(&k) {
            return Some(i);
        }
        k.port = 0;
        self.by_key.get(&k).copied()
    }

    #[allow(clippy::too_many_arguments)]
    fn new_connection(
        &mut self,
        now: Duration,
        frame: &mut Frame,
        ingress: &Ingress,
        pkt: &Packet,
        flow: Flow,
        (key, hash): (FlowKey, u64),
        service: u32,
    ) -> Verdict {
        // IPVS schedules TCP on a SYN only, never on a RST.
        if flow.proto == PROTO_TCP && (flow.flags & TCP_SYN == 0 || flow.flags & TCP_RST != 0) {
            return Verdict::Drop(DropReason::NoConnection);
        }
        let ip = &pkt.ip;
        let client = SocketAddr::new(ip_addr(&ip.src, ip.family), flow.sport);
        let vaddr = SocketAddr::new(ip_addr(&ip.dst, ip.family), flow.dport);
        let Some(one_packet) = self.services[service as usize]
            .service
            .as_ref()
            .map(|s| s.config.one_packet)
        else {
            return Verdict::Ignore;
        };
        if !one_packet && self.conns.is_full() {
            let Some(victim) = self.conns.victim(nanos(now)) else {
                return Verdict::Drop(DropReason::TableFull);
            };
            self.remove_conn(victim, now);
            self.stats.evicted += 1;
        }
        let slot = &mut self.services[service as usize];
        let service_gen = slot.generation;
        let Some(svc) = slot.service.as_mut() else {
            return Verdict::Ignore;
        };
        let Some(id) = svc.scheduler.pick(client, vaddr, now) else {
            return Verdict::Drop(DropReason::NoReal);
        };
        let Some(real_slot) = svc.reals.get_mut(id as usize) else {
            return Verdict::Drop(DropReason::NoReal);
        };
        let real_gen = real_slot.generation;
        let Some(real) = real_slot.real.as_mut() else {
            return Verdict::Drop(DropReason::NoReal);
        };
        let method = real.config.method;
        // Only NAT rewrites the port; DR and TUN packets keep theirs.
        let rport = match real.config.addr.port() {
            p if p != 0 && method == Method::Nat => p,
            _ => flow.dport,
        };
        let state = if flow.proto == PROTO_TCP {
            next_tcp(ConnState::None, Direction::InputOnly, flow.flags)
        } else {
            ConnState::Udp
        };
        let active = state.is_active();
        let key_out = (method == Method::Nat).then(|| {
            FlowKey::new(
                flow.proto, ip.family, &real.addr, rport, &ip.src, flow.sport,
            )
        });
        let mut client_mac = [0; 6];
        client_mac.copy_from_slice(&frame.bytes()[6..12]);
        let clamp = real.config.clamp_mss;
        let hop = hop_of(&self.interfaces, real.next_hop, clamp);
        let mut conn = Conn {
            key_in: key,
            key_out,
            family: ip.family,
            proto: flow.proto,
            client: ip.src,
            cport: flow.sport,
            vip: ip.dst,
            vport: flow.dport,
            raddr: real.addr,
            rport,
            method,
            service,
            service_gen,
            real: id,
            real_gen,
            state,
            no_output: true,
            active,
            expires: nanos(now).saturating_add(self.settings.timeouts.nanos(state)),
            client_if: ingress.index,
            client_mac,
            live: true,
            flow_hash: hash as u32,
            hash_in: hash,
            hash_out: 0,
            route_gen: 0,
            nh_mac: [0; 6],
            egress: 0,
            clamp,
        };
        if let Some(h) = hop {
            cache_route(&mut conn, h, self.route_gen);
        }
        if !one_packet {
            if let Err(reason) = self.conns.insert(&conn) {
                return Verdict::Drop(reason);
            }
            if active {
                real.active += 1;
            } else {
                real.inactive += 1;
            }
            svc.scheduler.conn_opened(id, active);
        }
        svc.counters.conns += 1;
        real.counters.conns += 1;
        let len = ip.total_len();
        svc.counters.count_in(len);
        real.counters.count_in(len);
        self.send_to_real(frame, ingress, pkt, flow, &Route::of(&conn), hop)
    }

    /// A packet from the client side of a tracked connection.
    #[inline(always)]
    fn inbound(
        &mut self,
        now: Duration,
        frame: &mut Frame,
        ingress: &Ingress,
        pkt: &Packet,
        flow: Flow,
        index: u32,
    ) -> Verdict {
        let Some((hop, route)) = self.track(now, index, flow, false, pkt.ip.total_len()) else {
            return Verdict::Drop(DropReason::RealRemoved);
        };
        self.send_to_real(frame, ingress, pkt, flow, &route, hop)
    }

    /// Updates a connection's state, timeout, load counts and traffic counters for a packet
    /// in one direction; returns where packets to its real go (`None` when unknown) and what
    /// rewriting them needs. `None` when its real is gone (the connection then follows
    /// `expire_nodest_conn`). With the route cached (the usual case) this reads the
    /// connection's first two cache lines, and the service and real only for their counters.
    #[inline(always)]
    fn track(
        &mut self,
        now: Duration,
        index: u32,
        flow: Flow,
        reply: bool,
        len: usize,
    ) -> Option<(Option<Hop>, Route)> {
        let c = self.conns.get(index)?;
        let (hop, real_slot) = if c.route_gen == self.route_gen {
            let hop = Hop {
                egress: usize::from(c.egress),
                mac: c.nh_mac,
                clamp: c.clamp,
            };
            (Some(hop), c.real)
        } else {
            self.refresh_route(now, index)?
        };
        let c = self.conns.get_mut(index)?;
        let svc = self
            .services
            .get_mut(c.service as usize)?
            .service
            .as_mut()?;
        let real = svc.reals.get_mut(real_slot as usize)?.real.as_mut()?;
        if flow.proto == PROTO_TCP {
            let dir = if reply {
                c.no_output = false;
                Direction::Output
            } else if c.no_output {
                Direction::InputOnly
            } else {
                Direction::Input
            };
            let state = next_tcp(c.state, dir, flow.flags);
            c.state = state;
            if state.is_active() != c.active {
                c.active = state.is_active();
                if c.active {
                    real.active += 1;
                    real.inactive = real.inactive.saturating_sub(1);
                } else {
                    real.inactive += 1;
                    real.active = real.active.saturating_sub(1);
                }
                svc.scheduler.conn_changed(real_slot, c.active);
            }
        } else if reply {
            c.no_output = false;
        }
        c.expires = nanos(now).saturating_add(self.settings.timeouts.nanos(c.state));
        if reply {
            svc.counters.count_out(len);
            real.counters.count_out(len);
        } else {
            svc.counters.count_in(len);
            real.counters.count_in(len);
        }
        Some((hop, Route::of(c)))
    }

    /// The slow side of [`track`](Self::track), after a change of the configuration: the
    /// connection's live real (rebinding it if it was removed and added back) and its route,
    /// cached in the connection when known. `None` when the real is gone.
    #[cold]
    #[inline(never)]
    fn refresh_route(&mut self, now: Duration, index: u32) -> Option<(Option<Hop>, RealId)> {
        let c = self.conns.get(index)?;
        let (service, service_gen, real_id, real_gen) =
            (c.service, c.service_gen, c.real, c.real_gen);
        let live = self
            .services
            .get(service as usize)
            .filter(|s| s.generation == service_gen)
            .and_then(|s| s.service.as_ref())
            .and_then(|s| s.reals.get(real_id as usize))
            .is_some_and(|r| r.generation == real_gen && r.real.is_some());
        let real_slot = if live {
            real_id
        } else if let Some(slot) = self.bind_live_real(index) {
            slot
        } else {
            if self.settings.expire_nodest_conn {
                self.remove_conn(index, now);
            }
            return None;
        };
        let real = self.services[service as usize]
            .service
            .as_ref()?
            .reals
            .get(real_slot as usize)?
            .real
            .as_ref()?;
        let hop = hop_of(&self.interfaces, real.next_hop, real.config.clamp_mss);
        let route_gen = self.route_gen;
        let c = self.conns.get_mut(index)?;
        if let Some(h) = hop {
            cache_route(c, h, route_gen);
        }
        Some((hop, real_slot))
    }

    /// The connection's real if it is still configured; if it was removed and a real with
    /// the same address and method was added back since, the connection moves to it (as
    /// IPVS revives a removed destination).
    fn bind_live_real(&mut self, index: u32) -> Option<RealId> {
        let c = *self.conns.get(index)?;
        let svc = self.live_service_mut(&c)?;
        if live_real(&mut svc.reals, &c).is_some() {
            return Some(c.real);
        }
        let addr = SocketAddr::new(ip_addr(&c.raddr, c.family), 0);
        let slot = svc.reals.iter().position(|s| {
            s.real.as_ref().is_some_and(|r| {
                r.config.addr.ip() == addr.ip()
                    && r.config.method == c.method
                    && (c.method != Method::Nat
                        || r.config.addr.port() == c.rport
                        || r.config.addr.port() == 0)
            })
        })?;
        let generation = svc.reals[slot].generation;
        let real = svc.reals[slot].real.as_mut()?;
        if c.active {
            real.active += 1;
        } else {
            real.inactive += 1;
        }
        let id = slot as RealId;
        svc.scheduler.conn_opened(id, c.active);
        let cm = self.conns.get_mut(index)?;
        cm.real = id;
        cm.real_gen = generation;
        Some(id)
    }

    /// Rewrites a client's packet for its real server according to the method.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn send_to_real(
        &mut self,
        frame: &mut Frame,
        ingress: &Ingress,
        pkt: &Packet,
        flow: Flow,
        conn: &Route,
        hop: Option<Hop>,
    ) -> Verdict {
        let Some(Hop {
            egress,
            mac: nh_mac,
            clamp,
        }) = hop
        else {
            return Verdict::Drop(DropReason::NoNextHop);
        };
        // Its fields are read where needed: DR needs the index and MAC only.
        let Some(out) = self.interfaces.get(egress) else {
            return Verdict::Drop(DropReason::NoNextHop);
        };
        let (out_index, out_mac) = (out.index, out.mac);
        let ip = &pkt.ip;
        match conn.method {
            Method::Dr => {}
            Method::Nat => {
                if !frame.resize(ETH_LEN + ip.total_len()) {
                    return Verdict::Drop(DropReason::Truncated);
                }
                nat(frame.bytes_mut(), ip, Side::Dst, &conn.raddr, conn.rport);
            }
            Method::Tunnel(encap) => {
                let overhead = encap.overhead(ip.family == Family::V6);
                let (mtu, ipv4, ipv6) = (out.mtu, out.ipv4, out.ipv6);
                let room = usize::from(mtu).saturating_sub(overhead);
                if clamp && flow.proto == PROTO_TCP && flow.flags & TCP_SYN != 0 {
                    let headers = if ip.family == Family::V6 { 60 } else { 40 };
                    let mss = room.saturating_sub(headers).min(0xffff) as u16;
                    clamp_mss(frame.bytes_mut(), ip, flow.tcp_hdr_len, mss);
                }
                if ip.total_len() > room {
                    return self.too_big(frame, ingress, pkt, room as u32);
                }
                // Built in registers: see `wire::v4_in_16`.
                let src = match (ip.family, ipv4, ipv6) {
                    (Family::V4, Some(a), _) => {
                        u128::from(u32::from_le_bytes(a.octets())).to_le_bytes()
                    }
                    (Family::V6, _, Some(a)) => a.octets(),
                    _ => return Verdict::Drop(DropReason::NoTunnelSource),
                };
                self.ip_id = self.ip_id.wrapping_add(1);
                let t = Tunnel {
                    encap,
                    src: &src,
                    dst: &conn.raddr,
                    ip_id: self.ip_id,
                    flow_hash: conn.flow_hash,
                };
                if let Err(reason) = encapsulate(frame, ip, t) {
                    return Verdict::Drop(reason);
                }
            }
        }
        frame.set_macs(&nh_mac, &out_mac);
        frame.interface = out_index;
        Verdict::Transmit
    }

    /// The packet cannot be tunnelled whole: tell the client (unless it may be fragmented,
    /// which this datapath does not do).
    fn too_big(&mut self, frame: &mut Frame, ingress: &Ingress, pkt: &Packet, mtu: u32) -> Verdict {
        let ip = &pkt.ip;
        let may_fragment = ip.family == Family::V4 && frame.bytes()[ip.off + 6] & 0x40 == 0;
        if may_fragment || matches!(pkt.l4, L4::IcmpError) {
            return Verdict::Drop(DropReason::TooBig);
        }
        self.ip_id = self.ip_id.wrapping_add(1);
        if icmp::too_big(frame, ip, mtu, &ingress.mac, self.ip_id) {
            // The packet is dropped and counted; the frame now holds the ICMP error.
            self.stats.drop(DropReason::TooBig);
            self.stats.icmp_sent += 1;
            frame.interface = ingress.index;
            Verdict::Transmit
        } else {
            Verdict::Drop(DropReason::TooBig)
        }
    }

    /// A NAT reply: the real's address and port become the VIP's again, and the frame goes
    /// back the way the client's came.
    #[inline(always)]
    fn reply(
        &mut self,
        now: Duration,
        frame: &mut Frame,
        pkt: &Packet,
        flow: Flow,
        index: u32,
    ) -> Verdict {
        if self
            .track(now, index, flow, true, pkt.ip.total_len())
            .is_none()
        {
            return Verdict::Drop(DropReason::RealRemoved);
        }
        let Some(c) = self.conns.get(index) else {
            return Verdict::Drop(DropReason::RealRemoved);
        };
        let (vip, vport, client_mac) = (c.vip, c.vport, c.client_mac);
        let Some(out) = self.interface(c.client_if) else {
            return Verdict::Drop(DropReason::UnknownInterface);
        };
        if !frame.resize(ETH_LEN + pkt.ip.total_len()) {
            return Verdict::Drop(DropReason::Truncated);
        }
        nat(frame.bytes_mut(), &pkt.ip, Side::Src, &vip, vport);
        frame.set_macs(&client_mac, &out.mac);
        frame.interface = out.index;
        Verdict::Transmit
    }

    /// An ICMP error quoting a packet of a tracked connection: to the real (as is for DR and
    /// TUN, translated for NAT) when it quotes a packet the client received, or to the client
    /// (translated) when a NAT real sent it about a packet it received.
    fn icmp_error(
        &mut self,
        now: Duration,
        frame: &mut Frame,
        ingress: &Ingress,
        pkt: &Packet,
        q: &Quoted,
    ) -> Verdict {
        let qi = &q.ip;
        // The quoted packet travelled the other way: reverse it to get our direction's key.
        let key = FlowKey::new(qi.proto, qi.family, &qi.dst, q.dport, &qi.src, q.sport);
        let Some(Hit { index, reply }) = self.conns.lookup(&key) else {
            return if self.is_vip(&pkt.ip.dst, pkt.ip.family) {
                Verdict::Drop(DropReason::UntrackedIcmp)
            } else {
                Verdict::Ignore
            };
        };
        // ICMP does not move TCP state: an empty flag set is "no event".
        let flow = Flow {
            proto: qi.proto,
            sport: q.dport,
            dport: q.sport,
            flags: 0,
            tcp_hdr_len: 0,
        };
        let Some((hop, conn)) = self.track(now, index, flow, reply, pkt.ip.total_len()) else {
            return Verdict::Drop(DropReason::RealRemoved);
        };
        if !frame.resize(ETH_LEN + pkt.ip.total_len()) {
            return Verdict::Drop(DropReason::Truncated);
        }
        if reply {
            let Some(c) = self.conns.get(index) else {
                return Verdict::Drop(DropReason::RealRemoved);
            };
            let (vip, vport, client_mac) = (c.vip, c.vport, c.client_mac);
            let Some(out) = self.interface(c.client_if) else {
                return Verdict::Drop(DropReason::UnknownInterface);
            };
            icmp::translate(frame.bytes_mut(), &pkt.ip, q, Side::Src, &vip, vport);
            frame.set_macs(&client_mac, &out.mac);
            frame.interface = out.index;
            return Verdict::Transmit;
        }
        if conn.method == Method::Nat {
            icmp::translate(
                frame.bytes_mut(),
                &pkt.ip,
                q,
                Side::Dst,
                &conn.raddr,
                conn.rport,
            );
            let Some(h) = hop else {
                return Verdict::Drop(DropReason::NoNextHop);
            };
            let Some(egress) = self.interfaces.get(h.egress) else {
                return Verdict::Drop(DropReason::NoNextHop);
            };
            frame.set_macs(&h.mac, &egress.mac);
            frame.interface = egress.index;
            return Verdict::Transmit;
        }
        // No MSS clamping: the quoted segment is not the packet's own header.
        let hop = hop.map(|h| Hop { clamp: false, ..h });
        self.send_to_real(frame, ingress, pkt, flow, &conn, hop)
    }
}

/// Where packets to a real with this next hop leave; `None` when the next hop or its
/// interface is unknown.
fn hop_of(
    interfaces: &[crate::InterfaceConfig],
    next_hop: Option<NextHop>,
    clamp: bool,
) -> Option<Hop> {
    let nh = next_hop?;
    Some(Hop {
        egress: interfaces.iter().position(|i| i.index == nh.interface)?,
        mac: nh.mac,
        clamp,
    })
}

/// Caches a connection's route under the current route generation (unless the interface's
/// position does not fit the cache: then every packet takes the slow side).
#[inline]
fn cache_route(c: &mut Conn, hop: Hop, route_gen: u32) {
    if let Ok(egress) = u16::try_from(hop.egress) {
        c.route_gen = route_gen;
        c.egress = egress;
        c.nh_mac = hop.mac;
        c.clamp = hop.clamp;
    }
}
