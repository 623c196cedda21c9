//! Invariants of the tracker and the parsers over arbitrary inputs (proptest).

use std::time::Duration;

use lb_health::probe::{ResponseParser, StatusSet, parse_masked_hex};
use lb_health::{Counting, InitialState, Outcome, Reason, State, Tracker, TrackerConfig, Verdict};
use proptest::prelude::*;
use rand::{SeedableRng, rngs::StdRng};

fn outcome(pass: bool) -> Outcome {
    if pass {
        Outcome::pass(Reason::Connected)
    } else {
        Outcome::fail(Reason::Refused)
    }
}

proptest! {
    /// Consecutive counting: the published state flips exactly when the last `rise` (or
    /// `fall`) outcomes are all opposite to it, and transitions alternate.
    #[test]
    fn consecutive_matches_a_reference_model(
        rise in 1u32..5, fall in 1u32..5,
        results in proptest::collection::vec(any::<bool>(), 0..200),
        seed in any::<u64>(),
    ) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut cfg = TrackerConfig::new(Duration::from_secs(1));
        cfg.rise = rise;
        cfg.fall = fall;
        cfg.initial = InitialState::Up;
        let mut t = Tracker::new(cfg, Duration::ZERO, &mut rng).unwrap();
        let mut model_up = true;
        let mut streak = 0u32;
        let mut last = t.poll_transition().unwrap().to;
        for (i, &pass) in results.iter().enumerate() {
            let now = Duration::from_secs(i as u64 + 1);
            t.observe(now, &outcome(pass), &mut rng);
            if pass != model_up {
                streak += 1;
                if streak >= if pass { rise } else { fall } {
                    model_up = pass;
                    streak = 0;
                }
            } else {
                streak = 0;
            }
            let want = if model_up { State::Up } else { State::Down };
            prop_assert_eq!(t.state(), want);
            while let Some(tr) = t.poll_transition() {
                prop_assert_eq!(tr.from, last);
                prop_assert_ne!(tr.from, tr.to);
                last = tr.to;
            }
        }
    }

    /// Saturating counting, whatever came before, is down after `fall` failures in a row and
    /// up after `rise` passes in a row.
    #[test]
    fn saturating_streaks_always_flip(
        rise in 1u32..5, fall in 1u32..5,
        prefix in proptest::collection::vec(any::<bool>(), 0..50),
        seed in any::<u64>(),
    ) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut cfg = TrackerConfig::new(Duration::from_secs(1));
        cfg.rise = rise;
        cfg.fall = fall;
        cfg.counting = Counting::Saturating;
        cfg.initial = InitialState::Down;
        let mut t = Tracker::new(cfg, Duration::ZERO, &mut rng).unwrap();
        let mut now = Duration::ZERO;
        let mut feed = |t: &mut Tracker, pass: bool| {
            now += Duration::from_secs(1);
            t.observe(now, &outcome(pass), &mut rng);
        };
        for &p in &prefix {
            feed(&mut t, p);
        }
        for _ in 0..fall {
            feed(&mut t, false);
        }
        prop_assert_eq!(t.state(), State::Down);
        for _ in 0..rise {
            feed(&mut t, true);
        }
        prop_assert_eq!(t.state(), State::Up);
    }

    /// The next probe is never scheduled before the observation that scheduled it, and the
    /// jittered interval stays within its spread.
    #[test]
    fn schedule_is_monotonic_and_bounded(
        spread in 0u8..=50, seed in any::<u64>(),
        results in proptest::collection::vec(any::<bool>(), 1..100),
        lateness_ms in proptest::collection::vec(0u64..3000, 1..100),
    ) {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut cfg = TrackerConfig::new(Duration::from_secs(2));
        cfg.jitter.spread_percent = spread;
        let mut t = Tracker::new(cfg, Duration::ZERO, &mut rng).unwrap();
        for (i, &pass) in results.iter().enumerate() {
            let slot = t.next_probe_at().unwrap();
            let now = slot + Duration::from_millis(lateness_ms[i % lateness_ms.len()]);
            t.observe(now, &outcome(pass), &mut rng);
            let next = t.next_probe_at().unwrap();
            prop_assert!(next >= now);
            let max = slot + Duration::from_secs(2) * (100 + u32::from(spread)) / 100;
            prop_assert!(next <= max.max(now));
            prop_assert!(t.history().all(|o| o.verdict != Verdict::Inconclusive));
        }
    }

    /// Status sets print back to text that parses to the same set.
    #[test]
    fn status_sets_round_trip(ranges in proptest::collection::vec((100u16..1000, 0u16..50), 1..6)) {
        let text: Vec<String> = ranges
            .iter()
            .map(|&(lo, len)| format!("{lo}-{}", (lo + len).min(999)))
            .collect();
        let set: StatusSet = text.join(" ").parse().unwrap();
        let again: StatusSet = set.to_string().parse().unwrap();
        prop_assert_eq!(&set, &again);
        for &(lo, _) in &ranges {
            prop_assert!(set.contains(lo));
        }
    }

    /// Masked hex: every byte of a plain hex string parses with a full mask.
    #[test]
    fn masked_hex_plain(bytes in proptest::collection::vec(any::<u8>(), 1..64)) {
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let parsed = parse_masked_hex(&hex).unwrap();
        prop_assert_eq!(parsed, bytes.iter().map(|&b| (b, 0xff)).collect::<Vec<_>>());
    }

    /// A well-formed response with any body, in any split, parses to that body.
    #[test]
    fn response_body_survives_any_split(
        body in proptest::collection::vec(any::<u8>(), 0..300),
        chunk in 1usize..40,
        piece in 1usize..50,
        chunked in any::<bool>(),
    ) {
        let mut r = b"HTTP/1.1 200 OK\r\n".to_vec();
        if chunked {
            r.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            for c in body.chunks(chunk) {
                r.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                r.extend_from_slice(c);
                r.extend_from_slice(b"\r\n");
            }
            r.extend_from_slice(b"0\r\n\r\n");
        } else {
            r.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
            r.extend_from_slice(&body);
        }
        let mut p = ResponseParser::new(1000);
        let mut got = Vec::new();
        for part in r.chunks(piece) {
            p.feed(part, &mut |b| got.extend_from_slice(b)).unwrap();
        }
        prop_assert!(p.is_complete());
        prop_assert_eq!(got, body);
    }
}
