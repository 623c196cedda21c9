//! The forwarder example between real peers in network namespaces: a client runs curl and a
//! UDP client against the VIP, three reals run Python's HTTP server and a UDP echo server, and
//! the director runs `examples/forwarder` (one process per service). DR and TUN replies go
//! straight from the reals to the client; NAT replies come back through the director. The
//! scheduler is `rr`, so nine new connections land three on each real.

mod lab_support;

use lab_support::{ForwarderLab, Lab, Mode, VIP4, VIP6, skip, tally};

fn nine_http(lab: &Lab, url: &str) -> Vec<String> {
    (0..9).map(|_| lab.http_get(url).unwrap()).collect()
}

fn nine_udp(lab: &Lab, vip: &str) -> Vec<String> {
    (0..9).map(|_| lab.udp_query(vip, 53).unwrap()).collect()
}

fn assert_round_robin(answers: &[String]) {
    let t = tally(answers);
    assert_eq!(t.len(), 3, "{t:?}");
    assert!(t.values().all(|&n| n == 3), "{t:?}");
}

#[test]
fn dr_tcp_and_udp_over_ipv4_and_ipv6() {
    if skip("dr_tcp_and_udp_over_ipv4_and_ipv6") {
        return;
    }
    let mut lab = Lab::new("fdr", [Mode::Dr; 3]).unwrap();
    let reals = |port: &str| -> Vec<String> {
        ["10.0.0.3", "10.0.0.4", "10.0.0.5"]
            .iter()
            .flat_map(|r| ["--real".to_owned(), format!("{r}:{port},method=dr")])
            .collect()
    };
    let tcp = reals("80");
    let mut args = vec!["--service", "tcp:10.0.0.100:80", "--scheduler", "rr"];
    args.extend(tcp.iter().map(String::as_str));
    let web = lab.forwarder(&args).unwrap();
    let udp = reals("53");
    let mut args = vec![
        "--service",
        "udp:10.0.0.100:53",
        "--scheduler",
        "rr",
        "--io",
        "fast",
    ];
    args.extend(udp.iter().map(String::as_str));
    lab.forwarder(&args).unwrap();
    let tcp6: Vec<String> = ["fd00::3", "fd00::4", "fd00::5"]
        .iter()
        .flat_map(|r| ["--real".to_owned(), format!("[{r}]:80,method=dr")])
        .collect();
    let mut args = vec!["--service", "tcp:[fd00::100]:80", "--scheduler", "rr"];
    args.extend(tcp6.iter().map(String::as_str));
    lab.forwarder(&args).unwrap();
    lab.forwarder(&[
        "--service",
        "udp:[fd00::100]:53",
        "--scheduler",
        "rr",
        "--real",
        "[fd00::3]:53,method=dr",
        "--real",
        "[fd00::4]:53,method=dr",
        "--real",
        "[fd00::5]:53,method=dr",
    ])
    .unwrap();

    assert_round_robin(&nine_http(&lab, &format!("http://{VIP4}/")));
    assert_round_robin(&nine_udp(&lab, VIP4));
    assert_round_robin(&nine_http(&lab, &format!("http://[{VIP6}]/")));
    assert_round_robin(&nine_udp(&lab, VIP6));
    // Replies went straight from the reals to the client: the director saw none.
    let (inp, out) = lab.packets_in_out(web).unwrap();
    assert!(inp >= 9 * 3, "{inp}");
    assert_eq!(out, 0);
}

