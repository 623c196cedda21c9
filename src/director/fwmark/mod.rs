//! Firewall-mark services: which packets the host's firewall marks, as lb-forward match keys.
//!
//! keepalived's `virtual_server fwmark N` is one IPVS service over the packets whose netfilter
//! mark is N, set by the operator's rules (`iptables -t mangle -A PREROUTING -d VIP -p tcp -m
//! multiport --dports 80,443 -j MARK --set-mark 1`, or nftables' `meta mark set 1`). The
//! datapath receives frames on packet sockets, before netfilter, so it never sees marks:
//! instead the rules that set marks are read and translated into [`MatchKey`]s (destination
//! prefix, protocol, destination port range) that the datapath matches itself.
//!
//! Read: `nft -j list ruleset` ([`from_nft_json`], through the `nftables` crate's schema);
//! tables of iptables-nft, whose extensions (`-m multiport`, `-j MARK`) nft's JSON shows
//! without their arguments, from `iptables-save` / `ip6tables-save` ([`from_iptables_save`]).
//!
//! Translated: rules in chains hooked at prerouting (families ip, ip6, inet) that set the mark
//! to a constant, matching any of: destination address, prefix, range, anonymous or named set
//! (`ip daddr`, `ip6 daddr`, `-d`); protocol (`meta l4proto`, `ip protocol`, `ip6 nexthdr`,
//! `-p`); destination port, range or set (`tcp dport`, `udp dport`, `th dport`, `--dport`,
//! `-m multiport --dports`); family (`meta nfproto`); counters, logging and comments are
//! ignored. A rule without a protocol takes TCP and UDP, without an address every address of
//! its family.
//!
//! Everything else that sets a mark is a warning naming the rule, and the rule is left out,
//! never widened: source addresses or ports, interfaces, negations, marks matched (a mark set
//! conditionally on another), marks computed or set in part (`--or-mark`, `meta mark set meta
//! mark | 1`), other matches and statements (limits, sets updated, xt extensions without
//! iptables-save), rules in chains reached by jump / goto or hooked elsewhere. A rule that
//! ends its chain (accept, drop, return, goto, ...) before a mark rule, a rule that sets mark
//! 0, rules of different marks that match the same packets, and rules matching more than
//! single destination addresses (IPVS takes only the marked packets addressed to the host) are
//! warned about too: the translation cannot express them exactly.

mod iptables;
mod nft;

use std::net::IpAddr;
use std::process::Command;

use lb_forward::{MatchKey, Protocol, ServiceKey};

pub use iptables::from_iptables_save;
pub use nft::{NftTranslation, from_nft_json};

use super::{Plan, Report};

/// Keys one rule may expand to (addresses x protocols x port ranges); past that the rule is
/// left out with a warning (the datapath scans the keys of every firewall-mark service).
pub const MAX_KEYS_PER_RULE: usize = 1024;

/// A rule that sets a mark, translated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkRule {
    /// The mark it sets.
    pub mark: u32,
    /// The packets it matches.
    pub keys: Vec<MatchKey>,
    /// Which rule it is, for messages.
    pub rule: String,
}

/// The translation of a ruleset: the rules that set marks, in the order the firewall
/// evaluates them, and what could not be translated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Marks {
    /// Translated rules.
    pub rules: Vec<MarkRule>,
    /// One line per rule left out or translated inexactly.
    pub warnings: Vec<String>,
}

impl Marks {
    /// The mark `rule` sets, or `None` after a warning when it cannot be read or is 0.
    fn settable(&mut self, rule: &str, mark: Result<u32, String>) -> Option<u32> {
        match mark {
            Ok(0) => {
                self.warnings.push(format!(
                    "{rule} sets mark 0: the packets it matches stay with the services of earlier rules"
                ));
                None
            }
            Ok(m) => Some(m),
            Err(e) => {
                self.warnings.push(format!("{rule} {e}: not translated"));
                None
            }
        }
    }

    /// Records `rule`, setting `mark` on `keys`, or why its keys cannot be translated.
    fn add(&mut self, rule: String, mark: u32, keys: Result<Vec<MatchKey>, String>) {
        match keys {
            Ok(keys) => {
                self.warnings.extend(wide_warning(&rule, mark, &keys));
                self.rules.push(MarkRule { mark, keys, rule });
            }
            Err(e) => self
                .warnings
                .push(format!("{rule} sets mark {mark} but {e}: not translated")),
        }
    }

    /// The match keys of `mark` for one family, each once.
    pub fn keys(&self, mark: u32, ipv6: bool) -> Vec<MatchKey> {
        let mut out: Vec<MatchKey> = Vec::new();
        for rule in self.rules.iter().filter(|r| r.mark == mark) {
            for key in &rule.keys {
                if key.addr.is_ipv6() == ipv6 && !out.contains(key) {
                    out.push(*key);
                }
            }
        }
        out
    }

