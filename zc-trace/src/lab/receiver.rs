//! The receiving end: a thread of the lab process (never traced, and never
//! a child the tracing session's reaper could collect). It accepts one
//! connection, drains it with large reads, and counts and checksums what
//! arrived.

use std::{
    io::Read as _,
    net::TcpListener,
    os::fd::AsRawFd as _,
    sync::atomic::{AtomicBool, Ordering},
};

use anyhow::{Context as _, Result, bail};

use super::checksum::Hasher;

/// Bytes per read: large, so the receiver's own cost stays small.
const READ_SIZE: usize = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    pub bytes: u64,
    pub checksum: u64,
}

/// Accepts one connection on `listener` and drains it. Gives up once
/// `stop` is set and no connection is waiting (the sender failed before
/// connecting).
pub fn receive(listener: &TcpListener, stop: &AtomicBool) -> Result<Received> {
    loop {
        let stopping = stop.load(Ordering::Acquire);
        let mut pfd = libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, if stopping { 0 } else { 100 }) };
        if r > 0 {
            break;
        }
        if r < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return Err(std::io::Error::last_os_error()).context("receiver: poll");
        }
        if stopping {
            bail!("the sender never connected to the receiver");
        }
    }
    let (mut stream, _) = listener.accept().context("receiver: accept")?;
    let mut buf = vec![0u8; READ_SIZE];
    let mut h = Hasher::new();
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => h.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).context("receiver: read"),
        }
    }
    // Dropping the stream closes it: the sender, waiting for that, stops
    // its clock.
    Ok(Received {
        bytes: h.len(),
        checksum: h.finish(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::checksum::checksum;
    use std::io::Write as _;

    #[test]
    fn drains_counts_and_checksums() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = AtomicBool::new(false);
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let got = std::thread::scope(|s| {
            let h = s.spawn(|| receive(&listener, &stop));
            let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            for part in data.chunks(7777) {
                c.write_all(part).unwrap();
            }
            drop(c);
            h.join().unwrap()
        })
        .unwrap();
        assert_eq!(
            got,
            Received {
                bytes: data.len() as u64,
                checksum: checksum(&data)
            }
        );
    }

    #[test]
    fn gives_up_when_nobody_connects() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let stop = AtomicBool::new(true);
        let e = receive(&listener, &stop).unwrap_err();
        assert!(e.to_string().contains("never connected"), "{e}");
    }
}
