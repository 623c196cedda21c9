//! Processes a lab test starts, and waiting for conditions with a deadline.

use std::io;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A child process killed (SIGKILL, by its pid) and reaped when dropped.
#[derive(Debug)]
pub struct Proc {
    child: Child,
    exited: bool,
}

impl Proc {
    /// Spawns `cmd` and guards it.
    pub fn spawn(cmd: &mut Command) -> io::Result<Proc> {
        let child = cmd
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("spawning {cmd:?}: {e}")))?;
        Ok(Proc {
            child,
            exited: false,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (a name such as `TERM`, `KILL`, `HUP`) to this process only.
    pub fn signal(&self, signal: &str) -> io::Result<()> {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "kill -{signal} {} failed",
                self.pid()
            )))
        }
    }

    /// The underlying child, to take its stdout or stderr pipes.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Waits up to `timeout` for the process to exit; its exit status if it did.
    pub fn wait_timeout(
        &mut self,
        timeout: Duration,
    ) -> io::Result<Option<std::process::ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                self.exited = true;
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if !self.exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `cond` every `step` until it returns `Some` or `timeout` passes.
pub fn wait_until<T>(
    timeout: Duration,
    step: Duration,
    mut cond: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = cond() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(step);
    }
}
