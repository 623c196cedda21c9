//! The director end to end, in a network-namespace lab: two directors in a VRRP pair running
//! `examples/director` from a keepalived.conf (wrr, TCP_CHECK), three real HTTP servers, a
//! client using curl. Checked for LVS-DR in full: the master serves and distributes; a real
//! whose check fails leaves the table and comes back; the backup takes over when the master
//! host dies and traffic goes on; SIGHUP applies a changed weight; SIGTERM resigns and cleans
//! up; Prometheus metrics count per real. For LVS-NAT (the reals' gateway is a second VIP) and
//! LVS-TUN (reals decapsulate in userspace): distribution, and traffic on through a failover.
//! A `track_script` weight moves the master and back, and the instance's `notify` gets its
//! effective priority. A `vrrp_sync_group` of two instances on two interfaces: the master's
//! `track_interface` going down moves both instances (and their VIPs) to the other director
//! with traffic going on, and back with preemption; the group's `notify` runs on each group
//! transition. A reload keeps unchanged VRRP instances in their state (no transition on either
//! director) while instances are added, changed and removed.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lb_lab::l4::{GATEWAY4, Lab, Mode, VIP4, skip, tally};
use lb_lab::{Proc, wait_until};

fn config_for(mode: Mode, priority: u8, weight0: u32) -> String {
    let (kind, vips) = match mode {
        Mode::Dr => ("DR", format!("{VIP4}/32")),
        Mode::Nat => ("NAT", format!("{VIP4}/32\n        {GATEWAY4}/32")),
        Mode::Tun => ("TUN", format!("{VIP4}/32")),
    };
    let reals: String = (4..=6)
        .map(|i| {
            let weight = if i == 4 { weight0 } else { 1 };
            format!(
                "    real_server 10.0.0.{i} 80 {{\n        weight {weight}\n        TCP_CHECK {{\n            connect_timeout 1\n        }}\n    }}\n"
            )
        })
        .collect();
    format!(
        "vrrp_instance VI_1 {{\n    state BACKUP\n    interface eth0\n    virtual_router_id 51\n    priority {priority}\n    \
         advert_int 0.1\n    version 3\n    virtual_ipaddress {{\n        {vips}\n    }}\n}}\n\
         virtual_server {VIP4} 80 {{\n    delay_loop 1\n    lb_algo wrr\n    lb_kind {kind}\n    protocol TCP\n{reals}}}\n"
    )
}

struct Files(Vec<PathBuf>);
impl Drop for Files {
    fn drop(&mut self) {
        for f in &self.0 {
            let _ = std::fs::remove_file(f);
        }
    }
}

fn list(socket: &PathBuf) -> String {
    let bin = lb_lab::l4::example("director").expect("director example");
    let out = std::process::Command::new(bin)
        .arg("list")
        .arg("--control")
        .arg(socket)
        .output()
        .expect("director list");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_for(socket: &PathBuf, secs: u64, what: impl Fn(&str) -> bool) -> Option<String> {
    wait_until(Duration::from_secs(secs), Duration::from_millis(50), || {
        Some(list(socket)).filter(|l| what(l))
    })
}

fn curls(lab: &Lab, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            lab.http_get(&format!("http://{VIP4}/"))
                .unwrap_or_else(|e| format!("failed: {e}"))
        })
        .collect()
}

