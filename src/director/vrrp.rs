//! Every `vrrp_instance` in one thread: lb-vrrp's Linux driver running the instances (on
//! their interfaces) and the `vrrp_sync_group`s. Transitions are reported, run the notify
//! scripts (the instances' and, once every member has changed, the group's), and decide
//! whether the datapath serves (while any instance is master). A reload is applied in place
//! from the driver's tick ([`Reload`]).

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};

use lb_vrrp::linux::{Driver, Handler, Interface, Routers, realtime};
use lb_vrrp::{Event, State};

use super::datapath::Command;
use super::plan::{GroupPlan, InstancePlan, ProcessPlan};
use super::track::Inputs;
use super::{Report, notify, unix_ms};

/// The state of every instance, shared with the control socket.
pub(crate) type States = Arc<Mutex<HashMap<String, State>>>;

/// A new configuration for the running VRRP thread. Applied in place: an instance whose plan
/// is unchanged but for its notify scripts (the new ones apply), and whose sync group (if any)
/// has the same members all unchanged, goes on in its state undisturbed; the others resign (a master sends priority 0 and removes its
/// addresses) and, when still configured, start again as at startup; new ones start; the
/// groups are replaced; tracked inputs follow; `vrrp_process` changes apply to the thread.
pub(crate) struct Reload {
    pub(crate) instances: Vec<InstancePlan>,
    pub(crate) groups: Vec<GroupPlan>,
    pub(crate) process: ProcessPlan,
}

/// Opens one driver for `instances` and `groups` (errors reach the caller before any thread
/// starts).
pub(crate) fn open(instances: &[InstancePlan], groups: &[GroupPlan]) -> Result<Driver, String> {
    let mut builder = Driver::builder();
    for plan in instances {
        builder.router(&plan.interface, router_config(plan)?, plan.prefixes.clone());
    }
    for group in groups {
        builder.sync_group(group.members.clone());
    }
    builder.build().map_err(|e| format!("vrrp: {e}"))
}

/// The instance's router settings with the address it advertises from.
fn router_config(plan: &InstancePlan) -> Result<lb_vrrp::Config, String> {
    let iface = Interface::lookup(&plan.interface)
        .map_err(|e| format!("{}: interface {}: {e}", plan.name, plan.interface))?;
    let primary = iface
        .primary(plan.vrrp.family(), &plan.vrrp.vips)
        .or(plan.primary_configured.then_some(plan.vrrp.primary))
        .ok_or_else(|| {
            format!(
                "{}: {} has no address to advertise from",
                plan.name, plan.interface
            )
        })?;
    Ok(plan.with_primary(primary))
}

/// keepalived's name of a state in notify arguments.
fn notify_name(state: State) -> &'static str {
    match state {
        State::Initialize => "STOP",
        other => other.name(),
    }
}

/// The script of `notify` for `state`.
fn script_for(notify: &crate::config::Notify, state: State) -> Option<&String> {
    match state {
        State::Master => notify.master.as_ref(),
        State::Backup => notify.backup.as_ref(),
        State::Fault => notify.fault.as_ref(),
        State::Initialize => notify.stop.as_ref(),
    }
}

/// Applies `vrrp_rt_priority` and `vrrp_no_swap` to the calling (VRRP) thread; a failure is
/// reported and the thread runs on under normal scheduling, as keepalived does.
pub(crate) fn schedule(process: ProcessPlan, report: &Report) {
    if let Some(priority) = process.rt_priority {
        if let Err(e) = realtime::set_realtime(priority) {
            report(&format!("vrrp_rt_priority {priority}: {e}"));
        }
    }
    if process.no_swap {
        if let Err(e) = realtime::lock_memory() {
            report(&format!("vrrp_no_swap: {e}"));
        }
    }
}

/// A reload's `vrrp_process` change: as keepalived, back to normal scheduling and unlocked
/// memory, then the new settings.
fn reschedule(old: ProcessPlan, new: ProcessPlan, report: &Report) {
    if old == new {
        return;
    }
    if old.rt_priority.is_some() {
        if let Err(e) = realtime::set_normal() {
            report(&format!("vrrp_rt_priority off: {e}"));
        }
    }
    if old.no_swap {
        if let Err(e) = realtime::unlock_memory() {
            report(&format!("vrrp_no_swap off: {e}"));
        }
    }
    schedule(new, report);
}

