//! Accept mode through nftables: a non-owner master without Accept_Mode drops what is
//! addressed to its virtual addresses (RFC 9568 §6.4.3; RFC 3768 §6.4.3 for VRRPv2), and still
//! takes IPv6 neighbour solicitations and advertisements (RFC 9568).
//!
//! The rules are keepalived 2.2.7's (`keepalived/vrrp/vrrp_nftables.c`), in a table of this
//! driver's own instead of keepalived's shared `keepalived` table:
//!
//! ```text
//! table ip|ip6 lb_vrrp_PID_N {
//!   set vips { type ipv4_addr | ipv6_addr }
//!   set vips_link_local { type ipv6_addr . ifname }            # ip6 only
//!   chain in { type filter hook input priority -1; policy accept;
//!     icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept     # ip6 only
//!     ip6 daddr fe80::/10 goto in_link_local                           # ip6 only
//!     ip daddr @vips drop }
//!   chain out { type filter hook output priority -1; policy accept;
//!     icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept     # ip6 only
//!     ip6 saddr fe80::/10 goto out_link_local                          # ip6 only
//!     ip saddr @vips drop }
//!   chain in_link_local { ip6 daddr . iifname @vips_link_local drop }
//!   chain out_link_local { ip6 saddr . oifname @vips_link_local drop }
//! }
//! ```
//!
//! Priority -1 is keepalived's default (`nftables_priority`): before the usual filter chains.
//! ARP is not an inet hook, so the master still answers ARP for its addresses. As with
//! keepalived, the output rule also drops what the host itself sends from a virtual address:
//! an IPv6 virtual address inside the interface's own /64 can become the kernel's preferred
//! source address for that prefix (the newest address wins the tie), so give such a master
//! its IPv6 virtual addresses in another prefix, or accept mode. Each change is
//! one `nft -j -f -` batch (through the `nftables` crate), so it costs a process start (a few
//! milliseconds) where keepalived talks netlink directly.

use std::borrow::Cow;
use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};

