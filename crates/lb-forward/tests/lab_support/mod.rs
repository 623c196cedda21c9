//! The forwarder's lab tests: lb-lab's L4 lab (client, director, three reals) plus starting
//! the `forwarder` example in the director and reading its statistics table.

#![allow(dead_code, unreachable_pub, unused_imports)]

use std::collections::HashMap;
use std::io;
use std::sync::mpsc::Receiver;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub use lb_lab::l4::{Lab, Mode, Stream, VIP4, VIP6, example, skip, tally};

/// The stdout lines of each forwarder, by pid.
fn outputs() -> &'static Mutex<HashMap<u32, Receiver<String>>> {
    static OUTPUTS: OnceLock<Mutex<HashMap<u32, Receiver<String>>>> = OnceLock::new();
    OUTPUTS.get_or_init(Mutex::default)
}

/// The forwarder example in the lab's director.
pub trait ForwarderLab {
    /// Starts it with these arguments (after `--interface eth0`), once it says it is ready
    /// (within 20 s); its index in `Lab::procs`.
    fn forwarder(&mut self, args: &[&str]) -> io::Result<usize>;

    /// The statistics table of forwarder `idx` (asked for with SIGUSR1), waiting up to 10 s.
    fn stats(&self, idx: usize) -> io::Result<String>;

    /// Packets in and out of forwarder `idx`'s service (its table's first service line).
    fn packets_in_out(&self, idx: usize) -> io::Result<(u64, u64)> {
        let table = self.stats(idx)?;
        let line = table
            .lines()
            .find(|l| l.starts_with("tcp:") || l.starts_with("udp:"))
            .ok_or_else(|| io::Error::other(format!("no service line: {table}")))?;
        let cols: Vec<&str> = line.split_whitespace().collect();
        let num = |i: usize| -> io::Result<u64> {
            cols.get(i)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| io::Error::other(format!("bad service line: {line}")))
        };
        Ok((num(2)?, num(3)?))
    }
}

impl ForwarderLab for Lab {
    fn forwarder(&mut self, args: &[&str]) -> io::Result<usize> {
        let mut all = vec!["--interface", "eth0"];
        all.extend_from_slice(args);
        let idx = self.spawn_example(1, "forwarder", &all, Stream::Stderr, "ready")?;
        let p = &mut self.procs[idx];
        let pid = p.pid();
        let stdout = p
            .child_mut()
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("no stdout"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        outputs()
            .lock()
            .map_err(|_| io::Error::other("poisoned"))?
            .insert(pid, rx);
        Ok(idx)
    }

    fn stats(&self, idx: usize) -> io::Result<String> {
        let p = &self.procs[idx];
        let outputs = outputs().lock().map_err(|_| io::Error::other("poisoned"))?;
        let rx = outputs
            .get(&p.pid())
            .ok_or_else(|| io::Error::other("not a forwarder"))?;
        while rx.try_recv().is_ok() {}
        p.signal("USR1")?;
        let mut table = String::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(line) => {
                    table.push_str(&line);
                    table.push('\n');
                    if line.starts_with("drops:") {
                        return Ok(table);
                    }
                }
                Err(_) => break,
            }
        }
        Err(io::Error::other(format!("no statistics table: {table}")))
    }
}
