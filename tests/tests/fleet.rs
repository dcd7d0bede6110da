//! Containers, whole machines and fleets (issue 11): several pids, the
//! report on stdout, cgroups and the whole machine filtered in kernel.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use zc_trace_tests::fleet::{Cgroup, Feeder, Tracer, cgroup2_root, move_to, run_born_in};
use zc_trace_tests::harness::{
    Proc, Report, TempDir, kind_stats, require_root, signal, tracer_bin,
};

const TRACING_LINE: &str = "zc-trace: tracing";

/// The report's row of process `pid`.
fn process(report: &Value, pid: u32) -> &Value {
    report["processes"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["pid"] == pid))
        .unwrap_or_else(|| panic!("no process {pid} in the report: {report:#}"))
}

#[test]
fn issue11_p_takes_a_list_and_json_dash_writes_the_report_to_stdout() {
    if !require_root("issue11_p_takes_a_list_and_json_dash_writes_the_report_to_stdout") {
        return;
    }
    let mut a = Feeder::start();
    let mut b = Feeder::start();
    let list = format!("{},{}", a.pid(), b.pid());
    let mut tracer = Tracer::spawn(Command::new(tracer_bin()).args(["-p", &list, "--json", "-"]));
    tracer
        .proc
        .wait_for_line(TRACING_LINE, Duration::from_secs(30));
    a.feed(100);
    b.feed(200);
    let (pa, pb) = (a.pid(), b.pid());
    a.finish();
    b.finish();
    let (status, out, stderr) = tracer.stdout();
    assert!(status.success(), "{status}\n{stderr}");
    let report: Value = serde_json::from_slice(&out).unwrap_or_else(|e| {
        panic!(
            "stdout is not the JSON report ({e}):\n{}",
            String::from_utf8_lossy(&out)
        )
    });
    assert_eq!(report["target"]["mode"], "attach");
    assert_eq!(report["target"]["pids"], serde_json::json!([pa, pb]));
    for (pid, fed) in [(pa, 100), (pb, 200)] {
        let p = process(&report, pid);
        // The read in progress at attach returns the first byte; the last
        // read returns end of file.
        let read = kind_stats(&p["syscalls"], "read", "pipe");
        assert_eq!((read.count, read.bytes), (fed + 1, fed), "dd {pid}'s reads");
        let write = kind_stats(&p["syscalls"], "write", "device");
        assert_eq!((write.count, write.bytes), (fed, fed), "dd {pid}'s writes");
    }
    assert!(
        stderr.contains("Copy ledger"),
        "the summary still goes to stderr:\n{stderr}"
    );
}

/// A workload with children and known calls: sh forks dd and cat.
const WORKLOAD: &str = "/bin/dd if=/dev/zero of=/dev/null bs=4k count=500 status=none; /bin/cat /etc/hostname >/dev/null";

/// zc-trace with the workload's fixed environment (which a wrapped
/// command inherits), so every run makes the same calls.
fn workload(cmd: &mut Command) -> &mut Command {
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LC_ALL", "C")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
}

/// Count, errors and bytes of every (syscall, fd kind) of a `syscalls`
/// object.
fn per_kind(syscalls: &Value) -> BTreeMap<(String, String), (u64, u64, u64)> {
    let mut out = BTreeMap::new();
    for (name, entry) in syscalls.as_object().expect("syscalls object") {
        for (kind, c) in entry["by_fd_kind"].as_object().expect("by_fd_kind") {
            let n = |k: &str| c[k].as_u64().unwrap_or(0);
            out.insert(
                (name.clone(), kind.clone()),
                (n("count"), n("errors"), n("bytes")),
            );
        }
    }
    out
}

/// The workload traced in wrap mode: the per-(syscall, kind) counts.
fn wrap_counts(dir: &TempDir) -> BTreeMap<(String, String), (u64, u64, u64)> {
    let json = dir.join("wrap.json");
    let status = workload(Command::new(tracer_bin()).args(["-q", "--json"]).arg(&json))
        .args(["--", "/bin/sh", "-c", WORKLOAD])
        .status()
        .expect("run zc-trace");
    assert!(status.success(), "wrap run: {status}");
    per_kind(Report::load(&json).syscalls())
}

/// Runs the workload as a process born in cgroup `cg`: its first call
/// there is its execve, as in wrap mode.
fn run_in_cgroup(cg: &Cgroup) {
    let status = run_born_in(
        &cg.path,
        &["/bin/sh", "-c", WORKLOAD],
        &["PATH=/usr/bin:/bin", "LC_ALL=C"],
    );
    assert_eq!(status, 0, "the workload's wait status");
}

