//! The statistics table, in the layout of `ipvsadm -Ln --stats --rate`: one line per service and
//! per real server with totals and per-second rates, then the datapath's drop counters.

use core::fmt::Write;
use core::time::Duration;

use crate::forwarder::ServiceStatus;
use crate::service::Method;
use crate::stats::{Counters, Rates, Stats};

/// Renders the table. Rates are computed against `earlier` (a previous [`status`] snapshot and
/// the time elapsed since), and are zero without it.
///
/// [`status`]: crate::Forwarder::status
pub fn stats_table(
    services: &[ServiceStatus],
    earlier: Option<(&[ServiceStatus], Duration)>,
    stats: &Stats,
    connections: usize,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Prot LocalAddress:Port Scheduler Flags / -> RemoteAddress:Port Forward Weight ActiveConn InActConn"
    );
    let _ = writeln!(
        out,
        "{:<48} {:>8} {:>9} {:>9} {:>11} {:>11} {:>7} {:>8} {:>8} {:>10} {:>10}",
        "",
        "Conns",
        "InPkts",
        "OutPkts",
        "InBytes",
        "OutBytes",
        "CPS",
        "InPPS",
        "OutPPS",
        "InBPS",
        "OutBPS"
    );
    for svc in services {
        let before =
            earlier.and_then(|(e, dt)| e.iter().find(|s| s.key == svc.key).map(|s| (s, dt)));
        let rates = before.map(|(b, dt)| svc.counters.rate_since(&b.counters, dt));
        let label = format!(
            "{}{}",
            svc.key,
            if svc.config.one_packet { " ops" } else { "" }
        );
        row(&mut out, &label, &svc.counters, rates);
        for r in &svc.reals {
            let rr = before.and_then(|(b, dt)| {
                b.reals
                    .iter()
                    .find(|x| x.config.addr == r.config.addr)
                    .map(|x| r.counters.rate_since(&x.counters, dt))
            });
            let method = match r.config.method {
                Method::Tunnel(crate::Encap::Gue { .. }) => "Tunnel(gue)",
                m => m.name(),
            };
            let label = format!(
                "  -> {} {} {} {} {}{}",
                r.config.addr,
                method,
                r.config.weight,
                r.active,
                r.inactive,
                if r.next_hop.is_none() {
                    " (no next hop)"
                } else {
                    ""
                }
            );
            row(&mut out, &label, &r.counters, rr);
        }
    }
    let _ = write!(
        out,
        "connections {connections}, received {}, forwarded {}, ignored {}, icmp sent {}, expired {}, evicted {}\ndrops:",
        stats.received,
        stats.forwarded,
        stats.ignored,
        stats.icmp_sent,
        stats.expired,
        stats.evicted
    );
    let mut any = false;
    for (reason, n) in stats.drops_by_reason().filter(|(_, n)| *n > 0) {
        let _ = write!(out, " {reason}={n}");
        any = true;
    }
    if !any {
        out.push_str(" none");
    }
    out.push('\n');
    out
}

fn row(out: &mut String, label: &str, c: &Counters, r: Option<Rates>) {
    let r = r.unwrap_or_default();
    let _ = writeln!(
        out,
        "{label:<48} {:>8} {:>9} {:>9} {:>11} {:>11} {:>7.0} {:>8.0} {:>8.0} {:>10.0} {:>10.0}",
        c.conns,
        c.packets_in,
        c.packets_out,
        c.bytes_in,
        c.bytes_out,
        r.conns,
        r.packets_in,
        r.packets_out,
        r.bytes_in,
        r.bytes_out
    );
}
