//! A program whose syscalls are known exactly, for the end-to-end tests.
//!
//! Each scenario makes exactly the calls `zc_trace_tests::expected` lists, on
//! fds of the listed kinds, each moving exactly `--size` bytes; a call that
//! moves fewer is a failure (exit 1 and a message on stderr), never retried,
//! so a test fails instead of miscounting. On success nothing is printed
//! (printing is a write).
//!
//! `#![no_main]`: Rust's runtime set-up would add calls of its own (it polls
//! fds 0-2, changes SIGPIPE and reads /proc/self/maps for the main thread's
//! stack guard, a read on a regular file). Everything measured goes through
//! `libc` directly, never through std's I/O. Threads come from std; they add
//! mmap/mprotect/clone3/futex/madvise calls, none of them on an fd, and the
//! same number in every run (see the mallopt in `main`).
//!
//! Check a scenario with `strace -f zc-workload <scenario> ...`.
#![no_main]

use std::ffi::{CStr, CString, c_char, c_int};
use std::io::Error;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use zc_trace_tests::{
    ALL_PARTS, MAX_MMSG, MAX_UDP, PIPE_CAPACITY, fill_pattern, pattern_mismatch, write_input_file,
};

type Res<T = ()> = Result<T, String>;

const USAGE: &str = "usage: zc-workload <scenario> [--count N] [--size K] [--file PATH] \
[--file2 PATH] [--threads T] [--report-time FILE] [--cpu C]
scenarios: noop file-read file-pread pipe socket udp sendfile splice mmap-write
  copy-file-range fork threads errors all sleep, 'wait-signal <scenario>',
  uring-send-zc, uring-send-zc-unreported (count x io_uring SEND_ZC over TCP
  loopback, with and without IORING_SEND_ZC_REPORT_USAGE),
  make-input (writes a pattern input file of count*size bytes to --file)
timed scenarios (for `cargo xtask bench`; --report-time FILE writes the
  nanoseconds of the measured loop to FILE, --cpu C pins the process, its
  threads and children to CPU C): pingpong bulk-copy sendfile-loop threads-rw";

/// The scenarios `cargo xtask bench` times. They are not in
/// `zc_trace_tests::expected` (they are timed, not counted), and they are
/// the only ones that take `--report-time` and `--cpu`.
const TIMED: &[&str] = &[
    "pingpong",
    "bulk-copy",
    "sendfile-loop",
    "threads-rw",
    "getppid-loop",
];

/// Blocking socket calls give up after this long instead of hanging a test
/// when the other side failed.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
const PAGE: usize = 4096;
/// Default pipe capacity in pages.
const PIPE_PAGES: usize = 16;

/// # Safety
/// Called by the C runtime with `argc` valid strings in `argv`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn main(argc: c_int, argv: *const *const c_char) -> c_int {
    // One malloc arena for all threads. Otherwise a thread's first malloc
    // may map a new 64 MiB arena (an mmap and one or two munmaps) or reuse
    // the arena a finished thread left, depending on timing: mmap/munmap
    // counts would change from run to run (and differ under strace, which
    // slows threads down). mallopt makes no syscall.
    // SAFETY: called before any thread exists.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    let args: Vec<String> = (1..argc.max(1) as usize)
        // SAFETY: the C runtime passes argc valid NUL-terminated strings.
        .map(|i| {
            unsafe { CStr::from_ptr(*argv.add(i)) }
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    match std::panic::catch_unwind(|| run(&args)) {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            eprintln!("zc-workload: {e}");
            1
        }
        // The panic hook already printed the message.
        Err(_) => 1,
    }
}

struct Opts {
    count: u64,
    size: usize,
    file: Option<CString>,
    file2: Option<CString>,
    threads: u64,
    /// Timed scenarios only: where to write the measured loop's nanoseconds.
    report_time: Option<CString>,
    /// Timed scenarios only: the CPU to pin to.
    cpu: Option<usize>,
}

impl Opts {
    fn file(&self) -> Res<&CString> {
        self.file
            .as_ref()
            .ok_or_else(|| "this scenario needs --file".to_string())
    }

    fn file2(&self) -> Res<&CString> {
        self.file2
            .as_ref()
            .ok_or_else(|| "this scenario needs --file2".to_string())
    }

    fn total(&self) -> usize {
        self.count as usize * self.size
    }
}

fn run(args: &[String]) -> Res {
    let Some(first) = args.first() else {
        return Err(USAGE.into());
    };
    let (scenario, inner, rest) = if first == "wait-signal" {
        let inner = args.get(1).ok_or("wait-signal needs an inner scenario")?;
        (first.as_str(), Some(inner.as_str()), &args[2..])
    } else {
        (first.as_str(), None, &args[1..])
    };
    let opts = parse_opts(rest)?;
    if (opts.report_time.is_some() || opts.cpu.is_some())
        && !TIMED.contains(&inner.unwrap_or(scenario))
    {
        return Err(format!(
            "--report-time and --cpu are for the timed scenarios only ({})",
            TIMED.join(" ")
        ));
    }
    if let Some(cpu) = opts.cpu {
        pin_to(cpu)?;
    }
    match inner {
        Some(inner) => {
            scenario_fn(inner)?;
            wait_for_sigusr1()?;
            scenario_fn(inner)?(&opts)
        }
        None => scenario_fn(scenario)?(&opts),
    }
}

