//! End-to-end: run the real tracer on the workload and hold its report to
//! the workload's declared calls, to the unit.
//!
//! Needs root (eBPF) and a built tracer (`cargo build -p zc-trace`, or
//! `ZC_TRACE_BIN`); without root each test says SKIPPED on stderr, and
//! fails under `CI=true`.

use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use zc_trace_tests::harness::{
    Proc, Report, TempDir, Traced, attach_tracer, catches_signal, kind_stats, kinds_table,
    mismatches, require_root, run_traced, scenario_args, signal, tracer_bin, u64_field, wait_until,
};
use zc_trace_tests::strace::MEASURED;
use zc_trace_tests::{Expect, expected, expected_per_process};

const WORKLOAD: &str = env!("CARGO_BIN_EXE_zc-workload");
const COUNT: u64 = 16;
const SIZE: u64 = 4096;
/// Not the workload's default (2), so a tracer that ignores threads shows.
const THREADS: u64 = 3;
const TRACING_LINE: &str = "zc-trace: tracing";

fn workload_cmd(dir: &TempDir, scenario: &str, count: u64, size: u64, threads: u64) -> Vec<String> {
    let mut cmd = vec![WORKLOAD.to_string()];
    cmd.extend(scenario_args(dir, scenario, count, size, threads));
    cmd
}

/// `zc-workload noop` traced: the dynamic loader's reads and mmaps, which
/// every traced run has and no scenario declares. Traced once per test
/// binary.
fn baseline() -> &'static Report {
    static BASE: OnceLock<Report> = OnceLock::new();
    BASE.get_or_init(|| {
        let dir = TempDir::new("baseline");
        let t = run_traced(
            &dir,
            "noop",
            &[],
            &workload_cmd(&dir, "noop", COUNT, SIZE, THREADS),
        );
        assert!(
            t.status.success(),
            "traced noop failed: {}\n{}",
            t.status,
            t.stderr
        );
        t.report
    })
}

/// Report entries of data syscalls that changed against the baseline but
/// are not declared: a call counted twice, or under the wrong fd kind.
/// (Anonymous mmaps are left out: threads add stacks.)
fn undeclared(syscalls: &Value, base: &Value, expect: &[Expect]) -> Vec<String> {
    let mut out = Vec::new();
    let Some(map) = syscalls.as_object() else {
        return out;
    };
    for (name, s) in map {
        if !MEASURED.contains(&name.as_str()) {
            continue;
        }
        for kind in s["by_fd_kind"]
            .as_object()
            .into_iter()
            .flat_map(|k| k.keys())
        {
            let declared = expect.iter().any(|e| e.syscall == name && e.kind == kind);
            if declared || (name == "mmap" && kind == "none") {
                continue;
            }
            let (g, b) = (
                kind_stats(syscalls, name, kind),
                kind_stats(base, name, kind),
            );
            if (g.count, g.errors, g.bytes) != (b.count, b.errors, b.bytes) {
                out.push(format!(
                    "{name}/{kind}: undeclared calls: traced {g:?}, baseline {b:?}"
                ));
            }
        }
    }
    out
}