use nftables::batch::Batch;
use nftables::expr::{Expression, NamedExpression, Payload, PayloadField, Prefix, SetItem};
use nftables::expr::{Meta, MetaKey};
use nftables::helper::{self, DEFAULT_NFT};
use nftables::schema::{Chain, Element, NfListObject, NfObject, Rule, Set, SetType, SetTypeValue};
use nftables::schema::{Nftables, Table};
use nftables::stmt::{JumpTarget, Match, Operator, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

use crate::wire::Family;

/// Every table of ours starts with this, then the owning process id.
const TABLE_PREFIX: &str = "lb_vrrp_";
/// keepalived's default chain priority (`nftables_priority`).
const PRIORITY: i32 = -1;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A driver's nftables table that drops traffic to (and from) the virtual addresses of its
/// masters that must not accept it. Created per family on first use; deleted on drop.
#[derive(Debug)]
pub struct AcceptFilter {
    table: String,
    /// Whether the `ip` and the `ip6` table exist.
    created: [bool; 2],
}

impl Default for AcceptFilter {
    fn default() -> AcceptFilter {
        AcceptFilter::new()
    }
}

impl AcceptFilter {
    /// A filter named `lb_vrrp_PID_N`, unique per driver; nothing is installed yet.
    pub fn new() -> AcceptFilter {
        AcceptFilter {
            table: format!(
                "{TABLE_PREFIX}{}_{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ),
            created: [false; 2],
        }
    }

    /// The table's name (in the `ip` and `ip6` families).
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates the (empty) table of `family` now, so a missing `nft` or a kernel without
    /// nftables is an error at start rather than on becoming master. Also deletes the tables
    /// that processes no longer running left behind (killed before they could), which would
    /// otherwise keep dropping their addresses' traffic. Nothing to do once the table exists.
    pub fn prepare(&mut self, family: Family) -> io::Result<()> {
        if self.created[slot(family)] {
            return Ok(());
        }
        remove_stale_tables()?;
        let mut batch = Batch::new();
        self.ensure(&mut batch, family);
        apply(batch)
    }

    /// Drops packets to and from `vips`, installed on interface `ifname` (link-local ones are
    /// matched with it). Call before adding the addresses.
    pub fn block(&mut self, ifname: &str, vips: &[IpAddr]) -> io::Result<()> {
        let mut batch = Batch::new();
        for family in [Family::Ipv4, Family::Ipv6] {
            if vips.iter().any(|v| Family::of(*v) == family) {
                self.ensure(&mut batch, family);
            }
        }
        for element in self.elements(ifname, vips) {
            batch.add(NfListObject::Element(element));
        }
        apply(batch)
    }

    /// Stops dropping packets to and from `vips` on `ifname` (the elements
    /// [`block`](Self::block) added). Call after removing the addresses.
    pub fn unblock(&mut self, ifname: &str, vips: &[IpAddr]) -> io::Result<()> {
        let mut batch = Batch::new();
        for element in self.elements(ifname, vips) {
            batch.delete(NfListObject::Element(element));
        }
        apply(batch)
    }

    /// One set element per address, each in the set of its family that exists.
    fn elements(&self, ifname: &str, vips: &[IpAddr]) -> Vec<Element<'static>> {
        vips.iter()
            .filter(|v| self.created[slot(Family::of(**v))])
            .map(|vip| {
                let addr = Expression::String(vip.to_string().into());
                let (family, set, key) = match vip {
                    IpAddr::V4(_) => (NfFamily::IP, "vips", addr),
                    IpAddr::V6(v6) if super::interface::is_link_local(*v6) => (
                        NfFamily::IP6,
                        "vips_link_local",
                        Expression::Named(NamedExpression::Concat(vec![
                            addr,
                            Expression::String(ifname.to_owned().into()),
                        ])),
                    ),
                    IpAddr::V6(_) => (NfFamily::IP6, "vips", addr),
                };
                Element {
                    family,
                    table: self.table.clone().into(),
                    name: set.into(),
                    elem: vec![key].into(),
                }
            })
            .collect()
    }

    /// Adds `family`'s table, sets, chains and rules to `batch` unless they exist.
    fn ensure(&mut self, batch: &mut Batch<'static>, family: Family) {
        if std::mem::replace(&mut self.created[slot(family)], true) {
            return;
        }
        let table: Cow<'static, str> = self.table.clone().into();
        let (nf, addr_type, proto) = match family {
            Family::Ipv4 => (NfFamily::IP, SetType::Ipv4Addr, "ip"),
            Family::Ipv6 => (NfFamily::IP6, SetType::Ipv6Addr, "ip6"),
        };
        batch.add(NfListObject::Table(Table {
            family: nf,
            name: table.clone(),
            ..Table::default()
        }));
        let set = |name: &'static str, set_type| {
            NfListObject::Set(Box::new(Set {
                family: nf,
                table: table.clone(),
                name: name.into(),
                set_type,
                ..Set::default()
            }))
        };
        batch.add(set("vips", SetTypeValue::Single(addr_type)));
        if family == Family::Ipv6 {
            batch.add(set(
                "vips_link_local",
                SetTypeValue::Concatenated(vec![SetType::Ipv6Addr, SetType::Ifname].into()),
            ));
        }
        let chain = |name: &'static str, hook: Option<NfHook>| {
            NfListObject::Chain(Chain {
                family: nf,
                table: table.clone(),
                name: name.into(),
                _type: hook.map(|_| NfChainType::Filter),
                hook,
                prio: hook.map(|_| PRIORITY),
                policy: hook.map(|_| NfChainPolicy::Accept),
                ..Chain::default()
            })
        };
        let rule = |chain: &'static str, expr: Vec<Statement<'static>>| {
            NfListObject::Rule(Rule {
                family: nf,
                table: table.clone(),
                chain: chain.into(),
                expr: expr.into(),
                ..Rule::default()
            })
        };
        for (chain_name, hook, field, iface, link_local) in [
            (
                "in",
                NfHook::Input,
                "daddr",
                MetaKey::Iifname,
                "in_link_local",
            ),
            (
                "out",
                NfHook::Output,
                "saddr",
                MetaKey::Oifname,
                "out_link_local",
            ),
        ] {
            batch.add(chain(chain_name, Some(hook)));
            let addr = payload(proto, field);
            if family == Family::Ipv6 {
                batch.add(chain(link_local, None));
                // Neighbour discovery always passes (RFC 9568 §6.4.3).
                let nd = ["nd-neighbor-solicit", "nd-neighbor-advert"]
                    .map(|t| SetItem::Element(Expression::String(t.into())));
                batch.add(rule(
                    chain_name,
                    vec![
                        matches(
                            payload("icmpv6", "type"),
                            Expression::Named(NamedExpression::Set(nd.into())),
                        ),
                        Statement::Accept(None),
                    ],
                ));
                // Link-local addresses are per interface: matched with it, in their own chain.
                let fe80 = Expression::Named(NamedExpression::Prefix(Prefix {
                    addr: Box::new(Expression::String("fe80::".into())),
                    len: 10,
                }));
                batch.add(rule(
                    chain_name,
                    vec![
                        matches(addr.clone(), fe80),
                        Statement::Goto(JumpTarget {
                            target: link_local.into(),
                        }),
                    ],
                ));
                let key = Expression::Named(NamedExpression::Concat(vec![
                    addr.clone(),
                    Expression::Named(NamedExpression::Meta(Meta { key: iface })),
                ]));
                batch.add(rule(
                    link_local,
                    vec![
                        matches(key, Expression::String("@vips_link_local".into())),
                        Statement::Drop(None),
                    ],
                ));
            }
            batch.add(rule(
                chain_name,
                vec![
                    matches(addr, Expression::String("@vips".into())),
                    Statement::Drop(None),
                ],
            ));
        }
    }

    fn delete_tables(&mut self) -> io::Result<()> {
        let mut batch = Batch::new();
        for (family, nf) in [(Family::Ipv4, NfFamily::IP), (Family::Ipv6, NfFamily::IP6)] {
            if std::mem::take(&mut self.created[slot(family)]) {
                batch.delete(NfListObject::Table(Table {
                    family: nf,
                    name: self.table.clone().into(),
                    ..Table::default()
                }));
            }
        }
        apply(batch)
    }
}

