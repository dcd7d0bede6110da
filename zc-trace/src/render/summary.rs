//! The terminal summary: the copy ledger first, then what it cost, then the
//! syscalls grouped by what they do with bytes.

use std::fmt::Write as _;

use crate::model::{
    bytes::ByteClass,
    ledger::{MODE_SWITCH_RULE, how_measured},
    report::{Process, Report, SyscallEntry, Timing, Totals},
};

use super::{
    format::{bytes, call_time, cpu_cell, cpu_time, duration_ns, fault_split, grouped, printable},
    groups::{TIME_COLUMNS, cells, groups},
};

/// Process rows the summary prints at most: a screenful.
const PROCESS_ROWS: usize = 20;

/// The `n` rows with the most syscalls, in the report's order.
fn busiest(processes: &[Process], n: usize) -> Vec<&Process> {
    let mut order: Vec<usize> = (0..processes.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(processes[i].totals.syscalls));
    order.truncate(n);
    order.sort_unstable();
    order.into_iter().map(|i| &processes[i]).collect()
}

/// The summary: the same sections as report.html, in the same order.
pub fn render(r: &Report) -> String {
    let mut s = String::new();
    header(&mut s, r);
    ledger(&mut s, r);
    cost(&mut s, r);
    syscalls(&mut s, r);
    if matches!(r.target.mode.as_str(), "cgroup" | "all") {
        top(&mut s, r);
    } else if r.processes.len() > 1 {
        processes(&mut s, r);
    }
    tracing_cost(&mut s, r);
    dropped(&mut s, r);
    run_notes(&mut s, r);
    footer(&mut s, r);
    s
}

/// What this run's report says beyond the method every report states (a
/// call in progress at attach, untraced children, a missing probe ...).
fn run_notes(s: &mut String, r: &Report) {
    let notes: Vec<&String> = r
        .notes
        .iter()
        .filter(|n| !crate::model::ledger::is_method_note(n))
        .collect();
    if notes.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "
Notes"
    );
    for note in notes {
        let _ = writeln!(s, "  - {}", printable(note));
    }
}

fn header(s: &mut String, r: &Report) {
    let _ = writeln!(
        s,
        "\nzc-trace: {}, {}{}",
        target_line(r),
        duration_ns(r.duration_ns),
        exit_line(r)
    );
}

/// The copy ledger: one row per byte class shown.
fn ledger(s: &mut String, r: &Report) {
    let _ = writeln!(s, "\nCopy ledger (bytes across the user/kernel boundary)");
    let b = &r.totals.bytes;
    for class in ByteClass::shown(b) {
        let look = class.look();
        let n = b.get(class);
        let _ = writeln!(
            s,
            "  {:<31} {:>11}  {:>16} B   {}",
            look.text_label,
            bytes(n),
            grouped(n),
            look.text_via
        );
    }
}

fn cost(s: &mut String, r: &Report) {
    let t = &r.totals;
    let _ = writeln!(s, "\nCost");
    let _ = writeln!(
        s,
        "  mode switches      {:>12}   (derived: {MODE_SWITCH_RULE})",
        grouped(t.mode_switches)
    );
    let _ = writeln!(
        s,
        "  context switches   {:>12}   ({} voluntary, {} involuntary)",
        grouped(t.context_switches.total()),
        grouped(t.context_switches.voluntary),
        grouped(t.context_switches.involuntary)
    );
    let _ = writeln!(
        s,
        "  page faults        {:>12}   ({})",
        grouped(t.page_faults.total()),
        fault_split(&t.page_faults)
    );
    let _ = writeln!(
        s,
        "  syscalls           {:>12}   ({} failed)",
        grouped(t.syscalls),
        grouped(t.errors)
    );
    let _ = writeln!(s, "  time in syscalls   {}", call_time(t, r.timing));
    let _ = writeln!(s, "  CPU time           {}", cpu_time(r));
    if !r.timing.per_call() {
        let _ = writeln!(
            s,
            "  (per-call timing off: costs in CPU time use the system CPU time above)"
        );
    }
}

/// The syscall table, grouped as in the HTML.
fn syscalls(s: &mut String, r: &Report) {
    if r.syscalls.is_empty() {
        let _ = writeln!(s, "\n  (no syscalls while traced)");
        return;
    }
    let [on, off, avg] = TIME_COLUMNS;
    let _ = writeln!(
        s,
        "\n  {:<18} {:>10} {:>7} {:>11} {:>10} {:>10} {:>9}  by fd kind",
        "syscall", "calls", "errors", "bytes", on, off, avg
    );
    for group in groups(r) {
        let _ = writeln!(s, "  {}", group.title);
        for (name, e) in &group.shown {
            syscall_row(s, name, e, group.timing);
        }
        if !group.folded.is_empty() {
            let calls: u64 = group.folded.iter().map(|(_, e)| e.counts.count).sum();
            let _ = writeln!(
                s,
                "    ({} more syscalls, {} calls: see the JSON report)",
                group.folded.len(),
                grouped(calls)
            );
        }
    }
}