fn parse_opts(rest: &[String]) -> Res<Opts> {
    let mut o = Opts {
        count: 16,
        size: 4096,
        file: None,
        file2: None,
        threads: 2,
        report_time: None,
        cpu: None,
    };
    let mut it = rest.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        let num = |v: &String| v.parse::<u64>().map_err(|e| format!("{flag} {v}: {e}"));
        match flag.as_str() {
            "--count" => o.count = num(value()?)?,
            "--size" => o.size = num(value()?)? as usize,
            "--threads" => o.threads = num(value()?)?,
            "--file" => o.file = Some(cstring(value()?)?),
            "--file2" => o.file2 = Some(cstring(value()?)?),
            "--report-time" => o.report_time = Some(cstring(value()?)?),
            "--cpu" => o.cpu = Some(num(value()?)? as usize),
            _ => return Err(format!("unknown option {flag}\n{USAGE}")),
        }
    }
    if o.size == 0 {
        return Err("--size must be at least 1".into());
    }
    Ok(o)
}

fn cstring(s: &str) -> Res<CString> {
    CString::new(s).map_err(|_| format!("NUL in {s:?}"))
}

fn scenario_fn(name: &str) -> Res<fn(&Opts) -> Res> {
    Ok(match name {
        "noop" => noop,
        "file-read" => file_read,
        "file-pread" => file_pread,
        "pipe" => pipe_rw,
        "socket" => tcp,
        "udp" => udp,
        "sendfile" => sendfile,
        "splice" => splice,
        "mmap-write" => mmap_write,
        "copy-file-range" => copy_file_range,
        "fork" => fork,
        "threads" => threads,
        "errors" => errors,
        "sleep" => sleep,
        "uring-send-zc" => uring_send_zc_reported,
        "uring-send-zc-unreported" => uring_send_zc_unreported,
        "all" => all,
        "make-input" => make_input,
        "pingpong" => pingpong,
        "bulk-copy" => bulk_copy,
        "sendfile-loop" => sendfile_loop,
        "threads-rw" => threads_rw,
        "getppid-loop" => getppid_loop,
        _ => return Err(format!("unknown scenario {name:?}\n{USAGE}")),
    })
}

// ---------------------------------------------------------------- helpers

fn os_err(what: &str) -> String {
    format!("{what}: {}", Error::last_os_error())
}

/// Checks that a transfer call moved exactly `want` bytes.
fn full(ret: isize, want: usize, what: &str) -> Res {
    if ret < 0 {
        return Err(os_err(what));
    }
    if ret as usize != want {
        return Err(format!("{what}: short transfer, {ret} of {want} bytes"));
    }
    Ok(())
}

/// Checks a non-transfer call's return value.
fn ok(ret: c_int, what: &str) -> Res<c_int> {
    if ret < 0 { Err(os_err(what)) } else { Ok(ret) }
}

fn verify(buf: &[u8], start: u64, what: &str) -> Res {
    match pattern_mismatch(buf, start) {
        None => Ok(()),
        Some(off) => Err(format!("{what}: wrong data at stream offset {off}")),
    }
}

fn pattern(len: usize, start: u64) -> Vec<u8> {
    let mut v = vec![0u8; len];
    fill_pattern(&mut v, start);
    v
}

/// An fd closed on drop.
struct Fd(c_int);

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: the fd is owned by this value.
        unsafe { libc::close(self.0) };
    }
}

fn open(path: &CStr, flags: c_int) -> Res<Fd> {
    // SAFETY: path is NUL-terminated.
    let fd = unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC, 0o644) };
    ok(fd, &format!("open {path:?}")).map(Fd)
}

/// Opens the input file and checks it holds at least `len` bytes (mmap
/// beyond the end would fault, reads would come up short).
fn open_input(o: &Opts, len: usize) -> Res<Fd> {
    let fd = open(o.file()?, libc::O_RDONLY)?;
    // SAFETY: st is a plain struct the kernel fills.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    ok(unsafe { libc::fstat(fd.0, &mut st) }, "fstat --file")?;
    if (st.st_size as u64) < len as u64 {
        return Err(format!(
            "--file has {} bytes, the scenario needs {len} (count*size); \
             create it with `zc-workload make-input --file PATH --count N --size K`",
            st.st_size
        ));
    }
    Ok(fd)
}

fn pipe(flags: c_int) -> Res<(Fd, Fd)> {
    let mut p = [0 as c_int; 2];
    // SAFETY: p has room for two fds.
    ok(
        unsafe { libc::pipe2(p.as_mut_ptr(), flags | libc::O_CLOEXEC) },
        "pipe2",
    )?;
    Ok((Fd(p[0]), Fd(p[1])))
}

fn setsockopt<T>(fd: c_int, level: c_int, name: c_int, val: &T, what: &str) -> Res {
    // SAFETY: val points to a T of the given size.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (val as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    ok(r, what).map(drop)
}

fn set_timeouts(fd: c_int) -> Res {
    let tv = libc::timeval {
        tv_sec: IO_TIMEOUT.as_secs() as libc::time_t,
        tv_usec: 0,
    };
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv, "SO_RCVTIMEO")?;
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_SNDTIMEO, &tv, "SO_SNDTIMEO")
}

fn loopback(port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(std::net::Ipv4Addr::LOCALHOST).to_be(),
        },
        sin_zero: [0; 8],
    }
}

fn socket(ty: c_int) -> Res<Fd> {
    // SAFETY: plain syscall.
    let fd = unsafe { libc::socket(libc::AF_INET, ty | libc::SOCK_CLOEXEC, 0) };
    let fd = Fd(ok(fd, "socket")?);
    set_timeouts(fd.0)?;
    Ok(fd)
}

/// Binds `fd` to 127.0.0.1 on an ephemeral port and returns the address.
fn bind_loopback(fd: c_int) -> Res<libc::sockaddr_in> {
    let mut addr = loopback(0);
    let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: addr is a sockaddr_in of length len.
    unsafe {
        ok(libc::bind(fd, (&raw const addr).cast(), len), "bind")?;
        ok(
            libc::getsockname(fd, (&raw mut addr).cast(), &mut len),
            "getsockname",
        )?;
    }
    Ok(addr)
}

