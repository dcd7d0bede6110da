//! One tracing run, start to finish. Every way a run ends (the targets
//! exit, Ctrl-C, SIGTERM, --duration) goes through the same path and writes
//! the same full report.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use tokio::sync::mpsc;
use zc_trace_common::scope;

use crate::{
    bpf_stats::{StatsMode, StatsWindows},
    btf,
    cli::TargetSpec,
    collector::Collector,
    error::failure,
    loader,
    model::{
        ledger::{RunInfo, build_report},
        report::{Report, Target, Timeline, Timing},
        timeline,
    },
    preflight, target, task_accounting,
};

mod cadence;
pub mod live;
mod sampler;
pub(crate) mod signals;
mod target_watch;
pub(crate) mod timer;

use sampler::Sampler;
use signals::{Signals, next};
use target_watch::TargetWatch;
use timer::Timer;

/// A bound for the live interval timer (a timerfd holds at most ~292
/// years).
const MAX_EVERY: Duration = Duration::from_secs(365 * 24 * 3600);

/// How long a wrapped command gets to exit after it was signalled.
const GRACE: Duration = Duration::from_secs(2);

/// Why tracing stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    TargetsExited,
    Signal(i32),
    Duration,
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
    /// How the probes' own run time is measured (BPF_ENABLE_STATS).
    pub cost: StatsMode,
    /// Per-interval output while tracing (--every, --ndjson).
    pub live: Option<live::LiveOptions>,
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
    /// zc-trace's own exit code for this run: the wrapped command's (128 +
    /// signal when zc-trace was stopped before it exited). An attach run
    /// that wrote its report succeeded however it was stopped (Ctrl-C,
    /// SIGTERM, --duration, the process's exit): 0, as `perf stat -p` does.
    pub fn exit_status(&self) -> u8 {
        let attached = self.report.target.command.is_none();
        match (self.exit_code, self.stopped_by) {
            _ if attached => 0,
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
    let mut live = None;
    let follow = matches!(opts.spec, TargetSpec::Wrap(_)) || opts.follow_forks;
    let Loaded {
        probes,
        mut collector,
        cgroup,
        scope,
    } = load(&opts.spec, follow, opts.timed, || {
        live = opts.live.as_ref().map(live::Live::open).transpose()?;
        Ok(())
    })?;

    // Ctrl-C and SIGTERM must be caught from the moment we say "tracing":
    // the default action would kill us and lose the report.
    let (runtime, signals) = runtime_with_signals()?;
    let (reaped_tx, reaped_rx) = mpsc::unbounded_channel();
    let (targets, mut stats) =
        start_targets(opts, &probes, &mut collector, cgroup.as_ref(), reaped_tx)?;
    let started = Instant::now();
    let cpu_at_start = own_cpu_ns();
    let started_at_unix_ms = unix_ms_now();

    let (end, mut samples, exit_code) = runtime.block_on(trace_loop(
        &mut collector,
        &mut stats,
        opts,
        targets.wrapped.as_ref(),
        live.as_mut(),
        started,
        Stops {
            reaped: reaped_rx,
            signals,
        },
    ))?;

    let counters = final_counters(&mut collector, live, started)?;
    let duration_ns = started.elapsed().as_nanos() as u64;
    samples.push(timeline::sample(&counters, duration_ns));
    let run = RunInfo {
        target: report_target(opts, follow, cgroup, exit_code, &targets),
        started_at_unix_ms,
        duration_ns,
        timeline: Timeline {
            interval_ns: opts.interval.as_nanos() as u64,
            samples,
        },
        timing: if opts.timed {
            Timing::OnOffCpu
        } else {
            Timing::Off
        },
    };
    let mut report = build_report(&counters, run);
    add_run_notes(&mut report, opts, targets.untraced_children, &probes);
    let stopped_by = stopping_signal(end, scope, &mut report);
    report.latency = latency(&collector, &counters);
    report.cost = stats.finish(counters.calls());
    report.cost.collector_cpu_ns = own_cpu_ns().saturating_sub(cpu_at_start);
    report.cost.folds = collector.folds();
    drop(probes);
    Ok(Traced {
        report,
        exit_code,
        stopped_by,
    })
}

/// The runtime the trace loop runs on, with Ctrl-C and SIGTERM caught.
pub(crate) fn runtime_with_signals() -> Result<(tokio::runtime::Runtime, Signals)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let signals = {
        let _ctx = runtime.enter();
        Signals::new()?
    };
    Ok((runtime, signals))
}

fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The counters at the end of tracing, with the cgroups named; the live
/// output gets its last, shorter interval, up to the end of tracing.
fn final_counters(
    collector: &mut Collector,
    live: Option<live::Live>,
    started: Instant,
) -> Result<crate::model::Counters> {
    let mut counters = collector.finish()?;
    if let Some(mut live) = live {
        live.tick(&counters, started.elapsed().as_nanos() as u64);
        live.finish()?;
    }
    name_cgroups(&mut counters);
    Ok(counters)
}

/// The targets as tracing begins: who they are and what the report says
/// of them.
#[derive(Default)]
struct Targets {
    pids: Vec<u32>,
    /// The wrapped command's words.
    command: Option<Vec<String>>,
    wrapped: Option<target::Wrapped>,
    /// The name of the one attached process.
    comm: Option<String>,
    /// Notes on an attached process's children, which are not traced.
    untraced_children: Vec<String>,
}

/// Starts (or attaches to) the targets and the probes' run-time
/// statistics, saying what is traced.
fn start_targets<'p>(
    opts: &TraceOptions,
    probes: &'p loader::Probes,
    collector: &mut Collector,
    cgroup: Option<&crate::cgroup::Traced>,
    reaped: mpsc::UnboundedSender<Reaped>,
) -> Result<(Targets, StatsWindows<'p>)> {
    // Faults and CPU time the targets used before we came are not the run's.
    let (targets, at_start, stats) = match &opts.spec {
        TargetSpec::Wrap(argv) => {
            let (targets, at_start, stats) = start_wrapped(argv, opts, probes, collector, reaped)?;
            (targets, at_start, Some(stats))
        }
        TargetSpec::Attach(given) => {
            let (targets, at_start) = start_attached(given, opts, collector)?;
            (targets, at_start, None)
        }
        TargetSpec::Cgroup(_) | TargetSpec::All => {
            // The probes count from their load; the processes' faults and
            // CPU time from before it are not the run's.
            let at_start = task_accounting::all_live();
            announce_scope(opts, cgroup);
            (Targets::default(), at_start, None)
        }
    };
    collector.take_off_at_start(at_start);
    let stats = stats.unwrap_or_else(|| StatsWindows::start(opts.cost, probes));
    Ok((targets, stats))
}

type AtStart = std::collections::BTreeMap<u32, task_accounting::TaskFigures>;

/// Spawns the command held before exec, registers it, and releases it.
fn start_wrapped<'p>(
    argv: &[std::ffi::OsString],
    opts: &TraceOptions,
    probes: &'p loader::Probes,
    collector: &mut Collector,
    reaped: mpsc::UnboundedSender<Reaped>,
) -> Result<(Targets, AtStart, StatsWindows<'p>)> {
    let child = target::spawn_held(argv)?;
    let pid = child.pid as u32;
    // What the held child took between fork and here is ours, not the
    // command's.
    let at_start = AtStart::from([(pid, task_accounting::live_threads(pid))]);
    collector.add_target(pid)?;
    if opts.announce {
        eprintln!(
            "zc-trace: tracing `{}` (pid {pid}); the summary follows when it exits",
            crate::render::format::printable(&words(argv).join(" "))
        );
    }
    // Statistics from when this run's probes count: not before the command
    // is spawned, or the guard process (a fork that never execs) would
    // hold the statistics' fd, and keep them on, all run long; but before
    // the command is released, or its first calls would be counted and
    // their probe runs not.
    let stats = StatsWindows::start(opts.cost, probes);
    let (wrapped, exits) = child.release()?;
    spawn_reaper(exits, reaped);
    let targets = Targets {
        pids: vec![pid],
        command: Some(words(argv)),
        wrapped: Some(wrapped),
        ..Default::default()
    };
    Ok((targets, at_start, stats))
}

