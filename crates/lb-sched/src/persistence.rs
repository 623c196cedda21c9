//! IPVS persistence (`ipvsadm -p TIMEOUT -M NETMASK`, `ip_vs_sched_persist`): a client,
//! masked to its network, keeps going to the backend it was first given while a template
//! lives.

use crate::backend::IdIndex;
use crate::{Availability, Backend, BackendId, Error};
use core::net::IpAddr;
use core::time::Duration;
use hashbrown::HashMap;

/// Persistence settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Persistence {
    timeout: Duration,
    v4_mask: u32,
    v6_prefix: u8,
    expire_quiescent: bool,
    max_templates: usize,
}

/// The templates a pool holds at most unless told otherwise (tens of MiB at most).
pub const DEFAULT_MAX_TEMPLATES: usize = 1 << 20;

impl Persistence {
    /// Templates that live `timeout` after their last use, per client address (/32, /128).
    /// ipvsadm's default timeout is 300 seconds.
    pub fn new(timeout: Duration) -> Result<Self, Error> {
        if timeout.is_zero() {
            return Err(Error::InvalidParameter {
                what: "persistence timeout",
                why: "above zero",
            });
        }
        Ok(Persistence {
            timeout,
            v4_mask: u32::MAX,
            v6_prefix: 128,
            expire_quiescent: false,
            max_templates: DEFAULT_MAX_TEMPLATES,
        })
    }

    /// Holds at most `max` templates (default [`DEFAULT_MAX_TEMPLATES`]). When that many are
    /// alive, a new client is scheduled without one, so it is not pinned, until expiry makes
    /// room; the clients that have a template keep it. (IPVS has no bound: a flood of spoofed
    /// sources fills memory with templates.) Refusals are counted
    /// ([`Pool::templates_refused`](crate::Pool::templates_refused)).
    pub fn with_max_templates(mut self, max: usize) -> Result<Self, Error> {
        if max == 0 {
            return Err(Error::InvalidParameter {
                what: "template limit",
                why: "at least 1",
            });
        }
        self.max_templates = max;
        Ok(self)
    }

    /// Groups IPv4 clients by this netmask (`-M 255.255.255.0`). It must be contiguous.
    pub fn with_v4_netmask(mut self, mask: core::net::Ipv4Addr) -> Result<Self, Error> {
        let bits = u32::from(mask);
        if bits.leading_ones() + bits.trailing_zeros() != 32 {
            return Err(Error::InvalidParameter {
                what: "netmask",
                why: "contiguous ones",
            });
        }
        self.v4_mask = bits;
        Ok(self)
    }

    /// Groups IPv6 clients by this prefix length (`-M 64`).
    pub fn with_v6_prefix(mut self, prefix: u8) -> Result<Self, Error> {
        if prefix > 128 {
            return Err(Error::InvalidParameter {
                what: "IPv6 prefix",
                why: "0 to 128",
            });
        }
        self.v6_prefix = prefix;
        Ok(self)
    }

    /// Drops a template when its backend's weight is 0 (sysctl
    /// `expire_quiescent_template`); by default quiesced backends keep their clients.
    pub fn with_expire_quiescent(mut self, expire: bool) -> Self {
        self.expire_quiescent = expire;
        self
    }

    /// The template timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The client's address masked to its persistence group.
    pub fn mask(&self, addr: IpAddr) -> IpAddr {
        match addr {
            IpAddr::V4(v4) => IpAddr::V4((u32::from(v4) & self.v4_mask).into()),
            IpAddr::V6(v6) => {
                let keep = u128::MAX
                    .checked_shl(128 - self.v6_prefix as u32)
                    .unwrap_or(0);
                IpAddr::V6((u128::from(v6) & keep).into())
            }
        }
    }

    /// `ip_vs_check_template`: a template is reused while its backend is available (not
    /// down), unless quiesced templates expire and its weight is 0.
    fn reusable(&self, b: &Backend) -> bool {
        b.availability != Availability::Down && !(self.expire_quiescent && b.weight == 0)
    }
}

#[derive(Clone, Copy, Debug)]
struct Template {
    backend: BackendId,
    expires: Duration,
}

/// The live templates.
#[derive(Clone, Debug)]
pub(crate) struct Templates {
    config: Persistence,
    table: HashMap<IpAddr, Template>,
    /// New templates not made because the table was full.
    pub(crate) refused: u64,
}

impl Templates {
    pub(crate) fn new(config: Persistence) -> Self {
        Templates {
            config,
            table: HashMap::new(),
            refused: 0,
        }
    }

    /// The backend a live, reusable template names for this client; refreshes the template.
    /// A dead or unusable template is dropped.
    pub(crate) fn lookup(
        &mut self,
        client: IpAddr,
        backends: &[Backend],
        index: &IdIndex,
        now: Duration,
    ) -> Option<usize> {
        let key = self.config.mask(client);
        let template = self.table.get_mut(&key)?;
        let pos = index.get(&template.backend).copied();
        match pos {
            Some(pos) if now < template.expires && self.config.reusable(&backends[pos]) => {
                template.expires = now.saturating_add(self.config.timeout);
                Some(pos)
            }
            _ => {
                self.table.remove(&key);
                None
            }
        }
    }

    /// Makes (or replaces) the client's template, unless the table is full.
    pub(crate) fn insert(&mut self, client: IpAddr, backend: BackendId, now: Duration) {
        let key = self.config.mask(client);
        if self.table.len() >= self.config.max_templates && !self.table.contains_key(&key) {
            self.refused += 1;
            return;
        }
        self.table.insert(
            key,
            Template {
                backend,
                expires: now.saturating_add(self.config.timeout),
            },
        );
    }

    /// Keeps a client's template alive while its connection lasts (IPVS re-arms a template
    /// that still controls connections).
    pub(crate) fn touch(&mut self, client: IpAddr, now: Duration) -> bool {
        let key = self.config.mask(client);
        let timeout = self.config.timeout;
        self.table
            .get_mut(&key)
            .map(|t| t.expires = t.expires.max(now.saturating_add(timeout)))
            .is_some()
    }

    pub(crate) fn expire(&mut self, now: Duration) {
        self.table.retain(|_, t| now < t.expires);
    }

    pub(crate) fn removed(&mut self, id: BackendId) {
        self.table.retain(|_, t| t.backend != id);
    }

    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    pub(crate) fn get(&self, client: IpAddr) -> Option<BackendId> {
        self.table.get(&self.config.mask(client)).map(|t| t.backend)
    }
}