/// The per-class byte totals must add up the per-syscall bytes: a copying
/// call's bytes on a character device, an O_DIRECT fd or a MSG_ZEROCOPY
/// socket go to `device`, `direct_io` and `zerocopy_sent`, the rest to its
/// class.
fn check_totals(r: &Report) {
    let syscalls = r.syscalls().as_object().expect("syscalls object");
    let on_kind = |class: &str, kind: &str| -> u64 {
        syscalls
            .values()
            .filter(|s| s["class"] == class)
            .map(|s| s["by_fd_kind"][kind]["bytes"].as_u64().unwrap_or(0))
            .sum()
    };
    let copying = ["copy_to_user", "copy_from_user"];
    for (kind, total) in [
        ("device", "/totals/bytes/device"),
        ("direct", "/totals/bytes/direct_io"),
        ("zerocopy", "/totals/bytes/zerocopy_sent"),
    ] {
        let sum: u64 = copying.iter().map(|c| on_kind(c, kind)).sum();
        assert_eq!(
            r.u64_at(total),
            sum,
            "{total} vs copying calls on {kind} fds"
        );
    }
    for (class, total) in [
        ("copy_to_user", "/totals/bytes/copied_to_user"),
        ("copy_from_user", "/totals/bytes/copied_from_user"),
        ("zero_copy", "/totals/bytes/zero_copy"),
    ] {
        let sum: u64 = syscalls
            .values()
            .filter(|s| s["class"] == class)
            .map(|s| u64_field(s, "/bytes"))
            .sum();
        let not_copied = ["device", "direct", "zerocopy"]
            .map(|kind| on_kind(class, kind))
            .iter()
            .sum();
        let not_copied = if copying.contains(&class) {
            not_copied
        } else {
            0
        };
        assert_eq!(
            r.u64_at(total),
            sum - not_copied,
            "{total} vs the bytes of the {class} syscalls"
        );
    }
    let syscalls = r.u64_at("/totals/syscalls");
    let switches = r.u64_at("/totals/mode_switches");
    assert!(
        switches >= 2 * syscalls,
        "mode_switches {switches} < 2 x syscalls {syscalls}"
    );
    check_cost(r, syscalls);

    // Every timed call is in its syscall's latency histogram, once; calls
    // whose entry was not seen (in progress at attach: a note says how
    // many) are not timed.
    let timed = r.0["totals"]["time_ns"].as_u64() != Some(0);
    let in_progress: u64 = r.0["notes"]
        .as_array()
        .expect("notes")
        .iter()
        .filter_map(|n| n.as_str()?.split_once(" call(s) were already in progress"))
        .map(|(n, _)| n.parse::<u64>().expect("a count"))
        .sum();
    let untimed = r.u64_at("/dropped/untimed_calls") + in_progress;
    let mut histogram_total = 0;
    let mut timed_calls = 0;
    for (name, s) in r.syscalls().as_object().expect("syscalls object") {
        let in_histogram: u64 = r.0["latency"][name]
            .as_array()
            .map(|b| b.iter().map(|n| n.as_u64().unwrap()).sum())
            .unwrap_or(0);
        let count = u64_field(s, "/count");
        assert!(
            in_histogram <= count,
            "latency histogram of {name}: {in_histogram} > {count} calls"
        );
        histogram_total += in_histogram;
        if timed && name != "exit" && name != "exit_group" {
            timed_calls += count;
        }
    }
    assert_eq!(
        histogram_total,
        timed_calls - untimed.min(timed_calls),
        "calls in the latency histograms"
    );
}

/// The tracer's own cost, as its mode measures it.
fn check_cost(r: &Report, syscalls: u64) {
    let cost = &r.0["cost"];
    let program = |name: &str| {
        cost["programs"]
            .as_array()
            .expect("cost.programs")
            .iter()
            .find(|p| p["program"] == name)
            .unwrap_or_else(|| panic!("{name}'s cost in {cost}"))
            .clone()
    };
    match cost["bpf_stats_mode"]
        .as_str()
        .expect("cost.bpf_stats_mode")
    {
        // --exact-cost: sys_exit ran at least once per counted call (it
        // runs for every process on the machine, traced or not).
        "always" => {
            assert_eq!(cost["bpf_stats"], true, "BPF run-time statistics are on");
            let exits = ["exit", "exit_group"]
                .iter()
                .map(|n| r.0["syscalls"][n]["count"].as_u64().unwrap_or(0))
                .sum::<u64>();
            let sys_exit = program("sys_exit");
            assert!(
                u64_field(&sys_exit, "/events") >= syscalls - exits,
                "sys_exit ran fewer times than the calls it counted"
            );
            assert!(u64_field(&sys_exit, "/run_time_ns") > 0);
        }
        // The default: on in windows (the first as the probes go live,
        // when zc-trace's own calls run sys_exit), scaled to the run.
        "sampled" => {
            assert_eq!(
                cost["bpf_stats"], true,
                "BPF run-time statistics were sampled"
            );
            let (on, live) = (
                u64_field(cost, "/bpf_stats_on_ns"),
                u64_field(cost, "/bpf_stats_live_ns"),
            );
            assert!(on > 0 && on <= live, "statistics on {on} ns of {live}");
            assert!(u64_field(&program("sys_exit"), "/events") > 0, "{cost}");
        }
        "off" => assert_eq!(cost["bpf_stats"], false, "--no-cost"),
        other => panic!("unknown cost mode {other}"),
    }
}

