//! The wrapped command runs as it would untraced (signal state, mask,
//! environment, fds; scripts without `#!`), signals reach only processes
//! zc-trace still holds, the tree ends with zc-trace, and calls whose
//! number changes in flight (sigreturn, 32-bit calls) are named right.
//! Issues 10 (items 1, 2, 5) and 15 (items 12-15, 20).

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use zc_trace_tests::harness::{
    Proc, Report, TempDir, attach_tracer, require_root, run_traced, signal, skip, syscall_stats,
    tracer_bin, wait_until,
};

const TRACING_LINE: &str = "zc-trace: tracing";

/// Runs `argv` with SIGUSR2 ignored and SIGUSR1 blocked, as a parent may
/// leave them: what the command must see too. (perl sets them: std's
/// Command resets the mask after `pre_exec`.)
fn with_parent_state(argv: &[&str]) -> Output {
    const LAUNCHER: &str = "use POSIX; sigprocmask(SIG_BLOCK, POSIX::SigSet->new(SIGUSR1)); \
                            $SIG{USR2} = 'IGNORE'; exec @ARGV or die";
    Command::new("perl")
        .args(["-e", LAUNCHER, "--"])
        .args(argv)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {argv:?} under perl: {e}"))
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn issue10_command_gets_the_signal_state_environment_and_fds_of_an_untraced_run() {
    if !require_root("issue10_command_gets_the_signal_state_environment_and_fds") {
        return;
    }
    // Straight from the launcher, not through sh: dash clears the mask.
    let tracer = tracer_bin().display().to_string();
    for argv in [
        &["grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"][..],
        &["env"],
        &["ls", "/proc/self/fd"],
    ] {
        let plain = with_parent_state(argv);
        let traced = with_parent_state(&[&[tracer.as_str(), "-q", "--"][..], argv].concat());
        assert!(
            traced.status.success(),
            "{}",
            String::from_utf8_lossy(&traced.stderr)
        );
        assert_eq!(
            stdout(&traced),
            stdout(&plain),
            "`{}` differs under zc-trace",
            argv.join(" ")
        );
        if argv[0] == "grep" {
            assert!(
                stdout(&plain).contains("SigBlk:\t0000000000000200"),
                "the launcher did not block SIGUSR1:\n{}",
                stdout(&plain)
            );
        }
    }
}

#[test]
fn issue10_seq_into_head_dies_of_sigpipe_as_untraced() {
    if !require_root("issue10_seq_into_head_dies_of_sigpipe_as_untraced") {
        return;
    }
    let out = Command::new(tracer_bin())
        .args(["-q", "--", "bash", "-c"])
        .arg("seq 1 1000000 | head -1; echo ${PIPESTATUS[0]}")
        .stdin(Stdio::null())
        .output()
        .expect("run zc-trace");
    assert_eq!(
        stdout(&out),
        "1\n141\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two signals caught by a bash trap: two rt_sigreturn, named, with no
/// errors or bytes, and nothing reported lost; timed or not.
#[test]
fn issue10_rt_sigreturn_is_named_and_not_a_loss() {
    if !require_root("issue10_rt_sigreturn_is_named_and_not_a_loss") {
        return;
    }
    let dir = TempDir::new("sigreturn");
    let cmd: Vec<String> = ["bash", "-c", "trap : USR1; kill -USR1 $$; kill -USR1 $$"]
        .map(String::from)
        .to_vec();
    for flags in [&[][..], &["--latency"][..]] {
        let t = run_traced(&dir, "trap", flags, &cmd);
        assert!(t.status.success(), "{flags:?}: {}", t.stderr);
        let s = syscall_stats(t.report.syscalls(), "rt_sigreturn");
        assert_eq!((s.count, s.errors, s.bytes), (2, 0, 0), "{flags:?}: {s:?}");
        let names = t.report.syscalls().as_object().expect("syscalls").keys();
        let odd: Vec<_> = names.filter(|n| n.starts_with("syscall_")).collect();
        assert!(odd.is_empty(), "{flags:?}: unnamed syscalls {odd:?}");
        check_nothing_lost(&t.report, &t.stderr);
    }
}

fn check_nothing_lost(r: &Report, stderr: &str) {
    let dropped = r.0["dropped"].as_object().expect("a dropped object");
    let lost: Vec<_> = dropped
        .iter()
        .filter(|(_, v)| v.as_u64() != Some(0))
        .collect();
    assert!(lost.is_empty(), "records reported lost: {lost:?}");
    assert!(!stderr.contains("WARNING"), "a warning:\n{stderr}");
}

/// A 32-bit program calling getpid and brk through `int $0x80` (i386
/// numbers 20 and 45, which x86_64 reads as writev and recvfrom), then
/// catching two signals: i386 returns from a plain handler with sigreturn,
/// from an SA_SIGINFO one with rt_sigreturn.
const M32_PROGRAM: &str = r#"
#include <signal.h>
#include <unistd.h>
static void plain(int s) { (void)s; }
static void info(int s, siginfo_t *i, void *c) { (void)s; (void)i; (void)c; }
int main(void) {
    long r;
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(20));
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(45), "b"(0));
    signal(SIGUSR1, plain);
    struct sigaction sa = {0};
    sa.sa_sigaction = info;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR2, &sa, 0);
    kill(getpid(), SIGUSR1);
    kill(getpid(), SIGUSR2);
    return 0;
}
"#;

