//! The bench's outputs: the markdown table (bench.md, also printed), the
//! raw figures (bench.json) and the chart's bars.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Value, json};
use zc_trace_format::figure as num;

use super::chart::Bar;
use super::stats::Spread;
use super::{
    CellData, EARLIER_PEERS, Neighbour, Pair, Results, SLOW_DIVISOR, TRACERS, Tracer, Workload,
    min_syscalls,
};

fn describe(w: Workload, count: u64, threads: usize) -> String {
    let mib = count * super::CHUNK / (1 << 20);
    match w {
        Workload::Dd => format!("`dd if=/dev/zero of=/dev/null bs=1 count={count}`"),
        Workload::PingPong => format!(
            "1-byte pipe ping-pong between 2 processes (pinned to one CPU), {count} round trips"
        ),
        Workload::Bulk => {
            format!("read 64 KiB from a file, write it to a tmpfs file, x{count} ({mib} MiB)")
        }
        Workload::Sendfile => format!(
            "sendfile 64 KiB from a file to loopback TCP, x{count} ({mib} MiB; a thread receives)"
        ),
        Workload::Threads => format!(
            "{threads} threads (one per core), each {count} x (read 1 B /dev/zero, write 1 B /dev/null)"
        ),
        Workload::Nginx => format!(
            "nginx (sendfile on) serving a 64 MiB file on loopback, fetched {count} x by curl (both traced)"
        ),
    }
}

fn short(w: Workload) -> &'static str {
    match w {
        Workload::Dd => "dd bs=1",
        Workload::PingPong => "pipe ping-pong",
        Workload::Bulk => "bulk read/write 64 KiB",
        Workload::Sendfile => "sendfile 64 KiB",
        Workload::Threads => "threads read/write 1 B",
        Workload::Nginx => "nginx, 4 x 64 MiB",
    }
}

/// A ratio: 1.23x, 12.3x, 123x.
// Ratios and times with about three significant digits, as zc-trace
// writes its figures.
fn x(r: f64) -> String {
    format!("{}x", num(r))
}

fn ms(ns: f64) -> String {
    format!("{} ms", ms_num(ns))
}

fn ms_num(ns: f64) -> String {
    num(ns / 1e6)
}

fn ratio_cell(s: &Spread) -> String {
    format!("{} [{}–{}]", x(s.median), num(s.min), num(s.max))
}

fn ms_cell(s: &Spread) -> String {
    format!("{} [{}–{}]", ms(s.median), ms_num(s.min), ms_num(s.max))
}

/// Fewest undisturbed pairs (or rounds) a figure is computed from; with
/// fewer, every pair counts and the figure is marked.
const MIN_CLEAN: usize = 3;

/// Indices of the items a figure uses: the undisturbed ones if there are
/// enough, else all.
fn used_indices(disturbed: &[bool]) -> Vec<usize> {
    let clean: Vec<usize> = (0..disturbed.len()).filter(|&i| !disturbed[i]).collect();
    if clean.len() >= MIN_CLEAN.min(disturbed.len()) {
        clean
    } else {
        (0..disturbed.len()).collect()
    }
}

/// The pairs a cell's figures use.
fn used(c: &CellData) -> Vec<&Pair> {
    let flags: Vec<bool> = c.pairs.iter().map(|p| p.disturbed).collect();
    used_indices(&flags)
        .into_iter()
        .map(|i| &c.pairs[i])
        .collect()
}

/// Whether a cell's figures include disturbed pairs.
fn uses_disturbed(c: &CellData) -> bool {
    used(c).iter().any(|p| p.disturbed)
}

fn ratios(c: &CellData) -> Option<Spread> {
    Spread::of(&used(c).iter().map(|p| p.ratio()).collect::<Vec<_>>())
}

fn untraced(c: &CellData) -> Option<Spread> {
    Spread::of(
        &used(c)
            .iter()
            .map(|p| p.untraced.ns as f64)
            .collect::<Vec<_>>(),
    )
}

fn traced(c: &CellData) -> Option<Spread> {
    Spread::of(
        &used(c)
            .iter()
            .map(|p| p.traced.ns as f64)
            .collect::<Vec<_>>(),
    )
}

fn scaled(w: Workload, t: Tracer) -> bool {
    w.syscall_heavy() && t.slow()
}

/// Untraced runs of `w` at its full count, all cells together.
fn untraced_full(r: &Results, w: Workload) -> Option<Spread> {
    let v: Vec<f64> = r
        .cells
        .iter()
        .filter(|((cw, _), c)| *cw == w && c.count == r.sizes.base(w))
        .flat_map(|(_, c)| used(c).into_iter().map(|p| p.untraced.ns as f64))
        .collect();
    Spread::of(&v)
}

/// Peak RSS of every zc-trace run, KiB.
fn zc_rss(r: &Results) -> Vec<f64> {
    r.cells
        .iter()
        .filter(|((_, t), _)| t.is_zc())
        .flat_map(|(_, c)| c.pairs.iter().map(|p| p.traced.maxrss_kib as f64))
        .chain(r.startup.sleep_rss_kib.iter().map(|&k| k as f64))
        .collect()
}

