//! `iptables-save` / `ip6tables-save` text: the tables of iptables-nft, whose `-m multiport`
//! and `-j MARK` nft's JSON shows without their arguments.
//!
//! The format: `*TABLE`, then `:CHAIN POLICY [counters]` per chain, `-A CHAIN OPTIONS...` per
//! rule in order, `COMMIT`; `#` starts a comment line. Options are shell words (a comment is
//! double-quoted, with `\"` inside); `!` before an option negates it.

use std::net::IpAddr;

use lb_forward::Protocol;

use super::{Chain, Conditions, Marks, parse_number, shadow_warning};

/// Targets that end the chain for the packets they match.
const ENDING: &[&str] = &["ACCEPT", "DROP", "RETURN", "REJECT", "QUEUE", "NFQUEUE"];

/// Translates `iptables-save` output (`ipv6`: `ip6tables-save`); see the module doc of
/// [`super`] for what is translated.
pub fn from_iptables_save(text: &str, ipv6: bool) -> Marks {
    let tool = if ipv6 { "ip6tables" } else { "iptables" };
    let mut marks = Marks::default();
    let mut table = String::new();
    let mut user_chains: Vec<String> = Vec::new();
    let mut chains: Vec<(String, Chain)> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(t) = line.strip_prefix('*') {
            table = t.to_owned();
            user_chains.clear();
            chains.clear();
            continue;
        }
        if let Some(c) = line.strip_prefix(':') {
            let mut words = c.split_whitespace();
            if let (Some(name), Some("-")) = (words.next(), words.next()) {
                user_chains.push(name.to_owned());
            }
            continue;
        }
        if line.is_empty() || line.starts_with('#') || line == "COMMIT" {
            continue;
        }
        let words = match shell_words(line) {
            Ok(w) => w,
            Err(e) => {
                marks
                    .warnings
                    .push(format!("{tool}-save line {}: {e}; skipped", n + 1));
                continue;
            }
        };
        let mut words: &[String] = &words;
        // `iptables-save -c` puts counters first.
        if words.first().is_some_and(|w| w.starts_with('[')) {
            words = &words[1..];
        }
        let [append, chain_name, options @ ..] = words else {
            marks
                .warnings
                .push(format!("{tool}-save line {}: not a rule; skipped", n + 1));
            continue;
        };
        if append != "-A" {
            marks
                .warnings
                .push(format!("{tool}-save line {}: not a rule; skipped", n + 1));
            continue;
        }
        let here = format!("{tool} -t {table} rule '{line}'");
        let target = target(options);
        let mark = match target.as_deref() {
            Some("MARK") => Some(mark_value(options)),
            _ => None,
        };
        let Some(mark) = mark else {
            let ends = target.as_deref().is_some_and(|t| ENDING.contains(&t))
                || options.iter().any(|o| o == "-g" || o == "--goto");
            let chain = chain_state(&mut chains, chain_name);
            chain.verdict(&here, ends);
            continue;
        };
        if chain_name != "PREROUTING" {
            let why = if user_chains.contains(chain_name) {
                "a chain reached by jump or goto"
            } else {
                "a chain hooked elsewhere than prerouting"
            };
            marks
                .warnings
                .push(format!("{here} sets a mark in {why}: not translated"));
            continue;
        }
        let shadowed = chain_state(&mut chains, chain_name).ended_by.clone();
        let Some(mark) = marks.settable(&here, mark) else {
            continue;
        };
        let keys = conditions(options, ipv6).and_then(|c| c.keys());
        if let (Ok(_), Some(by)) = (&keys, shadowed) {
            marks.warnings.push(shadow_warning(&by, &here, mark));
        }
        marks.add(here, mark, keys);
    }
    marks
}

fn chain_state<'a>(chains: &'a mut Vec<(String, Chain)>, name: &str) -> &'a mut Chain {
    let i = match chains.iter().position(|(n, _)| n == name) {
        Some(i) => i,
        None => {
            chains.push((name.to_owned(), Chain::default()));
            chains.len() - 1
        }
    };
    &mut chains[i].1
}

/// The `-j` target.
fn target(options: &[String]) -> Option<String> {
    options
        .windows(2)
        .find(|w| w[0] == "-j" || w[0] == "--jump")
        .map(|w| w[1].clone())
}

/// The value `-j MARK` sets: `--set-xmark VALUE/MASK` with a full mask, or `--set-mark VALUE`.
fn mark_value(options: &[String]) -> Result<u32, String> {
    let mut found = None;
    for w in options.windows(2) {
        let (value, mask) = match w[0].as_str() {
            "--set-xmark" | "--set-mark" => match w[1].split_once('/') {
                Some((v, m)) => (v, Some(m)),
                None => (w[1].as_str(), None),
            },
            "--and-mark" | "--or-mark" | "--xor-mark" => {
                return Err(format!("changes some bits of the mark ({})", w[0]));
            }
            _ => continue,
        };
        let value = parse_number(value).ok_or_else(|| format!("sets the mark {}", w[1]))?;
        match mask.map(parse_number) {
            None | Some(Some(u32::MAX)) => found = Some(value),
            Some(_) => return Err(format!("changes some bits of the mark ({} {})", w[0], w[1])),
        }
    }
    found.ok_or_else(|| "has a MARK target without --set-xmark or --set-mark".into())
}

