//! Exited processes are folded out of the per-process maps less often
//! while many processes are alive (a fold reads the live ones' rows too):
//! however long they wait, every call and every process is in the report,
//! exactly (issue 15 item 8: collector CPU with 10,000 processes).

use std::process::Command;
use std::time::Duration;

use zc_trace_tests::fleet::{Cgroup, run_born_in};
use zc_trace_tests::harness::{
    Proc, Report, TempDir, require_root, run_traced, signal, syscall_stats, tracer_bin,
};

/// Sleepers alive while the short-lived processes come and go.
const ALIVE: u64 = 600;
const SHORT_LIVED: u64 = 300;

#[test]
fn exits_folded_late_beside_many_live_processes_are_counted_exactly() {
    if !require_root("exits_folded_late_beside_many_live_processes_are_counted_exactly") {
        return;
    }
    let dir = TempDir::new("fold");
    let json = dir.join("report.json");
    let script = format!(
        "for i in $(seq {ALIVE}); do sleep 60 & done; \
         for i in $(seq {SHORT_LIVED}); do /bin/true; done; \
         kill $(jobs -p); wait"
    );
    let mut p = Proc::spawn(
        Command::new(tracer_bin())
            .args(["--quiet", "--json"])
            .arg(&json)
            .args(["--", "bash", "-c", &script]),
    );
    let status = p.wait_or_kill(Duration::from_secs(300));
    assert!(status.success(), "{status}\n{}", p.stderr());
    let report = Report::load(&json);

    // The burst of forks finds the per-process rows preallocated (see
    // scale.rs, a_fork_burst_loses_no_per_process_row): nothing is lost.
    let dropped = |reason: &str| report.u64_at(&format!("/dropped/{reason}"));
    for reason in [
        "targets_map_full",
        "exits_unfolded",
        "stats_map_full",
        "proc_map_full",
    ] {
        assert_eq!(dropped(reason), 0, "{reason}");
    }
    // bash, the two `seq`s, the sleepers and the short-lived processes
    // exec; the subshell of `$(jobs -p)` does not.
    let execs = 1 + 2 + ALIVE + SHORT_LIVED;
    let processes = execs + 1;
    assert_eq!(
        syscall_stats(report.syscalls(), "execve").count,
        execs,
        "execve"
    );
    report.assert_rows_add_up();
    assert_eq!(
        report.processes_in_rows(),
        processes,
        "processes in the rows"
    );
}

/// `folds` of the report's cost: how exited processes left the maps.
fn folds(report: &Report) -> (u64, u64, u64) {
    (
        report.u64_at("/cost/folds/by_probe"),
        report.u64_at("/cost/folds/by_scan"),
        report.u64_at("/cost/folds/scans"),
    )
}

/// Traces `script` under bash and returns its report.
fn trace_script(name: &str, script: &str) -> Report {
    let dir = TempDir::new(name);
    let cmd = ["bash".to_owned(), "-c".to_owned(), script.to_owned()];
    let t = run_traced(&dir, name, &[], &cmd);
    assert!(t.status.success(), "{}\n{}", t.status, t.stderr);
    t.report
}

#[test]
fn short_lived_processes_are_folded_by_their_exit_probe_exactly() {
    if !require_root("short_lived_processes_are_folded_by_their_exit_probe_exactly") {
        return;
    }
    const N: u64 = 500;
    let report = trace_script(
        "fold-probe",
        &format!("for i in $(seq {N}); do /bin/true; done; sleep 1.5"),
    );
    let (by_probe, by_scan, scans) = folds(&report);
    // Each `true` sends its rows with its exit (~1 KiB): only a collector
    // starved long enough to let the exit ring half fill would leave some
    // to a scan.
    assert!(
        by_probe >= N * 9 / 10,
        "{by_probe} of {N} folded by the probe ({by_scan} by {scans} scans)"
    );
    assert_eq!(
        syscall_stats(report.syscalls(), "execve").count,
        1 + 1 + N + 1,
        "execve: bash, seq, the trues, sleep"
    );
    report.assert_rows_add_up();
    for reason in ["exits_unfolded", "stats_map_full", "proc_map_full"] {
        assert_eq!(report.u64_at(&format!("/dropped/{reason}")), 0, "{reason}");
    }
}

