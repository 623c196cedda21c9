//! Golden sequences for the IPVS schedulers, derived by hand from the kernel's algorithms
//! (net/netfilter/ipvs/ip_vs_*.c) on the same ordered backend list.

use core::net::SocketAddr;
use core::time::Duration;
use lb_sched::{
    Algorithm, Availability, Backend, BackendId, ConnState, Pool, PoolConfig, Request, Rng,
    Thresholds,
};

const T0: Duration = Duration::ZERO;

/// An RNG that returns a fixed sequence of words, to replay the kernel's random draws.
struct Script(Vec<u32>, usize);
impl rand_core::TryRng for Script {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let v = self.0[self.1 % self.0.len()];
        self.1 += 1;
        Ok(v)
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(self.try_next_u32()? as u64)
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        dst.fill(0);
        Ok(())
    }
}

fn zero_rng() -> Script {
    Script(vec![0], 0)
}

fn pool(alg: &str, weights: &[u32]) -> Pool {
    let backends = weights
        .iter()
        .enumerate()
        .map(|(i, &w)| Backend::new(BackendId(i as u32), w));
    Pool::with_backends(
        PoolConfig::new(Algorithm::from_name(alg).unwrap()),
        backends,
    )
    .unwrap()
}

/// Picks `n` times; each pick opens an active connection on the chosen backend.
fn picks(pool: &mut Pool, n: usize, rng: &mut dyn Rng) -> Vec<Option<u32>> {
    (0..n)
        .map(|_| {
            let id = pool.pick(&Request::default(), T0, rng)?;
            pool.conn_opened(id, ConnState::Active).unwrap();
            Some(id.0)
        })
        .collect()
}

fn some(v: &[u32]) -> Vec<Option<u32>> {
    v.iter().map(|&x| Some(x)).collect()
}

#[test]
fn rr_cycles_and_skips_quiesced() {
    let mut p = pool("rr", &[1, 1, 1]);
    assert_eq!(picks(&mut p, 6, &mut zero_rng()), some(&[0, 1, 2, 0, 1, 2]));
    p.set_weight(BackendId(1), 0, T0).unwrap();
    assert_eq!(picks(&mut p, 4, &mut zero_rng()), some(&[0, 2, 0, 2]));
}

#[test]
fn rr_removing_the_cursor_continues_with_its_successor() {
    // ip_vs_rr_del_dest moves the cursor to the removed entry's predecessor.
    let mut p = pool("rr", &[1, 1, 1, 1]);
    assert_eq!(picks(&mut p, 2, &mut zero_rng()), some(&[0, 1]));
    p.remove(BackendId(1)).unwrap();
    assert_eq!(picks(&mut p, 4, &mut zero_rng()), some(&[2, 3, 0, 2]));
}

#[test]
fn wrr_interleaves_by_passes() {
    let mut p = pool("wrr", &[5, 1, 1]);
    assert_eq!(
        picks(&mut p, 14, &mut zero_rng()),
        some(&[0, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 0, 1, 2])
    );
    let mut p = pool("wrr", &[4, 3, 2]);
    assert_eq!(
        picks(&mut p, 9, &mut zero_rng()),
        some(&[0, 0, 1, 0, 1, 2, 0, 1, 2])
    );
    // gcd 2: mw = 4 - (2 - 1) = 3, passes at 3 and 1.
    let mut p = pool("wrr", &[4, 2, 2]);
    assert_eq!(
        picks(&mut p, 8, &mut zero_rng()),
        some(&[0, 0, 1, 2, 0, 0, 1, 2])
    );
}

#[test]
fn wrr_adding_one_by_one_starts_at_the_last_pass() {
    // ip_vs_wrr_dest_changed keeps cw = 1 from the first add (mw was 1 with one backend).
    let mut p = Pool::new(PoolConfig::new(Algorithm::Wrr)).unwrap();
    for (i, w) in [5, 1, 1].into_iter().enumerate() {
        p.add(Backend::new(BackendId(i as u32), w), T0).unwrap();
    }
    assert_eq!(
        picks(&mut p, 10, &mut zero_rng()),
        some(&[0, 1, 2, 0, 0, 0, 0, 0, 1, 2])
    );
}

#[test]
fn wrr_all_overloaded_returns_none_then_recovers() {
    let mut p = pool("wrr", &[2, 1]);
    for id in [0, 1] {
        p.set_availability(BackendId(id), Availability::Down, T0)
            .unwrap();
    }
    assert_eq!(picks(&mut p, 2, &mut zero_rng()), vec![None, None]);
    p.set_availability(BackendId(1), Availability::Up, T0)
        .unwrap();
    assert_eq!(picks(&mut p, 2, &mut zero_rng()), some(&[1, 1]));
}

