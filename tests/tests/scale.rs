//! Exact at scale (issue 15, items 7-10): a shell that starts thousands of
//! short-lived processes (a `make -j`, a CI script) must not fill the
//! tracer's maps. The totals equal `strace -f -c`'s, nothing is dropped,
//! and the per-process detail stays bounded yet adds up to the totals.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use zc_trace_tests::harness::{Proc, Report, TempDir, require_root, syscall_stats, tracer_bin};
use zc_trace_tests::strace::{Row, have_strace, parse_summary};

/// Processes the report keeps one by one (zc-trace's collector/processes.rs).
const ONE_BY_ONE: usize = 256;

/// `bash -c` running `/bin/true` `n` times: n + 2 processes (bash, the
/// `seq` of the command substitution, the n children).
fn true_loop(n: u64) -> Vec<String> {
    vec![
        "bash".into(),
        "-c".into(),
        format!("for i in $(seq {n}); do /bin/true; done"),
    ]
}

/// Runs `tool ARGS -- CMD` in `dir`, which must succeed within `limit`.
fn run(dir: &TempDir, tool: &Path, args: &[&OsStr], cmd: &[String], limit: Duration) {
    let mut p = Proc::spawn(
        Command::new(tool)
            .args(args)
            .arg("--")
            .args(cmd)
            .current_dir(dir.path()),
    );
    let status = p.wait_or_kill(limit);
    assert!(
        status.success(),
        "{} {args:?} -- {cmd:?}: {status}\n{}",
        tool.display(),
        p.stderr()
    );
}

fn strace_summary(dir: &TempDir, cmd: &[String], limit: Duration) -> BTreeMap<String, Row> {
    let out = dir.join("strace-c.txt");
    let args = ["-f".as_ref(), "-c".as_ref(), "-o".as_ref(), out.as_os_str()];
    run(dir, Path::new("strace"), &args, cmd, limit);
    let text = std::fs::read_to_string(&out).expect("strace -c output");
    parse_summary(&text).unwrap_or_else(|e| panic!("strace -c output: {e}\n{text}"))
}

fn traced(dir: &TempDir, cmd: &[String], limit: Duration) -> Report {
    let json = dir.join("report.json");
    let args = ["--quiet".as_ref(), "--json".as_ref(), json.as_os_str()];
    run(dir, &tracer_bin(), &args, cmd, limit);
    Report::load(&json)
}

