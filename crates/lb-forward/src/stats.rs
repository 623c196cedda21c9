//! Counters like `ipvsadm -Ln --stats` (connections, packets and bytes in and out, per
//! service and per real server) with rates computed between two snapshots like `--rate`, and
//! the datapath's drop counters by reason.

use core::time::Duration;

use crate::DropReason;

/// Traffic counters of a service or a real server. "In" is client to real, "out" is real to
/// client (seen in NAT mode only, as in IPVS). Bytes are IP packet lengths.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Connections scheduled.
    pub conns: u64,
    /// Packets in.
    pub packets_in: u64,
    /// Packets out.
    pub packets_out: u64,
    /// Bytes in.
    pub bytes_in: u64,
    /// Bytes out.
    pub bytes_out: u64,
}

impl Counters {
    #[inline]
    pub(crate) fn count_in(&mut self, bytes: usize) {
        self.packets_in += 1;
        self.bytes_in += bytes as u64;
    }

    #[inline]
    pub(crate) fn count_out(&mut self, bytes: usize) {
        self.packets_out += 1;
        self.bytes_out += bytes as u64;
    }

    /// Per-second rates between an earlier snapshot and this one (`ipvsadm --rate`: CPS,
    /// InPPS, OutPPS, InBPS, OutBPS).
    pub fn rate_since(&self, earlier: &Counters, elapsed: Duration) -> Rates {
        let secs = elapsed.as_secs_f64();
        let per = |now: u64, then: u64| {
            if secs > 0.0 {
                now.saturating_sub(then) as f64 / secs
            } else {
                0.0
            }
        };
        Rates {
            conns: per(self.conns, earlier.conns),
            packets_in: per(self.packets_in, earlier.packets_in),
            packets_out: per(self.packets_out, earlier.packets_out),
            bytes_in: per(self.bytes_in, earlier.bytes_in),
            bytes_out: per(self.bytes_out, earlier.bytes_out),
        }
    }
}

/// Per-second rates of [`Counters`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rates {
    /// Connections per second.
    pub conns: f64,
    /// Packets in per second.
    pub packets_in: f64,
    /// Packets out per second.
    pub packets_out: f64,
    /// Bytes in per second.
    pub bytes_in: f64,
    /// Bytes out per second.
    pub bytes_out: f64,
}

/// Datapath-wide counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames received.
    pub received: u64,
    /// Frames sent on (rewritten or encapsulated).
    pub forwarded: u64,
    /// Frames left alone: not for a virtual service or a tracked connection, or our own.
    pub ignored: u64,
    /// ICMP errors generated (fragmentation needed, Packet Too Big).
    pub icmp_sent: u64,
    /// Connections evicted by the size policy.
    pub evicted: u64,
    /// Connections expired by their timeout.
    pub expired: u64,
    drops: [u64; DropReason::COUNT],
}

impl Stats {
    #[inline]
    pub(crate) fn drop(&mut self, reason: DropReason) {
        self.drop_many(reason, 1);
    }

    #[inline]
    pub(crate) fn drop_many(&mut self, reason: DropReason, n: u64) {
        self.drops[reason as usize] += n;
    }

    /// Frames dropped for this reason.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize]
    }

    /// Frames dropped for any reason.
    pub fn total_drops(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Each reason with its count, in [`DropReason::ALL`] order.
    pub fn drops_by_reason(&self) -> impl Iterator<Item = (DropReason, u64)> + '_ {
        DropReason::ALL
            .iter()
            .map(|r| (*r, self.drops[*r as usize]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_between_snapshots() {
        let a = Counters::default();
        let mut b = a;
        b.conns = 10;
        b.count_in(100);
        b.count_in(100);
        let r = b.rate_since(&a, Duration::from_secs(2));
        assert_eq!(r.conns, 5.0);
        assert_eq!(r.packets_in, 1.0);
        assert_eq!(r.bytes_in, 100.0);
        assert_eq!(b.rate_since(&a, Duration::ZERO), Rates::default());
    }

    #[test]
    fn drops_by_reason() {
        let mut s = Stats::default();
        s.drop(DropReason::Truncated);
        s.drop(DropReason::Truncated);
        s.drop(DropReason::TableFull);
        assert_eq!(s.drops(DropReason::Truncated), 2);
        assert_eq!(s.total_drops(), 3);
        assert_eq!(s.drops_by_reason().count(), DropReason::COUNT);
    }
}