/// The match options of a MARK rule.
fn conditions(options: &[String], ipv6: bool) -> Result<Conditions, String> {
    let mut c = Conditions {
        ipv6: Some(ipv6),
        ..Conditions::default()
    };
    let mut negate = false;
    let mut i = 0;
    let value = |i: usize| -> Result<&str, String> {
        options
            .get(i + 1)
            .map(String::as_str)
            .ok_or_else(|| format!("ends after {}", options[i]))
    };
    while i < options.len() {
        let option = options[i].as_str();
        if option == "!" {
            negate = true;
            i += 1;
            continue;
        }
        if negate {
            return Err(format!("negates {option}"));
        }
        match option {
            "-d" | "--destination" => c.destinations(vec![address(value(i)?, ipv6)?])?,
            "-p" | "--protocol" => match value(i)? {
                "tcp" | "6" => c.protocols(vec![Protocol::Tcp]),
                "udp" | "17" => c.protocols(vec![Protocol::Udp]),
                "all" | "0" => {}
                other => return Err(format!("matches protocol {other}, not forwarded")),
            },
            "-m" | "--match" => match value(i)? {
                "tcp" | "udp" | "multiport" | "comment" => {}
                "mark" => return Err("matches the mark (set conditionally on another mark)".into()),
                other => return Err(format!("uses the {other} match")),
            },
            "--dport" | "--destination-port" => c.ports(vec![port_range(value(i)?)?])?,
            "--dports" | "--destination-ports" => c.ports(
                value(i)?
                    .split(',')
                    .map(port_range)
                    .collect::<Result<_, _>>()?,
            )?,
            "--comment" => {}
            "-j" | "--jump" | "--set-xmark" | "--set-mark" => {}
            "-s" | "--source" => return Err("matches the source address".into()),
            "-i" | "--in-interface" => return Err("matches the input interface".into()),
            "--sport" | "--source-port" | "--sports" | "--source-ports" | "--ports" => {
                return Err("matches source ports".into());
            }
            other => return Err(format!("uses option {other}")),
        }
        // Every option handled here takes one value.
        i += 2;
    }
    Ok(c)
}

/// `10.0.0.100/32`, `10.0.0.0/255.255.255.0`, `fd00::100/128`, or an address alone.
fn address(text: &str, ipv6: bool) -> Result<(IpAddr, u8), String> {
    let bad = || format!("matches the destination {text}");
    let (addr, mask) = match text.split_once('/') {
        Some((a, m)) => (a, Some(m)),
        None => (text, None),
    };
    let addr: IpAddr = addr.parse().map_err(|_| bad())?;
    let full: u8 = if ipv6 { 128 } else { 32 };
    if addr.is_ipv6() != ipv6 {
        return Err(bad());
    }
    let len = match mask {
        None => full,
        Some(m) => match (m.parse::<u8>(), m.parse::<IpAddr>()) {
            (Ok(len), _) if len <= full => len,
            (_, Ok(IpAddr::V4(mask))) if !ipv6 => {
                let bits = u32::from(mask);
                if bits.leading_ones() + bits.trailing_zeros() != 32 {
                    return Err(format!(
                        "matches the destination {text} (a non-contiguous mask)"
                    ));
                }
                bits.leading_ones() as u8
            }
            _ => return Err(bad()),
        },
    };
    Ok((addr, len))
}

/// `80` or `1000:2000` (either end may be left out).
fn port_range(text: &str) -> Result<(u16, u16), String> {
    let bad = || format!("matches the port {text}");
    let port = |s: &str, default: u16| -> Result<u16, String> {
        if s.is_empty() {
            Ok(default)
        } else {
            s.parse().map_err(|_| bad())
        }
    };
    let (first, last) = match text.split_once(':') {
        Some((a, b)) => (port(a, 0)?, port(b, u16::MAX)?),
        None => {
            let p = port(text, 0).and_then(|p| if text.is_empty() { Err(bad()) } else { Ok(p) })?;
            (p, p)
        }
    };
    if first > last {
        return Err(bad());
    }
    Ok((first, last))
}

/// Splits a line into words: whitespace separates, double quotes group (with `\"` and `\\`
/// inside), as iptables-save quotes.
fn shell_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quoted = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            '\\' if quoted => match chars.next() {
                Some(e) => word.push(e),
                None => return Err("ends in a backslash".into()),
            },
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if quoted {
        return Err("has an unclosed quote".into());
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}
