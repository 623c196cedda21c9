//! `virtual_server_group`, `virtual_server`, `real_server` and their checkers, with keepalived
//! 2.2.7's defaults and inheritance (checker <- real server <- virtual server).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use super::WarningKind;
use super::model::*;
use super::tree::Node;
use super::values::{Ctx, parse_hex};

/// The IPVS schedulers keepalived passes to the kernel.
pub const SCHEDULERS: &[&str] = &[
    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos",
];

const VS_UNSUPPORTED: &[&str] = &[
    "persistence_engine",
    "smtp_alert",
    "snmp_name",
    "hashed",
    "sorry_server_lvs_method",
    "ip_family",
];
const RS_UNSUPPORTED: &[&str] = &["smtp_alert", "virtualhost", "snmp_name", "alpha"];
const CHECK_UNSUPPORTED: &[&str] = &[
    "bind_port",
    "bind_if",
    "fwmark",
    "alpha",
    "log_all_failures",
    "http_protocol",
    "enable_sni",
    "fast_recovery",
    "regex",
    "regex_no_match",
    "regex_options",
    "regex_min_offset",
    "regex_max_offset",
    "regex_stack",
];
const CHECKERS_UNSUPPORTED: &[&str] = &["BFD_CHECK", "FILE_CHECK"];

const LONG: Duration = Duration::from_secs(u32::MAX as u64);

/// Checker timing set at one level; unset values come from the level above.
#[derive(Debug, Clone, Copy, Default)]
struct Timing {
    connect_timeout: Option<Duration>,
    retry: Option<u32>,
    delay_before_retry: Option<Duration>,
    warmup: Option<Duration>,
    delay_loop: Option<Duration>,
}

impl Timing {
    /// Reads one timing keyword; false if `n` is not one.
    fn read(&mut self, ctx: &mut Ctx, n: &Node) -> bool {
        match n.keyword() {
            "connect_timeout" => {
                self.connect_timeout = ctx
                    .seconds(n, Duration::from_micros(1), LONG)
                    .or(self.connect_timeout)
            }
            "retry" => self.retry = ctx.u32(n, 0, u32::MAX).or(self.retry),
            // keepalived: "nb_get_retry is deprecated - please use 'retry'"; it still reads it.
            "nb_get_retry" => {
                self.retry = ctx.u32(n, 0, u32::MAX).or(self.retry);
                ctx.warn(
                    n,
                    WarningKind::Deprecated,
                    "'nb_get_retry' is deprecated; read as 'retry'",
                );
            }
            "delay_before_retry" => {
                self.delay_before_retry = ctx
                    .seconds(n, Duration::ZERO, LONG)
                    .or(self.delay_before_retry)
            }
            "warmup" => self.warmup = ctx.seconds(n, Duration::ZERO, LONG).or(self.warmup),
            "delay_loop" => {
                self.delay_loop = ctx
                    .seconds(n, Duration::from_micros(1), LONG)
                    .or(self.delay_loop)
            }
            _ => return false,
        }
        true
    }

    fn under(self, parent: Timing) -> Timing {
        Timing {
            connect_timeout: self.connect_timeout.or(parent.connect_timeout),
            retry: self.retry.or(parent.retry),
            delay_before_retry: self.delay_before_retry.or(parent.delay_before_retry),
            warmup: self.warmup.or(parent.warmup),
            delay_loop: self.delay_loop.or(parent.delay_loop),
        }
    }
}

pub(crate) fn virtual_server_group(ctx: &mut Ctx, node: &Node) -> Option<VirtualServerGroup> {
    let name = ctx.word(node)?.to_owned();
    let mut members = Vec::new();
    for n in ctx.block(node) {
        let args: Vec<&str> = n.args().iter().map(|w| w.text.as_str()).collect();
        match (n.keyword(), args.as_slice()) {
            ("fwmark", [mark]) => match mark.parse() {
                Ok(m) => members.push(ServiceAddress::Fwmark(m)),
                Err(_) => ctx.invalid(n, "expected a fwmark number"),
            },
            (range, [port]) => match (expand_range(range), port.parse::<u16>()) {
                (Some(ips), Ok(port)) => {
                    members.extend(
                        ips.into_iter()
                            .map(|ip| ServiceAddress::Socket(SocketAddr::new(ip, port))),
                    );
                }
                _ => ctx.warn(
                    n,
                    WarningKind::Invalid,
                    format!("'{range} {port}' is not 'IP[-LAST] PORT'; ignored"),
                ),
            },
            _ => ctx.warn(
                n,
                WarningKind::Invalid,
                "expected 'IP[-LAST] PORT' or 'fwmark N'; ignored",
            ),
        }
    }
    Some(VirtualServerGroup {
        at: node.at().clone(),
        name,
        members,
    })
}

