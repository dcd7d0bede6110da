//! Issue 9: io_uring requests in the ledger, on a real io_uring program
//! (fio --ioengine=io_uring) traced with real eBPF. The lab's io_uring
//! methods (READ + SEND, SEND_ZC, SPLICE over loopback TCP) are tested in
//! lab.rs.
//!
//! Needs root (eBPF), fio and a built tracer; without them each test says
//! SKIPPED on stderr, and fails under `CI=true`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use zc_trace_tests::harness::{Report, TempDir, require_root, run_traced, skip};

const WORKLOAD: &str = env!("CARGO_BIN_EXE_zc-workload");
const MIB: u64 = 1 << 20;
const SIZE: u64 = 64 * MIB;
const BS: u64 = 128 * 1024;
const REQUESTS: u64 = SIZE / BS;

fn have_fio(test: &str) -> bool {
    let found = Command::new("fio")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        skip(test, "fio is not installed (cargo xtask setup --for-tests)");
    }
    found
}

/// A fio job on `file`: 64 MiB in 128 KiB requests, 8 in flight.
fn fio(file: &Path, extra: &[&str]) -> Vec<String> {
    let mut cmd: Vec<String> = [
        "fio",
        "--name=zc",
        "--ioengine=io_uring",
        "--bs=128k",
        "--size=64M",
        "--iodepth=8",
        "--output-format=terse",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    cmd.push(format!("--filename={}", file.display()));
    cmd.extend(extra.iter().map(|s| s.to_string()));
    cmd
}

fn traced_fio(dir: &TempDir, tag: &str, file: &Path, extra: &[&str]) -> Report {
    let t = run_traced(dir, tag, &[], &fio(file, extra));
    assert!(t.status.success(), "fio failed: {}\n{}", t.status, t.stderr);
    t.report
}

/// The test file: on /var/tmp when the test directory is on tmpfs, where
/// buffered io_uring I/O takes other paths than on a disk.
fn data_file(dir: &TempDir, tag: &str) -> PathBuf {
    let path = PathBuf::from(format!(
        "/var/tmp/zc-trace-uring-{tag}-{}",
        std::process::id()
    ));
    if path.parent().is_some_and(Path::is_dir) {
        path
    } else {
        dir.join(tag)
    }
}

/// The process rows that submitted io_uring requests.
fn submitters(r: &Report) -> Vec<&Value> {
    r.processes()
        .iter()
        .filter(|p| p["io_uring"].as_object().is_some_and(|t| !t.is_empty()))
        .collect()
}

/// Issue 9: fio with --ioengine=io_uring read 64 MiB and the report said
/// 60 KiB copied (fio's own reads of its libraries and /proc).
#[test]
fn issue9_fio_io_uring_reads_are_in_the_ledger() {
    if !require_root("issue9_fio_io_uring_reads_are_in_the_ledger")
        || !have_fio("issue9_fio_io_uring_reads_are_in_the_ledger")
    {
        return;
    }
    let dir = TempDir::new("uring-fio-read");
    let file = data_file(&dir, "read");
    zc_trace_tests::write_input_file(&file, SIZE).unwrap();
    let r = traced_fio(&dir, "read", &file, &["--rw=read"]);
    let _ = std::fs::remove_file(&file);

    let read = &r.0["io_uring"]["READ"];
    assert_eq!(read["count"], REQUESTS, "{read:#}");
    assert_eq!(read["errors"], 0, "{read:#}");
    assert_eq!(read["bytes"], SIZE, "{read:#}");
    assert_eq!(read["by_fd_kind"]["file"]["bytes"], SIZE, "{read:#}");
    let to_user = r.u64_at("/totals/bytes/copied_to_user");
    assert!(
        (SIZE..SIZE + 4 * MIB).contains(&to_user),
        "copied_to_user {to_user}"
    );
    // Requests are not syscalls: io_uring_enter is, and moves no bytes.
    assert!(r.0["syscalls"]["io_uring_enter"]["count"].as_u64() > Some(0));
    assert_eq!(r.0["syscalls"]["io_uring_enter"]["bytes"], 0);
    let calls: u64 = r.0["syscalls"]
        .as_object()
        .unwrap()
        .values()
        .map(|e| e["count"].as_u64().unwrap())
        .sum();
    assert_eq!(r.u64_at("/totals/syscalls"), calls);

    // The job process that submitted them has them, all of them.
    let subs = submitters(&r);
    assert_eq!(subs.len(), 1, "{:#}", r.0["processes"]);
    assert_eq!(subs[0]["io_uring"]["READ"]["count"], REQUESTS);
    assert!(subs[0]["syscalls"]["io_uring_enter"]["count"].as_u64() > Some(0));
    assert!(subs[0]["totals"]["bytes"]["copied_to_user"].as_u64() >= Some(SIZE));
}

/// Requests completed by io-wq workers (IOSQE_ASYNC on every request:
/// fio --force_async=1; buffered writes are punted there too) count for
/// the process that submitted them, in its row, with its io_uring_enter
/// calls: nowhere else.
#[test]
fn issue9_io_uring_requests_completed_in_io_wq_count_for_the_submitter() {
    let test = "issue9_io_uring_requests_completed_in_io_wq_count_for_the_submitter";
    if !require_root(test) || !have_fio(test) {
        return;
    }
    let dir = TempDir::new("uring-fio-async");
    let file = data_file(&dir, "async");
    let r = traced_fio(&dir, "async", &file, &["--rw=write", "--force_async=1"]);
    let _ = std::fs::remove_file(&file);

    let write = &r.0["io_uring"]["WRITE"];
    assert_eq!(write["count"], REQUESTS, "{write:#}");
    assert_eq!(write["bytes"], SIZE, "{write:#}");
    let from_user = r.u64_at("/totals/bytes/copied_from_user");
    assert!(
        (SIZE..SIZE + MIB).contains(&from_user),
        "copied_from_user {from_user}"
    );
    let subs = submitters(&r);
    assert_eq!(subs.len(), 1, "{:#}", r.0["processes"]);
    let p = subs[0];
    assert_eq!(p["io_uring"]["WRITE"]["count"], REQUESTS, "{p:#}");
    assert_eq!(p["io_uring"]["WRITE"]["bytes"], SIZE, "{p:#}");
    assert!(p["syscalls"]["io_uring_enter"]["count"].as_u64() > Some(0));
    assert!(p["totals"]["bytes"]["copied_from_user"].as_u64() >= Some(SIZE));
}

/// Traces `zc-workload SCENARIO --count 16 --size 64K`: 1 MiB of io_uring
/// SEND_ZC over loopback TCP.
fn traced_send_zc(dir: &TempDir, scenario: &str) -> Report {
    let cmd: Vec<String> = [WORKLOAD, scenario, "--count", "16", "--size", "65536"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let t = run_traced(dir, scenario, &[], &cmd);
    assert!(
        t.status.success(),
        "{scenario} failed: {}\n{}",
        t.status,
        t.stderr
    );
    t.report
}

/// SEND_ZC pins the pages: zerocopy_sent, not copied_from_user. With usage
/// reports the notification says loopback copied it all; without them the
/// kernel does not know, and the report says unknown rather than 0.
#[test]
fn io_uring_send_zc_outcome_is_copied_when_reported_and_unknown_when_not() {
    let test = "io_uring_send_zc_outcome_is_copied_when_reported_and_unknown_when_not";
    if !require_root(test) {
        return;
    }
    let dir = TempDir::new("uring-send-zc");
    let r = traced_send_zc(&dir, "uring-send-zc");
    let send_zc = &r.0["io_uring"]["SEND_ZC"];
    assert_eq!(send_zc["count"], 16, "{send_zc:#}");
    assert_eq!(
        send_zc["by_fd_kind"]["zerocopy"]["bytes"], MIB,
        "{send_zc:#}"
    );
    assert_eq!(r.u64_at("/totals/bytes/zerocopy_sent"), MIB);
    assert_eq!(r.u64_at("/totals/bytes/zerocopy_copied"), MIB);
    let notes = r.0["notes"].to_string();
    assert!(!notes.contains("zerocopy_copied is unknown"), "{notes}");
    // The receiving thread's recvfrom copies (and the loader reads the
    // libraries); the sender's SEND_ZC does not.
    let to_user = r.u64_at("/totals/bytes/copied_to_user");
    assert!((MIB..MIB + 64 * 1024).contains(&to_user), "{to_user}");
    assert!(r.u64_at("/totals/bytes/copied_from_user") < 64 * 1024);

    let r = traced_send_zc(&dir, "uring-send-zc-unreported");
    assert_eq!(r.u64_at("/totals/bytes/zerocopy_sent"), MIB);
    assert_eq!(r.u64_at("/totals/bytes/zerocopy_copied"), 0);
    let notes = r.0["notes"].to_string();
    assert!(
        notes.contains(&format!(
            "zerocopy_copied is unknown for {MIB} of the {MIB} bytes"
        )),
        "{notes}"
    );
}

/// In a cgroup run, io_uring requests are booked too (the completion probe
/// filters by scope, not by the pid list), in the cgroup's row and the
/// submitter's.
#[test]
fn issue11_io_uring_requests_count_in_a_cgroup_run() {
    use std::time::Duration;
    use zc_trace_tests::fleet::{Cgroup, run_born_in};
    use zc_trace_tests::harness::{Proc, signal, tracer_bin};
    let test = "issue11_io_uring_requests_count_in_a_cgroup_run";
    if !require_root(test) || !have_fio(test) {
        return;
    }
    let dir = TempDir::new("uring-cgroup");
    let file = data_file(&dir, "cgroup");
    zc_trace_tests::write_input_file(&file, SIZE).unwrap();
    let cg = Cgroup::new("uring");
    let json = dir.join("cgroup.json");
    let mut tracer = Proc::spawn(
        Command::new(tracer_bin())
            .args(["--cgroup", &cg.path.to_string_lossy(), "--json"])
            .arg(&json),
    );
    tracer.wait_for_line("zc-trace: tracing", Duration::from_secs(30));
    let argv = fio(&file, &["--rw=read"]);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let fio_path = ["/usr/bin/fio", "/bin/fio"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("fio's path");
    let mut argv_abs = vec![fio_path];
    argv_abs.extend(&argv[1..]);
    let status = run_born_in(&cg.path, &argv_abs, &["PATH=/usr/bin:/bin"]);
    let _ = std::fs::remove_file(&file);
    assert_eq!(status, 0, "fio's wait status");
    signal(tracer.pid(), libc::SIGINT);
    assert!(
        tracer.wait_or_kill(Duration::from_secs(60)).success(),
        "{}",
        tracer.stderr()
    );
    let r = Report::load(&json);
    assert_eq!(
        r.0["io_uring"]["READ"]["count"], REQUESTS,
        "{:#}",
        r.0["io_uring"]
    );
    assert_eq!(r.0["io_uring"]["READ"]["bytes"], SIZE);
    let row = &r.0["cgroups"][0];
    assert_eq!(row["io_uring"]["READ"]["count"], REQUESTS, "{row:#}");
    assert_eq!(submitters(&r).len(), 1, "{:#}", r.0["processes"]);
}
