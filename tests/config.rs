//! The keepalived.conf reader against configurations as operators write them: a tutorial-style
//! director pair (includes, definitions, conditional lines, deprecated aliases), keepalived's
//! own sample configurations as Debian ships them, and broken files.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use lb::config::{
    Authentication, CheckKind, ForwardingMethod, Granularity, InitialState, Options,
    ServiceAddress, WarningKind, load,
};

fn configs() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/configs"))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn tutorial_director_pair_means_what_keepalived_reads() {
    let loaded = load(configs().join("tutorial.conf"), &Options::default()).unwrap();
    let c = &loaded.config;
    assert_eq!(c.global.router_id.as_deref(), Some("LVS_01"));
    assert_eq!(c.global.garp.master_delay, Duration::from_secs(2));
    assert!(c.global.enable_script_security);

    let script = &c.vrrp_scripts[0];
    assert_eq!(
        script.script,
        "/usr/bin/curl -fs http://127.0.0.1/ # not a comment"
    );
    assert_eq!(
        (script.interval, script.timeout),
        (Duration::from_secs(2), Duration::from_secs(2))
    );
    assert_eq!((script.weight, script.fall, script.rise), (-20, 3, 2));

    let vi1 = &c.vrrp_instances[0];
    assert_eq!(
        (vi1.name.as_str(), vi1.interface.as_str(), vi1.vrid),
        ("VI_1", "eth0", 51)
    );
    assert_eq!(
        vi1.priority, 150,
        "'@lb2 priority 100' applies only with instance lb2"
    );
    assert_eq!(
        (vi1.initial_state, vi1.version, vi1.preempt),
        (InitialState::Master, 2, true)
    );
    assert_eq!(
        vi1.authentication,
        Some(Authentication::Pass("secret-p".into())),
        "first 8 characters"
    );
    assert_eq!(vi1.source_ip, Some(ip("10.0.0.1")));
    assert_eq!(vi1.unicast_peers, [ip("10.0.0.2")]);
    let vip = &vi1.virtual_addresses[0];
    assert_eq!((vip.addr, vip.prefix), (ip("192.168.50.100"), 24));
    assert_eq!(
        (vip.dev.as_deref(), vip.label.as_deref()),
        (Some("eth0"), Some("eth0:vip"))
    );
    assert_eq!(vi1.track_interfaces[0].weight, Some(10));
    assert_eq!(vi1.track_scripts[0].name, "chk_http");
    assert_eq!(
        vi1.notify.master.as_deref(),
        Some("/etc/keepalived/notify.sh MASTER")
    );
    assert_eq!(
        vi1.garp.master_delay,
        Duration::from_secs(2),
        "the global default"
    );

    // From conf.d/backup.conf, found relative to tutorial.conf.
    let vi6 = &c.vrrp_instances[1];
    assert_eq!(
        (vi6.vrid, vi6.priority, vi6.initial_state),
        (52, 100, InitialState::Backup)
    );
    assert!(vi6.ipv6 && vi6.version == 3, "IPv6 forces VRRPv3");
    assert_eq!(
        (vi6.preempt, vi6.preempt_delay),
        (false, Duration::from_secs(30))
    );
    assert_eq!(vi6.advert_int, Duration::from_millis(500));
    assert_eq!(c.sync_groups[0].instances, ["VI_1", "VI_6", "VI_missing"]);

    let vs = &c.virtual_servers[0];
    assert_eq!(
        vs.addr,
        ServiceAddress::Socket("192.168.50.100:80".parse().unwrap())
    );
    assert_eq!(
        (vs.scheduler.as_str(), vs.method),
        ("wrr", ForwardingMethod::Dr)
    );
    assert_eq!(vs.delay_loop, Duration::from_secs(6));
    assert_eq!(vs.persistence_timeout, Some(Duration::from_secs(300)));
    assert_eq!(
        vs.persistence_granularity,
        Some(Granularity::Netmask("255.255.255.0".parse().unwrap()))
    );
    assert_eq!(
        vs.sorry_server,
        Some("10.0.0.200:80".parse::<SocketAddr>().unwrap())
    );
    assert_eq!((vs.quorum, vs.hysteresis), (2, 1));

    let r1 = &vs.reals[0];
    assert_eq!(
        (r1.weight, r1.inhibit_on_failure, r1.method),
        (3, true, ForwardingMethod::Dr)
    );
    let http = &r1.checks[0];
    let CheckKind::Http { tls: false, urls } = &http.kind else {
        panic!("{:?}", http.kind)
    };
    assert_eq!(urls[0].path, "/health");
    assert_eq!(urls[0].status, [(200, 299), (503, 503)]);
    assert_eq!(urls[0].digest.unwrap()[..2], [0x64, 0x02]);
    assert_eq!(http.common.retry, 3, "nb_get_retry is read as retry");
    assert_eq!(http.common.connect_timeout, Duration::from_secs(3));
    assert_eq!(http.common.delay_before_retry, Duration::from_secs(2));
    assert_eq!(
        http.common.delay_loop,
        Duration::from_secs(6),
        "inherited from the virtual server"
    );

    let r2 = &vs.reals[1];
    let (tcp, misc) = (&r2.checks[0], &r2.checks[1]);
    assert_eq!(tcp.kind, CheckKind::Tcp);
    assert_eq!(tcp.common.connect_port, Some(8080));
    assert_eq!(
        (tcp.common.retry, tcp.common.connect_timeout),
        (1, Duration::from_secs(5)),
        "defaults"
    );
    assert_eq!(tcp.common.delay_before_retry, Duration::from_secs(1));
    let CheckKind::Misc {
        path,
        dynamic: true,
        ..
    } = &misc.kind
    else {
        panic!("{:?}", misc.kind)
    };
    assert_eq!(path, "/bin/check.sh 10.0.0.12");
    assert_eq!(misc.common.retry, 0, "MISC_CHECK's default");

    // Every warning names its file and line; nothing is dropped silently.
    let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    let expect = [
        (
            "tutorial.conf:6:5",
            WarningKind::Unsupported,
            "'notification_email' is not supported",
        ),
        (
            "backup.conf:10:5",
            WarningKind::Unknown,
            "unknown keyword 'frobnicate' in vrrp_instance",
        ),
        (
            "tutorial.conf:73:13",
            WarningKind::Deprecated,
            "'nb_get_retry' is deprecated",
        ),
        (
            "backup.conf:13:1",
            WarningKind::Invalid,
            "no vrrp_instance named 'VI_missing'",
        ),
    ];
    assert_eq!(loaded.warnings.len(), expect.len(), "{warnings:#?}");
    for (w, (at, kind, text)) in loaded.warnings.iter().zip(expect) {
        let shown = w.to_string();
        assert!(
            shown.contains(at) && shown.contains(text) && w.kind == kind,
            "{shown} vs {at} {text}"
        );
    }
}