/// Runs the loop under strace and under zc-trace and checks every syscall,
/// the drops, and that the per-process rows add up to the totals.
fn check_true_loop(test: &str, n: u64, limit: Duration) {
    if !have_strace(test) || !require_root(test) {
        return;
    }
    let dir = TempDir::new("scale");
    let cmd = true_loop(n);
    let strace = strace_summary(&dir, &cmd, limit);
    let report = traced(&dir, &cmd, limit);
    let processes = n + 2;

    assert_eq!(counts_dropped(&report), vec![], "{n} processes: dropped");
    let syscalls = report.syscalls();
    assert_eq!(syscall_stats(syscalls, "execve").count, processes);
    assert_eq!(syscall_stats(syscalls, "clone").count, n + 1);
    let names: BTreeSet<&str> = strace
        .keys()
        .map(String::as_str)
        .chain(
            syscalls
                .as_object()
                .expect("syscalls")
                .keys()
                .map(String::as_str),
        )
        .collect();
    let mut problems = Vec::new();
    for name in names {
        let z = syscall_stats(syscalls, name);
        let s = strace.get(name).copied().unwrap_or_default();
        let want = match name {
            // strace -c counts a call when it returns: exit_group never does.
            "exit_group" => (processes, 0),
            // Not a question of scale: which syscall rt_sigreturn is counted
            // under (and bash's start-up stats of its environment) are
            // checked by the e2e tests; here only that none is lost.
            "rt_sigreturn" | "syscall_4294967295" | "newfstatat" => continue,
            _ => (s.calls, s.errors),
        };
        if (z.count, z.errors) != want {
            problems.push(format!(
                "{name}: strace {:?}, zc-trace {} calls {} errors, want {want:?}",
                s, z.count, z.errors
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "{n} processes:\n{}",
        problems.join("\n")
    );

    // The per-process detail is bounded, yet every call and every process
    // is in one row or another.
    let rows = report.processes();
    assert!(
        rows.len() <= ONE_BY_ONE + 257,
        "{} process rows for {processes} processes",
        rows.len()
    );
    assert_eq!(
        report.processes_in_rows(),
        processes,
        "processes in the rows"
    );
    report.assert_rows_add_up();
    let true_rows = rows.iter().filter(|p| p["comm"] == "true").count();
    assert!(true_rows >= 1, "no row for the `true` processes");
}

/// Issue 15 item 7: the stats map filled after ~3,000 processes and 3,120
/// execve of 5,002 were counted.
#[test]
fn issue_15_item_7_five_thousand_processes_are_counted_exactly() {
    check_true_loop(
        "issue_15_item_7_five_thousand_processes_are_counted_exactly",
        5_000,
        Duration::from_secs(120),
    );
}

/// Issue 15 item 9: the target list held 16,384 processes and children
/// past it went untraced, silently. Exited processes now leave it, so a run
/// may see any number of processes; only 16,384 alive at once fill it, and
/// that is counted (targets_map_full).
#[test]
fn issue_15_item_9_more_processes_than_the_target_list_holds() {
    let test = "issue_15_item_9_more_processes_than_the_target_list_holds";
    if !require_root(test) {
        return;
    }
    let n = 16_500;
    let dir = TempDir::new("scale-targets");
    let report = traced(&dir, &true_loop(n), Duration::from_secs(300));
    assert_eq!(syscall_stats(report.syscalls(), "execve").count, n + 2);
    assert_eq!(syscall_stats(report.syscalls(), "exit_group").count, n + 2);
    for reason in [
        "targets_map_full",
        "stats_map_full",
        "proc_map_full",
        "exits_unfolded",
    ] {
        assert_eq!(report.u64_at(&format!("/dropped/{reason}")), 0, "{reason}");
    }
}

/// Issue 15 items 7 and 9 at full scale: 100,000 processes, past the
/// 16,384 entries of the target list, with pids recycled (pid_max is often
/// 32,768). A few minutes: `cargo test -- --ignored`.
#[test]
#[ignore = "100,000 processes take minutes: run with --ignored"]
fn issue_15_item_7_hundred_thousand_processes_are_counted_exactly() {
    check_true_loop(
        "issue_15_item_7_hundred_thousand_processes_are_counted_exactly",
        100_000,
        Duration::from_secs(1800),
    );
}

/// The drops of a report other than untimed_calls (a timing lost is not a
/// count lost), by reason.
fn counts_dropped(report: &Report) -> Vec<(String, u64)> {
    let dropped = report.0["dropped"].as_object().expect("dropped object");
    dropped
        .iter()
        .map(|(reason, n)| (reason.clone(), n.as_u64().unwrap_or(0)))
        .filter(|(reason, n)| reason != "untimed_calls" && *n > 0)
        .collect()
}

/// Six shells starting `true` at once found the per-process maps'
/// allocator empty (rows allocated one by one, from a per-CPU cache of 1-3
/// refilled by irq_work): thousands of events and rows a run were counted
/// as `proc_map_full` / `stats_map_full` with the maps far from full (not
/// every run: the deterministic check is the next test). The rows are
/// preallocated now: none is lost and the rows add up to the totals. The
/// ~20 rows of each of the 2,400 processes fit the maps even if the
/// collector, starved on a loaded machine, folds nothing until the end.
#[test]
fn a_fork_burst_loses_no_per_process_row() {
    let test = "a_fork_burst_loses_no_per_process_row";
    if !require_root(test) {
        return;
    }
    const ROUNDS: u64 = 2;
    const SHELLS: u64 = 6;
    const EACH: u64 = 200;
    let dir = TempDir::new("scale-burst");
    let script = format!(
        "f() {{ for i in $(seq {EACH}); do /bin/true & done; wait; }}; \
         for r in $(seq {ROUNDS}); do for j in $(seq {SHELLS}); do f & done; wait; done"
    );
    let cmd = ["bash".into(), "-c".into(), script];
    let report = traced(&dir, &cmd, Duration::from_secs(300));
    assert_eq!(counts_dropped(&report), vec![], "dropped");
    // bash and the outer `seq`; each round's `seq`, shells, their `seq`s
    // and `true`s.
    let execs = 2 + ROUNDS * (1 + SHELLS + SHELLS * EACH);
    let processes = 2 + ROUNDS * (1 + 2 * SHELLS + SHELLS * EACH);
    assert_eq!(syscall_stats(report.syscalls(), "execve").count, execs);
    report.assert_rows_add_up();
    assert_eq!(
        report.processes_in_rows(),
        processes,
        "processes in the rows"
    );
}

/// The kernel's description of each per-CPU hash zc-trace `pid` holds:
/// (key_size, value_size, map_flags), from /proc/PID/fdinfo.
fn per_cpu_hashes(pid: i32) -> Vec<(u64, u64, u64)> {
    /// include/uapi/linux/bpf.h: BPF_MAP_TYPE_PERCPU_HASH.
    const PERCPU_HASH: u64 = 5;
    let dir = format!("/proc/{pid}/fdinfo");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir}: {e}")) {
        let Ok(text) = std::fs::read_to_string(entry.expect("fdinfo entry").path()) else {
            continue;
        };
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.trim().strip_prefix(':'))
                .and_then(|v| {
                    let v = v.trim();
                    match v.strip_prefix("0x") {
                        Some(hex) => u64::from_str_radix(hex, 16).ok(),
                        None => v.parse().ok(),
                    }
                })
        };
        if field("map_type") == Some(PERCPU_HASH) {
            found.push((
                field("key_size").unwrap_or(0),
                field("value_size").unwrap_or(0),
                field("map_flags").unwrap_or(u64::MAX),
            ));
        }
    }
    found
}