fn assert_same_counts(
    what: &str,
    got: &BTreeMap<(String, String), (u64, u64, u64)>,
    wrap: &BTreeMap<(String, String), (u64, u64, u64)>,
) {
    let keys: std::collections::BTreeSet<_> = got.keys().chain(wrap.keys()).collect();
    let diff: Vec<String> = keys
        .into_iter()
        .filter(|k| got.get(*k) != wrap.get(*k))
        .map(|k| {
            format!(
                "{} {}: {what} {:?}, wrap {:?}",
                k.0,
                k.1,
                got.get(k),
                wrap.get(k)
            )
        })
        .collect();
    assert!(
        diff.is_empty(),
        "{what} differs from wrap mode (count, errors, bytes):\n{}",
        diff.join("\n")
    );
}

/// Starts `zc-trace ARGS --json FILE` and waits until it traces.
fn start_tracer(args: &[&str], json: &std::path::Path) -> Proc {
    let mut p = Proc::spawn(
        Command::new(tracer_bin())
            .args(args)
            .arg("--json")
            .arg(json),
    );
    p.wait_for_line(TRACING_LINE, Duration::from_secs(30));
    p
}

/// Stops the tracer with SIGINT (how a cgroup or machine run ends) and
/// reads its report.
fn stop_tracer(p: Proc, json: &std::path::Path) -> Report {
    stop_tracer_with_summary(p, json).0
}

/// As `stop_tracer`, with the summary it printed.
fn stop_tracer_with_summary(mut p: Proc, json: &std::path::Path) -> (Report, String) {
    signal(p.pid(), libc::SIGINT);
    let status = p.wait_or_kill(Duration::from_secs(60));
    assert!(status.success(), "zc-trace: {status}\n{}", p.stderr());
    (Report::load(json), p.stderr())
}

#[test]
fn issue11_cgroup_and_all_count_what_wrap_counts_per_syscall() {
    if !require_root("issue11_cgroup_and_all_count_what_wrap_counts_per_syscall") {
        return;
    }
    let dir = TempDir::new("fleet-same");
    let wrap = wrap_counts(&dir);

    // --cgroup, given as /proc/PID/cgroup shows it (relative to the mount).
    let cg = Cgroup::new("same");
    let json = dir.join("cgroup.json");
    let name = format!("/{}", cg.path.file_name().unwrap().to_string_lossy());
    let tracer = start_tracer(&["--cgroup", &name], &json);
    run_in_cgroup(&cg);
    let report = stop_tracer(tracer, &json);
    assert_eq!(report.0["target"]["mode"], "cgroup");
    let got = per_kind(report.syscalls());
    assert_same_counts("--cgroup", &got, &wrap);
    let names: Vec<&str> = report
        .processes()
        .iter()
        .filter_map(|p| p["comm"].as_str())
        .collect();
    for comm in ["sh", "dd", "cat"] {
        assert!(names.contains(&comm), "{comm} is reported in {names:?}");
    }

    // -a: the same workload's cgroup row.
    let json = dir.join("all.json");
    let tracer = start_tracer(&["-a"], &json);
    run_in_cgroup(&cg);
    let report = stop_tracer(tracer, &json);
    assert_eq!(report.0["target"]["mode"], "all");
    let row = report.0["cgroups"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["path"] == name.as_str()))
        .unwrap_or_else(|| panic!("no cgroup {name} in {:#}", report.0["cgroups"]));
    assert_eq!(row["processes"], 3, "sh, dd and cat");
    let got = per_kind(&row["syscalls"]);
    assert_same_counts("-a", &got, &wrap);
    let mine = report
        .processes()
        .iter()
        .any(|p| p["pid"] == std::process::id());
    assert!(mine, "-a traces the test process too");
}

#[test]
fn issue11_a_process_moved_in_counts_from_the_move_and_stops_when_moved_out() {
    if !require_root("issue11_a_process_moved_in_counts_from_the_move_and_stops") {
        return;
    }
    let dir = TempDir::new("fleet-move");
    let cg = Cgroup::new("move");
    // A nested cgroup: descendants of the traced cgroup count too.
    let inner = cg.child("inner");
    let json = dir.join("move.json");
    let tracer = start_tracer(&["--cgroup", &cg.path.to_string_lossy()], &json);
    let root = cgroup2_root().expect("cgroup v2");
    let mut dd = Feeder::start();
    dd.feed(100); // outside: not counted
    move_to(&inner, dd.pid());
    dd.feed(300); // inside
    move_to(&root, dd.pid());
    dd.feed(200); // outside again
    // A process whose name carries a terminal escape: the summary's
    // rankings show it escaped.
    let sneaky = dir.join("zc-\x1b[31mred");
    std::fs::copy("/bin/true", &sneaky).expect("copy true");
    let status = run_born_in(&inner, &[&sneaky.to_string_lossy()], &[]);
    assert_eq!(status, 0, "the escaped-name process");
    let (report, summary) = stop_tracer_with_summary(tracer, &json);
    assert!(
        summary.contains("zc-\\x1b[31mred"),
        "escaped in the summary:\n{summary}"
    );
    assert!(
        !summary.contains('\x1b'),
        "no raw escape reaches the terminal"
    );
    let p = process(&report.0, dd.pid());
    let read = kind_stats(&p["syscalls"], "read", "pipe");
    assert_eq!(
        (read.count, read.bytes),
        (300, 300),
        "dd's reads while inside"
    );
    let write = kind_stats(&p["syscalls"], "write", "device");
    assert_eq!(
        (write.count, write.bytes),
        (300, 300),
        "dd's writes while inside"
    );
    dd.finish();
}