/// Traces `scenario` in wrap mode and checks every declared call exactly
/// (minus the baseline), plus the report's internal sums. Returns the run
/// for scenario-specific checks.
fn check_scenario(
    test: &str,
    scenario: &str,
    count: u64,
    size: u64,
    threads: u64,
    flags: &[&str],
) -> Option<Traced> {
    if !require_root(test) {
        return None;
    }
    let dir = TempDir::new(test);
    let base = baseline();
    let t = run_traced(
        &dir,
        scenario,
        flags,
        &workload_cmd(&dir, scenario, count, size, threads),
    );
    assert!(
        t.status.success(),
        "zc-trace -- zc-workload {scenario}: {}\n{}",
        t.status,
        t.stderr
    );
    assert_eq!(t.report.0["target"]["mode"], "wrap");
    assert_eq!(t.report.0["target"]["exit_code"], 0);

    let expect = expected(scenario, count, size, threads);
    let mut problems = mismatches(t.report.syscalls(), base.syscalls(), &expect);
    problems.extend(undeclared(t.report.syscalls(), base.syscalls(), &expect));
    assert!(
        problems.is_empty(),
        "zc-trace miscounted `zc-workload {scenario}` (count {count}, size {size}, threads \
         {threads}):\n{}\n\nreport (syscall/kind):\n{}\nbaseline:\n{}",
        problems.join("\n"),
        kinds_table(t.report.syscalls()),
        kinds_table(base.syscalls())
    );
    check_totals(&t.report);
    check_nothing_dropped(&t.report);
    Some(t)
}

/// A workload this small must not make the probes give anything up.
fn check_nothing_dropped(r: &Report) {
    let dropped = r.0["dropped"].as_object().expect("a dropped object");
    let lost: Vec<_> = dropped
        .iter()
        .filter(|(_, v)| v.as_u64() != Some(0))
        .collect();
    assert!(lost.is_empty(), "the probes dropped data: {lost:?}");
}

macro_rules! scenario_tests {
    ($($name:ident => $scenario:literal,)*) => {$(
        #[test]
        fn $name() {
            check_scenario(stringify!($name), $scenario, COUNT, SIZE, THREADS, &[]);
        }
    )*};
}

scenario_tests! {
    file_read => "file-read",
    file_pread => "file-pread",
    pipe => "pipe",
    socket => "socket",
    udp => "udp",
    sendfile => "sendfile",
    splice => "splice",
    copy_file_range => "copy-file-range",
    threads => "threads",
    errors => "errors",
}

/// The probe sums msg_len of at most 64 messages per call: 64 must all count.
#[test]
fn udp_largest_batch() {
    check_scenario(
        "udp_largest_batch",
        "udp",
        zc_trace_tests::MAX_MMSG,
        512,
        THREADS,
        &[],
    );
}

/// Every measured scenario in one process, with sizes that are not a
/// multiple of the page size (and a different count and thread number).
#[test]
fn all_unaligned() {
    check_scenario("all_unaligned", "all", 5, 1001, 4, &[]);
}

/// The default attaches sys_exit alone (--no-latency, kept for scripts,
/// says the same): the same exact counts and bytes, no time, and a note
/// saying what is not collected.
#[test]
fn all_untimed() {
    let Some(t) = check_scenario("all_untimed", "all", 5, 1001, 4, &["--no-latency"]) else {
        return;
    };
    assert_eq!(
        t.report.0["totals"]["time_ns"], 0,
        "--no-latency must not time calls"
    );
    assert_eq!(
        t.report.0["latency"],
        serde_json::json!({}),
        "no histograms"
    );
    let notes = t.report.0["notes"].to_string();
    assert!(notes.contains("calls were not timed"), "{notes}");
}

