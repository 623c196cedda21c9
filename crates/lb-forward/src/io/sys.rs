//! Packet socket options the safe socket crates do not wrap.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::RawFd;

/// Sets an integer socket option.
pub(crate) fn set_int_option(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `fd` is an open socket owned by the caller for the duration of the call; the
    // option value points to a live c_int and the length given is its size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const libc::c_int).cast(),
            core::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Reads an integer socket option.
pub(crate) fn get_int_option(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = core::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `fd` is an open socket owned by the caller; the value and length pointers refer
    // to live locals of the sizes given, which the kernel writes at most.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            (&mut value as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets a socket option whose value is a plain C struct.
pub(crate) fn set_struct_option<T: Copy>(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: `fd` is an open socket owned by the caller; the value pointer comes from a live
    // reference to a `Copy` (plain data) value and the length is its size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast(),
            core::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Asks a packet socket not to receive the frames it (or anyone on the host) sends
/// (`PACKET_IGNORE_OUTGOING`, Linux 4.20) and to bypass the qdisc layer on send
/// (`PACKET_QDISC_BYPASS`).
pub(crate) fn packet_socket_options(fd: RawFd) -> io::Result<()> {
    set_int_option(fd, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, 1)?;
    set_int_option(fd, libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, 1)
}

/// Maps the `len`-byte packet ring the kernel allocated for `fd` (`PACKET_RX_RING` or
/// `PACKET_TX_RING`), shared and writable; the caller unmaps it.
pub(crate) fn map_shared(fd: RawFd, len: usize) -> io::Result<*mut u8> {
    // SAFETY: a fresh shared mapping of the ring the kernel just allocated for `fd`, at an
    // address of the kernel's choice; the result is checked for MAP_FAILED.
    let map = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            0,
        )
    };
    if map == libc::MAP_FAILED {
        Err(io::Error::last_os_error())
    } else {
        Ok(map.cast())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn options_on_a_udp_socket_fail_cleanly() {
        // A UDP socket has no packet options: the call must fail with an error, not crash.
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(packet_socket_options(s.as_raw_fd()).is_err());
        // SO_REUSEADDR exists on every socket.
        set_int_option(s.as_raw_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, 1).unwrap();
    }
}