#[test]
fn all_weights_zero_or_empty_is_none_for_every_algorithm() {
    for name in Algorithm::NAMES {
        for weights in [&[][..], &[0, 0, 0][..]] {
            let mut p = pool(name, weights);
            let req = Request::from_src("10.1.2.3:4000".parse().unwrap())
                .with_dst("192.0.2.1:80".parse().unwrap());
            assert_eq!(
                p.pick(&req, T0, &mut zero_rng()),
                None,
                "{name} {weights:?}"
            );
        }
    }
}

#[test]
fn lc_counts_active_as_256_inactive() {
    let mut p = pool("lc", &[1, 1, 1]);
    assert_eq!(picks(&mut p, 3, &mut zero_rng()), some(&[0, 1, 2]));
    // 0: one active -> 256; 1: active -> inactive -> 1; 2: 256 plus 255 inactive -> 511.
    p.conn_changed(BackendId(1), ConnState::Active, ConnState::Inactive)
        .unwrap();
    for _ in 0..255 {
        p.conn_opened(BackendId(2), ConnState::Inactive).unwrap();
    }
    assert_eq!(picks(&mut p, 1, &mut zero_rng()), some(&[1]));
    // Now 0: 256, 1: 257, 2: 511.
    assert_eq!(picks(&mut p, 1, &mut zero_rng()), some(&[0]));
}

#[test]
fn wlc_cross_multiplies_and_keeps_the_first_on_a_tie() {
    // overhead/weight: 0/3 vs 0/1 tie -> 0; 256/3 vs 0 -> 1; 256/3 vs 256 -> 0; 512/3 -> 0;
    // 768/3 = 256 tie -> 0; 1024/3 > 256 -> 1.
    let mut p = pool("wlc", &[3, 1]);
    assert_eq!(picks(&mut p, 6, &mut zero_rng()), some(&[0, 1, 0, 0, 0, 1]));
}

#[test]
fn sed_uses_active_plus_one() {
    // (a+1)/w: 1/3<1 ->0; 2/3<1 ->0; 3/3=1/1 tie ->0; 4/3>1 ->1; 4/3<2 ->0.
    let mut p = pool("sed", &[3, 1]);
    assert_eq!(picks(&mut p, 5, &mut zero_rng()), some(&[0, 0, 0, 1, 0]));
}

#[test]
fn nq_takes_the_first_idle_backend() {
    // idle 0; idle 1; then sed: 2/3 < 2 -> 0; 3/3 < 2 -> 0; 4/3 < 2 -> 0; 5/3 < 2 -> 0; 6/3 = 2 tie -> 0.
    let mut p = pool("nq", &[3, 1]);
    assert_eq!(picks(&mut p, 4, &mut zero_rng()), some(&[0, 1, 0, 0]));
    // An idle backend wins whatever its weight.
    let mut p = pool("nq", &[100, 1]);
    assert_eq!(picks(&mut p, 2, &mut zero_rng()), some(&[0, 1]));
}

#[test]
fn fo_takes_the_first_highest_weight() {
    let mut p = pool("fo", &[1, 3, 3]);
    assert_eq!(picks(&mut p, 3, &mut zero_rng()), some(&[1, 1, 1]));
    p.set_thresholds(BackendId(1), Thresholds { upper: 3, lower: 0 })
        .unwrap();
    p.conn_opened(BackendId(1), ConnState::Active).unwrap(); // 4 >= 3: overloaded
    assert_eq!(picks(&mut p, 1, &mut zero_rng()), some(&[2]));
}

#[test]
fn wrr_skips_an_overloaded_backend_until_its_flag_clears() {
    let mut p = pool("wrr", &[2, 1]);
    p.set_thresholds(BackendId(0), Thresholds { upper: 1, lower: 0 })
        .unwrap();
    p.conn_opened(BackendId(0), ConnState::Active).unwrap(); // 1 >= 1: overloaded
    assert_eq!(picks(&mut p, 3, &mut zero_rng()), some(&[1, 1, 1]));
    // Connections that leave the flag as it is change nothing either.
    p.conn_opened(BackendId(1), ConnState::Active).unwrap();
    p.conn_closed(BackendId(1), ConnState::Active).unwrap();
    assert_eq!(picks(&mut p, 2, &mut zero_rng()), some(&[1, 1]));
    // Cleared (0 < 3/4 of 1): the kernel's walk (cw back at 2) takes 0, whose new connection
    // overloads it again.
    p.conn_closed(BackendId(0), ConnState::Active).unwrap();
    assert_eq!(picks(&mut p, 3, &mut zero_rng()), some(&[0, 1, 1]));
}

#[test]
fn ovf_overflows_past_active_above_weight() {
    let mut p = pool("ovf", &[2, 1]);
    assert_eq!(
        picks(&mut p, 6, &mut zero_rng()),
        vec![Some(0), Some(0), Some(0), Some(1), Some(1), None]
    );
}