#[test]
fn conditional_lines_follow_the_instance_name() {
    let options = Options {
        instance: Some("lb2".into()),
    };
    let loaded = load(configs().join("tutorial.conf"), &options).unwrap();
    assert_eq!(loaded.config.vrrp_instances[0].priority, 100);
}

#[test]
fn syntax_errors_name_the_file_line_and_column_even_in_an_include() {
    let err = load(configs().join("broken.conf"), &Options::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.ends_with("broken_part.conf:3:1: syntax error: '}' without a matching '{'"),
        "{err}"
    );
    let err = load(configs().join("missing.conf"), &Options::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("missing.conf") && err.contains("No such file"),
        "{err}"
    );
}

#[test]
fn invalid_values_warn_and_keep_the_default() {
    let text = "vrrp_instance V {\n interface eth0\n virtual_router_id 300\n}\n\
                vrrp_instance W {\n interface eth0\n virtual_router_id 7\n priority 0\n advert_int 1.5\n\
                 virtual_ipaddress {\n 10.1.1.1\n bogus\n }\n}\n\
                virtual_server 10.1.1.1 80 {\n lb_algo fastest\n persistence_granularity 255.0.255.0\n\
                 real_server 10.0.0.1 80 {\n weight -1\n HTTP_GET {\n connect_timeout 1\n }\n }\n}\n";
    let loaded = lb::config::parse_str_isolated(text, "t.conf").unwrap();
    let c = &loaded.config;
    assert_eq!(
        c.vrrp_instances.len(),
        1,
        "V has no valid virtual_router_id and is dropped"
    );
    let w = &c.vrrp_instances[0];
    assert_eq!(
        (w.priority, w.advert_int),
        (100, Duration::from_millis(1500))
    );
    assert_eq!(w.virtual_addresses.len(), 1);
    let vs = &c.virtual_servers[0];
    assert_eq!(
        (vs.scheduler.as_str(), vs.persistence_granularity),
        ("wlc", None)
    );
    assert_eq!((vs.reals[0].weight, vs.reals[0].checks.len()), (1, 0));
    let lines: Vec<u32> = loaded.warnings.iter().map(|w| w.at.line).collect();
    // 300 out of range, V dropped, priority 0, 'bogus', v2 fractional interval, unknown scheduler,
    // non-contiguous mask, no lb_algo left -> wlc, weight -1, HTTP_GET without url.
    assert_eq!(
        lines,
        [3, 1, 8, 12, 5, 16, 17, 15, 19, 20],
        "{:#?}",
        loaded.warnings
    );
}