    /// Adds the rules and warnings of another translation after these.
    pub fn extend(&mut self, other: Marks) {
        self.rules.extend(other.rules);
        self.warnings.extend(other.warnings);
    }

    /// Warns about rules of different marks that match some packets alike: the firewall gives
    /// such a packet the mark of the last rule, the datapath to one of the two services.
    pub fn check_overlaps(&mut self) {
        for (i, a) in self.rules.iter().enumerate() {
            for b in &self.rules[i + 1..] {
                if a.mark != b.mark && a.keys.iter().any(|x| b.keys.iter().any(|y| x.overlaps(y))) {
                    self.warnings.push(format!(
                        "{} (mark {}) and {} (mark {}) match some packets alike; the firewall gives them mark {}, the datapath either service",
                        a.rule, a.mark, b.rule, b.mark, b.mark
                    ));
                }
            }
        }
    }
}

/// Reads the ruleset of the caller's network namespace: `nft -j list ruleset`, and
/// `iptables-save` / `ip6tables-save` for iptables-nft's tables. What fails is a warning.
pub fn read_host() -> Marks {
    let mut marks = Marks::default();
    match run("nft", &["-j", "list", "ruleset"]) {
        Ok(json) => {
            let t = from_nft_json(&json);
            marks.extend(t.marks);
            for (ipv6, table) in t.iptables_tables {
                let tool = if ipv6 {
                    "ip6tables-save"
                } else {
                    "iptables-save"
                };
                match run(tool, &["-t", &table]) {
                    Ok(text) => marks.extend(from_iptables_save(&text, ipv6)),
                    Err(e) => marks.warnings.push(format!(
                        "table {} {table} holds iptables-nft rules, whose extensions (-m multiport, -j MARK) only {tool} shows: {e}; its marks are not translated",
                        if ipv6 { "ip6" } else { "ip" }
                    )),
                }
            }
        }
        Err(e) => marks
            .warnings
            .push(format!("reading the ruleset (nft -j list ruleset): {e}")),
    }
    marks.check_overlaps();
    marks
}

fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("running {program}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{program} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    String::from_utf8(out.stdout).map_err(|_| format!("{program} printed non-UTF-8"))
}

/// The match keys of each firewall-mark service of `plan`, from the host's ruleset (read only
/// when there is one); every warning goes to `report`, and so does a service that no rule
/// feeds.
pub(crate) fn service_matches(plan: &Plan, report: &Report) -> Vec<(ServiceKey, Vec<MatchKey>)> {
    let keys: Vec<ServiceKey> = plan
        .services
        .iter()
        .flat_map(|s| &s.keys)
        .filter(|k| k.is_fwmark())
        .copied()
        .collect();
    if keys.is_empty() {
        return Vec::new();
    }
    let marks = read_host();
    for w in &marks.warnings {
        report(&format!("fwmark: {w}"));
    }
    keys.iter()
        .map(|&key| {
            let v6 = key.vip.is_ipv6();
            let matches = marks.keys(key.fwmark, v6);
            let family = |v6: bool| if v6 { "IPv6" } else { "IPv4" };
            if matches.is_empty() {
                report(&format!(
                    "{key}: no prerouting rule sets mark {} on {} packets (that the translation could read); the service gets no traffic",
                    key.fwmark,
                    family(v6)
                ));
            }
            let other = ServiceKey::fwmark(key.fwmark, !v6);
            if !keys.contains(&other) && !marks.keys(key.fwmark, !v6).is_empty() {
                report(&format!(
                    "{key}: mark {} is also set on {} packets, which this service does not take (IPVS's neither)",
                    key.fwmark,
                    family(!v6)
                ));
            }
            (key, matches)
        })
        .collect()
}

/// What a rule matches, gathered condition by condition; `None` is "any".
#[derive(Debug, Clone, Default)]
struct Conditions {
    ipv6: Option<bool>,
    dst: Option<Vec<(IpAddr, u8)>>,
    protocols: Option<Vec<Protocol>>,
    ports: Option<Vec<(u16, u16)>>,
}

impl Conditions {
    fn family(&mut self, ipv6: bool) -> Result<(), String> {
        match self.ipv6 {
            Some(f) if f != ipv6 => Err("matches both IPv4 and IPv6 (never true)".into()),
            _ => {
                self.ipv6 = Some(ipv6);
                Ok(())
            }
        }
    }

    fn destinations(&mut self, dst: Vec<(IpAddr, u8)>) -> Result<(), String> {
        if self.dst.is_some() {
            return Err("matches the destination twice".into());
        }
        self.dst = Some(dst);
        Ok(())
    }

    /// Restricts the protocols (several protocol matches intersect).
    fn protocols(&mut self, protocols: Vec<Protocol>) {
        self.protocols = Some(match self.protocols.take() {
            Some(before) => before
                .into_iter()
                .filter(|p| protocols.contains(p))
                .collect(),
            None => protocols,
        });
    }