fn connect(fd: c_int, addr: &libc::sockaddr_in) -> Res {
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: addr is a sockaddr_in of length len.
    ok(
        unsafe { libc::connect(fd, (addr as *const libc::sockaddr_in).cast(), len) },
        "connect",
    )
    .map(drop)
}

/// A connected blocking TCP pair on loopback: (client, accepted server side).
fn tcp_pair() -> Res<(Fd, Fd)> {
    let listener = socket(libc::SOCK_STREAM)?;
    let addr = bind_loopback(listener.0)?;
    // SAFETY: plain syscalls on fds we own.
    ok(unsafe { libc::listen(listener.0, 1) }, "listen")?;
    let client = socket(libc::SOCK_STREAM)?;
    connect(client.0, &addr)?;
    let server = ok(
        unsafe {
            libc::accept4(
                listener.0,
                ptr::null_mut(),
                ptr::null_mut(),
                libc::SOCK_CLOEXEC,
            )
        },
        "accept4",
    )?;
    let server = Fd(server);
    set_timeouts(server.0)?;
    Ok((client, server))
}

/// `count` x recvfrom(size, MSG_WAITALL), checking the stream against the
/// pattern from `start`.
fn recv_chunks(sock: c_int, count: u64, size: usize, start: u64) -> Res {
    let mut buf = vec![0u8; size];
    for i in 0..count {
        // SAFETY: buf has size bytes.
        let n = unsafe {
            libc::recvfrom(
                sock,
                buf.as_mut_ptr().cast(),
                size,
                libc::MSG_WAITALL,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        full(n, size, "recvfrom")?;
        verify(&buf, start + i * size as u64, "recvfrom")?;
    }
    Ok(())
}

/// Runs `send` on this thread while a scoped thread receives `count`
/// chunks (`recv_chunks`) on `server`.
fn with_receiver(server: c_int, o: &Opts, start: u64, send: impl FnOnce() -> Res) -> Res {
    let (count, size) = (o.count, o.size);
    std::thread::scope(|s| {
        let reader = s.spawn(move || recv_chunks(server, count, size, start));
        let sent = send();
        let received = reader
            .join()
            .map_err(|_| "reader thread panicked".to_string())?;
        sent.and(received)
    })
}

/// A `len`-byte buffer starting on a page boundary (vmsplice of a buffer
/// that straddles more pages than the pipe has slots comes up short).
struct PageBuf {
    raw: Vec<u8>,
    off: usize,
    len: usize,
}

impl PageBuf {
    fn new(len: usize) -> Self {
        let raw = vec![0u8; len + PAGE];
        let off = raw.as_ptr().align_offset(PAGE);
        Self { raw, off, len }
    }

    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.raw[self.off..self.off + self.len]
    }
}

fn read_exact_once(fd: c_int, buf: &mut [u8], what: &str) -> Res {
    // SAFETY: buf is valid for buf.len() bytes.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    full(n, buf.len(), what)
}

fn write_once(fd: c_int, buf: &[u8], what: &str) -> Res {
    // SAFETY: buf is valid for buf.len() bytes.
    let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
    full(n, buf.len(), what)
}

/// Two iovecs covering `buf` (halves; the second one byte longer for odd
/// sizes).
fn halves(buf: &mut [u8]) -> [libc::iovec; 2] {
    let (a, b) = buf.split_at_mut(buf.len() / 2);
    [
        libc::iovec {
            iov_base: a.as_mut_ptr().cast(),
            iov_len: a.len(),
        },
        libc::iovec {
            iov_base: b.as_mut_ptr().cast(),
            iov_len: b.len(),
        },
    ]
}

// -------------------------------------------------------------- scenarios

fn noop(_: &Opts) -> Res {
    Ok(())
}

fn make_input(o: &Opts) -> Res {
    let path = o.file()?.to_str().map_err(|e| e.to_string())?;
    write_input_file(path.as_ref(), o.total() as u64).map_err(|e| format!("{path}: {e}"))
}

/// count x read(size) on a regular file.
fn file_read(o: &Opts) -> Res {
    let fd = open_input(o, o.total())?;
    let mut buf = vec![0u8; o.size];
    for i in 0..o.count {
        read_exact_once(fd.0, &mut buf, "read file")?;
        verify(&buf, i * o.size as u64, "read file")?;
    }
    Ok(())
}

/// count x pread64 at i*size; readv, preadv, preadv2 of two halves.
fn file_pread(o: &Opts) -> Res {
    let fd = open_input(o, o.total())?;
    let mut buf = vec![0u8; o.size];
    for i in 0..o.count {
        let off = i * o.size as u64;
        // SAFETY: buf has size bytes.
        let n = unsafe { libc::pread64(fd.0, buf.as_mut_ptr().cast(), o.size, off as i64) };
        full(n, o.size, "pread64")?;
        verify(&buf, off, "pread64")?;
    }
    // The file position is still 0: pread does not move it.
    let iov = halves(&mut buf);
    // SAFETY: the iovecs point into buf.
    full(
        unsafe { libc::readv(fd.0, iov.as_ptr(), 2) },
        o.size,
        "readv",
    )?;
    verify(&buf, 0, "readv")?;
    let iov = halves(&mut buf);
    // SAFETY: as above.
    full(
        unsafe { libc::preadv(fd.0, iov.as_ptr(), 2, 0) },
        o.size,
        "preadv",
    )?;
    verify(&buf, 0, "preadv")?;
    let iov = halves(&mut buf);
    // SAFETY: as above.
    full(
        unsafe { libc::preadv2(fd.0, iov.as_ptr(), 2, 0, 0) },
        o.size,
        "preadv2",
    )?;
    verify(&buf, 0, "preadv2")
}

/// count x write then count x read on one pipe, in one thread; then one
/// writev and one readv of two halves.
fn pipe_rw(o: &Opts) -> Res {
    if o.total() as u64 > PIPE_CAPACITY {
        return Err(format!(
            "pipe: count*size must fit in the pipe ({PIPE_CAPACITY} bytes), got count {} size {}",
            o.count, o.size
        ));
    }
    // Non-blocking: if the writes still do not fit (a write that cannot be
    // merged into a partly filled page takes a new one), the write fails
    // with EAGAIN or comes up short instead of hanging this single thread.
    let (r, w) = pipe(libc::O_NONBLOCK)?;
    let mut buf = pattern(o.size, 0);
    for _ in 0..o.count {
        write_once(w.0, &buf, "write pipe").map_err(|e| {
            format!(
                "{e} (the writes do not fit the pipe's {PIPE_PAGES} pages; try a --size that \
                 divides 4096)"
            )
        })?;
    }
    let mut back = vec![0u8; o.size];
    for _ in 0..o.count {
        read_exact_once(r.0, &mut back, "read pipe")?;
        verify(&back, 0, "read pipe")?;
    }
    let iov = halves(&mut buf);
    // SAFETY: the iovecs point into buf.
    full(
        unsafe { libc::writev(w.0, iov.as_ptr(), 2) },
        o.size,
        "writev pipe",
    )?;
    back.fill(0);
    let iov = halves(&mut back);
    // SAFETY: the iovecs point into back.
    full(
        unsafe { libc::readv(r.0, iov.as_ptr(), 2) },
        o.size,
        "readv pipe",
    )?;
    verify(&back, 0, "readv pipe")
}

/// TCP loopback: count x write and count x sendto(flags 0, no address) from
/// the client; a thread receives 2*count x recvfrom(MSG_WAITALL).
fn tcp(o: &Opts) -> Res {
    let (client, server) = tcp_pair()?;
    let count2 = Opts {
        count: 2 * o.count,
        file: None,
        file2: None,
        report_time: None,
        ..*o
    };
    with_receiver(server.0, &count2, 0, || {
        let mut buf = vec![0u8; o.size];
        for i in 0..o.count {
            fill_pattern(&mut buf, i * o.size as u64);
            write_once(client.0, &buf, "write socket")?;
        }
        for i in o.count..2 * o.count {
            fill_pattern(&mut buf, i * o.size as u64);
            // SAFETY: buf has size bytes; no address.
            let n =
                unsafe { libc::sendto(client.0, buf.as_ptr().cast(), o.size, 0, ptr::null(), 0) };
            full(n, o.size, "sendto")?;
        }
        Ok(())
    })
}

fn uring_send_zc_reported(o: &Opts) -> Res {
    uring_send_zc(o, true)
}

fn uring_send_zc_unreported(o: &Opts) -> Res {
    uring_send_zc(o, false)
}

/// TCP loopback: count x io_uring SEND_ZC of `size` bytes from the client,
/// each waited for with its notification (usage reported if `report`); a
/// thread receives count x recvfrom(MSG_WAITALL).
fn uring_send_zc(o: &Opts, report: bool) -> Res {
    use io_uring::{IoUring, cqueue, opcode, types};
    // include/uapi/linux/io_uring.h: IORING_SEND_ZC_REPORT_USAGE
    const REPORT_USAGE: u16 = 1 << 3;
    let (client, server) = tcp_pair()?;
    let mut ring = IoUring::new(4).map_err(|e| format!("io_uring_setup: {e}"))?;
    with_receiver(server.0, o, 0, || {
        let mut buf = vec![0u8; o.size];
        for i in 0..o.count {
            fill_pattern(&mut buf, i * o.size as u64);
            let sqe = opcode::SendZc::new(types::Fd(client.0), buf.as_ptr(), o.size as u32)
                .zc_flags(if report { REPORT_USAGE } else { 0 })
                .flags(libc::MSG_WAITALL)
                .build();
            // SAFETY: buf outlives the request: its notification is awaited.
            unsafe { ring.submission().push(&sqe) }.map_err(|_| "SQ full".to_string())?;
            let (mut result, mut notified) = (None, false);
            while result.is_none() || !notified {
                ring.submit_and_wait(1)
                    .map_err(|e| format!("io_uring_enter: {e}"))?;
                for c in ring.completion() {
                    if cqueue::notif(c.flags()) {
                        notified = true;
                    } else {
                        result = Some(c.result());
                        notified |= !cqueue::more(c.flags());
                    }
                }
            }
            match result.unwrap_or(-libc::EIO) {
                n if n < 0 => {
                    return Err(format!(
                        "io_uring SEND_ZC: {}",
                        Error::from_raw_os_error(-n)
                    ));
                }
                n => full(n as isize, o.size, "io_uring SEND_ZC")?,
            }
        }
        Ok(())
    })
}

/// UDP loopback: count x sendmsg and count x recvmsg; then one sendmmsg of
/// count messages and one recvmmsg of count messages.
fn udp(o: &Opts) -> Res {
    if o.count > MAX_MMSG || o.size as u64 > MAX_UDP {
        return Err(format!(
            "udp: needs count <= {MAX_MMSG} and size <= {MAX_UDP}"
        ));
    }
    let rx = socket(libc::SOCK_DGRAM)?;
    // Everything is sent before it is received: the receive buffer must hold
    // it all or loopback drops datagrams. SO_RCVBUFFORCE ignores rmem_max
    // (needs CAP_NET_ADMIN); SO_RCVBUF is capped by it.
    let want: c_int = 4 << 20;
    if setsockopt(
        rx.0,
        libc::SOL_SOCKET,
        libc::SO_RCVBUFFORCE,
        &want,
        "SO_RCVBUFFORCE",
    )
    .is_err()
    {
        setsockopt(rx.0, libc::SOL_SOCKET, libc::SO_RCVBUF, &want, "SO_RCVBUF")?;
    }
    let rx_addr = bind_loopback(rx.0)?;
    let tx = socket(libc::SOCK_DGRAM)?;
    connect(tx.0, &rx_addr)?;

    let n = o.count as usize;
    let mut data: Vec<Vec<u8>> = (0..n)
        .map(|i| pattern(o.size, (i * o.size) as u64))
        .collect();
    // SAFETY (whole block): every msghdr points at live iovecs, every
    // iovec at a live buffer of iov_len bytes.
    unsafe {
        for chunk in &mut data {
            let mut iov = libc::iovec {
                iov_base: chunk.as_mut_ptr().cast(),
                iov_len: o.size,
            };
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            full(libc::sendmsg(tx.0, &msg, 0), o.size, "sendmsg")?;
        }
        let mut buf = vec![0u8; o.size];
        for i in 0..n {
            let mut iov = libc::iovec {
                iov_base: buf.as_mut_ptr().cast(),
                iov_len: o.size,
            };
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            full(libc::recvmsg(rx.0, &mut msg, 0), o.size, "recvmsg")?;
            verify(&buf, (i * o.size) as u64, "recvmsg")?;
        }

        let mut iovs: Vec<libc::iovec> = data
            .iter_mut()
            .map(|c| libc::iovec {
                iov_base: c.as_mut_ptr().cast(),
                iov_len: o.size,
            })
            .collect();
        let mut msgs: Vec<libc::mmsghdr> = iovs
            .iter_mut()
            .map(|iov| {
                let mut m: libc::mmsghdr = std::mem::zeroed();
                m.msg_hdr.msg_iov = iov;
                m.msg_hdr.msg_iovlen = 1;
                m
            })
            .collect();
        let sent = libc::sendmmsg(tx.0, msgs.as_mut_ptr(), n as u32, 0);
        if sent < 0 || sent as usize != n {
            return Err(format!(
                "sendmmsg: sent {sent} of {n}: {}",
                Error::last_os_error()
            ));
        }
        if let Some(m) = msgs.iter().find(|m| m.msg_len as usize != o.size) {
            return Err(format!(
                "sendmmsg: a message sent {} of {} bytes",
                m.msg_len, o.size
            ));
        }

        let mut back: Vec<Vec<u8>> = (0..n).map(|_| vec![0u8; o.size]).collect();
        let mut iovs: Vec<libc::iovec> = back
            .iter_mut()
            .map(|c| libc::iovec {
                iov_base: c.as_mut_ptr().cast(),
                iov_len: o.size,
            })
            .collect();
        let mut msgs: Vec<libc::mmsghdr> = iovs
            .iter_mut()
            .map(|iov| {
                let mut m: libc::mmsghdr = std::mem::zeroed();
                m.msg_hdr.msg_iov = iov;
                m.msg_hdr.msg_iovlen = 1;
                m
            })
            .collect();
        // Without MSG_WAITFORONE each datagram is waited for (up to
        // SO_RCVTIMEO); all of them were sent already.
        let got = libc::recvmmsg(rx.0, msgs.as_mut_ptr(), n as u32, 0, ptr::null_mut());
        if got < 0 || got as usize != n {
            return Err(format!(
                "recvmmsg: got {got} of {n} datagrams ({}); were some dropped?",
                Error::last_os_error()
            ));
        }
        for (i, m) in msgs.iter().enumerate() {
            if m.msg_len as usize != o.size || m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                return Err(format!("recvmmsg: message {i} has {} bytes", m.msg_len));
            }
            verify(&back[i], (i * o.size) as u64, "recvmmsg")?;
        }
    }
    Ok(())
}

