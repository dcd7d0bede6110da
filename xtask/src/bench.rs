//! `cargo xtask bench`: what tracing costs the traced program, zc-trace
//! against strace, perf and bpftrace, on deterministic workloads.
//!
//! Every (workload, tracer) cell is measured as interleaved pairs: an
//! untraced run, then the traced run of the same size, in every round; the
//! ratio traced/untraced is taken pair by pair, so slow drifts of the
//! machine (other jobs, frequency) cancel, and the median and spread of
//! the ratios are reported. The time compared is the workload's own: dd's
//! `copied, X s` line, or the loop the zc-workload timed scenarios measure
//! themselves (`--report-time`); a tracer's start-up and teardown are
//! measured apart (`zc-trace -- true`, probes live).
//!
//! strace and perf trace cost tens of microseconds per call: on the
//! syscall-heavy workloads they run at 1/10 of the count (against untraced
//! pairs of the same count), or the bench would take an hour.
//!
//! Every child has a deadline and is killed (with its process group) when
//! it passes.

mod chart;
mod proc;
mod report;
mod serve;
mod stats;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use serde_json::Value;

use crate::setup;

/// Chunk size of the bulk and sendfile workloads.
const CHUNK: u64 = 65536;
/// strace and perf trace run syscall-heavy workloads at this fraction.
const SLOW_DIVISOR: u64 = 10;
/// Longest any single child may run.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
/// What zc-trace prints on stderr once its probes are live.
const LIVE_LINE: &str = "zc-trace: tracing";
/// Peers measured on dd bs=1 when the targets were set (the issue).
pub const EARLIER_PEERS: &str = "bpftrace counting script 8.4x, perf stat 2.3x, strace 100x";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Interleaved (untraced, traced) pairs per workload and tracer
    /// [default: 7; 2 with --quick].
    #[arg(long)]
    rounds: Option<usize>,
    /// A fast end-to-end check: workloads at 1/4 size, 2 rounds.
    #[arg(long)]
    quick: bool,
    /// Only these workloads: dd, pingpong, bulk, sendfile, threads, nginx.
    #[arg(long, value_delimiter = ',')]
    workloads: Vec<String>,
    /// Only these tracers: zc-trace, zc-trace-latency, zc-trace-minimal, perf-stat, bpftrace,
    /// strace, perf-trace.
    #[arg(long, value_delimiter = ',')]
    tracers: Vec<String>,
    /// Output folder [default: results/bench-YYYY-MM-DD].
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Tracer {
    Zc,
    ZcLatency,
    /// --no-latency --no-cost: one program per syscall, no BPF statistics
    /// (--no-latency is the default now; kept so older builds compare).
    ZcMinimal,
    PerfStat,
    Bpftrace,
    Strace,
    PerfTrace,
}

pub const TRACERS: [Tracer; 7] = [
    Tracer::Zc,
    Tracer::ZcLatency,
    Tracer::ZcMinimal,
    Tracer::PerfStat,
    Tracer::Bpftrace,
    Tracer::Strace,
    Tracer::PerfTrace,
];

impl Tracer {
    pub fn key(self) -> &'static str {
        match self {
            Tracer::Zc => "zc-trace",
            Tracer::ZcLatency => "zc-trace-latency",
            Tracer::ZcMinimal => "zc-trace-minimal",
            Tracer::PerfStat => "perf-stat",
            Tracer::Bpftrace => "bpftrace",
            Tracer::Strace => "strace",
            Tracer::PerfTrace => "perf-trace",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Tracer::Zc => "zc-trace",
            Tracer::ZcLatency => "zc-trace --latency",
            Tracer::ZcMinimal => "zc-trace --no-latency --no-cost",
            Tracer::PerfStat => "perf stat",
            Tracer::Bpftrace => "bpftrace",
            Tracer::Strace => "strace -f -c",
            Tracer::PerfTrace => "perf trace -s",
        }
    }

    /// How it is run (for the report).
    pub fn command(self, bpftrace_script: &str) -> String {
        match self {
            Tracer::Zc => "zc-trace --quiet --json FILE -- CMD".into(),
            Tracer::ZcLatency => "zc-trace --quiet --latency --json FILE -- CMD".into(),
            Tracer::ZcMinimal => {
                "zc-trace --quiet --no-latency --no-cost --json FILE -- CMD".into()
            }
            Tracer::PerfStat => "perf stat -e raw_syscalls:sys_enter -o FILE -- CMD".into(),
            Tracer::Bpftrace => format!("bpftrace -c 'CMD' -e '{bpftrace_script}'"),
            Tracer::Strace => "strace -f -c -o /dev/null -- CMD".into(),
            Tracer::PerfTrace => "perf trace -s -o FILE -- CMD".into(),
        }
    }

    /// zc-trace's flags for this configuration (none for the peers).
    pub fn flags(self) -> &'static [&'static str] {
        match self {
            Tracer::ZcLatency => &["--latency"],
            Tracer::ZcMinimal => &["--no-latency", "--no-cost"],
            _ => &[],
        }
    }

    pub fn slow(self) -> bool {
        matches!(self, Tracer::Strace | Tracer::PerfTrace)
    }

    fn is_zc(self) -> bool {
        matches!(self, Tracer::Zc | Tracer::ZcLatency | Tracer::ZcMinimal)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Workload {
    Dd,
    PingPong,
    Bulk,
    Sendfile,
    Threads,
    Nginx,
}

pub const WORKLOADS: [Workload; 6] = [
    Workload::Dd,
    Workload::PingPong,
    Workload::Bulk,
    Workload::Sendfile,
    Workload::Threads,
    Workload::Nginx,
];

impl Workload {
    pub fn key(self) -> &'static str {
        match self {
            Workload::Dd => "dd",
            Workload::PingPong => "pingpong",
            Workload::Bulk => "bulk",
            Workload::Sendfile => "sendfile",
            Workload::Threads => "threads",
            Workload::Nginx => "nginx",
        }
    }

    /// A few calls per byte or per round trip: the tracer's per-call cost
    /// dominates.
    pub fn syscall_heavy(self) -> bool {
        matches!(self, Workload::Dd | Workload::PingPong | Workload::Threads)
    }
}

/// Workload sizes (the count each workload runs at).
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    /// dd bs=1 count.
    pub dd: u64,
    /// Ping-pong round trips.
    pub pingpong: u64,
    /// Per thread: 1-byte read + write pairs.
    pub threads: u64,
    /// 64 KiB chunks read and written.
    pub bulk: u64,
    /// 64 KiB chunks sent.
    pub sendfile: u64,
    /// 64 KiB chunks in the input file (bulk and sendfile wrap around it).
    pub file_chunks: u64,
    /// getppid calls of the non-I/O neighbour.
    pub getppid: u64,
    /// Fetches of the 64 MiB file from nginx.
    pub nginx: u64,
}

