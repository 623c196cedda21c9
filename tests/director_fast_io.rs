//! The director's fast packet I/O (`--io fast`: lb-forward's TPACKET_V3 receive rings and
//! PACKET_TX_RING transmit rings) end to end, in a network-namespace lab: one director (a VRRP
//! instance that becomes master and takes the VIP and the reals' gateway address), an LVS-NAT
//! service with three HTTP reals and a TCP_CHECK each, and a client using curl. Every request's
//! packets go through the rings both ways (NAT replies come back through the director), and
//! the weighted round robin spreads them evenly.

use std::path::PathBuf;
use std::time::Duration;

use lb_lab::l4::{GATEWAY4, Lab, Mode, Stream, VIP4, skip, tally};
use lb_lab::wait_until;

fn config(lab: &Lab) -> String {
    let reals: String = (0..3)
        .map(|i| {
            format!(
                "    real_server {} 80 {{\n        weight 1\n        TCP_CHECK {{\n            connect_timeout 1\n        }}\n    }}\n",
                lab.real_ipv4(i)
            )
        })
        .collect();
    format!(
        "vrrp_instance VI_1 {{\n    state BACKUP\n    interface eth0\n    virtual_router_id 51\n    priority 150\n    \
         advert_int 0.1\n    version 3\n    virtual_ipaddress {{\n        {VIP4}/32\n        {GATEWAY4}/32\n    }}\n}}\n\
         virtual_server {VIP4} 80 {{\n    delay_loop 1\n    lb_algo wrr\n    lb_kind NAT\n    protocol TCP\n{reals}}}\n"
    )
}

/// Removes the configuration file and the control socket.
struct Files([PathBuf; 2]);
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

#[test]
fn nat_service_through_the_rings() {
    if skip("nat_service_through_the_rings") {
        return;
    }
    let mut lab = Lab::with_directors("dfio", 1, [Mode::Nat; 3]).unwrap();
    let tmp = std::env::temp_dir();
    let id = std::process::id();
    let files = Files([
        tmp.join(format!("lb-dfio-{id}.conf")),
        tmp.join(format!("lb-dfio-{id}.sock")),
    ]);
    let [conf, sock] = &files.0;
    std::fs::write(conf, config(&lab)).unwrap();
    let (conf_s, sock_s) = (conf.to_string_lossy(), sock.to_string_lossy());
    lab.spawn_example(
        1,
        "director",
        &["-f", &conf_s, "--control", &sock_s, "--io", "fast"],
        Stream::Stdout,
        "running",
    )
    .unwrap();
    let listing = wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
        let l = list(sock);
        (l.contains("VRRP VI_1 MASTER")
            && l.contains("serving")
            && l.matches(" Masq ").count() == 3)
            .then_some(l)
    });
    assert!(listing.is_some(), "director: {}", list(sock));
    let answers: Vec<String> = (0..6)
        .map(|_| {
            lab.http_get(&format!("http://{VIP4}/"))
                .unwrap_or_else(|e| format!("failed: {e}"))
        })
        .collect();
    let counts = tally(&answers);
    assert_eq!(
        counts.into_iter().collect::<Vec<_>>(),
        [("real-0", 2), ("real-1", 2), ("real-2", 2)].map(|(r, n)| (r.to_owned(), n)),
        "{answers:?}"
    );
}
