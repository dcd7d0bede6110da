//! The comparison table for the terminal.

use std::fmt::Write as _;

use crate::model::{
    compare::{Basis, normalise},
    report::{CpuSource, Report},
};

use super::format::{bytes, duration_ns, printable};

pub fn table(runs: &[(String, Report)], basis: Basis) -> String {
    let mut s = String::new();
    let width = runs
        .iter()
        .map(|(l, _)| l.len())
        .max()
        .unwrap_or(3)
        .clamp(3, 32);
    let row = |s: &mut String, cells: [&str; 10]| {
        let [a, b, c, d, e, f, g, h, i, j] = cells;
        let _ = writeln!(
            s,
            "{a:<width$} {b:>11} {c:>10} {d:>10} {e:>11} {f:>10} {g:>10} {h:>10} {i:>11} {j:>11}"
        );
    };
    let noun = basis.noun();
    s.push('\n');
    row(
        &mut s,
        [
            "run",
            noun,
            "syscalls",
            "mode sw.",
            "CPU copies",
            "zero-copy",
            "faults",
            "ctx sw.",
            "CPU time",
            "wall",
        ],
    );
    let (mib, byte) = ("per MiB", "per byte");
    row(&mut s, ["", "", mib, mib, byte, byte, mib, mib, mib, mib]);
    let mut sources = Vec::new();
    for (i, (label, r)) in runs.iter().enumerate() {
        let n = normalise(r, basis.bytes(i, r));
        let f =
            |v: Option<f64>, digits: usize| v.map_or("n/a".to_owned(), |v| format!("{v:.digits$}"));
        let time = |v: Option<f64>| v.map_or("n/a".to_owned(), |ns| duration_ns(ns as u64));
        let mut cpu = time(n.cpu_ns_per_mib);
        if n.cpu_source == Some(CpuSource::SystemTime) {
            cpu.push('*');
        }
        sources.extend(n.cpu_source.filter(|s| !sources.contains(s)));
        row(
            &mut s,
            [
                &truncate(&printable(label), width),
                &bytes(n.basis_bytes),
                &f(n.syscalls_per_mib, 1),
                &f(n.mode_switches_per_mib, 1),
                &f(n.cpu_copies_per_byte, 2),
                &f(n.zero_copy_per_byte, 2),
                &f(n.page_faults_per_mib, 1),
                &f(n.context_switches_per_mib, 2),
                &cpu,
                &time(n.wall_ns_per_mib),
            ],
        );
    }
    let _ = writeln!(s, "\nper MiB or byte {noun}: {}.", basis.definition());
    for source in sources {
        let mark = if source == CpuSource::SystemTime {
            "* "
        } else {
            ""
        };
        let _ = writeln!(s, "{mark}CPU time: {}.", source.describe());
    }
    let _ = writeln!(
        s,
        "CPU time is the cost; wall adds the time blocked or waiting in syscalls. Mode switches are derived."
    );
    s
}

fn truncate(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(width - 1).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_per_run() {
        let mut a = Report::default();
        a.totals.bytes.copied_to_user = 1 << 20;
        a.totals.syscalls = 16;
        let mut b = Report::default();
        b.totals.bytes.zero_copy = 1 << 20;
        b.totals.syscalls = 2;
        b.timing = crate::model::report::Timing::Off;
        let out = table(
            &[("read-write".into(), a), ("sendfile".into(), b)],
            Basis::Moved,
        );
        assert!(out.contains("read-write"), "{out}");
        assert!(
            out.lines()
                .any(|l| l.starts_with("sendfile") && l.contains(" 2.0 ")),
            "{out}"
        );
        assert!(out.contains("per MiB or byte moved: moved = "), "{out}");
        assert!(out.contains("* CPU time: system CPU time"), "{out}");
    }
}
