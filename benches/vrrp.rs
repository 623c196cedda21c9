//! Criterion benchmarks of `lb::vrrp`.
//!
//! Run with `cargo bench --bench vrrp`; filter with criterion's usual arguments, e.g.
//! `cargo bench --bench vrrp -- 'vrrp/parse/'`.
//!
//! - `vrrp/parse/<form>/<n>vip`: [`Packet::new_checked`] + [`AdvertRepr::parse`] (every receive
//!   check, checksum included) of one advert with n virtual addresses, for `v2-ipv4`,
//!   `v2-ipv4-pass`, `v3-ipv4` (RFC 9568 checksum: verified on the first try), `v3-ipv4-pseudo`
//!   (keepalived's form: the message-only sum fails first, then the pseudo-header one is
//!   computed) and `v3-ipv6`.
//! - `vrrp/emit/<form>/<n>vip`: [`AdvertRepr::emit`] into a buffer, checksum included.
//! - `vrrp/router/backup-rx/<version>`: [`Router::handle_advert`] of a master's advert by a
//!   backup (parse, receive rules, timer reset), events drained.
//! - `vrrp/router/master-tick/<version>`: what a master does per interval:
//!   [`Router::handle_timeout`] and [`Router::poll_transmit`] of the advert.
//! - `vrrp/255-vrids/1s`: the core's CPU for one second of 255 virtual routers at a 1 s
//!   interval on one interface, as the 255-VRID check: 255 masters each tick and emit
//!   once, and 255 backups each parse and handle one advert. Socket syscalls are not included.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use lb::vrrp::wire::{
    Addresses, AdvertRepr, Auth, ChecksumForm, Family, IpMeta, MULTICAST_V4, MULTICAST_V6, Packet,
    Version,
};
use lb::vrrp::{ChecksumMode, Config, Router};

struct Case {
    name: &'static str,
    version: Version,
    family: Family,
    form: ChecksumForm,
    auth: Auth,
}

const CASES: [Case; 5] = [
    Case {
        name: "v2-ipv4",
        version: Version::V2,
        family: Family::Ipv4,
        form: ChecksumForm::MessageOnly,
        auth: Auth::None,
    },
    Case {
        name: "v2-ipv4-pass",
        version: Version::V2,
        family: Family::Ipv4,
        form: ChecksumForm::MessageOnly,
        auth: Auth::Pass(*b"secret12"),
    },
    Case {
        name: "v3-ipv4",
        version: Version::V3,
        family: Family::Ipv4,
        form: ChecksumForm::MessageOnly,
        auth: Auth::None,
    },
    Case {
        name: "v3-ipv4-pseudo",
        version: Version::V3,
        family: Family::Ipv4,
        form: ChecksumForm::PseudoHeader,
        auth: Auth::None,
    },
    Case {
        name: "v3-ipv6",
        version: Version::V3,
        family: Family::Ipv6,
        form: ChecksumForm::PseudoHeader,
        auth: Auth::None,
    },
];

fn addrs(family: Family, n: usize) -> Vec<IpAddr> {
    (0..n)
        .map(|i| match family {
            Family::Ipv4 => IpAddr::V4(Ipv4Addr::new(10, 0, (i / 250) as u8, (i % 250) as u8 + 1)),
            Family::Ipv6 => IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, i as u16 + 1)),
        })
        .collect()
}

fn meta(family: Family) -> IpMeta {
    match family {
        Family::Ipv4 => IpMeta {
            src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            dst: IpAddr::V4(MULTICAST_V4),
            hop_limit: 255,
        },
        Family::Ipv6 => IpMeta {
            src: "fe80::2".parse().unwrap(),
            dst: IpAddr::V6(MULTICAST_V6),
            hop_limit: 255,
        },
    }
}