/// `f(round)` over the neighbour rounds the figures use.
fn neighbour_spread(r: &Results, f: impl Fn(usize) -> f64) -> Option<Spread> {
    let rounds = used_indices(&r.neighbour.disturbed);
    Spread::of(&rounds.into_iter().map(f).collect::<Vec<_>>())
}

/// Whether the neighbour figures include disturbed rounds.
fn neighbour_uses_disturbed(r: &Results) -> bool {
    used_indices(&r.neighbour.disturbed)
        .into_iter()
        .any(|i| r.neighbour.disturbed[i])
}

/// Beside a traced dd / beside an untraced dd, and / alone, per round.
fn neighbour_ratios(r: &Results) -> (Option<Spread>, Option<Spread>) {
    let n = &r.neighbour;
    (
        neighbour_spread(r, |i| n.beside_traced_ns[i] / n.beside_untraced_ns[i]),
        neighbour_spread(r, |i| n.beside_traced_ns[i] / n.alone_ns[i]),
    )
}

/// The neighbour while zc-trace traces an idle target / alone, per round.
fn idle_ratios(r: &Results) -> Option<Spread> {
    let n = &r.neighbour;
    neighbour_spread(r, |i| n.idle_tracer_ns[i] / n.alone_ns[i])
}

/// The idle-tracer neighbours / alone, per round, by wall time: (dd, dd
/// at the floor, getppid, getppid at the floor).
fn idle_neighbours(r: &Results) -> [Option<Spread>; 4] {
    let n = &r.neighbour;
    [
        idle_ratios(r),
        neighbour_spread(r, |i| n.idle_floor_ns[i] / n.alone_ns[i]),
        neighbour_spread(r, |i| n.getppid_idle_ns[i] / n.getppid_alone_ns[i]),
        neighbour_spread(r, |i| n.getppid_floor_ns[i] / n.getppid_alone_ns[i]),
    ]
}

/// The same by the neighbour's own CPU time: what the probes cost it
/// (they run inside its syscalls), however busy others keep the CPUs.
fn idle_neighbours_cpu(r: &Results) -> [Option<Spread>; 4] {
    let c = &r.neighbour.cpu_ns;
    let ratio = |k: usize, base: usize| neighbour_spread(r, |i| c[k][i] / c[base][i].max(1.0));
    [
        ratio(Neighbour::DD_IDLE, Neighbour::DD_ALONE),
        ratio(Neighbour::DD_FLOOR, Neighbour::DD_ALONE),
        ratio(Neighbour::GETPPID_IDLE, Neighbour::GETPPID_ALONE),
        ratio(Neighbour::GETPPID_FLOOR, Neighbour::GETPPID_ALONE),
    ]
}

/// BPF run-time statistics of zc-trace's dd runs, per program: (events
/// per run, run time per run) summed over the runs, and the number of runs.
struct CostAgg {
    runs: usize,
    programs: BTreeMap<String, (Vec<f64>, u64, u64)>,
    bpf_ns: u64,
    syscalls: u64,
    collector_cpu_ns: u64,
    duration_ns: u64,
}

fn cost_of(c: &CellData) -> Option<CostAgg> {
    let mut agg = CostAgg {
        runs: 0,
        programs: BTreeMap::new(),
        bpf_ns: 0,
        syscalls: 0,
        collector_cpu_ns: 0,
        duration_ns: 0,
    };
    for p in &c.pairs {
        let Some(z) = &p.traced.zc else { continue };
        let Some(cost) = &z.cost else { continue };
        agg.runs += 1;
        agg.bpf_ns += cost["bpf_run_time_ns"].as_u64().unwrap_or(0);
        agg.collector_cpu_ns += cost["collector_cpu_ns"].as_u64().unwrap_or(0);
        agg.syscalls += z.syscalls;
        agg.duration_ns += z.duration_ns;
        for prog in cost["programs"].as_array().into_iter().flatten() {
            let name = prog["program"].as_str().unwrap_or("?").to_string();
            let e = agg.programs.entry(name).or_default();
            let events = prog["events"].as_u64().unwrap_or(0);
            e.0.push(events as f64);
            e.1 += events;
            e.2 += prog["run_time_ns"].as_u64().unwrap_or(0);
        }
    }
    (agg.runs > 0).then_some(agg)
}

struct Target {
    what: String,
    limit: String,
    measured: String,
    /// What the same figure measures at the floor (the cheapest mode, or
    /// the peer the goal names), for comparison.
    floor: String,
    met: Option<bool>,
}

fn not_measured() -> String {
    "not measured".into()
}

/// A ratio target: its cell, or "not measured".
fn ratio_target(what: String, limit: f64, s: Option<Spread>, floor: Option<Spread>) -> Target {
    Target {
        what,
        limit: format!("≤ {limit:.2}x"),
        measured: s.as_ref().map_or_else(not_measured, ratio_cell),
        floor: floor.as_ref().map_or_else(|| "-".into(), ratio_cell),
        met: s.map(|s| s.median <= limit),
    }
}