/// --latency times every call (sys_enter too), --exact-cost keeps the BPF
/// statistics on all along: the same exact counts, every call timed once
/// in its histogram, and the probes' exact run counts.
#[test]
fn all_timed_exact_cost() {
    let Some(t) = check_scenario(
        "all_timed_exact_cost",
        "all",
        5,
        1001,
        4,
        &["--latency", "--exact-cost"],
    ) else {
        return;
    };
    assert_ne!(t.report.0["totals"]["time_ns"], 0, "--latency times calls");
    assert_eq!(t.report.0["cost"]["bpf_stats_mode"], "always");
}

/// --no-cost: no BPF statistics at all, the same exact counts.
#[test]
fn all_no_cost() {
    let Some(t) = check_scenario("all_no_cost", "all", 5, 1001, 4, &["--no-cost"]) else {
        return;
    };
    assert_eq!(t.report.0["cost"]["bpf_stats_mode"], "off");
}

#[test]
fn mmap_write() {
    let Some(t) = check_scenario("mmap_write", "mmap-write", COUNT, SIZE, THREADS, &[]) else {
        return;
    };
    // Weak on purpose: the dynamic loader's copy-on-write faults on libc's
    // data pages are file faults in every run. The scenario's own faults
    // cannot be isolated: the mapping's pages come in by fault-around
    // (filemap_map_pages, no mm_filemap_fault event) when the file is
    // cached, and fault counts vary by a few between runs, so no baseline
    // difference is exact.
    let faults = t.report.u64_at("/totals/page_faults/file");
    assert!(
        faults > 0,
        "no file-backed page faults although write() read from a file mapping"
    );
    let mapped = t.report.u64_at("/totals/bytes/mapped");
    assert!(
        mapped >= COUNT * SIZE,
        "mapped {mapped} < the {} bytes mmap'd",
        COUNT * SIZE
    );
}

/// Both processes listed, each with its own calls.
fn check_fork_processes(r: &Report, parent_pid: u64, base: Option<&Report>) {
    let procs = r.processes();
    assert_eq!(
        procs.len(),
        2,
        "expected the workload and its child, got {procs:#?}"
    );
    let parent = r
        .process(parent_pid)
        .unwrap_or_else(|| panic!("no process {parent_pid}"));
    assert_eq!(parent["comm"], "zc-workload");
    let child = procs
        .iter()
        .find(|p| p["pid"].as_u64() != Some(parent_pid))
        .expect("a second process");
    assert_eq!(child["ppid"].as_u64(), Some(parent_pid), "the child's ppid");

    let (want_parent, want_child) = expected_per_process("fork", COUNT, SIZE, THREADS);
    // The baseline's only process is the workload itself.
    let base_syscalls = base.map_or(Value::Null, |b| b.processes()[0]["syscalls"].clone());
    let mut problems = mismatches(&parent["syscalls"], &base_syscalls, &want_parent);
    problems.extend(
        mismatches(&child["syscalls"], &Value::Null, &want_child)
            .into_iter()
            .map(|p| format!("child: {p}")),
    );
    assert!(
        problems.is_empty(),
        "fork: calls attributed to the wrong process:\n{}\nparent:\n{}\nchild:\n{}",
        problems.join("\n"),
        kinds_table(&parent["syscalls"]),
        kinds_table(&child["syscalls"])
    );
}

#[test]
fn fork() {
    let Some(t) = check_scenario("fork", "fork", COUNT, SIZE, THREADS, &[]) else {
        return;
    };
    let pid = u64_field(&t.report.0, "/target/pid");
    assert_eq!(
        baseline().processes().len(),
        1,
        "the noop baseline has one process"
    );
    check_fork_processes(&t.report, pid, Some(baseline()));
}

