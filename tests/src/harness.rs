//! What the end-to-end tests share: skipping (loudly) when they cannot run,
//! finding the tracer, temporary directories, child processes with time
//! limits, and reading the tracer's JSON report.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::Expect;

/// Whether skips must fail: CI sets `CI=true`, and a test that silently
/// does not run there is a test that does not exist.
pub fn skips_fail() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Reports that `test` cannot run here: a loud line on stderr, or a panic
/// under `CI=true`.
pub fn skip(test: &str, why: &str) {
    let msg = format!("SKIPPED: {test} {why}");
    if skips_fail() {
        panic!("{msg} (CI=true: a skipped test is a failed test)");
    }
    // Straight to fd 2: the test harness captures eprintln! of passing
    // tests, and a skip must be seen.
    let _ = writeln!(std::io::stderr(), "\n!!!!! {msg} !!!!!\n");
}

/// True when running as root (needed to load eBPF); otherwise skips.
pub fn require_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    skip(test, "needs root (eBPF)");
    false
}

/// The tracer binary: `$ZC_TRACE_BIN`, else `zc-trace` next to the test's
/// own `deps` directory (`target/<profile>/zc-trace`).
pub fn tracer_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("ZC_TRACE_BIN") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "ZC_TRACE_BIN={} does not exist", p.display());
        return p;
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test>-<hash>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| panic!("unexpected test binary location {}", exe.display()));
    let bin = profile_dir.join("zc-trace");
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build -p zc-trace` first (same profile as the tests), \
         or point ZC_TRACE_BIN at the tracer",
        bin.display()
    );
    bin
}

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "zc-trace-tests-{tag}-{}-{}-{nanos}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process whose stderr is collected line by line as it comes, so a
/// test can wait for a given line and still show everything on failure.
pub struct Proc {
    pub child: Child,
    lines: Receiver<String>,
    log: Arc<Mutex<String>>,
    what: String,
}

impl Proc {
    /// Spawns `cmd` with stdin and stdout closed, stderr captured.
    pub fn spawn(cmd: &mut Command) -> Self {
        Self::spawn_keeping_stdout(cmd.stdout(Stdio::null()))
    }

    /// Spawns `cmd` with stdin closed, stderr captured and stdout as `cmd`
    /// sets it.
    pub fn spawn_keeping_stdout(cmd: &mut Command) -> Self {
        let what = format!("{cmd:?}");
        // SAFETY: signal() is async-signal-safe and touches no memory of ours.
        unsafe {
            cmd.pre_exec(|| {
                default_interrupt_signals();
                Ok(())
            });
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = channel();
        let log = Arc::new(Mutex::new(String::new()));
        let log2 = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut l = log2.lock().unwrap_or_else(|e| e.into_inner());
                l.push_str(&line);
                l.push('\n');
                drop(l);
                let _ = tx.send(line);
            }
        });
        Self {
            child,
            lines,
            log,
            what,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Everything the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits for a stderr line starting with `prefix`; panics after
    /// `timeout` or if stderr closes first.
    pub fn wait_for_line(&mut self, prefix: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    panic!(
                        "no stderr line starting with {prefix:?} within {timeout:?} from {}\n\
                         stderr:\n{}",
                        self.what,
                        self.stderr()
                    );
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait();
                    panic!(
                        "{} closed stderr ({status:?}) before a line starting with {prefix:?}\n\
                         stderr:\n{}",
                        self.what,
                        self.stderr()
                    );
                }
            }
        }
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits up to `timeout` for the process to exit; kills it and panics
    /// (showing its stderr) if it does not.
    pub fn wait_or_kill(&mut self, timeout: Duration) -> ExitStatus {
        match self.wait_timeout(timeout) {
            Some(status) => status,
            None => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "{} did not exit within {timeout:?}\nstderr:\n{}",
                    self.what,
                    self.stderr()
                );
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Gives SIGINT and SIGQUIT their default action in a child about to exec.
/// A suite started as a background job of a non-interactive shell (nohup,
/// `&` in a script) inherits both ignored, and zc-trace by design keeps a
/// signal its parent ignored ignored: the tests that stop a tracer with
/// SIGINT would then hang, depending on how the suite was started.
fn default_interrupt_signals() {
    // SAFETY: resetting a disposition to SIG_DFL has no preconditions.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_DFL);
        libc::signal(libc::SIGQUIT, libc::SIG_DFL);
    }
}

/// `zc-trace -p PID FLAGS --json JSON`, once it says it is tracing.
pub fn attach_tracer(pid: u32, flags: &[&str], json: &Path) -> Proc {
    let mut tracer = Proc::spawn(
        Command::new(tracer_bin())
            .arg("-p")
            .arg(pid.to_string())
            .args(flags)
            .arg("--json")
            .arg(json),
    );
    tracer.wait_for_line("zc-trace: tracing", Duration::from_secs(20));
    tracer
}

/// Sends `sig` to `pid`; panics if it cannot.
pub fn signal(pid: i32, sig: libc::c_int) {
    // SAFETY: kill has no memory preconditions.
    let r = unsafe { libc::kill(pid, sig) };
    assert_eq!(
        r,
        0,
        "kill({pid}, {sig}): {}",
        std::io::Error::last_os_error()
    );
}

/// Whether process `pid` has a handler installed for `sig` (the SigCgt mask
/// of /proc/PID/status).
pub fn catches_signal(pid: i32, sig: libc::c_int) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (sig - 1)) != 0)
}

/// Polls until `cond` holds; panics with `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Count, errors and bytes of one report entry (a syscall, or one fd kind
/// of it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub count: u64,
    pub errors: u64,
    pub bytes: u64,
}

