//! Reading one statement's values, with a warning (never an error) for anything invalid: the
//! statement is then ignored and the default stays, as keepalived does.

use std::net::IpAddr;
use std::time::Duration;

use super::tree::Node;
use super::{Warning, WarningKind};

/// Collects warnings while the tree is interpreted.
#[derive(Debug, Default)]
pub(crate) struct Ctx {
    pub(crate) warnings: Vec<Warning>,
}

impl Ctx {
    pub(crate) fn warn(&mut self, node: &Node, kind: WarningKind, message: impl Into<String>) {
        self.warnings.push(Warning {
            at: node.at().clone(),
            kind,
            message: message.into(),
        });
    }

    /// A keyword keepalived does not know (or not in this block).
    pub(crate) fn unknown(&mut self, node: &Node, block: &str) {
        self.warn(
            node,
            WarningKind::Unknown,
            format!("unknown keyword '{}' in {block}; ignored", node.keyword()),
        );
    }

    /// A keyword keepalived knows that lb does not implement.
    pub(crate) fn unsupported(&mut self, node: &Node) {
        self.warn(
            node,
            WarningKind::Unsupported,
            format!("'{}' is not supported by lb; ignored", node.keyword()),
        );
    }

    pub(crate) fn invalid(&mut self, node: &Node, why: impl std::fmt::Display) {
        let value = node
            .args()
            .iter()
            .map(|w| w.text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        self.warn(
            node,
            WarningKind::Invalid,
            format!(
                "invalid value '{value}' for '{}': {why}; ignored",
                node.keyword()
            ),
        );
    }

    /// The first value, or a warning that it is missing.
    pub(crate) fn word<'n>(&mut self, node: &'n Node) -> Option<&'n str> {
        match node.args().first() {
            Some(w) => Some(w.text.as_str()),
            None => {
                self.invalid(node, "a value is required");
                None
            }
        }
    }

    /// All values joined by spaces (a command line), or a warning when there are none.
    pub(crate) fn command(&mut self, node: &Node) -> Option<String> {
        self.no_block(node);
        self.word(node)?;
        Some(
            node.args()
                .iter()
                .map(|w| w.text.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        )
    }

    pub(crate) fn uint(&mut self, node: &Node, min: u64, max: u64) -> Option<u64> {
        self.no_block(node);
        let text = self.word(node)?;
        match text.parse::<u64>() {
            Ok(v) if (min..=max).contains(&v) => Some(v),
            _ => {
                self.invalid(node, format!("expected a whole number in {min}..={max}"));
                None
            }
        }
    }

    pub(crate) fn u32(&mut self, node: &Node, min: u32, max: u32) -> Option<u32> {
        self.uint(node, min.into(), max.into())
            .and_then(|v| u32::try_from(v).ok())
    }

    pub(crate) fn int(&mut self, node: &Node, min: i64, max: i64) -> Option<i32> {
        self.no_block(node);
        let text = self.word(node)?;
        match text.parse::<i64>() {
            Ok(v) if (min..=max).contains(&v) => i32::try_from(v).ok(),
            _ => {
                self.invalid(node, format!("expected a whole number in {min}..={max}"));
                None
            }
        }
    }

    /// Seconds with up to six decimals (`advert_int 0.1`, `delay_loop 6`), within bounds.
    pub(crate) fn seconds(
        &mut self,
        node: &Node,
        min: Duration,
        max: Duration,
    ) -> Option<Duration> {
        self.no_block(node);
        let text = self.word(node)?;
        match parse_seconds(text) {
            Some(d) if d >= min && d <= max => Some(d),
            _ => {
                self.invalid(
                    node,
                    format!(
                        "expected seconds in {}..={}",
                        min.as_secs_f64(),
                        max.as_secs_f64()
                    ),
                );
                None
            }
        }
    }

    pub(crate) fn ip(&mut self, node: &Node) -> Option<IpAddr> {
        self.no_block(node);
        let text = self.word(node)?;
        match text.parse() {
            Ok(ip) => Some(ip),
            Err(_) => {
                self.invalid(node, "expected an IP address");
                None
            }
        }
    }

    /// A flag keyword (`nopreempt`) must have no values; extra ones are warned about.
    pub(crate) fn flag(&mut self, node: &Node) -> bool {
        self.no_block(node);
        if !node.args().is_empty() {
            self.warn(
                node,
                WarningKind::Invalid,
                format!("'{}' takes no value; extra words ignored", node.keyword()),
            );
        }
        true
    }

    /// The statement's block, or a warning that it needs one.
    pub(crate) fn block<'n>(&mut self, node: &'n Node) -> &'n [Node] {
        match &node.block {
            Some(b) => b,
            None => {
                self.warn(
                    node,
                    WarningKind::Invalid,
                    format!("'{}' needs a {{ ... }} block; ignored", node.keyword()),
                );
                &[]
            }
        }
    }

    /// Warns when a value statement carries a block.
    pub(crate) fn no_block(&mut self, node: &Node) {
        if node.block.is_some() {
            self.warn(
                node,
                WarningKind::Invalid,
                format!("'{}' takes no block; block ignored", node.keyword()),
            );
        }
    }
}

/// Decimal seconds: `1`, `0.1`, `2.5`; at most six decimals.
pub(crate) fn parse_seconds(text: &str) -> Option<Duration> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() && frac.is_empty() || frac.len() > 6 {
        return None;
    }
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(whole) || !all_digits(frac) {
        return None;
    }
    let secs: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let micros: u32 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<6}").parse().ok()?
    };
    Duration::from_secs(secs).checked_add(Duration::from_micros(micros.into()))
}

/// `ADDR` or `ADDR/PREFIX`.
pub(crate) fn parse_prefixed(text: &str) -> Option<(IpAddr, u8)> {
    let (addr, prefix) = match text.split_once('/') {
        Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
        None => (text.parse::<IpAddr>().ok()?, None),
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = prefix.unwrap_or(max);
    (prefix <= max).then_some((addr, prefix))
}

/// Hex bytes (`payload`, `require_reply`); an even number of digits.
pub(crate) fn parse_hex(text: &str) -> Option<Vec<u8>> {
    let text = text.strip_prefix("0x").unwrap_or(text);
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds() {
        assert_eq!(parse_seconds("1"), Some(Duration::from_secs(1)));
        assert_eq!(parse_seconds("0.1"), Some(Duration::from_millis(100)));
        assert_eq!(parse_seconds(".5"), Some(Duration::from_millis(500)));
        assert_eq!(
            parse_seconds("2.000001"),
            Some(Duration::from_micros(2_000_001))
        );
        for bad in ["", ".", "1.0000001", "-1", "1e3", "one", "1.2.3"] {
            assert_eq!(parse_seconds(bad), None, "{bad}");
        }
    }

    #[test]
    fn prefixes_and_hex() {
        assert_eq!(
            parse_prefixed("10.0.0.1/24"),
            Some(("10.0.0.1".parse().unwrap(), 24))
        );
        assert_eq!(
            parse_prefixed("fd00::1"),
            Some(("fd00::1".parse().unwrap(), 128))
        );
        assert_eq!(parse_prefixed("10.0.0.1/33"), None);
        assert_eq!(parse_hex("0a0B"), Some(vec![10, 11]));
        assert_eq!(parse_hex("abc"), None);
        assert_eq!(parse_hex("zz"), None);
    }
}