/// `10.0.0.1-10`: the last IPv4 octet (or IPv6 group) runs up to the number after the dash.
fn expand_range(text: &str) -> Option<Vec<IpAddr>> {
    let Some((first, last)) = text.split_once('-') else {
        return Some(vec![text.parse().ok()?]);
    };
    match first.parse::<IpAddr>().ok()? {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            let last: u8 = last.parse().ok()?;
            (d <= last).then(|| {
                (d..=last)
                    .map(|x| IpAddr::V4(Ipv4Addr::new(a, b, c, x)))
                    .collect()
            })
        }
        IpAddr::V6(v6) => {
            let mut groups = v6.segments();
            let last = u16::from_str_radix(last, 16).ok()?;
            let start = groups[7];
            (start <= last).then(|| {
                (start..=last)
                    .map(|x| {
                        groups[7] = x;
                        IpAddr::V6(Ipv6Addr::from(groups))
                    })
                    .collect()
            })
        }
    }
}

fn method(ctx: &mut Ctx, n: &Node) -> Option<ForwardingMethod> {
    match ctx.word(n)? {
        "NAT" => Some(ForwardingMethod::Nat),
        "DR" => Some(ForwardingMethod::Dr),
        "TUN" => Some(ForwardingMethod::Tun),
        _ => {
            ctx.invalid(n, "expected NAT, DR or TUN");
            None
        }
    }
}

/// `IP PORT` (the port may be missing: 0) as the words after a keyword.
fn socket(ctx: &mut Ctx, n: &Node) -> Option<SocketAddr> {
    let args = n.args();
    let ip = args.first().and_then(|w| w.text.parse::<IpAddr>().ok());
    let port = match args.get(1) {
        Some(w) => w.text.parse::<u16>().ok(),
        None => Some(0),
    };
    match (ip, port) {
        (Some(ip), Some(port)) if args.len() <= 2 => Some(SocketAddr::new(ip, port)),
        _ => {
            ctx.invalid(n, "expected 'IP [PORT]'");
            None
        }
    }
}