    fn ports(&mut self, ports: Vec<(u16, u16)>) -> Result<(), String> {
        if self.ports.is_some() {
            return Err("matches the destination port twice".into());
        }
        self.ports = Some(ports);
        Ok(())
    }

    /// The keys: every destination x protocol x port range of the rule's family.
    fn keys(&self) -> Result<Vec<MatchKey>, String> {
        let families: Vec<bool> = match self.ipv6 {
            Some(f) => vec![f],
            None => vec![false, true],
        };
        let dst: Vec<(IpAddr, u8)> = match &self.dst {
            Some(d) => d.clone(),
            None => families
                .iter()
                .map(|&v6| {
                    let any: IpAddr = if v6 {
                        std::net::Ipv6Addr::UNSPECIFIED.into()
                    } else {
                        std::net::Ipv4Addr::UNSPECIFIED.into()
                    };
                    (any, 0)
                })
                .collect(),
        };
        let protocols = self
            .protocols
            .clone()
            .unwrap_or_else(|| vec![Protocol::Tcp, Protocol::Udp]);
        let ports = self.ports.clone().unwrap_or_else(|| vec![(0, u16::MAX)]);
        let count = dst.len() * protocols.len() * ports.len();
        if count > MAX_KEYS_PER_RULE {
            return Err(format!(
                "expands to {count} match keys (more than {MAX_KEYS_PER_RULE})"
            ));
        }
        let mut keys = Vec::with_capacity(count);
        for &(addr, len) in dst.iter().filter(|(a, _)| families.contains(&a.is_ipv6())) {
            for &protocol in &protocols {
                for &(first, last) in &ports {
                    keys.push(
                        MatchKey::host(protocol, addr)
                            .prefix(addr, len)
                            .ports(first, last),
                    );
                }
            }
        }
        Ok(keys)
    }
}

/// The prefixes that cover the addresses `first..=last` exactly.
fn range_prefixes(first: IpAddr, last: IpAddr) -> Result<Vec<(IpAddr, u8)>, String> {
    let (lo, hi, bits) = match (first, last) {
        (IpAddr::V4(a), IpAddr::V4(b)) => (u128::from(u32::from(a)), u128::from(u32::from(b)), 32),
        (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b), 128),
        _ => return Err("an address range across families".into()),
    };
    if lo > hi {
        return Err("an empty address range".into());
    }
    let addr = |v: u128| -> IpAddr {
        if bits == 32 {
            IpAddr::V4((v as u32).into())
        } else {
            IpAddr::V6(v.into())
        }
    };
    let mut out = Vec::new();
    let mut at = lo;
    loop {
        // The largest aligned block at `at` that stays within `hi` (at most half the space, so
        // that its size fits a u128).
        let mut size_log = at.trailing_zeros().min(bits).min(127);
        while size_log > 0 && at + ((1u128 << size_log) - 1) > hi {
            size_log -= 1;
        }
        out.push((addr(at), (bits - size_log) as u8));
        if out.len() > MAX_KEYS_PER_RULE {
            return Err("an address range of too many prefixes".into());
        }
        let end = at + ((1u128 << size_log) - 1);
        if end >= hi {
            return Ok(out);
        }
        at = end + 1;
    }
}

/// `0x1` or `1`.
fn parse_number(text: &str) -> Option<u32> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// The first rule of a chain that ends it for the packets it matches (accept, drop, return,
/// goto, ...): the mark rules after it do not see those packets.
#[derive(Debug, Default)]
struct Chain {
    ended_by: Option<String>,
}

impl Chain {
    /// A rule was seen; `ends` when it has such a verdict.
    fn verdict(&mut self, rule: &str, ends: bool) {
        if ends && self.ended_by.is_none() {
            self.ended_by = Some(rule.to_owned());
        }
    }
}

/// The warning for a rule whose keys take more than single addresses: IPVS sees only the
/// marked packets addressed to the host itself, the datapath every matching frame it receives.
fn wide_warning(rule: &str, mark: u32, keys: &[MatchKey]) -> Option<String> {
    let wide = keys
        .iter()
        .any(|k| k.prefix_len < if k.addr.is_ipv6() { 128 } else { 32 });
    wide.then(|| {
        format!(
            "{rule} (mark {mark}) matches more than single destination addresses: the datapath takes every such packet it receives, IPVS only those addressed to this host"
        )
    })
}

/// The warning for mark rule `rule` after rule `by`, which ends the chain.
fn shadow_warning(by: &str, rule: &str, mark: u32) -> String {
    format!(
        "{by} ends its chain for the packets it matches, before {rule} sets mark {mark}; the translation does not leave them out"
    )
}

#[cfg(test)]
mod tests;
