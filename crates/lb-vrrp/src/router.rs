//! The virtual router state machine (RFC 9568 §6.4, RFC 3768 §6.4) with keepalived's extras.

use std::collections::VecDeque;

use core::net::IpAddr;
use core::time::Duration;

use crate::config::{ChecksumMode, Config};
use crate::error::{Counters, DropReason, Error};
use crate::event::{Event, InteropWarning, Reason, State};
use crate::sync_group::SyncMember;
use crate::timers::{master_down_interval, skew_time};
use crate::wire::{Addresses, AdvertRepr, ChecksumForm, Family, IpMeta, Packet, Version};

/// Warnings remembered for de-duplication; past this the oldest is forgotten (and may be
/// reported again), so a segment full of bad peers cannot grow memory.
const WARNINGS_REMEMBERED: usize = 64;

/// An advert to send, written by [`Router::poll_transmit`] into the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// The source address to send from (the router's primary address).
    pub src: IpAddr,
    /// The destination: the multicast group or a unicast peer. Send with TTL / hop limit 255.
    pub dst: IpAddr,
    /// The advertised priority (0: resignation).
    pub priority: u8,
}

/// One VRRP virtual router (one VRID of one family on one interface).
///
/// Time is a [`Duration`] since an epoch the caller chooses (a monotonic clock's start, or a
/// simulation's zero); every `now` passed in must use the same epoch and never go back.
///
/// After every `handle_*` call, drain [`poll_transmit`](Self::poll_transmit) and
/// [`poll_event`](Self::poll_event), then wait until [`poll_timeout`](Self::poll_timeout) or
/// the next received advert. See the crate root for the run loop.
#[derive(Debug)]
pub struct Router {
    config: Config,
    vips_wire: Vec<u8>,
    state: State,
    track_up: Vec<bool>,
    link_up: bool,
    /// Its part in a sync group, if any.
    pub(crate) sync: SyncMember,
    /// The interval a backup times the master by: learned from its adverts in VRRPv3.
    master_adver_interval: Duration,
    adver_at: Option<Duration>,
    down_at: Option<Duration>,
    /// Set when the down timer was shortened to Skew_Time by a priority-0 advert.
    resigned_from: Option<IpAddr>,
    /// A lower-priority master whose adverts we discard to preempt it.
    preempt_candidate: Option<(u8, IpAddr)>,
    /// The end of the preempt delay, once started.
    preempt_hold_until: Option<Duration>,
    announce_left: u32,
    announce_at: Option<Duration>,
    second_burst_at: Option<Duration>,
    refresh_at: Option<Duration>,
    send_form: ChecksumForm,
    pending_adverts: VecDeque<u8>,
    unicast_cursor: usize,
    events: VecDeque<Event>,
    warned: VecDeque<InteropWarning>,
    counters: Counters,
}