/// The tracer's JSON report.
#[derive(Clone, Debug)]
pub struct Report(pub Value);

impl Report {
    /// Reads and parses `path`; panics with the file's start if it is not
    /// JSON, or if `schema_version` is not 2.
    pub fn load(path: &Path) -> Self {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("cannot read report {}: {e}", path.display()));
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!(
                "report {} is not JSON ({e}); it starts with:\n{}",
                path.display(),
                text.chars().take(2000).collect::<String>()
            )
        });
        assert_eq!(
            v["schema_version"],
            2,
            "schema_version of {}",
            path.display()
        );
        Self(v)
    }

    pub fn syscalls(&self) -> &Value {
        &self.0["syscalls"]
    }

    /// The `processes` entry of `pid`.
    pub fn process(&self, pid: u64) -> Option<&Value> {
        self.processes()
            .iter()
            .find(|p| p["pid"].as_u64() == Some(pid))
    }

    pub fn processes(&self) -> &[Value] {
        self.0["processes"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Checks that the per-process rows' calls add up to the totals'.
    pub fn assert_rows_add_up(&self) {
        let in_rows: u64 = self
            .processes()
            .iter()
            .map(|p| u64_field(p, "/totals/syscalls"))
            .sum();
        assert_eq!(
            in_rows,
            self.u64_at("/totals/syscalls"),
            "calls in the per-process rows"
        );
    }

    /// The processes the per-process rows stand for (a row summed by name
    /// or cgroup stands for `summed` of them).
    pub fn processes_in_rows(&self) -> u64 {
        self.processes()
            .iter()
            .map(|p| p["summed"].as_u64().unwrap_or(1).max(1))
            .sum()
    }

    /// A number at `pointer` (JSON pointer, e.g. "/totals/syscalls");
    /// panics if it is missing or not an unsigned integer.
    pub fn u64_at(&self, pointer: &str) -> u64 {
        u64_field(&self.0, pointer)
    }
}

/// The unsigned integer at JSON `pointer` of `v`; panics if absent.
pub fn u64_field(v: &Value, pointer: &str) -> u64 {
    v.pointer(pointer)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no unsigned integer at {pointer} in the report"))
}

fn stats_of(v: Option<&Value>) -> Stats {
    let Some(v) = v else { return Stats::default() };
    let get = |f: &str| {
        v[f].as_u64()
            .unwrap_or_else(|| panic!("field {f} is not an unsigned integer in {v}"))
    };
    Stats {
        count: get("count"),
        errors: get("errors"),
        bytes: get("bytes"),
    }
}

/// `syscalls[name].by_fd_kind[kind]` of a `syscalls` object (top-level or
/// one process's); zeros when absent.
pub fn kind_stats(syscalls: &Value, name: &str, kind: &str) -> Stats {
    stats_of(syscalls.get(name).and_then(|s| s["by_fd_kind"].get(kind)))
}

/// `syscalls[name]` (all fd kinds); zeros when absent.
pub fn syscall_stats(syscalls: &Value, name: &str) -> Stats {
    stats_of(syscalls.get(name))
}

/// Compares every expectation with `syscalls` minus `baseline` (same
/// shape; pass `Value::Null` for no baseline). Returns one line per
/// mismatch, empty when all match exactly.
pub fn mismatches(syscalls: &Value, baseline: &Value, expect: &[Expect]) -> Vec<String> {
    let mut out = Vec::new();
    for e in expect {
        let got = kind_stats(syscalls, e.syscall, e.kind);
        let base = kind_stats(baseline, e.syscall, e.kind);
        let diff = |g: u64, b: u64| g as i128 - b as i128;
        let (count, errors, bytes) = (
            diff(got.count, base.count),
            diff(got.errors, base.errors),
            diff(got.bytes, base.bytes),
        );
        if (count, errors, bytes) != (e.count as i128, e.errors as i128, e.bytes as i128) {
            out.push(format!(
                "{}/{}: expected count {} errors {} bytes {}, got count {count} errors {errors} \
                 bytes {bytes} (traced {got:?} minus baseline {base:?})",
                e.syscall, e.kind, e.count, e.errors, e.bytes
            ));
        }
    }
    out
}

/// The fd kinds recorded for each syscall of a `syscalls` object: for
/// failure messages.
pub fn kinds_table(syscalls: &Value) -> String {
    let mut rows: BTreeMap<String, Stats> = BTreeMap::new();
    if let Some(map) = syscalls.as_object() {
        for (name, s) in map {
            if let Some(kinds) = s["by_fd_kind"].as_object() {
                for kind in kinds.keys() {
                    rows.insert(format!("{name}/{kind}"), kind_stats(syscalls, name, kind));
                }
            }
        }
    }
    rows.iter()
        .map(|(k, s)| format!("  {k}: {s:?}\n"))
        .collect()
}

/// The workload's command line for `scenario` ("wait-signal X" allowed):
/// creates the input file in `dir` when the scenario needs one, and a fresh
/// `--file2` path each call.
pub fn scenario_args(
    dir: &TempDir,
    scenario: &str,
    count: u64,
    size: u64,
    threads: u64,
) -> Vec<String> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let mut args: Vec<String> = scenario.split_whitespace().map(String::from).collect();
    let inner = args.last().cloned().unwrap_or_default();
    for (flag, v) in [("--count", count), ("--size", size), ("--threads", threads)] {
        args.push(flag.into());
        args.push(v.to_string());
    }
    if crate::NEEDS_FILE.contains(&inner.as_str()) {
        let input = dir.join(&format!("input-{count}x{size}"));
        if !input.exists() {
            crate::write_input_file(&input, count * size)
                .unwrap_or_else(|e| panic!("create {}: {e}", input.display()));
        }
        args.push("--file".into());
        args.push(input.display().to_string());
    }
    if crate::NEEDS_FILE2.contains(&inner.as_str()) {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        args.push("--file2".into());
        args.push(dir.join(&format!("output-{n}")).display().to_string());
    }
    args
}