/// count x sendfile(socket <- file, no offset); a thread receives.
fn sendfile(o: &Opts) -> Res {
    let file = open_input(o, o.total())?;
    let (client, server) = tcp_pair()?;
    with_receiver(server.0, o, 0, || {
        for _ in 0..o.count {
            // SAFETY: plain syscall; NULL offset uses the file position.
            let n = unsafe { libc::sendfile(client.0, file.0, ptr::null_mut(), o.size) };
            full(n, o.size, "sendfile")?;
        }
        Ok(())
    })
}

/// count x [splice file -> pipe, splice pipe -> socket]; a thread
/// receives. Then write + tee + read + read on two pipes, and vmsplice +
/// read on one.
fn splice(o: &Opts) -> Res {
    // Each chunk must fit the pipe's 16 page slots (file pages are spliced
    // one slot per page, so an unaligned chunk can take one more).
    let slots = |i: usize| (i * o.size + o.size).div_ceil(PAGE) - (i * o.size) / PAGE;
    if let Some(i) = (0..o.count as usize).find(|&i| slots(i) > PIPE_PAGES) {
        return Err(format!(
            "splice: chunk {i} spans {} pages, more than a pipe holds ({PIPE_PAGES}): --size \
             must be at most 65536, and at most 61441 unless a multiple of 4096",
            slots(i)
        ));
    }
    let file = open_input(o, o.total())?;
    let (client, server) = tcp_pair()?;
    {
        let (pr, pw) = pipe(0)?;
        with_receiver(server.0, o, 0, || {
            for _ in 0..o.count {
                // SAFETY: plain syscalls; NULL offsets use the file position.
                let n = unsafe {
                    libc::splice(file.0, ptr::null_mut(), pw.0, ptr::null_mut(), o.size, 0)
                };
                full(n, o.size, "splice file->pipe")?;
                let n = unsafe {
                    libc::splice(pr.0, ptr::null_mut(), client.0, ptr::null_mut(), o.size, 0)
                };
                full(n, o.size, "splice pipe->socket")?;
            }
            Ok(())
        })?;
    }

    // tee: the data stays in A and is duplicated into B. Non-blocking pipes
    // turn a capacity mistake into an error instead of a hang.
    let (ar, aw) = pipe(libc::O_NONBLOCK)?;
    let (br, bw) = pipe(libc::O_NONBLOCK)?;
    let data = pattern(o.size, 0);
    write_once(aw.0, &data, "write pipe A")?;
    // SAFETY: plain syscall.
    full(unsafe { libc::tee(ar.0, bw.0, o.size, 0) }, o.size, "tee")?;
    let mut back = vec![0u8; o.size];
    read_exact_once(br.0, &mut back, "read pipe B")?;
    verify(&back, 0, "read pipe B")?;
    back.fill(0);
    read_exact_once(ar.0, &mut back, "read pipe A")?;
    verify(&back, 0, "read pipe A")?;

    // vmsplice: a page-aligned user buffer referenced into pipe A.
    let mut page_buf = PageBuf::new(o.size);
    let src = page_buf.as_mut();
    fill_pattern(src, 0);
    let iov = libc::iovec {
        iov_base: src.as_mut_ptr().cast(),
        iov_len: o.size,
    };
    // SAFETY: iov points at a live buffer of iov_len bytes.
    full(
        unsafe { libc::vmsplice(aw.0, &iov, 1, 0) },
        o.size,
        "vmsplice",
    )?;
    back.fill(0);
    read_exact_once(ar.0, &mut back, "read pipe A after vmsplice")?;
    verify(&back, 0, "read pipe A after vmsplice")
}