#[test]
fn issue10_32bit_calls_are_named_from_the_i386_table_and_move_no_bytes() {
    let test = "issue10_32bit_calls_are_named_from_the_i386_table";
    if !require_root(test) {
        return;
    }
    let dir = TempDir::new("m32");
    let src = dir.join("m32.c");
    std::fs::write(&src, M32_PROGRAM).unwrap();
    let bin = dir.join("m32");
    let built = Command::new("gcc")
        .arg("-m32")
        .arg("-o")
        .arg(&bin)
        .arg(&src)
        .output();
    if !built.as_ref().is_ok_and(|o| o.status.success()) {
        skip(
            test,
            "needs gcc -m32 (cargo xtask setup installs gcc-multilib)",
        );
        return;
    }
    let t = run_traced(&dir, "m32", &[], &[bin.display().to_string()]);
    assert!(t.status.success(), "{}", t.stderr);
    let calls = t.report.syscalls();
    for name in [
        "compat:getpid",
        "compat:brk",
        "compat:exit_group",
        "compat:execve",
    ] {
        assert!(
            syscall_stats(calls, name).count >= 1,
            "no {name} in {calls}"
        );
    }
    for name in ["writev", "recvfrom", "read"] {
        assert_eq!(syscall_stats(calls, name).count, 0, "{name} in {calls}");
    }
    let bytes = &t.report.0["totals"]["bytes"];
    // disk_read and cow_copied are not booked from syscall arguments: they
    // count page-cache fills and copy-on-write copies the program causes,
    // and a cold exec of the i386 libc makes some of both (relocations).
    for (class, n) in bytes.as_object().expect("bytes") {
        if class == "disk_read" || class == "cow_copied" {
            continue;
        }
        assert_eq!(
            n.as_u64(),
            Some(0),
            "{class} bytes booked for a 32-bit program"
        );
    }
    check_nothing_lost(&t.report, &t.stderr);
}

/// Attaching to a process blocked in a call: that call is counted when it
/// returns, with a note (timed runs only: it is the call's time that is
/// missing), not a "records lost" warning.
#[test]
fn issue10_call_in_progress_at_attach_is_not_a_loss() {
    if !require_root("issue10_call_in_progress_at_attach_is_not_a_loss") {
        return;
    }
    let dir = TempDir::new("in-progress");
    let json = dir.join("attach.json");
    let mut sleeper = Proc::spawn(Command::new("sleep").arg("600"));
    let pid = sleeper.pid();
    // In clock_nanosleep (230) before zc-trace attaches.
    wait_until("the sleep to sleep", Duration::from_secs(10), || {
        current_syscall(pid).as_deref() == Some("230")
    });
    let mut tracer = attach_tracer(sleeper.pid() as u32, &["--latency"], &json);
    // The sleep returns (interrupted) when the signal ends it.
    signal(sleeper.pid(), libc::SIGTERM);
    sleeper.wait_or_kill(Duration::from_secs(30));
    let status = tracer.wait_or_kill(Duration::from_secs(30));
    assert!(status.success(), "{}", tracer.stderr());
    let r = Report::load(&json);
    assert_eq!(syscall_stats(r.syscalls(), "clock_nanosleep").count, 1);
    check_nothing_lost(&r, &tracer.stderr());
    let notes = r.0["notes"].to_string();
    assert!(notes.contains("in progress when tracing began"), "{notes}");
}