fn processes(s: &mut String, r: &Report) {
    let _ = writeln!(
        s,
        "\n  {:<8} {:<16} {:>10} {:>11} {:>11} {:>11} {:>10} {:>10}",
        "pid", "process", "syscalls", "to user", "from user", "zero-copy", "user CPU", "sys CPU"
    );
    let shown = busiest(&r.processes, PROCESS_ROWS);
    for p in &shown {
        let b = &p.totals.bytes;
        let pid = match p.summed {
            0 => p.pid.to_string(),
            n => format!("{n}x"),
        };
        let _ = writeln!(
            s,
            "  {:<8} {:<16} {:>10} {:>11} {:>11} {:>11} {:>10} {:>10}",
            pid,
            printable(&p.comm),
            grouped(p.totals.syscalls),
            bytes(b.copied_to_user),
            bytes(b.copied_from_user),
            bytes(b.zero_copy),
            cpu_cell(r, p.totals.cpu.user_ns),
            cpu_cell(r, p.totals.cpu.system_ns)
        );
    }
    if r.processes.len() > shown.len() {
        let _ = writeln!(
            s,
            "  ({} more rows: see the JSON report; a row of Nx sums N processes of one name)",
            grouped((r.processes.len() - shown.len()) as u64)
        );
    }
}

/// Rows of the rankings of a cgroup or machine run.
const TOP_ROWS: usize = 10;

/// A cgroup or the machine: the top processes and cgroups by CPU-copied
/// bytes and by zero-copy share.
fn top(s: &mut String, r: &Report) {
    let procs: Vec<(String, &Totals)> = r
        .processes
        .iter()
        .map(|p| {
            let who = match p.summed {
                0 => format!("{} {}", p.pid, p.comm),
                n => format!("{n}x {}", p.comm),
            };
            (who, &p.totals)
        })
        .collect();
    let cgroups: Vec<(String, &Totals)> = r
        .cgroups
        .iter()
        .map(|c| (format!("{} ({})", c.path, c.processes), &c.totals))
        .collect();
    let by_copied = |t: &Totals| t.bytes.cpu_copied() as f64;
    let by_share = |t: &Totals| t.bytes.zero_copy_share();
    ranking(s, "processes by CPU-copied bytes", &procs, by_copied);
    ranking(s, "processes by zero-copy share", &procs, by_share);
    ranking(
        s,
        "cgroups (processes) by CPU-copied bytes",
        &cgroups,
        by_copied,
    );
    ranking(
        s,
        "cgroups (processes) by zero-copy share",
        &cgroups,
        by_share,
    );
}

/// The TOP_ROWS rows with the highest non-zero `key`, highest first.
fn ranking(s: &mut String, title: &str, rows: &[(String, &Totals)], key: impl Fn(&Totals) -> f64) {
    let mut ranked: Vec<&(String, &Totals)> = rows.iter().filter(|(_, t)| key(t) > 0.0).collect();
    if ranked.is_empty() {
        return;
    }
    ranked.sort_by(|a, b| key(b.1).total_cmp(&key(a.1)).then(a.0.cmp(&b.0)));
    let _ = writeln!(
        s,
        "
  Top {title}
  {:<34} {:>10} {:>11} {:>11} {:>6} {:>9}",
        "", "syscalls", "CPU-copied", "zero-copy", "share", "faults"
    );
    for (who, t) in ranked.into_iter().take(TOP_ROWS) {
        let _ = writeln!(
            s,
            "  {:<34} {:>10} {:>11} {:>11} {:>5.0}% {:>9}",
            printable(who),
            grouped(t.syscalls),
            bytes(t.bytes.cpu_copied()),
            bytes(t.bytes.zero_copy),
            100.0 * t.bytes.zero_copy_share(),
            grouped(t.page_faults.total())
        );
    }
}

/// What tracing cost zc-trace itself.
fn tracing_cost(s: &mut String, r: &Report) {
    let c = &r.cost;
    if !c.bpf_stats {
        let _ = writeln!(
            s,
            "\n  zc-trace cost: probes not measured (--no-cost, or the kernel refused BPF statistics); collector CPU {}",
            duration_ns(c.collector_cpu_ns)
        );
    } else {
        let estimated = if c.sampled() {
            format!(
                "~{} probe runs (estimated from BPF statistics on {:.1}% of the run)",
                grouped(c.bpf_events),
                100.0 * c.bpf_stats_on_ns as f64 / c.bpf_stats_live_ns.max(1) as f64
            )
        } else {
            format!("{} probe runs", grouped(c.bpf_events))
        };
        let _ = writeln!(
            s,
            "\n  zc-trace cost: {estimated}, {:.0} ns each, {} CPU in total ({} in probes, {} in the collector)",
            c.ns_per_event(),
            duration_ns(c.bpf_run_time_ns + c.collector_cpu_ns),
            duration_ns(c.bpf_run_time_ns),
            duration_ns(c.collector_cpu_ns)
        );
    }
}

