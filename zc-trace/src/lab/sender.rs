//! The traced half of the lab: `zc-trace lab-sender key=value ...`, a
//! separate process that sends the test file with one method.
//!
//! Every method, and the `noop` baseline, goes through the same steps so
//! that the baseline's calls are exactly the calls that are not the
//! transfer: allocate the chunk buffer, open the file and the copy
//! destination, make the pipe, connect and show the receiver the token,
//! [transfer], shut the connection
//! down and wait for the receiver to close it, write the fixed-size result
//! record, close everything. Only direct libc calls, so what is traced is
//! what is written here.

use std::{ffi::CString, os::unix::ffi::OsStrExt as _, path::PathBuf, time::Instant};

use anyhow::{Context as _, Result, bail};

use super::{
    measure::Timing,
    method::Method,
    receiver::{TOKEN_ENV, Token},
    ring,
};

/// The result record: 8 little-endian u64s, always the same length so the
/// baseline's write of it cancels exactly.
pub const RECORD_LEN: usize = 64;
const MAGIC: u64 = 0x7a63_6c61_6272_6573; // "zclabres"

/// What the lab tells the sender.
#[derive(Clone, Debug, PartialEq)]
pub struct SenderArgs {
    pub method: Method,
    pub file: PathBuf,
    /// copy_file_range's destination (created by every method).
    pub dest: PathBuf,
    pub port: u16,
    pub size: u64,
    pub chunk: u64,
    /// The pipe size to ask for (splice moves at most this much per call).
    pub pipe: u64,
    pub result: PathBuf,
}

impl SenderArgs {
    pub fn to_args(&self) -> Vec<String> {
        vec![
            format!("method={}", self.method.name()),
            format!("file={}", self.file.display()),
            format!("dest={}", self.dest.display()),
            format!("port={}", self.port),
            format!("size={}", self.size),
            format!("chunk={}", self.chunk),
            format!("pipe={}", self.pipe),
            format!("result={}", self.result.display()),
        ]
    }

    pub fn parse(args: &[String]) -> Result<Self> {
        let get = |key: &str| -> Result<String> {
            args.iter()
                .find_map(|a| a.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
                .map(str::to_owned)
                .with_context(|| {
                    format!("lab-sender: missing {key}= (this command is run by `zc-trace lab`)")
                })
        };
        let method = get("method")?;
        let num = |key: &str, v: String| -> Result<u64> {
            v.parse()
                .with_context(|| format!("lab-sender: {key}={v} is not a number"))
        };
        let a = SenderArgs {
            method: Method::parse(&method)
                .with_context(|| format!("lab-sender: unknown method {method}"))?,
            file: get("file")?.into(),
            dest: get("dest")?.into(),
            port: num("port", get("port")?)?
                .try_into()
                .context("lab-sender: port out of range")?,
            size: num("size", get("size")?)?,
            chunk: num("chunk", get("chunk")?)?,
            pipe: num("pipe", get("pipe")?)?,
            result: get("result")?.into(),
        };
        if a.chunk == 0 || a.size == 0 {
            bail!("lab-sender: size and chunk must be positive");
        }
        Ok(a)
    }
}

/// The pipe size for splice: as large as a chunk (so one splice moves a
/// whole chunk) if the kernel allows it, else the largest it allows
/// (`/proc/sys/fs/pipe-max-size` without CAP_SYS_RESOURCE). Found by trying
/// in the lab's own process, so the sender's one fcntl succeeds.
pub fn pipe_capacity(chunk: u64) -> u64 {
    let want = chunk.clamp(4096, 1 << 30);
    let max = std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    let mut fds = [0i32; 2];
    // SAFETY: a pipe of our own, closed below.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return 65536;
    }
    let mut got = 0;
    for size in [Some(want), max.map(|m| m.min(want))].into_iter().flatten() {
        // SAFETY: fcntl on our pipe.
        let r = unsafe { libc::fcntl(fds[1], libc::F_SETPIPE_SZ, size as i32) };
        if r > 0 {
            got = r as u64;
            break;
        }
    }
    if got == 0 {
        // SAFETY: as above.
        got = unsafe { libc::fcntl(fds[1], libc::F_GETPIPE_SZ) }.max(4096) as u64;
    }
    // SAFETY: closing our own fds.
    unsafe {
        libc::close(fds[0]);
        libc::close(fds[1]);
    }
    got
}

