//! The translation of a real ruleset: testdata/ holds what `nft -j list ruleset`,
//! `iptables-save` and `ip6tables-save` printed (nftables 1.0.6, iptables 1.8.9 nf_tables) in
//! a namespace with both iptables-nft rules and a native table (ruleset.nft is its text form).

use std::net::IpAddr;

use lb_forward::{MatchKey, Protocol};

use super::*;

const JSON: &str = include_str!("testdata/ruleset.json");
const SAVE4: &str = include_str!("testdata/iptables-save.txt");
const SAVE6: &str = include_str!("testdata/ip6tables-save.txt");

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn key(proto: Protocol, net: &str, ports: (u16, u16)) -> MatchKey {
    let (addr, len) = match net.split_once('/') {
        Some((a, l)) => (ip(a), l.parse().unwrap()),
        None => (ip(net), if net.contains(':') { 128 } else { 32 }),
    };
    MatchKey::host(proto, addr)
        .prefix(addr, len)
        .ports(ports.0, ports.1)
}

const TCP: Protocol = Protocol::Tcp;
const UDP: Protocol = Protocol::Udp;
const ALL: (u16, u16) = (0, u16::MAX);

fn one(p: u16) -> (u16, u16) {
    (p, p)
}

/// Asserts that exactly one warning mentions each of `needles` (all of its parts).
fn warned(marks: &Marks, needles: &[&[&str]]) {
    for parts in needles {
        let hits: Vec<_> = marks
            .warnings
            .iter()
            .filter(|w| parts.iter().all(|p| w.contains(p)))
            .collect();
        assert_eq!(hits.len(), 1, "{parts:?} in {:#?}", marks.warnings);
    }
    assert_eq!(marks.warnings.len(), needles.len(), "{:#?}", marks.warnings);
}

#[test]
fn native_nft_rules() {
    let t = from_nft_json(JSON);
    assert_eq!(
        t.iptables_tables,
        [(false, "mangle".to_owned()), (true, "mangle".to_owned())],
        "iptables-nft's tables go to iptables-save"
    );
    let m = &t.marks;
    assert_eq!(
        m.keys(7, false),
        [
            key(TCP, "10.0.0.110", one(80)),
            key(TCP, "10.0.0.110", one(8080)),
            key(TCP, "10.0.0.111", one(80)),
            key(TCP, "10.0.0.111", one(8080)),
        ],
        "a named set of VIPs and an anonymous set of ports"
    );
    assert_eq!(m.keys(8, false), [key(TCP, "10.0.0.120", (80, 90))]);
    assert_eq!(m.keys(9, true), [key(TCP, "fd00::100", one(443))]);
    assert!(m.keys(9, false).is_empty());
    assert_eq!(
        m.keys(10, false),
        [
            key(TCP, "10.0.0.121", one(5000)),
            key(UDP, "10.0.0.121", one(5000))
        ],
        "th dport with meta l4proto {{ tcp, udp }}"
    );
    assert_eq!(
        m.keys(13, false),
        [
            key(UDP, "10.0.1.0/24", one(53)),
            key(UDP, "10.0.2.5", one(53))
        ],
        "an interval set; the counter is ignored"
    );
    assert_eq!(
        m.keys(18, false),
        [
            key(TCP, "10.0.5.1", one(443)),
            key(TCP, "10.0.5.2/31", one(443)),
            key(TCP, "10.0.5.4/31", one(443)),
            key(TCP, "10.0.5.6", one(443)),
        ],
        "an address range, as prefixes"
    );
    assert_eq!(m.keys(19, false), [key(TCP, "10.0.6.0/24", one(80))]);
    for left_out in [11, 12, 14, 15, 16] {
        assert!(m.keys(left_out, false).is_empty(), "mark {left_out}");
    }
    warned(
        m,
        &[
            &["handle", "sets mark 11", "matches the mark"],
            &["lbmark sub", "sets mark 12", "reached by jump or goto"],
            &["sets mark 14", "matches with !="],
            &["lbmark pre", "from an expression"],
            &["sets mark 15", "input interface"],
            &["lbmark in", "sets mark 16", "hooked elsewhere"],
            &[
                "ends its chain",
                "before nft rule inet lbmark pre",
                "sets mark 19",
            ],
            &["(mark 13) matches more than single destination addresses"],
            &["(mark 18) matches more than"],
            &["(mark 19) matches more than"],
        ],
    );
}

