//! The links routers run on: one advert socket and announcer per (interface, family, source
//! address), and which router each advert goes to.

use std::io;
use std::net::IpAddr;

use crate::linux::{AdvertSocket, Announcer, Interface};
use crate::wire::Family;

/// One (interface, family, source address) routers run on: a socket for their adverts and an
/// announcer.
#[derive(Debug)]
pub(super) struct Link {
    pub(super) iface: Interface,
    pub(super) primary: IpAddr,
    pub(super) socket: AdvertSocket,
    pub(super) announcer: Announcer,
    /// Carrier, as last read.
    pub(super) running: bool,
    pub(super) index: LinkIndex,
}

impl Link {
    /// Opens the sockets of `interface` for adverts from `primary`.
    pub(super) fn open(interface: &str, primary: IpAddr) -> io::Result<Link> {
        let named = |e: io::Error| io::Error::new(e.kind(), format!("{interface}: {e}"));
        let iface = Interface::lookup(interface).map_err(named)?;
        let family = Family::of(primary);
        let socket = AdvertSocket::open(&iface, family, primary).map_err(named)?;
        let link_local = match primary {
            IpAddr::V6(ll) => Some(ll),
            IpAddr::V4(_) => None,
        };
        let announcer = Announcer::open(&iface, link_local).map_err(named)?;
        Ok(Link {
            running: iface.running,
            iface,
            primary,
            socket,
            announcer,
            index: LinkIndex::default(),
        })
    }
}

/// Which router of a link takes an advert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct LinkIndex {
    /// Router index by VRID.
    pub(super) by_vrid: [Option<usize>; 256],
    /// The router that counts adverts for VRIDs nobody here runs.
    pub(super) first: usize,
}

impl Default for LinkIndex {
    fn default() -> LinkIndex {
        LinkIndex {
            by_vrid: [None; 256],
            first: 0,
        }
    }
}

impl LinkIndex {
    /// The router for an advert of `vrid`.
    pub(super) fn router(&self, vrid: u8) -> usize {
        self.by_vrid[usize::from(vrid)].unwrap_or(self.first)
    }
}

/// Indexes `links` links for routers where router `r` (with VRID `vrids[r]`) runs on link
/// `link_of[r]`: one [`LinkIndex`] per link still used, `None` for a link no router uses
/// (to be closed). `link_of` is renumbered in place to the links that remain, in order.
pub(super) fn index_links(
    link_of: &mut [usize],
    vrids: &[u8],
    links: usize,
) -> Vec<Option<LinkIndex>> {
    let mut index: Vec<Option<LinkIndex>> = vec![None; links];
    for (r, (&l, &vrid)) in link_of.iter().zip(vrids).enumerate() {
        let link = index[l].get_or_insert_with(|| LinkIndex {
            first: r,
            ..LinkIndex::default()
        });
        link.by_vrid[usize::from(vrid)] = Some(r);
    }
    let mut renumbered = Vec::with_capacity(links);
    let mut next = 0;
    for slot in &index {
        renumbered.push(next);
        if slot.is_some() {
            next += 1;
        }
    }
    for l in link_of.iter_mut() {
        *l = renumbered[*l];
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adverts_go_by_vrid_and_strangers_to_the_first_router() {
        let mut link_of = [0, 1, 0];
        let index = index_links(&mut link_of, &[51, 51, 52], 2);
        let (a, b) = (index[0].as_ref().unwrap(), index[1].as_ref().unwrap());
        assert_eq!((a.router(51), a.router(52), a.router(9)), (0, 2, 0));
        assert_eq!((b.router(51), b.router(9)), (1, 1));
        assert_eq!(link_of, [0, 1, 0]);
    }

    #[test]
    fn an_unused_link_is_dropped_and_the_rest_renumbered() {
        // Routers were removed: nobody runs on links 0 and 2 any more.
        let mut link_of = [3, 1, 3];
        let index = index_links(&mut link_of, &[7, 8, 9], 4);
        assert_eq!(
            index.iter().map(Option::is_some).collect::<Vec<_>>(),
            [false, true, false, true]
        );
        assert_eq!(link_of, [1, 0, 1]);
        let last = index[3].as_ref().unwrap();
        assert_eq!((last.first, last.router(9), last.router(8)), (0, 2, 0));
    }

    #[test]
    fn no_router_no_link() {
        let index = index_links(&mut [], &[], 2);
        assert_eq!(index, [None, None]);
    }
}
