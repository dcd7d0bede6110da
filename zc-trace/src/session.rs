//! One tracing run, start to finish. Every way a run ends (the targets
//! exit, Ctrl-C, SIGTERM, --duration) goes through the same path and writes
//! the same full report.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::mpsc,
};

use crate::{
    btf,
    cli::TargetSpec,
    collector::Collector,
    error::failure,
    loader,
    model::{
        ledger::{RunInfo, build_report},
        report::{Report, Target, Timeline},
        timeline,
    },
    preflight, target, task_faults,
};

/// How long a wrapped command gets to exit after it was signalled.
const GRACE: Duration = Duration::from_secs(2);

/// Why tracing stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    TargetsExited,
    Signal(i32),
    Duration,
}

struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

/// News from the thread that reaps a wrapped command and its descendants.
enum Reaped {
    Command(i32),
    All,
}

/// How to trace.
#[derive(Clone, Debug)]
pub struct TraceOptions {
    pub spec: TargetSpec,
    /// Attach mode only: follow new children (a wrapped command's always are).
    pub follow_forks: bool,
    pub interval: Duration,
    pub duration: Option<Duration>,
    /// Print the "zc-trace: tracing ..." line when the probes are live.
    pub announce: bool,
    /// Time every syscall (a second probe per call); off: counts only.
    pub timed: bool,
    /// Measure the probes' own run time (BPF_ENABLE_STATS).
    pub cost: bool,
}

/// The outcome of a run.
pub struct Traced {
    pub report: Report,
    /// The wrapped command's exit code (128 + signal if killed), if it exited.
    pub exit_code: Option<i32>,
    /// The signal that stopped tracing early, if any.
    pub stopped_by: Option<i32>,
}

impl Traced {
    /// zc-trace's own exit code for this run.
    pub fn exit_status(&self) -> u8 {
        match (self.exit_code, self.stopped_by) {
            (Some(code), _) => code.clamp(0, 255) as u8,
            (None, Some(sig)) => (128 + sig) as u8,
            _ => 0,
        }
    }
}

/// Traces a wrapped command or a running process until it ends, and
/// returns the report. Fails before loading anything when the target
/// cannot be traced.
pub fn trace(opts: &TraceOptions) -> Result<Traced> {
    preflight::check_privileges()?;
    preflight::check_btf()?;
    match &opts.spec {
        TargetSpec::Wrap(argv) => drop(target::resolve_command(&argv[0])?),
        TargetSpec::Attach(pid) => drop(target::check_attach(*pid)?),
    }

    let offsets = btf::kernel_offsets().unwrap_or_else(|e| {
        eprintln!(
            "zc-trace: warning: cannot read kernel struct offsets from BTF ({e:#}): fd kinds will show as unknown"
        );
        Default::default()
    });
    let follow = matches!(opts.spec, TargetSpec::Wrap(_)) || opts.follow_forks;
    let mut probes = loader::load(&loader::LoadOptions {
        follow_forks: follow,
        timed: opts.timed,
        stats: opts.cost,
        offsets,
    })?;
    for m in &probes.missing {
        eprintln!("zc-trace: warning: {m}");
    }
    let mut collector = Collector::new(&mut probes)?;

    // Ctrl-C and SIGTERM must be caught from the moment we say "tracing":
    // the default action would kill us and lose the report.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let signals = {
        let _ctx = runtime.enter();
        Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
        }
    };

    let (reaped_tx, reaped_rx) = mpsc::unbounded_channel();
    // Faults the attached process took before we came are not the run's.
    let mut faults_at_start = std::collections::BTreeMap::new();
    let (pid, command) = match &opts.spec {
        TargetSpec::Wrap(argv) => {
            // Orphaned descendants are re-parented to us, so we can wait for
            // all of them, not just the command.
            // SAFETY: plain prctl.
            unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) };
            let child = target::spawn_held(argv)?;
            let pid = child.pid as u32;
            // What the held child took between fork and here is ours, not
            // the command's.
            faults_at_start.insert(pid, task_faults::live_threads(pid));
            collector.add_target(pid)?;
            if opts.announce {
                eprintln!(
                    "zc-trace: tracing `{}` (pid {pid}); the summary follows when it exits",
                    crate::render::format::printable(&words(argv).join(" "))
                );
            }
            child.release()?;
            spawn_reaper(pid as i32, reaped_tx);
            (pid, Some(words(argv)))
        }
        TargetSpec::Attach(p) => {
            let pid = *p as u32;
            faults_at_start.insert(pid, task_faults::live_threads(pid));
            collector.add_target(pid)?;
            if !target::is_alive(pid) {
                return Err(failure(
                    1,
                    format!("process {pid} exited while zc-trace was attaching: nothing to trace"),
                ));
            }
            if opts.announce {
                eprintln!(
                    "zc-trace: tracing pid {pid}{} until it exits or Ctrl-C",
                    if opts.follow_forks {
                        " and its new children"
                    } else {
                        ""
                    }
                );
            }
            (pid, None)
        }
    };
    let started = Instant::now();
    let cpu_at_start = own_cpu_ns();
    let started_at_unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);

    let (end, mut samples, exit_code) = runtime.block_on(trace_loop(
        &mut collector,
        opts,
        pid,
        started,
        reaped_rx,
        signals,
    ))?;

    let mut counters = collector.finish()?;
    task_faults::settle(&mut counters, &faults_at_start);
    let duration_ns = started.elapsed().as_nanos() as u64;
    samples.push(timeline::sample(&counters, duration_ns));
    let run = RunInfo {
        target: Target {
            mode: if command.is_some() { "wrap" } else { "attach" }.into(),
            command,
            pid,
            exit_code,
            follow_forks: follow,
        },
        started_at_unix_ms,
        duration_ns,
        timeline: Timeline {
            interval_ns: opts.interval.as_nanos() as u64,
            samples,
        },
    };
    let mut report = build_report(&counters, run);
    report.notes.extend(probes.missing.iter().cloned());
    let stopped_by = match end {
        End::Signal(sig) => {
            report.notes.push(format!(
                "tracing was stopped by signal {sig} before the targets exited"
            ));
            Some(sig)
        }
        _ => None,
    };
    let mut nrs: Vec<u32> = counters.syscalls.iter().map(|(k, _)| k.nr).collect();
    nrs.sort_unstable();
    nrs.dedup();
    report.latency = collector
        .latency(nrs)
        .into_iter()
        .map(|(nr, buckets)| (crate::model::syscall_name(nr), buckets))
        .collect();
    report.cost = probes.cost();
    report.cost.collector_cpu_ns = own_cpu_ns().saturating_sub(cpu_at_start);
    drop(probes);
    Ok(Traced {
        report,
        exit_code,
        stopped_by,
    })
}