impl Sizes {
    fn new(quick: bool) -> Self {
        let s = Sizes {
            dd: 200_000,
            pingpong: 20_000,
            threads: 100_000,
            bulk: 8192,
            sendfile: 8192,
            file_chunks: 4096,
            getppid: 1_000_000,
            nginx: 4,
        };
        if !quick {
            return s;
        }
        Sizes {
            dd: s.dd / 4,
            pingpong: s.pingpong / 4,
            threads: s.threads / 4,
            bulk: s.bulk / 4,
            sendfile: s.sendfile / 4,
            file_chunks: s.file_chunks / 4,
            getppid: s.getppid / 4,
            nginx: s.nginx,
        }
    }

    pub fn base(&self, w: Workload) -> u64 {
        match w {
            Workload::Dd => self.dd,
            Workload::PingPong => self.pingpong,
            Workload::Bulk => self.bulk,
            Workload::Sendfile => self.sendfile,
            Workload::Threads => self.threads,
            Workload::Nginx => self.nginx,
        }
    }

    /// The count `w` runs at for tracer `t` (and its untraced partner).
    pub fn count(&self, w: Workload, t: Tracer) -> u64 {
        let n = self.base(w);
        if w.syscall_heavy() && t.slow() {
            n / SLOW_DIVISOR
        } else {
            n
        }
    }
}

/// What zc-trace's JSON report said about one run.
#[derive(Clone, Debug)]
pub struct ZcJson {
    pub duration_ns: u64,
    pub syscalls: u64,
    /// `report["cost"]`, when this zc-trace writes one.
    pub cost: Option<Value>,
}

/// One run of a workload.
#[derive(Clone, Debug)]
pub struct Run {
    /// The workload's own time (dd's line or --report-time).
    pub ns: u64,
    /// Whole command, spawn to reap (tracer start-up included).
    pub wall: Duration,
    /// User + system CPU of the command and what it reaped.
    pub cpu: Duration,
    pub maxrss_kib: u64,
    pub zc: Option<ZcJson>,
}

/// One interleaved pair.
#[derive(Clone, Debug)]
pub struct Pair {
    pub round: usize,
    pub untraced: Run,
    pub traced: Run,
    /// Someone else's tracer, tests or build was seen just before or just
    /// after the pair.
    pub disturbed: bool,
}

impl Pair {
    pub fn ratio(&self) -> f64 {
        self.traced.ns as f64 / self.untraced.ns.max(1) as f64
    }
}

/// Every pair of one (workload, tracer), and what failed.
#[derive(Clone, Debug, Default)]
pub struct CellData {
    pub count: u64,
    pub pairs: Vec<Pair>,
    pub errors: Vec<String>,
}

/// zc-trace's own figures.
#[derive(Debug, Default)]
pub struct Startup {
    /// Spawn of `zc-trace -- sleep 1` to its "tracing" line, seconds.
    pub live_s: Vec<f64>,
    /// Wall time of `true`, untraced and under zc-trace, seconds (pairs).
    pub true_untraced_s: Vec<f64>,
    pub true_traced_s: Vec<f64>,
    /// Peak RSS of the `sleep 1` runs, KiB.
    pub sleep_rss_kib: Vec<u64>,
}

/// What zc-trace traces while its own CPU is measured.
#[derive(Clone, Copy)]
enum Window {
    Idle,
    Busy,
    WholeMachine,
}

/// zc-trace's CPU over a window of a run.
#[derive(Debug, Clone)]
pub struct CpuWindow {
    pub target: String,
    /// Where the window starts, seconds after the probes went live (None:
    /// the whole run).
    pub from_s: Option<f64>,
    pub window_s: f64,
    /// CPU of zc-trace's threads in the window (schedstat), ns.
    pub cpu_ns: u64,
    pub json: Option<ZcJson>,
}

impl CpuWindow {
    /// The part of the run measured, for labels.
    pub fn span(&self) -> String {
        match self.from_s {
            Some(from) => format!("{:.1}-{:.1} s after start", from, from + self.window_s),
            None => "the whole run".into(),
        }
    }
}

/// The untraced neighbour: dd bs=1 alone, beside an untraced dd, beside a
/// traced dd, and while zc-trace traces an idle `sleep` (one of each per
/// round).
#[derive(Debug, Default)]
pub struct Neighbour {
    pub count: u64,
    pub alone_ns: Vec<f64>,
    pub beside_untraced_ns: Vec<f64>,
    pub beside_traced_ns: Vec<f64>,
    pub idle_tracer_ns: Vec<f64>,
    /// dd while zc-trace in its cheapest mode traces an idle `sleep`: the
    /// floor of one filter-only program per syscall.
    pub idle_floor_ns: Vec<f64>,
    /// getppid loop (`getppid_count` calls) alone, and while zc-trace
    /// traces an idle `sleep` (default settings, cheapest mode).
    pub getppid_count: u64,
    pub getppid_alone_ns: Vec<f64>,
    pub getppid_idle_ns: Vec<f64>,
    pub getppid_floor_ns: Vec<f64>,
    /// The neighbour's own CPU time (user + system, wait4), per kind as
    /// `KINDS` orders them: the probes run in its syscalls, so this is
    /// their cost to it, whatever else keeps the CPUs busy.
    pub cpu_ns: [Vec<f64>; Neighbour::KINDS],
    /// Rounds where the partner was still running when the neighbour ended.
    pub overlapped: usize,
    /// Per round (as the vectors above): someone else's tracer, tests or
    /// build was seen before or after it.
    pub disturbed: Vec<bool>,
    pub errors: Vec<String>,
}

impl Neighbour {
    pub const KINDS: usize = 8;
    pub const DD_ALONE: usize = 0;
    pub const DD_IDLE: usize = 3;
    pub const DD_FLOOR: usize = 4;
    pub const GETPPID_ALONE: usize = 5;
    pub const GETPPID_IDLE: usize = 6;
    pub const GETPPID_FLOOR: usize = 7;
}

/// One run of a neighbour.
#[derive(Clone, Copy, Debug)]
struct NeighbourRun {
    /// Its own time (dd's line, or --report-time).
    wall_ns: u64,
    /// Its user + system CPU time.
    cpu_ns: u64,
    ended: Instant,
    /// Whether the process it ran beside (if any) was still running when
    /// it ended.
    partner_outlived: bool,
}

/// What else ran on the machine, sampled from /proc before every pair
/// (none of the bench's own children exist then).
#[derive(Debug, Default, Clone)]
pub struct Activity {
    pub checks: usize,
    /// Checks that saw a tracer or the test workload of someone else.
    pub tracing: usize,
    /// Checks that saw a compiler or linker.
    pub building: usize,
    pub seen: BTreeSet<String>,
    /// The first few processes seen, with their parent and command line.
    pub examples: Vec<String>,
}

