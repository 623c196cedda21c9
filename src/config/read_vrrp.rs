//! `global_defs`, `vrrp_script`, `vrrp_instance` and `vrrp_sync_group`, with keepalived 2.2.7's
//! defaults and its checks at the end of an instance (`vrrp_complete_instance`).

use std::time::Duration;

use super::WarningKind;
use super::model::*;
use super::tree::Node;
use super::values::{Ctx, parse_prefixed};

/// keepalived keywords of `global_defs` that lb reads as nothing: e-mail alerts, SNMP, D-Bus,
/// process tuning and similar daemon settings.
const GLOBAL_UNSUPPORTED: &[&str] = &[
    "notification_email",
    "notification_email_from",
    "smtp_server",
    "smtp_helo_name",
    "smtp_connect_timeout",
    "smtp_alert",
    "smtp_alert_vrrp",
    "smtp_alert_checker",
    "no_email_faults",
    "lvs_id",
    "lvs_sync_daemon",
    "lvs_timeouts",
    "lvs_flush",
    "lvs_flush_on_stop",
    "enable_traps",
    "enable_snmp_vrrp",
    "enable_snmp_keepalived",
    "enable_snmp_rfc",
    "enable_snmp_rfcv2",
    "enable_snmp_rfcv3",
    "enable_snmp_checker",
    "snmp_socket",
    "enable_dbus",
    "dbus_service_name",
    "vrrp_priority",
    "checker_priority",
    "checker_no_swap",
    "checker_rt_priority",
    "vrrp_cpu_affinity",
    "checker_cpu_affinity",
    "notify_fifo",
    "notify_fifo_script",
    "vrrp_notify_fifo",
    "vrrp_notify_fifo_script",
    "lvs_notify_fifo",
    "lvs_notify_fifo_script",
    "vrrp_iptables",
    "vrrp_ipsets",
    "nftables",
    "nftables_priority",
    "nftables_counters",
    "nftables_ifindex",
    "dynamic_interfaces",
    "default_interface",
    "net_namespace",
    "process_names",
    "process_name",
    "vrrp_process_name",
    "checker_process_name",
    "vrrp_lower_prio_no_advert",
    "vrrp_higher_prio_send_advert",
    "vrrp_garp_lower_prio_delay",
    "vrrp_garp_lower_prio_repeat",
    "vrrp_min_garp",
    "vrrp_startup_delay",
    "vrrp_down_timer_adverts",
    "max_auto_priority",
    "min_auto_priority_delay",
    "checker_log_all_failures",
    "startup_script",
    "shutdown_script",
    "disable_local_igmp",
    "umask",
    "random_seed",
    "log_unknown_vrids",
    "vmac_prefix",
    "vmac_addr_prefix",
    "rs_init_notifies",
    "no_checker_emails",
    "instance",
    "use_pid_dir",
    "child_wait_time",
    "linkbeat_use_polling",
    "vrrp_rx_bufs_policy",
    "vrrp_rx_bufs_multiplier",
    "reload_check_config",
    "config_save_dir",
    "tmp_config_directory",
];

/// keepalived keywords of `vrrp_instance` that lb does not implement.
const INSTANCE_UNSUPPORTED: &[&str] = &[
    "smtp_alert",
    "track_file",
    "track_process",
    "track_bfd",
    "virtual_routes",
    "virtual_rules",
    "vrf",
    "use_ipvlan",
    "vmac_xmit_base",
    "use_vmac_addr",
    "mcast_dst_ip",
    "track_src_ip",
    "unicast_ttl",
    "unicast_fault_no_peer",
    "old_unicast_checksum",
    "native_ipv6",
    "promote_secondaries",
    "linkbeat_use_polling",
    "debug",
    "notify_deleted",
    "notify_master_rx_lower_pri",
    "notify_priority_changes",
    "lvs_sync_daemon_interface",
    "garp_lower_prio_delay",
    "garp_lower_prio_repeat",
    "down_timer_adverts",
    "garp_extra_if",
    "vmac_garp_intvl",
    "lower_prio_no_advert",
    "higher_prio_send_advert",
    "kernel_rx_buf_size",
    "strict_mode",
    "check_unicast_src",
];

