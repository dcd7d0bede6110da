//! Bounded child processes. Every child runs in a process group of its own
//! with a deadline; past it, the whole group is killed. Its stderr is read
//! line by line and each line is stamped with the time it arrived (probes
//! live = the moment zc-trace's "tracing" line came in). The child is
//! reaped with wait4, which also gives its rusage (CPU time and peak RSS,
//! both including the children it reaped itself).

use std::ffi::OsString;
use std::io::{BufRead as _, BufReader};
use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

type Lines = Arc<Mutex<Vec<(Instant, String)>>>;

/// What wait4 reported, and when.
struct Reaped {
    at: Instant,
    status: i32,
    rusage: libc::rusage,
}

/// A running child.
pub struct Running {
    pid: libc::pid_t,
    what: String,
    started: Instant,
    deadline: Instant,
    lines: Lines,
    /// One message per output reader (stderr, and stdout if captured) at EOF.
    readers_done: mpsc::Receiver<()>,
    readers: usize,
    reaped_rx: mpsc::Receiver<Reaped>,
    reaped: Option<Reaped>,
}

/// A child that exited (or was killed).
pub struct Finished {
    pub what: String,
    pub status: i32,
    /// Spawn to reap.
    pub wall: Duration,
    pub ended: Instant,
    pub rusage: libc::rusage,
    /// stderr lines, with their arrival time after spawn.
    pub stderr: Vec<(Duration, String)>,
}

/// Spawns `argv` with stdin and stdout on /dev/null, stderr captured, in
/// its own process group, to be reaped before `timeout` (or killed).
pub fn spawn(argv: &[OsString], timeout: Duration) -> Result<Running> {
    spawn_with(argv, timeout, false)
}

/// [`spawn`], and with `capture_stdout` stdout is read into the same lines
/// as stderr.
fn spawn_with(argv: &[OsString], timeout: Duration, capture_stdout: bool) -> Result<Running> {
    let what = argv
        .iter()
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(if capture_stdout {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::piped())
        // dd's "copied, X s" line is parsed.
        .env("LC_ALL", "C")
        .process_group(0);
    let started = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("starting `{what}`"))?;
    let pid = child.id() as libc::pid_t;
    let stderr = child.stderr.take().expect("stderr is piped");
    let stdout = child.stdout.take();
    // `child` is dropped without waiting: wait4 below reaps it.
    drop(child);

    let lines: Lines = Arc::default();
    let (done_tx, readers_done) = mpsc::channel();
    let readers = 1 + usize::from(stdout.is_some());
    if let Some(stdout) = stdout {
        read_lines(stdout, lines.clone(), done_tx.clone());
    }
    read_lines(stderr, lines.clone(), done_tx);
    let (reaped_tx, reaped_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut status = 0;
        // SAFETY: rusage is a plain struct wait4 fills.
        let mut rusage: libc::rusage = unsafe { std::mem::zeroed() };
        loop {
            // SAFETY: waits for our own child.
            let r = unsafe { libc::wait4(pid, &mut status, 0, &mut rusage) };
            if r == pid {
                break;
            }
            if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                // Cannot happen for a child we spawned and nobody else waits for.
                status = -1;
                break;
            }
        }
        let _ = reaped_tx.send(Reaped {
            at: Instant::now(),
            status,
            rusage,
        });
    });
    Ok(Running {
        pid,
        what,
        started,
        deadline: started + timeout,
        lines,
        readers_done,
        readers,
        reaped_rx,
        reaped: None,
    })
}

/// Reads `from` line by line into `lines`, each stamped on arrival; says
/// on `done` when it reaches EOF.
fn read_lines(from: impl std::io::Read + Send + 'static, lines: Lines, done: mpsc::Sender<()>) {
    std::thread::spawn(move || {
        let mut r = BufReader::new(from);
        let mut buf = Vec::new();
        while matches!(r.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
            let line = String::from_utf8_lossy(&buf).trim_end().to_string();
            lines.lock().unwrap().push((Instant::now(), line));
            buf.clear();
        }
        let _ = done.send(());
    });
}

