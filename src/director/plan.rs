//! What a keepalived configuration asks each crate to do: one [`lb_vrrp::Config`] per
//! `vrrp_instance` (grouped by `vrrp_sync_group`), one forwarder service per `virtual_server`
//! (several for a group), one health target per checker (per URL for HTTP). Pure: nothing here touches the system, so a
//! configuration can be checked (`director --check-config`) and reloads can be diffed.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use lb_forward::{Method, Protocol, RealConfig, ServiceConfig, ServiceKey};
use lb_health::probe::{
    DnsCheck, DnsType, ExecCheck, HttpCheck, IcmpCheck, ScriptCheck, SmtpCheck,
};
use lb_health::{Check, Target, TrackerConfig};
use lb_sched::{Algorithm, Persistence, PoolConfig};
use lb_vrrp::wire::{Auth, Version};
use lb_vrrp::{Announce, ChecksumMode, Track};

use crate::config::{
    self, CheckKind, Config, ForwardingMethod, Granularity, Location, ServiceAddress, Warning,
    WarningKind,
};

/// Everything the director runs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The VRRP instances.
    pub instances: Vec<InstancePlan>,
    /// The sync groups of those instances.
    pub groups: Vec<GroupPlan>,
    /// The virtual services.
    pub services: Vec<ServicePlan>,
    /// How the VRRP thread runs (`vrrp_rt_priority`, `vrrp_no_swap`).
    pub vrrp_process: ProcessPlan,
}

/// Scheduling of a thread (keepalived's per-process `*_rt_priority` and `*_no_swap`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessPlan {
    /// `SCHED_RR` at this priority (1-99), for short advert intervals on a busy host.
    pub rt_priority: Option<u8>,
    /// Lock the process's memory.
    pub no_swap: bool,
}

/// One `vrrp_instance`.
#[derive(Debug, Clone, PartialEq)]
pub struct InstancePlan {
    /// Its name (for events and notify scripts).
    pub name: String,
    /// The interface it runs on.
    pub interface: String,
    /// The router's settings; `primary` is a placeholder until [`Self::with_primary`].
    pub vrrp: lb_vrrp::Config,
    /// Whether `unicast_src_ip` / `mcast_src_ip` fixed the primary address.
    pub primary_configured: bool,
    /// Prefix length of each virtual address.
    pub prefixes: Vec<u8>,
    /// Scripts run on transitions.
    pub notify: config::Notify,
    /// What feeds each of `vrrp.tracks`, in order.
    pub tracked: Vec<Tracked>,
}

/// One `vrrp_sync_group`: its members change state together.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupPlan {
    /// Its name (for events and notify scripts).
    pub name: String,
    /// Its members: indices into [`Plan::instances`].
    pub members: Vec<usize>,
    /// Scripts run when every member has changed state.
    pub notify: config::Notify,
}

/// The source of one tracked input.
#[derive(Debug, Clone, PartialEq)]
pub enum Tracked {
    /// `track_interface`: up while the interface is running.
    Interface(String),
    /// `track_script`: up while the script succeeds (with its rise and fall).
    Script(config::VrrpScript),
}

impl InstancePlan {
    /// The router settings with its own address on the interface filled in (the configured
    /// source address wins).
    pub fn with_primary(&self, primary: IpAddr) -> lb_vrrp::Config {
        let mut vrrp = self.vrrp.clone();
        if !self.primary_configured {
            vrrp.primary = primary;
        }
        vrrp
    }
}

/// One real server of a service.
#[derive(Debug, Clone)]
pub struct RealPlan {
    /// Address, configured weight and method.
    pub config: RealConfig,
    /// On failure: weight 0 (true) or removal (false).
    pub inhibit_on_failure: bool,
    /// Its health targets; it is alive while every one is up (keepalived).
    pub checks: Vec<Target>,
    /// `notify_up` / `notify_down`.
    pub notify_up: Option<String>,
    /// See `notify_up`.
    pub notify_down: Option<String>,
}