impl Activity {
    /// One check; true if something that disturbs a measurement runs.
    fn sample(&mut self) -> bool {
        const TRACING: &[&str] = &[
            "zc-trace",
            "zc-workload",
            "strace",
            "perf",
            "bpftrace",
            "bpftool",
        ];
        const BUILDING: &[&str] = &[
            "rustc",
            "cc1",
            "ld",
            "ld.lld",
            "clang",
            "bpf-linker",
            "rust-lld",
        ];
        let me = std::process::id().to_string();
        let (mut tracing, mut building) = (false, false);
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str() else { continue };
            if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == me {
                continue;
            }
            let Ok(comm) = std::fs::read_to_string(entry.path().join("comm")) else {
                continue;
            };
            let comm = comm.trim();
            if !TRACING.contains(&comm) && !BUILDING.contains(&comm) {
                continue;
            }
            let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
            let field = |k: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(k))
                    .map_or("?".to_string(), |v| v.trim().to_string())
            };
            // A zombie runs nothing (orphans wait a while for init to reap them).
            if field("State:").starts_with('Z') {
                continue;
            }
            let hit = if TRACING.contains(&comm) {
                tracing = true;
                true
            } else if BUILDING.contains(&comm) {
                building = true;
                true
            } else {
                false
            };
            if hit {
                self.seen.insert(comm.to_string());
                let tag = format!("pid {pid} ");
                if self.examples.len() < 10 && !self.examples.iter().any(|e| e.starts_with(&tag)) {
                    let cmdline = std::fs::read(entry.path().join("cmdline"))
                        .map(|b| {
                            String::from_utf8_lossy(&b)
                                .replace('\0', " ")
                                .chars()
                                .take(160)
                                .collect::<String>()
                        })
                        .unwrap_or_default();
                    self.examples.push(format!(
                        "pid {pid} ppid {} state {}: {}",
                        field("PPid:"),
                        field("State:"),
                        cmdline.trim()
                    ));
                }
            }
        }
        self.checks += 1;
        self.tracing += usize::from(tracing);
        self.building += usize::from(building);
        tracing || building
    }
}

/// Everything measured, for the report.
pub struct Results {
    pub date: String,
    pub started_utc: String,
    pub machine: Vec<(String, String)>,
    pub tools: Vec<(String, String)>,
    pub rounds: usize,
    pub quick: bool,
    pub sizes: Sizes,
    pub threads: usize,
    pub bpftrace_script: String,
    pub workloads: Vec<Workload>,
    pub tracers: Vec<Tracer>,
    /// Tracers that failed their preflight, with why.
    pub unavailable: Vec<(Tracer, String)>,
    pub cells: BTreeMap<(Workload, Tracer), CellData>,
    pub startup: Startup,
    pub collector: Vec<CpuWindow>,
    /// `zc-trace serve -a`'s own cost.
    pub exporter: Option<serve::ServeFigures>,
    /// Failures of the figures outside the pairs (start-up, collector CPU).
    pub extra_errors: Vec<String>,
    pub neighbour: Neighbour,
    pub load_start: String,
    pub load_end: String,
    /// The share of CPU time the hypervisor gave other guests while
    /// measuring (steal), when the kernel reports it.
    pub steal: Option<f64>,
    pub activity: Activity,
    pub measure_s: f64,
    pub total_s: f64,
}

pub fn run(root: &Path, args: Args) -> Result<()> {
    let began = Instant::now();
    let (started_utc, date) = started_at(SystemTime::now());
    setup::all(false)?;
    // SAFETY: plain getter.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the benchmark traces with eBPF, perf and bpftrace: run it as root");
    }
    install_peers()?;
    crate::build_release()?;

    let workloads = select(&args.workloads, &WORKLOADS, |w| w.key(), "workload")?;
    let tracers = select(&args.tracers, &TRACERS, |t| t.key(), "tracer")?;
    let rounds = args.rounds.unwrap_or(if args.quick { 2 } else { 7 }).max(1);
    let sizes = Sizes::new(args.quick);
    let out_dir = args
        .out
        .clone()
        .unwrap_or_else(|| root.join("results").join(format!("bench-{date}")));
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;

    let mut ctx = Ctx::new(sizes)?;
    // Without nginx its row says "not measured" (Ctx::new said why).
    let workloads: Vec<Workload> = workloads
        .into_iter()
        .filter(|&w| w != Workload::Nginx || ctx.nginx.is_some())
        .collect();
    let load_start = loadavg();
    let cpu_start = CpuTimes::now();
    let measuring = Instant::now();
    eprintln!(
        "xtask: bench: {} workloads x {} tracers, {rounds} interleaved rounds{}",
        workloads.len(),
        tracers.len(),
        if args.quick { " (quick)" } else { "" }
    );
    warm_up(&ctx, &workloads)?;
    let (live_tracers, unavailable) = available_tracers(&mut ctx, &tracers)?;
    let cells = measure_rounds(&ctx, &workloads, &live_tracers, rounds, measuring)?;
    let side = side_figures(&ctx, rounds, args.quick);
    let load_end = loadavg();
    let steal = cpu_start.and_then(|s| Some(CpuTimes::now()?.steal_share_since(&s)));
    let measure_s = measuring.elapsed().as_secs_f64();

    let results = Results {
        date,
        started_utc,
        machine: machine(),
        tools: tools(&ctx.zc),
        rounds,
        quick: args.quick,
        sizes,
        threads: ctx.threads,
        bpftrace_script: ctx.bpftrace_script.clone(),
        workloads,
        tracers: live_tracers,
        unavailable,
        cells,
        startup: side.startup,
        collector: side.collector,
        exporter: side.exporter,
        extra_errors: side.errors,
        neighbour: side.neighbour,
        load_start,
        load_end,
        steal,
        activity: ctx.activity.borrow().clone(),
        measure_s,
        total_s: began.elapsed().as_secs_f64(),
    };
    let md = write_outputs(&results, &out_dir)?;
    println!("{md}");
    eprintln!(
        "xtask: bench: wrote {}/bench.{{md,json,png,svg}} in {:.0} s ({:.0} s measuring)",
        out_dir.display(),
        began.elapsed().as_secs_f64(),
        measure_s
    );
    Ok(())
}

/// Warms the page cache and the binaries up, and checks that every
/// workload runs untraced.
fn warm_up(ctx: &Ctx, workloads: &[Workload]) -> Result<()> {
    for &w in workloads {
        ctx.run_once(w, None, ctx.sizes.base(w) / 4)
            .with_context(|| format!("untraced workload {} failed", w.key()))?;
    }
    Ok(())
}

/// Tracers that could not run, and why.
type Unavailable = Vec<(Tracer, String)>;

