//! The demo's scenario in a deterministic simulator (no root needed): two lb-vrrp routers on
//! a virtual wire, an lb-forward datapath in each director, and lb-health trackers for the three
//! reals, all on one virtual clock. Nothing here sleeps: time jumps to the next timeout, so
//! the run takes milliseconds and gives the same figures every time.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use lb::forward::testing::{SYN, tcp};
use lb::forward::{
    Forwarder, Frame, InterfaceConfig, Method, NextHop, PoolScheduler, Protocol, RealConfig,
    ServiceConfig, ServiceKey, Settings, Verdict,
};
use lb::health::{Outcome, Reason, State as Health, Tracker, TrackerConfig};
use lb::sched::{Algorithm, PoolConfig};
use lb::vrrp::wire::IpMeta;
use lb::vrrp::{Config, Event, Router, State};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::{Phase, Scenario, Summary};

const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
const IFINDEX: u32 = 2;

fn mac(last: u8) -> [u8; 6] {
    [2, 0, 0, 0, 0, last]
}

/// One simulated director: a VRRP router and a datapath.
struct Director {
    router: Router,
    forwarder: Forwarder,
    alive: bool,
}

fn director(last: u8, priority: u8, seed: u64) -> Director {
    let mut config = Config::new(
        51,
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)),
        vec![IpAddr::V4(VIP)],
    );
    config.priority = priority;
    config.interval = Duration::from_millis(100);
    let router = Router::new(config).expect("a valid VRRP configuration");
    let mut forwarder = Forwarder::new(Settings {
        hash_seed: seed,
        ..Settings::default()
    });
    forwarder.set_interface(InterfaceConfig {
        index: IFINDEX,
        mac: mac(last),
        mtu: 1500,
        ipv4: Some(Ipv4Addr::new(10, 0, 0, last)),
        ipv6: None,
    });
    let key = service();
    let sched = PoolScheduler::new(PoolConfig::new(Algorithm::Rr), seed).expect("rr");
    forwarder
        .add_service(key, ServiceConfig::default(), sched)
        .expect("a new service");
    for r in 0..3 {
        forwarder
            .add_real(&key, real(r), Duration::ZERO)
            .expect("a new real");
        forwarder.set_next_hop(
            real(r).addr.ip(),
            Some(NextHop {
                interface: IFINDEX,
                mac: mac(4 + r as u8),
            }),
        );
    }
    Director {
        router,
        forwarder,
        alive: true,
    }
}

fn service() -> ServiceKey {
    ServiceKey::new(Protocol::Tcp, SocketAddr::new(IpAddr::V4(VIP), 80))
}

fn real(i: usize) -> RealConfig {
    RealConfig::new(
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 4 + i as u8)), 80),
        1,
        Method::Dr,
    )
}

