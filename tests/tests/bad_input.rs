//! Every user-facing failure: one line naming the cause and the fix, a
//! non-zero exit, no panic, and nothing traced or run when it fails early.

use std::{
    path::PathBuf,
    process::{Command, Output, Stdio},
};

fn zc_trace() -> PathBuf {
    if let Some(p) = std::env::var_os("ZC_TRACE_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().unwrap();
    let p = exe.parent().unwrap().parent().unwrap().join("zc-trace");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build -p zc-trace` first (or `cargo xtask test`)",
        p.display()
    );
    p
}

/// Tests that load eBPF need root; a skip is loud, and a failure under CI.
fn need_root(test: &str) -> bool {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test} needs root (eBPF) and CI runs as root"
    );
    eprintln!("SKIPPED: {test} needs root (eBPF)");
    false
}

fn run(args: &[&str]) -> Output {
    Command::new(zc_trace())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Asserts a one-line error containing every `needle`, and the exit code.
fn assert_fails(out: &Output, code: i32, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "exit code; stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("zc-trace: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "exactly one error line expected: {stderr}");
    for n in needles {
        assert!(errors[0].contains(n), "`{n}` missing from: {}", errors[0]);
    }
}

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("zc-trace-bad-input-{}-{name}", std::process::id()))
}

#[test]
fn missing_double_dash_is_explained() {
    let out = run(&["ls", "-l"]);
    assert_fails(&out, 2, &["put `--` before the command", "zc-trace -- ls"]);
}

#[test]
fn nothing_to_trace() {
    assert_fails(&run(&[]), 2, &["nothing to trace", "-p"]);
}

#[test]
fn bad_arguments_do_not_panic() {
    assert_fails(&run(&["-p", "abc"]), 2, &["not a process id"]);
    assert_fails(&run(&["--interval", "0s", "--", "true"]), 2, &["zero"]);
    assert_fails(
        &run(&["--duration", "fast", "--", "true"]),
        2,
        &["duration"],
    );
    assert_fails(&run(&["-p", "1", "--", "true"]), 2, &["not both"]);
    assert_fails(&run(&["--frobnicate"]), 2, &["--frobnicate"]);
}

#[test]
fn not_root_says_how_to_get_privileges() {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        assert_fails(&run(&["--", "true"]), 1, &["needs root", "sudo"]);
        return;
    }
    // As root, drop to nobody with setpriv (util-linux) to see the message.
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--",
        ])
        .arg(zc_trace())
        .args(["--", "true"])
        .output()
        .expect("setpriv (util-linux) is on every Debian machine");
    assert_fails(&out, 1, &["needs root", "sudo", "CAP_BPF"]);
}

#[test]
fn kernel_without_btf_is_named() {
    if !need_root("kernel_without_btf_is_named") {
        return;
    }
    let out = Command::new(zc_trace())
        .args(["--", "true"])
        .env("ZC_TRACE_VMLINUX", "/nonexistent/vmlinux")
        .output()
        .unwrap();
    assert_fails(&out, 1, &["no BTF", "CONFIG_DEBUG_INFO_BTF"]);
}

#[test]
fn command_not_found_exits_127_like_a_shell() {
    if !need_root("command_not_found_exits_127_like_a_shell") {
        return;
    }
    assert_fails(
        &run(&["--", "zc-no-such-command-xyz"]),
        127,
        &["command not found", "zc-no-such-command-xyz"],
    );
    assert_fails(&run(&["--", "./no/such/path"]), 127, &["command not found"]);
    // Found but not executable: 126.
    let f = temp_path("not-exec");
    std::fs::write(&f, "data").unwrap();
    assert_fails(
        &run(&["--", f.to_str().unwrap()]),
        126,
        &["cannot run", "not an executable"],
    );
    let _ = std::fs::remove_file(f);
}

#[test]
fn unwritable_output_fails_before_the_command_runs() {
    if !need_root("unwritable_output_fails_before_the_command_runs") {
        return;
    }
    let marker = temp_path("marker");
    let out = run(&[
        "--json",
        "/proc/zc-trace-no-such-dir/report.json",
        "--",
        "touch",
        marker.to_str().unwrap(),
    ]);
    assert_fails(
        &out,
        1,
        &[
            "cannot write the JSON report to /proc/zc-trace-no-such-dir/report.json",
            "writable",
        ],
    );
    assert!(
        !marker.exists(),
        "the command must not run when the output path is bad"
    );
    let out = run(&["--summary", "/proc/zc-trace-summary", "--", "true"]);
    assert_fails(&out, 1, &["cannot write the summary"]);
}

#[test]
fn pid_that_does_not_exist() {
    if !need_root("pid_that_does_not_exist") {
        return;
    }
    // A pid that just exited and was reaped.
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    assert_fails(
        &run(&["-p", &pid.to_string()]),
        1,
        &["no process with PID", "ps -p"],
    );
    assert_fails(&run(&["-p", "2147483647"]), 1, &["no process with PID"]);
}

#[test]
fn pid_of_a_zombie() {
    if !need_root("pid_of_a_zombie") {
        return;
    }
    // Not waited for until after the check: a zombie.
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    for _ in 0..200 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        if stat
            .rsplit(')')
            .next()
            .unwrap()
            .trim_start()
            .starts_with('Z')
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_fails(&run(&["-p", &pid.to_string()]), 1, &["already exited"]);
    child.wait().unwrap();
}

#[test]
fn own_pid_is_refused() {
    if !need_root("own_pid_is_refused") {
        return;
    }
    // `sh -c 'exec zc-trace -p $$'`: the shell's pid becomes zc-trace's.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("exec {} -p $$", zc_trace().display()))
        .output()
        .unwrap();
    assert_fails(&out, 1, &["cannot trace itself"]);
}

#[test]
fn missing_optional_hook_warns_and_traces_the_rest() {
    if !need_root("missing_optional_hook_warns_and_traces_the_rest") {
        return;
    }
    let json = temp_path("missing-hook.json");
    let out = Command::new(zc_trace())
        .args(["--quiet", "--json", json.to_str().unwrap(), "--", "true"])
        .env("ZC_TRACE_TEST_MISSING_HOOK", "page_fault_user")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("warning: kernel lacks the page_fault_user tracepoint"),
        "{stderr}"
    );
    assert!(
        stderr.contains("user-mode page faults will read 0"),
        "{stderr}"
    );
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert!(
        report["syscalls"]["execve"]["count"].as_u64() == Some(1),
        "the rest is traced"
    );
    let notes = report["notes"].to_string();
    assert!(
        notes.contains("page_fault_user"),
        "the report says what it lacks: {notes}"
    );
    let _ = std::fs::remove_file(json);
}

/// A kernel before 6.2 (no kfunc bpf_rdonly_cast, which the probes read fd
/// tables through): the run says fd kinds are unknown, and every count
/// and byte is still there. `dd` as in two_runs_at_once below.
#[test]
fn missing_kfunc_warns_and_counts_with_unknown_fd_kinds() {
    if !need_root("missing_kfunc_warns_and_counts_with_unknown_fd_kinds") {
        return;
    }
    let json = temp_path("missing-kfunc.json");
    let out = Command::new(zc_trace())
        .args(["--quiet", "--json", json.to_str().unwrap(), "--"])
        .args(["dd", "if=/dev/zero", "of=/dev/null", "bs=1", "count=1000"])
        .env("ZC_TRACE_TEST_MISSING_HOOK", "bpf_rdonly_cast")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("kernel lacks the kfunc bpf_rdonly_cast")
            && stderr.contains("fd kinds will show as unknown"),
        "{stderr}"
    );
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    for call in ["read", "write"] {
        let by_kind = &report["syscalls"][call]["by_fd_kind"];
        assert!(
            by_kind["unknown"]["count"].as_u64() >= Some(1000) && by_kind["device"].is_null(),
            "{call}: {by_kind}"
        );
    }
    let _ = std::fs::remove_file(json);
}

#[test]
fn missing_required_hook_is_an_error() {
    if !need_root("missing_required_hook_is_an_error") {
        return;
    }
    let out = Command::new(zc_trace())
        .args(["--", "true"])
        .env("ZC_TRACE_TEST_MISSING_HOOK", "sys_exit")
        .output()
        .unwrap();
    assert_fails(&out, 1, &["lacks the sys_exit tracepoint"]);
}

#[test]
fn two_runs_at_once_do_not_disturb_each_other() {
    if !need_root("two_runs_at_once_do_not_disturb_each_other") {
        return;
    }
    // dd bs=1 makes exactly `count` reads of /dev/zero and writes to
    // /dev/null (both character devices: fd kind "device").
    let spawn = |count: u64, json: &PathBuf| {
        Command::new(zc_trace())
            .args([
                "--quiet",
                "--json",
                json.to_str().unwrap(),
                "--",
                "dd",
                "if=/dev/zero",
                "of=/dev/null",
                "bs=1",
            ])
            .arg(format!("count={count}"))
            // Not /dev/null: dd's own report on stderr would count as
            // writes to a character device.
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (ja, jb) = (temp_path("a.json"), temp_path("b.json"));
    let (a, b) = (spawn(30_000, &ja), spawn(50_000, &jb));
    assert!(a.wait_with_output().unwrap().status.success());
    assert!(b.wait_with_output().unwrap().status.success());
    for (json, count) in [(&ja, 30_000), (&jb, 50_000)] {
        let r: serde_json::Value = serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap();
        assert_eq!(
            r["syscalls"]["read"]["by_fd_kind"]["device"]["count"],
            count,
            "{}",
            json.display()
        );
        assert_eq!(
            r["syscalls"]["write"]["by_fd_kind"]["device"]["count"],
            count,
            "{}",
            json.display()
        );
        assert_eq!(
            r["syscalls"]["write"]["by_fd_kind"]["device"]["bytes"],
            count
        );
        assert_eq!(r["processes"].as_array().unwrap().len(), 1);
        let _ = std::fs::remove_file(json);
    }
}

/// Issue 13: `--json` into a directory that does not exist yet (a fresh
/// clone has no `results/`) creates it, as `-o` does.
#[test]
fn json_into_a_missing_directory_creates_it() {
    if !need_root("json_into_a_missing_directory_creates_it") {
        return;
    }
    let top = temp_path("fresh-clone");
    let json = top.join("results/nested/report.json");
    let out = run(&["--quiet", "--json", json.to_str().unwrap(), "--", "true"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert!(report["schema_version"].as_u64().is_some(), "{report}");
    let _ = std::fs::remove_dir_all(top);
}

/// Issue 15 item 18: an existing output survives a run that never starts
/// (it used to be emptied), and two outputs on one path are refused.
#[test]
fn existing_outputs_survive_a_run_that_never_starts() {
    if !need_root("existing_outputs_survive_a_run_that_never_starts") {
        return;
    }
    let f = temp_path("kept.txt");
    std::fs::write(&f, "yesterday's summary\n").unwrap();
    let p = f.to_str().unwrap();
    let out = run(&["--summary", p, "--", "/no/such/command"]);
    assert_fails(&out, 127, &["command not found"]);
    let out = run(&["--json", p, "--summary", p, "--", "true"]);
    assert_fails(
        &out,
        2,
        &["two outputs would be written to", "its own path"],
    );
    let dir = temp_path("kept-dir");
    let in_dir = dir.join("report.json");
    let out = run(&[
        "-o",
        dir.to_str().unwrap(),
        "--json",
        in_dir.to_str().unwrap(),
        "--",
        "true",
    ]);
    assert_fails(&out, 2, &["two outputs would be written to"]);
    assert_eq!(
        std::fs::read_to_string(&f).unwrap(),
        "yesterday's summary\n"
    );
    let _ = std::fs::remove_file(f);
    let _ = std::fs::remove_dir_all(dir);
}

/// A small tmpfs, filled up, removed on drop.
struct FullDisk(PathBuf);

impl FullDisk {
    fn new(name: &str) -> Option<Self> {
        let dir = temp_path(name);
        std::fs::create_dir_all(&dir).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            let _ = std::fs::remove_dir(&dir);
            return None;
        }
        // Fill it: dd stops at ENOSPC.
        let _ = Command::new("dd")
            .args(["if=/dev/zero", "bs=4k"])
            .arg(format!("of={}", dir.join("filler").display()))
            .stderr(Stdio::null())
            .status();
        Some(Self(dir))
    }
}

impl Drop for FullDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Issue 15 item 18: when a file cannot be written (a full disk), the
/// summary still reaches the user, the error is one line, the exit is not
/// 0, and no half-written file is left.
#[test]
fn a_full_disk_still_gives_the_summary() {
    if !need_root("a_full_disk_still_gives_the_summary") {
        return;
    }
    let Some(disk) = FullDisk::new("full") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "cannot mount a tmpfs"
        );
        eprintln!("SKIPPED: a_full_disk_still_gives_the_summary cannot mount a tmpfs");
        return;
    };
    let summary = disk.0.join("summary.txt");
    let json = disk.0.join("report.json");
    let out = run(&[
        "--summary",
        summary.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
        "--",
        "dd",
        "if=/dev/zero",
        "of=/dev/null",
        "count=3",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Copy ledger"), "no summary: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("zc-trace: error:"))
        .collect();
    assert!(!errors.is_empty(), "{stderr}");
    assert!(errors[0].contains("No space left on device"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(&disk.0)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, ["filler"], "half-written files left behind");
}

/// Issue 15 item 16: arguments and paths that are not UTF-8 (any bytes
/// are valid on Linux) used to panic with exit 101.
#[test]
fn non_utf8_arguments_and_paths_work() {
    if !need_root("non_utf8_arguments_and_paths_work") {
        return;
    }
    use std::os::unix::ffi::OsStrExt as _;
    let dir = temp_path("latin1");
    std::fs::create_dir_all(&dir).unwrap();
    let odd = std::ffi::OsStr::from_bytes(b"caf\xe9");
    let json = dir.join(odd).with_extension("json");
    let marker = dir.join(odd);
    let out = Command::new(zc_trace())
        .arg("--quiet")
        .arg("--json")
        .arg(&json)
        .args(["--", "touch"])
        .arg(&marker)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        marker.exists(),
        "the command did not get its argument intact"
    );
    assert!(json.exists(), "no report at the non-UTF-8 path");
    let _ = std::fs::remove_dir_all(dir);
}

/// Issue 15 item 17: a closed stderr (`2>&-`, or a pipe nobody reads)
/// must not panic or lose the report files.
#[test]
fn a_closed_stderr_does_not_lose_the_report() {
    if !need_root("a_closed_stderr_does_not_lose_the_report") {
        return;
    }
    // A pipe whose reader is gone: every write to stderr fails with EPIPE.
    let dir = temp_path("closed-pipe");
    let mut child = Command::new(zc_trace())
        .arg("-o")
        .arg(&dir)
        .args(["--", "true"])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stderr.take());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert!(dir.join("report.html").exists(), "-o was not written");
    let _ = std::fs::remove_dir_all(&dir);

    // fd 2 closed: the report file must not become fd 2 and get the text.
    let json = temp_path("closed-fd.json");
    let status = Command::new("bash")
        .arg("-c")
        .arg("\"$0\" --json \"$1\" -- true 2>&-")
        .arg(zc_trace())
        .arg(&json)
        .status()
        .unwrap();
    assert!(status.success(), "{status}");
    let text = std::fs::read_to_string(&json).unwrap();
    let report: Result<serde_json::Value, _> = serde_json::from_str(&text);
    assert!(report.is_ok(), "the report is not JSON:\n{text}");
    let _ = std::fs::remove_file(json);
}

/// Issue 15 item 17: a huge --duration used to panic; --interval had no
/// lower bound (1ns ate half a core).
#[test]
fn durations_and_intervals_are_bounded() {
    assert_fails(
        &run(&["--duration", "99999999999999999999s", "--", "true"]),
        2,
        &["too long", "8760h"],
    );
    assert_fails(
        &run(&["--duration", "1e308", "--", "true"]),
        2,
        &["too long"],
    );
    assert_fails(
        &run(&["--duration", "3 parsecs", "--", "true"]),
        2,
        &["not a duration like 500ms"],
    );
    assert_fails(
        &run(&["--interval", "1ns", "--", "true"]),
        2,
        &["10ms to 1h"],
    );
}

/// Issue 15 item 19: `report` and `compare` read a file whole; past the
/// documented size they refuse instead of eating memory.
#[test]
fn report_refuses_a_file_past_the_size_limit() {
    let big = temp_path("huge.json");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len((256 << 20) + 1).unwrap(); // sparse: costs no disk
    let dir = temp_path("huge-out");
    let out = run(&["report", big.to_str().unwrap(), "-o", dir.to_str().unwrap()]);
    assert_fails(&out, 1, &["more than the 256.0 MiB a report may be"]);
    let out = run(&["compare", big.to_str().unwrap(), big.to_str().unwrap()]);
    assert_fails(&out, 1, &["more than the 256.0 MiB"]);
    let _ = std::fs::remove_file(big);
}

/// `--json /dev/stdout` streams the report (a link to a pipe is not a file
/// to replace: the rename that protects files must not replace the link).
#[test]
fn json_to_dev_stdout_streams_it() {
    if !need_root("json_to_dev_stdout_streams_it") {
        return;
    }
    let out = run(&["--quiet", "--json", "/dev/stdout", "--", "true"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(report["schema_version"].is_u64());
    let link = std::fs::symlink_metadata("/dev/stdout").unwrap();
    assert!(link.file_type().is_symlink(), "/dev/stdout was replaced");
}
