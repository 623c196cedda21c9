//! Connection states and their timeouts, as IPVS tracks them (`ip_vs_proto_tcp.c`,
//! `ip_vs_proto_udp.c`).
//!
//! TCP follows IPVS's three transition tables: INPUT (client to real), OUTPUT (real to client,
//! seen only in NAT mode) and INPUT_ONLY (used while no reply has been seen, as for DR and TUN
//! where replies bypass the director). The event is the highest-priority flag of the segment:
//! RST, then SYN, then FIN, then ACK; a segment with none of them changes nothing.

use core::time::Duration;

/// The state of a tracked connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ConnState {
    /// TCP `NONE`.
    None = 0,
    /// TCP `ESTABLISHED`: the only state counted as active.
    Established,
    /// TCP `SYN_SENT`.
    SynSent,
    /// TCP `SYN_RECV`: a SYN was forwarded.
    SynRecv,
    /// TCP `FIN_WAIT`.
    FinWait,
    /// TCP `TIME_WAIT`.
    TimeWait,
    /// TCP `CLOSE`.
    Close,
    /// TCP `CLOSE_WAIT`.
    CloseWait,
    /// TCP `LAST_ACK`.
    LastAck,
    /// TCP `LISTEN`.
    Listen,
    /// TCP `SYNACK`.
    SynAck,
    /// A UDP flow.
    Udp,
}

const TCP_STATES: usize = 11;

impl ConnState {
    /// The IPVS name (`ipvsadm -Lc`).
    pub fn name(self) -> &'static str {
        match self {
            ConnState::None => "NONE",
            ConnState::Established => "ESTABLISHED",
            ConnState::SynSent => "SYN_SENT",
            ConnState::SynRecv => "SYN_RECV",
            ConnState::FinWait => "FIN_WAIT",
            ConnState::TimeWait => "TIME_WAIT",
            ConnState::Close => "CLOSE",
            ConnState::CloseWait => "CLOSE_WAIT",
            ConnState::LastAck => "LAST_ACK",
            ConnState::Listen => "LISTEN",
            ConnState::SynAck => "SYNACK",
            ConnState::Udp => "UDP",
        }
    }

    /// Whether the connection counts as active for the scheduler (IPVS `activeconns`).
    pub fn is_active(self) -> bool {
        self == ConnState::Established
    }
}

/// Which way a segment travels (the discriminant indexes the transition tables).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Direction {
    /// Client to real, when replies are seen too (NAT).
    Input = 0,
    /// Real to client.
    Output = 1,
    /// Client to real, when replies are not seen (DR, TUN, or NAT before the first reply).
    InputOnly = 2,
}

use ConnState::{
    Close as CL, CloseWait as CW, Established as ES, FinWait as FW, LastAck as LA, Listen as LI,
    SynRecv as SR, SynSent as SS, TimeWait as TW,
};