/// Runs the instances until `stop`, applying the reloads received, then resigns (priority 0)
/// and removes their addresses.
pub(crate) struct Thread<'a> {
    pub(crate) stop: &'a AtomicBool,
    pub(crate) reloads: Receiver<Reload>,
    pub(crate) states: &'a States,
    pub(crate) commands: &'a Sender<Command>,
    pub(crate) report: &'a Report,
}

impl Thread<'_> {
    pub(crate) fn run(
        self,
        mut driver: Driver,
        instances: Vec<InstancePlan>,
        groups: Vec<GroupPlan>,
        process: ProcessPlan,
    ) {
        schedule(process, self.report);
        let (report, stop) = (self.report, self.stop);
        let mut running = Instances {
            inputs: Inputs::new(&instances),
            instances,
            groups,
            process,
            thread: self,
        };
        if let Err(e) = driver.run_handler(stop, &mut running) {
            report(&format!("vrrp: {e}"));
        }
        if let Err(e) = driver.shutdown_indexed(&mut |i, e| running.event(i, e)) {
            report(&format!("vrrp: shutting down: {e}"));
        }
    }
}

/// The running instances and groups, in the driver's order.
struct Instances<'a> {
    /// `instances[i]` runs as router `i`.
    instances: Vec<InstancePlan>,
    /// `groups[g]` is sync group `g`; its members index `instances`.
    groups: Vec<GroupPlan>,
    inputs: Inputs,
    process: ProcessPlan,
    thread: Thread<'a>,
}

impl Handler for Instances<'_> {
    fn event(&mut self, router: Option<usize>, event: &Event) {
        let report = self.thread.report;
        match (router, event) {
            (Some(i), Event::StateChanged { to, priority, .. }) => {
                let Some(plan) = self.instances.get(i) else {
                    return;
                };
                report(&transition_line(plan, event));
                notify_instance(plan, *to, *priority, report);
                let name = plan.name.clone();
                self.set_state(name, Some(*to));
            }
            (_, Event::GroupStateChanged { group, to, .. }) => {
                let Some(plan) = self.groups.get(*group) else {
                    return;
                };
                report(&format!(
                    "{} group {} {to} (every member)",
                    unix_ms(),
                    plan.name
                ));
                if let Some(script) = script_for(&plan.notify, *to) {
                    notify(script, &[], report);
                }
                if let Some(script) = &plan.notify.any {
                    notify(
                        script,
                        &["GROUP", &plan.name, notify_name(*to), "0"],
                        report,
                    );
                }
            }
            (Some(i), Event::Warning { vrid, warning }) => report(&format!(
                "{} {vrid} warning: {warning} ({})",
                unix_ms(),
                self.instances.get(i).map_or("?", |p| p.name.as_str())
            )),
            // Announcements are the driver's; later kinds are reported by nobody yet.
            _ => {}
        }
    }

    fn tick(&mut self, routers: &mut Routers<'_>) {
        if let Some(reload) = self.thread.reloads.try_iter().last() {
            self.reload(reload, routers);
        }
        let now = routers.now();
        self.inputs
            .tick(now, routers.routers_mut(), self.thread.report);
    }
}