#[test]
fn a_process_with_more_rows_than_its_exit_sends_is_folded_by_a_scan() {
    if !require_root("a_process_with_more_rows_than_its_exit_sends_is_folded_by_a_scan") {
        return;
    }
    // 80 distinct syscall numbers no kernel has (ENOSYS): 80 rows beyond
    // the 64 an exit record holds, and beyond the totals array too, so
    // the per-process rows are their only record.
    const FIRST: u64 = 2000;
    const ROWS: u64 = 80;
    let report = trace_script(
        "fold-scan",
        &format!(
            "python3 -c 'import ctypes; l = ctypes.CDLL(None); \
             [l.syscall({FIRST} + i) for i in range({ROWS})]'; sleep 1.5"
        ),
    );
    let (by_probe, by_scan, scans) = folds(&report);
    assert!(
        by_scan >= 1 && scans >= 1,
        "by_scan {by_scan}, scans {scans}"
    );
    assert!(by_probe >= 1, "by_probe {by_probe}");
    for nr in FIRST..FIRST + ROWS {
        let name = format!("syscall_{nr}");
        let s = syscall_stats(report.syscalls(), &name);
        assert_eq!((s.count, s.errors), (1, 1), "{name}");
    }
    report.assert_rows_add_up();
    assert_eq!(report.u64_at("/dropped/stats_map_full"), 0);
}

const TRACING_LINE: &str = "zc-trace: tracing";

#[test]
fn a_cgroup_of_short_lived_processes_leaves_no_rows_behind() {
    if !require_root("a_cgroup_of_short_lived_processes_leaves_no_rows_behind") {
        return;
    }
    // More exits than the per-process maps hold processes (16,384 here):
    // a row made for a process after its exit folded it (its threads' last
    // switches) would stay to the end, and fill them.
    const N: u64 = 17_000;
    let cgroup = Cgroup::new("fold");
    let dir = TempDir::new("fold-cgroup");
    let json = dir.join("report.json");
    let mut tracer = Proc::spawn(
        Command::new(tracer_bin())
            .arg("--cgroup")
            .arg(&cgroup.path)
            .arg("--json")
            .arg(&json),
    );
    tracer.wait_for_line(TRACING_LINE, Duration::from_secs(30));
    let script = format!("for i in $(seq {N}); do /bin/true; done");
    let status = run_born_in(
        &cgroup.path,
        &["/bin/bash", "-c", &script],
        &["PATH=/usr/bin:/bin"],
    );
    assert_eq!(status, 0, "the loop's wait status");
    signal(tracer.pid(), libc::SIGINT);
    let status = tracer.wait_or_kill(Duration::from_secs(120));
    assert!(
        status.success() || status.code() == Some(130),
        "{status}\n{}",
        tracer.stderr()
    );
    let report = Report::load(&json);
    for reason in ["proc_map_full", "stats_map_full", "exits_unfolded"] {
        assert_eq!(report.u64_at(&format!("/dropped/{reason}")), 0, "{reason}");
    }
    assert_eq!(
        syscall_stats(report.syscalls(), "execve").count,
        1 + 1 + N,
        "execve: bash, seq, the trues"
    );
    report.assert_rows_add_up();
    // Every process has its name: none is a row left behind after its exit.
    let nameless: Vec<_> = report
        .processes()
        .iter()
        .filter(|p| p["comm"] == "")
        .collect();
    assert!(nameless.is_empty(), "nameless rows: {nameless:?}");
    // Context switches: the rows add up to the totals.
    for kind in ["voluntary", "involuntary"] {
        let in_rows: u64 = report
            .processes()
            .iter()
            .map(|p| p["totals"]["context_switches"][kind].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(
            in_rows,
            report.u64_at(&format!("/totals/context_switches/{kind}")),
            "{kind} switches"
        );
    }
}

#[test]
fn a_machine_wide_run_ending_while_processes_exit_writes_its_report() {
    if !require_root("a_machine_wide_run_ending_while_processes_exit_writes_its_report") {
        return;
    }
    // Exits racing the last read of the maps: its rows were deleted under
    // it (an error, no report, in 5 of 6 runs before the probes were told
    // the run ends).
    let mut churn = Proc::spawn(
        Command::new("bash").args(["-c", "for i in $(seq 100000); do /bin/true; done"]),
    );
    for run in 0..3 {
        let dir = TempDir::new("fold-all");
        let json = dir.join("report.json");
        let mut tracer = Proc::spawn(
            Command::new(tracer_bin())
                .args(["-a", "--duration", "1s", "--quiet", "--json"])
                .arg(&json),
        );
        let status = tracer.wait_or_kill(Duration::from_secs(60));
        assert!(status.success(), "run {run}: {status}\n{}", tracer.stderr());
        let report = Report::load(&json);
        assert!(
            report.u64_at("/cost/folds/by_probe") > 0,
            "run {run}: no exit folded by its probe"
        );
        assert_eq!(report.u64_at("/dropped/exits_unfolded"), 0, "run {run}");
    }
    signal(churn.pid(), libc::SIGKILL);
    let _ = churn.wait_or_kill(Duration::from_secs(10));
}