/// User + system CPU time of this process (not its children) so far.
fn own_cpu_ns() -> u64 {
    // SAFETY: getrusage fills the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let ns = |tv: libc::timeval| tv.tv_sec as u64 * 1_000_000_000 + tv.tv_usec as u64 * 1000;
    ns(ru.ru_utime) + ns(ru.ru_stime)
}

/// The command line as text for the report (bytes that are not UTF-8
/// become U+FFFD; the command itself ran with them intact).
fn words(argv: &[std::ffi::OsString]) -> Vec<String> {
    argv.iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

/// Reaps the command and every orphan re-parented to us; says when the
/// command exits (with its shell-style exit code) and when none are left.
fn spawn_reaper(command: i32, tx: mpsc::UnboundedSender<Reaped>) {
    std::thread::spawn(move || {
        loop {
            let mut status = 0;
            // SAFETY: waiting for our own children.
            let r = unsafe { libc::waitpid(-1, &mut status, 0) };
            if r < 0 {
                if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                let _ = tx.send(Reaped::All);
                return;
            }
            if r == command {
                let code = if libc::WIFEXITED(status) {
                    libc::WEXITSTATUS(status)
                } else {
                    128 + libc::WTERMSIG(status)
                };
                let _ = tx.send(Reaped::Command(code));
            }
        }
    });
}

async fn trace_loop(
    collector: &mut Collector,
    opts: &TraceOptions,
    pid: u32,
    started: Instant,
    mut reaped: mpsc::UnboundedReceiver<Reaped>,
    mut signals: Signals,
) -> Result<(End, Vec<crate::model::report::TimelineSample>, Option<i32>)> {
    let mut tick = tokio::time::interval(opts.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let deadline = opts
        .duration
        .map(|d| tokio::time::Instant::from_std(started + d));
    let wrap = matches!(opts.spec, TargetSpec::Wrap(_));
    let mut samples = Vec::new();
    let mut exit_code = None;

    let end = loop {
        tokio::select! {
            _ = tick.tick() => {
                collector.fold_exited()?;
                samples.push(timeline::sample(&collector.read(), started.elapsed().as_nanos() as u64));
                if !wrap && !collector.live_targets().into_iter().any(target::is_alive) {
                    break End::TargetsExited;
                }
            }
            msg = reaped.recv(), if wrap => match msg {
                Some(Reaped::Command(code)) => exit_code = Some(code),
                Some(Reaped::All) | None => break End::TargetsExited,
            },
            _ = signals.int.recv() => break End::Signal(libc::SIGINT),
            _ = signals.term.recv() => break End::Signal(libc::SIGTERM),
            _ = async { tokio::time::sleep_until(deadline.unwrap()).await }, if deadline.is_some() => {
                break End::Duration;
            }
        }
    };

    // A wrapped command is ours: pass the stop on to it and give it a moment
    // to exit, so its last calls and its exit code make it into the report.
    if wrap && end != End::TargetsExited {
        let sig = match end {
            End::Signal(sig) => sig,
            _ => libc::SIGTERM,
        };
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid as i32, sig) };
        let mut wait_all = async |limit| {
            tokio::time::timeout(limit, async {
                while let Some(msg) = reaped.recv().await {
                    match msg {
                        Reaped::Command(code) => exit_code = Some(code),
                        Reaped::All => return true,
                    }
                }
                true
            })
            .await
            .unwrap_or(false)
        };
        if !wait_all(GRACE).await {
            // What is left (a child that ignores the signal, a grandchild
            // the shell left behind) would go on untraced: the command does
            // not outlive its tracer.
            for p in collector
                .live_targets()
                .into_iter()
                .filter(|&p| target::is_alive(p))
            {
                // SAFETY: signalling a process of the traced command's tree.
                unsafe { libc::kill(p as i32, libc::SIGKILL) };
            }
            wait_all(GRACE).await;
        }
    }
    Ok((end, samples, exit_code))
}