#[test]
fn issue11_every_prints_a_line_and_ndjson_an_object_per_interval_that_add_up_to_the_report() {
    if !require_root("issue11_every_prints_a_line_and_ndjson_an_object_per_interval") {
        return;
    }
    let dir = TempDir::new("fleet-every");
    let json = dir.join("run.json");
    // A shell that pauses between two dd runs: several intervals, some idle.
    let script = "dd if=/dev/zero of=/dev/null bs=64k count=2000 status=none; sleep 0.3; \
                  dd if=/dev/zero bs=4k count=3000 status=none | cat >/dev/null";
    let mut tracer = Tracer::spawn(
        Command::new(tracer_bin())
            .args(["--every", "100ms", "--ndjson", "-", "--json"])
            .arg(&json)
            .args(["--", "sh", "-c", script]),
    );
    tracer
        .proc
        .wait_for_line(TRACING_LINE, Duration::from_secs(30));
    let (status, out, stderr) = tracer.stdout();
    assert!(status.success(), "{status}\n{stderr}");
    let intervals: Vec<Value> = String::from_utf8_lossy(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.trim_start().split(' ').nth(1) == Some("s") && l.contains("  copied "))
        .collect();
    assert!(
        intervals.len() >= 2,
        "at least two intervals: {intervals:?}"
    );
    assert_eq!(
        lines.len(),
        intervals.len(),
        "one line per object:\n{stderr}"
    );
    let report = Report::load(&json);
    let sum = |key: &str| -> u64 {
        intervals
            .iter()
            .map(|i| i.pointer(key).and_then(Value::as_u64).expect(key))
            .sum()
    };
    let totals = &report.0["totals"];
    for (key, total) in [
        ("/syscalls", "/syscalls"),
        ("/errors", "/errors"),
        ("/copied_to_user", "/bytes/copied_to_user"),
        ("/copied_from_user", "/bytes/copied_from_user"),
        ("/device", "/bytes/device"),
        ("/context_switches/voluntary", "/context_switches/voluntary"),
    ] {
        assert_eq!(
            sum(key),
            totals.pointer(total).and_then(Value::as_u64).unwrap(),
            "the intervals' {key} add up to the report's"
        );
    }
    // The pipe's 12000 KiB crossed the boundary both ways.
    assert!(sum("/copied_from_user") >= 3000 * 4096);
    // Each interval starts where the one before ended.
    for w in intervals.windows(2) {
        assert_eq!(w[0]["t_end_ns"], w[1]["t_start_ns"]);
    }
}

/// CPU time a process burnt before a cgroup run began is not the run's: not
/// in its own row, its cgroup's, nor the totals. (The collector settles each
/// process's accounting as it folds it, before it is summed by cgroup.)
#[test]
fn issue11_cpu_burnt_before_a_cgroup_run_is_not_the_runs() {
    if !require_root("issue11_cpu_burnt_before_a_cgroup_run_is_not_the_runs") {
        return;
    }
    const MS: u64 = 1_000_000;
    let dir = TempDir::new("fleet-cpu");
    let cg = Cgroup::new("cpu");
    // 0.5 s of CPU, then a sleep that outlasts the tracer's start; exits
    // while traced.
    let burner = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.5: pass\ntime.sleep(3)\n";
    let mut p = Proc::spawn(Command::new("python3").args(["-c", burner]));
    std::thread::sleep(Duration::from_millis(1500));
    move_to(&cg.path, p.pid() as u32);
    let json = dir.join("cpu.json");
    let tracer = start_tracer(&["--cgroup", &cg.path.to_string_lossy()], &json);
    assert!(p.wait_or_kill(Duration::from_secs(30)).success());
    let report = stop_tracer(tracer, &json);
    let cpu = |v: &Value| {
        v["cpu"]["user_ns"].as_u64().unwrap_or(0) + v["cpu"]["system_ns"].as_u64().unwrap_or(0)
    };
    let row = process(&report.0, p.pid() as u32);
    let cgroup = report.0["cgroups"]
        .as_array()
        .and_then(|cs| cs.first())
        .unwrap_or_else(|| panic!("no cgroup row in {:#}", report.0["cgroups"]));
    for (what, ns) in [
        ("its row", cpu(&row["totals"])),
        ("its cgroup's row", cpu(&cgroup["totals"])),
        ("the totals", cpu(&report.0["totals"])),
    ] {
        assert!(
            ns < 200 * MS,
            "{what}: {ns} ns of CPU; the 500 ms burnt before the run are not the run's"
        );
    }
}