/// Encodes the sender's measurements.
pub fn encode(t: &Timing) -> [u8; RECORD_LEN] {
    let words = [MAGIC, 1, t.sent, t.transfer_ns, t.user_ns, t.sys_ns, 0, 0];
    let mut out = [0u8; RECORD_LEN];
    for (i, w) in words.iter().enumerate() {
        out[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
    }
    out
}

pub fn decode(b: &[u8]) -> Result<Timing> {
    if b.len() != RECORD_LEN {
        bail!(
            "the sender's result record is {} bytes, not {RECORD_LEN}",
            b.len()
        );
    }
    let w = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap());
    if w(0) != MAGIC || w(1) != 1 {
        bail!("the sender's result record is not one");
    }
    Ok(Timing {
        sent: w(2),
        transfer_ns: w(3),
        user_ns: w(4),
        sys_ns: w(5),
    })
}

fn os_err(what: &str) -> anyhow::Error {
    anyhow::anyhow!("lab-sender: {what}: {}", std::io::Error::last_os_error())
}

fn cpath(p: &std::path::Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes()).context("a path contains a NUL byte")
}

/// A return value of a libc call that returns -1 on error.
fn check(r: isize, what: &str) -> Result<usize> {
    if r < 0 {
        Err(os_err(what))
    } else {
        Ok(r as usize)
    }
}

pub fn main(args: &[String]) -> Result<u8> {
    let a = SenderArgs::parse(args)?;
    let token = std::env::var(TOKEN_ENV)
        .ok()
        .and_then(|hex| Token::from_hex(&hex))
        .with_context(|| {
            format!("lab-sender: no {TOKEN_ENV} (this command is run by `zc-trace lab`)")
        })?;
    let chunk = usize::try_from(a.chunk).context("chunk too large")?;
    // Allocated (and so counted) by every method, the baseline too.
    let mut buf = vec![0u8; chunk];

    let file = cpath(&a.file)?;
    let dest = cpath(&a.dest)?;
    let result = cpath(&a.result)?;
    // SAFETY: plain syscalls on valid C strings and our own fds throughout.
    unsafe {
        let src = check(
            libc::open(file.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) as isize,
            "open the test file",
        )? as i32;
        let dst = check(
            libc::open(
                dest.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
                0o600,
            ) as isize,
            "create the copy destination",
        )? as i32;
        let mut pipe = [0i32; 2];
        check(
            libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) as isize,
            "pipe2",
        )?;
        // The pipe size the lab found it can get (see `pipe_capacity`).
        let r = libc::fcntl(
            pipe[1],
            libc::F_SETPIPE_SZ,
            a.pipe.min(i32::MAX as u64) as i32,
        );
        let pipe_cap = if r > 0 { r as usize } else { 65536 };

        let sock = check(
            libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) as isize,
            "socket",
        )? as i32;
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: a.port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
            },
            sin_zero: [0; 8],
        };
        check(
            libc::connect(
                sock,
                &addr as *const libc::sockaddr_in as *const libc::sockaddr,
                size_of::<libc::sockaddr_in>() as libc::socklen_t,
            ) as isize,
            "connect to the receiver",
        )?;
        // Proves to the receiver that this connection is the sender's.
        write_all(sock, token.bytes())?;

        // Every method sets up a ring, so the baseline's calls include its
        // set-up; only the io_uring methods need one to exist.
        let mut ring = ring::new_ring();
        let fds = Fds {
            src,
            dst,
            pipe,
            sock,
            pipe_cap,
        };
        let ru0 = rusage();
        let t0 = Instant::now(); // vDSO: no syscall
        let sent = match (&mut ring, a.method.uses_io_uring()) {
            (Ok(ring), true) => ring_transfer(ring, a.method, &fds, a.size, &mut buf)?,
            (Err(e), true) => bail!(
                "lab-sender: cannot set up an io_uring ({e}): is io_uring disabled (sysctl kernel.io_uring_disabled)?"
            ),
            (_, false) => transfer(a.method, &fds, a.size, &mut buf)?,
        };
        // Hand the end of the stream over, and wait until the receiver has
        // drained it all and closed: the time is end to end.
        check(libc::shutdown(sock, libc::SHUT_WR) as isize, "shutdown")?;
        let mut one = [0u8; 1];
        let n = check(
            libc::read(sock, one.as_mut_ptr().cast(), 1),
            "wait for the receiver",
        )?;
        if n != 0 {
            bail!("lab-sender: the receiver sent data back");
        }
        let transfer_ns = t0.elapsed().as_nanos() as u64;
        let ru1 = rusage();

        let record = encode(&Timing {
            sent,
            transfer_ns,
            user_ns: ru1.0.saturating_sub(ru0.0),
            sys_ns: ru1.1.saturating_sub(ru0.1),
        });
        let out = check(
            libc::open(
                result.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
                0o600,
            ) as isize,
            "create the result file",
        )? as i32;
        let n = check(
            libc::write(out, record.as_ptr().cast(), RECORD_LEN),
            "write the result",
        )?;
        if n != RECORD_LEN {
            bail!("lab-sender: short write of the result record");
        }
        for fd in [out, sock, pipe[0], pipe[1], dst, src] {
            libc::close(fd);
        }
        drop(ring);
    }
    Ok(0)
}