fn dropped(s: &mut String, r: &Report) {
    let lost: Vec<String> = r
        .dropped
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{k}: {}", grouped(*n)))
        .collect();
    if !lost.is_empty() {
        let _ = writeln!(
            s,
            "\n  WARNING: records lost in kernel ({}); the figures above are lower bounds",
            lost.join(", ")
        );
    }
}

fn footer(s: &mut String, r: &Report) {
    let _ = writeln!(
        s,
        "\n  {} Mode switches are derived; copies inside the kernel (page cache -> socket) are not visible to a syscall tracer; of the DMA, disk reads into the page cache and O_DIRECT are shown.",
        how_measured(r)
    );
}

fn target_line(r: &Report) -> String {
    match &r.target.command {
        Some(cmd) => format!("`{}` (pid {})", printable(&cmd.join(" ")), r.target.pid),
        None => printable(&r.target_name()).into_owned(),
    }
}

fn exit_line(r: &Report) -> String {
    match r.target.exit_code {
        Some(code) => format!(", exit code {code}"),
        None => String::new(),
    }
}

fn syscall_row(s: &mut String, name: &str, e: &SyscallEntry, timing: Timing) {
    let c = &e.counts;
    let cells = cells(e, timing);
    let _ = writeln!(
        s,
        "    {:<16} {:>10} {:>7} {:>11} {:>10} {:>10} {:>9}  {}",
        name,
        grouped(c.count),
        grouped(c.errors),
        cells.bytes,
        cells.on_cpu,
        cells.off_cpu,
        cells.avg,
        cells.kinds.join(", ")
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::report::{Counts, Target};

    #[test]
    fn shows_ledger_groups_and_drops() {
        let mut r = Report {
            target: Target {
                mode: "wrap".into(),
                command: Some(vec!["./srv".into()]),
                pid: 7,
                exit_code: Some(0),
                follow_forks: true,
                label: None,
                comm: None,
                ..Default::default()
            },
            duration_ns: 1_500_000_000,
            ..Default::default()
        };
        r.totals.bytes.copied_to_user = 64 << 20;
        r.syscalls.insert(
            "sendfile".into(),
            SyscallEntry {
                nr: 40,
                class: "zero_copy".into(),
                counts: Counts {
                    count: 3,
                    errors: 0,
                    bytes: 3 << 20,
                    time_ns: 3000,
                    on_cpu_ns: 1000,
                    off_cpu_ns: 2000,
                },
                by_fd_kind: [(
                    "file->socket".to_owned(),
                    Counts {
                        count: 3,
                        ..Default::default()
                    },
                )]
                .into(),
            },
        );
        r.dropped.insert("stats_map_full".into(), 2);
        r.cost = crate::model::report::Cost {
            bpf_stats: true,
            bpf_events: 1000,
            bpf_run_time_ns: 200_000,
            collector_cpu_ns: 1_000_000,
            ..Default::default()
        };
        let out = render(&r);
        assert!(
            out.contains("`./srv` (pid 7), 1.50 s, exit code 0"),
            "{out}"
        );
        assert!(out.contains("64.0 MiB"), "{out}");
        assert!(out.contains("67,108,864 B"), "{out}");
        assert!(out.contains("zero-copy\n    sendfile"), "{out}");
        assert!(out.contains("file->socket 3"), "{out}");
        assert!(out.contains("stats_map_full: 2"), "{out}");
        assert!(
            out.contains("zc-trace cost: 1,000 probe runs, 200 ns each, 1.2 ms CPU in total"),
            "{out}"
        );
        assert!(
            !out.contains("\n  copying\n"),
            "empty groups are left out: {out}"
        );
    }

    #[test]
    fn shows_zerocopy_and_cow_rows_only_when_non_zero() {
        let mut r = Report::default();
        let out = render(&r);
        for label in ["sent zero-copy", "zero-copy, copied later", "copy-on-write"] {
            assert!(!out.contains(label), "{label} shown at zero: {out}");
        }
        r.totals.bytes.zerocopy_sent = 64 << 20;
        r.totals.bytes.zerocopy_copied = 64 << 20;
        r.totals.bytes.cow_copied = 8192;
        let out = render(&r);
        assert!(out.contains("sent zero-copy (pinned)"), "{out}");
        assert!(out.contains("zero-copy, copied later"), "{out}");
        assert!(out.contains("copy-on-write copies"), "{out}");
        assert!(out.contains("8,192 B"), "{out}");
    }
}
