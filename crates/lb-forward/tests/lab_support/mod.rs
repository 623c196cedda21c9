//! The forwarder's lab tests: lb-lab's L4 lab (client, director, three reals) plus starting
//! the `forwarder` example in the director.

#![allow(dead_code, unreachable_pub, unused_imports)]

use std::io;

pub use lb_lab::l4::{Lab, Mode, Stream, VIP4, VIP6, skip, tally};

/// Starts the forwarder example in the lab's director.
pub trait StartForwarder {
    /// The forwarder with these arguments (after `--interface eth0`), once it says it is
    /// ready; its index in `Lab::procs`.
    fn forwarder(&mut self, args: &[&str]) -> io::Result<usize>;
}

impl StartForwarder for Lab {
    fn forwarder(&mut self, args: &[&str]) -> io::Result<usize> {
        let mut all = vec!["--interface", "eth0"];
        all.extend_from_slice(args);
        self.spawn_example(1, "forwarder", &all, Stream::Stderr, "ready")
    }
}
