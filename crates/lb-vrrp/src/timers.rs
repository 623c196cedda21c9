//! Skew_Time and Master_Down_Interval (RFC 3768 §6.1, RFC 9568 §6.1).

use core::time::Duration;

use crate::wire::Version;

/// Skew_Time for a backup of `priority`: VRRPv2 `(256 - priority) / 256` seconds whatever the
/// interval; VRRPv3 `(256 - priority) * Master_Adver_Interval / 256`. Exact to the nanosecond
/// (keepalived computes the same in microseconds).
pub fn skew_time(version: Version, priority: u8, master_adver_interval: Duration) -> Duration {
    let base = match version {
        Version::V2 => Duration::from_secs(1),
        Version::V3 => master_adver_interval,
    };
    base * (256 - u32::from(priority)) / 256
}

/// Master_Down_Interval: `3 * Master_Adver_Interval + Skew_Time`.
pub fn master_down_interval(
    version: Version,
    priority: u8,
    master_adver_interval: Duration,
) -> Duration {
    master_adver_interval * 3 + skew_time(version, priority, master_adver_interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_figures() {
        // v2, 1 s, priority 100: 3 + 156/256 s (research: "at most 3.6 seconds").
        assert_eq!(
            master_down_interval(Version::V2, 100, Duration::from_secs(1)),
            Duration::from_micros(3_609_375)
        );
        // v2 skew does not scale with the interval.
        assert_eq!(
            skew_time(Version::V2, 100, Duration::from_secs(5)),
            Duration::from_micros(609_375)
        );
        // FRR's output for v3, priority 200 at 1000 ms: skew 210 ms (218.75 truncated to cs
        // by FRR), master down 3210 ms; exact here.
        assert_eq!(
            skew_time(Version::V3, 200, Duration::from_secs(1)),
            Duration::from_micros(218_750)
        );
        // v3, 100 ms, priority 100: 0.36 s.
        assert_eq!(
            master_down_interval(Version::V3, 100, Duration::from_millis(100)),
            Duration::from_micros(360_937) + Duration::from_nanos(500)
        );
    }
}
