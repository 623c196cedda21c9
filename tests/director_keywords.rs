//! What the director's plan does with the keepalived.conf keywords the reader accepts: run
//! them, or say with a located warning that they are not run.

use std::time::Duration;

use lb::config::parse_str_isolated;
use lb::director::plan;

#[test]
fn keywords_read_but_not_run_are_warned_about() {
    let text = "virtual_server 10.0.0.100 80 {\n lb_algo rr\n lb_kind NAT\n omega\n ha_suspend\n\
        sorry_server 10.0.0.9 80\n sorry_server_inhibit\n\
        quorum_up \"/bin/true up\"\n quorum_down /bin/true\n\
        real_server 10.0.0.1 80 {\n  uthreshold 100\n  MISC_CHECK {\n   misc_path /bin/true\n   user nobody\n  }\n }\n}\n";
    let loaded = parse_str_isolated(text, "t.conf").unwrap();
    let (plan, warnings) = plan(&loaded.config);
    let lines: Vec<(u32, &str)> = warnings
        .iter()
        .map(|w| (w.at.line, w.message.as_str()))
        .collect();
    for (line, needle) in [
        (1, "omega"),
        (1, "ha_suspend"),
        (1, "sorry_server_inhibit"),
        (10, "uthreshold"),
        (12, "MISC_CHECK user"),
    ] {
        assert!(
            lines.iter().any(|(l, m)| *l == line && m.contains(needle)),
            "{needle} at line {line}: {lines:?}"
        );
    }
    let service = &plan.services[0];
    assert_eq!(service.quorum_up.as_deref(), Some("/bin/true up"));
    assert_eq!(service.quorum_down.as_deref(), Some("/bin/true"));
}

#[test]
fn misc_timeout_is_the_commands_timeout() {
    let text = "virtual_server 10.0.0.100 80 {\n delay_loop 7\n lb_algo rr\n lb_kind DR\n\
        real_server 10.0.0.1 80 {\n  MISC_CHECK {\n   misc_path /bin/true\n   misc_timeout 3\n  }\n }\n\
        real_server 10.0.0.2 80 {\n  MISC_CHECK {\n   misc_path /bin/true\n  }\n }\n}\n";
    let loaded = parse_str_isolated(text, "t.conf").unwrap();
    let (plan, _) = plan(&loaded.config);
    let timeouts: Vec<Duration> = plan.services[0]
        .reals
        .iter()
        .map(|r| r.checks[0].timeout)
        .collect();
    assert_eq!(
        timeouts,
        [Duration::from_secs(3), Duration::from_secs(7)],
        "misc_timeout, else the delay loop"
    );
}