pub(crate) fn global_defs(ctx: &mut Ctx, node: &Node, g: &mut GlobalDefs) {
    for n in ctx.block(node) {
        match n.keyword() {
            "router_id" => g.router_id = ctx.word(n).map(str::to_owned),
            "vrrp_version" => g.vrrp_version = ctx.u32(n, 2, 3).map_or(g.vrrp_version, |v| v as u8),
            "vrrp_strict" => g.vrrp_strict = ctx.flag(n),
            "vrrp_skip_check_adv_addr" => g.vrrp_skip_check_adv_addr = ctx.flag(n),
            "vrrp_check_unicast_src" => g.vrrp_check_unicast_src = ctx.flag(n),
            "vrrp_mcast_group4" => {
                if let Some(ip) = ctx.ip(n).filter(|ip| ip.is_ipv4() && ip.is_multicast()) {
                    g.vrrp_mcast_group4 = ip;
                }
            }
            "vrrp_mcast_group6" => {
                if let Some(ip) = ctx.ip(n).filter(|ip| ip.is_ipv6() && ip.is_multicast()) {
                    g.vrrp_mcast_group6 = ip;
                }
            }
            "script_user" => g.script_user = ctx.command(n),
            "enable_script_security" => g.enable_script_security = ctx.flag(n),
            "vrrp_no_swap" => g.vrrp_no_swap = ctx.flag(n),
            // keepalived clamps to SCHED_RR's range (1-99) with a warning.
            "vrrp_rt_priority" => {
                if let Some(p) = ctx.int(n, i64::from(i32::MIN), i64::from(i32::MAX)) {
                    if !(1..=99).contains(&p) {
                        ctx.invalid(n, "real-time priority outside 1-99; clamped");
                    }
                    g.vrrp_rt_priority = u8::try_from(p.clamp(1, 99)).ok();
                }
            }
            kw => {
                if let Some(garp_kw) = kw.strip_prefix("vrrp_") {
                    if garp(ctx, n, garp_kw, &mut g.garp) {
                        continue;
                    }
                }
                if GLOBAL_UNSUPPORTED.contains(&kw) {
                    ctx.unsupported(n);
                } else {
                    ctx.unknown(n, "global_defs");
                }
            }
        }
    }
}

/// The gratuitous ARP keywords shared by `global_defs` (with a `vrrp_` prefix) and instances.
fn garp(ctx: &mut Ctx, n: &Node, keyword: &str, g: &mut Garp) -> bool {
    let secs = |ctx: &mut Ctx| ctx.seconds(n, Duration::ZERO, Duration::from_secs(86_400));
    match keyword {
        "garp_master_delay" => g.master_delay = secs(ctx).unwrap_or(g.master_delay),
        "garp_master_repeat" => {
            g.master_repeat = ctx.u32(n, 1, u32::MAX).unwrap_or(g.master_repeat)
        }
        "garp_master_refresh" => g.master_refresh = secs(ctx).unwrap_or(g.master_refresh),
        "garp_master_refresh_repeat" => {
            g.master_refresh_repeat = ctx.u32(n, 1, u32::MAX).unwrap_or(g.master_refresh_repeat);
        }
        "garp_interval" => g.interval = secs(ctx).unwrap_or(g.interval),
        "gna_interval" => g.na_interval = secs(ctx).unwrap_or(g.na_interval),
        _ => return false,
    }
    true
}

pub(crate) fn vrrp_script(ctx: &mut Ctx, node: &Node) -> Option<VrrpScript> {
    let name = ctx.word(node)?.to_owned();
    let mut script = None;
    let mut interval = Duration::from_secs(1);
    let mut timeout = None;
    let (mut weight, mut rise, mut fall, mut user, mut init_fail) = (0, 1, 1, None, false);
    for n in ctx.block(node) {
        let long = Duration::from_secs(u32::MAX.into());
        match n.keyword() {
            "script" => script = ctx.command(n),
            "interval" => {
                interval = ctx
                    .seconds(n, Duration::from_micros(1), long)
                    .unwrap_or(interval)
            }
            "timeout" => timeout = ctx.seconds(n, Duration::from_micros(1), long).or(timeout),
            "weight" => weight = ctx.int(n, -253, 253).unwrap_or(weight),
            "rise" => rise = ctx.u32(n, 1, u32::MAX).unwrap_or(rise),
            "fall" => fall = ctx.u32(n, 1, u32::MAX).unwrap_or(fall),
            "user" => user = ctx.command(n),
            "init_fail" => init_fail = ctx.flag(n),
            _ => ctx.unknown(n, "vrrp_script"),
        }
    }
    let Some(script) = script else {
        ctx.warn(
            node,
            WarningKind::Invalid,
            format!("vrrp_script {name} has no 'script'; ignored"),
        );
        return None;
    };
    let timeout = timeout.unwrap_or(interval);
    Some(VrrpScript {
        at: node.at().clone(),
        name,
        script,
        interval,
        timeout,
        weight,
        rise,
        fall,
        user,
        init_fail,
    })
}

