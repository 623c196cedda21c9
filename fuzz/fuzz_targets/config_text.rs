//! Feeds arbitrary text to the keepalived.conf reader (without file system access: includes are
//! warnings). Contract: nothing panics; a syntax error names a location inside the text; every
//! warning points at a line that exists.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let lines = u32::try_from(text.lines().count())
        .unwrap_or(u32::MAX)
        .max(1);
    match lb::config::parse_str_isolated(&text, "fuzz.conf") {
        Ok(loaded) => {
            for w in &loaded.warnings {
                assert!(
                    w.at.line >= 1 && w.at.line <= lines,
                    "{w} outside {lines} lines"
                );
            }
        }
        Err(lb::config::ConfigError::Syntax { at, .. }) => {
            assert!(
                at.line >= 1 && at.line <= lines,
                "{at} outside {lines} lines"
            );
        }
        Err(e) => panic!("unexpected error without file access: {e}"),
    }
});
