//! The typed configuration: what a keepalived.conf means, with keepalived 2.2.7's defaults
//! filled in (each default is named in the field's documentation).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::Location;

/// A whole configuration.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    /// `global_defs`.
    pub global: GlobalDefs,
    /// `vrrp_script NAME { ... }`, in file order.
    pub vrrp_scripts: Vec<VrrpScript>,
    /// `vrrp_instance NAME { ... }`, in file order.
    pub vrrp_instances: Vec<VrrpInstance>,
    /// `vrrp_sync_group NAME { ... }`.
    pub sync_groups: Vec<SyncGroup>,
    /// `virtual_server_group NAME { ... }`.
    pub virtual_server_groups: Vec<VirtualServerGroup>,
    /// `virtual_server ... { ... }`, in file order.
    pub virtual_servers: Vec<VirtualServer>,
}

/// `global_defs`: the parts that change behaviour.
#[derive(Debug, Clone, PartialEq)]
pub struct GlobalDefs {
    /// `router_id` (keepalived defaults to the host name).
    pub router_id: Option<String>,
    /// `vrrp_version` (default 2; IPv6 instances always use 3).
    pub vrrp_version: u8,
    /// `vrrp_strict`.
    pub vrrp_strict: bool,
    /// `vrrp_skip_check_adv_addr`.
    pub vrrp_skip_check_adv_addr: bool,
    /// `vrrp_check_unicast_src`.
    pub vrrp_check_unicast_src: bool,
    /// `vrrp_garp_master_*` and `vrrp_garp_interval` / `vrrp_gna_interval`: the defaults of every
    /// instance's gratuitous ARP settings.
    pub garp: Garp,
    /// `vrrp_mcast_group4` (default 224.0.0.18).
    pub vrrp_mcast_group4: IpAddr,
    /// `vrrp_mcast_group6` (default ff02::12).
    pub vrrp_mcast_group6: IpAddr,
    /// `script_user` (user and optional group the scripts run as).
    pub script_user: Option<String>,
    /// `enable_script_security`.
    pub enable_script_security: bool,
    /// `vrrp_rt_priority` (1-99): the VRRP process runs under `SCHED_RR` at this priority.
    pub vrrp_rt_priority: Option<u8>,
    /// `vrrp_no_swap`: the VRRP process locks its memory.
    pub vrrp_no_swap: bool,
}

impl Default for GlobalDefs {
    fn default() -> Self {
        GlobalDefs {
            router_id: None,
            vrrp_version: 2,
            vrrp_strict: false,
            vrrp_skip_check_adv_addr: false,
            vrrp_check_unicast_src: false,
            garp: Garp::default(),
            vrrp_mcast_group4: IpAddr::from([224, 0, 0, 18]),
            vrrp_mcast_group6: IpAddr::from([0xff02, 0, 0, 0, 0, 0, 0, 0x12]),
            script_user: None,
            enable_script_security: false,
            vrrp_rt_priority: None,
            vrrp_no_swap: false,
        }
    }
}

/// Gratuitous ARP / unsolicited neighbour advertisement settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Garp {
    /// `garp_master_delay`: the second burst after becoming master (default 5 s; 0 = none).
    pub master_delay: Duration,
    /// `garp_master_repeat`: messages per burst (default 5).
    pub master_repeat: u32,
    /// `garp_master_refresh`: a periodic burst while master (default 0 = off).
    pub master_refresh: Duration,
    /// `garp_master_refresh_repeat`: messages per refresh (default 1).
    pub master_refresh_repeat: u32,
    /// `vrrp_garp_interval` / `garp_interval`: gap between messages of a burst (default 0).
    pub interval: Duration,
    /// `vrrp_gna_interval` / `gna_interval`: the same for IPv6 (default 0).
    pub na_interval: Duration,
}

impl Default for Garp {
    fn default() -> Self {
        Garp {
            master_delay: Duration::from_secs(5),
            master_repeat: 5,
            master_refresh: Duration::ZERO,
            master_refresh_repeat: 1,
            interval: Duration::ZERO,
            na_interval: Duration::ZERO,
        }
    }
}