/// What one traced run left behind.
pub struct Traced {
    pub status: ExitStatus,
    pub report: Report,
    pub stderr: String,
}

/// Runs `zc-trace --quiet --json <dir>/<tag>.json <flags> -- <cmd>` and
/// waits (at most a minute) for it; panics if it produced no report.
pub fn run_traced(dir: &TempDir, tag: &str, flags: &[&str], cmd: &[String]) -> Traced {
    run_traced_with_env(dir, tag, flags, &[], cmd)
}

/// `run_traced` with variables `env` set for the tracer (its test knobs; the
/// command inherits them with the rest of the tracer's environment).
pub fn run_traced_with_env(
    dir: &TempDir,
    tag: &str,
    flags: &[&str],
    env: &[(&str, &str)],
    cmd: &[String],
) -> Traced {
    let json = dir.join(&format!("{tag}.json"));
    let mut c = Command::new(tracer_bin());
    c.envs(env.iter().copied())
        .arg("--quiet")
        .arg("--json")
        .arg(&json)
        .args(flags)
        .arg("--")
        .args(cmd);
    let mut p = Proc::spawn(&mut c);
    let status = p.wait_or_kill(Duration::from_secs(60));
    // Let the stderr reader catch up with what was written before exit.
    wait_until(
        "the tracer's stderr to close",
        Duration::from_secs(10),
        || {
            matches!(
                p.lines.try_recv(),
                Err(std::sync::mpsc::TryRecvError::Disconnected)
            )
        },
    );
    let stderr = p.stderr();
    assert!(
        json.is_file(),
        "zc-trace wrote no report ({status}) for {cmd:?}\nstderr:\n{stderr}"
    );
    Traced {
        status,
        report: Report::load(&json),
        stderr,
    }
}