/// One `virtual_server`.
#[derive(Debug, Clone)]
pub struct ServicePlan {
    /// Where it was defined.
    pub at: Location,
    /// The forwarder services (one, or one per member of a `virtual_server_group`).
    pub keys: Vec<ServiceKey>,
    /// One-packet scheduling.
    pub config: ServiceConfig,
    /// Scheduler and persistence.
    pub pool: PoolConfig,
    /// The reals.
    pub reals: Vec<RealPlan>,
    /// Minimum live weight (keepalived `quorum`).
    pub quorum: u32,
    /// Hysteresis around the quorum.
    pub hysteresis: u32,
    /// Served alone while the quorum is lost.
    pub sorry: Option<RealConfig>,
    /// `quorum_up`: run when the quorum is gained.
    pub quorum_up: Option<String>,
    /// `quorum_down`: run when the quorum is lost.
    pub quorum_down: Option<String>,
}

/// Builds the plan; what cannot be run becomes a warning (and is left out).
pub fn plan(config: &Config) -> (Plan, Vec<Warning>) {
    let mut warnings = Vec::new();
    let membership = memberships(config, &mut warnings);
    let instances: Vec<InstancePlan> = config
        .vrrp_instances
        .iter()
        .filter_map(|i| {
            let group = membership.get(i.name.as_str()).copied();
            instance(config, i, group, &mut warnings)
        })
        .collect();
    let groups = config
        .sync_groups
        .iter()
        .filter_map(|g| group(config, g, &membership, &instances, &mut warnings))
        .collect();
    let services = config
        .virtual_servers
        .iter()
        .filter_map(|vs| service(config, vs, &mut warnings))
        .collect();
    (
        Plan {
            instances,
            groups,
            services,
            vrrp_process: ProcessPlan {
                rt_priority: config.global.vrrp_rt_priority,
                no_swap: config.global.vrrp_no_swap,
            },
        },
        warnings,
    )
}

/// The sync group of each instance named in one: the first group naming it (keepalived 2.2.7
/// ignores it in the others).
fn memberships<'a>(
    config: &'a Config,
    warnings: &mut Vec<Warning>,
) -> HashMap<&'a str, &'a config::SyncGroup> {
    let mut membership: HashMap<&str, &config::SyncGroup> = HashMap::new();
    for g in &config.sync_groups {
        for name in &g.instances {
            match membership.get(name.as_str()) {
                Some(first) if first.name != g.name => warnings.push(Warning {
                    at: g.at.clone(),
                    kind: WarningKind::Invalid,
                    message: format!(
                        "vrrp_sync_group {}: {name} is already in sync group {}; ignored here",
                        g.name, first.name
                    ),
                }),
                Some(_) => {}
                None => {
                    membership.insert(name.as_str(), g);
                }
            }
        }
    }
    membership
}

/// A sync group of the planned instances it holds (none: left out, as keepalived does).
fn group(
    config: &Config,
    g: &config::SyncGroup,
    membership: &HashMap<&str, &config::SyncGroup>,
    instances: &[InstancePlan],
    warnings: &mut Vec<Warning>,
) -> Option<GroupPlan> {
    let mut members: Vec<usize> = Vec::new();
    for (i, inst) in instances.iter().enumerate() {
        if membership
            .get(inst.name.as_str())
            .is_some_and(|m| m.name == g.name)
        {
            members.push(i);
        }
    }
    let mut note = |message: String| {
        warnings.push(Warning {
            at: g.at.clone(),
            kind: WarningKind::Invalid,
            message,
        })
    };
    match members.len() {
        0 => {
            note(format!(
                "vrrp_sync_group {}: no instance of it runs; group ignored",
                g.name
            ));
            return None;
        }
        1 => note(format!(
            "vrrp_sync_group {} has only one instance; probably not what you want",
            g.name
        )),
        _ => {}
    }
    let owner = members.iter().find(|&&i| instances[i].vrrp.priority == 255);
    let weighted = g
        .track_interfaces
        .iter()
        .any(|t| t.weight.unwrap_or(0) != 0)
        || g.track_scripts.iter().any(|t| {
            let script = config.vrrp_scripts.iter().find(|s| s.name == t.name);
            t.weight.or(script.map(|s| s.weight)).unwrap_or(0) != 0
        });
    if let (Some(&i), true) = (owner, weighted) {
        note(format!(
            "vrrp_sync_group {}: weights of its tracks cleared, {} owns its addresses (priority 255)",
            g.name, instances[i].name
        ));
    }
    Some(GroupPlan {
        name: g.name.clone(),
        members,
        notify: g.notify.clone(),
    })
}