/// One shared read-only mmap of the file; count x write(socket) straight
/// from the mapping; a thread receives; one munmap.
fn mmap_write(o: &Opts) -> Res {
    let len = o.total();
    let file = open_input(o, len)?;
    let (client, server) = tcp_pair()?;
    // SAFETY: a fresh read-only mapping of a file at least len bytes long.
    let map = unsafe {
        libc::mmap(
            ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.0,
            0,
        )
    };
    if map == libc::MAP_FAILED {
        return Err(os_err("mmap"));
    }
    let sent = with_receiver(server.0, o, 0, || {
        for i in 0..o.count as usize {
            // SAFETY: the chunk lies inside the mapping.
            let n =
                unsafe { libc::write(client.0, map.cast::<u8>().add(i * o.size).cast(), o.size) };
            full(n, o.size, "write socket from mapping")?;
        }
        Ok(())
    });
    // SAFETY: unmapping what was mapped above; nothing refers to it now.
    ok(unsafe { libc::munmap(map, len) }, "munmap")?;
    sent
}

/// count x copy_file_range(file -> file, no offsets).
fn copy_file_range(o: &Opts) -> Res {
    let src = open_input(o, o.total())?;
    let dst = open(o.file2()?, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC)?;
    for _ in 0..o.count {
        // SAFETY: plain syscall; NULL offsets use the file positions.
        let n = unsafe {
            libc::copy_file_range(src.0, ptr::null_mut(), dst.0, ptr::null_mut(), o.size, 0)
        };
        full(n, o.size, "copy_file_range")?;
    }
    Ok(())
}

