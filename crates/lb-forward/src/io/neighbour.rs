//! Next hops from the kernel: the route to a real server (`RTM_GETROUTE`, like `ip route get`)
//! gives the egress interface and gateway, the neighbour table (`RTM_GETNEIGH`) the gateway's
//! MAC. When the neighbour is not resolved yet, a datagram to it makes the kernel run ARP / ND.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV6, UdpSocket};
use std::time::Duration;

use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::protocols::NETLINK_ROUTE;
use netlink_sys::{Socket, SocketAddr};

use crate::{Error, NextHop};

/// Resolves real servers' next hops through rtnetlink.
pub struct NextHopResolver {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl NextHopResolver {
    /// Opens a route netlink socket.
    pub fn new() -> Result<Self, Error> {
        let mut socket =
            Socket::new(NETLINK_ROUTE).map_err(|e| Error::io("opening rtnetlink", e))?;
        socket
            .bind_auto()
            .map_err(|e| Error::io("binding rtnetlink", e))?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(|e| Error::io("connecting rtnetlink", e))?;
        Ok(NextHopResolver {
            socket,
            seq: 0,
            buf: vec![0; 1 << 16],
        })
    }

    /// The next hop toward `addr`: `Ok(None)` when the kernel has a route but no MAC yet
    /// (resolution was triggered; ask again shortly). `interfaces` limits the egress to the
    /// forwarder's interfaces.
    pub fn resolve(&mut self, addr: IpAddr) -> Result<Option<NextHop>, Error> {
        let (interface, gateway) = self.route(addr)?;
        let neighbour = gateway.unwrap_or(addr);
        if let Some(mac) = self.neighbour(interface, neighbour)? {
            return Ok(Some(NextHop { interface, mac }));
        }
        // Any datagram makes the kernel resolve the neighbour; the discard port is harmless. An
        // IPv6 gateway is often link-local: it needs the egress interface as its scope.
        let (bind, to): (IpAddr, std::net::SocketAddr) = match neighbour {
            IpAddr::V4(a) => (Ipv4Addr::UNSPECIFIED.into(), (a, 9).into()),
            IpAddr::V6(a) => (
                Ipv6Addr::UNSPECIFIED.into(),
                SocketAddrV6::new(a, 9, 0, interface).into(),
            ),
        };
        if let Ok(sock) = UdpSocket::bind((bind, 0)) {
            let _ = sock.send_to(&[], to);
        }
        Ok(None)
    }

    /// Sets the next hop of every real of `fw` from the kernel's tables (waiting up to `wait`
    /// per real for neighbour resolution). A real reached through an interface `fw` does not
    /// use gets none. Returns what a driver should tell its operator.
    pub fn refresh<S: crate::Scheduler>(
        &mut self,
        fw: &mut crate::Forwarder<S>,
        wait: Duration,
    ) -> Vec<String> {
        let mut notes = Vec::new();
        for addr in fw.real_addresses() {
            match self.resolve_wait(addr, wait) {
                Ok(Some(nh)) if fw.interfaces().iter().any(|i| i.index == nh.interface) => {
                    fw.set_next_hop(addr, Some(nh))
                }
                Ok(Some(nh)) => {
                    notes.push(format!(
                        "{addr} is reached through interface #{}, which is not one of ours",
                        nh.interface
                    ));
                    fw.set_next_hop(addr, None);
                }
                Ok(None) if !wait.is_zero() => {
                    notes.push(format!("no MAC for {addr} yet; retrying every second"));
                }
                Ok(None) => {}
                Err(e) => notes.push(format!("resolving {addr}: {e}")),
            }
        }
        notes
    }

    /// [`resolve`](Self::resolve), retrying for up to `wait` while resolution runs.
    pub fn resolve_wait(&mut self, addr: IpAddr, wait: Duration) -> Result<Option<NextHop>, Error> {
        let step = Duration::from_millis(20);
        let mut waited = Duration::ZERO;
        loop {
            if let Some(nh) = self.resolve(addr)? {
                return Ok(Some(nh));
            }
            if waited >= wait {
                return Ok(None);
            }
            std::thread::sleep(step);
            waited += step;
        }
    }

