//! The guard: a small process between zc-trace and the wrapped command, so
//! that the command's whole tree ends with zc-trace, even after `kill -9`.
//!
//! PR_SET_PDEATHSIG reaches only a direct child, and grandchildren can leave
//! the command's process group (setsid, a shell's job control), so neither
//! is enough alone. The guard is a child subreaper: every orphan of the
//! command's tree is re-parented to it, so its children are always the
//! whole tree's roots, and it may signal them safely (a child is not
//! reaped, so its pid cannot be reused, until the guard waits for it). When
//! zc-trace dies (its pdeath signal, SIGUSR1) or asks (the same signal), the
//! guard kills its children, reaps them, kills the orphans they leave, and
//! exits when it has none: nothing of the tree runs on untraced.
//!
//! The guard also reports the command's pid once it is held, and later its
//! wait status, on a pipe. It ignores the terminal's signals: Ctrl-C is for
//! zc-trace and the command to act on.
//!
//! Everything here runs in forked children of a process that may have
//! threads, so only async-signal-safe calls are made: raw syscalls on data
//! prepared before fork.

use std::{
    ffi::CString,
    os::fd::{AsRawFd, OwnedFd},
};

use super::inherited::SignalState;
use crate::error::EXIT_CANNOT_RUN;

/// The signal that tells the guard to end the tree (also its pdeath signal).
pub const END_TREE: i32 = libc::SIGUSR1;

/// What the guard and the command need, built before fork.
pub struct Plan {
    pub path: CString,
    pub argv: Argv,
    /// `/bin/sh PATH ARGS...`: how execvp runs a file without a `#!` line.
    pub sh_argv: Argv,
    pub signals: SignalState,
    /// Write end of the CLOEXEC pipe the command reports a failed execve on.
    pub exec_error: OwnedFd,
    /// Write end of the pipe the guard reports on: the command's pid, then
    /// its wait status.
    pub report: OwnedFd,
    /// The read ends, which the guard closes.
    pub tracer_ends: [libc::c_int; 2],
    pub tracer: libc::pid_t,
}

/// An argument vector as execv takes it, built before fork.
pub struct Argv {
    /// Owns the strings `ptrs` points into (their bytes never move).
    _args: Vec<CString>,
    ptrs: Vec<*const libc::c_char>,
}

impl Argv {
    pub fn new(args: Vec<CString>) -> Self {
        let ptrs = args
            .iter()
            .map(|a| a.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        Self { _args: args, ptrs }
    }

    fn program(&self) -> *const libc::c_char {
        self.ptrs[0]
    }

    fn as_ptr(&self) -> *const *const libc::c_char {
        self.ptrs.as_ptr()
    }
}

/// The guard's life: fork the held command, report it, reap the tree.
///
/// # Safety
/// To be called only in a freshly forked child.
pub unsafe fn run(plan: &Plan) -> ! {
    let children = c"/proc/thread-self/children";
    // SAFETY: raw syscalls on prepared data (see the module comment).
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1);
        for sig in [
            libc::SIGINT,
            libc::SIGQUIT,
            libc::SIGHUP,
            libc::SIGTERM,
            libc::SIGPIPE,
        ] {
            libc::signal(sig, libc::SIG_IGN);
        }
        // Children must stay waitable whatever the parent of zc-trace set.
        libc::signal(libc::SIGCHLD, libc::SIG_DFL);
        let mut wake: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut wake);
        libc::sigaddset(&mut wake, libc::SIGCHLD);
        libc::sigaddset(&mut wake, END_TREE);
        libc::sigprocmask(libc::SIG_BLOCK, &wake, std::ptr::null_mut());
        libc::prctl(libc::PR_SET_PDEATHSIG, END_TREE);
        let mut ending = libc::getppid() != plan.tracer;
        for fd in plan.tracer_ends {
            libc::close(fd);
        }

        let command = libc::fork();
        if command == 0 {
            run_command(plan);
        }
        libc::close(plan.exec_error.as_raw_fd());
        if command < 0 {
            libc::_exit(1);
        }
        let report = plan.report.as_raw_fd();
        let mut status = 0;
        let r = libc::waitpid(command, &mut status, libc::WUNTRACED);
        write_i32(report, command);
        if r == command && !libc::WIFSTOPPED(status) {
            write_i32(report, status);
        }
        loop {
            loop {
                let r = libc::waitpid(-1, &mut status, libc::WNOHANG | libc::__WALL);
                if r == command {
                    write_i32(report, status);
                } else if r < 0 && *libc::__errno_location() == libc::ECHILD {
                    libc::_exit(0);
                } else if r <= 0 {
                    break;
                }
            }
            if ending {
                kill_children(children);
            }
            // Blocked, so none is lost between the reaping and this wait.
            if libc::sigwaitinfo(&wake, std::ptr::null_mut()) == END_TREE {
                ending = true;
            }
        }
    }
}

/// The command's side of the fork: the signal state its parent would have
/// given it, a stop until zc-trace has registered it, then execve.
///
/// # Safety
/// In a freshly forked child only.
unsafe fn run_command(plan: &Plan) -> ! {
    // SAFETY: raw syscalls on prepared data. Nothing runs between the stop
    // and execve, so the first traced call is the execve.
    unsafe {
        plan.signals.apply();
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        libc::kill(libc::getpid(), libc::SIGSTOP);
        libc::execv(plan.path.as_ptr(), plan.argv.as_ptr());
        if *libc::__errno_location() == libc::ENOEXEC {
            libc::execv(plan.sh_argv.program(), plan.sh_argv.as_ptr());
        }
        write_i32(plan.exec_error.as_raw_fd(), *libc::__errno_location());
        libc::_exit(EXIT_CANNOT_RUN as i32);
    }
}

/// SIGKILLs every child of the calling process (one read of its children
/// list; the next SIGCHLD brings the next round).
unsafe fn kill_children(list: &std::ffi::CStr) {
    let mut buf = [0u8; 4096];
    // SAFETY: raw syscalls into a stack buffer.
    let n = unsafe {
        let fd = libc::open(list.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return;
        }
        let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
        libc::close(fd);
        n
    };
    let mut pid: i32 = 0;
    for &b in &buf[..n.max(0) as usize] {
        if b.is_ascii_digit() {
            pid = pid.saturating_mul(10).saturating_add((b - b'0') as i32);
        } else {
            if pid > 0 {
                // SAFETY: an unreaped child of ours: the pid is its own.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            pid = 0;
        }
    }
}

fn write_i32(fd: libc::c_int, v: i32) {
    // SAFETY: writing 4 bytes from a local.
    unsafe { libc::write(fd, (&v as *const i32).cast(), 4) };
}
