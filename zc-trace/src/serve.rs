//! `zc-trace serve`: an OpenMetrics exporter. The probes count a cgroup,
//! the machine or some processes until stopped; every `--update` the
//! counters are folded into Prometheus counters (prometheus-client) and
//! rendered, and /metrics serves the last rendering (see `http`).
//!
//! Cardinality is bounded: a process gets its own (cgroup, process) label
//! pair only among the first `--top` pairs admitted, busiest (by
//! CPU-copied bytes) first; everything else is summed under "other". A
//! pair keeps its labels for the life of the exporter and each process is
//! labelled as first seen, so every counter only grows.

mod http;

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Arc, atomic::AtomicU64},
    time::{Duration, Instant},
};

use anyhow::Result;
use arc_swap::ArcSwap;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

use crate::{
    bpf_stats::{StatsMode, StatsWindows},
    cgroup::Names,
    cli::{ServeArgs, TargetSpec},
    collector::Collector,
    error::failure,
    model::{ProcessCounters, bytes::ByteClass, ledger::totals_of_rows, report::Totals},
    render::format::printable,
    session::{self, signals, timer::Timer},
};

/// The label pair of a series: a cgroup and a process name.
#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct Who {
    cgroup: String,
    process: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByClass {
    cgroup: String,
    process: String,
    class: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByKind {
    cgroup: String,
    process: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: String,
}

const OTHER: &str = "other";

/// The exporter's metrics (registered once, served by the HTTP thread).
#[derive(Default)]
struct Metrics {
    bytes: Family<ByClass, Counter>,
    syscalls: Family<Who, Counter>,
    errors: Family<Who, Counter>,
    mode_switches: Family<Who, Counter>,
    context_switches: Family<ByKind, Counter>,
    page_faults: Family<ByKind, Counter>,
    dropped: Family<Reason, Counter>,
    probe_runs: Counter,
    probe_seconds: Counter<f64, AtomicU64>,
    collector_seconds: Counter<f64, AtomicU64>,
    resident_bytes: Gauge,
    processes: Gauge,
}

impl Metrics {
    fn registry(&self) -> Registry {
        let mut r = Registry::with_prefix("zc_trace");
        let classes: Vec<&str> = ByteClass::ALL.iter().map(|c| c.key()).collect();
        r.register(
            "bytes",
            format!("Bytes by ledger class ({})", classes.join(", ")),
            self.bytes.clone(),
        );
        r.register(
            "syscalls",
            "System calls returned (or exited)",
            self.syscalls.clone(),
        );
        r.register(
            "syscall_errors",
            "System calls that failed",
            self.errors.clone(),
        );
        r.register(
            "mode_switches",
            "User/kernel mode switches, derived: 2 per returning syscall, 1 per exit, 2 per user-mode page fault",
            self.mode_switches.clone(),
        );
        r.register(
            "context_switches",
            "Scheduler context switches (kind: voluntary, involuntary)",
            self.context_switches.clone(),
        );
        r.register(
            "page_faults",
            "Page fault exceptions (kind: user, kernel mode; file: file-backed)",
            self.page_faults.clone(),
        );
        r.register(
            "dropped",
            "Records the probes could not keep, by reason (the totals stay exact)",
            self.dropped.clone(),
        );
        r.register(
            "probe_runs",
            "zc-trace's own probe runs (exact for the syscalls counted; runs for other processes sampled and scaled unless --exact-cost)",
            self.probe_runs.clone(),
        );
        r.register(
            "probe_seconds",
            "CPU time zc-trace's probes ran (BPF run-time statistics: sampled 1% of the time and scaled, exact with --exact-cost)",
            self.probe_seconds.clone(),
        );
        r.register(
            "collector_cpu_seconds",
            "CPU time of the zc-trace process",
            self.collector_seconds.clone(),
        );
        r.register(
            "resident_bytes",
            "Resident memory of the zc-trace process",
            self.resident_bytes.clone(),
        );
        r.register(
            "traced_processes",
            "Processes with counts in the kernel maps now",
            self.processes.clone(),
        );
        r
    }
}

/// What each label pair has been exported at so far.
struct Exporter {
    metrics: Metrics,
    /// Pairs with their own labels (at most `top`).
    admitted: BTreeMap<Who, ()>,
    top: usize,
    /// Totals of the folded (exited) processes, per exported pair.
    folded: BTreeMap<Who, Totals>,
    /// The last values exported, per pair.
    exported: BTreeMap<Who, Totals>,
    dropped: BTreeMap<String, u64>,
    cost: (u64, u64, u64),
    names: Names,
}

fn process_totals(p: &ProcessCounters) -> Totals {
    totals_of_rows(&p.syscalls, &p.events)
}

impl Exporter {
    /// The pair of a process, escaped: a traced process controls its name
    /// and may name cgroups.
    fn who(&mut self, p: &ProcessCounters) -> Who {
        let cgroup = match p.identity.cgroup {
            0 => String::new(),
            id => self.names.path(id),
        };
        Who {
            cgroup: printable(&cgroup).into_owned(),
            process: printable(&p.identity.comm).into_owned(),
        }
    }

    /// The exported pair of `who`: its own if admitted, else "other".
    fn series(&self, who: Who) -> Who {
        if self.admitted.contains_key(&who) {
            who
        } else {
            Who {
                cgroup: OTHER.into(),
                process: OTHER.into(),
            }
        }
    }

    /// Folds the exits, reads the live processes and brings every counter
    /// up to date; returns the calls counted so far.
    fn update(&mut self, collector: &mut Collector, stats: &StatsWindows<'_>) -> Result<u64> {
        let (folded_rows, live_rows) = collector.snapshot()?;
        self.names.forget_misses();
        let folded: Vec<(Who, Totals)> = folded_rows
            .iter()
            .map(|p| (self.who(p), process_totals(p)))
            .collect();
        let live: Vec<(Who, Totals)> = live_rows
            .iter()
            .map(|p| (self.who(p), process_totals(p)))
            .collect();
        self.admit(folded.iter().chain(&live));
        for (who, t) in folded {
            *self.folded.entry(self.series(who)).or_default() += t;
        }
        let mut now = self.folded.clone();
        for (who, t) in live {
            *now.entry(self.series(who)).or_default() += t;
        }
        for (who, t) in &now {
            let before = self.exported.get(who).copied().unwrap_or_default();
            self.export(who, &before, t);
        }
        self.exported = now;
        self.metrics.processes.set(live_rows.len() as i64);
        Ok(self.export_own(collector, stats))
    }

    /// Gives new pairs their own labels, busiest first, while there is room.
    fn admit<'a>(&mut self, seen: impl Iterator<Item = &'a (Who, Totals)>) {
        let mut new: BTreeMap<&Who, u64> = BTreeMap::new();
        for (who, t) in seen {
            if !self.admitted.contains_key(who) {
                *new.entry(who).or_default() += t.bytes.cpu_copied();
            }
        }
        let mut new: Vec<(&Who, u64)> = new.into_iter().collect();
        new.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        for (who, _) in new {
            if self.admitted.len() >= self.top {
                break;
            }
            self.admitted.insert(who.clone(), ());
        }
    }

    /// Adds what `who` did since `before` to its counters.
    fn export(&self, who: &Who, before: &Totals, now: &Totals) {
        let m = &self.metrics;
        let up = |c: &Counter, now: u64, before: u64| {
            c.inc_by(now.saturating_sub(before));
        };
        let by = |kind: &str| ByKind {
            cgroup: who.cgroup.clone(),
            process: who.process.clone(),
            kind: kind.into(),
        };
        for class in ByteClass::ALL {
            let labels = ByClass {
                cgroup: who.cgroup.clone(),
                process: who.process.clone(),
                class: class.key().to_owned(),
            };
            up(
                &m.bytes.get_or_create(&labels),
                now.bytes.get(class),
                before.bytes.get(class),
            );
        }
        up(
            &m.syscalls.get_or_create(who),
            now.syscalls,
            before.syscalls,
        );
        up(&m.errors.get_or_create(who), now.errors, before.errors);
        up(
            &m.mode_switches.get_or_create(who),
            now.mode_switches,
            before.mode_switches,
        );
        let (c, b) = (&now.context_switches, &before.context_switches);
        up(
            &m.context_switches.get_or_create(&by("voluntary")),
            c.voluntary,
            b.voluntary,
        );
        up(
            &m.context_switches.get_or_create(&by("involuntary")),
            c.involuntary,
            b.involuntary,
        );
        let (f, b) = (&now.page_faults, &before.page_faults);
        up(&m.page_faults.get_or_create(&by("user")), f.user, b.user);
        up(
            &m.page_faults.get_or_create(&by("kernel")),
            f.kernel,
            b.kernel,
        );
        up(&m.page_faults.get_or_create(&by("file")), f.file, b.file);
    }

    /// zc-trace's own cost and losses. The probe figures are estimates
    /// when sampled: each counter follows the estimate's running maximum,
    /// so it never goes down. Returns the calls counted so far.
    fn export_own(&mut self, collector: &Collector, stats: &StatsWindows<'_>) -> u64 {
        let m = &self.metrics;
        // One sum of the totals for the probe estimate and the drop counts.
        let counters = collector.read();
        let cost = stats.so_far(counters.calls());
        let cpu = session::own_cpu_ns();
        let (runs, probe_ns, cpu_ns) = self.cost;
        m.probe_runs.inc_by(cost.bpf_events.saturating_sub(runs));
        m.probe_seconds
            .inc_by(cost.bpf_run_time_ns.saturating_sub(probe_ns) as f64 / 1e9);
        m.collector_seconds
            .inc_by(cpu.saturating_sub(cpu_ns) as f64 / 1e9);
        self.cost = (
            cost.bpf_events.max(runs),
            cost.bpf_run_time_ns.max(probe_ns),
            cpu.max(cpu_ns),
        );
        m.resident_bytes.set(resident_bytes() as i64);
        for (name, n) in zc_trace_common::drop::NAMES.iter().zip(counters.dropped) {
            let before = self.dropped.insert((*name).to_owned(), n).unwrap_or(0);
            m.dropped
                .get_or_create(&Reason {
                    reason: (*name).to_owned(),
                })
                .inc_by(n.saturating_sub(before));
        }
        counters.calls()
    }
}

