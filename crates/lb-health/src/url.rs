//! Targets written as URLs, the syntax of the `healthcheck` example:
//!
//! | URL | check |
//! |---|---|
//! | `tcp://HOST:PORT` | TCP connect |
//! | `tcp+syn://HOST:PORT` | TCP half-open: SYN, SYN-ACK up, RST refused (raw socket: root or CAP_NET_RAW) |
//! | `http://HOST[:PORT]/PATH[?expect=200-299,503]` | HTTP GET, status set (default 200-299; commas separate) |
//! | `https://HOST[:PORT]/PATH[?expect=...]` | the same over TLS (certificate not verified, SNI = HOST) |
//! | `udp://HOST:PORT?send=HEX[&expect=HEX]` | one datagram; the reply must match (X = any nibble) |
//! | `icmp://HOST` | ICMP echo |
//! | `exec:/path/to/script` | run it: exit 0 up, 1 down, 2-255 up with weight code - 2 (keepalived MISC_CHECK with `misc_dynamic`) |
//!
//! HOST is an IPv4 address, a bracketed IPv6 address or a name (resolved by the caller).

use crate::probe::{ExecCheck, HttpCheck, IcmpCheck, ScriptCheck, parse_masked_hex};
use crate::{Check, Error};

/// A parsed target URL: the check and where to run it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetUrl {
    /// The check.
    pub check: Check,
    /// The host to resolve (`None` for `exec:`).
    pub host: Option<String>,
    /// The port (0 for ICMP and exec).
    pub port: u16,
}

fn bad(url: &str, why: &'static str) -> Error {
    Error::InvalidUrl {
        url: url.to_owned(),
        why,
    }
}

/// Splits `host[:port]` (IPv6 in brackets).
fn host_port(
    url: &str,
    authority: &str,
    default_port: Option<u16>,
) -> Result<(String, u16), Error> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or_else(|| bad(url, "unclosed ["))?;
        (h, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(bad(url, "no host"));
    }
    let port = match (port, default_port) {
        (Some(p), _) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| bad(url, "bad port"))?,
        (None, Some(d)) => d,
        (None, None) => return Err(bad(url, "a port is required")),
    };
    Ok((host.to_owned(), port))
}

fn hex_bytes(url: &str, text: &str) -> Result<Vec<u8>, Error> {
    let pairs = parse_masked_hex(text)?;
    if pairs.iter().any(|&(_, m)| m != 0xff) {
        return Err(bad(url, "send= takes plain hex (no X)"));
    }
    Ok(pairs.into_iter().map(|(v, _)| v).collect())
}