#[test]
fn nat_tcp_and_udp_replies_come_back_through_the_director() {
    if skip("nat_tcp_and_udp_replies_come_back_through_the_director") {
        return;
    }
    let mut lab = Lab::new("fnat", [Mode::Nat; 3]).unwrap();
    // The IPv4 services run two workers: a reply's flow hashes apart from its request's, so
    // it may reach the other worker, which must find the connection in the shared table; rr
    // stays exact because the scheduler is shared too.
    let web = lab
        .forwarder(&[
            "--service",
            "tcp:10.0.0.100:8080",
            "--scheduler",
            "rr",
            "--workers",
            "2",
            "--real",
            "10.0.0.3:80,method=nat",
            "--real",
            "10.0.0.4:80,method=nat",
            "--real",
            "10.0.0.5:80,method=nat",
        ])
        .unwrap();
    lab.forwarder(&[
        "--service",
        "udp:10.0.0.100:53",
        "--scheduler",
        "rr",
        "--io",
        "fast",
        "--workers",
        "2",
        "--real",
        "10.0.0.3:53,method=nat",
        "--real",
        "10.0.0.4:53,method=nat",
        "--real",
        "10.0.0.5:53,method=nat",
    ])
    .unwrap();
    lab.forwarder(&[
        "--service",
        "tcp:[fd00::100]:8080",
        "--scheduler",
        "rr",
        "--real",
        "[fd00::3]:80,method=nat",
        "--real",
        "[fd00::4]:80,method=nat",
        "--real",
        "[fd00::5]:80,method=nat",
    ])
    .unwrap();
    lab.forwarder(&[
        "--service",
        "udp:[fd00::100]:53",
        "--scheduler",
        "rr",
        "--io",
        "fast",
        "--real",
        "[fd00::3]:53,method=nat",
        "--real",
        "[fd00::4]:53,method=nat",
        "--real",
        "[fd00::5]:53,method=nat",
    ])
    .unwrap();
    // The reals listen on port 80; the client only knows VIP:8080.
    assert_round_robin(&nine_http(&lab, &format!("http://{VIP4}:8080/")));
    assert_round_robin(&nine_udp(&lab, VIP4));
    assert_round_robin(&nine_http(&lab, &format!("http://[{VIP6}]:8080/")));
    assert_round_robin(&nine_udp(&lab, VIP6));
    // Every reply came back through the director.
    let (inp, out) = lab.packets_in_out(web).unwrap();
    assert!(inp >= 9 * 3 && out >= 9 * 3, "{inp} {out}");
}

#[test]
fn tun_ipip_ip6ip6_and_gue_to_userspace_tunnel_endpoints() {
    if skip("tun_ipip_ip6ip6_and_gue_to_userspace_tunnel_endpoints") {
        return;
    }
    let mut lab = Lab::new("ftun", [Mode::Tun; 3]).unwrap();
    let web = lab
        .forwarder(&[
            "--service",
            "tcp:10.0.0.100:80",
            "--scheduler",
            "rr",
            "--mss-clamp",
            "--real",
            "10.0.0.3:80,method=tun",
            "--real",
            "10.0.0.4:80,method=tun",
            "--real",
            "10.0.0.5:80,method=tun",
        ])
        .unwrap();
    lab.forwarder(&[
        "--service",
        "udp:10.0.0.100:53",
        "--scheduler",
        "rr",
        "--io",
        "fast",
        "--real",
        "10.0.0.3:53,method=tun,gue=6080",
        "--real",
        "10.0.0.4:53,method=tun,gue=6080",
        "--real",
        "10.0.0.5:53,method=tun,gue=6080",
    ])
    .unwrap();
    lab.forwarder(&[
        "--service",
        "tcp:[fd00::100]:80",
        "--scheduler",
        "rr",
        "--real",
        "[fd00::3]:80,method=tun",
        "--real",
        "[fd00::4]:80,method=tun",
        "--real",
        "[fd00::5]:80,method=tun",
    ])
    .unwrap();
    lab.forwarder(&[
        "--service",
        "udp:[fd00::100]:53",
        "--scheduler",
        "rr",
        "--real",
        "[fd00::3]:53,method=tun,gue=6080",
        "--real",
        "[fd00::4]:53,method=tun,gue=6080",
        "--real",
        "[fd00::5]:53,method=tun,gue=6080",
    ])
    .unwrap();
    assert_round_robin(&nine_http(&lab, &format!("http://{VIP4}/")));
    assert_round_robin(&nine_udp(&lab, VIP4));
    assert_round_robin(&nine_http(&lab, &format!("http://[{VIP6}]/")));
    // GUE over IPv6 to the endpoints.
    assert_round_robin(&nine_udp(&lab, VIP6));
    // Replies went straight from the reals (from the VIP, by their own routing).
    let (inp, out) = lab.packets_in_out(web).unwrap();
    assert!(inp >= 9 * 3, "{inp}");
    assert_eq!(out, 0);
}
