//! Drives lb-health's `Tracker` with arbitrary configurations and operation sequences.
//!
//! Contract held here: nothing panics (invalid configurations are rejected, not obeyed);
//! transitions chain (each starts where the previous ended) and never repeat a state; the
//! next probe is never scheduled before the operation that scheduled it; the effective weight
//! is 0 unless the tracker is up.
#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use lb_fuzz::{FuzzRng, RngSpec};
use lb_health::{
    Admin, Backoff, Counting, FlapDamping, InitialState, Jitter, Outcome, Reason, ReportedWeight,
    SlowStart, State, Tracker, TrackerConfig, Verdict,
};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Op {
    Observe {
        verdict: u8,
        after_ms: u16,
        weight: Option<u16>,
    },
    Admin {
        which: u8,
        after_ms: u16,
    },
    Timeout {
        after_ms: u16,
    },
    Weight {
        at_ms: u16,
        configured: u32,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    rng: RngSpec,
    rise: u8,
    fall: u8,
    saturating: bool,
    initial: u8,
    intervals_ms: [u16; 5],
    warmup_ms: u16,
    spread: u8,
    backoff: Option<(u8, u16)>,
    slow_start: Option<(u16, u8, u8)>,
    damping: Option<(u16, u16, u16, u16, u16)>,
    history: u8,
    ops: Vec<Op>,
}

fuzz_target!(|input: Input| {
    let ms = |v: u16| Duration::from_millis(u64::from(v));
    let mut rng = FuzzRng::from_spec(&input.rng);
    let mut cfg = TrackerConfig::new(Duration::from_secs(1));
    cfg.rise = u32::from(input.rise);
    cfg.fall = u32::from(input.fall);
    cfg.counting = if input.saturating {
        Counting::Saturating
    } else {
        Counting::Consecutive
    };
    cfg.initial = match input.initial % 5 {
        0 => InitialState::Up,
        1 => InitialState::UpFragile,
        2 => InitialState::DownFragile,
        3 => InitialState::Down,
        _ => InitialState::Unknown,
    };
    let [up, falling, down, rising, unknown] = input.intervals_ms.map(ms);
    cfg.intervals = lb_health::Intervals {
        up,
        falling,
        down,
        rising,
        unknown,
    };
    cfg.jitter = Jitter {
        warmup: ms(input.warmup_ms),
        spread_percent: input.spread,
    };
    cfg.backoff = input.backoff.map(|(f, m)| Backoff {
        factor: u32::from(f),
        max: ms(m),
    });
    cfg.slow_start = input.slow_start.map(|(w, a, m)| SlowStart {
        window: ms(w),
        aggression: f64::from(a) / 16.0,
        min_percent: m,
    });
    cfg.damping = input.damping.map(|(p, h, s, r, c)| FlapDamping {
        penalty: u32::from(p),
        half_life: ms(h),
        suppress: u32::from(s),
        reuse: u32::from(r),
        ceiling: u32::from(c),
    });
    cfg.history = usize::from(input.history);
    let Ok(mut t) = Tracker::new(cfg, Duration::ZERO, &mut rng) else {
        return;
    };
    let mut now = Duration::ZERO;
    let mut last = State::Unknown;
    for op in input.ops.into_iter().take(256) {
        match op {
            Op::Observe {
                verdict,
                after_ms,
                weight,
            } => {
                now += ms(after_ms);
                let v = [
                    Verdict::Pass,
                    Verdict::Fail,
                    Verdict::HardFail,
                    Verdict::Inconclusive,
                ];
                let mut o = Outcome::new(v[usize::from(verdict % 4)], Reason::Connected);
                o.weight = weight.map(|w| ReportedWeight::Percent(u32::from(w)));
                t.observe(now, &o, &mut rng);
                if let Some(next) = t.next_probe_at() {
                    assert!(next >= now, "next probe scheduled in the past");
                }
            }
            Op::Admin { which, after_ms } => {
                now += ms(after_ms);
                let a = [Admin::Ready, Admin::Drain, Admin::Maint][usize::from(which % 3)];
                t.set_admin(now, a);
            }
            Op::Timeout { after_ms } => {
                now += ms(after_ms);
                t.handle_timeout(now);
            }
            Op::Weight { at_ms, configured } => {
                let w = t.effective_weight(now + ms(at_ms), configured);
                if t.state() != State::Up {
                    assert_eq!(w, 0);
                }
            }
        }
        while let Some(tr) = t.poll_transition() {
            assert_eq!(tr.from, last, "transitions chain");
            assert_ne!(tr.from, tr.to);
            last = tr.to;
        }
        assert!(t.history().len() <= usize::from(input.history));
    }
});
