//! What a router reports: state changes with their reasons, announcements to make and interop
//! warnings.

use core::fmt;
use core::net::IpAddr;
use core::time::Duration;

use crate::wire::{ChecksumForm, Version};

/// A virtual router's state (RFC 9568 §6.4 plus keepalived's FAULT).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// Not running: before startup and after shutdown.
    Initialize,
    /// Listening to the master, ready to take over.
    Backup,
    /// Forwarding for the virtual addresses and advertising (RFC 9568's Active).
    Master,
    /// A tracked input with weight 0 is down, or the link is: neither advertising nor taking
    /// over (keepalived's FAULT).
    Fault,
}

impl State {
    /// keepalived's upper-case name (`MASTER`).
    pub fn name(self) -> &'static str {
        match self {
            State::Initialize => "INIT",
            State::Backup => "BACKUP",
            State::Master => "MASTER",
            State::Fault => "FAULT",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a router changed state.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// Startup as a backup (RFC 9568 §6.4.1).
    Startup,
    /// Startup or recovery with priority 255: the address owner is master at once.
    Owner,
    /// No advert from a master for Master_Down_Interval.
    MasterDown {
        /// The interval that passed.
        down_interval: Duration,
    },
    /// The master resigned (priority 0) and our Skew_Time passed.
    MasterResigned {
        /// The resigning master.
        from: IpAddr,
    },
    /// We preempted a lower-priority master.
    Preempt {
        /// Its priority.
        priority: u8,
        /// Its address.
        from: IpAddr,
    },
    /// An advert with a higher priority.
    HigherPriority {
        /// Its priority.
        priority: u8,
        /// Its sender.
        from: IpAddr,
    },
    /// An advert with our priority from a higher primary address.
    HigherAddress {
        /// The shared priority.
        priority: u8,
        /// Its sender.
        from: IpAddr,
    },
    /// Shutdown ([`Router::handle_shutdown`](crate::Router::handle_shutdown)).
    Shutdown,
    /// A tracked input with weight 0 went down (or the link, named `link`).
    TrackDown {
        /// The input's name.
        name: String,
    },
    /// Every fault cleared.
    FaultCleared,
    /// Another member of the sync group changed state.
    SyncGroup {
        /// The member's VRID.
        vrid: u8,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Startup => f.write_str("startup"),
            Reason::Owner => f.write_str("address owner (priority 255)"),
            Reason::MasterDown { down_interval } => {
                write!(
                    f,
                    "no advert for master down interval {:.3}s",
                    down_interval.as_secs_f64()
                )
            }
            Reason::MasterResigned { from } => write!(f, "master {from} resigned (priority 0)"),
            Reason::Preempt { priority, from } => {
                write!(f, "preempting lower priority {priority} from {from}")
            }
            Reason::HigherPriority { priority, from } => {
                write!(f, "higher priority {priority} from {from}")
            }
            Reason::HigherAddress { priority, from } => {
                write!(f, "equal priority {priority} from higher address {from}")
            }
            Reason::Shutdown => f.write_str("shutdown"),
            Reason::TrackDown { name } => write!(f, "{name} down"),
            Reason::FaultCleared => f.write_str("fault cleared"),
            Reason::SyncGroup { vrid } => write!(f, "sync group member {vrid} changed state"),
        }
    }
}

/// A sign that a peer on the segment will not form one virtual router with us.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InteropWarning {
    /// A peer speaks another version; its adverts are dropped and both sides become master.
    VersionMismatch {
        /// The peer.
        from: IpAddr,
        /// Its version.
        version: Version,
    },
    /// A VRRPv2 peer with another interval: its adverts are dropped (RFC 3768 §7.1).
    IntervalMismatch {
        /// The peer.
        from: IpAddr,
        /// Its interval.
        interval: Duration,
    },
    /// A peer advertises another set of virtual addresses (keepalived 2.2.7 drops such adverts
    /// unless `skip_check_adv_addr`).
    VipSetMismatch {
        /// The peer.
        from: IpAddr,
    },
    /// A VRRPv3-over-IPv4 peer sums its checksum in another form than the one we send, so it
    /// probably drops our adverts.
    ChecksumFormMismatch {
        /// The peer.
        from: IpAddr,
        /// Its form.
        form: ChecksumForm,
    },
    /// Another router claims to own the addresses (priority 255) as we do.
    DuplicateOwner {
        /// The peer.
        from: IpAddr,
    },
    /// A VRRPv2 peer with another authentication: its adverts are dropped.
    AuthMismatch {
        /// The peer.
        from: IpAddr,
    },
}

impl fmt::Display for InteropWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InteropWarning::VersionMismatch { from, version } => {
                write!(f, "{from} speaks VRRP version {}", version.number())
            }
            InteropWarning::IntervalMismatch { from, interval } => {
                write!(
                    f,
                    "{from} advertises every {:.2}s, not our interval",
                    interval.as_secs_f64()
                )
            }
            InteropWarning::VipSetMismatch { from } => {
                write!(f, "{from} advertises another set of virtual addresses")
            }
            InteropWarning::ChecksumFormMismatch { from, form } => {
                let form = match form {
                    ChecksumForm::MessageOnly => "RFC 9568 (message only)",
                    ChecksumForm::PseudoHeader => "pseudo-header",
                };
                write!(f, "{from} sends {form} checksums, not our form")
            }
            InteropWarning::DuplicateOwner { from } => {
                write!(f, "{from} also claims priority 255")
            }
            InteropWarning::AuthMismatch { from } => {
                write!(f, "{from} uses another authentication")
            }
        }
    }
}

/// What a router reports through [`Router::poll_event`](crate::Router::poll_event).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The state changed. Becoming master: install the virtual addresses (and the virtual MAC);
    /// leaving master: remove them.
    StateChanged {
        /// The VRID.
        vrid: u8,
        /// The state left.
        from: State,
        /// The state entered.
        to: State,
        /// Why.
        reason: Reason,
        /// The effective priority on entering it ([`Router::effective_priority`](crate::Router::effective_priority);
        /// keepalived passes it to `notify` scripts).
        priority: u8,
    },
    /// Send one gratuitous ARP per IPv4 virtual address, or one unsolicited neighbour
    /// advertisement per IPv6 one, now.
    Announce {
        /// The VRID.
        vrid: u8,
    },
    /// A peer that will not interoperate; reported once per peer and kind until it changes.
    Warning {
        /// The VRID.
        vrid: u8,
        /// What is wrong.
        warning: InteropWarning,
    },
    /// Every member of a sync group is now in `to` (keepalived runs the group's
    /// `notify_master` / `notify_backup` / `notify_fault` here; `Initialize` after shutdown is
    /// its `notify_stop`). Reported after the members' own changes.
    GroupStateChanged {
        /// The group: 0 for a [`SyncGroup`](crate::SyncGroup), the order of creation in a
        /// driver.
        group: usize,
        /// The state the members last shared.
        from: State,
        /// The state they now share.
        to: State,
    },
}