fn warn(warnings: &mut Vec<Warning>, at: &Location, message: String) {
    warnings.push(Warning {
        at: at.clone(),
        kind: WarningKind::Unsupported,
        message,
    });
}

fn instance(
    config: &Config,
    inst: &config::VrrpInstance,
    group: Option<&config::SyncGroup>,
    warnings: &mut Vec<Warning>,
) -> Option<InstancePlan> {
    let vips: Vec<IpAddr> = inst.virtual_addresses.iter().map(|v| v.addr).collect();
    let placeholder = if inst.ipv6 {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    };
    let mut vrrp = lb_vrrp::Config::new(inst.vrid, inst.source_ip.unwrap_or(placeholder), vips);
    vrrp.priority = inst.priority;
    vrrp.version = if inst.version == 2 {
        Version::V2
    } else {
        Version::V3
    };
    vrrp.interval = inst.advert_int;
    if vrrp.version == Version::V2 {
        vrrp.interval = Duration::from_secs(inst.advert_int.as_secs().max(1));
    } else {
        // VRRPv3 carries centiseconds.
        let centis = (inst.advert_int.as_millis() / 10).max(1);
        vrrp.interval = Duration::from_millis(u64::try_from(centis * 10).unwrap_or(u64::MAX));
    }
    vrrp.preempt = inst.preempt;
    vrrp.preempt_delay = inst.preempt_delay;
    vrrp.accept = inst.accept;
    vrrp.unicast_peers = inst.unicast_peers.clone();
    if let Some(config::Authentication::Pass(p)) = &inst.authentication {
        vrrp.auth = Auth::pass(p.as_bytes());
    }
    // keepalived 2.2.7 sums VRRPv3-over-IPv4 with a pseudo-header and rejects the RFC 9568 form:
    // a drop-in replacement answers in keepalived's form.
    vrrp.checksum = ChecksumMode::PseudoHeader;
    let garp = inst.garp;
    vrrp.announce = Announce {
        repeat: garp.master_repeat,
        interval: if inst.ipv6 {
            garp.na_interval
        } else {
            garp.interval
        },
        delay: garp.master_delay,
        refresh: garp.master_refresh,
    };
    let (tracks, tracked) = tracking(config, inst, group, warnings);
    vrrp.tracks = tracks;
    if let Err(e) = vrrp.validate().or_else(|e| match e {
        // The placeholder primary is checked again once the interface's address is known.
        lb_vrrp::Error::MixedFamilies(_) if inst.source_ip.is_none() => Ok(()),
        e => Err(e),
    }) {
        warnings.push(Warning {
            at: inst.at.clone(),
            kind: WarningKind::Invalid,
            message: format!("vrrp_instance {}: {e}; instance not run", inst.name),
        });
        return None;
    }
    Some(InstancePlan {
        name: inst.name.clone(),
        interface: inst.interface.clone(),
        primary_configured: inst.source_ip.is_some(),
        prefixes: inst.virtual_addresses.iter().map(|v| v.prefix).collect(),
        notify: inst.notify.clone(),
        tracked,
        vrrp,
    })
}

