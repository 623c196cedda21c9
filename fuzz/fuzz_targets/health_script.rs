//! Drives lb-health's send/expect scripts, masked-hex parser and SMTP probe with arbitrary
//! scripts and replies.
//!
//! Contract held here: nothing panics; `parse_masked_hex` output re-parses from its own hex;
//! a script run always ends (each input is a finite list of chunks, then end of stream or
//! a timeout).
#![no_main]

use arbitrary::Arbitrary;
use lb_health::probe::{
    BodyRegex, Expect, Pattern, ScriptCheck, ScriptProbe, ScriptStep, SmtpCheck, SmtpProbe,
    parse_masked_hex,
};
use lb_health::{Probe, Step};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum PatternSpec {
    Hex(String),
    Contains(Vec<u8>),
    Regex(String),
}

#[derive(Arbitrary, Debug)]
enum StepSpec {
    Send(Vec<u8>),
    Expect {
        pattern: PatternSpec,
        min_recv: u8,
        negate: bool,
        min_len: u8,
        max_len: u8,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    udp: bool,
    steps: Vec<StepSpec>,
    replies: Vec<Vec<u8>>,
    eof: bool,
}

fuzz_target!(|input: Input| {
    let mut steps = Vec::new();
    for s in input.steps.into_iter().take(16) {
        match s {
            StepSpec::Send(b) => steps.push(ScriptStep::Send(b)),
            StepSpec::Expect {
                pattern,
                min_recv,
                negate,
                min_len,
                max_len,
            } => {
                let pattern = match pattern {
                    PatternSpec::Hex(h) => match parse_masked_hex(&h) {
                        Ok(mask) => {
                            let hex: String = mask
                                .iter()
                                .map(|&(v, m)| {
                                    let nib = |v: u8, m: u8| {
                                        if m == 0 {
                                            'X'
                                        } else {
                                            char::from_digit(u32::from(v), 16).unwrap()
                                        }
                                    };
                                    format!("{}{}", nib(v >> 4, m >> 4), nib(v & 15, m & 15))
                                })
                                .collect();
                            assert_eq!(parse_masked_hex(&hex).unwrap(), mask);
                            Pattern::Masked(mask)
                        }
                        Err(_) => continue,
                    },
                    PatternSpec::Contains(b) => Pattern::Contains(b),
                    PatternSpec::Regex(r) => match BodyRegex::new(&r, false) {
                        Ok(re) => Pattern::Regex(re),
                        Err(_) => continue,
                    },
                };
                let mut e = Expect::new(pattern);
                e.min_recv = usize::from(min_recv);
                e.negate = negate;
                e.reply_len = (usize::from(min_len), usize::from(max_len));
                steps.push(ScriptStep::Expect(e));
            }
        }
    }
    let mut probe = ScriptProbe::new(&ScriptCheck {
        udp: input.udp,
        steps,
    });
    let mut smtp = SmtpProbe::new(&SmtpCheck::new("fuzz").unwrap());
    let mut done = matches!(probe.start(), Step::Done(_) | Step::Finish(..));
    for reply in &input.replies {
        let _ = smtp.on_bytes(reply);
        if !done {
            done = matches!(probe.on_bytes(reply), Step::Done(_) | Step::Finish(..));
        }
    }
    if !done {
        if input.eof {
            let _ = probe.on_eof();
        } else {
            let _ = probe.on_timeout();
        }
    }
});
