//! Real-time scheduling and locked memory, keepalived's remedies for short advert intervals
//! (`vrrp_rt_priority`, `vrrp_no_swap`).
//!
//! At a 10 ms interval a backup's Master_Down_Interval is about 36 ms, so a stall of a few tens
//! of milliseconds in either router's thread, common on a loaded machine under the default
//! scheduler, causes a spurious takeover. Run the driver's thread with [`set_realtime`] and,
//! for page faults, [`lock_memory`]. Both need `CAP_SYS_NICE` / `CAP_IPC_LOCK` (root).
// The one libc call nix does not wrap; each unsafe block says why it is sound.
#![allow(unsafe_code)]

use std::io;

use nix::libc;
use nix::sys::mman::{MlockAllFlags, mlockall};

/// Moves the calling thread (only it) to `SCHED_RR` at `priority` (1-99), as keepalived's
/// `vrrp_rt_priority` does for its VRRP process. `SCHED_RESET_ON_FORK` is set, so processes
/// started from the thread (notify scripts, `nft`) run under the normal scheduler. keepalived
/// also caps the real-time CPU time (`RLIMIT_RTTIME`, with a `SIGXCPU` handler); this does
/// not: the driver's loop blocks in `poll` at least every 20 ms.
pub fn set_realtime(priority: u8) -> io::Result<()> {
    if !(1..=99).contains(&priority) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "real-time priority must be 1-99",
        ));
    }
    let param = libc::sched_param {
        sched_priority: libc::c_int::from(priority),
    };
    // SAFETY: `param` is a valid, initialised sched_param that lives across the call, which
    // only reads it; pid 0 names the calling thread.
    let rc =
        unsafe { libc::sched_setscheduler(0, libc::SCHED_RR | libc::SCHED_RESET_ON_FORK, &param) };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Moves the calling thread back to the normal scheduler (`SCHED_OTHER`), as keepalived does
/// before a reload applies a new `vrrp_rt_priority`.
pub fn set_normal() -> io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: as in `set_realtime`: a valid sched_param, only read; pid 0 is this thread.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_OTHER, &param) };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Locks the process's pages in memory, present and future, each as it is first touched
/// (`mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT)`, keepalived's `vrrp_no_swap`), so the
/// driver never waits for a page to come back from swap.
pub fn lock_memory() -> io::Result<()> {
    let flags = MlockAllFlags::MCL_CURRENT
        | MlockAllFlags::MCL_FUTURE
        | MlockAllFlags::from_bits_retain(libc::MCL_ONFAULT);
    mlockall(flags).map_err(io::Error::from)
}

/// Unlocks the process's pages ([`lock_memory`] undone: `munlockall`).
pub fn unlock_memory() -> io::Result<()> {
    nix::sys::mman::munlockall().map_err(io::Error::from)
}

/// The calling thread's scheduling policy (`SCHED_OTHER`, `SCHED_RR`, ...), without the
/// reset-on-fork flag.
pub fn current_policy() -> io::Result<i32> {
    // SAFETY: no pointers; pid 0 names the calling thread.
    let policy = unsafe { libc::sched_getscheduler(0) };
    if policy == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(policy & !libc::SCHED_RESET_ON_FORK)
}