/// `vrrp_script NAME { ... }`: a command whose exit code adjusts priority or causes FAULT.
#[derive(Debug, Clone, PartialEq)]
pub struct VrrpScript {
    /// Where it was defined.
    pub at: Location,
    /// The script's name (used by `track_script`).
    pub name: String,
    /// `script`: the command line.
    pub script: String,
    /// `interval` (default 1 s).
    pub interval: Duration,
    /// `timeout` (default: the interval).
    pub timeout: Duration,
    /// `weight` (default 0: a failure means FAULT); -253..=253.
    pub weight: i32,
    /// `rise` (default 1).
    pub rise: u32,
    /// `fall` (default 1).
    pub fall: u32,
    /// `user`.
    pub user: Option<String>,
    /// `init_fail`: start in the failed state.
    pub init_fail: bool,
}

/// The state an instance starts in (`state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitialState {
    /// `state MASTER`.
    Master,
    /// `state BACKUP` (keepalived's default).
    Backup,
}

/// `authentication { auth_type PASS auth_pass SECRET }` (VRRPv2 only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authentication {
    /// Simple text password (keepalived uses the first 8 characters).
    Pass(String),
}

/// A tracked input with an optional weight override (`track_interface`, `track_script`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracked {
    /// Interface or script name.
    pub name: String,
    /// `weight N`: added to (or, negative, subtracted from) the priority while the input is
    /// up/failing; `None` = the script's own weight, or FAULT for an interface.
    pub weight: Option<i32>,
}

/// A virtual address: `ADDR[/PREFIX] [dev IF] [label LABEL] ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualAddress {
    /// The address.
    pub addr: IpAddr,
    /// Prefix length (default 32 for IPv4, 128 for IPv6).
    pub prefix: u8,
    /// `dev IF` (default: the instance's interface).
    pub dev: Option<String>,
    /// `label LABEL`.
    pub label: Option<String>,
}

/// Scripts run on state changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notify {
    /// `notify_master`.
    pub master: Option<String>,
    /// `notify_backup`.
    pub backup: Option<String>,
    /// `notify_fault`.
    pub fault: Option<String>,
    /// `notify_stop`.
    pub stop: Option<String>,
    /// `notify`: called with `TYPE NAME STATE PRIORITY` on every change.
    pub any: Option<String>,
}

/// `vrrp_instance NAME { ... }`.
#[derive(Debug, Clone, PartialEq)]
pub struct VrrpInstance {
    /// Where it was defined.
    pub at: Location,
    /// The instance's name.
    pub name: String,
    /// `state` (default BACKUP).
    pub initial_state: InitialState,
    /// `interface` (required).
    pub interface: String,
    /// `virtual_router_id` (required, 1..=255).
    pub vrid: u8,
    /// `priority` (default 100; 255 = address owner).
    pub priority: u8,
    /// `advert_int` (default 1 s; v3 has centisecond resolution).
    pub advert_int: Duration,
    /// `version` (default: `global_defs` `vrrp_version`; 3 for IPv6).
    pub version: u8,
    /// Whether the instance's addresses are IPv6.
    pub ipv6: bool,
    /// `preempt` unless `nopreempt` (default preempt).
    pub preempt: bool,
    /// `preempt_delay` (default 0; at most 1000 s).
    pub preempt_delay: Duration,
    /// `accept` / `no_accept` (default: accept unless `vrrp_strict`).
    pub accept: bool,
    /// `mcast_src_ip` / `unicast_src_ip`.
    pub source_ip: Option<IpAddr>,
    /// `unicast_peer { ... }`: unicast instead of multicast when not empty.
    pub unicast_peers: Vec<IpAddr>,
    /// `authentication`.
    pub authentication: Option<Authentication>,
    /// `virtual_ipaddress { ... }` (advertised).
    pub virtual_addresses: Vec<VirtualAddress>,
    /// `virtual_ipaddress_excluded { ... }` (installed, not advertised).
    pub excluded_addresses: Vec<VirtualAddress>,
    /// `track_interface { ... }`.
    pub track_interfaces: Vec<Tracked>,
    /// `track_script { ... }`.
    pub track_scripts: Vec<Tracked>,
    /// `notify*` scripts.
    pub notify: Notify,
    /// Gratuitous ARP settings (defaults from `global_defs`).
    pub garp: Garp,
    /// `use_vmac [NAME]`: the virtual MAC on a macvlan (name default `vrrp.VRID`).
    pub use_vmac: Option<String>,
    /// `dont_track_primary`.
    pub dont_track_primary: bool,
    /// `skip_check_adv_addr` (or the global default).
    pub skip_check_adv_addr: bool,
}