pub(crate) fn virtual_server(ctx: &mut Ctx, node: &Node) -> Option<VirtualServer> {
    let args: Vec<&str> = node.args().iter().map(|w| w.text.as_str()).collect();
    let addr = match args.as_slice() {
        ["fwmark", mark] => ServiceAddress::Fwmark(mark.parse().ok()?),
        ["group", name] => ServiceAddress::Group((*name).to_owned()),
        _ => ServiceAddress::Socket(socket(ctx, node)?),
    };
    let mut vs = VirtualServer {
        at: node.at().clone(),
        addr,
        protocol: Protocol::Tcp,
        delay_loop: Duration::from_secs(60),
        scheduler: String::new(),
        scheduler_flags: Vec::new(),
        one_packet: false,
        method: ForwardingMethod::Nat,
        persistence_timeout: None,
        persistence_granularity: None,
        sorry_server: None,
        sorry_server_inhibit: false,
        quorum: 1,
        hysteresis: 0,
        quorum_up: None,
        quorum_down: None,
        alpha: false,
        omega: false,
        ha_suspend: false,
        virtualhost: None,
        inhibit_on_failure: false,
        reals: Vec::new(),
    };
    let mut timing = Timing::default();
    let mut real_nodes = Vec::new();
    for n in ctx.block(node) {
        match n.keyword() {
            "real_server" => real_nodes.push(n),
            "lb_algo" | "lvs_sched" => match ctx.word(n) {
                Some(s) if SCHEDULERS.contains(&s) => vs.scheduler = s.to_owned(),
                Some(_) => ctx.invalid(
                    n,
                    format!("not an IPVS scheduler ({})", SCHEDULERS.join(" ")),
                ),
                None => {}
            },
            flag @ ("sh-port" | "sh-fallback" | "mh-port" | "mh-fallback" | "flag-1" | "flag-2"
            | "flag-3") => {
                ctx.flag(n);
                vs.scheduler_flags.push(flag.to_owned());
            }
            "ops" => vs.one_packet = ctx.flag(n),
            "lb_kind" | "lvs_method" => vs.method = method(ctx, n).unwrap_or(vs.method),
            "protocol" => match ctx.word(n) {
                Some("TCP") => vs.protocol = Protocol::Tcp,
                Some("UDP") => vs.protocol = Protocol::Udp,
                Some("SCTP") => vs.protocol = Protocol::Sctp,
                Some(_) => ctx.invalid(n, "expected TCP, UDP or SCTP"),
                None => {}
            },
            "persistence_timeout" => {
                vs.persistence_timeout = if n.args().is_empty() {
                    Some(Duration::from_secs(360))
                } else {
                    ctx.seconds(n, Duration::from_secs(1), LONG)
                        .or(vs.persistence_timeout)
                };
            }
            "persistence_granularity" => {
                vs.persistence_granularity = granularity(ctx, n).or(vs.persistence_granularity)
            }
            "sorry_server" => vs.sorry_server = socket(ctx, n).or(vs.sorry_server),
            "sorry_server_inhibit" => vs.sorry_server_inhibit = ctx.flag(n),
            "quorum" => vs.quorum = ctx.u32(n, 1, u32::MAX).unwrap_or(vs.quorum),
            "hysteresis" => vs.hysteresis = ctx.u32(n, 0, u32::MAX).unwrap_or(vs.hysteresis),
            "quorum_up" => vs.quorum_up = ctx.command(n),
            "quorum_down" => vs.quorum_down = ctx.command(n),
            "alpha" => vs.alpha = ctx.flag(n),
            "omega" => vs.omega = ctx.flag(n),
            "ha_suspend" => vs.ha_suspend = ctx.flag(n),
            "virtualhost" => vs.virtualhost = ctx.word(n).map(str::to_owned),
            "inhibit_on_failure" => vs.inhibit_on_failure = ctx.flag(n),
            _ if timing.read(ctx, n) => {}
            kw if VS_UNSUPPORTED.contains(&kw) => ctx.unsupported(n),
            _ => ctx.unknown(n, "virtual_server"),
        }
    }
    if vs.scheduler.is_empty() {
        ctx.warn(
            node,
            WarningKind::Invalid,
            "virtual_server has no lb_algo; using 'wlc' (as keepalived does)",
        );
        vs.scheduler = "wlc".into();
    }
    if let Some(d) = timing.delay_loop {
        vs.delay_loop = d;
    }
    timing.delay_loop = Some(vs.delay_loop);
    for n in real_nodes {
        if let Some(rs) = real_server(ctx, n, &vs, timing) {
            vs.reals.push(rs);
        }
    }
    Some(vs)
}

fn granularity(ctx: &mut Ctx, n: &Node) -> Option<Granularity> {
    let text = ctx.word(n)?;
    if let Ok(mask) = text.parse::<Ipv4Addr>() {
        let bits = u32::from(mask);
        if bits.leading_ones() + bits.trailing_zeros() == 32 {
            return Some(Granularity::Netmask(mask));
        }
    } else if let Ok(prefix) = text.parse::<u8>() {
        if (1..=128).contains(&prefix) {
            return Some(Granularity::Prefix(prefix));
        }
    }
    ctx.invalid(
        n,
        "expected a contiguous IPv4 netmask or an IPv6 prefix length",
    );
    None
}

fn real_server(
    ctx: &mut Ctx,
    node: &Node,
    vs: &VirtualServer,
    vs_timing: Timing,
) -> Option<RealServer> {
    let addr = socket(ctx, node)?;
    let mut rs = RealServer {
        at: node.at().clone(),
        addr,
        weight: 1,
        method: vs.method,
        inhibit_on_failure: vs.inhibit_on_failure,
        upper_threshold: 0,
        lower_threshold: 0,
        notify_up: None,
        notify_down: None,
        checks: Vec::new(),
    };
    let mut timing = Timing::default();
    let mut check_nodes = Vec::new();
    for n in ctx.block(node) {
        match n.keyword() {
            "weight" => rs.weight = ctx.u32(n, 0, 65_535).unwrap_or(rs.weight),
            "lvs_method" => rs.method = method(ctx, n).unwrap_or(rs.method),
            "inhibit_on_failure" => rs.inhibit_on_failure = ctx.flag(n),
            "uthreshold" => rs.upper_threshold = ctx.u32(n, 0, u32::MAX).unwrap_or(0),
            "lthreshold" => rs.lower_threshold = ctx.u32(n, 0, u32::MAX).unwrap_or(0),
            "notify_up" => rs.notify_up = ctx.command(n),
            "notify_down" => rs.notify_down = ctx.command(n),
            "TCP_CHECK" | "HTTP_GET" | "SSL_GET" | "MISC_CHECK" | "SMTP_CHECK" | "DNS_CHECK"
            | "UDP_CHECK" | "PING_CHECK" => check_nodes.push(n),
            _ if timing.read(ctx, n) => {}
            kw if CHECKERS_UNSUPPORTED.contains(&kw) || RS_UNSUPPORTED.contains(&kw) => {
                ctx.unsupported(n)
            }
            _ => ctx.unknown(n, "real_server"),
        }
    }
    let timing = timing.under(vs_timing);
    for n in check_nodes {
        if let Some(check) = checker(ctx, n, vs, timing) {
            rs.checks.push(check);
        }
    }
    Some(rs)
}