/// An instance's tracked inputs in the router's order: its interfaces, its scripts, then its
/// sync group's. keepalived's weight semantics are lb-vrrp's: positive adds while up, negative
/// adds while down, none (0) FAULT. keepalived 2.2.7's rules for sync groups: a member's own
/// weights are ignored unless the group sets `sync_group_tracking_weight` (a weighted interface
/// then only FAULTs, a weighted script is not tracked); the group's tracks apply to every
/// member with their weights, cleared when a member owns its addresses (priority 255); a
/// group's track replaces the member's own one of the same name.
fn tracking(
    config: &Config,
    inst: &config::VrrpInstance,
    group: Option<&config::SyncGroup>,
    warnings: &mut Vec<Warning>,
) -> (Vec<Track>, Vec<Tracked>) {
    let ignore_weights = group.is_some_and(|g| !g.tracking_weight);
    let mut ignored = |what: String| {
        warnings.push(Warning {
            at: inst.at.clone(),
            kind: WarningKind::Invalid,
            message: format!(
                "vrrp_instance {}: {what}: a sync group member's weights apply only with sync_group_tracking_weight",
                inst.name
            ),
        });
    };
    let script = |name: &str| config.vrrp_scripts.iter().find(|s| s.name == name);
    let mut inputs: Vec<(Track, Tracked)> = Vec::new();
    for t in &inst.track_interfaces {
        let mut weight = t.weight.unwrap_or(0);
        if ignore_weights && weight != 0 {
            ignored(format!(
                "track_interface {} weight {weight} ignored",
                t.name
            ));
            weight = 0;
        }
        let source = Tracked::Interface(t.name.clone());
        inputs.push((track(&t.name, weight), source));
    }
    for t in &inst.track_scripts {
        let Some(s) = script(&t.name) else {
            continue; // the reader warned about the unknown name
        };
        let weight = t.weight.unwrap_or(s.weight);
        if ignore_weights && weight != 0 {
            ignored(format!(
                "track_script {} with weight {weight} not tracked",
                t.name
            ));
            continue;
        }
        inputs.push((track(&t.name, weight), Tracked::Script(s.clone())));
    }
    if let Some(g) = group {
        let has_owner = config
            .vrrp_instances
            .iter()
            .any(|i| g.instances.contains(&i.name) && i.priority == 255);
        let interfaces = g
            .track_interfaces
            .iter()
            .map(|t| (t, Some(Tracked::Interface(t.name.clone())), 0));
        let scripts = g.track_scripts.iter().map(|t| {
            let s = script(&t.name);
            (
                t,
                s.map(|s| Tracked::Script(s.clone())),
                s.map_or(0, |s| s.weight),
            )
        });
        for (t, source, default) in interfaces.chain(scripts) {
            let Some(source) = source else { continue };
            let weight = if has_owner {
                0
            } else {
                t.weight.unwrap_or(default)
            };
            inputs.retain(|(_, s)| *s != source);
            inputs.push((track(&t.name, weight), source));
        }
    }
    inputs.into_iter().unzip()
}

fn track(name: &str, weight: i32) -> Track {
    Track {
        name: name.to_owned(),
        weight,
    }
}

fn method(m: ForwardingMethod) -> Method {
    match m {
        ForwardingMethod::Nat => Method::Nat,
        ForwardingMethod::Dr => Method::Dr,
        ForwardingMethod::Tun => Method::Tunnel(lb_forward::Encap::Ip),
    }
}