/// A `track_interface` / `track_script` block: `NAME [weight N]` per line.
fn tracked(ctx: &mut Ctx, node: &Node) -> Vec<Tracked> {
    let mut out = Vec::new();
    for n in ctx.block(node) {
        let args = n.args();
        let weight = match args {
            [] => None,
            [w, v] if w.text == "weight" => match v.text.parse::<i32>() {
                Ok(v) if (-254..=254).contains(&v) => Some(v),
                _ => {
                    ctx.invalid(n, "weight must be in -254..=254");
                    continue;
                }
            },
            _ => {
                ctx.invalid(n, "expected 'NAME [weight N]'");
                continue;
            }
        };
        out.push(Tracked {
            name: n.keyword().to_owned(),
            weight,
        });
    }
    out
}

/// `virtual_ipaddress { ADDR[/PREFIX] [dev IF] [label L] [brd B] [scope S] ... }`.
fn addresses(ctx: &mut Ctx, node: &Node) -> Vec<VirtualAddress> {
    let mut out = Vec::new();
    for n in ctx.block(node) {
        let Some((addr, prefix)) = parse_prefixed(n.keyword()) else {
            ctx.warn(
                n,
                WarningKind::Invalid,
                format!(
                    "'{}' is not an address or ADDR/PREFIX; ignored",
                    n.keyword()
                ),
            );
            continue;
        };
        let mut vip = VirtualAddress {
            addr,
            prefix,
            dev: None,
            label: None,
        };
        let mut args = n.args().iter();
        while let Some(option) = args.next() {
            let value = args.next().map(|w| w.text.clone());
            match (option.text.as_str(), value) {
                ("dev", Some(v)) => vip.dev = Some(v),
                ("label", Some(v)) => vip.label = Some(v),
                ("brd" | "broadcast" | "scope" | "preferred_lft" | "valid_lft", Some(_)) => {}
                ("noprefixroute" | "home" | "nodad" | "-", None) => {}
                (other, _) => {
                    ctx.warn(
                        n,
                        WarningKind::Unsupported,
                        format!("address option '{other}' is not supported; ignored"),
                    );
                    break;
                }
            }
        }
        out.push(vip);
    }
    out
}

fn notify(ctx: &mut Ctx, n: &Node, notify: &mut Notify) -> bool {
    let slot = match n.keyword() {
        "notify_master" => &mut notify.master,
        "notify_backup" => &mut notify.backup,
        "notify_fault" => &mut notify.fault,
        "notify_stop" => &mut notify.stop,
        "notify" => &mut notify.any,
        _ => return false,
    };
    *slot = ctx.command(n);
    true
}