/// `vrrp_sync_group NAME { group { ... } ... }`.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncGroup {
    /// Where it was defined.
    pub at: Location,
    /// The group's name.
    pub name: String,
    /// Member instances, by name (each exists; unknown names were warned about).
    pub instances: Vec<String>,
    /// `notify*` scripts of the group.
    pub notify: Notify,
    /// `track_interface { ... }`: tracked by every member.
    pub track_interfaces: Vec<Tracked>,
    /// `track_script { ... }`: tracked by every member.
    pub track_scripts: Vec<Tracked>,
    /// `sync_group_tracking_weight` (or the deprecated `global_tracking`): the members' own
    /// tracking weights apply; without it keepalived 2.2.7 ignores them.
    pub tracking_weight: bool,
}

/// The transport protocol of a virtual service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `protocol TCP` (default).
    Tcp,
    /// `protocol UDP`.
    Udp,
    /// `protocol SCTP`.
    Sctp,
}

/// How packets reach a real server (`lb_kind` / `lvs_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardingMethod {
    /// `NAT` (keepalived's default).
    Nat,
    /// `DR`: direct routing.
    Dr,
    /// `TUN`: IP-in-IP tunnelling.
    Tun,
}

/// What a `virtual_server` line addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceAddress {
    /// `virtual_server IP PORT`.
    Socket(SocketAddr),
    /// `virtual_server fwmark N`.
    Fwmark(u32),
    /// `virtual_server group NAME`.
    Group(String),
}

/// `virtual_server_group NAME { IP PORT | IP-RANGE PORT | fwmark N ... }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualServerGroup {
    /// Where it was defined.
    pub at: Location,
    /// The group's name.
    pub name: String,
    /// Its members; `10.0.0.1-10 80` expands to ten addresses.
    pub members: Vec<ServiceAddress>,
}

/// `persistence_granularity`: the client address mask persistence keys on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    /// An IPv4 netmask such as 255.255.255.0 (default 255.255.255.255).
    Netmask(std::net::Ipv4Addr),
    /// An IPv6 prefix length (default 128).
    Prefix(u8),
}

/// Health-check settings shared by every checker kind; a checker inherits each one it does not
/// set from its real server, then from its virtual server, then keepalived's default.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckCommon {
    /// `connect_ip` (default: the real server's address).
    pub connect_ip: Option<IpAddr>,
    /// `connect_port` (default: the real server's port).
    pub connect_port: Option<u16>,
    /// `bindto`: the source address.
    pub bindto: Option<IpAddr>,
    /// `connect_timeout` (default 5 s).
    pub connect_timeout: Duration,
    /// `retry` / `nb_get_retry`: failures tolerated before DOWN (default 1; DNS 3; MISC 0), so
    /// a checker goes down after `retry + 1` consecutive failures.
    pub retry: u32,
    /// `delay_before_retry` (default 3 s for HTTP/SSL, `delay_loop` for DNS, 1 s otherwise).
    pub delay_before_retry: Duration,
    /// `delay_loop`: the check interval (default: the virtual server's, itself 60 s by default).
    pub delay_loop: Duration,
    /// `warmup`: a random first delay in `[0, warmup]` (default: `delay_loop`).
    pub warmup: Duration,
}

/// One `url { ... }` of an HTTP_GET / SSL_GET.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlCheck {
    /// `path` (default `/`).
    pub path: String,
    /// `digest`: the MD5 of the body.
    pub digest: Option<[u8; 16]>,
    /// `status_code`: accepted codes as inclusive ranges (default 200-299).
    pub status: Vec<(u16, u16)>,
    /// `virtualhost`: the Host header (inherited from the checker, real and virtual server).
    pub virtualhost: Option<String>,
}

