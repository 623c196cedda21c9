//! HAProxy's agent-check protocol: the target reports its own weight and state in one ASCII
//! line, e.g. `75% ready maxconn:30` or `down#disk full`.
//!
//! Words are separated by spaces, tabs or commas: `N%` (weight as a percentage of the
//! configured one, 0-256), `maxconn:N`, `ready`, `drain`, `maint`, `up`, and `down`, `fail` or
//! `stopped`, optionally followed by `#description` (the rest of the line).

use crate::tracker::Admin;

/// What the agent says about its own health.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AgentHealth {
    /// `up`.
    Up,
    /// `down`, `fail` or `stopped`.
    Down,
}

/// One parsed agent line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentReport {
    /// `N%`.
    pub weight_percent: Option<u32>,
    /// `maxconn:N`.
    pub maxconn: Option<u32>,
    /// `ready`, `drain` or `maint`.
    pub admin: Option<Admin>,
    /// `up`, or `down`/`fail`/`stopped`.
    pub health: Option<AgentHealth>,
    /// The text after `#`, at most 256 bytes.
    pub description: Option<String>,
}

/// Why an agent line was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The line holds no word.
    #[error("empty agent line")]
    Empty,
    /// The line is not ASCII text.
    #[error("agent line is not ascii")]
    NotAscii,
    /// A percentage that is not a number from 0 to 256.
    #[error("bad weight percentage")]
    BadWeight,
    /// `maxconn:` without a number.
    #[error("bad maxconn")]
    BadMaxconn,
    /// A word the protocol does not have.
    #[error("unknown agent word")]
    UnknownWord,
}

/// Parses the first line of `input` (up to `\n`; a trailing `\r` is ignored).
pub fn parse_agent_line(input: &[u8]) -> Result<AgentReport, AgentError> {
    let line = input.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if !line.is_ascii() {
        return Err(AgentError::NotAscii);
    }
    let (words, description) = match line.iter().position(|&b| b == b'#') {
        Some(i) => (&line[..i], Some(&line[i + 1..])),
        None => (line, None),
    };
    let mut report = AgentReport {
        description: description.map(|d| {
            String::from_utf8_lossy(&d[..d.len().min(256)])
                .trim()
                .to_owned()
        }),
        ..AgentReport::default()
    };
    let mut any = false;
    for word in words
        .split(|&b| matches!(b, b' ' | b'\t' | b','))
        .filter(|w| !w.is_empty())
    {
        any = true;
        let lower = word.to_ascii_lowercase();
        match lower.as_slice() {
            b"ready" => report.admin = Some(Admin::Ready),
            b"drain" => report.admin = Some(Admin::Drain),
            b"maint" => report.admin = Some(Admin::Maint),
            b"up" => report.health = Some(AgentHealth::Up),
            b"down" | b"fail" | b"stopped" => report.health = Some(AgentHealth::Down),
            w => {
                if let Some(pct) = w.strip_suffix(b"%") {
                    let n = parse_u32(pct).ok_or(AgentError::BadWeight)?;
                    if n > 256 {
                        return Err(AgentError::BadWeight);
                    }
                    report.weight_percent = Some(n);
                } else if let Some(n) = w.strip_prefix(b"maxconn:") {
                    report.maxconn = Some(parse_u32(n).ok_or(AgentError::BadMaxconn)?);
                } else {
                    return Err(AgentError::UnknownWord);
                }
            }
        }
    }
    if !any && report.health.is_none() {
        return Err(AgentError::Empty);
    }
    Ok(report)
}

fn parse_u32(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() || digits.len() > 9 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0u32, |n, &d| n * 10 + u32::from(d - b'0')),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn haproxy_examples() {
        let r = parse_agent_line(b"75% ready maxconn:30\n").unwrap();
        assert_eq!(r.weight_percent, Some(75));
        assert_eq!(r.maxconn, Some(30));
        assert_eq!(r.admin, Some(Admin::Ready));
        let r = parse_agent_line(b"down#disk full\r\n").unwrap();
        assert_eq!(r.health, Some(AgentHealth::Down));
        assert_eq!(r.description.as_deref(), Some("disk full"));
        let r = parse_agent_line(b"DRAIN,50%\tup").unwrap();
        assert_eq!(r.admin, Some(Admin::Drain));
        assert_eq!(r.weight_percent, Some(50));
        assert_eq!(r.health, Some(AgentHealth::Up));
    }

    #[test]
    fn rejects_bad_lines() {
        assert_eq!(parse_agent_line(b"\n"), Err(AgentError::Empty));
        assert_eq!(parse_agent_line(b"300%"), Err(AgentError::BadWeight));
        assert_eq!(parse_agent_line(b"x%"), Err(AgentError::BadWeight));
        assert_eq!(parse_agent_line(b"maxconn:"), Err(AgentError::BadMaxconn));
        assert_eq!(parse_agent_line(b"sleepy"), Err(AgentError::UnknownWord));
        assert_eq!(parse_agent_line("é".as_bytes()), Err(AgentError::NotAscii));
    }
}