fn codec(c: &mut Criterion) {
    for case in &CASES {
        for n in [1usize, 16] {
            let mut wire = Vec::new();
            Addresses::encode(case.family, &addrs(case.family, n), &mut wire);
            let repr = AdvertRepr {
                version: case.version,
                vrid: 51,
                priority: 150,
                interval: match case.version {
                    Version::V2 => Duration::from_secs(1),
                    Version::V3 => Duration::from_millis(100),
                },
                addresses: Addresses::from_bytes(case.family, &wire).unwrap(),
                auth: case.auth,
            };
            let m = meta(case.family);
            let mut buf = vec![0u8; repr.buffer_len()];
            repr.emit(&mut buf, case.form, m.src, m.dst);
            c.bench_function(&format!("vrrp/parse/{}/{n}vip", case.name), |b| {
                b.iter(|| {
                    let p = Packet::new_checked(black_box(&buf[..]), case.family).unwrap();
                    black_box(AdvertRepr::parse(&p, &m).unwrap());
                })
            });
            let mut out = vec![0u8; repr.buffer_len()];
            c.bench_function(&format!("vrrp/emit/{}/{n}vip", case.name), |b| {
                b.iter(|| {
                    black_box(&repr).emit(&mut out, case.form, m.src, m.dst);
                    black_box(&out);
                })
            });
        }
    }
}

fn config(vrid: u8, last: u8, priority: u8, version: Version) -> Config {
    let mut c = Config::new(
        vrid,
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)),
        vec![IpAddr::V4(Ipv4Addr::new(10, 1, 0, vrid))],
    );
    c.priority = priority;
    c.version = version;
    c.checksum = ChecksumMode::PseudoHeader;
    if version == Version::V3 {
        c.interval = Duration::from_millis(100);
    }
    c
}

/// A master's advert for `backup`'s VRID, as bytes with its metadata.
fn master_advert(vrid: u8, version: Version) -> (IpMeta, Vec<u8>) {
    let mut master = Router::new(config(vrid, 2, 200, version)).unwrap();
    master.handle_startup(Duration::ZERO);
    master.handle_timeout(Duration::from_secs(10));
    let mut buf = Vec::new();
    let tx = master
        .poll_transmit(&mut buf)
        .expect("the master advertises");
    (
        IpMeta {
            src: tx.src,
            dst: tx.dst,
            hop_limit: 255,
        },
        buf,
    )
}

fn router(c: &mut Criterion) {
    for (name, version) in [("v2", Version::V2), ("v3", Version::V3)] {
        let (m, advert) = master_advert(51, version);
        let mut backup = Router::new(config(51, 1, 100, version)).unwrap();
        backup.handle_startup(Duration::ZERO);
        let mut now = Duration::ZERO;
        c.bench_function(&format!("vrrp/router/backup-rx/{name}"), |b| {
            b.iter(|| {
                now += Duration::from_millis(1);
                backup.handle_advert(now, &m, black_box(&advert));
                while backup.poll_event().is_some() {}
            })
        });
        assert_eq!(backup.counters().dropped_total(), 0);

        let mut master = Router::new(config(51, 2, 200, version)).unwrap();
        master.handle_startup(Duration::ZERO);
        let mut now = Duration::from_secs(10);
        master.handle_timeout(now);
        while master.poll_event().is_some() {}
        let mut buf = Vec::new();
        c.bench_function(&format!("vrrp/router/master-tick/{name}"), |b| {
            b.iter(|| {
                now = master.poll_timeout().unwrap();
                master.handle_timeout(now);
                black_box(master.poll_transmit(&mut buf).unwrap());
                while master.poll_event().is_some() {}
            })
        });
    }
}

fn many_vrids(c: &mut Criterion) {
    let version = Version::V2;
    let mut masters: Vec<Router> = (1..=255)
        .map(|v| Router::new(config(v, 2, 200, version)).unwrap())
        .collect();
    let mut backups: Vec<Router> = (1..=255)
        .map(|v| Router::new(config(v, 1, 100, version)).unwrap())
        .collect();
    let adverts: Vec<(IpMeta, Vec<u8>)> = (1..=255).map(|v| master_advert(v, version)).collect();
    let mut now = Duration::from_secs(10);
    for m in &mut masters {
        m.handle_startup(Duration::ZERO);
        m.handle_timeout(now);
        while m.poll_event().is_some() {}
    }
    for b in &mut backups {
        b.handle_startup(Duration::ZERO);
    }
    let mut buf = Vec::new();
    c.bench_function("vrrp/255-vrids/1s", |b| {
        b.iter(|| {
            now += Duration::from_secs(1);
            for m in &mut masters {
                m.handle_timeout(now);
                black_box(m.poll_transmit(&mut buf));
                while m.poll_event().is_some() {}
            }
            for (b, (meta, bytes)) in backups.iter_mut().zip(&adverts) {
                b.handle_advert(now, meta, bytes);
                b.handle_timeout(now);
            }
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(1));
    targets = codec, router, many_vrids
}
criterion_main!(benches);