/// Parses one target URL.
pub fn parse_target_url(url: &str) -> Result<TargetUrl, Error> {
    if let Some(path) = url.strip_prefix("exec:") {
        if path.is_empty() {
            return Err(bad(url, "exec: needs a path"));
        }
        return Ok(TargetUrl {
            check: Check::Exec(ExecCheck {
                dynamic: true,
                ..ExecCheck::new(path)
            }),
            host: None,
            port: 0,
        });
    }
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad(url, "expected SCHEME://"))?;
    let (authority, path_query) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let (path, query) = match path_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_query, None),
    };
    let mut params: Vec<(&str, &str)> = Vec::new();
    for pair in query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter(|p| !p.is_empty())
    {
        params.push(pair.split_once('=').unwrap_or((pair, "")));
    }
    let take = |params: &mut Vec<(&str, &str)>, key: &str| -> Option<String> {
        let i = params.iter().position(|(k, _)| *k == key)?;
        Some(params.remove(i).1.to_owned())
    };
    let target = |check, (host, port): (String, u16)| TargetUrl {
        check,
        host: Some(host),
        port,
    };
    match scheme {
        "tcp" | "tcp+syn" => {
            if !path_query.is_empty() {
                return Err(bad(url, "tcp:// and tcp+syn:// take no path or query"));
            }
            let check = if scheme == "tcp" {
                Check::Tcp
            } else {
                Check::TcpHalfOpen
            };
            Ok(target(check, host_port(url, authority, None)?))
        }
        "http" | "https" => {
            let tls = scheme == "https";
            let hp = host_port(url, authority, Some(if tls { 443 } else { 80 }))?;
            let expect = take(&mut params, "expect");
            let rest: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let mut full_path = if path.is_empty() {
                "/".to_owned()
            } else {
                path.to_owned()
            };
            if !rest.is_empty() {
                full_path = format!("{full_path}?{}", rest.join("&"));
            }
            let mut check = HttpCheck::new(&full_path)?.host(authority)?;
            if let Some(e) = expect {
                check = check.expect(e.parse()?);
            }
            if tls {
                #[cfg(feature = "tls")]
                {
                    check = check.tls(crate::probe::TlsOptions::new(&hp.0, None)?);
                }
                #[cfg(not(feature = "tls"))]
                return Err(Error::TlsUnavailable);
            }
            Ok(target(Check::Http(check), hp))
        }
        "udp" => {
            let send =
                take(&mut params, "send").ok_or_else(|| bad(url, "udp:// needs send=HEX"))?;
            let expect = take(&mut params, "expect")
                .map(|e| parse_masked_hex(&e))
                .transpose()?;
            if !params.is_empty() || !path.is_empty() {
                return Err(bad(url, "udp:// takes only send= and expect="));
            }
            let check = ScriptCheck::udp(hex_bytes(url, &send)?, expect);
            Ok(target(
                Check::Script(check),
                host_port(url, authority, None)?,
            ))
        }
        "icmp" => {
            if !path_query.is_empty() || authority.is_empty() {
                return Err(bad(url, "icmp:// takes a host only"));
            }
            let host = authority.trim_start_matches('[').trim_end_matches(']');
            Ok(target(
                Check::Icmp(IcmpCheck::default()),
                (host.to_owned(), 0),
            ))
        }
        _ => Err(bad(
            url,
            "unknown scheme (tcp, http, https, udp, icmp, exec)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_scheme() {
        let t = parse_target_url("tcp://10.0.0.1:80").unwrap();
        assert_eq!(
            (t.check, t.host.as_deref(), t.port),
            (Check::Tcp, Some("10.0.0.1"), 80)
        );
        let t = parse_target_url("tcp+syn://[::1]:9000").unwrap();
        assert_eq!(
            (t.check, t.host.as_deref(), t.port),
            (Check::TcpHalfOpen, Some("::1"), 9000)
        );
        let t = parse_target_url("http://[::1]:8080/health?expect=200-299%20503&x=1").unwrap_err();
        assert!(matches!(t, Error::InvalidStatusSet(_)));
        let t = parse_target_url("http://web/health?x=1&expect=200-299").unwrap();
        let Check::Http(h) = &t.check else {
            panic!("http")
        };
        assert_eq!(t.port, 80);
        let req = String::from_utf8(h.request("127.0.0.1:80".parse().unwrap())).unwrap();
        assert!(
            req.starts_with("GET /health?x=1 HTTP/1.1\r\nHost: web\r\n"),
            "{req}"
        );
        let t = parse_target_url("https://example.org").unwrap();
        assert_eq!((t.check.kind(), t.port), ("https", 443));
        let t = parse_target_url("udp://127.0.0.1:53?send=0a0b&expect=0aXX").unwrap();
        assert_eq!(t.check.kind(), "script");
        let t = parse_target_url("icmp://[fd00::1]").unwrap();
        assert_eq!(t.host.as_deref(), Some("fd00::1"));
        let t = parse_target_url("exec:/usr/local/bin/check").unwrap();
        assert_eq!((t.check.kind(), t.host.as_deref()), ("exec", None));
        let Check::Exec(e) = t.check else {
            panic!("exec")
        };
        assert!(e.dynamic, "2-255 mean up with weight code - 2");
    }

    #[test]
    fn rejects() {
        for u in [
            "tcp://host",
            "tcp://:80",
            "tcp://h:0",
            "tcp://h:99999",
            "tcp+syn://h",
            "tcp+syn://h:80/x",
            "ftp://h:21",
            "udp://h:53",
            "udp://h:53?send=0g",
            "udp://h:53?send=0X",
            "icmp://h/x",
            "exec:",
            "nonsense",
            "http://h/a b",
        ] {
            assert!(parse_target_url(u).is_err(), "{u}");
        }
    }
}