fn checker(ctx: &mut Ctx, node: &Node, vs: &VirtualServer, inherited: Timing) -> Option<Check> {
    let mut timing = Timing::default();
    let (mut connect_ip, mut connect_port, mut bindto) = (None, None, None);
    let mut urls = Vec::new();
    let mut virtualhost = vs.virtualhost.clone();
    let (mut misc_path, mut misc_timeout, mut misc_dynamic, mut user) = (None, None, false, None);
    let mut helo_name = None;
    let (mut dns_type, mut dns_name) = ("SOA".to_owned(), ".".to_owned());
    let (mut payload, mut require_reply) = (None, None);
    let kind_name = node.keyword();
    for n in ctx.block(node) {
        match (kind_name, n.keyword()) {
            (_, "connect_ip") => connect_ip = ctx.ip(n).or(connect_ip),
            (_, "connect_port") => {
                connect_port = ctx.u32(n, 1, 65_535).map(|p| p as u16).or(connect_port)
            }
            (_, "bindto") => bindto = ctx.ip(n).or(bindto),
            ("HTTP_GET" | "SSL_GET", "url") => urls.push(url(ctx, n)),
            ("HTTP_GET" | "SSL_GET", "virtualhost") => virtualhost = ctx.word(n).map(str::to_owned),
            ("MISC_CHECK", "misc_path") => misc_path = ctx.command(n),
            ("MISC_CHECK", "misc_timeout") => {
                misc_timeout = ctx
                    .seconds(n, Duration::from_micros(1), LONG)
                    .or(misc_timeout)
            }
            ("MISC_CHECK", "misc_dynamic") => misc_dynamic = ctx.flag(n),
            ("MISC_CHECK", "user") => user = ctx.command(n),
            ("SMTP_CHECK", "helo_name") => helo_name = ctx.word(n).map(str::to_owned),
            ("DNS_CHECK", "type") => match ctx.word(n) {
                Some(t @ ("A" | "NS" | "CNAME" | "SOA" | "MX" | "TXT" | "AAAA")) => {
                    dns_type = t.to_owned()
                }
                Some(_) => ctx.invalid(n, "expected A, NS, CNAME, SOA, MX, TXT or AAAA"),
                None => {}
            },
            ("DNS_CHECK", "name") => dns_name = ctx.word(n).map_or(dns_name, str::to_owned),
            ("UDP_CHECK", "payload") => match ctx.word(n).map(parse_hex) {
                Some(Some(bytes)) => payload = Some(bytes),
                Some(None) => ctx.invalid(n, "expected hex bytes"),
                None => {}
            },
            ("UDP_CHECK", "require_reply") => match n.args().first().map(|w| parse_hex(&w.text)) {
                None => require_reply = Some(Vec::new()),
                Some(Some(bytes)) => require_reply = Some(bytes),
                Some(None) => ctx.invalid(n, "expected hex bytes"),
            },
            ("SMTP_CHECK", "host") | ("UDP_CHECK", "min_reply_length" | "max_reply_length") => {
                ctx.unsupported(n)
            }
            _ if timing.read(ctx, n) => {}
            (_, kw) if CHECK_UNSUPPORTED.contains(&kw) => ctx.unsupported(n),
            (kind, _) => ctx.unknown(n, kind),
        }
    }
    let kind = match kind_name {
        "TCP_CHECK" => CheckKind::Tcp,
        "HTTP_GET" | "SSL_GET" => {
            if urls.is_empty() {
                ctx.warn(
                    node,
                    WarningKind::Invalid,
                    format!("{kind_name} without a url block; checker ignored"),
                );
                return None;
            }
            for u in &mut urls {
                if u.virtualhost.is_none() {
                    u.virtualhost.clone_from(&virtualhost);
                }
            }
            CheckKind::Http {
                tls: kind_name == "SSL_GET",
                urls,
            }
        }
        "MISC_CHECK" => {
            let Some(path) = misc_path else {
                ctx.warn(
                    node,
                    WarningKind::Invalid,
                    "MISC_CHECK without misc_path; checker ignored",
                );
                return None;
            };
            CheckKind::Misc {
                path,
                timeout: misc_timeout,
                dynamic: misc_dynamic,
                user,
            }
        }
        "SMTP_CHECK" => CheckKind::Smtp { helo_name },
        "DNS_CHECK" => CheckKind::Dns {
            query_type: dns_type,
            name: dns_name,
        },
        "UDP_CHECK" => CheckKind::Udp {
            payload,
            require_reply,
        },
        _ => CheckKind::Ping,
    };
    let timing = timing.under(inherited);
    let delay_loop = timing.delay_loop.unwrap_or(vs.delay_loop);
    // keepalived's per-kind defaults (check_api.c and each checker's init).
    let retry_default = match kind {
        CheckKind::Dns { .. } => 3,
        CheckKind::Misc { .. } => 0,
        _ => 1,
    };
    let dbr_default = match kind {
        CheckKind::Http { .. } => Duration::from_secs(3),
        CheckKind::Dns { .. } => delay_loop,
        _ => Duration::from_secs(1),
    };
    let common = CheckCommon {
        connect_ip,
        connect_port,
        bindto,
        connect_timeout: timing.connect_timeout.unwrap_or(Duration::from_secs(5)),
        retry: timing.retry.unwrap_or(retry_default),
        delay_before_retry: timing.delay_before_retry.unwrap_or(dbr_default),
        delay_loop,
        warmup: timing.warmup.unwrap_or(delay_loop),
    };
    Some(Check {
        at: node.at().clone(),
        kind,
        common,
    })
}