#[test]
fn vrrp_pair_dr_service_health_failover_reload_and_shutdown() {
    if skip("vrrp_pair_dr_service_health_failover_reload_and_shutdown") {
        return;
    }
    let (mut lab, [a, b], [_, conf_b], [sock_a, sock_b], _files) = pair("dirlab", Mode::Dr);

    // RFC 9568 election: the higher priority becomes master; it alone serves.
    let shown = wait_for(&sock_a, 10, |l| {
        l.contains("VRRP VI_1 MASTER") && l.contains("serving")
    })
    .expect("director A becomes master");
    assert!(
        shown.contains("TCP  10.0.0.100:80 wrr") && shown.contains("-> 10.0.0.4:80"),
        "{shown}"
    );
    wait_for(&sock_b, 5, |l| {
        l.contains("VRRP VI_1 BACKUP") && l.contains("standing by")
    })
    .expect("director B is backup");
    let counts = tally(&curls(&lab, 9));
    assert_eq!(
        counts.values().copied().collect::<Vec<_>>(),
        [3, 3, 3],
        "{counts:?}"
    );

    // Prometheus metrics: per real counters, the VRRP state, the datapath serving.
    let metrics = wait_until(Duration::from_secs(5), Duration::from_millis(100), || {
        let text = lab
            .director_n(0)
            .run(&["curl", "-sS", "http://127.0.0.1:9100/metrics"])
            .ok()?;
        text.contains(
            "lb_real_connections_total{service=\"tcp:10.0.0.100:80\",real=\"10.0.0.6:80\"} 3",
        )
        .then_some(text)
    })
    .expect("metrics with three connections to 10.0.0.6");
    assert!(
        metrics.contains("lb_vrrp_state{instance=\"VI_1\",state=\"MASTER\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("lb_datapath_serving 1"), "{metrics}");

    // A real whose TCP_CHECK fails is removed, and returns when it passes again.
    let real1 = lab.real(1);
    real1.sh("nft add table inet block; nft add chain inet block input '{ type filter hook input priority 0; }'; nft add rule inet block input tcp dport 80 reject with tcp reset").unwrap();
    wait_for(&sock_a, 10, |l| !l.contains("10.0.0.5:80"))
        .expect("10.0.0.5 removed after its check fails");
    let counts = tally(&curls(&lab, 6));
    assert_eq!(counts.get("real-1"), None, "{counts:?}");
    assert_eq!(
        counts.values().sum::<usize>(),
        6,
        "every request answered: {counts:?}"
    );
    real1.sh("nft delete table inet block").unwrap();
    wait_for(&sock_a, 10, |l| l.contains("10.0.0.5:80"))
        .expect("10.0.0.5 back after its check passes");

    // The master host dies (process killed, link down): the backup takes over; traffic goes on.
    lab.procs[a].signal("KILL").unwrap();
    lab.director_n(0)
        .run(&["ip", "link", "set", "eth0", "down"])
        .unwrap();
    let killed = Instant::now();
    wait_for(&sock_b, 10, |l| {
        l.contains("VRRP VI_1 MASTER") && l.contains("serving")
    })
    .expect("director B takes over");
    let takeover = killed.elapsed();
    // 3 x 100 ms + skew (0.061 s), plus the polling of this test.
    assert!(
        takeover < Duration::from_secs(2),
        "takeover took {takeover:?}"
    );
    let answers = curls(&lab, 6);
    assert!(
        answers.iter().all(|a| a.starts_with("real-")),
        "{answers:?}"
    );

    // SIGHUP: the changed weight is applied in place.
    std::fs::write(&conf_b, config_for(Mode::Dr, 100, 3)).unwrap();
    lab.procs[b].signal("HUP").unwrap();
    let shown = wait_for(&sock_b, 10, |l| {
        l.lines()
            .any(|x| x.contains("10.0.0.4:80") && x.contains("Route   3 "))
    })
    .expect("weight 3 after reload");
    assert!(
        shown.contains("VRRP VI_1 MASTER"),
        "VRRP untouched by a services-only change: {shown}"
    );

    // SIGTERM: priority-0 resignation, VIP and nftables rules removed, clean exit.
    lab.procs[b].signal("TERM").unwrap();
    let status = lab.procs[b]
        .wait_timeout(Duration::from_secs(10))
        .unwrap()
        .expect("director B exits");
    assert!(status.success(), "{status:?}");
    let addrs = lab
        .director_n(1)
        .run(&["ip", "-br", "addr", "show", "dev", "eth0"])
        .unwrap();
    assert!(!addrs.contains(VIP4), "VIP removed: {addrs}");
    let tables = lab.director_n(1).run(&["nft", "list", "tables"]).unwrap();
    assert!(tables.trim().is_empty(), "nftables rules removed: {tables}");
}

/// How many threads of process `pid` run under SCHED_RR (policy 2, field 41 of their stat).
fn rr_threads(pid: u32) -> usize {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("stat")).ok())
        .filter(|stat| {
            let rest = stat.rsplit_once(')').map_or("", |r| r.1);
            rest.split_whitespace().nth(38) == Some("2")
        })
        .count()
}

/// Process `pid`'s locked memory (VmLck), in kB.
fn locked_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmLck:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// A second instance on director A, `VI_2` (VRID 52, 10.0.0.101), whose `notify` script logs to
/// `log`.
fn second_instance(priority: u8, notify: &std::path::Path) -> String {
    format!(
        "vrrp_instance VI_2 {{\n    state BACKUP\n    interface eth0\n    virtual_router_id 52\n    priority {priority}\n    \
         advert_int 0.1\n    version 3\n    virtual_ipaddress {{\n        10.0.0.101/32\n    }}\n    notify {}\n}}\n",
        notify.display()
    )
}

