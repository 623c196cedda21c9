//! Adding and removing the virtual addresses, and virtual-MAC macvlans, through rtnetlink.

use std::io;
use std::net::IpAddr;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage, AddressScope};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoMacVlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage, MacVlanMode,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use super::interface::is_link_local;

/// A route netlink socket that adds and removes addresses on interfaces, and creates and
/// deletes the macvlan interfaces that carry a virtual MAC.
#[derive(Debug)]
pub struct RouteNetlink {
    socket: Socket,
    seq: u32,
}

impl RouteNetlink {
    /// Opens the socket in the current network namespace.
    pub fn open() -> io::Result<RouteNetlink> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(RouteNetlink { socket, seq: 0 })
    }

    /// Adds `addr/prefix` to interface `index` (replacing an identical one; IPv6 without
    /// duplicate address detection, so it is usable at once).
    pub fn add(&mut self, index: u32, addr: IpAddr, prefix: u8) -> io::Result<()> {
        let msg = address_message(index, addr, prefix);
        self.request(
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
    }

    /// Removes `addr/prefix` from interface `index`; an address already gone is not an error.
    pub fn remove(&mut self, index: u32, addr: IpAddr, prefix: u8) -> io::Result<()> {
        let msg = address_message(index, addr, prefix);
        match self.request(RouteNetlinkMessage::DelAddress(msg), 0) {
            Err(e) if e.raw_os_error() == Some(nix::libc::EADDRNOTAVAIL) => Ok(()),
            other => other,
        }
    }

    /// Creates macvlan `name` (private mode) on interface `parent` with MAC `mac`, down (see
    /// [`set_up`](Self::set_up)), and returns its index. A leftover interface of that name (a
    /// previous run killed) is replaced.
    pub fn create_macvlan(&mut self, parent: u32, name: &str, mac: [u8; 6]) -> io::Result<u32> {
        if let Ok(old) = nix::net::if_::if_nametoindex(name) {
            self.delete_link(old)?;
        }
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_owned()));
        msg.attributes.push(LinkAttribute::Link(parent));
        msg.attributes.push(LinkAttribute::Address(mac.to_vec()));
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::MacVlan),
            LinkInfo::Data(InfoData::MacVlan(vec![InfoMacVlan::Mode(
                MacVlanMode::Private,
            )])),
        ]));
        self.request(RouteNetlinkMessage::NewLink(msg), NLM_F_CREATE | NLM_F_EXCL)?;
        nix::net::if_::if_nametoindex(name).map_err(io::Error::from)
    }

    /// Sets interface `index` up.
    pub fn set_up(&mut self, index: u32) -> io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        self.request(RouteNetlinkMessage::SetLink(msg), 0)
    }

    /// Deletes interface `index`.
    pub fn delete_link(&mut self, index: u32) -> io::Result<()> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        self.request(RouteNetlinkMessage::DelLink(msg), 0)
    }

    fn request(&mut self, payload: RouteNetlinkMessage, flags: u16) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let mut msg = NetlinkMessage::from(payload);
        msg.header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        msg.header.sequence_number = self.seq;
        msg.finalize();
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.serialize(&mut buf);
        self.socket.send(&buf, 0)?;
        loop {
            let (reply, _) = self.socket.recv_from_full()?;
            let mut offset = 0;
            while offset < reply.len() {
                let parsed =
                    NetlinkMessage::<RouteNetlinkMessage>::deserialize(&reply[offset..])
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let len = parsed.header.length as usize;
                if parsed.header.sequence_number == self.seq {
                    if let NetlinkPayload::Error(e) = parsed.payload {
                        return match e.code {
                            None => Ok(()),
                            Some(_) => Err(e.to_io()),
                        };
                    }
                }
                if len == 0 {
                    break;
                }
                offset += len;
            }
        }
    }
}

fn address_message(index: u32, addr: IpAddr, prefix: u8) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.index = index;
    msg.header.prefix_len = prefix;
    match addr {
        IpAddr::V4(_) => {
            msg.header.family = AddressFamily::Inet;
            msg.header.scope = AddressScope::Universe;
            msg.attributes.push(AddressAttribute::Local(addr));
            msg.attributes.push(AddressAttribute::Address(addr));
        }
        IpAddr::V6(v6) => {
            msg.header.family = AddressFamily::Inet6;
            msg.header.scope = if is_link_local(v6) {
                AddressScope::Link
            } else {
                AddressScope::Universe
            };
            msg.attributes.push(AddressAttribute::Address(addr));
            msg.attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
    }
    msg
}