/// Registers running processes, and says which of their children are not
/// traced.
fn start_attached(
    given: &[i32],
    opts: &TraceOptions,
    collector: &mut Collector,
) -> Result<(Targets, AtStart)> {
    let mut at_start = AtStart::new();
    let pids = attach_all(given, collector, &mut at_start)?;
    // One process is named beside its pid; several by their pids.
    let comm = match pids[..] {
        [pid] => target::comm(pid),
        _ => None,
    };
    let untraced_children: Vec<String> = pids
        .iter()
        .filter_map(|&pid| children_note(pid, &target::children(pid)))
        .collect();
    if opts.announce {
        announce_attached(&pids, comm.as_deref(), opts.follow_forks);
        for note in &untraced_children {
            eprintln!("zc-trace: note: {note}");
        }
    }
    let targets = Targets {
        pids,
        comm,
        untraced_children,
        ..Default::default()
    };
    Ok((targets, at_start))
}

fn announce_attached(pids: &[u32], comm: Option<&str>, follow_forks: bool) {
    let name = comm.map_or_else(String::new, |c| format!(" ({c})"));
    let list: Vec<String> = pids.iter().map(u32::to_string).collect();
    eprintln!(
        "zc-trace: tracing pid {}{}{} until {} or Ctrl-C",
        list.join(","),
        crate::render::format::printable(&name),
        if follow_forks {
            " and new children"
        } else {
            ""
        },
        if pids.len() > 1 {
            "they exit"
        } else {
            "it exits"
        }
    );
}

fn announce_scope(opts: &TraceOptions, cgroup: Option<&crate::cgroup::Traced>) {
    if !opts.announce {
        return;
    }
    let what = match cgroup {
        Some(c) => format!(
            "cgroup {} and below",
            crate::render::format::printable(&c.dir.to_string_lossy())
        ),
        None => "the whole machine".into(),
    };
    eprintln!("zc-trace: tracing {what} until Ctrl-C");
}

/// What the report says was traced.
fn report_target(
    opts: &TraceOptions,
    follow: bool,
    cgroup: Option<crate::cgroup::Traced>,
    exit_code: Option<i32>,
    targets: &Targets,
) -> Target {
    let pids = &targets.pids;
    Target {
        mode: match &opts.spec {
            TargetSpec::Wrap(_) => "wrap",
            TargetSpec::Attach(_) => "attach",
            TargetSpec::Cgroup(_) => "cgroup",
            TargetSpec::All => "all",
        }
        .into(),
        command: targets.command.clone(),
        pid: pids.first().copied().unwrap_or(0),
        pids: if pids.len() > 1 {
            pids.clone()
        } else {
            Vec::new()
        },
        cgroup: cgroup.map(|c| c.dir.to_string_lossy().into_owned()),
        exit_code,
        follow_forks: follow,
        label: None,
        comm: targets.comm.clone(),
    }
}

/// The notes every run of these options gets: calls in progress at the
/// start, children left untraced, no per-call timing, probes missing.
fn add_run_notes(
    report: &mut Report,
    opts: &TraceOptions,
    untraced_children: Vec<String>,
    probes: &loader::Probes,
) {
    note_in_progress(report);
    report.notes.extend(untraced_children);
    if !opts.timed {
        report.notes.push(
            "calls were not timed (the default; --latency times every call): no time in the kernel per call and no latency histograms".into(),
        );
    }
    report.notes.extend(probes.missing.iter().cloned());
}

/// The signal that stopped tracing before the targets exited, noted in
/// the report. A cgroup or the machine is traced until stopped: that is
/// its end, not an early stop.
fn stopping_signal(end: End, scope: u32, report: &mut Report) -> Option<i32> {
    match end {
        End::Signal(_) if scope != scope::PIDS => None,
        End::Signal(sig) => {
            report.notes.push(format!(
                "tracing was stopped by signal {sig} before the targets exited"
            ));
            Some(sig)
        }
        _ => None,
    }
}

/// The latency histograms of the syscalls the run made, by name.
fn latency(
    collector: &Collector,
    counters: &crate::model::Counters,
) -> std::collections::BTreeMap<String, Vec<u64>> {
    let mut nrs: Vec<u32> = counters.syscalls.iter().map(|(k, _)| k.nr).collect();
    nrs.sort_unstable();
    nrs.dedup();
    collector
        .latency(nrs)
        .into_iter()
        .map(|(nr, buckets)| (crate::model::syscall_name(nr), buckets))
        .collect()
}