#[test]
fn iptables_nft_rules_from_iptables_save() {
    let v4 = from_iptables_save(SAVE4, false);
    assert_eq!(
        v4.keys(1, false),
        [
            key(TCP, "10.0.0.100", one(80)),
            key(TCP, "10.0.0.100", one(443))
        ],
        "-m multiport --dports, -j MARK --set-xmark 0x1/0xffffffff"
    );
    assert_eq!(v4.keys(2, false), [key(UDP, "10.0.0.0/24", one(53))]);
    assert_eq!(v4.keys(4, false), [key(TCP, "10.0.0.101", (1000, 2000))]);
    assert_eq!(
        v4.keys(6, false),
        [key(TCP, "10.0.0.103", ALL), key(UDP, "10.0.0.103", ALL)],
        "no -p: TCP and UDP on every port"
    );
    warned(
        &v4,
        &[
            &["-s 10.1.0.0/16", "sets mark 3", "source address"],
            &["! -d 10.0.0.102/32", "sets mark 5", "negates -d"],
            &["-m mark --mark 0x1", "changes some bits of the mark"],
            &["-i eth0", "sets mark 16", "input interface"],
            &["-A INPUT", "hooked elsewhere"],
            &["(mark 2) matches more than single destination addresses"],
        ],
    );
    let v6 = from_iptables_save(SAVE6, true);
    assert_eq!(v6.keys(9, true), [key(TCP, "fd00::100", one(443))]);
    assert!(v6.warnings.is_empty(), "{:?}", v6.warnings);
}

#[test]
fn overlapping_marks_are_warned_about() {
    let mut all = from_nft_json(JSON).marks;
    all.extend(from_iptables_save(SAVE4, false));
    all.extend(from_iptables_save(SAVE6, true));
    let before = all.warnings.len();
    all.check_overlaps();
    let new = &all.warnings[before..];
    // 10.0.0.0/24 udp 53 (mark 2) and 10.0.0.103 (mark 6, every port) share udp 10.0.0.103:53.
    assert_eq!(new.len(), 1, "{new:#?}");
    assert!(
        new[0].contains("(mark 2)") && new[0].contains("(mark 6)"),
        "{new:?}"
    );
    // Mark 9 from both sources, one key.
    assert_eq!(all.keys(9, true), [key(TCP, "fd00::100", one(443))]);
}