/// The tracers that run here, and why the others do not. A tracer that
/// cannot run is reported, not fatal (except zc-trace).
fn available_tracers(ctx: &mut Ctx, tracers: &[Tracer]) -> Result<(Vec<Tracer>, Unavailable)> {
    let mut unavailable = vec![];
    let mut live = vec![];
    for &t in tracers {
        if t == Tracer::Bpftrace {
            if let Err(e) = ctx.pick_bpftrace_script() {
                eprintln!("xtask: bench: bpftrace unavailable: {e:#}");
                unavailable.push((t, format!("{e:#}")));
                continue;
            }
        }
        match ctx.run_once(Workload::Dd, Some(t), 1000) {
            Ok(_) => live.push(t),
            Err(e) if t.is_zc() => return Err(e.context("zc-trace does not run")),
            Err(e) => {
                eprintln!("xtask: bench: {} unavailable: {e:#}", t.name());
                unavailable.push((t, format!("{e:#}")));
            }
        }
    }
    Ok((live, unavailable))
}

/// The interleaved rounds: each workload untraced then traced, by each
/// tracer in an order that rotates every round. A cell that failed twice
/// is given up.
fn measure_rounds(
    ctx: &Ctx,
    workloads: &[Workload],
    tracers: &[Tracer],
    rounds: usize,
    measuring: Instant,
) -> Result<BTreeMap<(Workload, Tracer), CellData>> {
    let mut cells: BTreeMap<(Workload, Tracer), CellData> = BTreeMap::new();
    for round in 0..rounds {
        eprintln!(
            "xtask: bench: round {}/{rounds} ({:.0} s so far)",
            round + 1,
            measuring.elapsed().as_secs_f64()
        );
        for &w in workloads {
            let mut order = tracers.to_vec();
            let len = order.len().max(1);
            order.rotate_left(round % len);
            for &t in &order {
                let cell = cells.entry((w, t)).or_default();
                if cell.errors.len() < 2 {
                    measure_pair(ctx, cell, round, w, t)?;
                }
            }
        }
    }
    Ok(cells)
}

/// One pair: `w` untraced, then traced by `t`, into `cell`.
fn measure_pair(
    ctx: &Ctx,
    cell: &mut CellData,
    round: usize,
    w: Workload,
    t: Tracer,
) -> Result<()> {
    let count = ctx.sizes.count(w, t);
    cell.count = count;
    let before = ctx.disturbed();
    let untraced = ctx
        .run_once(w, None, count)
        .with_context(|| format!("untraced workload {} failed", w.key()))?;
    match ctx.run_once(w, Some(t), count) {
        Ok(traced) => cell.pairs.push(Pair {
            round,
            untraced,
            traced,
            disturbed: before | ctx.disturbed(),
        }),
        Err(e) => {
            eprintln!("xtask: bench: {} under {} failed: {e:#}", w.key(), t.name());
            cell.errors.push(format!("{e:#}"));
        }
    }
    Ok(())
}

/// The figures beside the pairs: start-up, memory, collector CPU, the
/// exporter and the neighbour's slowdown. A failure is kept as an error
/// line of the report.
struct SideFigures {
    startup: Startup,
    collector: Vec<CpuWindow>,
    exporter: Option<serve::ServeFigures>,
    neighbour: Neighbour,
    errors: Vec<String>,
}

fn side_figures(ctx: &Ctx, rounds: usize, quick: bool) -> SideFigures {
    eprintln!("xtask: bench: start-up, memory, collector CPU, neighbours");
    let mut errors = vec![];
    let startup = ctx.startup(rounds).unwrap_or_else(|e| {
        errors.push(format!("start-up figures: {e:#}"));
        Startup::default()
    });
    let mut collector = vec![];
    // The first seconds (a window of BPF statistics in them, the timeline
    // not yet backed off), then, unless quick, a steadier 10 s.
    let mut spans = vec![(Duration::from_millis(500), Duration::from_secs(2))];
    if !quick {
        spans.push((Duration::from_secs(5), Duration::from_secs(10)));
    }
    for (from, len) in spans {
        for traced in [Window::Idle, Window::Busy, Window::WholeMachine] {
            match ctx.cpu_window(traced, from, len) {
                Ok(w) => collector.push(w),
                Err(e) => errors.push(format!("collector CPU: {e:#}")),
            }
        }
    }
    let exporter = serve::measure(&ctx.zc)
        .map_err(|e| errors.push(format!("the exporter (serve -a): {e:#}")))
        .ok();
    match ctx.cpu_with_processes(if quick { 2_500 } else { 10_000 }) {
        Ok(w) => collector.push(w),
        Err(e) => errors.push(format!("collector CPU with processes: {e:#}")),
    }
    SideFigures {
        startup,
        collector,
        exporter,
        neighbour: ctx.neighbour(rounds),
        errors,
    }
}

/// Writes bench.md, bench.json and the chart (PNG and SVG) into
/// `out_dir`; returns the markdown.
fn write_outputs(results: &Results, out_dir: &Path) -> Result<String> {
    let md = report::markdown(results);
    std::fs::write(out_dir.join("bench.md"), &md)?;
    std::fs::write(
        out_dir.join("bench.json"),
        serde_json::to_string_pretty(&report::json(results))?,
    )?;
    let (bars, legend) = report::bars(results);
    chart::write(
        &bars,
        &legend,
        &format!("zc-trace overhead vs peers, {}", results.date),
        &out_dir.join("bench.png"),
        &out_dir.join("bench.svg"),
    )?;
    Ok(md)
}

/// strace, perf, bpftrace (the peers) and nginx, curl (a workload), through setup's idempotent apt; each must
/// then answer its version query.
fn install_peers() -> Result<()> {
    setup::apt(&["strace", "linux-perf", "bpftrace", "nginx", "curl"]).context(
        "installing the benchmark's peers and its server (strace, linux-perf, bpftrace, nginx, curl) failed: \
         install them by hand (apt-get install strace linux-perf bpftrace nginx curl) and rerun",
    )?;
    for argv in [
        &["strace", "-V"][..],
        &["perf", "--version"],
        &["bpftrace", "--version"],
    ] {
        if proc::first_line(argv).is_none() {
            bail!(
                "`{}` does not run although its package is installed; the benchmark needs it",
                argv.join(" ")
            );
        }
    }
    Ok(())
}

fn select<T: Copy>(
    names: &[String],
    all: &[T],
    key: impl Fn(T) -> &'static str,
    what: &str,
) -> Result<Vec<T>> {
    if names.is_empty() {
        return Ok(all.to_vec());
    }
    names
        .iter()
        .map(|n| {
            all.iter()
                .copied()
                .find(|&x| key(x) == n.as_str())
                .ok_or_else(|| {
                    let keys: Vec<&str> = all.iter().map(|&x| key(x)).collect();
                    anyhow!("unknown {what} {n:?}: one of {}", keys.join(", "))
                })
        })
        .collect()
}

/// Paths and scratch files of one bench run.
struct Ctx {
    zc: PathBuf,
    workload: PathBuf,
    dd: PathBuf,
    sleep: PathBuf,
    truecmd: PathBuf,
    scratch: PathBuf,
    /// The scratch directories (random names, mode 0700: nobody can plant
    /// a link where root writes), removed on drop.
    _dirs: Vec<tempfile::TempDir>,
    input: PathBuf,
    bulk_out: PathBuf,
    /// The nginx workload's files, when nginx is installed.
    nginx: Option<Nginx>,
    threads: usize,
    bpftrace_script: String,
    sizes: Sizes,
    seq: Cell<u64>,
    activity: RefCell<Activity>,
}