/// `tcp_states[]` of ip_vs_proto_tcp.c: per direction, per event (syn, fin, ack, rst), the next
/// state indexed by the current one (NONE, ES, SS, SR, FW, TW, CL, CW, LA, LI, SA).
const TABLE: [[[ConnState; TCP_STATES]; 4]; 3] = [
    // INPUT
    [
        [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
        [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW],
        [CL, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR],
    ],
    // OUTPUT
    [
        [SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR],
        [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
        [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
        [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
    ],
    // INPUT_ONLY
    [
        [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
        [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
        [CL, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
    ],
];

/// The event of a segment's flags, indexed by [`event_index`]: RST 3, else SYN 0, else FIN 1,
/// else ACK 2, else 4 (no event).
const EVENT: [u8; 16] = {
    let mut e = [4; 16];
    let mut i = 0;
    while i < 16 {
        // Bits: FIN 1, SYN 2, RST 4, ACK 8.
        e[i] = if i & 4 != 0 {
            3
        } else if i & 2 != 0 {
            0
        } else if i & 1 != 0 {
            1
        } else if i & 8 != 0 {
            2
        } else {
            4
        };
        i += 1;
    }
    e
};

/// FIN, SYN and RST where they are in the flags, ACK (0x10) moved down next to them.
#[inline(always)]
fn event_index(flags: u8) -> usize {
    usize::from((flags & 0x07) | ((flags >> 1) & 0x08))
}

/// Every state, in discriminant order.
const ALL: [ConnState; TCP_STATES + 1] = [
    ConnState::None,
    ES,
    SS,
    SR,
    FW,
    TW,
    CL,
    CW,
    LA,
    LI,
    ConnState::SynAck,
    ConnState::Udp,
];

/// [`TABLE`] widened so that a step is two loads and no branch: a fifth event (no flag)
/// and a twelfth column (UDP) that leave the state as it is.
const NEXT: [[[ConnState; TCP_STATES + 1]; 5]; 3] = {
    let mut next = [[ALL; 5]; 3];
    let mut dir = 0;
    while dir < 3 {
        let mut event = 0;
        while event < 4 {
            let mut state = 0;
            while state < TCP_STATES {
                next[dir][event][state] = TABLE[dir][event][state];
                state += 1;
            }
            event += 1;
        }
        dir += 1;
    }
    next
};

/// The next TCP state after a segment with these flags (`set_tcp_state`).
#[inline(always)]
pub(crate) fn next_tcp(state: ConnState, dir: Direction, flags: u8) -> ConnState {
    NEXT[dir as usize][usize::from(EVENT[event_index(flags)])][state as usize]
}

/// Connection timeouts per state. The defaults are IPVS's (`ipvsadm --set 900 120 300`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Indexed by [`ConnState`]'s discriminant: one load per packet, no match.
    by_state: [Duration; TCP_STATES + 1],
    /// The same in nanoseconds (see `service::nanos`).
    nanos: [u64; TCP_STATES + 1],
}

impl Default for Timeouts {
    fn default() -> Self {
        let s = Duration::from_secs;
        let mut t = Timeouts {
            nanos: [0; TCP_STATES + 1],
            // NONE, ES, SS, SR, FW, TW, CL, CW, LA, LI, SA, UDP
            by_state: [
                s(2),
                s(900),
                s(120),
                s(60),
                s(120),
                s(120),
                s(10),
                s(60),
                s(30),
                s(120),
                s(120),
                s(300),
            ],
        };
        for (n, d) in t.nanos.iter_mut().zip(&t.by_state) {
            *n = crate::service::nanos(*d);
        }
        t
    }
}

impl Timeouts {
    /// `ipvsadm --set TCP TCPFIN UDP`: the ESTABLISHED, FIN_WAIT and UDP timeouts; a zero leaves
    /// that one unchanged, as ipvsadm does.
    pub fn set(&mut self, tcp: Duration, tcpfin: Duration, udp: Duration) {
        for (state, t) in [(ES, tcp), (FW, tcpfin), (ConnState::Udp, udp)] {
            if !t.is_zero() {
                self.set_state(state, t);
            }
        }
    }

    /// Sets the timeout of one state.
    pub fn set_state(&mut self, state: ConnState, timeout: Duration) {
        self.by_state[state as usize] = timeout;
        self.nanos[state as usize] = crate::service::nanos(timeout);
    }

    /// The timeout of a state.
    #[inline]
    pub fn get(&self, state: ConnState) -> Duration {
        self.by_state[state as usize]
    }

    /// The timeout of a state in nanoseconds.
    #[inline]
    pub(crate) fn nanos(&self, state: ConnState) -> u64 {
        self.nanos[state as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN};

    #[test]
    fn nat_handshake_and_close() {
        let mut s = ConnState::None;
        s = next_tcp(s, Direction::InputOnly, TCP_SYN);
        assert_eq!(s, ConnState::SynRecv);
        s = next_tcp(s, Direction::Output, TCP_SYN | TCP_ACK);
        assert_eq!(s, ConnState::SynRecv);
        s = next_tcp(s, Direction::Input, TCP_ACK);
        assert_eq!(s, ConnState::Established);
        s = next_tcp(s, Direction::Input, TCP_FIN | TCP_ACK);
        assert_eq!(s, ConnState::CloseWait);
        s = next_tcp(s, Direction::Output, TCP_FIN | TCP_ACK);
        assert_eq!(s, ConnState::TimeWait);
    }

    #[test]
    fn dr_sees_only_input() {
        let mut s = next_tcp(ConnState::None, Direction::InputOnly, TCP_SYN);
        s = next_tcp(s, Direction::InputOnly, TCP_ACK);
        assert_eq!(s, ConnState::Established);
        s = next_tcp(s, Direction::InputOnly, TCP_FIN | TCP_ACK);
        assert_eq!(s, ConnState::FinWait);
        assert_eq!(next_tcp(s, Direction::InputOnly, TCP_RST), ConnState::Close);
        // No flag at all: no event.
        assert_eq!(next_tcp(s, Direction::InputOnly, 0), s);
    }

    /// The branch-free step agrees with the event priority and `TABLE` written out, for
    /// every state, direction and flag byte.
    #[test]
    fn step_matches_the_table() {
        for (d, dir) in [Direction::Input, Direction::Output, Direction::InputOnly]
            .into_iter()
            .enumerate()
        {
            for flags in 0..=u8::MAX {
                let event = if flags & TCP_RST != 0 {
                    Some(3)
                } else if flags & TCP_SYN != 0 {
                    Some(0)
                } else if flags & TCP_FIN != 0 {
                    Some(1)
                } else if flags & TCP_ACK != 0 {
                    Some(2)
                } else {
                    None
                };
                for (i, &s) in ALL.iter().enumerate() {
                    let want = match event {
                        Some(e) if i < TCP_STATES => TABLE[d][e][i],
                        _ => s,
                    };
                    assert_eq!(next_tcp(s, dir, flags), want, "{dir:?} {flags:#x} {s:?}");
                }
            }
        }
    }

    #[test]
    fn set_like_ipvsadm() {
        let mut t = Timeouts::default();
        assert_eq!(t.get(ConnState::Established), Duration::from_secs(900));
        assert_eq!(t.get(ConnState::FinWait), Duration::from_secs(120));
        assert_eq!(t.get(ConnState::Udp), Duration::from_secs(300));
        t.set(
            Duration::from_secs(60),
            Duration::ZERO,
            Duration::from_secs(5),
        );
        assert_eq!(t.get(ConnState::Established), Duration::from_secs(60));
        assert_eq!(t.get(ConnState::FinWait), Duration::from_secs(120));
        assert_eq!(t.get(ConnState::Udp), Duration::from_secs(5));
    }
}