impl Drop for AcceptFilter {
    fn drop(&mut self) {
        // Best effort: the namespace may already be gone.
        let _ = self.delete_tables();
    }
}

fn slot(family: Family) -> usize {
    match family {
        Family::Ipv4 => 0,
        Family::Ipv6 => 1,
    }
}

fn payload(protocol: &'static str, field: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: protocol.into(),
            field: field.into(),
        },
    )))
}

fn matches(left: Expression<'static>, right: Expression<'static>) -> Statement<'static> {
    Statement::Match(Match {
        left,
        right,
        op: Operator::EQ,
    })
}

fn apply(batch: Batch<'_>) -> io::Result<()> {
    let ruleset = batch.to_nftables();
    if ruleset.objects.is_empty() {
        return Ok(());
    }
    helper::apply_ruleset(&ruleset).map_err(nft_error)
}

fn nft_error(e: helper::NftablesError) -> io::Error {
    io::Error::other(format!("nft: {e}"))
}

/// Deletes `lb_vrrp_PID_N` tables whose process is gone.
fn remove_stale_tables() -> io::Result<()> {
    let ruleset: Nftables<'static> =
        helper::get_current_ruleset_with_args(DEFAULT_NFT, ["list", "tables"])
            .map_err(nft_error)?;
    let mut batch = Batch::new();
    for object in ruleset.objects.iter() {
        let NfObject::ListObject(NfListObject::Table(t)) = object else {
            continue;
        };
        let pid = t
            .name
            .strip_prefix(TABLE_PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        if let Some(pid) = pid {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                batch.delete(NfListObject::Table(Table {
                    family: t.family,
                    name: t.name.clone().into_owned().into(),
                    ..Table::default()
                }));
            }
        }
    }
    apply(batch)
}