impl Instances<'_> {
    /// Records an instance's state (`None`: gone) and whether the datapath serves.
    fn set_state(&mut self, name: String, state: Option<State>) {
        if let Ok(mut s) = self.thread.states.lock() {
            match state {
                Some(state) => s.insert(name, state),
                None => s.remove(&name),
            };
            let serving = s.values().any(|st| *st == State::Master);
            let _ = self.thread.commands.send(Command::Serve(serving));
        }
    }

    /// Applies a reload (see [`Reload`]).
    fn reload(&mut self, reload: Reload, routers: &mut Routers<'_>) {
        let report = self.thread.report;
        let stays = staying(
            &self.instances,
            &self.groups,
            &reload.instances,
            &reload.groups,
        );
        // From the last, so that the indices still to visit stay put.
        for i in (0..self.instances.len()).rev().filter(|&i| !stays[i]) {
            let plan = self.instances.remove(i);
            let deleted = !reload.instances.iter().any(|p| p.name == plan.name);
            let result = routers.remove(i, &mut |event| self.resigned(&plan, deleted, event));
            if let Err(e) = result {
                report(&format!("reload: {}: {e}", plan.name));
            }
            self.set_state(plan.name, None);
        }
        for plan in &reload.instances {
            if let Some(kept) = self.instances.iter_mut().find(|p| p.name == plan.name) {
                // Its notify scripts may have changed.
                kept.clone_from(plan);
                continue;
            }
            let added = router_config(plan).and_then(|config| {
                routers
                    .add(&plan.interface, config, plan.prefixes.clone())
                    .map_err(|e| format!("{}: {e}", plan.name))
            });
            match added {
                Ok(_) => self.instances.push(plan.clone()),
                Err(e) => report(&format!("reload: {e}; instance not run")),
            }
        }
        // The groups, with members renumbered to the driver's order.
        let mut groups = Vec::with_capacity(reload.groups.len());
        for group in reload.groups {
            let members: Vec<usize> = group
                .members
                .iter()
                .filter_map(|&m| reload.instances.get(m))
                .filter_map(|p| self.instances.iter().position(|q| q.name == p.name))
                .collect();
            if !members.is_empty() {
                groups.push(GroupPlan { members, ..group });
            }
        }
        let members = groups.iter().map(|g| g.members.clone()).collect();
        match routers.set_sync_groups(members) {
            Ok(()) => self.groups = groups,
            Err(e) => report(&format!("reload: sync groups: {e}")),
        }
        self.inputs.follow(&self.instances);
        reschedule(self.process, reload.process, report);
        self.process = reload.process;
    }

    /// An event of an instance resigning for a reload: reported; its notify scripts run as at
    /// a stop, or for an instance `deleted` from the configuration as keepalived 2.2.7 does
    /// (`clear_diff_vrrp`: FAULT, unless it was in FAULT already).
    fn resigned(&self, plan: &InstancePlan, deleted: bool, event: &Event) {
        let report = self.thread.report;
        let Event::StateChanged {
            from, to, priority, ..
        } = event
        else {
            return;
        };
        report(&transition_line(plan, event));
        let state = match (deleted, from) {
            (false, _) => *to,
            (true, State::Fault) => return,
            (true, _) => State::Fault,
        };
        notify_instance(plan, state, *priority, report);
    }
}

/// Runs an instance's notify scripts for `state`: `notify_master` / `notify_backup` /
/// `notify_fault` / `notify_stop`, and `notify INSTANCE NAME STATE PRIORITY` with the
/// effective priority, as keepalived 2.2.7 (`send_instance_notifies`). keepalived skips them
/// for a sync group member already in the state through its group (a member held in FAULT by
/// the group whose own input fails too); the router reports no transition then, so nothing
/// runs here either.
fn notify_instance(plan: &InstancePlan, state: State, priority: u8, report: &Report) {
    if let Some(script) = script_for(&plan.notify, state) {
        notify(script, &[], report);
    }
    if let Some(script) = &plan.notify.any {
        let priority = priority.to_string();
        notify(
            script,
            &["INSTANCE", &plan.name, notify_name(state), &priority],
            report,
        );
    }
}

/// `<unix-ms> <vrid> <STATE> <reason> (<instance>)`.
fn transition_line(plan: &InstancePlan, event: &Event) -> String {
    match event {
        Event::StateChanged {
            vrid, to, reason, ..
        } => format!("{} {vrid} {to} {reason} ({})", unix_ms(), plan.name),
        other => format!("{} {other:?} ({})", unix_ms(), plan.name),
    }
}

/// Which of the running `instances` (in `groups`) go on undisturbed under a new plan: those
/// configured the same (notify scripts aside: they are not the router's), whose sync group (if
/// any) has the same members, each configured the same (a restarted member would take a
/// master group back to backup).
fn staying(
    instances: &[InstancePlan],
    groups: &[GroupPlan],
    new: &[InstancePlan],
    new_groups: &[GroupPlan],
) -> Vec<bool> {
    let same: Vec<bool> = instances
        .iter()
        .enumerate()
        .map(|(i, plan)| {
            new.iter().enumerate().any(|(j, p)| {
                same_router(plan, p)
                    && group_of(instances, groups, i) == group_of(new, new_groups, j)
            })
        })
        .collect();
    (0..instances.len())
        .map(|i| match groups.iter().find(|g| g.members.contains(&i)) {
            Some(g) => g.members.iter().all(|&m| same.get(m) == Some(&true)),
            None => same[i],
        })
        .collect()
}