impl Ctx {
    fn new(sizes: Sizes) -> Result<Self> {
        let scratch_dir = crate::private_temp_dir(&std::env::temp_dir(), "zc-trace-bench-")?;
        let scratch = scratch_dir.path().to_owned();
        let mut dirs = vec![scratch_dir];
        // The bulk copy's output lives in memory (tmpfs) when it can: a
        // disk file would add writeback noise.
        let bulk_out = match crate::private_temp_dir(Path::new("/dev/shm"), "zc-trace-bench-") {
            Ok(shm) => {
                let out = shm.path().join("bulk.out");
                dirs.push(shm);
                out
            }
            Err(_) => scratch.join("bulk.out"),
        };
        let input = scratch.join("input.bin");
        eprintln!(
            "xtask: bench: writing a {} MiB input file",
            (sizes.file_chunks * CHUNK) >> 20
        );
        zc_trace_tests::write_input_file(&input, sizes.file_chunks * CHUNK)
            .with_context(|| format!("writing {}", input.display()))?;
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let nginx = Nginx::prepare(&scratch, &input)
            .map_err(|e| eprintln!("xtask: bench: the nginx workload will not run: {e:#}"))
            .ok();
        Ok(Ctx {
            zc: crate::release_bin("zc-trace")?,
            workload: crate::release_bin("zc-workload")?,
            // bpftrace -c wants one unambiguous absolute path.
            dd: which("dd")?,
            sleep: which("sleep")?,
            truecmd: which("true")?,
            scratch,
            _dirs: dirs,
            input,
            bulk_out,
            nginx,
            threads,
            bpftrace_script: String::new(),
            sizes,
            seq: Cell::new(0),
            activity: RefCell::default(),
        })
    }

    /// Whether someone else's tracer, tests or build runs right now.
    fn disturbed(&self) -> bool {
        self.activity.borrow_mut().sample()
    }

    fn tag(&self) -> String {
        self.seq.set(self.seq.get() + 1);
        format!("run{}", self.seq.get())
    }

    /// The CPU the ping-pong is pinned to: the last one (CPU 0 takes more
    /// of the machine's interrupts).
    fn pingpong_cpu(&self) -> usize {
        self.threads - 1
    }

    fn dd_argv(&self, count: u64) -> Vec<OsString> {
        vec![
            self.dd.clone().into(),
            "if=/dev/zero".into(),
            "of=/dev/null".into(),
            "bs=1".into(),
            format!("count={count}").into(),
        ]
    }

    fn workload_argv(&self, w: Workload, count: u64, report: &Path) -> Result<Vec<OsString>> {
        let mut v: Vec<OsString> = vec![self.workload.clone().into()];
        let s = |x: &str| OsString::from(x);
        match w {
            Workload::Dd => return Ok(self.dd_argv(count)),
            Workload::Nginx => {
                let nginx = self
                    .nginx
                    .as_ref()
                    .ok_or_else(|| anyhow!("nginx is not installed"))?;
                return Ok(nginx.argv(count, report));
            }
            // Both processes on one CPU: across CPUs each round trip waits
            // for an idle vCPU to wake (tens of µs in a VM, twice as long
            // in one run as in the next), which would drown what a tracer adds.
            Workload::PingPong => v.extend([
                s("pingpong"),
                s("--count"),
                count.to_string().into(),
                s("--cpu"),
                self.pingpong_cpu().to_string().into(),
            ]),
            Workload::Bulk => v.extend([
                s("bulk-copy"),
                s("--count"),
                count.to_string().into(),
                s("--size"),
                CHUNK.to_string().into(),
                s("--file"),
                self.input.clone().into(),
                s("--file2"),
                self.bulk_out.clone().into(),
            ]),
            Workload::Sendfile => v.extend([
                s("sendfile-loop"),
                s("--count"),
                count.to_string().into(),
                s("--size"),
                CHUNK.to_string().into(),
                s("--file"),
                self.input.clone().into(),
            ]),
            Workload::Threads => v.extend([
                s("threads-rw"),
                s("--count"),
                count.to_string().into(),
                s("--size"),
                s("1"),
                s("--threads"),
                self.threads.to_string().into(),
            ]),
        }
        v.extend([s("--report-time"), report.into()]);
        Ok(v)
    }

    /// `cmd` under tracer `t`; the path of zc-trace's JSON report if any.
    fn wrap(
        &self,
        t: Option<Tracer>,
        cmd: Vec<OsString>,
        tag: &str,
    ) -> Result<(Vec<OsString>, Option<PathBuf>)> {
        let s = |x: &str| OsString::from(x);
        let out: OsString = self.scratch.join(format!("{tag}.out")).into();
        let mut json = None;
        let mut argv: Vec<OsString> = match t {
            None => vec![],
            Some(Tracer::Zc | Tracer::ZcLatency | Tracer::ZcMinimal) => {
                let mut v = vec![self.zc.clone().into(), s("--quiet")];
                v.extend(t.map_or(&[][..], Tracer::flags).iter().map(|f| s(f)));
                let j = self.scratch.join(format!("{tag}.json"));
                v.extend([s("--json"), j.clone().into(), s("--")]);
                json = Some(j);
                v
            }
            Some(Tracer::Strace) => ["strace", "-f", "-c", "-o", "/dev/null", "--"]
                .map(s)
                .to_vec(),
            Some(Tracer::PerfTrace) => vec![s("perf"), s("trace"), s("-s"), s("-o"), out, s("--")],
            Some(Tracer::PerfStat) => vec![
                s("perf"),
                s("stat"),
                s("-e"),
                s("raw_syscalls:sys_enter"),
                s("-o"),
                out,
                s("--"),
            ],
            Some(Tracer::Bpftrace) => {
                let words: Vec<String> = cmd
                    .iter()
                    .map(|a| a.to_string_lossy().into_owned())
                    .collect();
                if let Some(w) = words.iter().find(|w| {
                    w.is_empty() || w.contains(|c: char| c.is_whitespace() || "'\"\\$".contains(c))
                }) {
                    bail!("bpftrace -c takes one string: cannot pass the argument {w:?}");
                }
                return Ok((
                    vec![
                        s("bpftrace"),
                        s("-c"),
                        words.join(" ").into(),
                        s("-e"),
                        self.bpftrace_script.clone().into(),
                    ],
                    None,
                ));
            }
        };
        argv.extend(cmd);
        Ok((argv, json))
    }