fn dev(path: &CStr, flags: c_int) -> Res<Fd> {
    open(path, flags)
}

/// count x write(size) on `fd`.
fn writes(fd: c_int, buf: &[u8], count: u64, what: &str) -> Res {
    (0..count).try_for_each(|_| write_once(fd, buf, what))
}

/// The child: count x write to /dev/null and count x read from /dev/zero,
/// then _exit. The parent: count x write to /dev/null, then waitpid.
fn fork(o: &Opts) -> Res {
    let null = dev(c"/dev/null", libc::O_WRONLY)?;
    let zero = dev(c"/dev/zero", libc::O_RDONLY)?;
    let buf = vec![0x5au8; o.size];
    let mut back = vec![0u8; o.size];
    // SAFETY: no other threads run now (every scenario joins its threads),
    // and the child only makes syscalls and exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(os_err("fork"));
    }
    if pid == 0 {
        let res = writes(null.0, &buf, o.count, "child write /dev/null").and_then(|()| {
            (0..o.count)
                .try_for_each(|_| read_exact_once(zero.0, &mut back, "child read /dev/zero"))
        });
        let code = match res {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("zc-workload (fork child): {e}");
                1
            }
        };
        // SAFETY: leaves the child without running the parent's exit code.
        unsafe { libc::_exit(code) };
    }
    let res = writes(null.0, &buf, o.count, "parent write /dev/null");
    let mut status = 0;
    // SAFETY: waiting for our own child.
    if unsafe { libc::waitpid(pid, &mut status, 0) } != pid {
        return Err(os_err("waitpid"));
    }
    res?;
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return Err(format!("fork child failed (wait status {status:#x})"));
    }
    Ok(())
}

/// `threads` threads, each count x write(size) to /dev/null.
fn threads(o: &Opts) -> Res {
    let null = dev(c"/dev/null", libc::O_WRONLY)?;
    let buf = vec![0x5au8; o.size];
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..o.threads)
            .map(|_| s.spawn(|| writes(null.0, &buf, o.count, "thread write /dev/null")))
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().map_err(|_| "thread panicked".to_string())?)
    })
}

