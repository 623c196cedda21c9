//! Signals as flags, for the examples that run until they are told to stop.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// A flag that SIGTERM and SIGINT set (stop), and one that `other` sets (SIGUSR1: print the
/// statistics; SIGHUP: reload).
pub(crate) fn flags(other: i32) -> Result<(Arc<AtomicBool>, Arc<AtomicBool>), String> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::new(AtomicBool::new(false));
    for (signal, f) in [
        (signal_hook::consts::SIGTERM, &stop),
        (signal_hook::consts::SIGINT, &stop),
        (other, &flag),
    ] {
        signal_hook::flag::register(signal, Arc::clone(f))
            .map_err(|e| format!("signal handler: {e}"))?;
    }
    Ok((stop, flag))
}