#[test]
fn twos_replays_the_kernel_draws() {
    // weights 1,2,3: total 7; r % 7 lands on the first backend whose running sum reaches r.
    let mut p = pool("twos", &[1, 2, 3]);
    // r1 = 2 -> backend 1, r2 = 6 -> backend 2; both idle: w2*oh1 = 0 > w1*oh2 = 0 is false.
    assert_eq!(picks(&mut p, 1, &mut Script(vec![2, 6], 0)), some(&[1]));
    // Now 1 has one active (256): w2*oh1 = 3*256 > 2*0 -> the second draw wins.
    assert_eq!(picks(&mut p, 1, &mut Script(vec![2, 6], 0)), some(&[2]));
    // r = 0 lands on the first schedulable backend; r = 7 wraps to 0.
    assert_eq!(picks(&mut p, 1, &mut Script(vec![7, 0], 0)), some(&[0]));
}

fn src(s: &str) -> Request {
    Request::from_src(s.parse::<SocketAddr>().unwrap())
}

/// `hash_32(port + addr, 8)` from include/linux/hash.h, for the expected bucket.
fn sh_bucket(addr: u32, port: u16) -> usize {
    ((port as u32).wrapping_add(addr).wrapping_mul(0x61C8_8647) >> 24) as usize
}

#[test]
fn sh_tiles_by_weight_and_hashes_the_source() {
    // Weights 2,1 tile the 256 buckets as 0 0 1 0 0 1 ...
    let p = pool("sh", &[2, 1]);
    for a in ["10.0.0.1", "10.0.0.2", "192.168.7.9", "172.16.0.200"] {
        let addr = u32::from(a.parse::<core::net::Ipv4Addr>().unwrap());
        let expected = [0, 0, 1][sh_bucket(addr, 0) % 3];
        let got = p.lookup(&src(&format!("{a}:1234"))).unwrap();
        assert_eq!(got, Some(BackendId(expected)), "{a}");
    }
}

#[test]
fn sh_port_and_fallback_flags() {
    let alg = Algorithm::from_name("sh")
        .unwrap()
        .with_flag("sh-port")
        .unwrap();
    let backends = (0..4).map(|i| Backend::new(BackendId(i), 1));
    let p = Pool::with_backends(PoolConfig::new(alg), backends.clone()).unwrap();
    let addr = u32::from(core::net::Ipv4Addr::new(10, 9, 8, 7));
    for port in [1u16, 80, 443, 65535] {
        let expected = (sh_bucket(addr, port) % 4) as u32;
        assert_eq!(
            p.lookup(&src(&format!("10.9.8.7:{port}"))).unwrap(),
            Some(BackendId(expected))
        );
    }
    // Without fallback a down backend's clients get nothing; with it they probe on.
    let req = src("10.9.8.7:0");
    let home = (sh_bucket(addr, 0) % 4) as u32;
    let mut plain = Pool::with_backends(
        PoolConfig::new(Algorithm::from_name("sh").unwrap()),
        backends.clone(),
    )
    .unwrap();
    plain
        .set_availability(BackendId(home), Availability::Down, T0)
        .unwrap();
    assert_eq!(plain.lookup(&req).unwrap(), None);
    let alg = Algorithm::from_name("sh")
        .unwrap()
        .with_flag("sh-fallback")
        .unwrap();
    let mut fb = Pool::with_backends(PoolConfig::new(alg), backends).unwrap();
    fb.set_availability(BackendId(home), Availability::Down, T0)
        .unwrap();
    let other = fb.lookup(&req).unwrap().unwrap();
    assert_ne!(other, BackendId(home));
    // ip_vs_sh_get_fallback: roffset = (offset + ihash) % 256, bucket = (roffset + hash) & 255.
    let ihash = sh_bucket(addr, 0);
    let expected = (0..256)
        .map(|off| ((off + ihash) % 256 + ihash) & 255)
        .map(|b| (b % 4) as u32)
        .find(|&b| b != home)
        .unwrap();
    assert_eq!(other, BackendId(expected));
}

#[test]
fn dh_hashes_the_destination_one_bucket_each() {
    let p = pool("dh", &[5, 1, 1]);
    for a in ["198.51.100.7", "203.0.113.1", "10.0.0.1"] {
        let addr = u32::from(a.parse::<core::net::Ipv4Addr>().unwrap());
        let bucket = (addr.wrapping_mul(2_654_435_761) & 255) as usize;
        let req = Request::default().with_dst(format!("{a}:80").parse().unwrap());
        assert_eq!(
            p.lookup(&req).unwrap(),
            Some(BackendId((bucket % 3) as u32)),
            "{a}"
        );
    }
}