/// Issue 12's goals, each beside its floor.
fn targets(r: &Results) -> Vec<Target> {
    let cell = |w: Workload, t: Tracer| r.cells.get(&(w, t)).and_then(ratios);
    let cheapest = Tracer::ZcMinimal;
    let mut out = vec![];
    let [dd_idle, dd_floor, getppid_idle, getppid_floor] = idle_neighbours_cpu(r);
    out.push(ratio_target(
        "untraced dd bs=1 while zc-trace traces another process, its CPU time (floor: cheapest mode)".into(),
        1.5,
        dd_idle,
        dd_floor,
    ));
    out.push(ratio_target(
        "untraced getppid loop while zc-trace traces another process, its CPU time (floor: cheapest mode)"
            .into(),
        1.2,
        getppid_idle,
        getppid_floor,
    ));
    out.push(ratio_target(
        "dd bs=1 traced, zc-trace (floor: cheapest mode)".into(),
        2.0,
        cell(Workload::Dd, Tracer::Zc),
        cell(Workload::Dd, cheapest),
    ));
    let perf = cell(Workload::Dd, Tracer::PerfStat);
    let mut vs_perf = ratio_target(
        format!(
            "dd bs=1 traced, {} ≤ perf stat (floor: perf stat)",
            cheapest.name()
        ),
        perf.map_or(f64::NAN, |p| p.median),
        cell(Workload::Dd, cheapest),
        perf,
    );
    vs_perf.limit = "≤ perf stat".into();
    vs_perf.met = vs_perf.met.filter(|_| perf.is_some());
    out.push(vs_perf);
    for (w, limit) in [
        (Workload::PingPong, 1.15),
        (Workload::Bulk, 1.03),
        (Workload::Sendfile, 1.03),
        (Workload::Nginx, 1.03),
    ] {
        out.push(ratio_target(
            format!("{}, zc-trace (floor: cheapest mode)", short(w)),
            limit,
            cell(w, Tracer::Zc),
            cell(w, cheapest),
        ));
    }
    let live = Spread::of(&r.startup.live_s);
    out.push(Target {
        what: "probes live after start".into(),
        limit: "< 0.25 s".into(),
        measured: live.as_ref().map_or_else(not_measured, |s| {
            format!("{:.3} s [{:.3}–{:.3}]", s.median, s.min, s.max)
        }),
        floor: "-".into(),
        met: live.map(|s| s.median < 0.25),
    });
    let rss = Spread::of(&zc_rss(r));
    out.push(Target {
        what: "peak RSS of zc-trace (largest run)".into(),
        limit: "< 30 MiB".into(),
        measured: rss.as_ref().map_or_else(not_measured, |s| {
            format!(
                "{:.1} MiB (median {:.1})",
                s.max / 1024.0,
                s.median / 1024.0
            )
        }),
        floor: "-".into(),
        met: rss.map(|s| s.max < 30.0 * 1024.0),
    });
    for w in &r.collector {
        let per_s = w.cpu_ns as f64 / w.window_s / 1e6;
        out.push(Target {
            what: format!("collector CPU, tracing `{}`, {}", w.target, w.span()),
            limit: "< 1 ms/s".into(),
            measured: format!("{per_s:.2} ms/s"),
            floor: "-".into(),
            met: Some(per_s < 1.0),
        });
    }
    out
}

fn yes_no(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "yes",
        Some(false) => "**no**",
        None => "-",
    }
}

/// The bench's report: one section after another.
pub fn markdown(r: &Results) -> String {
    let mut m = String::new();
    header(&mut m, r);
    overview(&mut m, r);
    zc_trace_itself(&mut m, r);
    targets_table(&mut m, r);
    bpf_cost(&mut m, r);
    let notes = every_cell(&mut m, r);
    method(&mut m, r, notes);
    m
}