/// What makes a fork burst safe (above), checked where chance plays no
/// part: the per-process hashes (syscall rows: 16-byte keys, 40-byte
/// values; process rows: 4-byte keys, 112-byte values) are preallocated,
/// without BPF_F_NO_PREALLOC.
#[test]
fn the_per_process_rows_are_preallocated() {
    let test = "the_per_process_rows_are_preallocated";
    if !require_root(test) {
        return;
    }
    /// include/uapi/linux/bpf.h
    const BPF_F_NO_PREALLOC: u64 = 1;
    let mut p = Proc::spawn(Command::new(tracer_bin()).args(["--", "sleep", "30"]));
    p.wait_for_line("zc-trace: tracing", Duration::from_secs(60));
    let hashes = per_cpu_hashes(p.pid());
    for shape in [(16, 40), (4, 112)] {
        let flags: Vec<u64> = hashes
            .iter()
            .filter(|(k, v, _)| (*k, *v) == shape)
            .map(|(_, _, f)| *f)
            .collect();
        assert_eq!(flags.len(), 1, "per-CPU hashes {shape:?} in {hashes:?}");
        assert_eq!(flags[0] & BPF_F_NO_PREALLOC, 0, "map_flags of {shape:?}");
    }
}

/// 10,000 processes ending at once overflowed the ring that announces
/// exits (room for ~5,000 between two reads): 3,269 were counted as
/// `exits_unfolded`. Here 10,000 subshells block on one pipe and all end
/// when its writer does.
#[test]
fn ten_thousand_processes_ending_at_once_are_all_folded() {
    let test = "ten_thousand_processes_ending_at_once_are_all_folded";
    if !require_root(test) {
        return;
    }
    const N: u64 = 10_000;
    let dir = TempDir::new("scale-exits");
    let go = dir.join("go");
    let made = Command::new("mkfifo").arg(&go).status().expect("mkfifo");
    assert!(made.success(), "mkfifo {}", go.display());
    let go = go.display();
    // The left side holds the pipe's only write end until the right side
    // has started every subshell and writes to the fifo.
    let script = format!(
        "{{ read -r _ < {go}; }} | \
         {{ exec 3<&0; for i in $(seq {N}); do {{ read -r _ <&3; }} & done; echo > {go}; wait; }}"
    );
    let cmd = ["bash".into(), "-c".into(), script];
    let report = traced(&dir, &cmd, Duration::from_secs(600));
    assert_eq!(
        report.u64_at("/dropped/exits_unfolded"),
        0,
        "exits_unfolded"
    );
    // The subshells, the two sides of the pipe, bash and `seq`.
    assert_eq!(
        syscall_stats(report.syscalls(), "exit_group").count,
        N + 4,
        "exit_group"
    );
}