struct Fds {
    src: i32,
    dst: i32,
    pipe: [i32; 2],
    sock: i32,
    pipe_cap: usize,
}

/// (user, system) CPU time of this process so far, in ns.
fn rusage() -> (u64, u64) {
    // SAFETY: getrusage fills the struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let ns = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1000;
    (ns(ru.ru_utime), ns(ru.ru_stime))
}

/// Writes all of `data` to `fd` (a short write is finished by more calls,
/// which then show in the counts).
unsafe fn write_all(fd: i32, mut data: &[u8]) -> Result<()> {
    while !data.is_empty() {
        // SAFETY: data is valid for data.len() bytes.
        let r = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
        match r {
            r if r > 0 => data = &data[r as usize..],
            0 => bail!("lab-sender: write returned 0"),
            _ if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {}
            _ => return Err(os_err("write to the socket")),
        }
    }
    Ok(())
}

/// Retries a call interrupted by a signal; fails on any other error or on
/// a premature end (0).
fn call(what: &str, mut f: impl FnMut() -> isize) -> Result<usize> {
    loop {
        let r = f();
        if r > 0 {
            return Ok(r as usize);
        }
        if r == 0 {
            bail!("lab-sender: {what} returned 0 before the end of the file");
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            bail!("lab-sender: {what}: {e}");
        }
    }
}

/// An io_uring method; returns the bytes it handed over.
unsafe fn ring_transfer(
    ring: &mut io_uring::IoUring,
    method: Method,
    f: &Fds,
    size: u64,
    buf: &mut [u8],
) -> Result<u64> {
    match method {
        Method::UringReadSend => ring::read_send(ring, f.src, f.sock, size, buf),
        Method::UringSplice => ring::splice(
            ring,
            f.src,
            f.pipe,
            f.sock,
            size,
            (buf.len() as u64).min(f.pipe_cap as u64),
        ),
        // SAFETY: a read-only mapping of the file, unmapped once every
        // notification has arrived.
        Method::UringSendZc => unsafe {
            with_mapping(f.src, size, |data| {
                ring::send_zc(ring, f.sock, data, buf.len())
            })
        },
        _ => bail!("lab-sender: {} is not an io_uring method", method.label()),
    }
}

