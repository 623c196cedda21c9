//! One thread per `vrrp_instance`: lb-vrrp's Linux driver on its interface. Transitions are
//! reported, run the notify scripts, and decide whether the datapath serves (while any
//! instance is master).

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};

use lb_vrrp::linux::{Driver, Interface};
use std::time::Duration;

use lb_vrrp::{Event, Router, State};

use super::datapath::Command;
use super::plan::InstancePlan;
use super::track::Inputs;
use super::{Report, notify, unix_ms};

/// The state of every instance, shared with the control socket.
pub(crate) type States = Arc<Mutex<HashMap<String, State>>>;

/// Opens the driver of `plan` (errors reach the caller before any thread starts).
pub(crate) fn open(plan: &InstancePlan) -> Result<Driver, String> {
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
    Driver::new(
        &plan.interface,
        plan.with_primary(primary),
        plan.prefixes.clone(),
    )
    .map_err(|e| format!("{}: {e}", plan.name))
}

/// Runs one instance until `stop`, then resigns (priority 0) and removes its addresses.
pub(crate) fn run(
    mut driver: Driver,
    plan: InstancePlan,
    stop: &AtomicBool,
    states: &States,
    commands: &Sender<Command>,
    report: &Report,
) {
    let mut on_event = |event: &Event| match event {
        Event::StateChanged {
            vrid, to, reason, ..
        } => {
            report(&format!(
                "{} {vrid} {to} {reason} ({})",
                unix_ms(),
                plan.name
            ));
            let script = match to {
                State::Master => &plan.notify.master,
                State::Backup => &plan.notify.backup,
                State::Fault => &plan.notify.fault,
                State::Initialize => &plan.notify.stop,
            };
            if let Some(script) = script {
                notify(script, &[], report);
            }
            if let Some(script) = &plan.notify.any {
                let priority = plan.vrrp.priority.to_string();
                notify(
                    script,
                    &["INSTANCE", &plan.name, &to.to_string(), &priority],
                    report,
                );
            }
            if let Ok(mut s) = states.lock() {
                s.insert(plan.name.clone(), *to);
                let serving = s.values().any(|st| *st == State::Master);
                let _ = commands.send(Command::Serve(serving));
            }
        }
        Event::Warning { vrid, warning } => report(&format!(
            "{} {vrid} warning: {warning} ({})",
            unix_ms(),
            plan.name
        )),
        // Announcements are the driver's; later kinds are reported by nobody yet.
        _ => {}
    };
    let mut inputs = Inputs::new(&plan.tracked);
    let mut on_tick = |now: Duration, routers: &mut [Router]| {
        if let Some(router) = routers.first_mut() {
            inputs.tick(now, router, &plan.name, report);
        }
    };
    if let Err(e) = driver.run_with(stop, &mut on_event, &mut on_tick) {
        report(&format!("{}: {e}", plan.name));
    }
    if let Err(e) = driver.shutdown(&mut on_event) {
        report(&format!("{}: shutting down: {e}", plan.name));
    }
}
