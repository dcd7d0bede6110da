//! The traced processes: a command started and held before exec until the
//! probes are live, or a running process found by PID.

mod guard;
pub mod inherited;

use std::{
    ffi::{CString, OsStr, OsString},
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::ffi::OsStrExt,
    },
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};

use crate::{
    error::{EXIT_CANNOT_RUN, EXIT_NOT_FOUND, failure},
    model::ProcIdentity,
};

/// Finds `name` like a shell would: as a path if it has a slash, else in PATH.
pub fn resolve_command(name: &OsStr) -> Result<PathBuf> {
    let is_exec = |p: &Path| {
        let Ok(c) = CString::new(p.as_os_str().as_bytes()) else {
            return false;
        };
        // SAFETY: c is a valid C string.
        p.is_file() && unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0
    };
    let shown = name.to_string_lossy();
    if name.as_bytes().contains(&b'/') {
        let p = PathBuf::from(name);
        if !p.exists() {
            return Err(failure(
                EXIT_NOT_FOUND,
                format!("command not found: {shown} (no such file)"),
            ));
        }
        if !is_exec(&p) {
            return Err(failure(
                EXIT_CANNOT_RUN,
                format!("cannot run {shown}: not an executable file (chmod +x it?)"),
            ));
        }
        return Ok(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_exec(p))
        .ok_or_else(|| {
            failure(
                EXIT_NOT_FOUND,
                format!("command not found: {shown} (not in PATH)"),
            )
        })
}

fn cstring(s: &OsStr) -> Result<CString> {
    CString::new(s.as_bytes()).context("an argument contains a NUL byte")
}

/// A process handle that cannot outlive the process: a pidfd. Signalling
/// it after the process was reaped fails instead of reaching a stranger
/// that reused the pid.
pub(crate) struct PidFd(OwnedFd);

impl PidFd {
    pub(crate) fn open(pid: libc::pid_t) -> std::io::Result<Self> {
        // SAFETY: pidfd_open takes a pid and flags; a non-negative result
        // is a new descriptor that we own.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: as above.
        Ok(Self(unsafe { OwnedFd::from_raw_fd(fd as i32) }))
    }

    /// A second descriptor of the same pidfd.
    pub(crate) fn try_clone(&self) -> std::io::Result<OwnedFd> {
        self.0.try_clone()
    }

    /// Whether the process has exited (its pidfd is readable then): one
    /// poll, where /proc/PID/stat takes an open, a read and a close.
    pub(crate) fn has_exited(&self) -> bool {
        let mut fd = libc::pollfd {
            fd: self.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, no wait.
        unsafe { libc::poll(&mut fd, 1, 0) != 0 }
    }

    /// Sends `sig`; false when the process is gone.
    fn signal(&self, sig: i32) -> bool {
        // SAFETY: our own descriptor, no siginfo.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.0.as_raw_fd(),
                sig,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        r == 0
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: fds has room for two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error()).context("creating a pipe");
    }
    // SAFETY: both are new descriptors we own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Reads one native i32 from a pipe; None at EOF.
fn read_i32(fd: &OwnedFd) -> Option<i32> {
    let mut v = 0i32;
    loop {
        // SAFETY: reading 4 bytes into an i32.
        let n = unsafe { libc::read(fd.as_raw_fd(), (&mut v as *mut i32).cast(), 4) };
        if n == 4 {
            return Some(v);
        }
        if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        return None;
    }
}

/// The wrapped command, stopped just before its execve, under its guard
/// (see `guard`).
pub struct HeldChild {
    pub pid: i32,
    command: PidFd,
    guard: PidFd,
    guard_pid: i32,
    /// Read end of a CLOEXEC pipe: EOF when execve succeeded, an errno if not.
    exec_error: OwnedFd,
    /// The guard's reports: the command's wait status when it is reaped.
    report: OwnedFd,
    program: String,
}

/// Forks the guard, which forks the command held before execve, and waits
/// until the command has stopped. Nothing the command does can happen
/// before `release`.
///
/// The command makes no syscall between its stop and its execve, so with
/// the probes live and its pid registered before `release`, its first
/// traced call is the execve, exactly as under `strace -f`. It gets the
/// signal dispositions and mask zc-trace was started with (see
/// `inherited`), its environment and its inheritable fds.
pub fn spawn_held(argv: &[OsString]) -> Result<HeldChild> {
    let program = resolve_command(&argv[0])?;
    // Everything the children need is prepared before fork: after fork they
    // may only make async-signal-safe calls.
    let path = cstring(program.as_os_str())?;
    let args: Vec<CString> = argv.iter().map(|a| cstring(a)).collect::<Result<_>>()?;
    let sh_argv = [c"/bin/sh".to_owned(), path.clone()]
        .into_iter()
        .chain(args.iter().skip(1).cloned())
        .collect();
    let (exec_error_r, exec_error_w) = pipe()?;
    let (report_r, report_w) = pipe()?;
    // The guard must be waitable, whatever our parent did with SIGCHLD.
    // SAFETY: plain signal-disposition change.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_DFL) };
    let plan = guard::Plan {
        path,
        argv: guard::Argv::new(args),
        sh_argv: guard::Argv::new(sh_argv),
        signals: inherited::SignalState::at_start(),
        exec_error: exec_error_w,
        report: report_w,
        tracer_ends: [exec_error_r.as_raw_fd(), report_r.as_raw_fd()],
        // SAFETY: getpid has no preconditions.
        tracer: unsafe { libc::getpid() },
    };

    // SAFETY: the child only makes async-signal-safe calls (guard::run).
    let guard_pid = unsafe { libc::fork() };
    if guard_pid < 0 {
        return Err(std::io::Error::last_os_error()).context("fork");
    }
    if guard_pid == 0 {
        // SAFETY: we are the freshly forked child.
        unsafe { guard::run(&plan) };
    }
    drop(plan);
    let guard = PidFd::open(guard_pid).context("pidfd_open (Linux 5.3 or later is needed)")?;
    let died = || {
        failure(
            1,
            format!(
                "the command {} died before it could start",
                argv[0].to_string_lossy()
            ),
        )
    };
    let pid = read_i32(&report_r).ok_or_else(died)?;
    // The guard only reaps the command after it exits, and a held command
    // stays stopped: a stopped child of the guard's is the command itself.
    let command = PidFd::open(pid).map_err(|_| died())?;
    let held = proc_state(pid as u32) == Some('T')
        && identity(pid as u32).is_some_and(|id| id.ppid == guard_pid as u32);
    if !held {
        return Err(died());
    }
    Ok(HeldChild {
        pid,
        command,
        guard,
        guard_pid,
        exec_error: exec_error_r,
        report: report_r,
        program: argv[0].to_string_lossy().into_owned(),
    })
}

/// The running command: signals reach it (or its tree) only while it is
/// held, never a process that reused its pid.
pub struct Wrapped {
    command: PidFd,
    guard: PidFd,
}

/// What the reaper thread waits on: the command's exit, then the tree's.
pub struct Exits {
    report: OwnedFd,
    guard_pid: i32,
}

impl HeldChild {
    /// Lets the child run into execve; fails like a shell if it cannot.
    pub fn release(self) -> Result<(Wrapped, Exits)> {
        self.command.signal(libc::SIGCONT);
        if let Some(errno) = read_i32(&self.exec_error) {
            let err = std::io::Error::from_raw_os_error(errno);
            let code = if errno == libc::ENOENT {
                EXIT_NOT_FOUND
            } else {
                EXIT_CANNOT_RUN
            };
            return Err(failure(
                code,
                format!(
                    "cannot run {}: {}",
                    self.program,
                    crate::preflight::io_reason(&err)
                ),
            ));
        }
        Ok((
            Wrapped {
                command: self.command,
                guard: self.guard,
            },
            Exits {
                report: self.report,
                guard_pid: self.guard_pid,
            },
        ))
    }
}

impl Wrapped {
    /// Passes `sig` on to the command, if it still runs.
    pub fn signal(&self, sig: i32) {
        self.command.signal(sig);
    }

    /// Has the guard kill what is left of the command's tree.
    pub fn end_tree(&self) {
        self.guard.signal(guard::END_TREE);
    }
}

impl Exits {
    /// Blocks until the command exits: its shell-style exit code (128 +
    /// signal if killed); None if the guard is gone without saying.
    pub fn command(&self) -> Option<i32> {
        let status = read_i32(&self.report)?;
        Some(if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            128 + libc::WTERMSIG(status)
        })
    }

    /// Blocks until the command's whole tree has exited (the guard exits
    /// when it has no child left).
    pub fn all(&self) {
        let mut status = 0;
        // SAFETY: waiting for our own child.
        while unsafe { libc::waitpid(self.guard_pid, &mut status, 0) } < 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR)
        {}
    }
}

