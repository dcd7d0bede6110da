//! The lab sender's io_uring methods: the same transfers as read+write,
//! mmap+write and splice, made of io_uring requests instead of syscalls.
//! One request at a time, each submitted and waited for with one
//! io_uring_enter, so the counts per chunk are as plain as the syscall
//! methods' (a real server keeps many in flight).

use anyhow::{Result, bail};
use io_uring::{IoUring, cqueue, opcode, squeue, types::Fd};

/// include/uapi/linux/io_uring.h: ask SEND_ZC's notification to say
/// whether the kernel copied the data after all.
const SEND_ZC_REPORT_USAGE: u16 = 1 << 3;

/// Entries of the ring every sender creates (the baseline too, so its
/// set-up calls cancel): one request is in flight at a time.
pub const ENTRIES: u32 = 8;

/// A ring for the sender; every method creates one so the baseline has
/// the same set-up calls.
pub fn new_ring() -> std::io::Result<IoUring> {
    IoUring::new(ENTRIES)
}

/// One completion: (res, flags).
type Completion = (i32, u32);

/// Submits `sqe` and waits until `want` of its completions have arrived
/// (SEND_ZC posts two: the result, then the notification).
fn submit(ring: &mut IoUring, sqe: squeue::Entry, want: usize) -> Result<Vec<Completion>> {
    // SAFETY: the buffers `sqe` points to outlive the wait below, which
    // returns only when the kernel is done with them.
    if unsafe { ring.submission().push(&sqe) }.is_err() {
        bail!("lab-sender: the io_uring submission queue is full");
    }
    let mut got = Vec::with_capacity(want);
    while got.len() < want {
        match ring.submit_and_wait(want - got.len()) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => bail!("lab-sender: io_uring_enter: {e}"),
        }
        got.extend(ring.completion().map(|c| (c.result(), c.flags())));
    }
    Ok(got)
}

/// The result of a request that must move bytes: fails on an error or a
/// premature end (0).
fn moved(what: &str, res: i32) -> Result<usize> {
    match res {
        r if r > 0 => Ok(r as usize),
        0 => bail!("lab-sender: io_uring {what} returned 0 before the end of the file"),
        r => bail!(
            "lab-sender: io_uring {what}: {}",
            std::io::Error::from_raw_os_error(-r)
        ),
    }
}

/// Submits one request and returns the bytes it moved.
fn one(ring: &mut IoUring, what: &str, sqe: squeue::Entry) -> Result<usize> {
    let done = submit(ring, sqe, 1)?;
    moved(what, done[0].0)
}

/// Sends all of `data` with SEND requests. MSG_WAITALL makes the kernel
/// finish a short send itself, as a blocking send(2) does: one request per
/// chunk, like one write per chunk.
fn send_all(ring: &mut IoUring, sock: i32, data: &[u8]) -> Result<()> {
    let mut off = 0;
    while off < data.len() {
        let rest = &data[off..];
        let len = rest.len().min(u32::MAX as usize) as u32;
        off += one(
            ring,
            "SEND",
            opcode::Send::new(Fd(sock), rest.as_ptr(), len)
                .flags(libc::MSG_WAITALL)
                .build(),
        )?;
    }
    Ok(())
}

/// READ a chunk of the file, SEND it; returns the bytes sent.
pub fn read_send(
    ring: &mut IoUring,
    src: i32,
    sock: i32,
    size: u64,
    buf: &mut [u8],
) -> Result<u64> {
    let mut done = 0u64;
    while done < size {
        let want = (size - done).min(buf.len() as u64) as u32;
        let read = opcode::Read::new(Fd(src), buf.as_mut_ptr(), want)
            .offset(done)
            .build();
        let n = one(ring, "READ", read)?;
        send_all(ring, sock, &buf[..n])?;
        done += n as u64;
    }
    Ok(done)
}

/// SEND_ZC every chunk of `data` (a mapping of the file), waiting for each
/// request's notification too, after which its pages may change. Usage
/// reporting is asked for, so the notification says whether the kernel
/// copied the data after all (the tracer reads that from the CQE).
pub fn send_zc(ring: &mut IoUring, sock: i32, data: &[u8], chunk: usize) -> Result<u64> {
    let mut done = 0usize;
    while done < data.len() {
        let rest = &data[done..(done + chunk).min(data.len())];
        let sqe = opcode::SendZc::new(Fd(sock), rest.as_ptr(), rest.len() as u32)
            .zc_flags(SEND_ZC_REPORT_USAGE)
            .flags(libc::MSG_WAITALL)
            .build();
        let mut got = submit(ring, sqe, 1)?;
        // The result, then (when it says F_MORE) the notification.
        let result = loop {
            let notified = got.iter().any(|(_, f)| cqueue::notif(*f));
            match got.iter().find(|(_, f)| !cqueue::notif(*f)) {
                Some(&(res, flags)) if notified || !cqueue::more(flags) => break res,
                _ => got.extend(wait_one(ring)?),
            }
        };
        done += moved("SEND_ZC", result)?;
    }
    Ok(done as u64)
}

/// Waits for one more completion, submitting nothing.
fn wait_one(ring: &mut IoUring) -> Result<Vec<Completion>> {
    loop {
        match ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => bail!("lab-sender: io_uring_enter: {e}"),
        }
        let got: Vec<Completion> = ring.completion().map(|c| (c.result(), c.flags())).collect();
        if !got.is_empty() {
            return Ok(got);
        }
    }
}

/// SPLICE a chunk from the file into the pipe, then from the pipe into the
/// socket; returns the bytes sent.
pub fn splice(
    ring: &mut IoUring,
    src: i32,
    pipe: [i32; 2],
    sock: i32,
    size: u64,
    per_call: u64,
) -> Result<u64> {
    let mut done = 0u64;
    while done < size {
        let want = (size - done).min(per_call) as u32;
        let into_pipe = opcode::Splice::new(Fd(src), done as i64, Fd(pipe[1]), -1, want).build();
        let n = one(ring, "SPLICE file -> pipe", into_pipe)?;
        let mut left = n;
        while left > 0 {
            let out = opcode::Splice::new(Fd(pipe[0]), -1, Fd(sock), -1, left as u32).build();
            left -= one(ring, "SPLICE pipe -> socket", out)?;
        }
        done += n as u64;
    }
    Ok(done)
}