    /// bpftrace before 0.20 wants `args->id`, later ones `args.id`: the
    /// first form that runs wins.
    fn pick_bpftrace_script(&mut self) -> Result<()> {
        let mut errors = vec![];
        for field in ["args->id", "args.id"] {
            let script = format!(
                "tracepoint:raw_syscalls:sys_enter /pid == cpid/ {{ @[{field}] = count(); }}"
            );
            let argv: Vec<OsString> = vec![
                "bpftrace".into(),
                "-c".into(),
                self.truecmd.clone().into(),
                "-e".into(),
                script.clone().into(),
            ];
            match proc::run(&argv, Duration::from_secs(60)).and_then(|f| f.check()) {
                Ok(()) => {
                    self.bpftrace_script = script;
                    return Ok(());
                }
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
        bail!(
            "no form of the counting script runs:\n{}",
            errors.join("\n")
        )
    }

    /// Runs `w` at `count`, under `t` or untraced.
    fn run_once(&self, w: Workload, t: Option<Tracer>, count: u64) -> Result<Run> {
        let tag = self.tag();
        let report = self.scratch.join(format!("{tag}.ns"));
        let cmd = self.workload_argv(w, count, &report)?;
        let (argv, json) = self.wrap(t, cmd, &tag)?;
        let fin = proc::run(&argv, RUN_TIMEOUT)?;
        fin.check()?;
        let ns = match w {
            Workload::Dd => dd_ns(&fin)?,
            _ => read_report_time(&report, w.key())?,
        };
        let _ = std::fs::remove_file(self.scratch.join(format!("{tag}.out")));
        let zc = match json {
            Some(path) => {
                let z = read_zc_json(&path)?;
                let _ = std::fs::remove_file(&path);
                Some(z)
            }
            None => None,
        };
        Ok(Run {
            ns,
            wall: fin.wall,
            cpu: fin.cpu(),
            maxrss_kib: fin.maxrss_kib(),
            zc,
        })
    }

    /// Probes live, `zc-trace -- true`, peak RSS.
    fn startup(&self, rounds: usize) -> Result<Startup> {
        let mut s = Startup::default();
        let zc = |rest: &[OsString]| {
            // Not --quiet: it silences the "tracing" line too.
            let mut v: Vec<OsString> = vec![self.zc.clone().into(), "--".into()];
            v.extend_from_slice(rest);
            v
        };
        for _ in 0..rounds {
            let mut r = proc::spawn(&zc(&[self.sleep.clone().into(), "1".into()]), RUN_TIMEOUT)?;
            let live = r.wait_for_line(LIVE_LINE, Duration::from_secs(30))?;
            let fin = r.wait()?;
            fin.check()?;
            s.live_s.push(live.as_secs_f64());
            s.sleep_rss_kib.push(fin.maxrss_kib());

            let untraced = proc::run(&[self.truecmd.clone().into()], RUN_TIMEOUT)?;
            untraced.check()?;
            let traced = proc::run(&zc(&[self.truecmd.clone().into()]), RUN_TIMEOUT)?;
            traced.check()?;
            s.true_untraced_s.push(untraced.wall.as_secs_f64());
            s.true_traced_s.push(traced.wall.as_secs_f64());
        }
        Ok(s)
    }

    /// zc-trace's CPU while it traces an idle target (`sleep`), a busy
    /// one (dd bs=1) or the whole machine (`-a`, nothing started), over
    /// `len` from `from` after its probes are live.
    fn cpu_window(&self, traced: Window, from: Duration, len: Duration) -> Result<CpuWindow> {
        let tag = self.tag();
        let json = self.scratch.join(format!("{tag}.json"));
        let target: Vec<OsString> = match traced {
            Window::Idle => vec!["--".into(), self.sleep.clone().into(), "30".into()],
            Window::Busy => ["--".into()]
                .into_iter()
                .chain(self.dd_argv(1_000_000_000))
                .collect(),
            Window::WholeMachine => vec!["-a".into()],
        };
        let mut argv: Vec<OsString> = vec![
            self.zc.clone().into(),
            "--duration".into(),
            format!("{}ms", (from + len).as_millis() + 1000).into(),
            "--json".into(),
            json.clone().into(),
        ];
        argv.extend(target.iter().cloned());
        let mut r = proc::spawn(&argv, Duration::from_secs(60))?;
        r.wait_for_line(LIVE_LINE, Duration::from_secs(30))?;
        std::thread::sleep(from);
        let sample = |r: &proc::Running| {
            let t = Instant::now();
            proc::threads_cpu_ns(r.pid())
                .map(|c| (t, c))
                .ok_or_else(|| anyhow!("zc-trace exited before the CPU window ended"))
        };
        let (t0, c0) = sample(&r)?;
        std::thread::sleep(len);
        let (t1, c1) = sample(&r)?;
        let fin = r.wait()?;
        // The target is stopped by --duration (SIGTERM): zc-trace exits
        // with its code; the report must be there all the same.
        let z = read_zc_json(&json).with_context(|| format!("`{}`", fin.what))?;
        let _ = std::fs::remove_file(&json);
        Ok(CpuWindow {
            target: target
                .iter()
                .skip_while(|a| *a == "--")
                .enumerate()
                .map(|(i, a)| {
                    let a = a.to_string_lossy();
                    match i {
                        0 => a.rsplit('/').next().unwrap_or(&a).to_string(),
                        _ => a.into_owned(),
                    }
                })
                .collect::<Vec<_>>()
                .join(" "),
            from_s: Some(from.as_secs_f64()),
            window_s: (t1 - t0).as_secs_f64(),
            cpu_ns: c1.saturating_sub(c0),
            json: Some(z),
        })
    }

    /// zc-trace's CPU over a whole run that starts `n` short-lived
    /// processes (the report's collector CPU over its duration: folding
    /// exited processes is the work that grows with them).
    fn cpu_with_processes(&self, n: u64) -> Result<CpuWindow> {
        let json = self.scratch.join(format!("{}.json", self.tag()));
        let script = format!("for i in $(seq {n}); do {}; done", self.truecmd.display());
        let argv: Vec<OsString> = vec![
            self.zc.clone().into(),
            "--quiet".into(),
            "--json".into(),
            json.clone().into(),
            "--".into(),
            "bash".into(),
            "-c".into(),
            script.into(),
        ];
        let fin = proc::run(&argv, Duration::from_secs(600))?;
        fin.check()?;
        let z = read_zc_json(&json)?;
        let _ = std::fs::remove_file(&json);
        let cpu_ns = z
            .cost
            .as_ref()
            .and_then(|c| c["collector_cpu_ns"].as_u64())
            .ok_or_else(|| anyhow!("zc-trace's report has no collector CPU"))?;
        Ok(CpuWindow {
            target: format!("bash: {n} x true"),
            from_s: None,
            window_s: z.duration_ns as f64 / 1e9,
            cpu_ns,
            json: Some(z),
        })
    }

    /// An untraced dd bs=1 alone, beside an untraced dd bs=1, and beside
    /// a dd bs=1 traced by zc-trace (3x as long, so it runs all along);
    /// dd and a getppid loop alone and while zc-trace (default settings,
    /// cheapest mode) traces an idle `sleep`. One of each per round, in
    /// an order that rotates.
    fn neighbour(&self, rounds: usize) -> Neighbour {
        const KINDS: usize = Neighbour::KINDS;
        let n = self.sizes.dd;
        let g = self.sizes.getppid;
        let mut out = Neighbour {
            count: n,
            getppid_count: g,
            ..Default::default()
        };
        let dd = || self.dd_argv(n);
        let getppid = || self.getppid_argv(g);
        for round in 0..rounds {
            let before = self.disturbed();
            let mut got = [None; KINDS];
            for k in 0..KINDS {
                let which = (k + round) % KINDS;
                let r = match which {
                    0 => self.timed_run(dd()),
                    1 => self.dd_beside(n, false),
                    2 => self.dd_beside(n, true),
                    3 => self.beside_idle_tracer(dd(), &[]),
                    4 => self.beside_idle_tracer(dd(), Tracer::ZcMinimal.flags()),
                    5 => self.timed_run(getppid()),
                    6 => self.beside_idle_tracer(getppid(), &[]),
                    _ => self.beside_idle_tracer(getppid(), Tracer::ZcMinimal.flags()),
                };
                match r {
                    Ok(v) => got[which] = Some(v),
                    Err(e) => out.errors.push(format!("{e:#}")),
                }
            }
            let Some(got) = got.into_iter().collect::<Option<Vec<_>>>() else {
                continue;
            };
            for (v, m) in [
                &mut out.alone_ns,
                &mut out.beside_untraced_ns,
                &mut out.beside_traced_ns,
                &mut out.idle_tracer_ns,
                &mut out.idle_floor_ns,
                &mut out.getppid_alone_ns,
                &mut out.getppid_idle_ns,
                &mut out.getppid_floor_ns,
            ]
            .into_iter()
            .zip(&got)
            {
                v.push(m.wall_ns as f64);
            }
            for (v, m) in out.cpu_ns.iter_mut().zip(&got) {
                v.push(m.cpu_ns as f64);
            }
            out.disturbed.push(before | self.disturbed());
            // The runs beside a partner: did it outlive the neighbour?
            if got.iter().all(|m| m.partner_outlived) {
                out.overlapped += 1;
            }
        }
        out
    }

    /// The neighbour's own time (`cmd` is dd or a timed zc-workload loop)
    /// while zc-trace with `flags` traces `sleep 1` (nothing else runs),
    /// and whether zc-trace outlived it.
    fn beside_idle_tracer(&self, cmd: Vec<OsString>, flags: &[&str]) -> Result<NeighbourRun> {
        // Not --quiet: it silences the "tracing" line too.
        let mut argv: Vec<OsString> = vec![self.zc.clone().into()];
        argv.extend(flags.iter().map(OsString::from));
        argv.extend(["--".into(), self.sleep.clone().into(), "1".into()]);
        let mut tracer = proc::spawn(&argv, RUN_TIMEOUT)?;
        tracer.wait_for_line(LIVE_LINE, Duration::from_secs(30))?;
        let mut run = self.timed_run(cmd)?;
        let t = tracer.wait()?;
        t.check()?;
        run.partner_outlived = t.ended > run.ended;
        Ok(run)
    }

    /// `cmd`'s own time (dd's line, or a zc-workload loop's
    /// --report-time), its CPU time, and when it ended.
    fn timed_run(&self, mut cmd: Vec<OsString>) -> Result<NeighbourRun> {
        let is_dd = cmd.first() == Some(&self.dd.clone().into_os_string());
        let report = self.scratch.join(format!("{}.ns", self.tag()));
        if !is_dd {
            cmd.extend(["--report-time".into(), report.clone().into()]);
        }
        let fin = proc::run(&cmd, RUN_TIMEOUT)?;
        fin.check()?;
        let wall_ns = if is_dd {
            dd_ns(&fin)?
        } else {
            read_report_time(&report, "getppid-loop")?
        };
        Ok(NeighbourRun {
            wall_ns,
            cpu_ns: fin.cpu().as_nanos() as u64,
            ended: fin.ended,
            partner_outlived: true,
        })
    }

    fn getppid_argv(&self, count: u64) -> Vec<OsString> {
        vec![
            self.workload.clone().into(),
            "getppid-loop".into(),
            "--count".into(),
            count.to_string().into(),
        ]
    }

    /// The neighbour's time, and whether its partner outlived it.
    fn dd_beside(&self, n: u64, traced: bool) -> Result<NeighbourRun> {
        let mut argv: Vec<OsString> = vec![];
        if traced {
            argv.extend([self.zc.clone().into(), "--".into()]);
        }
        argv.extend(self.dd_argv(3 * n));
        let mut partner = proc::spawn(&argv, RUN_TIMEOUT)?;
        if traced {
            partner.wait_for_line(LIVE_LINE, Duration::from_secs(30))?;
        }
        let mut run = self.timed_run(self.dd_argv(n))?;
        let p = partner.wait()?;
        p.check()?;
        run.partner_outlived = p.ended > run.ended;
        Ok(run)
    }
}

/// The fewest syscalls zc-trace must count in a run of `w` (a sanity
/// check, reported).
pub fn min_syscalls(w: Workload, count: u64, threads: usize) -> u64 {
    match w {
        Workload::Dd | Workload::Bulk | Workload::Sendfile => 2 * count,
        Workload::PingPong => 4 * count,
        Workload::Threads => 2 * count * threads as u64,
        // At least a sendfile and a recv per fetch.
        Workload::Nginx => 2 * count,
    }
}

/// The nginx workload: nginx (master and one worker, sendfile on, as a
/// distribution configures it) serves a 64 MiB file on a free loopback
/// port; curl fetches it `count` times. The whole tree is traced (server
/// and client); the time is the fetches', from the script, so nginx's
/// start and stop are not in it.
struct Nginx {
    script: PathBuf,
    conf: PathBuf,
    url: String,
}

/// Bytes of the file nginx serves.
const NGINX_FILE: u64 = 64 << 20;

impl Nginx {
    /// Writes the file, the configuration and the script into `scratch`
    /// (mode 0700: nginx runs as root to read them).
    fn prepare(scratch: &Path, input: &Path) -> Result<Self> {
        let nginx = which("nginx").context("nginx not found: apt-get install nginx")?;
        which("curl").context("curl not found: apt-get install curl")?;
        let dir = scratch.join("nginx");
        let www = dir.join("www");
        std::fs::create_dir_all(www.join("tmp"))?;
        let mut from = std::fs::File::open(input)?;
        let mut to = std::fs::File::create_new(www.join("64m.bin"))?;
        let copied = std::io::copy(&mut std::io::Read::take(&mut from, NGINX_FILE), &mut to)?;
        ensure!(
            copied == NGINX_FILE,
            "the input file holds only {copied} bytes"
        );
        // A free port now; nobody else binds loopback ports here meanwhile.
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let d = dir.display();
        let conf = dir.join("nginx.conf");
        std::fs::write(
            &conf,
            format!(
                "daemon off; master_process on; worker_processes 1; user root;\n\
                 pid {d}/nginx.pid; error_log {d}/error.log;\n\
                 events {{ worker_connections 64; }}\n\
                 http {{ access_log off; sendfile on; tcp_nopush on;\n\
                 client_body_temp_path {d}/www/tmp; proxy_temp_path {d}/www/tmp;\n\
                 fastcgi_temp_path {d}/www/tmp; uwsgi_temp_path {d}/www/tmp; scgi_temp_path {d}/www/tmp;\n\
                 server {{ listen 127.0.0.1:{port}; root {d}/www; }} }}\n"
            ),
        )?;
        let script = dir.join("fetch.sh");
        std::fs::write(
            &script,
            format!(
                "# fetch.sh CONF REPORT COUNT URL: start nginx, time COUNT fetches, stop it\n\
                 {nginx} -c \"$1\" -e {d}/error.log &\n\
                 server=$!\n\
                 for i in $(seq 500); do curl -sf -o /dev/null -r 0-0 \"$4\" && break; sleep 0.01; done\n\
                 start=$(date +%s%N)\n\
                 for i in $(seq \"$3\"); do curl -sf -o /dev/null \"$4\" || {{ kill $server; exit 1; }}; done\n\
                 end=$(date +%s%N)\n\
                 kill -QUIT $server; wait $server\n\
                 echo $((end - start)) > \"$2\"\n",
                nginx = nginx.display()
            ),
        )?;
        Ok(Nginx {
            script,
            conf,
            url: format!("http://127.0.0.1:{port}/64m.bin"),
        })
    }

    fn argv(&self, count: u64, report: &Path) -> Vec<OsString> {
        vec![
            "bash".into(),
            self.script.clone().into(),
            self.conf.clone().into(),
            report.into(),
            count.to_string().into(),
            self.url.clone().into(),
        ]
    }
}

/// dd's own time: its `... copied, 0.131353 s, 1.5 MB/s` line.
fn dd_ns(fin: &proc::Finished) -> Result<u64> {
    fin.stderr
        .iter()
        .find_map(|(_, l)| {
            let rest = l.split("copied, ").nth(1)?;
            let secs: f64 = rest.split(" s").next()?.trim().parse().ok()?;
            Some((secs * 1e9).round() as u64)
        })
        .ok_or_else(|| anyhow!("no `copied, X s` line from dd in:\n{}", fin.stderr_text()))
}

/// A timed zc-workload loop's nanoseconds (its --report-time file, removed).
fn read_report_time(report: &Path, what: &str) -> Result<u64> {
    let text = std::fs::read_to_string(report)
        .with_context(|| format!("{what} wrote no --report-time file"))?;
    let _ = std::fs::remove_file(report);
    text.trim()
        .parse()
        .with_context(|| format!("--report-time file holds {text:?}"))
}

fn read_zc_json(path: &Path) -> Result<ZcJson> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("zc-trace wrote no report to {}", path.display()))?;
    let v: Value = serde_json::from_str(&text)
        .with_context(|| format!("zc-trace's report {} is not JSON", path.display()))?;
    Ok(ZcJson {
        duration_ns: v["duration_ns"].as_u64().unwrap_or(0),
        syscalls: v["totals"]["syscalls"].as_u64().unwrap_or(0),
        cost: v.get("cost").filter(|c| c.is_object()).cloned(),
    })
}