fn service(
    config: &Config,
    vs: &config::VirtualServer,
    warnings: &mut Vec<Warning>,
) -> Option<ServicePlan> {
    let protocol = match vs.protocol {
        config::Protocol::Tcp => Protocol::Tcp,
        config::Protocol::Udp => Protocol::Udp,
        config::Protocol::Sctp => {
            warn(
                warnings,
                &vs.at,
                "protocol SCTP is not forwarded by lb-forward; virtual_server not run".into(),
            );
            return None;
        }
    };
    // A firewall-mark service's family is its reals' (keepalived's without `ip_family`); the
    // director finds the packets it takes in the host's firewall rules (see `fwmark`).
    let ipv6 = vs
        .reals
        .first()
        .map(|r| r.addr)
        .or(vs.sorry_server)
        .is_some_and(|a| a.is_ipv6());
    let key = |a: &ServiceAddress| match a {
        ServiceAddress::Socket(a) => Some(ServiceKey::new(protocol, *a)),
        // Mark 0 is "no mark" (IPVS and keepalived refuse it).
        ServiceAddress::Fwmark(0) => None,
        ServiceAddress::Fwmark(m) => Some(ServiceKey::fwmark(*m, ipv6)),
        ServiceAddress::Group(_) => None,
    };
    let keys: Vec<ServiceKey> = match &vs.addr {
        ServiceAddress::Group(name) => {
            let group = config
                .virtual_server_groups
                .iter()
                .find(|g| &g.name == name)?;
            group.members.iter().filter_map(key).collect()
        }
        a => key(a).into_iter().collect(),
    };
    if keys.is_empty() {
        warn(
            warnings,
            &vs.at,
            "no service to run (an empty group, or fwmark 0, which marks nothing); virtual_server not run".into(),
        );
        return None;
    }
    let mut algorithm = match Algorithm::from_name(&vs.scheduler) {
        Ok(a) => a,
        Err(e) => {
            warn(
                warnings,
                &vs.at,
                format!("scheduler {}: {e}; virtual_server not run", vs.scheduler),
            );
            return None;
        }
    };
    for flag in &vs.scheduler_flags {
        match algorithm.with_flag(flag) {
            Ok(a) => algorithm = a,
            Err(e) => warn(
                warnings,
                &vs.at,
                format!("scheduler flag {flag}: {e}; ignored"),
            ),
        }
    }
    let mut pool = PoolConfig::new(algorithm);
    if let Some(timeout) = vs.persistence_timeout {
        let persistence =
            Persistence::new(timeout).and_then(|p| match vs.persistence_granularity {
                Some(Granularity::Netmask(mask)) => p.with_v4_netmask(mask),
                Some(Granularity::Prefix(prefix)) => p.with_v6_prefix(prefix),
                None => Ok(p),
            });
        match persistence {
            Ok(p) => pool = pool.with_persistence(p),
            Err(e) => warn(
                warnings,
                &vs.at,
                format!("persistence: {e}; not persistent"),
            ),
        }
    }
    // Read by the reader, not run by the director: say so rather than drop them silently.
    for (set, what) in [
        (vs.omega, "omega (notify_down scripts at shutdown)"),
        (
            vs.ha_suspend,
            "ha_suspend (the datapath serves every service while any VRRP instance here is master)",
        ),
        (
            vs.sorry_server_inhibit,
            "sorry_server_inhibit (the sorry server is removed, not kept at weight 0)",
        ),
    ] {
        if set {
            warn(warnings, &vs.at, format!("{what}: not run; ignored"));
        }
    }
    let reals = vs.reals.iter().map(|rs| real(vs, rs, warnings)).collect();
    Some(ServicePlan {
        at: vs.at.clone(),
        keys,
        config: ServiceConfig {
            one_packet: vs.one_packet,
        },
        pool,
        reals,
        quorum: vs.quorum,
        hysteresis: vs.hysteresis,
        sorry: vs
            .sorry_server
            .map(|a| RealConfig::new(a, 1, method(vs.method))),
        quorum_up: vs.quorum_up.clone(),
        quorum_down: vs.quorum_down.clone(),
    })
}

