//! Test support for the lb crates' network labs: several hosts on one machine.
//!
//! Each lab test builds its own network namespaces joined by veth pairs or a bridge, starts real
//! peers (keepalived, TCP servers, our examples) inside them, and tears everything down when the
//! guards drop, also when the test fails: namespaces are deleted, and processes are killed by the
//! pid we started, never by name. Names carry the test process's pid and a counter, so tests run
//! in parallel without colliding.
//!
//! Lab tests need root. Start each one with [`skip_unless_root`], which prints why it skips:
//!
//! ```no_run
//! # fn main() -> std::io::Result<()> {
//! if lb_lab::skip_unless_root("rfc9568_6_4_2_backup_takes_over") {
//!     return Ok(());
//! }
//! let lan = lb_lab::Lan::new("vr", 2)?; // two hosts on one bridge
//! let out = lan.hosts[0].ns.run(&["ping", "-c1", "-W1", &lan.hosts[1].ipv4.to_string()])?;
//! # Ok(()) }
//! ```

pub mod l4;
mod netns;
mod process;

pub use netns::{Host, Lan, Netns, enter_netns, ifname, veth};
pub use process::{Proc, wait_until};

/// `true` (after printing why) when the current user is not root, so the calling lab test should
/// return early. Also skips when `ip` is missing.
pub fn skip_unless_root(test: &str) -> bool {
    if !is_root() {
        eprintln!("skipping {test}: network namespace labs need root");
        return true;
    }
    if let Err(e) = require_tools(&["ip"]) {
        eprintln!("skipping {test}: {e}");
        return true;
    }
    false
}

/// Whether the effective user is root.
pub fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.trim_ascii() == b"0")
        .unwrap_or(false)
}

/// An error naming the first tool in `tools` not found on `PATH`.
pub fn require_tools(tools: &[&str]) -> Result<(), String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for tool in tools {
        if !std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()) {
            return Err(format!(
                "`{tool}` is not installed (scripts/test installs it as root)"
            ));
        }
    }
    Ok(())
}