/// Whether `a` and `b` configure the same router: equal but for their notify scripts.
fn same_router(a: &InstancePlan, b: &InstancePlan) -> bool {
    let b = InstancePlan {
        notify: a.notify.clone(),
        ..b.clone()
    };
    *a == b
}

/// The names of the members of instance `i`'s sync group, sorted.
fn group_of<'a>(
    instances: &'a [InstancePlan],
    groups: &[GroupPlan],
    i: usize,
) -> Option<Vec<&'a str>> {
    let group = groups.iter().find(|g| g.members.contains(&i))?;
    let mut names: Vec<&str> = group
        .members
        .iter()
        .filter_map(|&m| instances.get(m))
        .map(|p| p.name.as_str())
        .collect();
    names.sort_unstable();
    Some(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_str_isolated;
    use crate::director::plan;

    fn instance(name: &str, vrid: u8, priority: u8) -> String {
        format!(
            "vrrp_instance {name} {{\n interface eth0\n virtual_router_id {vrid}\n priority {priority}\n\
             virtual_ipaddress {{\n  10.0.{vrid}.1/24\n }}\n}}\n"
        )
    }

    fn planned(text: &str) -> (Vec<InstancePlan>, Vec<GroupPlan>) {
        let loaded = parse_str_isolated(text, "t.conf").unwrap();
        let (plan, _) = plan(&loaded.config);
        (plan.instances, plan.groups)
    }

    fn stays(old: &str, new: &str) -> Vec<bool> {
        let (a, ag) = planned(old);
        let (b, bg) = planned(new);
        staying(&a, &ag, &b, &bg)
    }

    const GROUP: &str = "vrrp_sync_group G {\n group {\n  A\n  B\n }\n}\n";

    #[test]
    fn unchanged_instances_stay_wherever_they_are_in_the_file() {
        let old = instance("A", 1, 100) + &instance("B", 2, 100);
        let new = instance("C", 3, 100) + &instance("B", 2, 100) + &instance("A", 1, 100);
        assert_eq!(stays(&old, &new), [true, true]);
        let service = "virtual_server 10.0.1.1 80 {\n lb_algo rr\n}\n";
        assert_eq!(stays(&old, &(old.clone() + service)), [true, true]);
    }

    #[test]
    fn changed_and_removed_instances_restart() {
        let old = instance("A", 1, 100) + &instance("B", 2, 100);
        assert_eq!(stays(&old, &instance("A", 1, 101)), [false, false]);
        let renamed = instance("A2", 1, 100) + &instance("B", 2, 100);
        assert_eq!(stays(&old, &renamed), [false, true]);
        let notified = old.replace(
            " priority 100\n",
            " priority 100\n notify_master /bin/true\n",
        );
        assert_eq!(stays(&old, &notified), [true, true], "notify scripts aside");
    }

    #[test]
    fn a_group_stays_only_whole_and_unchanged() {
        let old = instance("A", 1, 100) + &instance("B", 2, 100) + GROUP;
        let notify = GROUP.replace("}\n}\n", "}\n notify_master /bin/true\n}\n");
        assert_eq!(
            stays(
                &old,
                &(instance("A", 1, 100) + &instance("B", 2, 100) + &notify)
            ),
            [true, true],
            "the group's notify scripts are not the routers'"
        );
        let one_changed = instance("A", 1, 100) + &instance("B", 2, 50) + GROUP;
        assert_eq!(stays(&old, &one_changed), [false, false]);
        let ungrouped = instance("A", 1, 100) + &instance("B", 2, 100);
        assert_eq!(stays(&old, &ungrouped), [false, false]);
        let grown = instance("A", 1, 100)
            + &instance("B", 2, 100)
            + &instance("C", 3, 100)
            + &GROUP.replace("B\n", "B\n  C\n");
        assert_eq!(stays(&old, &grown), [false, false]);
    }
}