fn real(
    vs: &config::VirtualServer,
    rs: &config::RealServer,
    warnings: &mut Vec<Warning>,
) -> RealPlan {
    let mut checks = Vec::new();
    for check in &rs.checks {
        let c = &check.common;
        let addr = SocketAddr::new(
            c.connect_ip.unwrap_or(rs.addr.ip()),
            c.connect_port.unwrap_or(rs.addr.port()),
        );
        let tracker = TrackerConfig::keepalived(
            c.delay_loop,
            c.retry,
            c.delay_before_retry,
            c.warmup,
            vs.alpha,
        );
        // MISC_CHECK's own timeout, keepalived's `misc_timeout` (default: the delay loop).
        let timeout = match &check.kind {
            CheckKind::Misc { timeout, user, .. } => {
                if user.is_some() {
                    warn(
                        warnings,
                        &check.at,
                        "MISC_CHECK user: not run; the command runs as the director's user".into(),
                    );
                }
                timeout.unwrap_or(c.delay_loop)
            }
            _ => c.connect_timeout,
        };
        let target = |check: Check| Target {
            addr,
            check,
            tracker,
            timeout,
            source: c.bindto,
        };
        match health_checks(&check.kind, c) {
            Ok(list) => checks.extend(list.into_iter().map(target)),
            Err(why) => warn(warnings, &check.at, format!("checker not run: {why}")),
        }
    }
    if rs.upper_threshold != 0 || rs.lower_threshold != 0 {
        warn(
            warnings,
            &rs.at,
            "uthreshold / lthreshold: not run (lb-forward has no connection thresholds); ignored"
                .into(),
        );
    }
    RealPlan {
        config: RealConfig::new(rs.addr, rs.weight, method(rs.method)),
        inhibit_on_failure: rs.inhibit_on_failure,
        checks,
        notify_up: rs.notify_up.clone(),
        notify_down: rs.notify_down.clone(),
    }
}

/// The lb-health checks of one keepalived checker (one per URL for HTTP_GET / SSL_GET).
fn health_checks(kind: &CheckKind, common: &config::CheckCommon) -> Result<Vec<Check>, String> {
    Ok(match kind {
        CheckKind::Tcp => vec![Check::Tcp],
        CheckKind::Http { tls, urls } => {
            let mut out = Vec::new();
            for url in urls {
                let mut http = HttpCheck::new(&url.path).map_err(|e| e.to_string())?;
                let statuses = url
                    .status
                    .iter()
                    .map(|(lo, hi)| format!("{lo}-{hi}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                http = http.expect(
                    statuses
                        .parse()
                        .map_err(|e: lb_health::Error| e.to_string())?,
                );
                if let Some(host) = &url.virtualhost {
                    http = http.host(host).map_err(|e| e.to_string())?;
                }
                if let Some(digest) = url.digest {
                    http = http.digest(digest);
                }
                if *tls {
                    let server = url
                        .virtualhost
                        .clone()
                        .unwrap_or_else(|| "localhost".into());
                    let options = lb_health::probe::TlsOptions::new(&server, None)
                        .map_err(|e| e.to_string())?;
                    http = http.tls(options);
                }
                out.push(Check::Http(http));
            }
            out
        }
        CheckKind::Misc { path, dynamic, .. } => {
            let mut words = shell_words(path).into_iter();
            let program = words.next().ok_or("empty misc_path")?;
            let mut exec = ExecCheck::new(PathBuf::from(program));
            exec.args = words.collect();
            exec.dynamic = *dynamic;
            vec![Check::Exec(exec)]
        }
        CheckKind::Smtp { helo_name } => {
            vec![Check::Smtp(
                SmtpCheck::new(helo_name.as_deref().unwrap_or("localhost"))
                    .map_err(|e| e.to_string())?,
            )]
        }
        CheckKind::Dns { query_type, name } => {
            let qtype = match query_type.as_str() {
                "A" => DnsType::A,
                "NS" => DnsType::Ns,
                "CNAME" => DnsType::Cname,
                "MX" => DnsType::Mx,
                "TXT" => DnsType::Txt,
                "AAAA" => DnsType::Aaaa,
                _ => DnsType::Soa,
            };
            vec![Check::Dns(
                DnsCheck::new(name, qtype).map_err(|e| e.to_string())?,
            )]
        }
        CheckKind::Udp {
            payload,
            require_reply,
        } => {
            let payload = payload.clone().unwrap_or_else(|| b"lb-health".to_vec());
            let reply = require_reply
                .as_ref()
                .map(|bytes| bytes.iter().map(|b| (*b, 0xff)).collect());
            vec![Check::Script(ScriptCheck::udp(payload, reply))]
        }
        CheckKind::Ping => {
            let _ = common;
            vec![Check::Icmp(IcmpCheck::default())]
        }
    })
}

/// Splits a command line on whitespace, keeping single- or double-quoted words whole.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote = None;
    let mut in_word = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}
