//! The timeline samples the all-process totals every interval, reading
//! only the totals slots the probes have marked as in use (issue 15 item
//! 8, issue 12: collector CPU). A call made for the first time mid-run
//! must be in the samples from then on, and the samples must add up to
//! the report.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use serde_json::Value;
use zc_trace_tests::harness::{Proc, Report, TempDir, require_root, tracer_bin, u64_field};

/// Bytes dd moves in each phase (1-byte reads and writes).
const PHASE_A: u64 = 3000;
const PHASE_B: u64 = 2000;
/// Live intervals seen on a plateau before the workload may go on: at
/// 50 ms each against a 10 ms timeline interval, the timeline has sampled
/// the plateau by then.
const PLATEAU_LINES: usize = 5;

/// The tracer's --ndjson intervals, one per line, as they come.
fn intervals(proc: &mut Proc) -> Receiver<Value> {
    let out = proc.child.stdout.take().expect("piped stdout");
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            let v =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            if tx.send(v).is_err() {
                break;
            }
        }
    });
    rx
}

/// Cumulative (device, copied_from_user) bytes over the live intervals.
#[derive(Default, Clone, Copy, Debug, PartialEq)]
struct Sums {
    device: u64,
    from_user: u64,
}

impl Sums {
    fn add(&mut self, interval: &Value) {
        self.device += u64_field(interval, "/device");
        self.from_user += u64_field(interval, "/copied_from_user");
    }
}

/// Reads intervals until PLATEAU_LINES in a row show cumulative sums
/// `done` accepts (a plateau); panics if the stream ends first, or if the
/// sums do not get there within a minute.
fn wait_for_plateau(
    rx: &Receiver<Value>,
    sums: &mut Sums,
    proc: &Proc,
    done: impl Fn(&Sums) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut in_a_row = 0;
    while in_a_row < PLATEAU_LINES {
        let left = deadline.saturating_duration_since(Instant::now());
        let interval = rx.recv_timeout(left).unwrap_or_else(|e| {
            panic!(
                "no interval showing the workload's calls ({e}); sums so far {sums:?}\nstderr:\n{}",
                proc.stderr()
            )
        });
        sums.add(&interval);
        in_a_row = if done(sums) { in_a_row + 1 } else { 0 };
    }
}

fn release(fifo: &std::path::Path) {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(fifo)
        .unwrap_or_else(|e| panic!("open {}: {e}", fifo.display()));
    f.write_all(b"go\n").expect("write fifo");
}

/// Phase A copies to and from devices; phase B then writes to a file, a
/// (syscall, fd kind) never used before in the run. The live intervals and
/// the timeline both see B's calls while the workload is still running,
/// and every sample is one the report's totals agree with.
#[test]
fn calls_first_made_mid_run_are_in_the_timeline_from_then_on() {
    if !require_root("calls_first_made_mid_run_are_in_the_timeline_from_then_on") {
        return;
    }
    let dir = TempDir::new("timeline");
    let json = dir.join("run.json");
    let (go_b, go_end) = (dir.join("go-b"), dir.join("go-end"));
    for fifo in [&go_b, &go_end] {
        let path = std::ffi::CString::new(fifo.to_str().expect("utf-8 path")).expect("no NUL");
        // SAFETY: a valid C string.
        assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0, "mkfifo");
    }
    let script = format!(
        "dd if=/dev/zero of=/dev/null bs=1 count={PHASE_A} status=none; read x < {b}; \
         dd if=/dev/zero of={file} bs=1 count={PHASE_B} status=none; read x < {end}",
        b = go_b.display(),
        file = dir.join("out").display(),
        end = go_end.display(),
    );
    let mut tracer = Proc::spawn_keeping_stdout(
        Command::new(tracer_bin())
            .args(["--interval", "10ms", "--every", "50ms", "--ndjson", "-"])
            .arg("--json")
            .arg(&json)
            .args(["--", "bash", "-c", &script])
            .stdout(Stdio::piped()),
    );
    let rx = intervals(&mut tracer);
    let mut sums = Sums::default();

    // Phase A: dd's reads from /dev/zero and writes to /dev/null.
    wait_for_plateau(&rx, &mut sums, &tracer, |s| s.device == 2 * PHASE_A);
    let from_user_a = sums.from_user;
    release(&go_b);
    // Phase B: its file writes are counted while the run goes on.
    wait_for_plateau(&rx, &mut sums, &tracer, |s| {
        s.device == 2 * PHASE_A + PHASE_B && s.from_user == from_user_a + PHASE_B
    });
    release(&go_end);
    let status = tracer.wait_or_kill(Duration::from_secs(60));
    assert!(status.success(), "{status}\n{}", tracer.stderr());

    let report = Report::load(&json);
    let samples = report.0["timeline"]["samples"]
        .as_array()
        .expect("timeline samples");
    let columns = ["syscalls", "device", "copied_from_user", "copied_to_user"];
    for pair in samples.windows(2) {
        for c in columns {
            assert!(
                pair[0][c].as_u64() <= pair[1][c].as_u64(),
                "{c} went backwards: {} then {}",
                pair[0],
                pair[1]
            );
        }
    }
    let (last, before_end) = samples.split_last().expect("at least one sample");
    let totals = &report.0["totals"];
    assert_eq!(last["syscalls"], totals["syscalls"], "the last sample");
    assert_eq!(last["device"], totals["bytes"]["device"], "the last sample");
    // Each plateau was sampled on the way, not only at the end.
    for (phase, device, from_user) in [
        ("A", 2 * PHASE_A, from_user_a),
        ("B", 2 * PHASE_A + PHASE_B, from_user_a + PHASE_B),
    ] {
        assert!(
            before_end
                .iter()
                .any(|s| s["device"] == device && s["copied_from_user"] == from_user),
            "no sample of phase {phase}'s plateau (device {device}, copied_from_user {from_user}) in {before_end:?}"
        );
    }
}