/// Processes that were children of an attached process are not traced
/// (only new ones, with -f): when they exist, the work is often theirs (an
/// nginx master, a shell), so say so and name them.
fn children_note(pid: u32, children: &[u32]) -> Option<String> {
    const SHOWN: usize = 8;
    if children.is_empty() {
        return None;
    }
    let mut list: Vec<String> = children.iter().take(SHOWN).map(u32::to_string).collect();
    if children.len() > SHOWN {
        list.push(format!("... ({} in all)", children.len()));
    }
    Some(format!(
        "pid {pid} has {} child process(es) that are not traced ({}); if they do the work, trace them with -p (or the cgroup they share)",
        children.len(),
        list.join(", ")
    ))
}

/// Registers each process of `-p` (a thread id names its process) and
/// returns their pids; fails if one exited while zc-trace attached.
pub(crate) fn attach_all(
    given: &[i32],
    collector: &mut Collector,
    accounting_at_start: &mut std::collections::BTreeMap<u32, task_accounting::TaskFigures>,
) -> Result<Vec<u32>> {
    let mut pids = Vec::new();
    for &p in given {
        let pid = target::check_attach(p)?;
        if pid != p as u32 {
            eprintln!("zc-trace: {p} is a thread of process {pid}: tracing the process");
        }
        if pids.contains(&pid) {
            continue;
        }
        accounting_at_start.insert(pid, task_accounting::live_threads(pid));
        collector.add_target(pid)?;
        if !target::is_alive(pid) {
            return Err(failure(
                1,
                format!("process {pid} exited while zc-trace was attaching: nothing to trace"),
            ));
        }
        pids.push(pid);
    }
    Ok(pids)
}

/// The v2 paths of the cgroups the report names.
fn name_cgroups(counters: &mut crate::model::Counters) {
    let mut names = crate::cgroup::Names::default();
    let ids: Vec<u64> = counters
        .cgroups
        .iter()
        .chain(&counters.processes)
        .map(|p| p.identity.cgroup)
        .filter(|&id| id != 0)
        .collect();
    for id in ids {
        let path = names.path(id);
        counters.cgroup_paths.insert(id, path);
    }
}

/// Calls already in progress when tracing began were counted when they
/// returned, without their time: expected at attach, not a loss, so a note
/// rather than a `dropped` entry.
fn note_in_progress(report: &mut Report) {
    let name = zc_trace_common::drop::NAMES[zc_trace_common::drop::IN_PROGRESS as usize];
    match report.dropped.remove(name) {
        Some(n) if n > 0 => report.notes.push(format!(
            "{n} call(s) were already in progress when tracing began: counted when they returned, without their time"
        )),
        _ => {}
    }
}