/// The whole scenario; returns the same summary the lab prints.
pub(crate) fn run(scenario: &Scenario, print: &mut dyn FnMut(&str)) -> Summary {
    let mut rng = StdRng::seed_from_u64(7);
    let mut directors = [director(2, 150, 1), director(3, 100, 2)];
    // keepalived's TCP_CHECK with delay_loop 1, retry 1, delay_before_retry 1: down after two
    // failures one second apart, up again after one success.
    let check = TrackerConfig::keepalived(
        scenario.check_interval,
        1,
        scenario.check_interval,
        Duration::ZERO,
        false,
    );
    let mut trackers: Vec<Tracker> = (0..3)
        .map(|_| Tracker::new(check, Duration::ZERO, &mut rng).expect("a valid tracker"))
        .collect();
    let mut in_datapath = [true; 3];
    let mut summary = Summary::default();
    let mut now = Duration::ZERO;
    let mut next_request = scenario.warmup;
    let mut client_port: u16 = 10_000;
    let mut phase = 0usize;
    let mut buf = Vec::new();
    let mut takeover_started = None;
    for d in &mut directors {
        d.router.handle_startup(now);
    }
    print(&format!(
        "{:>8}  simulated lab: directors 10.0.0.2 (priority 150) and 10.0.0.3 (priority 100), reals 10.0.0.4-6, VIP {VIP}",
        "0.000"
    ));
    while now <= scenario.end() {
        // VRRP: deliver each live router's adverts to the other one, then its events.
        for i in 0..2 {
            if !directors[i].alive {
                continue;
            }
            while let Some(tx) = directors[i].router.poll_transmit(&mut buf) {
                let meta = IpMeta {
                    src: tx.src,
                    dst: tx.dst,
                    hop_limit: 255,
                };
                if directors[1 - i].alive {
                    directors[1 - i].router.handle_advert(now, &meta, &buf);
                }
            }
        }
        for (i, d) in directors.iter_mut().enumerate() {
            while let Some(event) = d.router.poll_event() {
                if let Event::StateChanged { to, reason, .. } = event {
                    print(&format!(
                        "{:>8.3}  director {} {to}: {reason}",
                        now.as_secs_f64(),
                        i + 1
                    ));
                    if to == State::Master {
                        if let Some(killed) = takeover_started.take() {
                            summary.takeover = Some(now - killed);
                        }
                    }
                }
            }
        }
        // Health: run the due probes against the reals' simulated servers.
        for (r, tracker) in trackers.iter_mut().enumerate() {
            if tracker.next_probe_at().is_some_and(|t| t <= now) {
                let outcome = if scenario.real_down(r, now) {
                    Outcome::fail(Reason::Refused)
                } else {
                    Outcome::pass(Reason::Connected)
                };
                tracker.observe(now, &outcome, &mut rng);
            }
            tracker.handle_timeout(now);
            while let Some(t) = tracker.poll_transition() {
                let up = t.to == Health::Up;
                if up != in_datapath[r] {
                    print(&format!(
                        "{:>8.3}  real 10.0.0.{} {} ({})",
                        now.as_secs_f64(),
                        4 + r,
                        if up {
                            "UP: added back"
                        } else {
                            "DOWN: removed"
                        },
                        t.reason
                    ));
                    for d in &mut directors {
                        let result = if up {
                            d.forwarder.add_real(&service(), real(r), now)
                        } else {
                            d.forwarder.remove_real(&service(), real(r).addr)
                        };
                        result.expect("the real's presence matches in_datapath");
                        if up {
                            d.forwarder.set_next_hop(
                                real(r).addr.ip(),
                                Some(NextHop {
                                    interface: IFINDEX,
                                    mac: mac(4 + r as u8),
                                }),
                            );
                        }
                    }
                    in_datapath[r] = up;
                }
            }
        }
        // Phases and the scripted failure of the master.
        while phase < scenario.phases.len() && now >= scenario.phases[phase].start {
            let p = &scenario.phases[phase];
            print(&format!("{:>8.3}  -- {} --", now.as_secs_f64(), p.name));
            if p.kill_master {
                if let Some(i) = directors
                    .iter()
                    .position(|d| d.alive && d.router.state() == State::Master)
                {
                    directors[i].alive = false;
                    takeover_started = Some(now);
                    print(&format!(
                        "{:>8.3}  director {} killed (no priority-0 advert)",
                        now.as_secs_f64(),
                        i + 1
                    ));
                }
            }
            summary.phases.push(Phase {
                name: p.name.clone(),
                ..Phase::default()
            });
            phase += 1;
        }
        // The client: a new connection every request interval, to whichever director owns the VIP.
        if now >= next_request && phase > 0 {
            next_request += scenario.request_interval;
            client_port = client_port.wrapping_add(1).max(10_000);
            let stats = summary.phases.last_mut().expect("a phase started");
            let owner = directors
                .iter_mut()
                .find(|d| d.alive && d.router.state() == State::Master);
            let answered = owner.and_then(|d| {
                let client = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), client_port);
                let syn = tcp(
                    mac(1),
                    d.forwarder.interfaces()[0].mac,
                    client,
                    SocketAddr::new(IpAddr::V4(VIP), 80),
                    SYN,
                    b"",
                );
                let mut frame = Frame::from_bytes(&syn, IFINDEX);
                (d.forwarder.process(now, &mut frame) == Verdict::Transmit)
                    .then(|| usize::from(frame.bytes()[5]) - 4)
            });
            match answered {
                Some(r) if !scenario.real_down(r, now) => stats.per_real[r] += 1,
                _ => stats.failed += 1,
            }
        }
        // Jump to the next thing that happens.
        let mut next = next_request.min(scenario.end() + Duration::from_millis(1));
        for d in directors.iter().filter(|d| d.alive) {
            next = d.router.poll_timeout().map_or(next, |t| next.min(t));
        }
        for t in &trackers {
            next = t.next_probe_at().map_or(next, |x| next.min(x));
            next = t.poll_timeout().map_or(next, |x| next.min(x));
        }
        if let Some(p) = scenario.phases.get(phase) {
            next = next.min(p.start);
        }
        now = next.max(now + Duration::from_micros(1));
        for d in directors.iter_mut().filter(|d| d.alive) {
            if d.router.poll_timeout().is_some_and(|t| t <= now) {
                d.router.handle_timeout(now);
            }
        }
    }
    summary
}