fn url(ctx: &mut Ctx, node: &Node) -> UrlCheck {
    let mut u = UrlCheck {
        path: "/".into(),
        digest: None,
        status: Vec::new(),
        virtualhost: None,
    };
    for n in ctx.block(node) {
        match n.keyword() {
            "path" => u.path = ctx.word(n).map_or(u.path, str::to_owned),
            "digest" => match ctx.word(n).map(parse_hex) {
                Some(Some(bytes)) if bytes.len() == 16 => u.digest = bytes.try_into().ok(),
                Some(_) => ctx.invalid(n, "expected 32 hex digits (an MD5)"),
                None => {}
            },
            "status_code" => {
                for w in n.args() {
                    match status_range(&w.text) {
                        Some(range) => u.status.push(range),
                        None => ctx.warn(
                            n,
                            WarningKind::Invalid,
                            format!(
                                "status code '{}' is not CODE or LOW-HIGH in 100..=599; ignored",
                                w.text
                            ),
                        ),
                    }
                }
            }
            "virtualhost" => u.virtualhost = ctx.word(n).map(str::to_owned),
            "regex" | "regex_no_match" | "regex_options" | "regex_min_offset"
            | "regex_max_offset" | "regex_stack" => ctx.unsupported(n),
            _ => ctx.unknown(n, "url"),
        }
    }
    if u.status.is_empty() {
        u.status.push((200, 299));
    }
    u
}

fn status_range(text: &str) -> Option<(u16, u16)> {
    let (lo, hi) = match text.split_once('-') {
        Some((lo, hi)) => (lo.parse().ok()?, hi.parse().ok()?),
        None => {
            let code = text.parse().ok()?;
            (code, code)
        }
    };
    ((100..=599).contains(&lo) && lo <= hi && hi <= 599).then_some((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(expand_range("10.0.0.1-3").unwrap().len(), 3);
        assert_eq!(expand_range("fd00::a-c").unwrap().len(), 3);
        assert_eq!(expand_range("10.0.0.5-3"), None);
        assert_eq!(status_range("200-299"), Some((200, 299)));
        assert_eq!(status_range("503"), Some((503, 503)));
        assert_eq!(status_range("99"), None);
    }
}
