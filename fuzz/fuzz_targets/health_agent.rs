//! Feeds arbitrary bytes to lb-health's HAProxy agent-check parser and agent probe.
//!
//! Contract held here: nothing panics; an accepted weight is at most 256 %; the probe's
//! verdict agrees with the parser (a garbled line is inconclusive, `down` a hard failure).
#![no_main]

use lb_health::probe::AgentProbe;
use lb_health::{AgentHealth, Probe, Step, Verdict, parse_agent_line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let parsed = parse_agent_line(data);
    if let Ok(r) = &parsed {
        assert!(r.weight_percent.is_none_or(|w| w <= 256));
        assert!(r.description.as_ref().is_none_or(|d| d.len() <= 256));
    }
    let mut probe = AgentProbe::new(&Default::default());
    let _ = probe.start();
    let step = match probe.on_bytes(data) {
        Step::NeedMore => probe.on_eof(),
        s => s,
    };
    let Step::Done(outcome) = step else {
        panic!("the agent probe concludes at end of input");
    };
    // The probe judges at most the first 1 KiB, up to the first newline.
    let line_end = data
        .iter()
        .position(|&b| b == b'\n')
        .map_or(data.len(), |i| i + 1);
    if line_end <= 1024 {
        let expected = match parse_agent_line(&data[..line_end]) {
            Err(_) => Verdict::Inconclusive,
            Ok(r) if r.health == Some(AgentHealth::Down) => Verdict::HardFail,
            Ok(_) => Verdict::Pass,
        };
        assert_eq!(outcome.verdict, expected);
    }
});
