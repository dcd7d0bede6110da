//! The traced processes: a command started and held before exec until the
//! probes are live, or a running process found by PID.

use std::{
    ffi::{CString, OsStr, OsString},
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};

use crate::{
    error::{EXIT_CANNOT_RUN, EXIT_NOT_FOUND, failure},
    model::ProcIdentity,
};

/// A forked child stopped just before its execve.
pub struct HeldChild {
    pub pid: i32,
    /// Read end of a CLOEXEC pipe: EOF when execve succeeded, an errno if not.
    exec_error: i32,
    program: String,
}

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

/// Forks a child that stops itself (SIGSTOP) before execve, and waits until
/// it has stopped. Nothing the command does can happen before `release`.
///
/// The child makes no syscall between its stop and its execve, so with the
/// probes live and its pid registered before `release`, its first traced
/// call is the execve, exactly as under `strace -f`.
pub fn spawn_held(argv: &[OsString]) -> Result<HeldChild> {
    let program = resolve_command(&argv[0])?;
    // Everything the child needs is prepared before fork: after fork it may
    // only make async-signal-safe calls.
    let path = cstring(program.as_os_str())?;
    let args: Vec<CString> = argv.iter().map(|a| cstring(a)).collect::<Result<_>>()?;
    let mut arg_ptrs: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    arg_ptrs.push(std::ptr::null());

    let mut fds = [0; 2];
    // SAFETY: fds has room for two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error()).context("creating a pipe");
    }
    let (err_r, err_w) = (fds[0], fds[1]);

    // SAFETY: the child only calls async-signal-safe functions.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error()).context("fork");
    }
    if pid == 0 {
        // SAFETY: we are the child; these are raw syscalls.
        unsafe {
            // The command must not outlive the tracer that is counting it.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            libc::kill(libc::getpid(), libc::SIGSTOP);
            libc::execv(path.as_ptr(), arg_ptrs.as_ptr());
            let errno = *libc::__errno_location();
            libc::write(err_w, (&errno as *const i32).cast(), 4);
            libc::_exit(EXIT_CANNOT_RUN as i32);
        }
    }
    // SAFETY: closing our copy of the write end.
    unsafe { libc::close(err_w) };
    let mut status = 0;
    // SAFETY: waiting for our own child to stop.
    let r = unsafe { libc::waitpid(pid, &mut status, libc::WUNTRACED) };
    if r != pid || !libc::WIFSTOPPED(status) {
        return Err(failure(
            1,
            format!(
                "the command {} died before it could start",
                argv[0].to_string_lossy()
            ),
        ));
    }
    Ok(HeldChild {
        pid,
        exec_error: err_r,
        program: argv[0].to_string_lossy().into_owned(),
    })
}

impl HeldChild {
    /// Lets the child run into execve; fails like a shell if it cannot.
    pub fn release(self) -> Result<()> {
        // SAFETY: continuing our own stopped child.
        unsafe { libc::kill(self.pid, libc::SIGCONT) };
        let mut errno = 0i32;
        // SAFETY: reading 4 bytes into an i32.
        let n = unsafe { libc::read(self.exec_error, (&mut errno as *mut i32).cast(), 4) };
        // SAFETY: our own descriptor.
        unsafe { libc::close(self.exec_error) };
        if n == 4 {
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
        Ok(())
    }
}

/// State letter of /proc/PID/stat, or None when there is no such process.
pub fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The comm field is in parentheses and may contain anything.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().next()?.chars().next()
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
    Some(ProcIdentity { ppid, comm })
}

/// Checks that `pid` names a live process other than ourselves.
pub fn check_attach(pid: i32) -> Result<u32> {
    let upid = pid as u32;
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
