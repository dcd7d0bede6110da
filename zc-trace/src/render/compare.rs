//! The comparison table for the terminal.

use std::fmt::Write as _;

use crate::model::{
    compare::{moved_bytes, normalise},
    report::Report,
};

use super::format::{bytes, duration_ns, printable};

pub fn table(runs: &[(String, Report)]) -> String {
    let mut s = String::new();
    let width = runs
        .iter()
        .map(|(l, _)| l.len())
        .max()
        .unwrap_or(3)
        .clamp(3, 32);
    let _ = writeln!(
        s,
        "\n{:<width$} {:>11} {:>10} {:>12} {:>12} {:>10} {:>10} {:>10} {:>12}",
        "run",
        "moved",
        "syscalls",
        "mode sw.",
        "CPU-copied",
        "zero-copy",
        "faults",
        "ctx sw.",
        "kernel time"
    );
    let _ = writeln!(
        s,
        "{:<width$} {:>11} {:>10} {:>12} {:>12} {:>10} {:>10} {:>10} {:>12}",
        "", "", "per MiB", "per MiB", "per byte", "per byte", "per MiB", "per MiB", "per MiB"
    );
    for (label, r) in runs {
        let n = normalise(r, moved_bytes(r));
        let f =
            |v: Option<f64>, digits: usize| v.map_or("n/a".to_owned(), |v| format!("{v:.digits$}"));
        let _ = writeln!(
            s,
            "{:<width$} {:>11} {:>10} {:>12} {:>12} {:>10} {:>10} {:>10} {:>12}",
            truncate(&printable(label), width),
            bytes(n.basis_bytes),
            f(n.syscalls_per_mib, 1),
            f(n.mode_switches_per_mib, 1),
            f(n.copied_per_byte, 3),
            f(n.zero_copy_per_byte, 3),
            f(n.page_faults_per_mib, 1),
            f(n.context_switches_per_mib, 2),
            n.kernel_ns_per_mib
                .map_or("n/a".to_owned(), |ns| duration_ns(ns as u64)),
        );
    }
    let _ = writeln!(
        s,
        "\nmoved = copied by CPU (both directions) + moved zero-copy; mode switches are derived."
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
        let out = table(&[("read-write".into(), a), ("sendfile".into(), b)]);
        assert!(out.contains("read-write"), "{out}");
        assert!(
            out.lines()
                .any(|l| l.starts_with("sendfile") && l.contains(" 2.0 ")),
            "{out}"
        );
    }
}