/// The method itself; returns the bytes it handed over.
unsafe fn transfer(method: Method, f: &Fds, size: u64, buf: &mut [u8]) -> Result<u64> {
    let chunk = buf.len() as u64;
    let next = |done: u64| (size - done).min(chunk) as usize;
    let mut done = 0u64;
    // SAFETY (whole body): syscalls on our fds with buffers of the stated
    // lengths; the mapping is read only within its length.
    unsafe {
        match method {
            Method::Noop => {}
            Method::UringReadSend | Method::UringSendZc | Method::UringSplice => {
                bail!("lab-sender: {} needs its ring", method.label())
            }
            Method::ReadWrite => {
                while done < size {
                    let want = next(done);
                    let n = call("read", || libc::read(f.src, buf.as_mut_ptr().cast(), want))?;
                    write_all(f.sock, &buf[..n])?;
                    done += n as u64;
                }
            }
            Method::ReadvWritev => {
                while done < size {
                    let want = next(done);
                    let iov = libc::iovec {
                        iov_base: buf.as_mut_ptr().cast(),
                        iov_len: want,
                    };
                    let n = call("readv", || libc::readv(f.src, &iov, 1))?;
                    let mut off = 0;
                    while off < n {
                        let iov = libc::iovec {
                            iov_base: buf.as_mut_ptr().add(off).cast(),
                            iov_len: n - off,
                        };
                        off += call("writev", || libc::writev(f.sock, &iov, 1))?;
                    }
                    done += n as u64;
                }
            }
            Method::MmapWrite => {
                done = with_mapping(f.src, size, |data| {
                    for piece in data.chunks(chunk as usize) {
                        write_all(f.sock, piece)?;
                    }
                    Ok(size)
                })?;
            }
            Method::MmapZerocopy => {
                done = with_mapping(f.src, size, |data| send_zerocopy(f.sock, data, chunk))?;
            }
            Method::Sendfile => {
                let mut off: libc::off_t = 0;
                while done < size {
                    let want = next(done);
                    done +=
                        call("sendfile", || libc::sendfile(f.sock, f.src, &mut off, want))? as u64;
                }
            }
            Method::Splice => {
                let mut off: libc::loff_t = 0;
                while done < size {
                    let want = next(done).min(f.pipe_cap);
                    let n = call("splice file -> pipe", || {
                        libc::splice(
                            f.src,
                            &mut off,
                            f.pipe[1],
                            std::ptr::null_mut(),
                            want,
                            libc::SPLICE_F_MOVE,
                        )
                    })?;
                    let mut left = n;
                    while left > 0 {
                        let m = call("splice pipe -> socket", || {
                            libc::splice(
                                f.pipe[0],
                                std::ptr::null_mut(),
                                f.sock,
                                std::ptr::null_mut(),
                                left,
                                libc::SPLICE_F_MOVE,
                            )
                        })?;
                        left -= m;
                    }
                    done += n as u64;
                }
            }
            Method::CopyFileRange => {
                let (mut off_in, mut off_out): (libc::loff_t, libc::loff_t) = (0, 0);
                while done < size {
                    let want = next(done);
                    done += call("copy_file_range", || {
                        libc::copy_file_range(f.src, &mut off_in, f.dst, &mut off_out, want, 0)
                            as isize
                    })? as u64;
                }
            }
        }
    }
    Ok(done)
}

/// Runs `send` on a read-only shared mapping of the first `size` bytes of
/// `fd`, unmapped afterwards.
unsafe fn with_mapping(fd: i32, size: u64, send: impl FnOnce(&[u8]) -> Result<u64>) -> Result<u64> {
    let len = usize::try_from(size).context("the test file is too large to map")?;
    // SAFETY: a new mapping of our fd, read only within its length, and
    // unmapped after its last use.
    unsafe {
        let map = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            fd,
            0,
        );
        if map == libc::MAP_FAILED {
            return Err(os_err("mmap the test file"));
        }
        let r = send(std::slice::from_raw_parts(map as *const u8, len));
        libc::munmap(map, len);
        r
    }
}

// include/uapi/linux/errqueue.h
const SO_EE_ORIGIN_ZEROCOPY: u8 = 5;
/// How long the sender waits for a completion notification before it
/// gives up (they come as soon as the receiver's socket has the data).
const NOTIFICATION_WAIT_MS: i32 = 30_000;

