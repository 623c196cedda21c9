//! Deterministic simulation: N routers on one virtual segment with a virtual clock, latency and
//! jitter, seeded loss, partitions, a stalled process and a hard kill. Thousands of seeds; a
//! failing seed replays exactly (the panic message names it).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use lb_vrrp::timers::{master_down_interval, skew_time};
use lb_vrrp::wire::{IpMeta, Version};
use lb_vrrp::{ChecksumMode, Config, Event, Reason, Router, State};

/// splitmix64: a seeded generator small enough to keep the simulator self-contained.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

struct Node {
    router: Router,
    alive: bool,
    stalled_until: Option<Duration>,
    inbox: Vec<(IpMeta, Vec<u8>)>,
    /// (time, to, reason) of every state change.
    changes: Vec<(Duration, State, Reason)>,
    /// When each advert from each sender last reached this node.
    last_rx_from: Vec<Option<Duration>>,
}

struct Packet {
    to: usize,
    from: usize,
    bytes: Vec<u8>,
    meta: IpMeta,
}

struct Sim {
    now: Duration,
    nodes: Vec<Node>,
    queue: BinaryHeap<Reverse<(Duration, u64, usize)>>,
    packets: Vec<Option<Packet>>,
    seq: u64,
    latency: Duration,
    jitter_us: u64,
    loss_percent: u64,
    /// Partition side of each node; packets cross only within one side.
    side: Vec<u8>,
    rng: Rng,
    buf: Vec<u8>,
}

fn addr(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, i as u8 + 1))
}

impl Sim {
    fn new(seed: u64, configs: Vec<Config>, latency: Duration, jitter_us: u64) -> Sim {
        let n = configs.len();
        Sim {
            now: Duration::ZERO,
            nodes: configs
                .into_iter()
                .map(|c| Node {
                    router: Router::new(c).unwrap(),
                    alive: true,
                    stalled_until: None,
                    inbox: Vec::new(),
                    changes: Vec::new(),
                    last_rx_from: vec![None; n],
                })
                .collect(),
            queue: BinaryHeap::new(),
            packets: Vec::new(),
            seq: 0,
            latency,
            jitter_us,
            loss_percent: 0,
            side: vec![0; n],
            rng: Rng(seed),
            buf: Vec::new(),
        }
    }

    fn start(&mut self, i: usize) {
        self.nodes[i].router.handle_startup(self.now);
        self.flush(i);
    }

    /// Sends what node `i` has to send and records its events.
    fn flush(&mut self, i: usize) {
        while let Some(tx) = self.nodes[i].router.poll_transmit(&mut self.buf) {
            for to in 0..self.nodes.len() {
                if to == i || self.side[to] != self.side[i] || self.rng.chance(self.loss_percent) {
                    continue;
                }
                let jitter = Duration::from_micros(self.rng.below(self.jitter_us + 1));
                let at = self.now + self.latency + jitter;
                self.seq += 1;
                self.queue.push(Reverse((at, self.seq, self.packets.len())));
                self.packets.push(Some(Packet {
                    to,
                    from: i,
                    bytes: self.buf.clone(),
                    meta: IpMeta {
                        src: tx.src,
                        dst: tx.dst,
                        hop_limit: 255,
                    },
                }));
            }
        }
        let now = self.now;
        let node = &mut self.nodes[i];
        while let Some(event) = node.router.poll_event() {
            if let Event::StateChanged { to, reason, .. } = event {
                node.changes.push((now, to, reason));
            }
        }
    }

    fn kill(&mut self, i: usize) {
        self.nodes[i].alive = false;
    }

    /// Runs every event up to `until`.
    fn run_until(&mut self, until: Duration) {
        loop {
            let next_packet = self.queue.peek().map(|Reverse((at, _, _))| *at);
            let next_timer = self
                .nodes
                .iter()
                .filter(|n| n.alive)
                .filter_map(|n| match n.stalled_until {
                    Some(t) => Some(t),
                    None => n.router.poll_timeout(),
                })
                .min();
            let Some(next) = [next_packet, next_timer].into_iter().flatten().min() else {
                self.now = until;
                return;
            };
            if next > until {
                self.now = until;
                return;
            }
            self.now = next;
            while let Some(Reverse((at, _, id))) = self.queue.peek().copied() {
                if at > self.now {
                    break;
                }
                self.queue.pop();
                if let Some(p) = self.packets[id].take() {
                    self.deliver(p);
                }
            }
            for i in 0..self.nodes.len() {
                if !self.nodes[i].alive {
                    continue;
                }
                if let Some(t) = self.nodes[i].stalled_until {
                    if t > self.now {
                        continue;
                    }
                    // The process runs again: it reads what queued up, then its timers.
                    self.nodes[i].stalled_until = None;
                    for (meta, bytes) in std::mem::take(&mut self.nodes[i].inbox) {
                        self.nodes[i].router.handle_advert(self.now, &meta, &bytes);
                    }
                }
                if self.nodes[i]
                    .router
                    .poll_timeout()
                    .is_some_and(|t| t <= self.now)
                {
                    self.nodes[i].router.handle_timeout(self.now);
                }
                self.flush(i);
            }
        }
    }