#[test]
fn exit_code_passes_through() {
    if !require_root("exit_code_passes_through") {
        return;
    }
    let out = Command::new(tracer_bin())
        .args(["--quiet", "--", "sh", "-c", "exit 7"])
        .output()
        .expect("run zc-trace");
    assert_eq!(
        out.status.code(),
        Some(7),
        "zc-trace -- sh -c 'exit 7'\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Starts `zc-workload wait-signal <scenario>`, attaches zc-trace with
/// `flags`, releases the workload once the probes are live and returns the
/// report with the workload's pid.
fn attach(test: &str, scenario: &str, flags: &[&str]) -> (Report, u64) {
    let dir = TempDir::new(test);
    let mut workload = Proc::spawn(Command::new(WORKLOAD).args(scenario_args(
        &dir,
        &format!("wait-signal {scenario}"),
        COUNT,
        SIZE,
        THREADS,
    )));
    let pid = workload.pid();
    wait_until(
        "the workload's SIGUSR1 handler",
        Duration::from_secs(10),
        || catches_signal(pid, libc::SIGUSR1),
    );
    let json = dir.join("attach.json");
    let mut tracer = attach_tracer(pid as u32, flags, &json);
    signal(pid, libc::SIGUSR1);
    let w = workload.wait_or_kill(Duration::from_secs(30));
    assert!(w.success(), "workload failed: {w}\n{}", workload.stderr());
    let status = tracer.wait_or_kill(Duration::from_secs(30));
    assert!(
        status.success(),
        "zc-trace -p {pid}: {status}\n{}",
        tracer.stderr()
    );
    let report = Report::load(&json);
    assert_eq!(report.0["target"]["mode"], "attach");
    assert_eq!(report.0["target"]["pid"].as_u64(), Some(pid as u64));
    (report, pid as u64)
}

/// In attach mode nothing precedes the scenario but signal handling, so the
/// declared calls are checked without a baseline.
fn check_attached(r: &Report, scenario: &str) {
    let expect = expected(scenario, COUNT, SIZE, THREADS);
    let mut problems = mismatches(r.syscalls(), &Value::Null, &expect);
    problems.extend(undeclared(r.syscalls(), &Value::Null, &expect));
    assert!(
        problems.is_empty(),
        "zc-trace -p miscounted `{scenario}`:\n{}\nreport:\n{}",
        problems.join("\n"),
        kinds_table(r.syscalls())
    );
    check_totals(r);
}

#[test]
fn attach_counts_exactly_what_follows() {
    if !require_root("attach_counts_exactly_what_follows") {
        return;
    }
    let (r, _) = attach("attach", "file-read", &[]);
    let read = kind_stats(r.syscalls(), "read", "file");
    assert_eq!(read.count, COUNT, "read/file after attach: {read:?}");
    check_attached(&r, "file-read");
}

#[test]
fn attach_follows_forks_with_f() {
    if !require_root("attach_follows_forks_with_f") {
        return;
    }
    let (r, pid) = attach("attach-fork", "fork", &["-f"]);
    check_attached(&r, "fork");
    check_fork_processes(&r, pid, None);
}

#[test]
fn ctrl_c_still_writes_the_report() {
    if !require_root("ctrl_c_still_writes_the_report") {
        return;
    }
    let dir = TempDir::new("ctrl-c");
    let json = dir.join("ctrl-c.json");
    let mut tracer = Proc::spawn(
        Command::new(tracer_bin())
            .arg("--json")
            .arg(&json)
            .arg("--")
            .arg(WORKLOAD)
            .args(["sleep", "--count", "30000"]),
    );
    tracer.wait_for_line(TRACING_LINE, Duration::from_secs(20));
    // The sleeper is the tracer's child, not ours: note it now to end it
    // whatever happens to the tracer.
    let sleepers = children(tracer.pid());
    let sent = Instant::now();
    signal(tracer.pid(), libc::SIGINT);
    let status = tracer.wait_timeout(Duration::from_secs(10));
    for pid in sleepers {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim() == "zc-workload" {
            signal(pid, libc::SIGKILL);
        }
    }
    let Some(status) = status else {
        panic!(
            "zc-trace did not exit within 10 s of SIGINT\nstderr:\n{}",
            tracer.stderr()
        );
    };
    eprintln!("zc-trace exited {status} {:?} after SIGINT", sent.elapsed());
    let r = Report::load(&json);
    assert_eq!(r.0["schema_version"], 2);
}

/// The child processes of `pid` (all its threads' children).
fn children(pid: i32) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return vec![];
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A wrapped command that ignores SIGINT, and a grandchild its shell left
/// running, do not outlive the tracer: nothing runs on untraced.
#[test]
fn ctrl_c_leaves_no_process_behind() {
    if !require_root("ctrl_c_leaves_no_process_behind") {
        return;
    }
    let dir = TempDir::new("ctrl-c-tree");
    let json = dir.join("tree.json");
    // A sleep of a duration no one else uses finds the grandchild in /proc.
    let marker = format!("300.{}", std::process::id());
    let mut tracer = Proc::spawn(
        Command::new(tracer_bin())
            .arg("--json")
            .arg(&json)
            .arg("--")
            .args(["sh", "-c", &format!("trap '' INT; sleep {marker}; true")]),
    );
    tracer.wait_for_line(TRACING_LINE, Duration::from_secs(20));
    let survivors = || {
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| c == format!("sleep\0{marker}\0").as_bytes())
            })
            .collect::<Vec<_>>()
    };
    wait_until("the grandchild to start", Duration::from_secs(10), || {
        !survivors().is_empty()
    });
    signal(tracer.pid(), libc::SIGINT);
    let status = tracer.wait_timeout(Duration::from_secs(15));
    let left = survivors();
    for pid in &left {
        signal(*pid, libc::SIGKILL);
    }
    assert!(
        status.is_some(),
        "zc-trace did not exit after SIGINT:\n{}",
        tracer.stderr()
    );
    assert!(
        left.is_empty(),
        "processes of the traced command outlived zc-trace: {left:?}"
    );
    let r = Report::load(&json);
    assert_eq!(r.0["schema_version"], 2);
}