#[test]
fn ipv6_addresses_fold_by_xor() {
    let v6: core::net::IpAddr = "2001:db8::1".parse().unwrap();
    assert_eq!(lb_sched::fold_addr(&v6), 0x2001_0db8 ^ 1);
}

#[test]
fn lblc_sticks_until_the_locality_overload_rule() {
    let mut p = pool("lblc", &[2, 2]);
    let to = |a: &str| Request::default().with_dst(format!("{a}:80").parse().unwrap());
    let mut rng = zero_rng();
    let mut pick = |p: &mut Pool, a: &str| {
        let id = p.pick(&to(a), T0, &mut rng).unwrap();
        p.conn_opened(id, ConnState::Active).unwrap();
        id.0
    };
    assert_eq!(pick(&mut p, "192.0.2.1"), 0);
    assert_eq!(pick(&mut p, "192.0.2.2"), 1); // wlc: 256/2 vs 0
    assert_eq!(pick(&mut p, "192.0.2.1"), 0); // cached: active 1 <= weight 2
    assert_eq!(pick(&mut p, "192.0.2.1"), 0); // active 2 <= 2
    // Backend 0 has 3 active > weight 2, but no backend is below half its weight
    // (backend 1: 1*2 < 2 is false), so the cache holds.
    assert_eq!(pick(&mut p, "192.0.2.1"), 0);
    // Free backend 1: now 0*2 < 2, so backend 0 counts as overloaded and wlc re-picks.
    p.conn_closed(BackendId(1), ConnState::Active).unwrap();
    assert_eq!(pick(&mut p, "192.0.2.1"), 1);
    assert_eq!(pick(&mut p, "192.0.2.1"), 1); // the entry now names 1
}

#[test]
fn lblcr_grows_the_set_when_its_members_are_overloaded() {
    let mut p = pool("lblcr", &[1, 1]);
    let req = Request::default().with_dst("192.0.2.9:80".parse().unwrap());
    let mut rng = zero_rng();
    let mut pick = |p: &mut Pool| {
        let id = p.pick(&req, T0, &mut rng).unwrap();
        p.conn_opened(id, ConnState::Active).unwrap();
        id.0
    };
    assert_eq!(pick(&mut p), 0);
    assert_eq!(pick(&mut p), 0); // active 1 <= weight 1
    // active 2 > 1 and backend 1 is idle (0 < 1/2): overloaded, add wlc's pick (1) to the set.
    assert_eq!(pick(&mut p), 1);
    // The set is {1, 0}: the least loaded member per weight is 1 (1 active vs 2).
    assert_eq!(pick(&mut p), 1);
}

#[test]
fn overload_hysteresis_sets_at_upper_and_clears_below_three_quarters() {
    let mut p = pool("rr", &[1]);
    let id = BackendId(0);
    p.set_thresholds(id, Thresholds { upper: 4, lower: 0 })
        .unwrap();
    for _ in 0..3 {
        p.conn_opened(id, ConnState::Active).unwrap();
    }
    assert!(!p.backend(id).unwrap().is_overloaded());
    p.conn_opened(id, ConnState::Inactive).unwrap(); // total 4 >= 4
    assert!(p.backend(id).unwrap().is_overloaded());
    assert_eq!(p.pick(&Request::default(), T0, &mut zero_rng()), None);
    p.conn_closed(id, ConnState::Inactive).unwrap(); // 3 * 4 < 12 is false: still overloaded
    assert!(p.backend(id).unwrap().is_overloaded());
    p.conn_closed(id, ConnState::Active).unwrap(); // 2 * 4 < 12: cleared
    assert!(!p.backend(id).unwrap().is_overloaded());
    // With a lower threshold, it clears only below it.
    p.set_thresholds(id, Thresholds { upper: 3, lower: 1 })
        .unwrap();
    p.conn_opened(id, ConnState::Active).unwrap(); // 3 >= 3
    assert!(p.backend(id).unwrap().is_overloaded());
    p.conn_closed(id, ConnState::Active).unwrap(); // 2 < 1? no
    p.conn_closed(id, ConnState::Active).unwrap(); // 1 < 1? no
    assert!(p.backend(id).unwrap().is_overloaded());
    p.conn_closed(id, ConnState::Active).unwrap(); // 0 < 1
    assert!(!p.backend(id).unwrap().is_overloaded());
    // Raising the upper threshold clears the flag at once (__ip_vs_update_dest).
    p.set_thresholds(id, Thresholds { upper: 1, lower: 0 })
        .unwrap();
    p.conn_opened(id, ConnState::Active).unwrap();
    assert!(p.backend(id).unwrap().is_overloaded());
    p.set_thresholds(id, Thresholds { upper: 5, lower: 0 })
        .unwrap();
    assert!(!p.backend(id).unwrap().is_overloaded());
}