/// User + system CPU time of this process (not its children) so far.
pub(crate) fn own_cpu_ns() -> u64 {
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

/// Says when the command exits (with its shell-style exit code) and when
/// its whole tree has (the guard reaps it; see `target::guard`).
fn spawn_reaper(exits: target::Exits, tx: mpsc::UnboundedSender<Reaped>) {
    std::thread::spawn(move || {
        if let Some(code) = exits.command() {
            let _ = tx.send(Reaped::Command(code));
        }
        exits.all();
        let _ = tx.send(Reaped::All);
    });
}

/// What ends a run besides its timers: the wrapped tree's exit (from the
/// reaper thread), Ctrl-C, SIGTERM.
struct Stops {
    reaped: mpsc::UnboundedReceiver<Reaped>,
    signals: Signals,
}

async fn trace_loop(
    collector: &mut Collector,
    stats: &mut StatsWindows<'_>,
    opts: &TraceOptions,
    wrapped: Option<&target::Wrapped>,
    mut live: Option<&mut live::Live>,
    started: Instant,
    stops: Stops,
) -> Result<(End, Vec<crate::model::report::TimelineSample>, Option<i32>)> {
    let Stops {
        mut reaped,
        mut signals,
    } = stops;
    // The first sample now (t ~ 0), the first live line an interval away.
    let mut sampler = Sampler::new(collector, opts.interval, started)?;
    let mut live_tick = match &live {
        Some(l) => {
            let every = l.every.min(MAX_EVERY);
            Timer::every(every, every)?
        }
        None => Timer::new()?,
    };
    let mut deadline = Timer::new()?;
    deadline.set(opts.duration.map(|d| started + d))?;
    let mut toggle = Timer::new()?;
    let wrap = wrapped.is_some();
    // Only attached processes end a run by exiting (a wrapped command's
    // tree is reaped; a cgroup or the machine runs until stopped).
    let until_targets_exit = matches!(opts.spec, TargetSpec::Attach(_));
    let mut targets = TargetWatch::default();
    let mut exit_code = None;

    let end = loop {
        toggle.set(stats.next_toggle())?;
        tokio::select! {
            r = sampler.due() => {
                r?;
                sampler.sample(collector, stats)?;
                if until_targets_exit && targets.all_exited(collector)? {
                    break End::TargetsExited;
                }
            }
            r = targets.exited(), if until_targets_exit => {
                r?;
                if targets.all_exited(collector)? {
                    break End::TargetsExited;
                }
            }
            r = live_tick.fired(), if live.is_some() => {
                r?;
                if let Some(live) = live.as_deref_mut() {
                    live.tick(&collector.read(), started.elapsed().as_nanos() as u64);
                }
            }
            msg = reaped.recv(), if wrap => match msg {
                Some(Reaped::Command(code)) => exit_code = Some(code),
                Some(Reaped::All) | None => break End::TargetsExited,
            },
            _ = next(&mut signals.int) => break End::Signal(libc::SIGINT),
            _ = next(&mut signals.term) => break End::Signal(libc::SIGTERM),
            r = deadline.fired(), if opts.duration.is_some() => {
                r?;
                break End::Duration;
            }
            r = toggle.fired(), if stats.next_toggle().is_some() => {
                r?;
                stats.toggle(collector.totals().calls());
            }
        }
    };

    // A wrapped command is ours: pass the stop on to it and give it a moment
    // to exit, so its last calls and its exit code make it into the report.
    if let Some(wrapped) = wrapped.filter(|_| end != End::TargetsExited) {
        match end {
            // The terminal sent it to the whole foreground job, the command
            // included: passing it on would deliver it twice.
            End::Signal(sig) if signals::from_terminal(sig) => {}
            End::Signal(sig) => wrapped.signal(sig),
            _ => wrapped.signal(libc::SIGTERM),
        }
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
            wrapped.end_tree();
            wait_all(GRACE).await;
        }
    }
    Ok((end, sampler.samples, exit_code))
}

/// Probes loaded for a target, not yet counting any process of `-p` or a
/// wrapped command (those are registered next).
pub(crate) struct Loaded {
    pub probes: loader::Probes,
    pub collector: Collector,
    pub cgroup: Option<crate::cgroup::Traced>,
    pub scope: u32,
}

/// Checks that `spec` can be traced, runs `opened` (which opens outputs
/// that must fail before anything is loaded), then loads the probes.
pub(crate) fn load(
    spec: &TargetSpec,
    follow: bool,
    timed: bool,
    opened: impl FnOnce() -> Result<()>,
) -> Result<Loaded> {
    preflight::check_privileges()?;
    preflight::check_btf()?;
    target::check_pid_namespace()?;
    let cgroup = match spec {
        TargetSpec::Wrap(argv) => {
            target::resolve_command(&argv[0])?;
            None
        }
        TargetSpec::Attach(pids) => {
            for pid in pids {
                target::check_attach(*pid)?;
            }
            None
        }
        TargetSpec::Cgroup(dir) => Some(crate::cgroup::resolve(dir)?),
        TargetSpec::All => None,
    };
    let scope = match spec {
        TargetSpec::Cgroup(_) => scope::CGROUP,
        TargetSpec::All => scope::ALL,
        _ => scope::PIDS,
    };
    opened()?;
    let offsets = btf::kernel_offsets().unwrap_or_else(|e| {
        eprintln!(
            "zc-trace: warning: cannot read kernel struct offsets from BTF ({e:#}): fd kinds will show as unknown"
        );
        Default::default()
    });
    let mut probes = loader::load(&loader::LoadOptions {
        scope,
        cgroup: cgroup.clone(),
        follow_forks: follow,
        timed,
        offsets,
    })?;
    for m in &probes.missing {
        eprintln!("zc-trace: warning: {m}");
    }
    let mut collector = Collector::new(&mut probes)?;
    if scope != scope::PIDS {
        collector.sum_by_cgroup();
    }
    Ok(Loaded {
        probes,
        collector,
        cgroup,
        scope,
    })
}