/// The inode of the initial PID namespace, fixed by the kernel
/// (include/linux/proc_ns.h, PROC_PID_INIT_INO).
const INIT_PID_NS: &str = "pid:[4026531836]";

/// Refuses to run inside a PID namespace (a container without the host's
/// PID namespace): the probes see the kernel's global pids, while the pids
/// zc-trace knows (its child's, `-p`'s) are the namespace's, so a wrapped
/// command would be counted as nothing and `-p` could name another process.
pub fn check_pid_namespace() -> Result<()> {
    let Ok(ns) = std::fs::read_link("/proc/self/ns/pid") else {
        // No namespace support: there is only the initial one.
        return Ok(());
    };
    if ns.as_os_str() == INIT_PID_NS {
        return Ok(());
    }
    Err(failure(
        1,
        format!(
            "zc-trace runs in a PID namespace ({}), but its probes see the host's pids: \
             run it in the host's PID namespace (e.g. `docker run --pid=host`, or `nsenter -t 1 -p`)",
            ns.display()
        ),
    ))
}

/// State letter of /proc/PID/stat, or None when there is no such process.
pub fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The comm field is in parentheses and may contain anything.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().next()?.chars().next()
}

/// The kernel's name of process `pid` (its comm), if it still runs.
pub fn comm(pid: u32) -> Option<String> {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    Some(comm.trim_end_matches('\n').to_owned())
}

