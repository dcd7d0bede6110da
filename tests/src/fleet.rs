//! What the fleet tests share (issue 11): a process that copies exactly the
//! bytes it is fed, cgroups made and removed for one test, and the tracer
//! started with its stdout captured.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use crate::harness::{Proc, wait_until};

/// `dd bs=1 of=/dev/null` reading a pipe we write: one read and one
/// write per byte fed, so its calls are known to the byte.
pub struct Feeder {
    pub child: Child,
    stdin: Option<ChildStdin>,
}

impl Feeder {
    /// Starts dd and waits until it blocks reading its stdin.
    pub fn start() -> Self {
        let child = Command::new("dd")
            .args(["bs=1", "of=/dev/null", "status=none"])
            .env("LC_ALL", "C")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn dd");
        let mut f = Self { stdin: None, child };
        f.stdin = f.child.stdin.take();
        f.wait_drained();
        f
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Feeds `n` bytes and waits until dd has copied them all and blocks
    /// reading again.
    pub fn feed(&mut self, n: usize) {
        let stdin = self.stdin.as_mut().expect("dd's stdin is open");
        stdin.write_all(&vec![b'x'; n]).expect("feed dd");
        self.wait_drained();
    }

    /// The pipe empty and dd blocked in read(0, ...) (/proc/PID/syscall
    /// names the call a blocked task is in): every byte fed has been read
    /// and written out.
    fn wait_drained(&self) {
        let pid = self.pid();
        let fd = self.stdin.as_ref().map(|s| s.as_raw_fd());
        wait_until("dd to drain its pipe", Duration::from_secs(30), || {
            let mut queued: libc::c_int = 0;
            // SAFETY: FIONREAD writes one int.
            let empty = fd.is_none_or(|fd| {
                let r = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut queued) };
                r == 0 && queued == 0
            });
            let call = std::fs::read_to_string(format!("/proc/{pid}/syscall")).unwrap_or_default();
            empty && call.starts_with("0 0x0 ")
        });
    }

    /// Closes the pipe: dd reads end of file and exits.
    pub fn finish(mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where cgroup v2 is mounted: /sys/fs/cgroup (unified layout) or
/// /sys/fs/cgroup/unified (hybrid), from /proc/self/mounts.
pub fn cgroup2_root() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let (_, dir, fs) = (f.next()?, f.next()?, f.next()?);
        (fs == "cgroup2").then(|| PathBuf::from(dir))
    })
}

/// A cgroup v2 directory made for one test and removed after it (its
/// processes are moved back to the root first).
pub struct Cgroup {
    pub path: PathBuf,
}

impl Cgroup {
    pub fn new(tag: &str) -> Self {
        let root = cgroup2_root().expect("cgroup v2 is mounted");
        let path = root.join(format!("zc-trace-test-{tag}-{}", std::process::id()));
        std::fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        Self { path }
    }

    /// A child cgroup inside this one.
    pub fn child(&self, name: &str) -> PathBuf {
        let p = self.path.join(name);
        std::fs::create_dir(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
        p
    }

    /// Moves process `pid` into this cgroup.
    pub fn enter(&self, pid: u32) {
        move_to(&self.path, pid);
    }
}

/// Moves process `pid` into the cgroup directory `dir`.
pub fn move_to(dir: &Path, pid: u32) {
    let procs = dir.join("cgroup.procs");
    std::fs::write(&procs, pid.to_string())
        .unwrap_or_else(|e| panic!("move {pid} to {}: {e}", procs.display()));
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let root = cgroup2_root().expect("cgroup v2 is mounted");
        let mut dirs: Vec<PathBuf> = walk(&self.path);
        // Deepest first: rmdir needs empty cgroups.
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in &dirs {
            let procs = std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.lines() {
                let _ = std::fs::write(root.join("cgroup.procs"), pid);
            }
            let _ = std::fs::remove_dir(d);
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_owned()];
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(walk(&e.path()));
            }
        }
    }
    out
}

/// The tracer with its stdout captured (read whole by `stdout`) and its
/// stderr collected as `Proc` does.
pub struct Tracer {
    pub proc: Proc,
    stdout: std::thread::JoinHandle<Vec<u8>>,
}

impl Tracer {
    pub fn spawn(cmd: &mut Command) -> Self {
        cmd.stdout(Stdio::piped());
        let mut proc = Proc::spawn_keeping_stdout(cmd);
        let mut out = proc.child.stdout.take().expect("piped stdout");
        let stdout = std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = out.read_to_end(&mut v);
            v
        });
        Self { proc, stdout }
    }

    /// Waits for the tracer to exit and returns what it wrote to stdout.
    pub fn stdout(mut self) -> (std::process::ExitStatus, Vec<u8>, String) {
        let status = self.proc.wait_or_kill(Duration::from_secs(60));
        let out = self.stdout.join().expect("stdout reader");
        (status, out, self.proc.stderr())
    }
}

/// Runs `argv` (an absolute path first) with environment `env` as a new
/// process born in cgroup `dir` (clone3 with CLONE_INTO_CGROUP), so that
/// its first call in the cgroup is its execve, as under wrap mode; waits
/// for it and returns its wait status.
pub fn run_born_in(dir: &Path, argv: &[&str], env: &[&str]) -> i32 {
    use std::ffi::CString;
    let cstrings = |v: &[&str]| -> Vec<CString> {
        v.iter()
            .map(|s| CString::new(*s).expect("no NUL"))
            .collect()
    };
    let (args, envs) = (cstrings(argv), cstrings(env));
    let ptrs = |v: &[CString]| -> Vec<*const libc::c_char> {
        v.iter()
            .map(|c| c.as_ptr())
            .chain([std::ptr::null()])
            .collect()
    };
    let (arg_ptrs, env_ptrs) = (ptrs(&args), ptrs(&envs));
    let cgroup = std::fs::File::open(dir).unwrap_or_else(|e| panic!("open {}: {e}", dir.display()));
    /// include/uapi/linux/sched.h: struct clone_args (CLONE_ARGS_SIZE_VER2).
    #[repr(C)]
    #[derive(Default)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
        set_tid: u64,
        set_tid_size: u64,
        cgroup: u64,
    }
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    let args_in = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..Default::default()
    };
    // SAFETY: like fork; the child only makes async-signal-safe calls
    // (execve, _exit) on memory prepared before the clone. It keeps our
    // stdio: any other call before the execve would be the cgroup's.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args_in as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if pid == 0 {
        unsafe {
            libc::execve(arg_ptrs[0], arg_ptrs.as_ptr(), env_ptrs.as_ptr());
            libc::_exit(127);
        }
    }
    assert!(pid > 0, "clone3: {}", std::io::Error::last_os_error());
    let mut status = 0;
    // SAFETY: waiting for our own child.
    while unsafe { libc::waitpid(pid as i32, &mut status, 0) } < 0 {}
    status
}

/// The sum of every series of `metric` in an OpenMetrics text (what
/// `zc-trace serve` answers at /metrics).
pub fn metric_sum(text: &str, metric: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(metric)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
