//! Feeds arbitrary bytes to lb-health's HTTP/1.x response parser and HTTP probe.
//!
//! Contract held here: nothing panics; the body handed out never exceeds the cap; and the
//! parser's verdict does not depend on how the input is split: fed whole, fed in the pieces
//! the input asks for, and fed byte by byte, it reaches the same head, body and error.
//!
//! Input layout: byte 0 is the body cap (x 16 bytes), byte 1 the piece length (0 means 7);
//! the rest is the response.
#![no_main]

use lb_health::probe::{BodyRegex, HttpCheck, HttpError, HttpProbe, ResponseParser};
use lb_health::{Probe, Step};
use libfuzzer_sys::fuzz_target;

type Parsed = (Result<(), HttpError>, Option<u16>, Vec<u8>, bool);

fn parse(data: &[u8], cap: usize, piece: usize) -> Parsed {
    let mut p = ResponseParser::new(cap);
    let mut body = Vec::new();
    let mut result = Ok(());
    for part in data.chunks(piece.max(1)) {
        result = p.feed(part, &mut |b| body.extend_from_slice(b));
        if result.is_err() {
            break;
        }
    }
    assert!(body.len() <= cap, "body beyond the cap");
    let complete = p.is_complete();
    (result, p.head().map(|h| h.status), body, complete)
}

fuzz_target!(|data: &[u8]| {
    let [cap, piece, response @ ..] = data else {
        return;
    };
    let cap = usize::from(*cap) * 16;
    let piece = if *piece == 0 { 7 } else { usize::from(*piece) };
    let whole = parse(response, cap, response.len().max(1));
    // Errors may surface at different points, but the kind and everything before agree.
    for split in [parse(response, cap, piece), parse(response, cap, 1)] {
        assert_eq!(whole.0, split.0, "error depends on the split");
        if whole.0.is_ok() {
            assert_eq!(whole, split, "result depends on the split");
        }
    }

    let check = HttpCheck::new("/")
        .unwrap()
        .regex(BodyRegex::new("a+b", false).unwrap())
        .body_cap(cap);
    let mut probe = HttpProbe::new(&check, "127.0.0.1:80".parse().unwrap());
    let _ = probe.start();
    let mut done = false;
    for part in response.chunks(piece) {
        if let Step::Done(_) = probe.on_bytes(part) {
            done = true;
            break;
        }
    }
    if !done {
        let _ = probe.on_eof();
    }
});
