//! Feeds arbitrary text to the firewall-mark translation: the first byte picks the reader
//! (even: `nft -j list ruleset` JSON; odd: `iptables-save`, IPv6 when bit 1 is set), the rest
//! is the text. Contract: nothing panics; every translated key is valid for lb-forward (prefix
//! within its family, first port <= last port, the family of the reader); no rule expands past
//! `MAX_KEYS_PER_RULE`; overlap checks only add warnings.
#![no_main]

use lb::director::fwmark::{MAX_KEYS_PER_RULE, Marks, from_iptables_save, from_nft_json};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let mut marks: Marks = if which & 1 == 0 {
        from_nft_json(&text).marks
    } else {
        let ipv6 = which & 2 != 0;
        let m = from_iptables_save(&text, ipv6);
        for r in &m.rules {
            assert!(r.keys.iter().all(|k| k.addr.is_ipv6() == ipv6), "{r:?}");
        }
        m
    };
    for r in &marks.rules {
        assert_ne!(r.mark, 0);
        assert!(r.keys.len() <= MAX_KEYS_PER_RULE);
        for k in &r.keys {
            let full = if k.addr.is_ipv6() { 128 } else { 32 };
            assert!(k.prefix_len <= full && k.first_port <= k.last_port, "{k:?}");
        }
    }
    let (rules, warnings) = (marks.rules.clone(), marks.warnings.len());
    marks.check_overlaps();
    assert_eq!(marks.rules, rules);
    assert!(marks.warnings.len() >= warnings);
});