/// Resident set size of this process, from /proc/self/statm.
fn resident_bytes() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(0) as u64
}

/// The answer to /metrics: the registry's OpenMetrics text.
fn render(registry: &Registry) -> http::Page {
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, registry).is_err() {
        text.clear();
    }
    http::Page::metrics(&text)
}

pub fn run(args: &ServeArgs) -> Result<u8> {
    let spec = args.target()?;
    let addr: SocketAddr = args.listen.parse().map_err(|_| {
        failure(
            crate::error::EXIT_USAGE,
            format!(
                "`{}` is not an address to listen on: give IP:PORT, e.g. 127.0.0.1:9464 or [::]:9464",
                printable(&args.listen)
            ),
        )
    })?;
    let mut listener = None;
    let session::Loaded {
        probes,
        mut collector,
        ..
    } = session::load(&spec, args.follow_forks, false, || {
        // Listen before loading: a busy port fails now.
        listener = Some(http::listen(addr).map_err(|e| {
            failure(
                1,
                format!("cannot listen on {addr}: {e}: choose another --listen address or port"),
            )
        })?);
        Ok(())
    })?;
    let Some(listener) = listener else {
        return Err(failure(1, "the HTTP server did not start"));
    };
    // The probe-run metrics come from the kernel's BPF statistics, sampled
    // as in a traced run (on all along they would cost every syscall of
    // the machine two clock reads), scaled at each update.
    let mode = if args.exact_cost {
        StatsMode::Always
    } else {
        StatsMode::Sampled
    };
    let mut stats = StatsWindows::start(mode, &probes);
    collector.sum_by_cgroup();
    collector.keep_live();
    if let TargetSpec::Attach(pids) = &spec {
        session::attach_all(pids, &mut collector, &mut BTreeMap::new())?;
    }
    let mut exporter = Exporter {
        metrics: Metrics::default(),
        admitted: BTreeMap::new(),
        top: args.top,
        folded: BTreeMap::new(),
        exported: BTreeMap::new(),
        dropped: BTreeMap::new(),
        cost: (0, 0, 0),
        names: Names::default(),
    };
    let registry = exporter.metrics.registry();
    let pages = Arc::new(ArcSwap::from_pointee(render(&registry)));
    let endpoint = http::Endpoint::start(listener, Arc::clone(&pages)).map_err(|e| {
        failure(
            1,
            format!(
                "cannot start the HTTP thread: {e}: check the process and thread limits (ulimit -u)"
            ),
        )
    })?;
    eprintln!(
        "zc-trace: serving OpenMetrics at http://{addr}/metrics for {} until stopped",
        printable(&spec_text(&spec))
    );

    let (runtime, signals) = session::runtime_with_signals()?;
    let result = runtime.block_on(update_until_stopped(
        &mut exporter,
        &mut collector,
        &mut stats,
        args.update,
        || pages.store(Arc::new(render(&registry))),
        signals,
    ));
    endpoint.stop();
    result?;
    Ok(0)
}