pub(crate) fn vrrp_instance(ctx: &mut Ctx, node: &Node, g: &GlobalDefs) -> Option<VrrpInstance> {
    let name = ctx.word(node)?.to_owned();
    let mut state = None;
    let mut interface = None;
    let mut vrid = None;
    let mut priority = None;
    let mut advert_int = Duration::from_secs(1);
    let mut version = None;
    let mut preempt = true;
    let mut preempt_delay = Duration::ZERO;
    let mut accept = None;
    let mut source_ip = None;
    let mut unicast_peers = Vec::new();
    let mut authentication = None;
    let mut vips = Vec::new();
    let mut excluded = Vec::new();
    let mut track_interfaces = Vec::new();
    let mut track_scripts = Vec::new();
    let mut notify_scripts = Notify::default();
    let mut garp_settings = g.garp;
    let mut use_vmac = None;
    let mut dont_track_primary = false;
    let mut skip_check_adv_addr = g.vrrp_skip_check_adv_addr;
    for n in ctx.block(node) {
        match n.keyword() {
            "state" => match ctx.word(n) {
                Some("MASTER") => state = Some(InitialState::Master),
                Some("BACKUP") => state = Some(InitialState::Backup),
                Some(_) => ctx.invalid(n, "expected MASTER or BACKUP"),
                None => {}
            },
            "interface" => interface = ctx.word(n).map(str::to_owned),
            "virtual_router_id" => vrid = ctx.u32(n, 1, 255).map(|v| v as u8).or(vrid),
            "priority" => priority = ctx.u32(n, 1, 255).map(|v| v as u8).or(priority),
            "advert_int" => {
                advert_int = ctx
                    .seconds(n, Duration::from_millis(10), Duration::from_secs(255))
                    .unwrap_or(advert_int);
            }
            "version" => version = ctx.u32(n, 2, 3).map(|v| v as u8).or(version),
            "nopreempt" => preempt = !ctx.flag(n),
            "preempt" => preempt = ctx.flag(n),
            "preempt_delay" => {
                preempt_delay = ctx
                    .seconds(n, Duration::ZERO, Duration::from_secs(1000))
                    .unwrap_or(preempt_delay);
            }
            "accept" => accept = Some(ctx.flag(n)),
            "no_accept" => accept = Some(!ctx.flag(n)),
            "mcast_src_ip" | "unicast_src_ip" => source_ip = ctx.ip(n).or(source_ip),
            "unicast_peer" => {
                for peer in ctx.block(n) {
                    match peer.keyword().parse() {
                        Ok(ip) => unicast_peers.push(ip),
                        Err(_) => ctx.warn(
                            peer,
                            WarningKind::Invalid,
                            format!(
                                "unicast peer '{}' is not an IP address; ignored",
                                peer.keyword()
                            ),
                        ),
                    }
                    if !peer.args().is_empty() {
                        ctx.warn(
                            peer,
                            WarningKind::Unsupported,
                            "unicast peer options (min_ttl, max_ttl) are not supported; ignored",
                        );
                    }
                }
            }
            "authentication" => authentication = auth(ctx, n).or(authentication),
            "virtual_ipaddress" => vips.extend(addresses(ctx, n)),
            "virtual_ipaddress_excluded" => excluded.extend(addresses(ctx, n)),
            "track_interface" => track_interfaces.extend(tracked(ctx, n)),
            "track_script" => track_scripts.extend(tracked(ctx, n)),
            "use_vmac" => {
                use_vmac = Some(
                    n.args()
                        .first()
                        .map_or_else(String::new, |w| w.text.clone()),
                )
            }
            "dont_track_primary" => dont_track_primary = ctx.flag(n),
            "skip_check_adv_addr" => skip_check_adv_addr = ctx.flag(n),
            kw if notify(ctx, n, &mut notify_scripts) || garp(ctx, n, kw, &mut garp_settings) => {}
            kw if INSTANCE_UNSUPPORTED.contains(&kw) => ctx.unsupported(n),
            _ => ctx.unknown(n, "vrrp_instance"),
        }
    }
    let drop_instance = |ctx: &mut Ctx, why: &str| {
        ctx.warn(
            node,
            WarningKind::Invalid,
            format!("vrrp_instance {name}: {why}; instance ignored"),
        );
    };
    let Some(interface) = interface else {
        drop_instance(ctx, "no 'interface'");
        return None;
    };
    let Some(vrid) = vrid else {
        drop_instance(ctx, "no 'virtual_router_id'");
        return None;
    };
    let ipv6 = vips
        .first()
        .is_some_and(|v: &VirtualAddress| v.addr.is_ipv6());
    if vips
        .iter()
        .chain(&excluded)
        .any(|v| v.addr.is_ipv6() != ipv6)
        && !vips.is_empty()
    {
        ctx.warn(
            node,
            WarningKind::Invalid,
            format!(
                "vrrp_instance {name}: IPv4 and IPv6 addresses mixed; the other family's ignored"
            ),
        );
        vips.retain(|v| v.addr.is_ipv6() == ipv6);
    }
    // keepalived: IPv6 forces VRRPv3; otherwise the instance's version or the global default.
    let version = if ipv6 {
        3
    } else {
        version.unwrap_or(g.vrrp_version)
    };
    if vips.is_empty() {
        if version == 3 || g.vrrp_strict {
            drop_instance(ctx, "no virtual_ipaddress (VRRPv3 needs at least one)");
            return None;
        }
        ctx.warn(
            node,
            WarningKind::Invalid,
            format!("vrrp_instance {name}: no virtual_ipaddress; at least one is sensible"),
        );
    }
    if version == 2 && advert_int.subsec_nanos() != 0 {
        ctx.warn(node, WarningKind::Invalid, format!("vrrp_instance {name}: VRRPv2 carries whole seconds; advert_int {} s is sent as {} s", advert_int.as_secs_f64(), advert_int.as_secs()));
    }
    // keepalived: no priority means 255 for `state MASTER`, else 100; no state follows priority.
    let priority = priority.unwrap_or(if state == Some(InitialState::Master) {
        255
    } else {
        100
    });
    let initial_state = state.unwrap_or(if priority == 255 {
        InitialState::Master
    } else {
        InitialState::Backup
    });
    if !preempt && initial_state == InitialState::Master {
        ctx.warn(
            node,
            WarningKind::Invalid,
            format!("vrrp_instance {name}: nopreempt only works with state BACKUP"),
        );
    }
    if authentication.is_some() && version == 3 {
        ctx.warn(
            node,
            WarningKind::Invalid,
            format!(
                "vrrp_instance {name}: VRRP version 3 does not support authentication; ignored"
            ),
        );
        authentication = None;
    }
    let accept = accept.unwrap_or(!g.vrrp_strict);
    Some(VrrpInstance {
        at: node.at().clone(),
        name,
        initial_state,
        interface,
        vrid,
        priority,
        advert_int,
        version,
        ipv6,
        preempt,
        preempt_delay,
        accept,
        source_ip,
        unicast_peers,
        authentication,
        virtual_addresses: vips,
        excluded_addresses: excluded,
        track_interfaces,
        track_scripts,
        notify: notify_scripts,
        garp: garp_settings,
        use_vmac,
        dont_track_primary,
        skip_check_adv_addr,
    })
}