/// count x read on a closed fd (EBADF) and count x write to a pipe without
/// a reader (EPIPE, SIGPIPE ignored).
fn errors(o: &Opts) -> Res {
    const BAD_FD: c_int = 999;
    // SAFETY: F_GETFD only inspects the fd.
    if unsafe { libc::fcntl(BAD_FD, libc::F_GETFD) } != -1 {
        return Err(format!(
            "errors: fd {BAD_FD} is open; the scenario needs it closed"
        ));
    }
    // SAFETY: SIG_IGN is a valid disposition.
    if unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) } == libc::SIG_ERR {
        return Err(os_err("signal(SIGPIPE, SIG_IGN)"));
    }
    let mut buf = vec![0u8; o.size];
    for _ in 0..o.count {
        // SAFETY: buf has size bytes.
        let n = unsafe { libc::read(BAD_FD, buf.as_mut_ptr().cast(), o.size) };
        expect_errno(n, libc::EBADF, "read on a closed fd")?;
    }
    let (r, w) = pipe(0)?;
    drop(r);
    for _ in 0..o.count {
        // SAFETY: buf has size bytes.
        let n = unsafe { libc::write(w.0, buf.as_ptr().cast(), o.size) };
        expect_errno(n, libc::EPIPE, "write to a pipe without reader")?;
    }
    Ok(())
}

fn expect_errno(ret: isize, errno: c_int, what: &str) -> Res {
    let err = Error::last_os_error();
    if ret != -1 || err.raw_os_error() != Some(errno) {
        return Err(format!(
            "{what}: expected errno {errno}, got return {ret} ({err})"
        ));
    }
    Ok(())
}

static GOT_USR1: AtomicBool = AtomicBool::new(false);

extern "C" fn on_usr1(_: c_int) {
    GOT_USR1.store(true, Ordering::SeqCst);
}

/// Waits for SIGUSR1. The signal is blocked while the flag is checked and
/// unblocked only inside sigsuspend, so one sent at any time after the
/// handler is installed (visible in /proc/PID/status SigCgt) is not lost.
fn wait_for_sigusr1() -> Res {
    // SAFETY (whole block): the sigsets and sigaction are plain structs
    // filled before use; the handler only touches an atomic.
    unsafe {
        let mut block: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut block);
        libc::sigaddset(&mut block, libc::SIGUSR1);
        ok(
            libc::sigprocmask(libc::SIG_BLOCK, &block, &mut old),
            "sigprocmask",
        )?;
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_usr1 as extern "C" fn(c_int) as libc::sighandler_t;
        libc::sigemptyset(&mut sa.sa_mask);
        ok(
            libc::sigaction(libc::SIGUSR1, &sa, ptr::null_mut()),
            "sigaction",
        )?;
        let mut wait_mask = old;
        libc::sigdelset(&mut wait_mask, libc::SIGUSR1);
        while !GOT_USR1.load(Ordering::SeqCst) {
            libc::sigsuspend(&wait_mask);
        }
        ok(
            libc::sigprocmask(libc::SIG_SETMASK, &old, ptr::null_mut()),
            "sigprocmask",
        )?;
    }
    Ok(())
}

/// nanosleep for `count` milliseconds; no I/O.
fn sleep(o: &Opts) -> Res {
    let mut ts = libc::timespec {
        tv_sec: (o.count / 1000) as libc::time_t,
        tv_nsec: ((o.count % 1000) * 1_000_000) as libc::c_long,
    };
    // SAFETY: ts is a valid timespec, updated with the remainder on EINTR.
    while unsafe { libc::nanosleep(&ts, &mut ts) } != 0 {
        if Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return Err(os_err("nanosleep"));
        }
    }
    Ok(())
}

/// Every measured scenario in `ALL_PARTS` order, in this process.
fn all(o: &Opts) -> Res {
    for part in ALL_PARTS {
        scenario_fn(part)?(o).map_err(|e| format!("{part}: {e}"))?;
    }
    Ok(())
}

// ------------------------------------------------- timed (for the bench)
//
// These move data in a loop and time the loop itself (`--report-time`), so
// the benchmark compares the work, not a tracer's start-up. Their calls
// are not checked against `expected`; a failed or short transfer is still
// an error.

/// Pins this process (and so the threads and children it creates later)
/// to `cpu`.
fn pin_to(cpu: usize) -> Res {
    // SAFETY: set is a plain bit set, filled before the call.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        ok(
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set),
            &format!("sched_setaffinity to CPU {cpu}"),
        )
        .map(drop)
    }
}

/// Writes `elapsed` in nanoseconds (decimal) to `--report-time`, if given.
/// Runs after the measured loop, so its open/write/close are not timed.
fn report_time(o: &Opts, elapsed: Duration) -> Res {
    let Some(path) = &o.report_time else {
        return Ok(());
    };
    let fd = open(path, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC)?;
    write_once(
        fd.0,
        elapsed.as_nanos().to_string().as_bytes(),
        "write --report-time",
    )
}

fn file_len(fd: c_int, what: &str) -> Res<u64> {
    // SAFETY: st is a plain struct the kernel fills.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    ok(unsafe { libc::fstat(fd, &mut st) }, what)?;
    Ok(st.st_size as u64)
}

/// Opens `--file` and returns it with the number of whole `--size` chunks
/// it holds (at least one).
fn open_chunks(o: &Opts) -> Res<(Fd, u64)> {
    let fd = open(o.file()?, libc::O_RDONLY)?;
    let chunks = file_len(fd.0, "fstat --file")? / o.size as u64;
    if chunks == 0 {
        return Err(format!(
            "--file is shorter than one chunk of {} bytes; create it with \
             `zc-workload make-input --file PATH --count N --size K`",
            o.size
        ));
    }
    Ok((fd, chunks))
}