/// What a checker does.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckKind {
    /// `TCP_CHECK`: connect only.
    Tcp,
    /// `HTTP_GET` or, with `tls`, `SSL_GET`: every URL must pass.
    Http {
        /// `SSL_GET`.
        tls: bool,
        /// The `url` blocks (at least one).
        urls: Vec<UrlCheck>,
    },
    /// `MISC_CHECK`: run a command; 0 up, 1 down, with `dynamic` 2..=255 up with weight code-2.
    Misc {
        /// `misc_path`: the command line.
        path: String,
        /// `misc_timeout` (default: the delay loop).
        timeout: Option<Duration>,
        /// `misc_dynamic`.
        dynamic: bool,
        /// `user`.
        user: Option<String>,
    },
    /// `SMTP_CHECK`: banner 220, `HELO`, 250.
    Smtp {
        /// `helo_name` (default: the local host name).
        helo_name: Option<String>,
    },
    /// `DNS_CHECK`: a query that must be answered with RCODE 0.
    Dns {
        /// `type` (default SOA).
        query_type: String,
        /// `name` (default `.`).
        name: String,
    },
    /// `UDP_CHECK`: send a payload, optionally require a reply.
    Udp {
        /// `payload` bytes (from hex).
        payload: Option<Vec<u8>>,
        /// `require_reply [HEX]`: `Some(empty)` = any reply.
        require_reply: Option<Vec<u8>>,
    },
    /// `PING_CHECK`: ICMP echo.
    Ping,
}

/// One checker of a real server.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// Where it was defined.
    pub at: Location,
    /// What it does.
    pub kind: CheckKind,
    /// Timing and addressing.
    pub common: CheckCommon,
}

/// `real_server IP PORT { ... }`.
#[derive(Debug, Clone, PartialEq)]
pub struct RealServer {
    /// Where it was defined.
    pub at: Location,
    /// Address and port (port 0 when the line has none, as for fwmark services).
    pub addr: SocketAddr,
    /// `weight` (default 1).
    pub weight: u32,
    /// `lvs_method` of this real (default: the virtual server's `lb_kind`).
    pub method: ForwardingMethod,
    /// `inhibit_on_failure`: on failure set weight 0 instead of removing the real.
    pub inhibit_on_failure: bool,
    /// `uthreshold`: upper connection threshold (0 = none).
    pub upper_threshold: u32,
    /// `lthreshold`: lower connection threshold.
    pub lower_threshold: u32,
    /// `notify_up`.
    pub notify_up: Option<String>,
    /// `notify_down`.
    pub notify_down: Option<String>,
    /// The checkers; none means always up.
    pub checks: Vec<Check>,
}

/// `virtual_server ... { ... }`.
#[derive(Debug, Clone, PartialEq)]
pub struct VirtualServer {
    /// Where it was defined.
    pub at: Location,
    /// What it addresses.
    pub addr: ServiceAddress,
    /// `protocol` (default TCP).
    pub protocol: Protocol,
    /// `delay_loop` (default 60 s).
    pub delay_loop: Duration,
    /// `lb_algo` / `lvs_sched`: an IPVS scheduler name (default `wlc`).
    pub scheduler: String,
    /// Scheduler flags: `sh-port`, `sh-fallback`, `mh-port`, `mh-fallback` (and `flag-1..3`).
    pub scheduler_flags: Vec<String>,
    /// `ops`: one-packet scheduling (UDP).
    pub one_packet: bool,
    /// `lb_kind` / `lvs_method` (default NAT).
    pub method: ForwardingMethod,
    /// `persistence_timeout` (none = no persistence; the keyword alone = 360 s).
    pub persistence_timeout: Option<Duration>,
    /// `persistence_granularity`.
    pub persistence_granularity: Option<Granularity>,
    /// `sorry_server IP PORT`: used while the quorum is lost.
    pub sorry_server: Option<SocketAddr>,
    /// `sorry_server_inhibit`.
    pub sorry_server_inhibit: bool,
    /// `quorum`: the minimum total weight of live reals (default 1).
    pub quorum: u32,
    /// `hysteresis` around the quorum (default 0).
    pub hysteresis: u32,
    /// `quorum_up` script.
    pub quorum_up: Option<String>,
    /// `quorum_down` script.
    pub quorum_down: Option<String>,
    /// `alpha`: reals start down until checked.
    pub alpha: bool,
    /// `omega`: run down notifiers at shutdown.
    pub omega: bool,
    /// `ha_suspend`: install the service only while a VRRP instance holds its address.
    pub ha_suspend: bool,
    /// `virtualhost`: default Host header of HTTP checks.
    pub virtualhost: Option<String>,
    /// `inhibit_on_failure` for every real that does not say otherwise.
    pub inhibit_on_failure: bool,
    /// The real servers.
    pub reals: Vec<RealServer>,
}