/// Updates the counters every `update` and publishes them, until SIGINT
/// or SIGTERM. One timerfd wakeup per update: the statistics' windows
/// open at an update's wakeup when one comes before they are due, and
/// only the closing of a window has a wakeup of its own.
async fn update_until_stopped(
    exporter: &mut Exporter,
    collector: &mut Collector,
    stats: &mut StatsWindows<'_>,
    update: Duration,
    publish: impl Fn(),
    mut signals: signals::Signals,
) -> Result<()> {
    let mut tick = Timer::every(Duration::ZERO, update)?;
    let mut toggle = Timer::new()?;
    loop {
        toggle.set(stats.next_toggle())?;
        tokio::select! {
            r = tick.fired() => {
                r?;
                let calls = exporter.update(collector, stats)?;
                publish();
                stats.open_if_due_by(Instant::now() + update, calls);
            }
            r = toggle.fired(), if stats.next_toggle().is_some() => {
                r?;
                stats.toggle(collector.totals().calls());
            }
            _ = signals::next(&mut signals.int) => return Ok(()),
            _ = signals::next(&mut signals.term) => return Ok(()),
        }
    }
}

fn spec_text(spec: &TargetSpec) -> String {
    match spec {
        TargetSpec::Cgroup(dir) => format!("cgroup {}", dir.display()),
        TargetSpec::Attach(pids) => {
            let list: Vec<String> = pids.iter().map(i32::to_string).collect();
            format!("pid {}", list.join(","))
        }
        _ => "the whole machine".into(),
    }
}
