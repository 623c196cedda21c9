//! How the director plans `vrrp_sync_group`s (keepalived 2.2.7's rules, checked against its
//! log lines): members by instance index, the group's notify scripts and tracks, and members'
//! own weights ignored without `sync_group_tracking_weight`.

use lb::config::{WarningKind, parse_str_isolated};
use lb::director::{Plan, ProcessPlan, Tracked, plan};
use lb::vrrp::Track;

const SCRIPTS: &str = "vrrp_script chk {\n script \"/bin/true\"\n weight -20\n}\n\
                       vrrp_script up {\n script \"/bin/true\"\n}\n";

fn instance(name: &str, dev: &str, vrid: u8, priority: u8, extra: &str) -> String {
    format!(
        "vrrp_instance {name} {{\n interface {dev}\n virtual_router_id {vrid}\n priority {priority}\n\
         virtual_ipaddress {{\n  10.0.{vrid}.1/24\n }}\n{extra}}}\n"
    )
}

fn planned(text: &str) -> (Plan, Vec<String>) {
    let loaded = parse_str_isolated(text, "t.conf").unwrap();
    let (plan, notes) = plan(&loaded.config);
    let warnings = loaded
        .warnings
        .iter()
        .chain(&notes)
        .map(|w| {
            assert_ne!(w.kind, WarningKind::Unknown, "{w}");
            w.message.clone()
        })
        .collect();
    (plan, warnings)
}

fn tracks(plan: &Plan, i: usize) -> Vec<(String, i32)> {
    plan.instances[i]
        .vrrp
        .tracks
        .iter()
        .map(|Track { name, weight }| (name.clone(), *weight))
        .collect()
}

#[test]
fn sync_group_members_notify_scripts_and_keepalived_weight_rules() {
    let own_tracks =
        " track_interface {\n  eth9 weight 10\n }\n track_script {\n  chk\n  up weight 5\n }\n";
    let text = format!(
        "{SCRIPTS}{}{}{}vrrp_sync_group G {{\n group {{\n  VI_2\n  VI_1\n }}\n notify_master \"/bin/m\"\n notify \"/bin/n\"\n track_interface {{\n  eth7\n }}\n}}\n",
        instance("VI_1", "eth0", 51, 150, own_tracks),
        instance("VI_2", "eth1", 52, 150, ""),
        instance("VI_3", "eth0", 53, 150, own_tracks),
    );
    let (plan, warnings) = planned(&text);
    assert_eq!(plan.groups.len(), 1);
    let g = &plan.groups[0];
    assert_eq!((g.name.as_str(), &g.members[..]), ("G", &[0, 1][..]));
    assert_eq!(g.notify.master.as_deref(), Some("/bin/m"));
    assert_eq!(g.notify.any.as_deref(), Some("/bin/n"));
    // keepalived: "(VI_1) ignoring eth9 tracked interface weight due to SYNC group" and
    // "ignoring tracked script chk with weights due to SYNC group"; the group's interface is
    // tracked by every member (weight 0: FAULT).
    assert_eq!(
        tracks(&plan, 0),
        [("eth9".into(), 0), ("eth7".into(), 0)],
        "{warnings:?}"
    );
    assert_eq!(tracks(&plan, 1), [("eth7".into(), 0)]);
    assert_eq!(
        plan.instances[0].tracked,
        [
            Tracked::Interface("eth9".into()),
            Tracked::Interface("eth7".into())
        ]
    );
    assert_eq!(
        warnings
            .iter()
            .filter(|w| w.contains("sync_group_tracking_weight"))
            .count(),
        3,
        "eth9, chk and up: {warnings:?}"
    );
    // Outside the group, weights apply.
    assert_eq!(
        tracks(&plan, 2),
        [("eth9".into(), 10), ("chk".into(), -20), ("up".into(), 5)]
    );
}

#[test]
fn sync_group_tracking_weight_keeps_members_weights() {
    let text = format!(
        "{SCRIPTS}{}{}vrrp_sync_group G {{\n group {{\n  VI_1\n  VI_2\n }}\n sync_group_tracking_weight\n track_script {{\n  chk weight -30\n }}\n}}\n",
        instance(
            "VI_1",
            "eth0",
            51,
            150,
            " track_interface {\n  eth9 weight 10\n }\n track_script {\n  chk\n }\n"
        ),
        instance("VI_2", "eth1", 52, 150, ""),
    );
    let (plan, warnings) = planned(&text);
    assert!(warnings.is_empty(), "{warnings:?}");
    // The group's chk (weight -30) replaces the member's own.
    assert_eq!(tracks(&plan, 0), [("eth9".into(), 10), ("chk".into(), -30)]);
    assert_eq!(tracks(&plan, 1), [("chk".into(), -30)]);
}

#[test]
fn sync_groups_keepalived_ignores() {
    // An instance named by two groups stays in the first; a group whose instances do not
    // run is dropped; a one-member group is warned about; an owner clears group weights.
    let text = format!(
        "{SCRIPTS}{}{}vrrp_sync_group A {{\n group {{\n  VI_1\n  VI_2\n }}\n track_script {{\n  chk\n }}\n}}\n\
         vrrp_sync_group B {{\n group {{\n  VI_2\n }}\n}}\n\
         vrrp_sync_group C {{\n group {{\n  VI_9\n }}\n}}\n",
        instance("VI_1", "eth0", 51, 255, ""),
        instance("VI_2", "eth1", 52, 150, ""),
    );
    let (plan, warnings) = planned(&text);
    let names: Vec<&str> = plan.groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(names, ["A"], "{warnings:?}");
    assert_eq!(tracks(&plan, 1), [("chk".into(), 0)]);
    for needle in [
        "VI_2 is already in sync group A",
        "vrrp_sync_group B: no instance of it runs",
        "vrrp_sync_group C: no instance of it runs",
        "no vrrp_instance named 'VI_9'",
        "VI_1 owns its addresses",
    ] {
        assert!(
            warnings.iter().any(|w| w.contains(needle)),
            "{needle}: {warnings:?}"
        );
    }
}

#[test]
fn vrrp_rt_priority_and_no_swap_schedule_the_vrrp_thread() {
    let (plan, warnings) = planned("global_defs {\n vrrp_rt_priority 50\n vrrp_no_swap\n}\n");
    assert_eq!(
        plan.vrrp_process,
        ProcessPlan {
            rt_priority: Some(50),
            no_swap: true
        }
    );
    assert!(warnings.is_empty(), "{warnings:?}");
    // keepalived clamps to SCHED_RR's 1-99 and says so.
    let (plan, warnings) = planned("global_defs {\n vrrp_rt_priority 200\n}\n");
    assert_eq!(plan.vrrp_process.rt_priority, Some(99));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let (plan, _) = planned("");
    assert_eq!(plan.vrrp_process, ProcessPlan::default());
}
