//! Descriptors the tokio runtime polls for us: the trace loop's timers,
//! the probes' wakeup ring, a target's pidfd.

use std::{io, os::fd::AsRawFd};

use tokio::io::{Interest, unix::AsyncFd};

/// `inner`, polled for readability by the runtime (which must be entered).
pub fn readable<T: AsRawFd>(inner: T) -> io::Result<AsyncFd<T>> {
    // SAFETY: `inner` is moved in and owns its descriptor: it stays open,
    // the same file, until the AsyncFd is dropped.
    unsafe { AsyncFd::register_with_interest(inner, Interest::READABLE) }.map_err(io::Error::from)
}