impl Router {
    /// A router in Initialize; call [`handle_startup`](Self::handle_startup) to run it.
    pub fn new(config: Config) -> Result<Router, Error> {
        config.validate()?;
        let mut vips_wire = Vec::with_capacity(config.vips.len() * config.family().addr_len());
        Addresses::encode(config.family(), &config.vips, &mut vips_wire);
        Ok(Router {
            vips_wire,
            state: State::Initialize,
            track_up: vec![true; config.tracks.len()],
            link_up: true,
            sync: SyncMember::default(),
            master_adver_interval: config.interval,
            adver_at: None,
            down_at: None,
            resigned_from: None,
            preempt_candidate: None,
            preempt_hold_until: None,
            announce_left: 0,
            announce_at: None,
            second_burst_at: None,
            refresh_at: None,
            send_form: config.checksum.initial_form(),
            pending_adverts: VecDeque::new(),
            unicast_cursor: 0,
            events: VecDeque::new(),
            warned: VecDeque::new(),
            counters: Counters::default(),
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The VRID.
    pub fn vrid(&self) -> u8 {
        self.config.vrid
    }

    /// The priority advertised now: 255 for the owner, otherwise the configured priority plus
    /// the weights of the tracked inputs, kept within 1-254 (keepalived's effective priority).
    pub fn effective_priority(&self) -> u8 {
        if self.config.priority == 255 {
            return 255;
        }
        let mut p = i32::from(self.config.priority);
        for (track, up) in self.config.tracks.iter().zip(&self.track_up) {
            if (track.weight > 0 && *up) || (track.weight < 0 && !*up) {
                p += track.weight;
            }
        }
        p.clamp(1, 254) as u8
    }

    /// The interval a backup expects between the master's adverts (learned in VRRPv3).
    pub fn master_adver_interval(&self) -> Duration {
        self.master_adver_interval
    }

    /// This router's Master_Down_Interval now.
    pub fn master_down_interval(&self) -> Duration {
        master_down_interval(
            self.config.version,
            self.effective_priority(),
            self.master_adver_interval,
        )
    }

    /// The VRRPv3-over-IPv4 checksum form sent now (learned from peers with
    /// [`ChecksumMode::Auto`]).
    pub fn send_form(&self) -> ChecksumForm {
        self.send_form
    }

    /// Whether packets addressed to the virtual addresses may be accepted now: as master, when
    /// this router owns them (priority 255) or [`Config::accept`] is set
    /// ([`Config::accepts_vip_traffic`]).
    pub fn accepts_vip_traffic(&self) -> bool {
        self.state == State::Master && self.config.accepts_vip_traffic()
    }

    /// Adverts dropped by reason, accepted and sent.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Startup (RFC 9568 §6.4.1): the owner becomes master at once, others backup. Ignored
    /// unless in Initialize.
    pub fn handle_startup(&mut self, now: Duration) {
        if self.state != State::Initialize {
            return;
        }
        if let Some(reason) = self.fault_reason() {
            self.enter(State::Fault, reason);
        } else if self.config.priority == 255 {
            self.owner_takes_over(now, Reason::Owner, Reason::Startup);
        } else {
            self.become_backup(now, Reason::Startup, self.config.interval);
        }
    }

    /// Shutdown: a master sends a priority-0 advert (so a backup takes over after Skew_Time),
    /// then every state goes to Initialize. (`_now` keeps the inputs' shape: nothing here is
    /// timed.)
    pub fn handle_shutdown(&mut self, _now: Duration) {
        if self.state == State::Master {
            self.pending_adverts.push_back(0);
        }
        if self.state != State::Initialize {
            self.enter(State::Initialize, Reason::Shutdown);
        }
    }

    /// Sets a tracked input (index into [`Config::tracks`]) up or down.
    pub fn set_track(&mut self, now: Duration, index: usize, up: bool) -> Result<(), Error> {
        let slot = self
            .track_up
            .get_mut(index)
            .ok_or(Error::UnknownTrack(index))?;
        if *slot != up {
            *slot = up;
            self.reevaluate(now);
        }
        Ok(())
    }

    /// Sets the interface's link state: down means FAULT.
    pub fn set_link(&mut self, now: Duration, up: bool) {
        if self.link_up != up {
            self.link_up = up;
            self.reevaluate(now);
        }
    }

    /// Handles a received VRRP message (the bytes after the IP header) with what the IP layer
    /// said about it. Adverts that fail a check are counted by [`DropReason`] and change nothing.
    pub fn handle_advert(&mut self, now: Duration, ip: &IpMeta, bytes: &[u8]) {
        if let Err(reason) = self.receive(now, ip, bytes) {
            self.counters.count_drop(reason);
        }
    }

    /// Handles the timer: call when [`poll_timeout`](Self::poll_timeout)'s instant has come
    /// (calling earlier or more often is harmless).
    pub fn handle_timeout(&mut self, now: Duration) {
        match self.state {
            State::Master => {
                if self.adver_at.is_some_and(|t| t <= now) {
                    self.pending_adverts.push_back(self.effective_priority());
                    self.adver_at = Some(now + self.config.interval);
                }
                self.run_announcements(now);
            }
            State::Backup => {
                if self.down_at.is_some_and(|t| t <= now) {
                    let reason = if let Some(from) = self.resigned_from {
                        Reason::MasterResigned { from }
                    } else if let Some((priority, from)) = self.preempt_candidate {
                        Reason::Preempt { priority, from }
                    } else {
                        Reason::MasterDown {
                            down_interval: self.master_down_interval(),
                        }
                    };
                    if self.sync.grouped {
                        // keepalived's vrrp_sync_can_goto_master: the group decides; until
                        // then the down timer runs again.
                        self.sync.want_master = Some(reason);
                        self.down_at = Some(now + self.master_down_interval());
                    } else {
                        self.become_master(now, reason);
                    }
                }
            }
            State::Initialize | State::Fault => {}
        }
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next; `None` while nothing is
    /// scheduled (Initialize, Fault).
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Duration> {
        [
            self.adver_at,
            self.down_at,
            self.announce_at,
            self.second_burst_at,
            self.refresh_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next advert to send: writes it into `buf` (cleared first) and says where to send it.
    /// Call until it returns `None` after every `handle_*` call.
    #[must_use]
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<Transmit> {
        let priority = *self.pending_adverts.front()?;
        let (dst, last) = if self.config.unicast_peers.is_empty() {
            (self.config.family().multicast(), true)
        } else {
            let i = self.unicast_cursor;
            self.unicast_cursor += 1;
            (
                self.config.unicast_peers[i],
                self.unicast_cursor == self.config.unicast_peers.len(),
            )
        };
        if last {
            self.pending_adverts.pop_front();
            self.unicast_cursor = 0;
        }
        let repr = AdvertRepr {
            version: self.config.version,
            vrid: self.config.vrid,
            priority,
            interval: self.config.interval,
            addresses: Addresses::from_bytes(self.config.family(), &self.vips_wire)?,
            auth: self.config.auth,
        };
        buf.clear();
        buf.resize(repr.buffer_len(), 0);
        repr.emit(buf, self.send_form, self.config.primary, dst);
        self.counters.sent += 1;
        Some(Transmit {
            src: self.config.primary,
            dst,
            priority,
        })
    }

    /// The next event (state change, announcement, warning). Call until it returns `None`
    /// after every `handle_*` call.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn receive(&mut self, now: Duration, ip: &IpMeta, bytes: &[u8]) -> Result<(), DropReason> {
        if ip.src == self.config.primary {
            return Err(DropReason::OwnAdvert);
        }
        let family = Family::of(ip.src);
        let packet = Packet::new_checked(bytes, family)?;
        let (advert, form) = AdvertRepr::parse(&packet, ip)?;
        if family != self.config.family() || advert.vrid != self.config.vrid {
            return Err(DropReason::OtherVrid);
        }
        if matches!(self.state, State::Initialize | State::Fault) {
            return Err(DropReason::NotRunning);
        }
        let from = ip.src;
        if advert.version != self.config.version {
            self.warn(InteropWarning::VersionMismatch {
                from,
                version: advert.version,
            });
            return Err(DropReason::VersionMismatch);
        }
        if self.config.version == Version::V2 {
            if advert.auth != self.config.auth {
                self.warn(InteropWarning::AuthMismatch { from });
                return Err(DropReason::AuthMismatch);
            }
            if advert.interval != self.config.interval {
                self.warn(InteropWarning::IntervalMismatch {
                    from,
                    interval: advert.interval,
                });
                return Err(DropReason::IntervalMismatch);
            }
        }
        if self.config.version == Version::V3 && family == Family::Ipv4 {
            match self.config.checksum {
                ChecksumMode::Auto => self.send_form = form,
                _ if form != self.send_form => {
                    self.warn(InteropWarning::ChecksumFormMismatch { from, form });
                }
                _ => {}
            }
        }
        let ours = Addresses::from_bytes(family, &self.vips_wire);
        if ours.is_some_and(|ours| !ours.same_set(&advert.addresses)) {
            self.warn(InteropWarning::VipSetMismatch { from });
        }
        if advert.priority == 255 && self.config.priority == 255 {
            self.warn(InteropWarning::DuplicateOwner { from });
        }
        self.counters.accepted += 1;
        let local = self.effective_priority();
        let their_interval = match self.config.version {
            Version::V2 => self.config.interval,
            Version::V3 => advert.interval,
        };
        match self.state {
            State::Backup => {
                self.backup_receives(now, advert.priority, from, their_interval, local)
            }
            State::Master => {
                if advert.priority == 0 {
                    self.send_now(now);
                } else if advert.priority > local {
                    let reason = Reason::HigherPriority {
                        priority: advert.priority,
                        from,
                    };
                    self.become_backup(now, reason, their_interval);
                } else if advert.priority == local && from > self.config.primary {
                    let reason = Reason::HigherAddress {
                        priority: advert.priority,
                        from,
                    };
                    self.become_backup(now, reason, their_interval);
                } else {
                    // RFC 9568 §6.4.3: answer a lower priority at once, forcing the election.
                    self.send_now(now);
                }
            }
            State::Initialize | State::Fault => {}
        }
        Ok(())
    }

    /// RFC 9568 §6.4.2 plus keepalived's preempt delay.
    fn backup_receives(
        &mut self,
        now: Duration,
        priority: u8,
        from: IpAddr,
        interval: Duration,
        local: u8,
    ) {
        if priority == 0 {
            self.down_at =
                Some(now + skew_time(self.config.version, local, self.master_adver_interval));
            self.resigned_from = Some(from);
            return;
        }
        let preempts = self.config.preempt || self.config.priority == 255;
        let lower = priority < local;
        if lower && preempts {
            self.preempt_candidate = Some((priority, from));
            let delay = self.config.preempt_delay;
            let hold_until = *self.preempt_hold_until.get_or_insert(now + delay);
            if delay.is_zero() || now >= hold_until {
                return; // discard: the down timer runs out and we preempt
            }
        } else {
            self.preempt_candidate = None;
            self.preempt_hold_until = None;
        }
        // Following this master: no longer wanting to be master (keepalived's wantstate).
        self.sync.want_master = None;
        self.master_adver_interval = interval;
        self.resigned_from = None;
        self.down_at = Some(now + self.master_down_interval());
    }

    fn send_now(&mut self, now: Duration) {
        self.pending_adverts.push_back(self.effective_priority());
        self.adver_at = Some(now + self.config.interval);
    }

    /// What holds this router in FAULT by itself: the link (`link`) or a tracked input with
    /// weight 0.
    pub(crate) fn own_fault(&self) -> Option<String> {
        if !self.link_up {
            return Some("link".into());
        }
        self.config
            .tracks
            .iter()
            .zip(&self.track_up)
            .find(|(t, up)| t.weight == 0 && !**up)
            .map(|(t, _)| t.name.clone())
    }

    fn fault_reason(&self) -> Option<Reason> {
        match (self.own_fault(), self.sync.fault) {
            (Some(name), _) => Some(Reason::TrackDown { name }),
            (None, Some(vrid)) => Some(Reason::SyncGroup { vrid }),
            (None, None) => None,
        }
    }

    /// After a tracked input, the link or the group changed: enter or leave FAULT, or
    /// advertise a changed priority.
    pub(crate) fn reevaluate(&mut self, now: Duration) {
        match (self.state, self.fault_reason()) {
            (State::Backup | State::Master, Some(reason)) => {
                if self.state == State::Master && self.link_up {
                    self.pending_adverts.push_back(0);
                }
                self.enter(State::Fault, reason);
            }
            (State::Fault, None) => {
                if self.config.priority == 255 {
                    self.owner_takes_over(now, Reason::FaultCleared, Reason::FaultCleared);
                } else {
                    self.become_backup(now, Reason::FaultCleared, self.config.interval);
                }
            }
            (State::Master, None) => self.send_now(now),
            _ => {}
        }
    }

    /// The address owner becomes master at once; in a sync group it waits in Backup, wanting
    /// master, for the group (keepalived lets a group be master only when every member wants).
    fn owner_takes_over(&mut self, now: Duration, reason: Reason, held: Reason) {
        if self.sync.grouped {
            self.become_backup(now, held, self.config.interval);
            self.sync.want_master = Some(reason);
        } else {
            self.become_master(now, reason);
        }
    }

    fn become_master(&mut self, now: Duration, reason: Reason) {
        self.enter(State::Master, reason);
        self.send_now(now);
        let announce = self.config.announce;
        self.announce_left = announce.repeat;
        self.announce_at = Some(now);
        self.second_burst_at = (!announce.delay.is_zero()).then(|| now + announce.delay);
        self.refresh_at = (!announce.refresh.is_zero()).then(|| now + announce.refresh);
        self.run_announcements(now);
    }

    fn become_backup(&mut self, now: Duration, reason: Reason, master_adver_interval: Duration) {
        self.enter(State::Backup, reason);
        self.master_adver_interval = master_adver_interval;
        self.down_at = Some(now + self.master_down_interval());
    }

    /// Switches state, clearing the previous state's timers, and reports it.
    fn enter(&mut self, to: State, reason: Reason) {
        let from = self.state;
        self.state = to;
        self.adver_at = None;
        self.down_at = None;
        self.resigned_from = None;
        self.preempt_candidate = None;
        self.preempt_hold_until = None;
        self.announce_left = 0;
        self.announce_at = None;
        self.second_burst_at = None;
        self.refresh_at = None;
        self.sync.want_master = None;
        if !matches!(reason, Reason::SyncGroup { .. }) {
            self.sync.changed_to = Some(to);
        }
        self.events.push_back(Event::StateChanged {
            vrid: self.config.vrid,
            from,
            to,
            reason,
            priority: self.effective_priority(),
        });
    }

    /// Forced by a sync group: member `vrid` left master for backup (keepalived's
    /// vrrp_sync_backup), so a master follows it (without a priority-0 advert).
    pub(crate) fn sync_backup(&mut self, now: Duration, vrid: u8) {
        if self.state == State::Master {
            self.become_backup(now, Reason::SyncGroup { vrid }, self.config.interval);
        }
    }

    /// Released by a sync group whose members all want master (keepalived's
    /// vrrp_sync_master): a backup becomes master, for its own reason when it had one.
    pub(crate) fn sync_master(&mut self, now: Duration, vrid: u8) {
        if self.state == State::Backup {
            let reason = self
                .sync
                .want_master
                .take()
                .unwrap_or(Reason::SyncGroup { vrid });
            self.become_master(now, reason);
        }
    }

    /// No longer in a sync group: its own down timer makes it master again, and a fault of
    /// a former fellow member no longer holds it.
    #[cfg(any(feature = "linux", test))] // the Linux driver's, and tests'
    pub(crate) fn leave_group(&mut self, now: Duration) {
        self.sync.grouped = false;
        self.sync.want_master = None;
        self.sync.changed_to = None;
        self.set_sync_fault(now, None);
    }

    /// Sets (or clears) the group member whose fault holds this router in FAULT.
    pub(crate) fn set_sync_fault(&mut self, now: Duration, vrid: Option<u8>) {
        if self.sync.fault != vrid {
            self.sync.fault = vrid;
            self.reevaluate(now);
        }
    }

    fn run_announcements(&mut self, now: Duration) {
        let announce = self.config.announce;
        if self.second_burst_at.is_some_and(|t| t <= now) {
            self.second_burst_at = None;
            self.announce_left = announce.repeat;
            self.announce_at = Some(now);
        }
        if self.refresh_at.is_some_and(|t| t <= now) {
            self.refresh_at = Some(now + announce.refresh);
            self.events.push_back(Event::Announce {
                vrid: self.config.vrid,
            });
        }
        while self.announce_at.is_some_and(|t| t <= now) && self.announce_left > 0 {
            self.events.push_back(Event::Announce {
                vrid: self.config.vrid,
            });
            self.announce_left -= 1;
            self.announce_at = if self.announce_left == 0 {
                None
            } else if announce.interval.is_zero() {
                Some(now)
            } else {
                Some(now + announce.interval)
            };
        }
        if self.announce_left == 0 {
            self.announce_at = None;
        }
    }

    fn warn(&mut self, warning: InteropWarning) {
        if self.warned.contains(&warning) {
            return;
        }
        if self.warned.len() == WARNINGS_REMEMBERED {
            self.warned.pop_front();
        }
        self.warned.push_back(warning.clone());
        self.events.push_back(Event::Warning {
            vrid: self.config.vrid,
            warning,
        });
    }
}
