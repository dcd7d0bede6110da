//! Habits users bring from strace and perf (issue 13): durations like
//! `1m30s`, `compare`'s table on stdout, `--quiet` quiet, and errors that
//! name what is missing or what kind of file was given.

use std::{path::PathBuf, process::Command};

use zc_trace_tests::harness::{Proc, TempDir, require_root, tracer_bin};

/// A saved report committed with the library's golden test.
fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../zc-trace/tests/fixtures/bash-pipe-cp.json")
}

fn zc(args: &[&str]) -> std::process::Output {
    Command::new(tracer_bin()).args(args).output().unwrap()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn report_without_output_dir_names_the_missing_option() {
    let f = fixture();
    let out = zc(&["report", f.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--output-dir <DIR>"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn report_on_a_lab_file_says_it_is_one() {
    let dir = TempDir::new("habits-lab");
    let lab = dir.join("lab.json");
    std::fs::write(&lab, r#"{"schema_version": 1, "methods": [], "size": 1}"#).unwrap();
    let out = zc(&[
        "report",
        lab.to_str().unwrap(),
        "-o",
        dir.join("out").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("methods lab's JSON"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn compare_prints_its_table_on_stdout() {
    let f = fixture();
    let f = f.to_str().unwrap();
    let out = zc(&["compare", f, f]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("syscalls") && table.contains("bash-pipe-cp"),
        "{table}"
    );
    assert!(out.stderr.is_empty(), "stderr: {}", stderr(&out));
}

#[test]
fn quiet_prints_nothing_on_success_and_durations_read_like_humans_write_them() {
    if !require_root("quiet_prints_nothing_on_success_and_durations_read_like_humans_write_them") {
        return;
    }
    let dir = TempDir::new("habits-quiet");
    let out = zc(&[
        "--quiet",
        "--duration",
        "1m30s",
        "-o",
        dir.join("out").to_str().unwrap(),
        "--",
        "true",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stderr.is_empty(), "--quiet printed: {}", stderr(&out));
    assert!(dir.join("out/report.json").is_file());
}

/// A `sleep 600` and zc-trace attached to it (`--json <dir>/attach.json`),
/// its probes live.
fn attach_to_a_sleeper(dir: &TempDir) -> (Proc, Proc, PathBuf) {
    let sleeper = Proc::spawn(Command::new("sleep").arg("600"));
    let json = dir.join("attach.json");
    let mut tracer = Proc::spawn(
        Command::new(tracer_bin())
            .args(["-p", &sleeper.pid().to_string(), "--json"])
            .arg(&json),
    );
    tracer.wait_for_line("zc-trace: tracing", std::time::Duration::from_secs(30));
    (sleeper, tracer, json)
}

/// Issue 13: an attach run that wrote its report succeeded, however it was
/// stopped: SIGTERM and Ctrl-C (SIGINT) give 0, as `perf stat -p` does.
#[test]
fn a_completed_attach_run_exits_0_however_it_was_stopped() {
    use std::time::Duration;
    use zc_trace_tests::harness::{Report, signal};
    if !require_root("a_completed_attach_run_exits_0_however_it_was_stopped") {
        return;
    }
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let dir = TempDir::new("habits-attach-exit");
        let (mut sleeper, mut tracer, json) = attach_to_a_sleeper(&dir);
        signal(tracer.pid(), sig);
        let status = tracer.wait_or_kill(Duration::from_secs(30));
        signal(sleeper.pid(), libc::SIGKILL);
        let _ = sleeper.wait_or_kill(Duration::from_secs(10));
        assert_eq!(status.code(), Some(0), "signal {sig}: {}", tracer.stderr());
        let r = Report::load(&json);
        assert_eq!(r.0["target"]["mode"], "attach");
    }
}

/// Issue 12: an attach run ends as its target exits, not at the next
/// timeline sample, which is up to 1 s away once the idle target has let
/// sampling back off. Its exit probe wakes the collector before the kernel
/// marks the process exited; the target's pidfd then ends the run. Three
/// rounds: the fastest within 150 ms (the next sample would be 200 ms or
/// more away), every one within 600 ms.
#[test]
fn an_attach_run_ends_as_its_target_exits() {
    use std::time::{Duration, Instant};
    use zc_trace_tests::harness::{Report, signal};
    if !require_root("an_attach_run_ends_as_its_target_exits") {
        return;
    }
    let mut took = vec![];
    for round in 0..3 {
        let dir = TempDir::new("habits-attach-end");
        let (mut sleeper, mut tracer, json) = attach_to_a_sleeper(&dir);
        // Until the samples are a second apart (0.2, 0.6, 1.4, 2.4 s).
        std::thread::sleep(Duration::from_millis(2600));
        let killed = Instant::now();
        signal(sleeper.pid(), libc::SIGKILL);
        let _ = sleeper.wait_or_kill(Duration::from_secs(10));
        let status = tracer.wait_or_kill(Duration::from_secs(30));
        took.push(killed.elapsed());
        assert!(
            status.success(),
            "round {round}: {status}: {}",
            tracer.stderr()
        );
        let r = Report::load(&json);
        assert_eq!(r.0["target"]["mode"], "attach");
    }
    let fastest = took.iter().min().expect("three rounds");
    assert!(
        *fastest < Duration::from_millis(150),
        "the runs ended {took:?} after their targets"
    );
    assert!(
        took.iter().all(|t| *t < Duration::from_millis(600)),
        "the runs ended {took:?} after their targets"
    );
}