impl Running {
    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }

    fn poll_reaped(&mut self) -> bool {
        if self.reaped.is_none() {
            self.reaped = self.reaped_rx.try_recv().ok();
        }
        self.reaped.is_some()
    }

    /// When (since spawn) a stderr line containing `needle` arrived, if one has.
    fn line_at(&self, needle: &str) -> Option<Duration> {
        let lines = self.lines.lock().unwrap();
        let (at, _) = lines.iter().find(|(_, l)| l.contains(needle))?;
        Some(at.duration_since(self.started))
    }

    /// Time from spawn until a stderr line containing `needle` arrived;
    /// fails if the child exits first or `timeout` passes.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> Result<Duration> {
        let until = (Instant::now() + timeout).min(self.deadline);
        loop {
            if let Some(at) = self.line_at(needle) {
                return Ok(at);
            }
            if self.poll_reaped() {
                // It may have written the line just before exiting.
                self.wait_readers(Duration::from_secs(1));
                if let Some(at) = self.line_at(needle) {
                    return Ok(at);
                }
                bail!(
                    "`{}` exited before printing {needle:?}:\n{}",
                    self.what,
                    self.stderr_tail()
                );
            }
            if Instant::now() >= until {
                bail!(
                    "`{}` did not print {needle:?} within {timeout:?}",
                    self.what
                );
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn stderr_tail(&self) -> String {
        let lines = self.lines.lock().unwrap();
        let start = lines.len().saturating_sub(15);
        lines[start..]
            .iter()
            .map(|(_, l)| format!("  | {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits for the child until its deadline; past it, kills its process
    /// group and fails.
    pub fn wait(mut self) -> Result<Finished> {
        let mut timed_out = false;
        if self.reaped.is_none() {
            let left = self.deadline.saturating_duration_since(Instant::now());
            self.reaped = match self.reaped_rx.recv_timeout(left) {
                Ok(r) => Some(r),
                Err(_) => {
                    timed_out = true;
                    self.kill_group();
                    self.reaped_rx.recv_timeout(Duration::from_secs(10)).ok()
                }
            };
        }
        let Some(reaped) = self.reaped.take() else {
            bail!("`{}` could not be reaped after SIGKILL", self.what);
        };
        // Anything the child left behind in its group goes too.
        self.kill_group();
        // A descendant outside the group could hold stderr open: do not wait
        // for it long.
        self.wait_readers(Duration::from_secs(2));
        if timed_out {
            bail!(
                "`{}` did not finish within {:?}: killed\n{}",
                self.what,
                self.deadline.duration_since(self.started),
                self.stderr_tail()
            );
        }
        let stderr = self
            .lines
            .lock()
            .unwrap()
            .iter()
            .map(|(at, l)| (at.saturating_duration_since(self.started), l.clone()))
            .collect();
        Ok(Finished {
            what: std::mem::take(&mut self.what),
            status: reaped.status,
            wall: reaped.at.duration_since(self.started),
            ended: reaped.at,
            rusage: reaped.rusage,
            stderr,
        })
    }

    /// Waits (at most `limit`) until every output reader reached EOF.
    fn wait_readers(&mut self, limit: Duration) {
        let until = Instant::now() + limit;
        while self.readers > 0 {
            let left = until.saturating_duration_since(Instant::now());
            if self.readers_done.recv_timeout(left).is_err() {
                return;
            }
            self.readers -= 1;
        }
    }

    fn kill_group(&self) {
        // SAFETY: the group is the one this child leads (process_group(0));
        // only it and its descendants are in it. ESRCH when it is empty.
        unsafe { libc::kill(-self.pid, libc::SIGKILL) };
    }
}

impl Drop for Running {
    /// An abandoned child (an error elsewhere) is killed and reaped.
    fn drop(&mut self) {
        if self.reaped.is_none() && !self.poll_reaped() {
            self.kill_group();
            let _ = self.reaped_rx.recv_timeout(Duration::from_secs(10));
        }
    }
}

impl Finished {
    pub fn success(&self) -> bool {
        libc::WIFEXITED(self.status) && libc::WEXITSTATUS(self.status) == 0
    }

    /// Fails, with the end of stderr, unless the child exited with 0.
    pub fn check(&self) -> Result<()> {
        if self.success() {
            return Ok(());
        }
        let how = if libc::WIFEXITED(self.status) {
            format!("exit code {}", libc::WEXITSTATUS(self.status))
        } else if libc::WIFSIGNALED(self.status) {
            format!("killed by signal {}", libc::WTERMSIG(self.status))
        } else {
            format!("wait status {:#x}", self.status)
        };
        let start = self.stderr.len().saturating_sub(15);
        let tail: Vec<String> = self.stderr[start..]
            .iter()
            .map(|(_, l)| format!("  | {l}"))
            .collect();
        bail!("`{}` failed ({how}):\n{}", self.what, tail.join("\n"))
    }

    pub fn stderr_text(&self) -> String {
        self.stderr
            .iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// User + system CPU of the child and the descendants it reaped.
    pub fn cpu(&self) -> Duration {
        let tv = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
        };
        tv(self.rusage.ru_utime) + tv(self.rusage.ru_stime)
    }

    /// Peak RSS in KiB: the largest of the child's and of the descendants
    /// it reaped.
    pub fn maxrss_kib(&self) -> u64 {
        self.rusage.ru_maxrss.max(0) as u64
    }
}

/// Runs `argv` to completion (bounded by `timeout`).
pub fn run(argv: &[OsString], timeout: Duration) -> Result<Finished> {
    spawn(argv, timeout)?.wait()
}

/// CPU time so far of every thread of process `pid` (not its children),
/// in ns, from /proc/PID/task/*/schedstat (exact, unlike the tick-based
/// utime/stime of /proc/PID/stat). None once it is gone.
pub fn threads_cpu_ns(pid: libc::pid_t) -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let path = task.ok()?.path().join("schedstat");
        // A thread that just ended has no schedstat any more: its time is
        // lost from the sum, so only threads that live through the window
        // are counted correctly. zc-trace's threads do.
        if let Ok(s) = std::fs::read_to_string(path) {
            total += s.split_whitespace().next()?.parse::<u64>().ok()?;
        }
    }
    Some(total)
}

/// The first line a short command prints (stdout or stderr; tool
/// versions), within 10 s.
pub fn first_line(argv: &[&str]) -> Option<String> {
    let argv: Vec<OsString> = argv.iter().map(OsString::from).collect();
    let fin = spawn_with(&argv, Duration::from_secs(10), true)
        .ok()?
        .wait()
        .ok()?;
    fin.stderr
        .into_iter()
        .map(|(_, l)| l)
        .find(|l| !l.trim().is_empty())
}