/// Calls dd makes in the active phase (a read and a write per byte).
const ACTIVE_BYTES: u64 = 200_000;

/// Issue 12 (collector CPU): while the counters stand still the timeline is
/// sampled less and less often (the wait doubles up to 1 s), and the first
/// count after that wakes the collector at once, so the timeline still
/// shows when activity resumed: the first sample after the quiet stretch
/// holds the first few calls (the first sleep's end), not dd's 400,000 (a
/// tick up to 1 s late would land in them at random); the second sleep
/// gives the collector 0.1 s to take that sample on a busy machine.
#[test]
fn a_quiet_stretch_is_sampled_less_often_and_its_end_at_once() {
    if !require_root("a_quiet_stretch_is_sampled_less_often_and_its_end_at_once") {
        return;
    }
    let dir = TempDir::new("timeline-quiet");
    let script = format!(
        "sleep 3; sleep 0.1; exec dd if=/dev/zero of=/dev/null bs=1 count={ACTIVE_BYTES} status=none"
    );
    let t = zc_trace_tests::harness::run_traced(
        &dir,
        "quiet",
        &["--interval", "100ms"],
        &["bash".into(), "-c".into(), script],
    );
    assert!(t.status.success(), "{}\n{}", t.status, t.stderr);
    let samples: Vec<(u64, u64)> = t.report.0["timeline"]["samples"]
        .as_array()
        .expect("timeline samples")
        .iter()
        .map(|s| (u64_field(s, "/t_ns"), u64_field(s, "/syscalls")))
        .collect();
    // The quiet stretch: the longest run of samples with the same count.
    let quiet = samples
        .chunk_by(|a, b| a.1 == b.1)
        .max_by_key(|run| run[run.len() - 1].0 - run[0].0)
        .expect("samples");
    let quiet_level = quiet[0].1;
    let (first_quiet, last_quiet) = (quiet[0].0, quiet[quiet.len() - 1].0);
    assert!(
        last_quiet - first_quiet >= 2_000_000_000,
        "the sleep is a quiet stretch of 2 s or more: {samples:?}"
    );
    // 100 ms apart all along would be 20 or more samples.
    assert!(
        quiet.len() <= 8,
        "{} samples in a quiet stretch of {} ms: {samples:?}",
        quiet.len(),
        (last_quiet - first_quiet) / 1_000_000
    );
    let woken = samples
        .iter()
        .position(|(t, n)| *t > last_quiet && *n > quiet_level)
        .expect("a sample after the quiet stretch");
    let first_calls = samples[woken].1 - quiet_level;
    assert!(
        first_calls < 5_000,
        "the first sample after the quiet stretch holds the first calls \
         only, not {first_calls} of dd's {}: {samples:?}",
        2 * ACTIVE_BYTES
    );
    // And sampling is back to --interval while dd runs.
    if let Some(&(next_t, next_n)) = samples.get(woken + 1) {
        if next_n < quiet_level + 2 * ACTIVE_BYTES {
            assert!(
                next_t - samples[woken].0 <= 400_000_000,
                "back to 100 ms apart: {samples:?}"
            );
        }
    }
}

/// The review of issue 12's back-off: counts that move no timeline field
/// (a syscall past the totals' numbers, here 600 once a millisecond) used
/// to wake the collector for a sample each. A wakeup now ends the back-off
/// like a change does, so they get a sample per --interval at most.
#[test]
fn counts_the_timeline_does_not_show_do_not_wake_the_collector_each() {
    if !require_root("counts_the_timeline_does_not_show_do_not_wake_the_collector_each") {
        return;
    }
    let dir = TempDir::new("timeline-unseen");
    // Nothing but syscall 600 (ENOSYS) for 2 s, 1 ms apart, after a quiet
    // second: time.time() reads the vDSO clock, no syscall.
    let script = "import ctypes, time\n\
                  call = ctypes.CDLL(None).syscall\n\
                  time.sleep(1)\n\
                  end = time.time() + 2\n\
                  while time.time() < end:\n    \
                      call(600)\n    \
                      t = time.time() + 0.001\n    \
                      while time.time() < t: pass\n";
    let t = zc_trace_tests::harness::run_traced(
        &dir,
        "unseen",
        &["--interval", "100ms"],
        &["python3".into(), "-c".into(), script.into()],
    );
    assert!(t.status.success(), "{}\n{}", t.status, t.stderr);
    let syscalls = &t.report.0["syscalls"];
    let unseen = syscalls
        .as_object()
        .and_then(|m| m.values().find(|e| e["nr"] == 600))
        .and_then(|e| e["count"].as_u64())
        .unwrap_or(0);
    assert!(
        unseen > 500,
        "the loop made its calls: {unseen}\n{syscalls}"
    );
    let samples = t.report.0["timeline"]["samples"]
        .as_array()
        .expect("timeline samples")
        .len();
    // ~3.5 s at 100 ms is 35 samples; one a wakeup would be 1,000 or more.
    assert!(
        samples <= 60,
        "{samples} timeline samples for {unseen} calls of syscall 600"
    );
}
