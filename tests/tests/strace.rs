//! strace as the oracle: first for the workload itself (does every scenario
//! make exactly the calls `expected` declares, on the declared fd kinds,
//! with the declared bytes?), then for the tracer (does zc-trace count the
//! same calls and errors as `strace -c` for the `all` scenario?).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use zc_trace_tests::harness::{
    Stats, TempDir, require_root, run_traced, scenario_args, syscall_stats,
};
use zc_trace_tests::strace::{have_strace, parse_summary, read_logs, tally};
use zc_trace_tests::{ALL_PARTS, expected, per_syscall};

const WORKLOAD: &str = env!("CARGO_BIN_EXE_zc-workload");

/// Runs the workload with `args` under `strace FLAGS -o OUT`; it must succeed.
fn run_under_strace(flags: &[&str], out: &Path, args: &[String]) {
    let cmd: Vec<String> = std::iter::once(WORKLOAD.to_string())
        .chain(args.iter().cloned())
        .collect();
    run_cmd_under_strace(flags, out, &cmd);
}

/// Runs `cmd` under `strace FLAGS -o OUT`; it must succeed.
fn run_cmd_under_strace(flags: &[&str], out: &Path, cmd: &[String]) {
    let run = Command::new("strace")
        .args(flags)
        .arg("-o")
        .arg(out)
        .arg("--")
        .args(cmd)
        .output()
        .expect("run strace");
    assert!(
        run.status.success(),
        "{cmd:?} failed under strace {flags:?} ({}):\n{}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
}

fn strace_tally(dir: &TempDir, tag: &str, args: &[String]) -> BTreeMap<(String, String), Stats> {
    let logs = dir.join(tag);
    std::fs::create_dir(&logs).unwrap();
    run_under_strace(&["-ff", "-yy", "-v", "-s", "0"], &logs.join("trace"), args);
    let calls = read_logs(&logs).unwrap_or_else(|e| panic!("{tag}: {e}"));
    tally(&calls).unwrap_or_else(|e| panic!("{tag}: {e}"))
}

/// Runs every scenario and the `noop` baseline under strace and checks that
/// the difference is exactly the declared expectations: nothing missing,
/// nothing extra (among the measured syscalls), except anonymous mmaps
/// (thread stacks, malloc arenas), which no scenario declares.
fn check_workload(count: u64, size: u64, threads: u64) {
    let dir = TempDir::new("oracle");
    let base = strace_tally(
        &dir,
        "noop",
        &scenario_args(&dir, "noop", count, size, threads),
    );
    let mut problems = Vec::new();
    let scenarios = ALL_PARTS.iter().copied().chain(["errors", "all"]);
    for scenario in scenarios {
        let got = strace_tally(
            &dir,
            scenario,
            &scenario_args(&dir, scenario, count, size, threads),
        );
        let want: BTreeMap<(String, String), Stats> = expected(scenario, count, size, threads)
            .into_iter()
            .map(|e| {
                let s = Stats {
                    count: e.count,
                    errors: e.errors,
                    bytes: e.bytes,
                };
                ((e.syscall.to_string(), e.kind.to_string()), s)
            })
            .collect();
        let keys: BTreeSet<_> = got.keys().chain(base.keys()).chain(want.keys()).collect();
        for key in keys {
            if key.0 == "mmap" && key.1 == "none" {
                continue;
            }
            let g = got.get(key).copied().unwrap_or_default();
            let b = base.get(key).copied().unwrap_or_default();
            let w = want.get(key).copied().unwrap_or_default();
            let delta = |g: u64, b: u64| g as i128 - b as i128;
            if (
                delta(g.count, b.count),
                delta(g.errors, b.errors),
                delta(g.bytes, b.bytes),
            ) != (w.count as i128, w.errors as i128, w.bytes as i128)
            {
                problems.push(format!(
                    "{scenario} {}/{}: declared {w:?}, strace saw {g:?} minus baseline {b:?}",
                    key.0, key.1
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "zc-workload (count {count}, size {size}, threads {threads}) does not do what \
         zc_trace_tests::expected says:\n{}",
        problems.join("\n")
    );
}

#[test]
fn workload_makes_exactly_the_declared_calls() {
    if have_strace("workload_makes_exactly_the_declared_calls") {
        check_workload(16, 4096, 2);
    }
}

#[test]
fn workload_makes_exactly_the_declared_calls_with_unaligned_sizes() {
    if have_strace("workload_makes_exactly_the_declared_calls_with_unaligned_sizes") {
        check_workload(5, 1001, 3);
    }
}

/// The syscalls compared between zc-trace and `strace -c` even when both
/// saw none (all others are compared when either tool saw them).
const COMPARED: &[&str] = &[
    "read",
    "write",
    "pread64",
    "readv",
    "preadv",
    "preadv2",
    "writev",
    "sendto",
    "recvfrom",
    "sendmsg",
    "recvmsg",
    "sendmmsg",
    "recvmmsg",
    "sendfile",
    "splice",
    "tee",
    "vmsplice",
    "copy_file_range",
    "mmap",
    "munmap",
    "openat",
    "close",
];

/// Syscalls whose number depends on thread timing in the workload itself,
/// so two runs (one per tool) may differ: futex waits happen only when a
/// joined thread is still running or a lock is contended.
const TIMING_DEPENDENT: &[&str] = &["futex"];

/// `strace -f -c` of `cmd`, per syscall.
fn strace_summary(cmd: &[String], out: &Path) -> BTreeMap<String, zc_trace_tests::strace::Row> {
    run_cmd_under_strace(&["-f", "-c"], out, cmd);
    let text = std::fs::read_to_string(out).expect("strace -c output");
    parse_summary(&text).unwrap_or_else(|e| panic!("strace -c output: {e}\n{text}"))
}

/// Every syscall the tools saw, not only the data-moving ones: both see the
/// same program from its execve on. strace's own child
/// (fork, ptrace set-up, SIGSTOP) is not counted by strace; zc-trace's child
/// stops itself before execve until the probes know its pid, which adds at
/// most a kill/execve pair, none of them compared. So no correction is
/// applied: any difference fails. The workload pins malloc to one arena so
/// that mmap/munmap counts do not depend on thread timing (strace slows
/// threads down).
#[test]
fn zc_trace_counts_match_strace_for_all() {
    let test = "zc_trace_counts_match_strace_for_all";
    if !have_strace(test) || !require_root(test) {
        return;
    }
    let (count, size, threads) = (16, 4096, 2);
    let dir = TempDir::new("vs-strace");
    let cmd: Vec<String> = std::iter::once(WORKLOAD.to_string())
        .chain(scenario_args(&dir, "all", count, size, threads))
        .collect();
    let strace = strace_summary(&cmd, &dir.join("strace-c.txt"));

    // Guard against comparing two empty tables: strace must have seen at
    // least the calls the scenario declares.
    for (name, calls, errors) in per_syscall(&expected("all", count, size, threads)) {
        let s = strace.get(name).copied().unwrap_or_default();
        assert!(
            s.calls >= calls && s.errors >= errors,
            "strace -c saw {s:?} {name} calls, fewer than the {calls} (errors {errors}) declared"
        );
    }
    for flags in MODES {
        let traced = run_traced(&dir, "all", flags, &cmd);
        assert!(
            traced.status.success(),
            "zc-trace {flags:?} -- zc-workload all: {}\n{}",
            traced.status,
            traced.stderr
        );
        let problems = disagreements(&strace, &traced.report);
        assert!(
            problems.is_empty(),
            "zc-trace {flags:?} and strace -c disagree on `zc-workload all`:\n{}\n\nzc-trace stderr:\n{}",
            problems.join("\n"),
            traced.stderr
        );
    }
}

/// Every way zc-trace can be set up to trace: the default (untimed,
/// statistics sampled), every call timed with statistics all along, and
/// no statistics at all. The counts must not depend on it.
const MODES: [&[&str]; 3] = [&[], &["--latency", "--exact-cost"], &["--no-cost"]];

/// Where zc-trace's per-syscall counts and errors differ from `strace -c`'s.
fn disagreements(
    strace: &BTreeMap<String, zc_trace_tests::strace::Row>,
    report: &zc_trace_tests::harness::Report,
) -> Vec<String> {
    // The listed syscalls always, and every other one either tool saw.
    let zc_names = report
        .syscalls()
        .as_object()
        .expect("syscalls object")
        .keys();
    let names: BTreeSet<&str> = COMPARED
        .iter()
        .copied()
        .chain(strace.keys().map(String::as_str))
        .chain(zc_names.map(String::as_str))
        .collect();
    let strace_calls = |name: &str| strace.get(name).map_or(0, |r| r.calls);
    let mut problems = Vec::new();
    for name in names {
        if TIMING_DEPENDENT.contains(&name) {
            continue;
        }
        let s = strace.get(name).copied().unwrap_or_default();
        let z = syscall_stats(report.syscalls(), name);
        let want = match name {
            // strace -c counts a call when it returns; exit and exit_group
            // never do, so its table leaves them out. zc-trace counts them
            // at entry: one exit per thread (clone3), one exit_group per
            // process (the workload and each fork child, clone).
            "exit" => (strace_calls("clone3"), 0),
            "exit_group" => (1 + strace_calls("clone"), 0),
            _ => (s.calls, s.errors),
        };
        if (z.count, z.errors) != want {
            problems.push(format!(
                "{name}: strace {} calls {} errors (so zc-trace should have {want:?}), \
                 zc-trace {} calls {} errors",
                s.calls, s.errors, z.count, z.errors
            ));
        }
    }
    problems
}

/// A bash trap run twice: rt_sigreturn (which overwrites its own syscall
/// number before it returns) and every other call, as strace counts them.
#[test]
fn zc_trace_counts_match_strace_for_a_bash_trap() {
    let test = "zc_trace_counts_match_strace_for_a_bash_trap";
    if !have_strace(test) || !require_root(test) {
        return;
    }
    let dir = TempDir::new("vs-strace-trap");
    let cmd: Vec<String> = ["bash", "-c", "trap : USR1; kill -USR1 $$; kill -USR1 $$"]
        .map(String::from)
        .to_vec();
    let strace = strace_summary(&cmd, &dir.join("strace-c.txt"));
    assert_eq!(
        strace.get("rt_sigreturn").map(|r| r.calls),
        Some(2),
        "strace: {strace:?}"
    );
    for flags in MODES {
        let traced = run_traced(&dir, "trap", flags, &cmd);
        assert!(traced.status.success(), "{flags:?}: {}", traced.stderr);
        let problems = disagreements(&strace, &traced.report);
        assert!(
            problems.is_empty(),
            "zc-trace {flags:?} and strace -c disagree on a bash trap:\n{}",
            problems.join("\n")
        );
    }
}