/// Sends `data` with MSG_ZEROCOPY in `chunk`-byte calls on an SO_ZEROCOPY
/// socket, and reads the completion notifications until every call is
/// acknowledged (a program must: the pages stay pinned until then, and
/// the kernel refuses more with ENOBUFS when too many are outstanding).
unsafe fn send_zerocopy(sock: i32, data: &[u8], chunk: u64) -> Result<u64> {
    let one: libc::c_int = 1;
    // SAFETY (whole body): syscalls on our socket with buffers of the
    // stated lengths.
    unsafe {
        check(
            libc::setsockopt(
                sock,
                libc::SOL_SOCKET,
                libc::SO_ZEROCOPY,
                (&one as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            ) as isize,
            "setsockopt(SO_ZEROCOPY)",
        )?;
        let (mut calls, mut acked) = (0u64, 0u64);
        for piece in data.chunks(chunk as usize) {
            let mut off = 0;
            while off < piece.len() {
                let rest = &piece[off..];
                let r = libc::send(sock, rest.as_ptr().cast(), rest.len(), libc::MSG_ZEROCOPY);
                if r > 0 {
                    calls += 1;
                    off += r as usize;
                    continue;
                }
                match std::io::Error::last_os_error().raw_os_error() {
                    Some(libc::ENOBUFS) => acked += read_completion(sock)?,
                    Some(libc::EINTR) => {}
                    _ => return Err(os_err("send with MSG_ZEROCOPY")),
                }
            }
        }
        while acked < calls {
            acked += read_completion(sock)?;
        }
    }
    Ok(data.len() as u64)
}

/// Waits for the next zero-copy completion on `sock`'s error queue; the
/// number of send calls it acknowledges.
unsafe fn read_completion(sock: i32) -> Result<u64> {
    // SAFETY (whole body): poll and recvmsg on our socket into buffers of
    // the stated lengths; the cmsg is read within the control buffer.
    unsafe {
        let mut p = libc::pollfd {
            fd: sock,
            events: 0,
            revents: 0,
        };
        if libc::poll(&mut p, 1, NOTIFICATION_WAIT_MS) == 0 {
            bail!("lab-sender: no MSG_ZEROCOPY completion within {NOTIFICATION_WAIT_MS} ms");
        }
        let mut control = [0u64; 16];
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = size_of_val(&control);
        if libc::recvmsg(sock, &mut msg, libc::MSG_ERRQUEUE) < 0 {
            return match std::io::Error::last_os_error().raw_os_error() {
                Some(libc::EAGAIN | libc::EINTR) => Ok(0),
                _ => Err(os_err("recvmsg(MSG_ERRQUEUE)")),
            };
        }
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null() {
            return Ok(0);
        }
        let ee = (libc::CMSG_DATA(cmsg) as *const libc::sock_extended_err).read_unaligned();
        if ee.ee_origin != SO_EE_ORIGIN_ZEROCOPY {
            bail!("lab-sender: an error on the socket: errno {}", ee.ee_errno);
        }
        Ok(u64::from(ee.ee_data.wrapping_sub(ee.ee_info)) + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_round_trip() {
        let a = SenderArgs {
            method: Method::Splice,
            file: "/tmp/x y/data".into(),
            dest: "/tmp/x y/copy".into(),
            port: 40000,
            size: 4 << 20,
            chunk: 65536,
            pipe: 65536,
            result: "/tmp/r".into(),
        };
        assert_eq!(SenderArgs::parse(&a.to_args()).unwrap(), a);
        let mut bad = a.to_args();
        bad.retain(|s| !s.starts_with("port="));
        assert!(
            SenderArgs::parse(&bad)
                .unwrap_err()
                .to_string()
                .contains("port=")
        );
    }

    #[test]
    fn pipes_hold_a_chunk_up_to_what_the_kernel_allows() {
        assert!(pipe_capacity(65536) >= 65536);
        assert!(pipe_capacity(1000) >= 4096);
        let big = pipe_capacity(64 << 20);
        assert!((4096..=64 << 20).contains(&big), "{big}");
    }

    #[test]
    fn record_round_trip() {
        let t = Timing {
            sent: 5,
            transfer_ns: 6,
            user_ns: 7,
            sys_ns: 8,
        };
        let rec = encode(&t);
        assert_eq!(decode(&rec).unwrap(), t);
        assert!(decode(&rec[..10]).is_err());
        assert!(decode(&[0u8; RECORD_LEN]).is_err());
    }
}
