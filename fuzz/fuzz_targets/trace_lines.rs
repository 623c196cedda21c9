//! Feeds arbitrary text to the trace language: every line through `Op::parse`, every parsed
//! operation through a `Tracer`, every whitespace word through `parse_endpoint`.
//!
//! Contract held here (see README.md): nothing panics (errors are fine), and an address that
//! `parse_endpoint` accepts prints back to text it parses to the same address.
//!
//! Input layout: byte 0 picks the algorithm name, byte 1 is a bit set of flags, byte 2 picks
//! an optional table size, byte 3 the number of initial servers (their weights follow, one
//! byte each); the rest is the trace text (lossy UTF-8). A first line starting with `!` gives
//! extra flags to `trace::config`, one per word (`table=N` sets the table size).
#![no_main]

use lb_fuzz::FuzzRng;
use lb_sched::Algorithm;
use lb_sched::trace::{self, Op, Tracer, parse_endpoint};
use libfuzzer_sys::fuzz_target;

const FLAGS: [&str; 8] = [
    "sh-fallback",
    "sh-port",
    "mh-fallback",
    "mh-port",
    "bounded=125",
    "slow-start=10",
    "bounded=99",
    "slow-start=0.5",
];

const TABLES: [u32; 8] = [251, 4093, 13, 65537, 16, 256, 1000, 0];

/// At most this many lines are applied, so that one input stays fast.
const MAX_LINES: usize = 2000;

/// `ring` builds `weight * 160` points per server, up to 8M: an 8M-point build takes seconds
/// under the sanitizer, so ring weights above this are not applied.
const RING_WEIGHT_CAP: u32 = 15;
/// Larger tables (Maglev accepts primes up to 5,000,011) are validated but not built: every
/// weight change rebuilds them.
const TABLE_CAP: u32 = 131_071;

/// Whether applying `op` could take seconds (see the caps above).
fn too_slow(op: &Op, weight_cap: Option<u32>) -> bool {
    match (op, weight_cap) {
        (Op::Weight(_, w) | Op::Add(w), Some(cap)) => *w > cap,
        _ => false,
    }
}

fn check_endpoint(word: &str) {
    if let Ok(addr) = parse_endpoint(word) {
        let text = addr.to_string();
        assert_eq!(
            parse_endpoint(&text),
            Ok(addr),
            "{word:?} parsed to {addr}, which does not parse back"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let [name, flag_bits, table, count, rest @ ..] = data else {
        return;
    };
    let count = (*count as usize % 16).min(rest.len());
    let (weights, text) = rest.split_at(count);
    let text = String::from_utf8_lossy(text);

    let name = Algorithm::NAMES[*name as usize % Algorithm::NAMES.len()];
    let weight_cap = match name {
        "ring" => Some(RING_WEIGHT_CAP),
        _ => None,
    };
    let weights: Vec<u32> = weights
        .iter()
        .map(|&w| weight_cap.map_or(w as u32, |cap| (w as u32).min(cap)))
        .collect();
    let mut flags: Vec<&str> = FLAGS
        .iter()
        .enumerate()
        .filter(|(i, _)| flag_bits & (1 << i) != 0)
        .map(|(_, f)| *f)
        .collect();
    let mut table = (table & 0x80 != 0).then(|| TABLES[*table as usize % TABLES.len()]);

    let mut lines = text.lines().peekable();
    if let Some(first) = lines.peek().copied().filter(|l| l.starts_with('!')) {
        lines.next();
        for word in first[1..].split_whitespace() {
            match word.strip_prefix("table=") {
                Some(n) => table = n.parse().ok(),
                None => flags.push(word),
            }
        }
    }

    let config = trace::config(name, &flags, table).ok();
    let buildable = table.is_none_or(|t| t <= TABLE_CAP);
    let mut tracer = config
        .filter(|_| buildable)
        .and_then(|config| Tracer::new(config, &weights).ok());
    let mut rng = FuzzRng::XorShift(0x9e37_79b9_7f4a_7c15);
    for line in lines.take(MAX_LINES) {
        for word in line.split_whitespace() {
            check_endpoint(word);
        }
        let Ok(Some(op)) = Op::parse(line) else {
            continue;
        };
        if too_slow(&op, weight_cap) {
            continue;
        }
        if let Some(t) = tracer.as_mut() {
            let _ = t.apply(&op, &mut rng);
        }
    }
    if let Some(t) = &tracer {
        let _ = t.stats();
    }
});