/// Every process under `pid`, children first.
fn descendants(pid: i32) -> Vec<i32> {
    let mut all = children(pid);
    let mut i = 0;
    while i < all.len() {
        all.extend(children(all[i]));
        i += 1;
    }
    all
}

/// Whether process `pid` holds an fd that keeps the kernel's BPF run-time
/// statistics on.
fn holds_bpf_stats(pid: i32) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .any(|target| target.to_string_lossy().contains("bpf-stats"))
}

/// The BPF statistics cost every probe run two clock reads, so only
/// zc-trace itself may keep them on (by default in short windows): its
/// guard process and the command must not inherit the fd that does, or
/// they stay on as long as the command runs.
#[test]
fn bpf_stats_stay_with_zc_trace() {
    if !require_root("bpf_stats_stay_with_zc_trace") {
        return;
    }
    // --exact-cost: zc-trace holds the fd all run long, so a leak is seen.
    let mut tracer = Proc::spawn(
        Command::new(tracer_bin())
            .args(["--exact-cost", "--summary", "/dev/null", "--"])
            .args(["sleep", "2"]),
    );
    tracer.wait_for_line(TRACING_LINE, Duration::from_secs(20));
    // It turns them on as its sampling loop starts, just after that line.
    wait_until(
        "zc-trace --exact-cost to turn the statistics on",
        Duration::from_secs(10),
        || holds_bpf_stats(tracer.pid()),
    );
    let others = descendants(tracer.pid());
    let leaked: Vec<i32> = others
        .iter()
        .copied()
        .filter(|&p| holds_bpf_stats(p))
        .collect();
    assert!(!others.is_empty(), "the guard and the command run");
    assert!(
        leaked.is_empty(),
        "processes {leaked:?} of {others:?} hold the BPF statistics' fd"
    );
    assert!(
        tracer.wait_or_kill(Duration::from_secs(30)).success(),
        "{}",
        tracer.stderr()
    );
}