/// keepalived's reload keeps unchanged VRRP instances in their state: SIGHUPs that change only
/// a virtual_server, the VRRP thread's scheduling (`vrrp_rt_priority`, `vrrp_no_swap`: applied
/// to the running thread), add an instance, change another one or remove it leave the master's
/// untouched instance MASTER without a transition (none on either director's stdout, so no
/// failover to the peer); a changed instance resigns and starts again (the peer takes over on
/// its priority-0 advert); a removed one resigns with keepalived's deleted-instance notify
/// (FAULT).
#[test]
fn vrrp_reload_keeps_unchanged_instances_in_their_state() {
    if skip("vrrp_reload_keeps_unchanged_instances_in_their_state") {
        return;
    }
    let notify_log =
        std::env::temp_dir().join(format!("lb-dir-{}-reload-notify.log", std::process::id()));
    let notify =
        std::env::temp_dir().join(format!("lb-dir-{}-reload-notify.sh", std::process::id()));
    let _notify_files = Files(vec![notify_log.clone(), notify.clone()]);
    std::fs::write(
        &notify,
        format!("#!/bin/sh\necho \"$*\" >> {}\n", notify_log.display()),
    )
    .unwrap();
    std::fs::set_permissions(&notify, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let configs = [150, 100].map(|p| config_for(Mode::Dr, p, 1));
    let (lab, [a, _], [conf_a, _], [sock_a, sock_b], _files, [out_a, out_b]) =
        pair_logged("dirrl", Mode::Dr, configs, |_| Ok(()));
    wait_for(&sock_a, 10, |l| {
        l.contains("VRRP VI_1 MASTER") && l.contains("serving")
    })
    .expect("director A becomes master");
    wait_for(&sock_b, 5, |l| l.contains("VRRP VI_1 BACKUP")).expect("director B is backup");
    // Nothing may change from here on but what each reload asks for.
    let (from_a, from_b) = (out_a.lines().len(), out_b.lines().len());
    let undisturbed = |what: &str| {
        assert_eq!(
            out_a.transitions("VI_1", from_a),
            Vec::<String>::new(),
            "A, {what}"
        );
        assert_eq!(
            out_b.transitions("VI_1", from_b),
            Vec::<String>::new(),
            "B, {what}"
        );
        let shown = list(&sock_a);
        assert!(
            shown.contains("VRRP VI_1 MASTER") && shown.contains("serving"),
            "{what}: {shown}"
        );
    };
    let reload = |config: String, reloaded: &dyn Fn(&str) -> bool| {
        let seen = out_a
            .lines()
            .iter()
            .filter(|l| l.starts_with("reloading"))
            .count();
        std::fs::write(&conf_a, config).unwrap();
        lab.procs[a].signal("HUP").unwrap();
        wait_until(Duration::from_secs(5), Duration::from_millis(20), || {
            (out_a
                .lines()
                .iter()
                .filter(|l| l.starts_with("reloading"))
                .count()
                > seen)
                .then_some(())
        })
        .expect("reloaded");
        wait_for(&sock_a, 10, reloaded).expect("the reload applied");
    };

    // Only a virtual_server changes.
    reload(config_for(Mode::Dr, 150, 3), &|l| {
        l.lines()
            .any(|x| x.contains("10.0.0.4:80") && x.contains("Route   3 "))
    });
    std::thread::sleep(Duration::from_millis(500));
    undisturbed("after a virtual_server change");

    // vrrp_rt_priority and vrrp_no_swap: the running VRRP thread goes to SCHED_RR and the
    // memory is locked; taken out again at the next reload.
    let pid = lab.procs[a].pid();
    let realtime = "global_defs {\n    vrrp_rt_priority 10\n    vrrp_no_swap\n}\n";
    reload(realtime.to_owned() + &config_for(Mode::Dr, 150, 3), &|_| {
        true
    });
    let scheduled = wait_until(Duration::from_secs(5), Duration::from_millis(20), || {
        (rr_threads(pid) == 1 && locked_kb(pid) > 0).then_some(())
    });
    assert!(
        scheduled.is_some(),
        "{} RR threads, {} kB locked",
        rr_threads(pid),
        locked_kb(pid)
    );
    std::thread::sleep(Duration::from_millis(500));
    undisturbed("after vrrp_rt_priority");

    // A second instance: it starts (backup, then master: nobody else runs VRID 52).
    let with_second = |p: u8| config_for(Mode::Dr, p, 3) + &second_instance(100, &notify);
    reload(with_second(150), &|l| l.contains("VRRP VI_2 MASTER"));
    std::thread::sleep(Duration::from_millis(500));
    undisturbed("after adding VI_2");
    assert_eq!(
        (rr_threads(pid), locked_kb(pid)),
        (0, 0),
        "real-time settings gone"
    );
    let vi2 = out_a.transitions("VI_2", from_a);
    assert!(
        vi2.len() == 2 && vi2[0].contains(" 52 BACKUP startup") && vi2[1].contains(" 52 MASTER "),
        "{vi2:?}"
    );
    let addrs = lab
        .director_n(0)
        .run(&["ip", "-br", "addr", "show", "dev", "eth0"])
        .unwrap();
    assert!(
        addrs.contains("10.0.0.101") && addrs.contains(VIP4),
        "{addrs}"
    );

    // VI_1 changes (priority 50): it resigns and starts again; B takes over on its
    // priority-0 advert. VI_2 goes on untouched.
    let vi2_lines = out_a.transitions("VI_2", 0).len();
    reload(with_second(50), &|l| l.contains("VRRP VI_1 BACKUP"));
    let took_over = wait_until(Duration::from_secs(5), Duration::from_millis(20), || {
        out_b
            .transitions("VI_1", from_b)
            .into_iter()
            .find(|l| l.contains(" 51 MASTER "))
    })
    .expect("B takes VI_1 over");
    assert!(took_over.contains("resigned (priority 0)"), "{took_over}");
    let restarted = out_a.transitions("VI_1", from_a);
    assert!(
        restarted.len() == 2
            && restarted[0].contains(" 51 INIT shutdown")
            && restarted[1].contains(" 51 BACKUP startup"),
        "{restarted:?}"
    );
    assert_eq!(
        out_a.transitions("VI_2", 0).len(),
        vi2_lines,
        "VI_2 untouched"
    );

    // VI_2 removed: it resigns, its address goes, its notify says FAULT (keepalived's
    // deleted instance).
    reload(config_for(Mode::Dr, 50, 3), &|l| !l.contains("VI_2"));
    let addrs = lab
        .director_n(0)
        .run(&["ip", "-br", "addr", "show", "dev", "eth0"])
        .unwrap();
    assert!(!addrs.contains("10.0.0.101"), "{addrs}");
    let notified = wait_until(Duration::from_secs(2), Duration::from_millis(50), || {
        let log = std::fs::read_to_string(&notify_log).unwrap_or_default();
        log.contains("INSTANCE VI_2 FAULT").then_some(log)
    })
    .expect("deleted instance notified");
    assert_eq!(
        notified.lines().collect::<Vec<_>>(),
        [
            "INSTANCE VI_2 BACKUP 100",
            "INSTANCE VI_2 MASTER 100",
            "INSTANCE VI_2 FAULT 100"
        ]
    );
    let vi1 = out_a.transitions("VI_1", from_a);
    assert_eq!(vi1.len(), 2, "VI_1 untouched by VI_2's removal: {vi1:?}");
}

/// Two directors running `mode` from configurations with priorities 150 and 100; the lab,
/// their indices in `lab.procs`, configuration files and control sockets.
fn pair(tag: &str, mode: Mode) -> (Lab, [usize; 2], [PathBuf; 2], [PathBuf; 2], Files) {
    pair_with(tag, mode, [150, 100].map(|p| config_for(mode, p, 1)))
}

/// [`pair`] with these configurations.
fn pair_with(
    tag: &str,
    mode: Mode,
    configs: [String; 2],
) -> (Lab, [usize; 2], [PathBuf; 2], [PathBuf; 2], Files) {
    pair_with_setup(tag, mode, configs, |_| Ok(()))
}

/// [`pair_with`], changing the lab with `setup` before the directors start.
fn pair_with_setup(
    tag: &str,
    mode: Mode,
    configs: [String; 2],
    setup: impl FnOnce(&Lab) -> std::io::Result<()>,
) -> (Lab, [usize; 2], [PathBuf; 2], [PathBuf; 2], Files) {
    let (lab, procs, confs, socks, files, _) = pair_logged(tag, mode, configs, setup);
    (lab, procs, confs, socks, files)
}

/// What a director printed on stdout so far, one line each.
#[derive(Clone, Default)]
struct Output(Arc<Mutex<Vec<String>>>);

impl Output {
    fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// The transition lines of `instance` (`<ms> <vrid> <STATE> <reason> (<instance>)`) from
    /// line `from` on.
    fn transitions(&self, instance: &str, from: usize) -> Vec<String> {
        let tag = format!("({instance})");
        self.lines()
            .into_iter()
            .skip(from)
            .filter(|l| l.ends_with(&tag))
            .collect()
    }
}

/// [`pair_with_setup`], with each director's stdout kept.
fn pair_logged(
    tag: &str,
    mode: Mode,
    configs: [String; 2],
    setup: impl FnOnce(&Lab) -> std::io::Result<()>,
) -> (
    Lab,
    [usize; 2],
    [PathBuf; 2],
    [PathBuf; 2],
    Files,
    [Output; 2],
) {
    let mut lab = Lab::with_directors(tag, 2, [mode; 3]).unwrap();
    setup(&lab).unwrap();
    let tmp = std::env::temp_dir();
    let id = format!("{}-{tag}", std::process::id());
    let confs = [0, 1].map(|i| tmp.join(format!("lb-dir-{id}-{i}.conf")));
    let socks = [0, 1].map(|i| tmp.join(format!("lb-dir-{id}-{i}.sock")));
    let files = Files(confs.iter().chain(&socks).cloned().collect());
    let mut procs = [0; 2];
    let outputs = [Output::default(), Output::default()];
    let bin = lb_lab::l4::example("director").expect("director example");
    for (i, config) in configs.iter().enumerate() {
        std::fs::write(&confs[i], config).unwrap();
        // Metrics on each director's own loopback (they are in different namespaces).
        let mut cmd = lab.lan.hosts[1 + i].ns.command(&bin.to_string_lossy());
        cmd.arg("-f")
            .arg(&confs[i])
            .arg("--control")
            .arg(&socks[i])
            .args(["--metrics", "127.0.0.1:9100"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        // NAT directors run two forwarding threads: a reply may reach the thread that did
        // not see its request, and must find the connection in the shared table.
        if mode == Mode::Nat {
            cmd.args(["--workers", "2"]);
        }
        let mut proc = Proc::spawn(&mut cmd).unwrap();
        let stdout = proc.child_mut().stdout.take().unwrap();
        let lines = outputs[i].0.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        lab.procs.push(proc);
        procs[i] = lab.procs.len() - 1;
        let running = wait_until(Duration::from_secs(20), Duration::from_millis(20), || {
            outputs[i]
                .lines()
                .iter()
                .any(|l| l.starts_with("running"))
                .then_some(())
        });
        assert!(running.is_some(), "director {i}: {:?}", outputs[i].lines());
    }
    (lab, procs, confs, socks, files, outputs)
}

fn distribution_and_failover(tag: &str, mode: Mode) {
    let (lab, procs, _, socks, _files) = pair(tag, mode);
    wait_for(&socks[0], 10, |l| {
        l.contains("VRRP VI_1 MASTER") && l.contains("serving")
    })
    .expect("director A becomes master");
    let counts = tally(&curls(&lab, 6));
    assert_eq!(
        counts.values().copied().collect::<Vec<_>>(),
        [2, 2, 2],
        "{mode:?}: {counts:?}"
    );
    lab.procs[procs[0]].signal("KILL").unwrap();
    lab.director_n(0)
        .run(&["ip", "link", "set", "eth0", "down"])
        .unwrap();
    wait_for(&socks[1], 10, |l| {
        l.contains("VRRP VI_1 MASTER") && l.contains("serving")
    })
    .expect("director B takes over");
    let answers = curls(&lab, 6);
    assert!(
        answers.iter().all(|a| a.starts_with("real-")),
        "{mode:?}: {answers:?}"
    );
}

#[test]
fn nat_behind_a_vrrp_pair_with_a_gateway_vip() {
    if skip("nat_behind_a_vrrp_pair_with_a_gateway_vip") {
        return;
    }
    distribution_and_failover("dirnat", Mode::Nat);
}

#[test]
fn tun_behind_a_vrrp_pair() {
    if skip("tun_behind_a_vrrp_pair") {
        return;
    }
    distribution_and_failover("dirtun", Mode::Tun);
}

#[test]
fn track_script_weight_moves_the_master_and_back() {
    if skip("track_script_weight_moves_the_master_and_back") {
        return;
    }
    let tmp = std::env::temp_dir();
    let flag = tmp.join(format!("lb-dir-{}-fail", std::process::id()));
    let notify = tmp.join(format!("lb-dir-{}-trk-notify.sh", std::process::id()));
    let log = tmp.join(format!("lb-dir-{}-trk-notify.log", std::process::id()));
    let _flag = Files(vec![flag.clone(), notify.clone(), log.clone()]);
    std::fs::write(
        &notify,
        format!("#!/bin/sh\necho \"$*\" >> {}\n", log.display()),
    )
    .unwrap();
    std::fs::set_permissions(&notify, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // keepalived's semantics: a negative weight applies while the script fails: 150 - 60 = 90,
    // below the backup's 100, which preempts.
    let script = format!(
        "vrrp_script chk {{\n    script \"test ! -e {}\"\n    interval 0.2\n    weight -60\n    fall 1\n    rise 1\n}}\n",
        flag.display()
    );
    let tracked = config_for(Mode::Dr, 150, 1).replace(
        "    virtual_ipaddress {",
        &format!(
            "    notify {}\n    track_script {{\n        chk\n    }}\n    virtual_ipaddress {{",
            notify.display()
        ),
    );
    let (_lab, _, _, socks, _files) = pair_with(
        "dirtrk",
        Mode::Dr,
        [script + &tracked, config_for(Mode::Dr, 100, 1)],
    );
    let master = |s: &PathBuf| list(s).contains("VRRP VI_1 MASTER");
    wait_for(&socks[0], 10, |l| l.contains("VRRP VI_1 MASTER")).expect("A master at 150");
    std::fs::write(&flag, "").unwrap();
    wait_for(&socks[1], 10, |l| l.contains("VRRP VI_1 MASTER")).expect("B preempts A at 90");
    assert!(!master(&socks[0]), "A backed off");
    std::fs::remove_file(&flag).unwrap();
    wait_for(&socks[0], 10, |l| l.contains("VRRP VI_1 MASTER")).expect("A preempts back at 150");
    // keepalived's `notify` gets the effective priority: 90 while the script fails.
    let expected = [
        "INSTANCE VI_1 BACKUP 150",
        "INSTANCE VI_1 MASTER 150",
        "INSTANCE VI_1 BACKUP 90",
        "INSTANCE VI_1 MASTER 150",
    ];
    let lines = || -> Vec<String> {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let notified = wait_until(Duration::from_secs(2), Duration::from_millis(50), || {
        Some(lines()).filter(|l| l.len() >= expected.len())
    });
    assert_eq!(notified.unwrap_or_else(lines), expected);
}

/// A sync group of two instances on two interfaces: VI_1 holds the service VIP on the client
/// side (eth0) and tracks an uplink (eth2); VI_2 holds a VIP on a second segment (eth1).
fn sync_group_config(priority: u8, notify: &std::path::Path) -> String {
    let reals: String = (4..=6)
        .map(|i| format!("    real_server 10.0.0.{i} 80 {{\n        TCP_CHECK {{\n            connect_timeout 1\n        }}\n    }}\n"))
        .collect();
    let instance = |name: &str, dev: &str, vrid: u8, vip: &str, extra: &str| {
        format!(
            "vrrp_instance {name} {{\n    state BACKUP\n    interface {dev}\n    virtual_router_id {vrid}\n    priority {priority}\n    \
             advert_int 0.1\n    version 3\n    virtual_ipaddress {{\n        {vip}/32\n    }}\n{extra}}}\n"
        )
    };
    format!(
        "vrrp_sync_group G {{\n    group {{\n        VI_1\n        VI_2\n    }}\n    notify {notify}\n}}\n{}{}\
         virtual_server {VIP4} 80 {{\n    delay_loop 1\n    lb_algo rr\n    lb_kind DR\n    protocol TCP\n{reals}}}\n",
        instance(
            "VI_1",
            "eth0",
            51,
            VIP4,
            "    track_interface {\n        eth2\n    }\n"
        ),
        instance("VI_2", "eth1", 52, "10.1.0.100", ""),
        notify = notify.display(),
    )
}

fn holds_both(lab: &Lab, director: usize) -> bool {
    let ns = lab.director_n(director);
    let on = |dev: &str, vip: &str| {
        ns.run(&["ip", "-br", "addr", "show", "dev", dev])
            .is_ok_and(|o| o.contains(vip))
    };
    on("eth0", VIP4) && on("eth1", "10.1.0.100")
}

#[test]
fn sync_group_track_interface_moves_both_instances_and_back() {
    if skip("sync_group_track_interface_moves_both_instances_and_back") {
        return;
    }
    let tmp = std::env::temp_dir();
    let id = std::process::id();
    let logs = [0, 1].map(|i| tmp.join(format!("lb-dir-{id}-sg-notify-{i}.log")));
    let scripts = [0, 1].map(|i| tmp.join(format!("lb-dir-{id}-sg-notify-{i}.sh")));
    let _files = Files(logs.iter().chain(&scripts).cloned().collect());
    for (script, log) in scripts.iter().zip(&logs) {
        std::fs::write(
            script,
            format!("#!/bin/sh\necho \"$*\" >> {}\n", log.display()),
        )
        .unwrap();
        let executable = std::os::unix::fs::PermissionsExt::from_mode(0o755);
        std::fs::set_permissions(script, executable).unwrap();
    }
    let configs = [0, 1].map(|i| sync_group_config([150, 100][i], &scripts[i]));
    // The second segment and the tracked uplink exist before the directors start.
    let (lab, _, _, socks, _conf_files) = pair_with_setup("dirsg", Mode::Dr, configs, |lab| {
        lab.lan.add_segment(1, &[1, 2])?;
        lab.lan.add_segment(2, &[1, 2])
    });
    let both = |l: &str, state: &str| {
        l.contains(&format!("VRRP VI_1 {state}")) && l.contains(&format!("VRRP VI_2 {state}"))
    };
    wait_for(&socks[0], 10, |l| {
        both(l, "MASTER") && l.contains("serving")
    })
    .expect("director A is master of both");
    wait_for(&socks[1], 5, |l| both(l, "BACKUP")).expect("director B backup of both");
    assert!(holds_both(&lab, 0) && !holds_both(&lab, 1));
    let answered = |lab: &Lab| {
        let answers = curls(lab, 6);
        assert!(
            answers.iter().all(|a| a.starts_with("real-")),
            "{answers:?}"
        );
    };
    answered(&lab);

    // A's tracked uplink goes down: VI_1 FAULT, and VI_2 with it; B takes both VIPs.
    lab.director_n(0)
        .run(&["ip", "link", "set", "eth2", "down"])
        .unwrap();
    wait_for(&socks[1], 5, |l| both(l, "MASTER") && l.contains("serving"))
        .expect("director B takes both");
    wait_for(&socks[0], 5, |l| {
        both(l, "FAULT") && l.contains("standing by")
    })
    .expect("director A in FAULT with both");
    assert!(holds_both(&lab, 1), "VIPs on B");
    assert!(!holds_both(&lab, 0), "VIPs gone from A");
    answered(&lab);

    // The uplink returns: A's group goes back to backup, then preempts B with both.
    lab.director_n(0)
        .run(&["ip", "link", "set", "eth2", "up"])
        .unwrap();
    wait_for(&socks[0], 5, |l| both(l, "MASTER") && l.contains("serving"))
        .expect("director A master of both again");
    wait_for(&socks[1], 5, |l| {
        both(l, "BACKUP") && l.contains("standing by")
    })
    .expect("director B back to backup");
    assert!(holds_both(&lab, 0) && !holds_both(&lab, 1));
    answered(&lab);

    // keepalived's group notify: `notify GROUP NAME STATE 0` on each group transition.
    let group_lines = |i: usize| -> Vec<String> {
        std::fs::read_to_string(&logs[i])
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("GROUP"))
            .map(str::to_owned)
            .collect()
    };
    let expect_a = [
        "GROUP G BACKUP 0",
        "GROUP G MASTER 0",
        "GROUP G FAULT 0",
        "GROUP G BACKUP 0",
        "GROUP G MASTER 0",
    ];
    let a = wait_until(Duration::from_secs(2), Duration::from_millis(50), || {
        Some(group_lines(0)).filter(|l| l.len() >= expect_a.len())
    });
    assert_eq!(a.unwrap_or_else(|| group_lines(0)), expect_a);
    assert_eq!(
        group_lines(1),
        ["GROUP G BACKUP 0", "GROUP G MASTER 0", "GROUP G BACKUP 0"]
    );
}