/// Title, machine, what ran around the bench.
fn header(m: &mut String, r: &Results) {
    let get = |k: &str, list: &[(String, String)]| {
        list.iter()
            .find(|(a, _)| a == k)
            .map_or("?".to_string(), |(_, v)| v.clone())
    };
    let mc = |k: &str| get(k, &r.machine);
    let _ = writeln!(
        m,
        "## Benchmark: zc-trace vs strace, perf, bpftrace ({})\n",
        r.date
    );
    let _ = writeln!(
        m,
        "Machine: {}, {} CPUs, {}, Linux {}, {} (virtualization: {}). Load average {} at the start, \
         {} at the end{}. Started {}; the whole `cargo xtask bench{}` took {:.0} s ({:.0} s measuring).\n",
        mc("cpu"),
        mc("nproc"),
        mc("memory"),
        mc("kernel"),
        mc("os"),
        mc("virtualization"),
        r.load_start,
        r.load_end,
        r.steal.map_or_else(String::new, |s| format!(
            "; the hypervisor gave {:.0}% of the CPU time to other guests while measuring (steal: every \
             figure is slower and noisier then)",
            s * 100.0
        )),
        r.started_utc,
        if r.quick { " --quick" } else { "" },
        r.total_s,
        r.measure_s
    );
    let a = &r.activity;
    let _ = writeln!(
        m,
        "Other activity, sampled before every pair: someone else's tracer or test workload in {} of \
         {} checks, a compiler or linker in {}{}.\n",
        a.tracing,
        a.checks,
        a.building,
        if a.seen.is_empty() {
            String::new()
        } else {
            format!(
                " (seen: {})",
                a.seen.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        }
    );
    let _ = writeln!(
        m,
        "Tools: {}.\n",
        r.tools
            .iter()
            .map(|(k, v)| format!("{k}: `{v}`"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        m,
        "Each cell: {} rounds of an untraced run immediately followed by the traced run of the same \
         size (A B A B ...); the ratio traced/untraced is taken pair by pair, and the cell shows the \
         median [min–max] of the ratios. The time compared is the workload's own: dd's `copied, X s` \
         line, or the measured loop of the zc-workload scenario (`--report-time`), so a tracer's \
         start-up and exit are not in the ratios (they are below).\n",
        r.rounds
    );
}

/// The overview: workload time traced / untraced, per tracer.
fn overview(m: &mut String, r: &Results) {
    let _ = write!(
        m,
        "### Overhead: workload time traced / untraced\n\n| workload | untraced |"
    );
    for t in &r.tracers {
        let _ = write!(m, " {} |", t.name());
    }
    let _ = write!(m, "\n|---|---:|");
    for _ in &r.tracers {
        let _ = write!(m, "---:|");
    }
    m.push('\n');
    let mut any_scaled = false;
    let mut any_disturbed = false;
    for &w in &r.workloads {
        let base = r.sizes.base(w);
        let _ = write!(
            m,
            "| {} | {} |",
            describe(w, base, r.threads),
            untraced_full(r, w).as_ref().map_or("-".into(), ms_cell)
        );
        for &t in &r.tracers {
            let cell = r.cells.get(&(w, t));
            let text = match cell.and_then(ratios) {
                Some(s) => {
                    let star = if scaled(w, t) {
                        any_scaled = true;
                        "\\*"
                    } else {
                        ""
                    };
                    let dagger = if cell.is_some_and(uses_disturbed) {
                        any_disturbed = true;
                        " †"
                    } else {
                        ""
                    };
                    format!("{}{star}{dagger}", ratio_cell(&s))
                }
                None if cell.is_some_and(|c| !c.errors.is_empty()) => "failed".into(),
                None => "-".into(),
            };
            let _ = write!(m, " {text} |");
        }
        m.push('\n');
    }
    let left_out: usize = r
        .cells
        .values()
        .map(|c| c.pairs.len() - used(c).len())
        .sum();
    let _ = writeln!(
        m,
        "\nPairs with someone else's tracer, tests or build running just before or after them \
         (see Other activity) are left out when at least {MIN_CLEAN} clean pairs remain: {left_out} \
         left out in all.{}",
        if any_disturbed {
            " † too few clean pairs: this cell includes disturbed ones."
        } else {
            ""
        }
    );
    if any_scaled {
        let _ = writeln!(
            m,
            "\n\\* run at 1/{SLOW_DIVISOR} of the count (strace and perf trace cost tens of µs per \
             call), against untraced runs of that count."
        );
    }
    let _ = writeln!(
        m,
        "\nEarlier measurements of the peers on dd bs=1 (issue 5): {EARLIER_PEERS}.\n"
    );
}

/// zc-trace's own figures: start-up, memory, collector, neighbours.
fn zc_trace_itself(m: &mut String, r: &Results) {
    let _ = writeln!(
        m,
        "### zc-trace itself\n\n| figure | median [min–max] | how |\n|---|---:|---|"
    );
    startup_rows(m, r);
    collector_rows(m, r);
    if let Some(e) = &r.exporter {
        exporter_row(m, e);
    }
    for e in &r.extra_errors {
        let _ = writeln!(m, "| (failed) | - | {} |", one_line(e));
    }
    neighbour_rows(m, r);
    idle_neighbour_rows(m, r);
    m.push('\n');
}

/// Start-up to live probes, a run of `true`, peak memory.
fn startup_rows(m: &mut String, r: &Results) {
    if let Some(s) = Spread::of(&r.startup.live_s) {
        let _ = writeln!(
            m,
            "| probes live after start | {:.3} s [{:.3}–{:.3}] | spawn of `zc-trace -- sleep 1` to its `zc-trace: tracing` line on stderr ({} runs) |",
            s.median, s.min, s.max, s.n
        );
    }
    if let (Some(t), Some(u)) = (
        Spread::of(&r.startup.true_traced_s),
        Spread::of(&r.startup.true_untraced_s),
    ) {
        let _ = writeln!(
            m,
            "| `zc-trace -- true` | {:.3} s [{:.3}–{:.3}] | wall time, spawn to exit (untraced `true`: {:.1} ms) |",
            t.median,
            t.min,
            t.max,
            u.median * 1e3
        );
    }
    if let Some(s) = Spread::of(&zc_rss(r)) {
        let _ = writeln!(
            m,
            "| peak RSS | {:.1} MiB [{:.1}–{:.1}] | wait4 `ru_maxrss` of every zc-trace run ({}; the largest of zc-trace and the processes it reaped) |",
            s.median / 1024.0,
            s.min / 1024.0,
            s.max / 1024.0,
            s.n
        );
    }
}

/// The collector's CPU per second, by target.
fn collector_rows(m: &mut String, r: &Results) {
    for w in &r.collector {
        let per_s = w.cpu_ns as f64 / w.window_s / 1e6;
        let mut how = format!(
            "CPU of zc-trace's threads (`/proc/PID/task/*/schedstat`) while tracing `{}`, {}",
            w.target,
            w.span()
        );
        if let Some(z) = &w.json {
            if let Some(cost) = &z.cost {
                let cpu = cost["collector_cpu_ns"].as_u64().unwrap_or(0) as f64;
                let bpf = cost["bpf_run_time_ns"].as_u64().unwrap_or(0) as f64;
                let secs = z.duration_ns.max(1) as f64 / 1e9;
                let _ = write!(
                    how,
                    "; its report: collector {:.1} ms/s, probes {:.1} ms/s (all CPUs), {:.0}k syscalls/s traced",
                    cpu / secs / 1e6,
                    bpf / secs / 1e6,
                    z.syscalls as f64 / secs / 1e3
                );
            }
        }
        let what = if w.target.starts_with("sleep") {
            "idle target"
        } else if w.target == "-a" {
            "the whole machine (`-a`)"
        } else if w.target.starts_with("bash") {
            how = format!(
                "zc-trace's report: collector CPU over the whole {:.1} s run of `{}`",
                w.window_s, w.target
            );
            "short-lived processes"
        } else {
            "busy target"
        };
        let _ = writeln!(
            m,
            "| collector CPU per second, {what}, {} | {per_s:.2} ms/s | {how} |",
            w.span()
        );
    }
}

/// An untraced neighbour beside a traced dd.
fn neighbour_rows(m: &mut String, r: &Results) {
    let (vs_untraced, vs_alone) = neighbour_ratios(r);
    let n = &r.neighbour;
    if let Some(s) = &vs_untraced {
        let _ = writeln!(
            m,
            "| untraced neighbour, beside a traced dd / beside an untraced dd | {}{} | dd bs=1 count={} (untraced) next to a 3x longer dd bs=1, traced by zc-trace or not; {} of {} rounds used ({} disturbed); the partner outlived the neighbour in {} of {} rounds |",
            ratio_cell(s),
            if neighbour_uses_disturbed(r) {
                " †"
            } else {
                ""
            },
            n.count,
            s.n,
            n.disturbed.len(),
            n.disturbed.iter().filter(|&&d| d).count(),
            n.overlapped,
            n.disturbed.len()
        );
    }
    if let (Some(s), Some(a), Some(u), Some(t)) = (
        &vs_alone,
        neighbour_spread(r, |i| n.alone_ns[i]),
        neighbour_spread(r, |i| n.beside_untraced_ns[i]),
        neighbour_spread(r, |i| n.beside_traced_ns[i]),
    ) {
        let _ = writeln!(
            m,
            "| untraced neighbour, beside a traced dd / alone | {} | neighbour alone {}, beside an untraced dd {}, beside a traced dd {} |",
            ratio_cell(s),
            ms_cell(&a),
            ms_cell(&u),
            ms_cell(&t)
        );
    }
}

/// An untraced neighbour while zc-trace (or the floor, one filter-only
/// program) traces an idle process: the probes' cost for others.
fn idle_neighbour_rows(m: &mut String, r: &Results) {
    let n = &r.neighbour;
    let [dd_idle, dd_floor, getppid_idle, getppid_floor] = idle_neighbours(r);
    let cpu = idle_neighbours_cpu(r);
    let cheapest = Tracer::ZcMinimal.name();
    let cpu_note = |k: usize| {
        cpu[k]
            .as_ref()
            .map_or_else(|| "-".into(), |s| format!("its CPU time {}", ratio_cell(s)))
    };
    let getppid_alone = neighbour_spread(r, |i| n.getppid_alone_ns[i])
        .as_ref()
        .map_or_else(|| "-".into(), ms_cell);
    let rows = [
        (
            "untraced dd while zc-trace traces an idle `sleep 1` / alone".to_owned(),
            dd_idle,
            format!(
                "the probes' cost for processes zc-trace does not trace, without a second busy process; {}",
                cpu_note(0)
            ),
            neighbour_spread(r, |i| n.idle_tracer_ns[i]),
        ),
        (
            format!("untraced dd while `{cheapest}` traces an idle `sleep 1` / alone"),
            dd_floor,
            format!(
                "the floor: one filter-only program per syscall; {}",
                cpu_note(1)
            ),
            neighbour_spread(r, |i| n.idle_floor_ns[i]),
        ),
        (
            "untraced getppid loop while zc-trace traces an idle `sleep 1` / alone".to_owned(),
            getppid_idle,
            format!(
                "{} getppid calls (zc-workload getppid-loop), alone {getppid_alone}; {}",
                n.getppid_count,
                cpu_note(2)
            ),
            neighbour_spread(r, |i| n.getppid_idle_ns[i]),
        ),
        (
            format!("untraced getppid loop while `{cheapest}` traces an idle `sleep 1` / alone"),
            getppid_floor,
            format!("the floor for the cheapest syscall; {}", cpu_note(3)),
            neighbour_spread(r, |i| n.getppid_floor_ns[i]),
        ),
    ];
    for (what, ratio, how, time) in rows {
        if let (Some(s), Some(t)) = (ratio, time) {
            let _ = writeln!(
                m,
                "| {what} | {} | {how}: {} |",
                ratio_cell(&s),
                ms_cell(&t)
            );
        }
    }
}

/// `zc-trace serve -a`: its CPU and memory, and its answers' times.
fn exporter_row(m: &mut String, e: &super::serve::ServeFigures) {
    let Some(scrape) = Spread::of(&e.scrape_ms) else {
        return;
    };
    let _ = writeln!(
        m,
        "| the exporter, `zc-trace serve -a` | {:.1} ms/s CPU, {:.1} MiB RSS | CPU of its threads (schedstat) over {:.1} s with a /metrics scrape every 100 ms: each answered in {:.1} ms [{:.1}–{:.1}] ({} scrapes); its probes, by its own estimate, {:.1} ms/s (all CPUs) for {:.0}k syscalls/s of the machine |",
        e.cpu_ns as f64 / e.window_s / 1e6,
        e.rss_kib as f64 / 1024.0,
        e.window_s,
        scrape.median,
        scrape.min,
        scrape.max,
        scrape.n,
        e.probe_s * 1e3 / e.live_s.max(1e-9),
        e.syscalls / e.live_s.max(1e-9) / 1e3
    );
}

/// The targets, reported against the medians.
fn targets_table(m: &mut String, r: &Results) {
    let _ = writeln!(
        m,
        "### Targets (reported, not asserted; met = the median is within)\n\n| target | limit | measured | floor | met |\n|---|---|---|---|---|"
    );
    for t in targets(r) {
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} | {} |",
            t.what,
            t.limit,
            t.measured,
            t.floor,
            yes_no(t.met)
        );
    }
    m.push('\n');
}

/// BPF run time per program, from zc-trace's own report.
fn bpf_cost(m: &mut String, r: &Results) {
    let mut cost_rows = String::new();
    for t in [Tracer::Zc, Tracer::ZcLatency] {
        let Some(agg) = r.cells.get(&(Workload::Dd, t)).and_then(cost_of) else {
            continue;
        };
        for (prog, (events, ev_sum, ns_sum)) in &agg.programs {
            let per_run = Spread::of(events).map_or(0.0, |s| s.median);
            let _ = writeln!(
                cost_rows,
                "| {} | {prog} | {:.0} | {:.0} |",
                t.name(),
                per_run,
                if *ev_sum == 0 {
                    0.0
                } else {
                    *ns_sum as f64 / *ev_sum as f64
                }
            );
        }
        let _ = writeln!(
            cost_rows,
            "| {} | **all programs, per traced syscall** | {:.0} syscalls | {:.0} |",
            t.name(),
            agg.syscalls as f64 / agg.runs as f64,
            agg.bpf_ns as f64 / agg.syscalls.max(1) as f64
        );
    }
    if !cost_rows.is_empty() {
        let _ = writeln!(
            m,
            "### BPF cost per program (zc-trace's report `cost`, dd bs=1 runs)\n\n\
             Events count every run of the program on the machine (the filter runs for untraced \
             processes too); the kernel's BPF run-time statistics add a little time of their own. \
             By default they are sampled (on 1% of the time) and the figures scaled: the events per \
             run against the syscalls per run show how far the estimate is off.\n\n\
             | config | program | events per run (median) | ns per event |\n|---|---|---:|---:|\n{cost_rows}"
        );
    }
}

/// Every cell in detail; returns the notes the cells and the run earned.
fn every_cell(m: &mut String, r: &Results) -> Vec<String> {
    let _ = writeln!(
        m,
        "### Every cell\n\n| workload | tracer | count | pairs | untraced | traced | ratio median [IQR] [min–max] | traced wall (whole command) | zc-trace syscalls counted |\n|---|---|---:|---:|---:|---:|---:|---:|---:|"
    );
    let mut notes = vec![];
    for (&(w, t), c) in &r.cells {
        cell_row(m, r, (w, t), c, &mut notes);
        for e in &c.errors {
            notes.push(format!("{} under {}: {}", w.key(), t.name(), one_line(e)));
        }
    }
    m.push('\n');
    notes.extend(run_notes(r));
    notes
}

/// One cell's row (none for a cell without a pair), and its notes.
fn cell_row(
    m: &mut String,
    r: &Results,
    (w, t): (Workload, Tracer),
    c: &CellData,
    notes: &mut Vec<String>,
) {
    let (Some(rs), Some(u), Some(tr)) = (ratios(c), untraced(c), traced(c)) else {
        return;
    };
    let wall = Spread::of(
        &c.pairs
            .iter()
            .map(|p| p.traced.wall.as_secs_f64() * 1e9)
            .collect::<Vec<_>>(),
    )
    .map_or("-".into(), |s| ms(s.median));
    let counted: Vec<u64> = c
        .pairs
        .iter()
        .filter_map(|p| p.traced.zc.as_ref().map(|z| z.syscalls))
        .collect();
    let counted_text = match counted.iter().min() {
        Some(&lo) => {
            let need = min_syscalls(w, c.count, r.threads);
            if lo < need {
                notes.push(format!(
                    "{} under {}: zc-trace counted {lo} syscalls in a run, fewer than the {need} the workload makes",
                    w.key(),
                    t.name()
                ));
            }
            format!("{lo}–{}", counted.iter().max().unwrap())
        }
        None => "-".into(),
    };
    let _ = writeln!(
        m,
        "| {} | {} | {} | {} | {} | {} | {} [{}–{}] [{}–{}] | {} | {} |",
        w.key(),
        t.name(),
        c.count,
        {
            let disturbed = c.pairs.iter().filter(|p| p.disturbed).count();
            match (disturbed, c.pairs.len() - rs.n) {
                (0, _) => format!("{}", rs.n),
                (d, 0) => format!("{} ({d} disturbed, kept)", rs.n),
                (_, out) => format!("{} ({out} disturbed, left out)", rs.n),
            }
        },
        ms_cell(&u),
        ms_cell(&tr),
        x(rs.median),
        num(rs.q1),
        num(rs.q3),
        num(rs.min),
        num(rs.max),
        wall,
        counted_text
    );
    if rs.median < 0.97 {
        notes.push(format!(
            "{} under {}: traced runs were faster than untraced ones (median ratio {}): noise",
            w.key(),
            t.name(),
            x(rs.median)
        ));
    }
}

/// What the run as a whole earned a note for: tracers not measured,
/// neighbour failures, other activity on the machine.
fn run_notes(r: &Results) -> Vec<String> {
    let mut notes = vec![];
    for (t, why) in &r.unavailable {
        notes.push(format!("{} was not measured: {}", t.name(), one_line(why)));
    }
    for e in &r.neighbour.errors {
        notes.push(format!("neighbour: {}", one_line(e)));
    }
    if r.activity.tracing > 0 {
        notes.push(format!(
            "someone else's tracer or tests ran during {} of {} pairs: a BPF tracer slows every \
             process on the machine, untraced ones included, so those pairs are disturbed",
            r.activity.tracing, r.activity.checks
        ));
    }
    if r.activity.building > 0 {
        notes.push(format!(
            "a build ran during {} of {} pairs (competing for the CPUs)",
            r.activity.building, r.activity.checks
        ));
    }
    if r.neighbour.overlapped < r.neighbour.beside_traced_ns.len() {
        notes
            .push("neighbour: in some rounds the partner dd ended before the neighbour did".into());
    }
    notes
}

/// How the workloads and tracers ran, then the notes.
fn method(m: &mut String, r: &Results, notes: Vec<String>) {
    let _ = writeln!(m, "### Workloads and tracers\n");
    for &w in &r.workloads {
        let _ = writeln!(
            m,
            "- `{}`: {}; timed {}.",
            w.key(),
            describe(w, r.sizes.base(w), r.threads),
            match w {
                Workload::Dd => "by dd itself (`copied, X s`)",
                Workload::Nginx =>
                    "by its script around the fetches (`date +%s%N`), after nginx answers and before it stops",
                _ => "by the zc-workload scenario around its loop (`--report-time`)",
            }
        );
    }
    for &t in &r.tracers {
        let _ = writeln!(m, "- {}: `{}`", t.name(), t.command(&r.bpftrace_script));
    }
    let _ = writeln!(
        m,
        "- bpftrace counts the direct child only (`pid == cpid`, all its threads): in the ping-pong \
         the forked child is not counted, but its calls still run the probe, which fires for every \
         syscall on the machine. zc-trace, strace -f and perf follow children.\n"
    );
    if !notes.is_empty() {
        let _ = writeln!(m, "### Notes\n");
        for n in notes {
            let _ = writeln!(m, "- {n}");
        }
        m.push('\n');
    }
}

fn one_line(s: &str) -> String {
    let s = s.replace('\n', " ").replace('|', "/");
    if s.chars().count() > 300 {
        s.chars().take(300).collect::<String>() + "..."
    } else {
        s
    }
}

pub fn json(r: &Results) -> Value {
    let spread = |s: Option<Spread>| s.map_or(Value::Null, |s| s.json());
    let kv = |list: &[(String, String)]| {
        Value::Object(
            list.iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        )
    };
    let run = |p: &super::Run| {
        json!({
            "ns": p.ns,
            "wall_ns": p.wall.as_nanos() as u64,
            "cpu_ns": p.cpu.as_nanos() as u64,
            "maxrss_kib": p.maxrss_kib,
            "zc_trace": p.zc.as_ref().map(|z| json!({
                "duration_ns": z.duration_ns, "syscalls": z.syscalls, "cost": z.cost,
            })),
        })
    };
    let cells: Vec<Value> = r
        .cells
        .iter()
        .map(|(&(w, t), c)| {
            json!({
                "workload": w.key(),
                "tracer": t.key(),
                "count": c.count,
                "scaled_down": scaled(w, t),
                "untraced_ns": spread(untraced(c)),
                "traced_ns": spread(traced(c)),
                "ratio": spread(ratios(c)),
                "pairs": c.pairs.iter().map(|p| json!({
                    "round": p.round, "ratio": p.ratio(), "disturbed": p.disturbed,
                    "used": used(c).iter().any(|u| std::ptr::eq(*u, p)),
                    "untraced": run(&p.untraced), "traced": run(&p.traced),
                })).collect::<Vec<_>>(),
                "errors": c.errors,
            })
        })
        .collect();
    let n = &r.neighbour;
    let (vs_untraced, vs_alone) = neighbour_ratios(r);
    json!({
        "date": r.date,
        "started": r.started_utc,
        "machine": kv(&r.machine),
        "tools": kv(&r.tools),
        "load_average": {"start": r.load_start, "end": r.load_end},
        "steal_share": r.steal,
        "other_activity": {
            "checks": r.activity.checks, "tracing": r.activity.tracing,
            "building": r.activity.building, "seen": r.activity.seen,
            "examples": r.activity.examples,
        },
        "rounds": r.rounds,
        "quick": r.quick,
        "threads": r.threads,
        "slow_divisor": SLOW_DIVISOR,
        "sizes": {
            "dd": r.sizes.dd, "pingpong": r.sizes.pingpong, "threads": r.sizes.threads,
            "bulk_chunks": r.sizes.bulk, "sendfile_chunks": r.sizes.sendfile,
            "chunk": super::CHUNK, "input_file_bytes": r.sizes.file_chunks * super::CHUNK,
        },
        "time_basis": "the workload's own time: dd's `copied, X s`, zc-workload --report-time",
        "tracers": r.tracers.iter().map(|t| json!({
            "key": t.key(), "name": t.name(), "command": t.command(&r.bpftrace_script),
        })).collect::<Vec<_>>(),
        "unavailable": r.unavailable.iter().map(|(t, e)| json!({"tracer": t.key(), "error": e})).collect::<Vec<_>>(),
        "untraced_full_count_ns": r.workloads.iter().map(|&w| (w.key().to_string(), spread(untraced_full(r, w)))).collect::<serde_json::Map<_, _>>(),
        "cells": cells,
        "startup": {
            "probes_live_s": r.startup.live_s,
            "true_untraced_s": r.startup.true_untraced_s,
            "true_traced_s": r.startup.true_traced_s,
            "sleep_maxrss_kib": r.startup.sleep_rss_kib,
            "maxrss_kib_all_runs": spread(Spread::of(&zc_rss(r))),
        },
        "collector": r.collector.iter().map(|w| json!({
            "target": w.target, "from_s": w.from_s, "window_s": w.window_s, "cpu_ns": w.cpu_ns,
            "cpu_ms_per_s": w.cpu_ns as f64 / w.window_s / 1e6,
            "report": w.json.as_ref().map(|z| json!({"duration_ns": z.duration_ns, "syscalls": z.syscalls, "cost": z.cost})),
        })).collect::<Vec<_>>(),
        "exporter": r.exporter.as_ref().map(|e| json!({
            "window_s": e.window_s, "cpu_ns": e.cpu_ns, "rss_kib": e.rss_kib,
            "scrape_ms": e.scrape_ms, "probe_s": e.probe_s, "syscalls": e.syscalls,
            "live_s": e.live_s,
        })),
        "errors": r.extra_errors,
        "neighbour": {
            "count": n.count,
            "alone_ns": n.alone_ns,
            "beside_untraced_ns": n.beside_untraced_ns,
            "beside_traced_ns": n.beside_traced_ns,
            "idle_tracer_ns": n.idle_tracer_ns,
            "idle_floor_ns": n.idle_floor_ns,
            "getppid_count": n.getppid_count,
            "getppid_alone_ns": n.getppid_alone_ns,
            "getppid_idle_tracer_ns": n.getppid_idle_ns,
            "getppid_idle_floor_ns": n.getppid_floor_ns,
            "cpu_ns_by_kind": {
                "order": ["dd alone", "dd beside untraced dd", "dd beside traced dd",
                          "dd idle tracer", "dd idle tracer cheapest", "getppid alone",
                          "getppid idle tracer", "getppid idle tracer cheapest"],
                "cpu_ns": n.cpu_ns,
            },
            "ratio_idle_tracer_vs_alone": spread(idle_ratios(r)),
            "ratio_vs_beside_untraced": spread(vs_untraced),
            "ratio_vs_alone": spread(vs_alone),
            "overlapped_rounds": n.overlapped,
            "disturbed_rounds": n.disturbed,
            "errors": n.errors,
        },
        "targets": targets(r).iter().map(|t| json!({
            "what": t.what, "limit": t.limit, "measured": t.measured, "floor": t.floor, "met": t.met,
        })).collect::<Vec<_>>(),
        "measure_s": r.measure_s,
        "total_s": r.total_s,
    })
}

/// One bar per measured (workload, tracer), and the legend (tracer name,
/// colour).
pub fn bars(r: &Results) -> (Vec<Bar>, Vec<(String, usize)>) {
    let mut bars = vec![];
    for &w in &r.workloads {
        for &t in &r.tracers {
            let Some(s) = r.cells.get(&(w, t)).and_then(ratios) else {
                continue;
            };
            bars.push(Bar {
                group: short(w).to_string(),
                label: format!("{}{}", t.name(), if scaled(w, t) { " *" } else { "" }),
                median: s.median,
                min: s.min,
                max: s.max,
                color: TRACERS.iter().position(|&x| x == t).unwrap_or(0),
            });
        }
    }
    let legend = TRACERS
        .iter()
        .enumerate()
        .filter(|(_, t)| r.tracers.contains(t))
        .map(|(i, t)| (t.name().to_string(), i))
        .collect();
    (bars, legend)
}
