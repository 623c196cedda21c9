//! `io::Driver` over a backend whose sends fail: frames it could not send are counted as
//! `not sent`, a failure a link going down explains does not stop it, any other does. (The
//! real backends' behaviour on a link that is down is checked in `io_backends.rs`.)

mod support;

use std::io;
use std::time::Duration;

use lb_forward::io::{Driver, PacketIo};
use lb_forward::*;
use lb_sched::Algorithm;
use support::*;

/// Receives `frames` once, then nothing; every send fails with `errno`.
struct FailingSends {
    frames: Vec<Frame>,
    errno: i32,
}

impl PacketIo for FailingSends {
    fn recv_batch(&mut self, out: &mut [Frame], _: Option<Duration>) -> io::Result<usize> {
        let n = self.frames.len().min(out.len());
        for (slot, frame) in out.iter_mut().zip(self.frames.drain(..n)) {
            *slot = frame;
        }
        Ok(n)
    }

    fn send_batch(&mut self, _: &[Frame], _: &[bool]) -> io::Result<usize> {
        Err(io::Error::from_raw_os_error(self.errno))
    }

    fn name(&self) -> &'static str {
        "failing sends"
    }
}

fn driver(errno: i32) -> Driver {
    let mut fw = forwarder(Settings::default());
    service(
        &mut fw,
        Protocol::Udp,
        "10.0.0.100:53",
        pool(Algorithm::Rr),
        &[("10.0.0.3:0", Method::Dr), ("10.0.0.4:0", Method::Dr)],
    );
    let frames = (0..3)
        .map(|i| {
            udp_in(
                &format!("10.0.0.1:{}", 5000 + i),
                "10.0.0.100:53",
                b"q",
                true,
            )
        })
        .collect();
    Driver::new(fw, Box::new(FailingSends { frames, errno }), 8)
}

#[test]
fn a_link_going_down_is_counted_and_passed_over() {
    const ENETDOWN: i32 = 100;
    let mut d = driver(ENETDOWN);
    assert_eq!(d.poll(Some(Duration::ZERO)).unwrap(), 3);
    let fw = d.forwarder();
    assert_eq!(fw.stats().drops(DropReason::NotSent), 3);
    assert_eq!(fw.status()[0].counters.conns, 3);
}

#[test]
fn other_send_errors_stop_the_driver() {
    const EBADF: i32 = 9;
    let mut d = driver(EBADF);
    assert_eq!(
        d.poll(Some(Duration::ZERO)).unwrap_err().raw_os_error(),
        Some(EBADF)
    );
}