/// A file without `#!` runs under /bin/sh, as execvp (and a shell) runs it.
#[test]
fn issue15_script_without_shebang_runs_under_sh() {
    if !require_root("issue15_script_without_shebang_runs_under_sh") {
        return;
    }
    let dir = TempDir::new("no-shebang");
    let script = dir.join("script");
    std::fs::write(&script, "echo ran with \"$1\"\nexit 7\n").unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .unwrap();
    let out = Command::new(tracer_bin())
        .args(["-q", "--"])
        .arg(&script)
        .arg("arg")
        .stdin(Stdio::null())
        .output()
        .expect("run zc-trace");
    assert_eq!(
        stdout(&out),
        "ran with arg\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(7));
}

/// The pids of processes whose command line is exactly `argv`.
fn pids_running(argv: &[&str]) -> Vec<i32> {
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want))
        .collect()
}

/// After `kill -9` of zc-trace, nothing of the command's tree runs on: not
/// the command, not a grandchild, not one that left for its own session.
#[test]
fn issue15_kill_9_of_zc_trace_ends_the_whole_tree() {
    if !require_root("issue15_kill_9_of_zc_trace_ends_the_whole_tree") {
        return;
    }
    let marker = format!("{}", 300 + std::process::id() % 1000);
    let (a, b) = (format!("{marker}.1"), format!("{marker}.2"));
    let mut tracer = Proc::spawn(Command::new(tracer_bin()).args([
        "--",
        "sh",
        "-c",
        &format!("sleep {a} & setsid sleep {b} & wait"),
    ]));
    tracer.wait_for_line(TRACING_LINE, Duration::from_secs(20));
    let left = || [pids_running(&["sleep", &a]), pids_running(&["sleep", &b])].concat();
    wait_until("both sleeps to start", Duration::from_secs(10), || {
        left().len() == 2
    });
    signal(tracer.pid(), libc::SIGKILL);
    tracer.wait_or_kill(Duration::from_secs(10));
    let ended = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        left().is_empty()
    });
    let survivors = left();
    for pid in &survivors {
        signal(*pid, libc::SIGKILL);
    }
    assert!(
        ended,
        "processes outlived `kill -9` of zc-trace: {survivors:?}"
    );
}

/// Runs `zc-trace -- [wrapper...] bash -c TRAP` as the foreground job of
/// a pseudo-terminal, types ^C once the trap is set, and returns how many
/// SIGINTs the traced bash got (zc-trace ends it 2 s later if it is still
/// running).
fn sigints_from_one_ctrl_c(test: &str, wrapper: &[&str]) -> Option<usize> {
    if Command::new("script").arg("-V").output().is_err() {
        skip(test, "needs script(1) from util-linux for a terminal");
        return None;
    }
    let dir = TempDir::new("ctrl-c-once");
    let (log, ready) = (dir.join("got"), dir.join("ready"));
    let inner = format!(
        "trap 'echo INT >> {log}' INT; touch {ready}; while :; do sleep 0.05; done",
        log = log.display(),
        ready = ready.display()
    );
    let shell = format!(
        "exec {} -q -- {} bash -c \"{inner}\"",
        tracer_bin().display(),
        wrapper.join(" ")
    );
    let mut term = Command::new("script")
        .args(["-q", "-e", "-c", &shell, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run script");
    wait_until("the traced trap to be set", Duration::from_secs(30), || {
        ready.exists()
    });
    use std::io::Write as _;
    let mut stdin = term.stdin.take().expect("stdin");
    stdin.write_all(b"\x03").expect("write ^C");
    stdin.flush().unwrap();
    let ended = (0..200).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        term.try_wait().ok().flatten().is_some()
    });
    if !ended {
        let _ = term.kill();
    }
    drop(stdin);
    assert!(ended, "zc-trace did not end after ^C");
    Some(
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .count(),
    )
}

/// The terminal sends ^C to the whole foreground job, the command
/// included: zc-trace does not pass it on a second time. (bash may merge
/// two close SIGINTs into one, so the second case shows it: a command that
/// left the terminal's job gets no ^C, untraced or traced.)
#[test]
fn issue15_ctrl_c_reaches_the_command_once() {
    let test = "issue15_ctrl_c_reaches_the_command_once";
    if !require_root(test) {
        return;
    }
    if let Some(n) = sigints_from_one_ctrl_c(test, &[]) {
        assert_eq!(n, 1, "the command got {n} SIGINTs for one ^C");
    }
    if let Some(n) = sigints_from_one_ctrl_c(test, &["setsid"]) {
        assert_eq!(
            n, 0,
            "^C reached a command outside the terminal's job {n} times"
        );
    }
}

