//! IPVS `mh` golden values. The expected values come from an independent model of
//! ip_vs_mh.c (SipHash-1-3 written from the SipHash paper, the permutation and population
//! loops transcribed from the C source) in `models/mh_model.py`, not from this crate:
//! `python3 crates/lb-sched/tests/models/mh_model.py` prints them.

use core::net::SocketAddr;
use core::time::Duration;
use lb_sched::{Algorithm, Availability, Backend, BackendId, Pool, PoolConfig, Request};

fn pool(table: u32, dests: &[(&str, u32)], flags: &[&str]) -> Pool {
    let mut alg = Algorithm::from_name("mh")
        .unwrap()
        .with_table_size(table)
        .unwrap();
    for f in flags {
        alg = alg.with_flag(f).unwrap();
    }
    let backends = dests.iter().enumerate().map(|(i, (addr, w))| {
        Backend::new(BackendId(i as u32), *w).with_addr(addr.parse::<SocketAddr>().unwrap())
    });
    Pool::with_backends(PoolConfig::new(alg), backends).unwrap()
}

const DESTS: [(&str, u32); 4] = [
    ("10.0.0.1:80", 1),
    ("10.0.0.2:80", 2),
    ("10.0.0.3:80", 3),
    ("[2001:db8::7]:443", 1),
];
const SOURCES: [&str; 6] = [
    "192.168.1.1:0",
    "192.168.1.2:0",
    "172.16.5.4:0",
    "10.9.8.7:0",
    "[2001:db8:1::5]:0",
    "198.51.100.20:0",
];

fn lookups(p: &Pool, sources: &[&str]) -> Vec<u32> {
    sources
        .iter()
        .map(|s| {
            p.lookup(&Request::from_src(s.parse().unwrap()))
                .unwrap()
                .unwrap()
                .0
        })
        .collect()
}

fn slot_shares(p: &Pool) -> Vec<u64> {
    let e = p.explain(
        &Request::default(),
        Duration::ZERO,
        &mut <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(0),
    );
    e.candidates
        .iter()
        .map(|c| match c.score {
            lb_sched::Score::Share(s) => s,
            other => panic!("mh scores are shares, got {other:?}"),
        })
        .collect()
}

#[test]
fn table_251_matches_the_kernel_model() {
    let p = pool(251, &DESTS, &[]);
    assert_eq!(slot_shares(&p), [36, 72, 108, 35]);
    assert_eq!(lookups(&p, &SOURCES), [0, 2, 0, 0, 1, 3]);
}

#[test]
fn default_table_4093_matches_the_kernel_model() {
    let p = pool(4093, &DESTS, &[]);
    assert_eq!(slot_shares(&p), [585, 1170, 1754, 584]);
    assert_eq!(lookups(&p, &SOURCES), [2, 2, 3, 2, 2, 3]);
}

#[test]
fn fallback_probes_like_the_kernel() {
    for (table, expected) in [(251, [0, 1, 0, 0, 1, 3]), (4093, [1, 0, 3, 1, 3, 3])] {
        let mut p = pool(table, &DESTS, &["mh-fallback"]);
        p.set_availability(BackendId(2), Availability::Down, Duration::ZERO)
            .unwrap();
        assert_eq!(lookups(&p, &SOURCES), expected, "table {table}");
        // Without the flag, clients of the down backend get nothing.
        let mut plain = pool(table, &DESTS, &[]);
        plain
            .set_availability(BackendId(2), Availability::Down, Duration::ZERO)
            .unwrap();
        let req = Request::from_src(SOURCES[1].parse().unwrap());
        if table == 4093 {
            assert_eq!(plain.lookup(&req).unwrap(), None);
        }
    }
}

#[test]
fn mh_port_hashes_the_source_port() {
    let sources = ["192.168.1.1:1234", "192.168.1.1:80", "10.9.8.7:65535"];
    assert_eq!(
        lookups(&pool(251, &DESTS, &["mh-port"]), &sources),
        [1, 2, 0]
    );
    assert_eq!(
        lookups(&pool(4093, &DESTS, &["mh-port"]), &sources),
        [1, 2, 1]
    );
}

#[test]
fn large_weights_are_shifted_to_the_table_bits() {
    let dests = [
        ("10.0.0.1:80", 1000),
        ("10.0.0.2:80", 1),
        ("10.0.0.3:80", 250),
    ];
    let p = pool(251, &dests, &[]);
    assert_eq!(slot_shares(&p), [199, 13, 39]);
    assert_eq!(
        lookups(&p, &["1.2.3.4:0", "5.6.7.8:0", "9.9.9.9:0"]),
        [1, 0, 0]
    );
}

#[test]
fn quiescing_keeps_the_table() {
    // last_weight keeps a weight-0 backend's slots: nobody else's clients move.
    let mut p = pool(4093, &DESTS, &[]);
    let before = lookups(&p, &SOURCES);
    p.set_weight(BackendId(0), 0, Duration::ZERO).unwrap();
    assert_eq!(slot_shares(&p), [585, 1170, 1754, 584]);
    let after: Vec<Option<u32>> = SOURCES
        .iter()
        .map(|s| {
            p.lookup(&Request::from_src(s.parse().unwrap()))
                .unwrap()
                .map(|b| b.0)
        })
        .collect();
    for (b, a) in before.iter().zip(&after) {
        if *b == 0 {
            assert_eq!(*a, None);
        } else {
            assert_eq!(*a, Some(*b));
        }
    }
}