/// The absolute, symlink-free path of `name` on PATH.
fn which(name: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .map(|p| std::fs::canonicalize(&p).unwrap_or(p))
        .ok_or_else(|| anyhow!("`{name}` is not on PATH"))
}

/// The machine's CPU time so far (/proc/stat's first line), in ticks.
struct CpuTimes {
    total: u64,
    steal: u64,
}

impl CpuTimes {
    fn now() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let ticks: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .take(8)
            .filter_map(|t| t.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal
        Some(Self {
            total: ticks.iter().sum(),
            steal: *ticks.get(7)?,
        })
    }

    fn steal_share_since(&self, start: &Self) -> f64 {
        let total = self.total.saturating_sub(start.total).max(1);
        self.steal.saturating_sub(start.steal) as f64 / total as f64
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn machine() -> Vec<(String, String)> {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let field = |text: &str, key: &str| {
        text.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_once(':').map(|x| x.1.trim().to_string()))
            .unwrap_or_else(|| "?".into())
    };
    let mem_kib: u64 = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0);
    let os = read("/etc/os-release")
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|s| s.trim_matches('"').to_string())
        .unwrap_or_else(|| "?".into());
    let virt = proc::first_line(&["systemd-detect-virt"]).unwrap_or_else(|| "?".into());
    vec![
        ("cpu".into(), field(&cpuinfo, "model name")),
        (
            "nproc".into(),
            std::thread::available_parallelism()
                .map_or(0, |n| n.get())
                .to_string(),
        ),
        (
            "memory".into(),
            format!("{:.1} GiB", mem_kib as f64 / (1 << 20) as f64),
        ),
        (
            "kernel".into(),
            read("/proc/sys/kernel/osrelease").trim().to_string(),
        ),
        ("os".into(), os),
        ("virtualization".into(), virt),
    ]
}