    fn request(
        &mut self,
        payload: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, Error> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.seq;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::from(payload));
        msg.finalize();
        let mut out = vec![0; msg.buffer_len()];
        msg.serialize(&mut out);
        self.socket
            .send(&out, 0)
            .map_err(|e| Error::io("rtnetlink send", e))?;
        let mut replies = Vec::new();
        loop {
            let size = self
                .socket
                .recv(&mut &mut self.buf[..], 0)
                .map_err(|e| Error::io("rtnetlink recv", e))?;
            let mut offset = 0;
            while offset < size {
                let msg =
                    NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[offset..size])
                        .map_err(|e| {
                            Error::io("rtnetlink parse", std::io::Error::other(e.to_string()))
                        })?;
                let len = msg.header.length as usize;
                if msg.header.sequence_number == self.seq {
                    match msg.payload {
                        NetlinkPayload::Done(_) => return Ok(replies),
                        NetlinkPayload::Error(err) => {
                            return match err.code {
                                None => Ok(replies),
                                Some(code) => Err(Error::io(
                                    "rtnetlink",
                                    std::io::Error::from_raw_os_error(-code.get()),
                                )),
                            };
                        }
                        NetlinkPayload::InnerMessage(inner) => {
                            replies.push(inner);
                            if flags & NLM_F_DUMP == 0 {
                                return Ok(replies);
                            }
                        }
                        _ => {}
                    }
                }
                if len == 0 {
                    break;
                }
                offset += len;
            }
        }
    }

    /// The MTU of an interface (`RTM_GETLINK`).
    pub fn link_mtu(&mut self, index: u32) -> Result<u32, Error> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        let replies = self.request(RouteNetlinkMessage::GetLink(msg), NLM_F_REQUEST)?;
        for reply in replies {
            if let RouteNetlinkMessage::NewLink(link) = reply {
                for attr in link.attributes {
                    if let LinkAttribute::Mtu(mtu) = attr {
                        return Ok(mtu);
                    }
                }
            }
        }
        Err(Error::io(
            format!("no MTU for interface #{index}"),
            std::io::ErrorKind::NotFound.into(),
        ))
    }

    fn route(&mut self, addr: IpAddr) -> Result<(u32, Option<IpAddr>), Error> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = family(addr);
        msg.header.destination_prefix_length = if addr.is_ipv4() { 32 } else { 128 };
        msg.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(addr)));
        let replies = self.request(RouteNetlinkMessage::GetRoute(msg), NLM_F_REQUEST)?;
        for reply in replies {
            if let RouteNetlinkMessage::NewRoute(route) = reply {
                let mut oif = None;
                let mut gateway = None;
                for attr in route.attributes {
                    match attr {
                        RouteAttribute::Oif(i) => oif = Some(i),
                        RouteAttribute::Gateway(RouteAddress::Inet(a)) => gateway = Some(a.into()),
                        RouteAttribute::Gateway(RouteAddress::Inet6(a)) => gateway = Some(a.into()),
                        _ => {}
                    }
                }
                if let Some(oif) = oif {
                    return Ok((oif, gateway));
                }
            }
        }
        Err(Error::io(
            format!("no route to {addr}"),
            std::io::ErrorKind::NotFound.into(),
        ))
    }

    fn neighbour(&mut self, interface: u32, addr: IpAddr) -> Result<Option<[u8; 6]>, Error> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = family(addr);
        let replies = self.request(
            RouteNetlinkMessage::GetNeighbour(msg),
            NLM_F_REQUEST | NLM_F_DUMP,
        )?;
        for reply in replies {
            let RouteNetlinkMessage::NewNeighbour(n) = reply else {
                continue;
            };
            if n.header.ifindex != interface
                || matches!(
                    n.header.state,
                    NeighbourState::Incomplete | NeighbourState::Failed | NeighbourState::None
                )
            {
                continue;
            }
            let mut dst = None;
            let mut mac = None;
            for attr in n.attributes {
                match attr {
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => {
                        dst = Some(IpAddr::from(a))
                    }
                    NeighbourAttribute::Destination(NeighbourAddress::Inet6(a)) => {
                        dst = Some(IpAddr::from(a))
                    }
                    NeighbourAttribute::LinkLocalAddress(l) if l.len() == 6 => {
                        let mut m = [0; 6];
                        m.copy_from_slice(&l);
                        mac = Some(m);
                    }
                    _ => {}
                }
            }
            if dst == Some(addr) && mac.is_some() {
                return Ok(mac);
            }
        }
        Ok(None)
    }
}

fn family(addr: IpAddr) -> AddressFamily {
    match addr {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}