/// After the command exits, a stop (SIGTERM to zc-trace, passed on as
/// with --duration) signals nothing: its pid, reused by an unrelated
/// process, is left alone.
#[test]
fn issue15_a_reused_pid_is_never_signalled() {
    let test = "issue15_a_reused_pid_is_never_signalled";
    if !require_root(test) {
        return;
    }
    let dir = TempDir::new("stale-pid");
    let pidfile = dir.join("pid");
    let json = dir.join("stale.json");
    // The command exits at once; a child keeps the run going until
    // zc-trace is stopped.
    let mut tracer = Proc::spawn(
        Command::new(tracer_bin())
            .args(["--json"])
            .arg(&json)
            .args(["--", "sh", "-c"])
            .arg(format!(
                "echo $$ > {}; sleep 30 & exit 0",
                pidfile.display()
            )),
    );
    wait_until("the command's pid", Duration::from_secs(20), || {
        std::fs::read_to_string(&pidfile).is_ok_and(|s| s.ends_with('\n'))
    });
    let old: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_until("the command to be reaped", Duration::from_secs(10), || {
        !std::path::Path::new(&format!("/proc/{old}")).exists()
    });
    // Hand the pid to a stranger: the next pid is the last one plus one.
    let mut stranger = None;
    for _ in 0..20 {
        let _ = std::fs::write("/proc/sys/kernel/ns_last_pid", (old - 1).to_string());
        let child = Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        if child.id() as i32 == old {
            stranger = Some(child);
            break;
        }
        let mut child = child;
        let _ = child.kill();
        let _ = child.wait();
    }
    let Some(mut stranger) = stranger else {
        skip(test, "could not get the old pid reused (ns_last_pid)");
        signal(tracer.pid(), libc::SIGTERM);
        tracer.wait_or_kill(Duration::from_secs(30));
        return;
    };
    signal(tracer.pid(), libc::SIGTERM);
    let status = tracer.wait_or_kill(Duration::from_secs(30));
    let alive = stranger.try_wait().ok().flatten().is_none();
    let _ = stranger.kill();
    let _ = stranger.wait();
    assert!(
        status.success() || status.code().is_some(),
        "{}",
        tracer.stderr()
    );
    assert!(
        alive,
        "zc-trace signalled pid {old} after its command was reaped"
    );
}

/// `-p` with a thread id traces that thread's process.
#[test]
fn issue15_attach_to_a_thread_id_traces_its_process() {
    if !require_root("issue15_attach_to_a_thread_id_traces_its_process") {
        return;
    }
    let dir = TempDir::new("thread-id");
    let json = dir.join("thread.json");
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        // SAFETY: gettid has no preconditions.
        tx.send(unsafe { libc::gettid() }).unwrap();
        let _ = stop_rx.recv_timeout(Duration::from_secs(60));
    });
    let tid = rx.recv().unwrap();
    let pid = std::process::id();
    assert_ne!(tid as u32, pid);
    let mut tracer = Proc::spawn(
        Command::new(tracer_bin())
            .args(["-p", &tid.to_string(), "--duration", "1s", "--json"])
            .arg(&json),
    );
    let status = tracer.wait_or_kill(Duration::from_secs(30));
    stop_tx.send(()).unwrap();
    thread.join().unwrap();
    assert!(status.success(), "{}", tracer.stderr());
    assert!(
        tracer
            .stderr()
            .contains(&format!("{tid} is a thread of process {pid}")),
        "{}",
        tracer.stderr()
    );
    let r = Report::load(&json);
    assert_eq!(r.0["target"]["pid"].as_u64(), Some(pid as u64));
}