/// The live children of process `pid` (of all its threads), in pid order.
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(threads) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut kids: Vec<u32> = threads
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect();
    kids.sort_unstable();
    kids.dedup();
    kids
}

/// Whether the process still runs (exists and is not a zombie).
pub fn is_alive(pid: u32) -> bool {
    matches!(proc_state(pid), Some(s) if s != 'Z' && s != 'X')
}

/// Name and parent of a live process, from /proc.
pub fn identity(pid: u32) -> Option<ProcIdentity> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_owned();
    let ppid = stat[close + 1..].split_whitespace().nth(1)?.parse().ok()?;
    Some(ProcIdentity {
        ppid,
        comm,
        cgroup: 0,
    })
}

/// The process (thread group) a thread id belongs to; the pid itself for a
/// process. /proc answers for thread ids too, though it does not list them.
fn thread_group(tid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))?
        .trim()
        .parse()
        .ok()
}

/// Checks that `pid` names a live process other than ourselves, and
/// returns it; for the id of a thread, its process (the probes trace
/// processes, with all their threads).
pub fn check_attach(pid: i32) -> Result<u32> {
    let upid = u32::try_from(pid)
        .ok()
        .and_then(thread_group)
        .unwrap_or(pid as u32);
    if upid == std::process::id() {
        return Err(failure(
            1,
            "zc-trace cannot trace itself: give the PID of another process",
        ));
    }
    match proc_state(upid) {
        None => Err(failure(
            1,
            format!(
                "no process with PID {pid}: check it with `ps -p {pid}` (or find it with `pgrep NAME`)"
            ),
        )),
        Some('Z') | Some('X') => Err(failure(
            1,
            format!("process {pid} has already exited (it is a zombie): nothing left to trace"),
        )),
        Some(_) => Ok(upid),
    }
}