fn tools(zc: &Path) -> Vec<(String, String)> {
    let zc = zc.to_string_lossy();
    [
        ("zc-trace", vec![zc.as_ref(), "--version"]),
        ("strace", vec!["strace", "-V"]),
        ("perf", vec!["perf", "--version"]),
        ("bpftrace", vec!["bpftrace", "--version"]),
        ("dd", vec!["dd", "--version"]),
    ]
    .into_iter()
    .map(|(k, argv)| {
        (
            k.to_string(),
            proc::first_line(&argv).unwrap_or_else(|| "?".into()),
        )
    })
    .collect()
}

/// "2025-11-23 12:30 UTC" and "2025-11-23": when the run started, to the
/// minute, and its day.
fn started_at(t: SystemTime) -> (String, String) {
    // "2025-11-23 12:30:00 UTC"
    let stamp = zc_trace_format::utc(t);
    let minute = stamp.get(..16).unwrap_or(&stamp);
    let day = stamp.get(..10).unwrap_or(&stamp);
    (format!("{minute} UTC"), day.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn utc_dates() {
        let at = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(started_at(at(0)).0, "1970-01-01 00:00 UTC");
        assert_eq!(started_at(at(951_782_400)).1, "2000-02-29");
        assert_eq!(started_at(at(1_763_901_000)).0, "2025-11-23 12:30 UTC");
    }

    #[test]
    fn slow_tracers_run_heavy_workloads_smaller() {
        let s = Sizes::new(false);
        assert_eq!(s.count(Workload::Dd, Tracer::Zc), 200_000);
        assert_eq!(s.count(Workload::Dd, Tracer::Strace), 20_000);
        assert_eq!(s.count(Workload::Bulk, Tracer::PerfTrace), s.bulk);
    }
}