    fn deliver(&mut self, p: Packet) {
        let node = &mut self.nodes[p.to];
        if !node.alive {
            return;
        }
        node.last_rx_from[p.from] = Some(self.now);
        if node.stalled_until.is_some() {
            node.inbox.push((p.meta, p.bytes));
            return;
        }
        node.router.handle_advert(self.now, &p.meta, &p.bytes);
        self.flush(p.to);
    }

    fn masters(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| self.nodes[*i].alive && self.nodes[*i].router.state() == State::Master)
            .collect()
    }

    fn changes_after(&self, t: Duration) -> usize {
        self.nodes
            .iter()
            .map(|n| n.changes.iter().filter(|c| c.0 > t).count())
            .sum()
    }
}

/// The router that should win among `alive` when all start together: highest priority, then
/// highest address. (A backup never preempts an equal priority, RFC 9568 §6.4.2, so after
/// staggered starts any of the highest priority may hold the role: see [`one_best_master`].)
fn expected_master(configs: &[Config], alive: impl Fn(usize) -> bool) -> usize {
    (0..configs.len())
        .filter(|i| alive(*i))
        .max_by_key(|i| (configs[*i].priority, configs[*i].primary))
        .unwrap()
}

/// Exactly one master, with the highest priority.
fn one_best_master(sim: &Sim, configs: &[Config], seed: u64) -> usize {
    let masters = sim.masters();
    assert_eq!(masters.len(), 1, "seed {seed}: one master, not {masters:?}");
    let best = configs.iter().map(|c| c.priority).max().unwrap();
    assert_eq!(
        configs[masters[0]].priority, best,
        "seed {seed}: the master has the best priority"
    );
    masters[0]
}

/// Random routers: version, interval, priorities (sometimes equal), all preempting.
fn random_configs(rng: &mut Rng, n: usize) -> (Vec<Config>, Version, Duration) {
    let (version, interval) = match rng.below(4) {
        0 => (Version::V2, Duration::from_secs(1)),
        1 => (Version::V3, Duration::from_millis(10)),
        _ => (Version::V3, Duration::from_millis(100)),
    };
    let vip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 100));
    let configs = (0..n)
        .map(|i| {
            let mut c = Config::new(7, addr(i), vec![vip]);
            c.version = version;
            c.interval = interval;
            c.checksum = ChecksumMode::PseudoHeader;
            c.priority = if rng.chance(20) {
                100
            } else {
                1 + rng.below(254) as u8
            };
            c
        })
        .collect();
    (configs, version, interval)
}

/// Lowest priority's Master_Down_Interval: an upper bound for everyone's.
fn worst_mdi(version: Version, interval: Duration) -> Duration {
    master_down_interval(version, 1, interval)
}

#[test]
fn election_converges_to_one_master_and_stays() {
    for seed in 0..1500u64 {
        let mut rng = Rng(seed);
        let n = 2 + rng.below(4) as usize;
        let (configs, version, interval) = random_configs(&mut rng, n);
        let latency = Duration::from_micros(100 + rng.below(400));
        let mut sim = Sim::new(seed, configs.clone(), latency, 0);
        // Staggered starts within two intervals.
        let mut starts: Vec<(Duration, usize)> = (0..n)
            .map(|i| (interval * 2 * rng.below(100) as u32 / 100, i))
            .collect();
        starts.sort();
        for (at, i) in &starts {
            sim.run_until(*at);
            sim.start(*i);
        }
        let last_start = starts.last().unwrap().0;
        let settled = last_start + worst_mdi(version, interval) + interval + latency * 2;
        sim.run_until(settled);
        let master = one_best_master(&sim, &configs, seed);
        sim.run_until(settled + interval * 20);
        assert_eq!(
            sim.changes_after(settled),
            0,
            "seed {seed}: steady state changes nothing"
        );
        assert_eq!(sim.masters(), vec![master], "seed {seed}");
    }
}

#[test]
fn takeover_after_a_hard_kill_takes_master_down_interval() {
    for seed in 0..1500u64 {
        let mut rng = Rng(seed ^ 0xdead);
        let n = 2 + rng.below(3) as usize;
        let (mut configs, version, interval) = random_configs(&mut rng, n);
        // Distinct priorities, so one backup's timer is strictly first.
        for (i, c) in configs.iter_mut().enumerate() {
            c.priority = (c.priority / 8).max(1) * 8 - i as u8 % 8;
        }
        let mut sim = Sim::new(seed, configs.clone(), Duration::from_micros(200), 0);
        for i in 0..n {
            sim.start(i);
        }
        let settled = worst_mdi(version, interval) + interval * 2;
        sim.run_until(settled);
        let master = expected_master(&configs, |_| true);
        assert_eq!(sim.masters(), vec![master], "seed {seed}");
        // Kill between two adverts.
        let kill_at = settled + interval / 3;
        sim.run_until(kill_at);
        sim.kill(master);
        sim.run_until(kill_at + worst_mdi(version, interval) + interval * 2);
        let next = expected_master(&configs, |i| i != master);
        let node = &sim.nodes[next];
        let (t, to, reason) = node
            .changes
            .iter()
            .find(|c| c.0 > kill_at)
            .cloned()
            .expect("takeover");
        assert_eq!(to, State::Master, "seed {seed}");
        assert!(
            matches!(reason, Reason::MasterDown { .. }),
            "seed {seed}: {reason}"
        );
        let last_advert = node.last_rx_from[master].unwrap();
        let formula = master_down_interval(version, configs[next].priority, interval);
        assert_eq!(
            t - last_advert,
            formula,
            "seed {seed}: takeover = last advert + MDI"
        );
        assert_eq!(sim.masters(), vec![next], "seed {seed}");
    }
}

