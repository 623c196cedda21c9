//! Every `vrrp_instance` in one thread: lb-vrrp's Linux driver running the instances (on
//! their interfaces) and the `vrrp_sync_group`s. Transitions are reported, run the notify
//! scripts (the instances' and, once every member has changed, the group's), and decide
//! whether the datapath serves (while any instance is master).

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use lb_vrrp::linux::{Driver, Interface, realtime};

use lb_vrrp::{Event, State};

use super::datapath::Command;
use super::plan::{GroupPlan, InstancePlan, ProcessPlan};
use super::track::Inputs;
use super::{Report, notify, unix_ms};

/// The state of every instance, shared with the control socket.
pub(crate) type States = Arc<Mutex<HashMap<String, State>>>;

/// Opens one driver for `instances` and `groups` (errors reach the caller before any thread
/// starts).
pub(crate) fn open(instances: &[InstancePlan], groups: &[GroupPlan]) -> Result<Driver, String> {
    let mut builder = Driver::builder();
    for plan in instances {
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
        builder.router(
            &plan.interface,
            plan.with_primary(primary),
            plan.prefixes.clone(),
        );
    }
    for group in groups {
        builder.sync_group(group.members.clone());
    }
    builder.build().map_err(|e| format!("vrrp: {e}"))
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

/// Runs the instances until `stop`, then resigns (priority 0) and removes their addresses.
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

pub(crate) fn run(
    mut driver: Driver,
    instances: &[InstancePlan],
    groups: &[GroupPlan],
    stop: &AtomicBool,
    states: &States,
    commands: &Sender<Command>,
    report: &Report,
) {
    let mut on_event = |index: Option<usize>, event: &Event| match (index, event) {
        (
            Some(i),
            Event::StateChanged {
                vrid, to, reason, ..
            },
        ) => {
            let Some(plan) = instances.get(i) else { return };
            report(&format!(
                "{} {vrid} {to} {reason} ({})",
                unix_ms(),
                plan.name
            ));
            if let Some(script) = script_for(&plan.notify, *to) {
                notify(script, &[], report);
            }
            if let Some(script) = &plan.notify.any {
                let priority = plan.vrrp.priority.to_string();
                notify(
                    script,
                    &["INSTANCE", &plan.name, notify_name(*to), &priority],
                    report,
                );
            }
            if let Ok(mut s) = states.lock() {
                s.insert(plan.name.clone(), *to);
                let serving = s.values().any(|st| *st == State::Master);
                let _ = commands.send(Command::Serve(serving));
            }
        }
        (_, Event::GroupStateChanged { group, to, .. }) => {
            let Some(plan) = groups.get(*group) else {
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
            instances.get(i).map_or("?", |p| p.name.as_str())
        )),
        // Announcements are the driver's; later kinds are reported by nobody yet.
        _ => {}
    };
    let mut inputs = Inputs::new(instances);
    let mut on_tick = |now, routers: &mut [lb_vrrp::Router]| inputs.tick(now, routers, report);
    if let Err(e) = driver.run_indexed(stop, &mut on_event, &mut on_tick) {
        report(&format!("vrrp: {e}"));
    }
    if let Err(e) = driver.shutdown_indexed(&mut on_event) {
        report(&format!("vrrp: shutting down: {e}"));
    }
}