#[test]
fn keepalived_sample_configurations_load() {
    let dir = Path::new("/usr/share/doc/keepalived/samples");
    if !dir.is_dir() {
        eprintln!(
            "skipping keepalived_sample_configurations_load: keepalived's samples are not installed (scripts/test installs keepalived as root)"
        );
        return;
    }
    let mut loaded_any = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if !path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("keepalived.conf")
        {
            continue;
        }
        let loaded = load(&path, &Options::default()).unwrap_or_else(|e| panic!("{e}"));
        let c = &loaded.config;
        assert!(
            !(c.vrrp_instances.is_empty()
                && c.virtual_servers.is_empty()
                && c.vrrp_scripts.is_empty()),
            "{} read as empty: {:#?}",
            path.display(),
            loaded.warnings
        );
        loaded_any += 1;
    }
    assert!(loaded_any >= 20, "{loaded_any} samples");

    let sample = load(dir.join("keepalived.conf.sample"), &Options::default())
        .unwrap()
        .config;
    let vi = &sample.vrrp_instances[0];
    assert_eq!(
        (vi.vrid, vi.priority, vi.preempt, vi.virtual_addresses.len()),
        (50, 100, false, 3)
    );
    let vs = &sample.virtual_servers[0];
    assert_eq!(
        vs.addr,
        ServiceAddress::Socket("10.10.10.2:1358".parse().unwrap())
    );
    assert_eq!(
        (vs.scheduler.as_str(), vs.method),
        ("rr", ForwardingMethod::Nat)
    );
    assert_eq!(vs.persistence_timeout, Some(Duration::from_secs(50)));
    assert_eq!(
        vs.sorry_server,
        Some("192.168.200.200:1358".parse().unwrap())
    );

    let groups = load(
        dir.join("keepalived.conf.virtual_server_group"),
        &Options::default(),
    )
    .unwrap()
    .config;
    let members = &groups.virtual_server_groups[0].members;
    assert_eq!(
        members.len(),
        3 + 8 + 2,
        "three addresses, 192.168.200.3-10, two fwmarks"
    );
    assert_eq!(
        groups.virtual_servers[0].addr,
        ServiceAddress::Group("VSG_1".into())
    );
}