/// Inside a PID namespace the probes' pids and zc-trace's differ: both
/// modes refuse with one line naming the fix, rather than count nothing
/// (wrap) or trace another process (attach).
#[test]
fn issue15_a_pid_namespace_is_refused_clearly() {
    let test = "issue15_a_pid_namespace_is_refused_clearly";
    if !require_root(test) {
        return;
    }
    let tracer = tracer_bin().display().to_string();
    for args in [&["--", "true"][..], &["-p", "1", "--duration", "1s"]] {
        let out = Command::new("unshare")
            .args(["--pid", "--fork", "--mount-proc", &tracer])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run unshare");
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("unshare failed") {
            skip(test, "cannot create a PID namespace here");
            return;
        }
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("runs in a PID namespace") && stderr.contains("--pid=host"),
            "{args:?}: {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    }
}

/// The signal's bit in a /proc/PID/status mask line (`SigIgn:`, ...).
fn in_mask(pid: i32, field: &str, sig: i32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .unwrap_or_else(|| panic!("no {field} in {status}"));
    u64::from_str_radix(hex.trim(), 16).expect("hex mask") & (1 << (sig - 1)) != 0
}

/// A parent that ignores SIGINT (a script's background job) gets a
/// zc-trace that ignores it too, as the command does: Ctrl-C does not stop
/// the trace of a job the shell shielded from it.
#[test]
fn issue10_a_signal_ignored_by_the_parent_stays_ignored() {
    if !require_root("issue10_a_signal_ignored_by_the_parent_stays_ignored") {
        return;
    }
    let mut tracer = Proc::spawn(
        Command::new("perl")
            .args(["-e", "$SIG{INT} = 'IGNORE'; exec @ARGV or die", "--"])
            .arg(tracer_bin())
            .args(["--", "sleep", "30"]),
    );
    tracer.wait_for_line(TRACING_LINE, Duration::from_secs(20));
    let pid = tracer.pid();
    let (ignored, caught) = (
        in_mask(pid, "SigIgn:", libc::SIGINT),
        in_mask(pid, "SigCgt:", libc::SIGINT),
    );
    signal(pid, libc::SIGTERM);
    let status = tracer.wait_or_kill(Duration::from_secs(30));
    assert!(
        ignored && !caught,
        "zc-trace listens for SIGINT its parent ignored"
    );
    assert_eq!(
        status.code(),
        Some(128 + libc::SIGTERM),
        "{}",
        tracer.stderr()
    );
}

/// The state letter of /proc/PID/stat.
fn state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..]
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

/// The syscall a thread is in, from /proc/PID/syscall (its first field).
fn current_syscall(pid: i32) -> Option<String> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/syscall")).ok()?;
    s.split_whitespace().next().map(str::to_owned)
}

/// A sleep stopped and continued resumes through restart_syscall, a call
/// whose number the kernel sets in flight: named as strace names it.
#[test]
fn issue10_restart_syscall_is_named() {
    if !require_root("issue10_restart_syscall_is_named") {
        return;
    }
    let dir = TempDir::new("restart");
    let json = dir.join("restart.json");
    let mut tracer = Proc::spawn(
        Command::new(tracer_bin())
            .arg("--json")
            .arg(&json)
            .args(["--", "sleep", "8"]),
    );
    tracer.wait_for_line(TRACING_LINE, Duration::from_secs(20));
    wait_until("the sleep to start", Duration::from_secs(10), || {
        !pids_running(&["sleep", "8"]).is_empty()
    });
    let sleeper = pids_running(&["sleep", "8"])[0];
    // x86_64 clock_nanosleep is 230, restart_syscall 219.
    let in_call = |nr: &str| current_syscall(sleeper).as_deref() == Some(nr);
    wait_until("the sleep to sleep", Duration::from_secs(10), || {
        in_call("230")
    });
    signal(sleeper, libc::SIGSTOP);
    wait_until("the sleep to stop", Duration::from_secs(10), || {
        state(sleeper) == Some('T')
    });
    signal(sleeper, libc::SIGCONT);
    wait_until("the sleep to restart", Duration::from_secs(10), || {
        in_call("219")
    });
    signal(tracer.pid(), libc::SIGTERM);
    tracer.wait_or_kill(Duration::from_secs(30));
    let r = Report::load(&json);
    let sleep = syscall_stats(r.syscalls(), "clock_nanosleep");
    assert_eq!((sleep.count, sleep.errors), (1, 1), "{}", r.syscalls());
    assert!(
        syscall_stats(r.syscalls(), "restart_syscall").count >= 1,
        "{}",
        r.syscalls()
    );
    let names = r.syscalls().as_object().expect("syscalls").keys();
    let odd: Vec<_> = names.filter(|n| n.starts_with("syscall_")).collect();
    assert!(odd.is_empty(), "unnamed syscalls {odd:?}");
}