/// Forks; the parent writes 1 byte into pipe A and reads it back from pipe
/// B, `count` times; the child reads from A and writes to B. Timed in the
/// parent, from the first write to the last read.
fn pingpong(o: &Opts) -> Res {
    let (ar, aw) = pipe(0)?;
    let (br, bw) = pipe(0)?;
    // SAFETY: no other threads exist; the child only makes syscalls and exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(os_err("fork"));
    }
    if pid == 0 {
        // SAFETY: the parent's ends, closed so that a parent that stops
        // early ends this loop with EOF instead of a hang. The Fd values
        // are never dropped here (_exit below).
        unsafe {
            libc::close(aw.0);
            libc::close(br.0);
        }
        let mut b = [0u8; 1];
        let res = (0..o.count).try_for_each(|_| {
            read_exact_once(ar.0, &mut b, "child read pipe")?;
            write_once(bw.0, &b, "child write pipe")
        });
        let code = match res {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("zc-workload (pingpong child): {e}");
                1
            }
        };
        // SAFETY: leaves the child without running the parent's exit code.
        unsafe { libc::_exit(code) };
    }
    drop(ar);
    drop(bw);
    let mut b = [0x5au8; 1];
    let start = std::time::Instant::now();
    let res = (0..o.count).try_for_each(|_| {
        write_once(aw.0, &b, "parent write pipe")?;
        read_exact_once(br.0, &mut b, "parent read pipe")
    });
    let elapsed = start.elapsed();
    drop(aw);
    let mut status = 0;
    // SAFETY: waiting for our own child.
    if unsafe { libc::waitpid(pid, &mut status, 0) } != pid {
        return Err(os_err("waitpid"));
    }
    res?;
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return Err(format!("pingpong child failed (wait status {status:#x})"));
    }
    report_time(o, elapsed)
}

/// count x getppid: a process making syscalls that move no data, the
/// cheapest there are, so a tracer's cost per call shows undiluted.
fn getppid_loop(o: &Opts) -> Res {
    let start = std::time::Instant::now();
    for _ in 0..o.count {
        // SAFETY: getppid cannot fail and touches no memory.
        unsafe { libc::getppid() };
    }
    let elapsed = start.elapsed();
    report_time(o, elapsed)
}

/// count x [read(size) from --file, write(size) to --file2 (not truncated,
/// so a rerun reuses its pages) or /dev/null]. At the end of the input both
/// rewind (lseek to 0) and the copy goes on.
fn bulk_copy(o: &Opts) -> Res {
    let (input, chunks) = open_chunks(o)?;
    let out = match &o.file2 {
        Some(path) => open(path, libc::O_WRONLY | libc::O_CREAT)?,
        None => dev(c"/dev/null", libc::O_WRONLY)?,
    };
    let mut buf = vec![0u8; o.size];
    let start = std::time::Instant::now();
    for i in 0..o.count {
        if i > 0 && i % chunks == 0 {
            // SAFETY: plain syscalls on fds we own.
            unsafe {
                if libc::lseek(input.0, 0, libc::SEEK_SET) != 0 {
                    return Err(os_err("lseek --file"));
                }
                if libc::lseek(out.0, 0, libc::SEEK_SET) < 0 {
                    return Err(os_err("lseek output"));
                }
            }
        }
        read_exact_once(input.0, &mut buf, "read --file")?;
        write_once(out.0, &buf, "write output")?;
    }
    let elapsed = start.elapsed();
    report_time(o, elapsed)
}

/// count x sendfile(socket <- --file, size) at offsets that wrap around
/// the file; a thread receives on loopback TCP and discards (checking only
/// the byte total). Timed from the first sendfile until the receiver has
/// everything.
fn sendfile_loop(o: &Opts) -> Res {
    let (file, chunks) = open_chunks(o)?;
    let (client, server) = tcp_pair()?;
    let total = o.count * o.size as u64;
    let size = o.size;
    let start = std::time::Instant::now();
    let res = std::thread::scope(|s| {
        let server = server.0;
        let reader = s.spawn(move || -> Res {
            let mut buf = vec![0u8; size];
            let mut got = 0u64;
            while got < total {
                let want = size.min((total - got) as usize);
                // SAFETY: buf has at least `want` bytes.
                let n = unsafe { libc::recv(server, buf.as_mut_ptr().cast(), want, 0) };
                if n <= 0 {
                    return Err(if n == 0 {
                        format!("recv: EOF after {got} of {total} bytes")
                    } else {
                        os_err("recv")
                    });
                }
                got += n as u64;
            }
            Ok(())
        });
        let sent = (0..o.count).try_for_each(|i| {
            let mut off = ((i % chunks) * size as u64) as libc::off_t;
            // SAFETY: plain syscall; off is a valid offset variable.
            let n = unsafe { libc::sendfile(client.0, file.0, &mut off, size) };
            full(n, size, "sendfile")
        });
        if sent.is_err() {
            // Unblock the receiver.
            // SAFETY: plain syscall on a socket we own.
            unsafe { libc::shutdown(client.0, libc::SHUT_WR) };
        }
        let received = reader
            .join()
            .map_err(|_| "reader thread panicked".to_string())?;
        sent.and(received)
    });
    let elapsed = start.elapsed();
    res?;
    report_time(o, elapsed)
}

/// `threads` threads, each count x [read(size) from /dev/zero, write(size)
/// to /dev/null]: `dd bs=size` on every core. Timed from the first spawn
/// to the last join.
fn threads_rw(o: &Opts) -> Res {
    let zero = dev(c"/dev/zero", libc::O_RDONLY)?;
    let null = dev(c"/dev/null", libc::O_WRONLY)?;
    let start = std::time::Instant::now();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..o.threads)
            .map(|_| {
                s.spawn(|| {
                    let mut buf = vec![0u8; o.size];
                    (0..o.count).try_for_each(|_| {
                        read_exact_once(zero.0, &mut buf, "thread read /dev/zero")?;
                        write_once(null.0, &buf, "thread write /dev/null")
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().map_err(|_| "thread panicked".to_string())?)
    })?;
    let elapsed = start.elapsed();
    report_time(o, elapsed)
}
