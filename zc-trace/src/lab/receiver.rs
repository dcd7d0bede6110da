//! The receiving end: a thread of the lab process (never traced, and never
//! a child the tracing session's reaper could collect). It accepts one
//! connection, drains it with large reads, and counts and checksums what
//! arrived.

use std::{
    io::Read as _,
    net::{TcpListener, TcpStream},
    os::fd::AsRawFd as _,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
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

/// The secret the sender writes first on its connection. Any local user
/// can connect to a loopback port; only the sender knows this.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Token([u8; TOKEN_LEN]);

pub const TOKEN_LEN: usize = 16;
/// The environment variable that hands the token to the sender.
pub const TOKEN_ENV: &str = "ZC_TRACE_LAB_TOKEN";
/// How long a connection may take to show the token before it is dropped.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(5);

impl Token {
    pub fn new() -> Result<Self> {
        let mut b = [0u8; TOKEN_LEN];
        // SAFETY: getrandom fills at most b.len() bytes of b.
        let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
        if n != TOKEN_LEN as isize {
            return Err(std::io::Error::last_os_error()).context("getrandom for the lab's token");
        }
        Ok(Self(b))
    }

    pub fn to_hex(self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn from_hex(s: &str) -> Option<Self> {
        let mut b = [0u8; TOKEN_LEN];
        if s.len() != 2 * TOKEN_LEN {
            return None;
        }
        for (i, byte) in b.iter_mut().enumerate() {
            *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Self(b))
    }

    pub fn bytes(&self) -> &[u8; TOKEN_LEN] {
        &self.0
    }
}

/// Accepts the sender's connection on `listener` and drains it. Gives up
/// once `stop` is set and the sender's connection is not waiting (the
/// sender failed before connecting).
pub fn receive(listener: &TcpListener, token: &Token, stop: &AtomicBool) -> Result<Received> {
    let mut stream = accept_sender(listener, token, stop)?;
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

/// A connection that has not yet shown the token.
struct Caller {
    stream: TcpStream,
    got: Vec<u8>,
    since: Instant,
}

/// What reading from a caller showed.
enum Hello {
    Sender,
    Waiting,
    Stranger,
}

impl Caller {
    fn read_hello(&mut self, token: &Token) -> Hello {
        let mut buf = [0u8; TOKEN_LEN];
        let want = TOKEN_LEN - self.got.len();
        match self.stream.read(&mut buf[..want]) {
            Ok(0) => return Hello::Stranger,
            Ok(n) => self.got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Hello::Stranger,
        }
        if !token.bytes().starts_with(&self.got) {
            Hello::Stranger
        } else if self.got.len() == TOKEN_LEN {
            Hello::Sender
        } else if self.since.elapsed() > TOKEN_TIMEOUT {
            Hello::Stranger
        } else {
            Hello::Waiting
        }
    }
}

/// Accepts connections until one opens with the token; every other one
/// (another user's, connected first to hang the lab) is closed, and none
/// may hold the receiver longer than TOKEN_TIMEOUT.
fn accept_sender(listener: &TcpListener, token: &Token, stop: &AtomicBool) -> Result<TcpStream> {
    listener
        .set_nonblocking(true)
        .context("receiver: non-blocking listener")?;
    let mut callers: Vec<Caller> = Vec::new();
    loop {
        let stopping = stop.load(Ordering::Acquire);
        loop {
            match listener.accept() {
                Ok((stream, _)) => {
                    stream
                        .set_nonblocking(true)
                        .context("receiver: non-blocking socket")?;
                    callers.push(Caller {
                        stream,
                        got: Vec::new(),
                        since: Instant::now(),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e).context("receiver: accept"),
            }
        }
        let mut i = 0;
        while i < callers.len() {
            match callers[i].read_hello(token) {
                Hello::Sender => {
                    let stream = callers.swap_remove(i).stream;
                    stream
                        .set_nonblocking(false)
                        .context("receiver: blocking socket")?;
                    return Ok(stream);
                }
                Hello::Waiting => i += 1,
                Hello::Stranger => drop(callers.swap_remove(i)),
            }
        }
        if stopping {
            bail!("the sender never connected to the receiver");
        }
        wait_readable(listener, &callers)?;
    }
}

/// Waits (at most 100 ms, so `stop` is seen) for a new connection or data
/// from a caller.
fn wait_readable(listener: &TcpListener, callers: &[Caller]) -> Result<()> {
    let mut fds: Vec<libc::pollfd> = std::iter::once(listener.as_raw_fd())
        .chain(callers.iter().map(|c| c.stream.as_raw_fd()))
        .map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: fds.len() valid pollfds.
    let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 100) };
    if r < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
        return Err(std::io::Error::last_os_error()).context("receiver: poll");
    }
    Ok(())
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
        let token = Token::new().unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let got = std::thread::scope(|s| {
            // Strangers first: one silent, one with a wrong token, one gone.
            let silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
            let mut wrong = TcpStream::connect(("127.0.0.1", port)).unwrap();
            wrong.write_all(&[0u8; TOKEN_LEN]).unwrap();
            drop(TcpStream::connect(("127.0.0.1", port)).unwrap());
            let h = s.spawn(|| receive(&listener, &token, &stop));
            let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
            c.write_all(token.bytes()).unwrap();
            for part in data.chunks(7777) {
                c.write_all(part).unwrap();
            }
            drop(c);
            let got = h.join().unwrap();
            drop((silent, wrong));
            got
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
    fn tokens_round_trip_through_hex() {
        let t = Token::new().unwrap();
        assert_eq!(Token::from_hex(&t.to_hex()), Some(t));
        assert_eq!(Token::from_hex("zz"), None);
    }

    #[test]
    fn gives_up_when_nobody_connects() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let stop = AtomicBool::new(true);
        let e = receive(&listener, &Token::new().unwrap(), &stop).unwrap_err();
        assert!(e.to_string().contains("never connected"), "{e}");
    }
}