#[test]
fn bad_input_is_a_warning() {
    for junk in ["", "{", "[]", "{\"nftables\": 3}"] {
        let t = from_nft_json(junk);
        assert!(t.marks.rules.is_empty());
        assert_eq!(t.marks.warnings.len(), 1, "{junk:?}");
    }
    // An object the schema does not know spoils only itself.
    let json = r#"{"nftables": [
        {"table": {"family": "ip", "name": "t", "handle": 1}},
        {"chain": {"family": "ip", "table": "t", "name": "p", "handle": 1, "type": "filter",
                   "hook": "prerouting", "prio": -150, "policy": "accept"}},
        {"rule": {"family": "ip", "table": "t", "chain": "p", "handle": 2,
                  "expr": [{"frobnicate": {}}]}},
        {"rule": {"family": "ip", "table": "t", "chain": "p", "handle": 3,
                  "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}},
                                      "right": {"prefix": {"addr": "10.9.0.0", "len": 40}}}},
                           {"mangle": {"key": {"meta": {"key": "mark"}}, "value": 5}}]}},
        {"rule": {"family": "ip", "table": "t", "chain": "p", "handle": 4,
                  "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}},
                                      "right": "@missing"}},
                           {"mangle": {"key": {"meta": {"key": "mark"}}, "value": 6}}]}},
        {"rule": {"family": "ip", "table": "t", "chain": "p", "handle": 5,
                  "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}},
                                      "right": 53}},
                           {"mangle": {"key": {"meta": {"key": "mark"}}, "value": 7}}]}}
    ]}"#;
    let t = from_nft_json(json);
    assert_eq!(t.marks.keys(7, false), [key(UDP, "0.0.0.0/0", one(53))]);
    warned(
        &t.marks,
        &[
            &["handle 2", "not understood"],
            &["handle 3", "10.9.0.0/40"],
            &["handle 4", "@missing"],
            &["handle 5 (mark 7) matches more than"],
        ],
    );

    let save = "*mangle\n-A PREROUTING -d 10.0.0.1 -p tcp --dport 99999 -j MARK --set-mark 1\n\
        -A PREROUTING -d 10.0.0.1 -j MARK --set-mark 0x0\n-A PREROUTING \"unclosed\n\
        -A PREROUTING -d 10.0.0.0/255.0.255.0 -j MARK --set-mark 2\nnonsense\n\
        -A PREROUTING -d 10.0.0.1 -j MARK\n-A PREROUTING -d 10.0.0.1 -p tcp --dport\n";
    let m = from_iptables_save(save, false);
    assert!(m.rules.is_empty(), "{:?}", m.rules);
    warned(
        &m,
        &[
            &["99999"],
            &["sets mark 0"],
            &["unclosed quote"],
            &["non-contiguous"],
            &["line 6", "not a rule"],
            &["without --set-xmark"],
        ],
    );
}

#[test]
fn address_ranges_become_exact_prefixes() {
    let r = |a: &str, b: &str| range_prefixes(ip(a), ip(b)).unwrap();
    assert_eq!(r("10.0.0.0", "10.0.0.255"), [(ip("10.0.0.0"), 24)]);
    assert_eq!(r("0.0.0.0", "255.255.255.255"), [(ip("0.0.0.0"), 0)]);
    assert_eq!(
        r("10.0.0.255", "10.0.1.0"),
        [(ip("10.0.0.255"), 32), (ip("10.0.1.0"), 32)]
    );
    assert_eq!(
        r("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
        [(ip("::"), 1), (ip("8000::"), 1)]
    );
    assert!(range_prefixes(ip("10.0.0.2"), ip("10.0.0.1")).is_err());
    assert!(range_prefixes(ip("10.0.0.2"), ip("::1")).is_err());
}

#[test]
fn the_plan_runs_fwmark_services_in_their_reals_family() {
    let text = "virtual_server fwmark 1 {\n lb_algo rr\n lb_kind DR\n persistence_timeout 60\n\
        real_server fd00::3 80 {\n }\n}\n\
        virtual_server_group g {\n fwmark 2\n 10.0.0.100 80\n fwmark 0\n}\n\
        virtual_server group g {\n lb_algo rr\n lb_kind NAT\n real_server 10.0.0.3 80 {\n }\n}\n\
        virtual_server fwmark 0 {\n lb_algo rr\n}\n";
    let loaded = crate::config::parse_str_isolated(text, "t.conf").unwrap();
    let (plan, warnings) = crate::director::plan(&loaded.config);
    let keys: Vec<Vec<String>> = plan
        .services
        .iter()
        .map(|s| s.keys.iter().map(ToString::to_string).collect())
        .collect();
    assert_eq!(
        keys,
        [
            vec!["FWM 1 IPv6".to_owned()],
            vec!["FWM 2".to_owned(), "tcp:10.0.0.100:80".to_owned()]
        ]
    );
    assert!(plan.services[0].pool.persistence.is_some());
    let messages: Vec<String> = warnings.iter().map(|w| w.message.clone()).collect();
    assert!(
        messages.iter().any(|m| m.contains("fwmark 0")),
        "{messages:?}"
    );
}