fn auth(ctx: &mut Ctx, node: &Node) -> Option<Authentication> {
    let (mut kind, mut pass) = (None, None);
    for n in ctx.block(node) {
        match n.keyword() {
            "auth_type" => kind = ctx.word(n).map(str::to_owned),
            "auth_pass" => pass = ctx.word(n).map(|p| p.chars().take(8).collect::<String>()),
            _ => ctx.unknown(n, "authentication"),
        }
    }
    match (kind.as_deref(), pass) {
        (Some("PASS"), Some(p)) => Some(Authentication::Pass(p)),
        (Some("PASS"), None) => {
            ctx.warn(
                node,
                WarningKind::Invalid,
                "authentication PASS without auth_pass; ignored",
            );
            None
        }
        (Some("AH"), _) => {
            ctx.warn(
                node,
                WarningKind::Unsupported,
                "auth_type AH is not supported; no authentication",
            );
            None
        }
        _ => {
            ctx.warn(
                node,
                WarningKind::Invalid,
                "auth_type must be PASS or AH; ignored",
            );
            None
        }
    }
}

pub(crate) fn sync_group(ctx: &mut Ctx, node: &Node) -> Option<SyncGroup> {
    let name = ctx.word(node)?.to_owned();
    let mut instances = Vec::new();
    let mut notify_scripts = Notify::default();
    let mut track_interfaces = Vec::new();
    let mut track_scripts = Vec::new();
    let mut tracking_weight = false;
    for n in ctx.block(node) {
        match n.keyword() {
            "group" => {
                for member in ctx.block(n) {
                    instances.extend(member.words.iter().map(|w| w.text.clone()));
                }
            }
            "track_interface" => track_interfaces.extend(tracked(ctx, n)),
            "track_script" => track_scripts.extend(tracked(ctx, n)),
            "sync_group_tracking_weight" => tracking_weight = true,
            "global_tracking" => {
                ctx.warn(
                    n,
                    WarningKind::Deprecated,
                    "global_tracking is deprecated; read as sync_group_tracking_weight",
                );
                tracking_weight = true;
            }
            _ if notify(ctx, n, &mut notify_scripts) => {}
            "smtp_alert"
            | "track_file"
            | "track_process"
            | "track_bfd"
            | "notify_priority_changes" => {
                ctx.unsupported(n);
            }
            _ => ctx.unknown(n, "vrrp_sync_group"),
        }
    }
    Some(SyncGroup {
        at: node.at().clone(),
        name,
        instances,
        notify: notify_scripts,
        track_interfaces,
        track_scripts,
        tracking_weight,
    })
}
