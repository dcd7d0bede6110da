//! Exited processes are folded out of the per-process maps less often
//! while many processes are alive (a fold reads the live ones' rows too):
//! however long they wait, every call and every process is in the report,
//! exactly (issue 15 item 8: collector CPU with 10,000 processes).

use std::process::Command;
use std::time::Duration;

use zc_trace_tests::harness::{Proc, Report, TempDir, require_root, syscall_stats, tracer_bin};

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