#[test]
fn priority_zero_handover_takes_skew_time() {
    for seed in 0..1000u64 {
        let mut rng = Rng(seed ^ 0xbeef);
        let n = 2 + rng.below(3) as usize;
        let (mut configs, version, interval) = random_configs(&mut rng, n);
        for (i, c) in configs.iter_mut().enumerate() {
            c.priority = (c.priority / 8).max(1) * 8 - i as u8 % 8;
        }
        let latency = Duration::from_micros(200);
        let mut sim = Sim::new(seed, configs.clone(), latency, 0);
        for i in 0..n {
            sim.start(i);
        }
        let settled = worst_mdi(version, interval) + interval * 2;
        sim.run_until(settled);
        let master = expected_master(&configs, |_| true);
        sim.nodes[master].router.handle_shutdown(sim.now);
        let stop = sim.now;
        sim.flush(master);
        sim.kill(master);
        sim.run_until(stop + worst_mdi(version, interval));
        let next = expected_master(&configs, |i| i != master);
        let (t, to, reason) = sim.nodes[next]
            .changes
            .iter()
            .find(|c| c.0 > stop)
            .cloned()
            .unwrap();
        assert_eq!(to, State::Master, "seed {seed}");
        assert!(
            matches!(reason, Reason::MasterResigned { .. }),
            "seed {seed}: {reason}"
        );
        // Skew_Time with the interval the backup learned.
        let skew = skew_time(version, configs[next].priority, interval);
        assert_eq!(t - stop, latency + skew, "seed {seed}");
    }
}

#[test]
fn loss_and_partitions_heal_into_one_master() {
    for seed in 0..800u64 {
        let mut rng = Rng(seed ^ 0x1055);
        let n = 2 + rng.below(4) as usize;
        let (configs, version, interval) = random_configs(&mut rng, n);
        let latency = Duration::from_micros(200);
        let mut sim = Sim::new(seed, configs.clone(), latency, 300);
        for i in 0..n {
            sim.start(i);
        }
        // Lossy and partitioned for a while: anything may happen.
        sim.loss_percent = 5 + rng.below(40);
        for i in 0..n {
            sim.side[i] = rng.below(2) as u8;
        }
        sim.run_until(interval * 30);
        // Connected and lossless again.
        sim.loss_percent = 0;
        sim.side.fill(0);
        let healed = sim.now;
        let settled = healed + worst_mdi(version, interval) + interval * 2 + latency * 4;
        sim.run_until(settled);
        one_best_master(&sim, &configs, seed);
        sim.run_until(settled + interval * 10);
        assert_eq!(sim.changes_after(settled), 0, "seed {seed}");
    }
}

#[test]
fn a_stalled_master_is_replaced_then_reclaims() {
    for seed in 0..800u64 {
        let mut rng = Rng(seed ^ 0x57a1);
        let n = 2 + rng.below(3) as usize;
        let (configs, version, interval) = random_configs(&mut rng, n);
        let latency = Duration::from_micros(200);
        let mut sim = Sim::new(seed, configs.clone(), latency, 0);
        for i in 0..n {
            sim.start(i);
        }
        let settled = worst_mdi(version, interval) + interval * 2;
        sim.run_until(settled);
        let master = expected_master(&configs, |_| true);
        // keepalived #2238: the process is not scheduled for longer than the down interval.
        let stall = worst_mdi(version, interval) * 2;
        sim.nodes[master].stalled_until = Some(sim.now + stall);
        sim.run_until(settled + stall / 2 + worst_mdi(version, interval) / 2);
        let others: Vec<usize> = sim.masters().into_iter().filter(|m| *m != master).collect();
        assert_eq!(
            others.len(),
            1,
            "seed {seed}: a backup took over during the stall"
        );
        let resumed = settled + stall;
        let done = resumed + interval * 2 + latency * 4;
        sim.run_until(done);
        // The stalled master (best priority) still holds the role or an equal peer does.
        one_best_master(&sim, &configs, seed);
        sim.run_until(done + interval * 10);
        assert_eq!(sim.changes_after(done), 0, "seed {seed}");
    }
}
