//! The lab's table for the terminal: per method, each measured figure
//! beside the textbook's, a `!` where they disagree.

use std::fmt::Write as _;

use crate::model::bytes::ByteClass;
use crate::model::ledger::MODE_SWITCH_RULE;
use crate::render::format::{bytes, duration_ns, grouped};

use super::{
    measure::Sample,
    results::{LabResults, MethodResult, TOLERANCE},
};

/// Width of the method column: the longest label ("io_uring read+send")
/// and a space.
const METHOD_W: usize = 19;
/// Width of a measured value (with its mark) and of a model value.
const MEAS_W: usize = 9;
const MODEL_W: usize = 7;

pub fn render(r: &LabResults) -> String {
    let mut s = String::new();
    title(&mut s, r);
    column_heads(&mut s);
    for m in &r.methods {
        let _ = writeln!(s, "{}", row(m, r.size));
    }
    disk_reads(&mut s, r);
    zerocopy_sends(&mut s, r);
    per_method(&mut s, r);
    legend(&mut s, r);
    s
}

/// What was sent, how, and what the marks mean.
fn title(s: &mut String, r: &LabResults) {
    let _ = writeln!(
        s,
        "\nzc-trace lab: {} test file ({} B), {} chunks, loopback TCP, page cache {}, median of {} run{}",
        bytes(r.size),
        grouped(r.size),
        bytes(r.chunk),
        if r.cold {
            "dropped before each run (--cold)"
        } else {
            "warm"
        },
        r.runs,
        plural(r.runs.into())
    );
    let _ = writeln!(
        s,
        "measured on this machine, sender only, in kernel | model = the textbook (zero-copy-model.md) | \
         ! = differs by more than {:.0}%",
        TOLERANCE * 100.0
    );
}

/// Two header lines: the figure and its unit, then measured / model.
fn column_heads(s: &mut String) {
    let pairs = [
        "syscalls / MiB",
        "mode sw. / MiB",
        "CPU-copied / B",
        "zero-copy / B",
        "faults / MiB",
    ];
    let pair_w = MEAS_W + MODEL_W;
    let mut h1 = format!("\n{:<METHOD_W$}", "");
    let mut h2 = format!("{:<METHOD_W$}", "method");
    for p in pairs {
        let _ = write!(h1, "  {p:>pair_w$}");
        let _ = write!(h2, "  {:>MEAS_W$}{:>MODEL_W$}", "measured", "model");
    }
    let _ = write!(
        h1,
        "  {:>8}  {:>8}  {:>9}  {:>9}",
        "ctx sw.", "MiB/s", "CPU / GiB", "in-kernel"
    );
    let _ = write!(
        h2,
        "  {:>8}  {:>8}  {:>9}  {:>9}",
        "", "", "user+sys", "copies/B*"
    );
    let _ = writeln!(s, "{h1}");
    let _ = writeln!(s, "{h2}");
}

/// With --cold: the DMA from disk per byte delivered, by method.
fn disk_reads(s: &mut String, r: &LabResults) {
    if !r.cold {
        return;
    }
    let per_byte: Vec<String> = r
        .methods
        .iter()
        .map(|m| {
            let delivered = m.delivered.max(1) as f64;
            format!(
                "{} {:.2}",
                m.method.label(),
                m.measured.bytes[ByteClass::DiskRead] as f64 / delivered
            )
        })
        .collect();
    let line = format!(
        "disk -> page cache per byte delivered (measured: the textbook's first DMA copy; the NIC's DMA \
         has no counterpart on loopback): {}",
        per_byte.join(", ")
    );
    let _ = writeln!(s);
    wrap(s, &line, "  ", "    ");
}

/// The methods that sent with MSG_ZEROCOPY: pinned and copied later.
fn zerocopy_sends(s: &mut String, r: &LabResults) {
    let pinned: Vec<String> = r
        .methods
        .iter()
        .filter(|m| m.measured.bytes[ByteClass::ZerocopySent] > 0)
        .map(|m| {
            let delivered = m.delivered.max(1) as f64;
            format!(
                "{} pinned {:.2} per byte delivered, copied later {:.2}",
                m.method.label(),
                m.measured.bytes[ByteClass::ZerocopySent] as f64 / delivered,
                m.measured.bytes[ByteClass::ZerocopyCopied] as f64 / delivered
            )
        })
        .collect();
    if !pinned.is_empty() {
        let line = format!(
            "MSG_ZEROCOPY (measured: the send calls, and the completions the sender read): {}. No CPU copy at \
             the call; the kernel's deferred copy (loopback delivers to a local socket, which copies) is what \
             the completions report; with a scatter-gather NIC the textbook's 0.",
            pinned.join(", ")
        );
        let _ = writeln!(s);
        wrap(s, &line, "  ", "    ");
    }
}

/// What each method called, and the model's note on it.
fn per_method(s: &mut String, r: &LabResults) {
    let label_indent = " ".repeat(2 + METHOD_W);
    let _ = writeln!(
        s,
        "\n  what each method called per run (baseline subtracted, median)"
    );
    for m in &r.methods {
        let first = format!("  {:<METHOD_W$}", m.method.label());
        wrap(s, &calls(&m.measured), &first, &label_indent);
    }
    let _ = writeln!(s, "\n  model notes");
    for m in &r.methods {
        let first = format!("  {:<METHOD_W$}", m.method.label());
        wrap(s, m.model.note, &first, &label_indent);
    }
}

/// The notes under the table: how it was measured, and the run.
fn legend(s: &mut String, r: &LabResults) {
    let every = r.methods.iter().all(|m| m.delivered == r.size);
    let mut legend = vec![
        "* in-kernel copies per byte are the model's (page cache -> socket buffer, or file -> file for \
         copy_file_range): a syscall tracer cannot see them."
            .to_owned(),
        format!(
            "Baseline subtracted: `lab-sender noop` (same sender, same start-up, files, pipe, connection and \
             result file, no transfer) was traced {} time{} and its median taken off every row (syscall, fd \
             kind), byte total, fault and context switch. Senders run without address-space randomisation, so \
             their start-up is the same every run.",
            r.baseline_runs,
            plural(r.baseline_runs.into())
        ),
        format!(
            "zero-copy / B counts bytes returned by zero-copy calls: splice moves each byte twice (file -> pipe -> \
             socket). Mode switches are derived ({MODE_SWITCH_RULE}); the textbook adds 2 per \
             fault, but faults inside write() are taken in kernel mode."
        ),
        "MiB/s and CPU time: from the sender's first transfer call until the receiver (a thread of zc-trace, \
         not traced) had drained and checked everything. copy_file_range copies file -> file, not to the socket."
            .to_owned(),
        format!(
            "{} every run; {} method{} x {} run{} + {} baseline run{} in {}.",
            if every {
                "Every byte delivered intact (count and checksum) in"
            } else {
                "NOT every byte delivered in"
            },
            r.methods.len(),
            plural(r.methods.len() as u64),
            r.runs,
            plural(r.runs.into()),
            r.baseline_runs,
            plural(r.baseline_runs.into()),
            duration_ns(r.elapsed_ns)
        ),
    ];
    legend.extend(
        r.notes
            .iter()
            .filter(|n| n.starts_with("WARNING") || n.starts_with("NOTE"))
            .cloned(),
    );
    let _ = writeln!(s);
    for p in legend {
        wrap(s, &p, "  ", "    ");
    }
}

fn row(m: &MethodResult, size: u64) -> String {
    let mut s = format!("{:<METHOD_W$}", m.method.label());
    for f in m.figures(size) {
        let meas = format!("{}{}", fig(f.measured), if f.disagrees { "!" } else { " " });
        let _ = write!(s, "  {meas:>MEAS_W$}{:>MODEL_W$}", fig(f.model));
    }
    let _ = write!(
        s,
        "  {:>8}  {:>8}  {:>9}  {:>9}",
        grouped(m.measured.context_switches().max(0) as u64),
        fig(m.mib_per_s),
        cpu(m.cpu_ns_per_gib),
        fig(m.model.in_kernel_copies / size.max(1) as f64),
    );
    s.trim_end().to_owned()
}

/// A figure in as few characters as it needs: 1,234 / 32.0 / 2.00 / 0.062.
pub fn fig(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        "0".into()
    } else if a >= 100.0 {
        let g = grouped(a.round() as u64);
        if v < 0.0 { format!("-{g}") } else { g }
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else if a >= 0.001 {
        format!("{v:.3}")
    } else {
        format!("{}<0.001", if v < 0.0 { "-" } else { "" })
    }
}

/// Text wider than this is wrapped (the table itself is not).
const TEXT_W: usize = 110;

/// Writes `text` word-wrapped at TEXT_W: `first` before the first line,
/// `rest` before the others.
fn wrap(s: &mut String, text: &str, first: &str, rest: &str) {
    let mut line = first.to_owned();
    let mut empty = true;
    for word in text.split_whitespace() {
        // A unit stays with its number ("8.93 s").
        let unit = matches!(
            word.trim_end_matches(['.', ',', ';', ')']),
            "B" | "KiB" | "MiB" | "GiB" | "ns" | "us" | "ms" | "s"
        );
        if !empty && !unit && line.chars().count() + 1 + word.chars().count() > TEXT_W {
            let _ = writeln!(s, "{}", line.trim_end());
            line = rest.to_owned();
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    let _ = writeln!(s, "{}", line.trim_end());
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn cpu(ns: f64) -> String {
    if ns <= 0.0 {
        "0".into()
    } else {
        duration_ns(ns.round() as u64)
    }
}

/// "read/file 64 calls 4.0 MiB, write/socket 64 calls 4.0 MiB".
fn calls(s: &Sample) -> String {
    if s.calls.is_empty() {
        return "(nothing beyond the baseline)".into();
    }
    s.calls
        .iter()
        .map(|(k, r)| {
            let count = if r.count < 0 {
                format!("-{}", grouped(r.count.unsigned_abs()))
            } else {
                grouped(r.count as u64)
            };
            let call_s = if r.count.abs() == 1 { "call" } else { "calls" };
            match r.bytes {
                0 => format!("{k} {count} {call_s}"),
                b if b < 0 => format!("{k} {count} {call_s} -{}", bytes(b.unsigned_abs())),
                b => format!("{k} {count} {call_s} {}", bytes(b as u64)),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::results::tests::results;

    #[test]
    fn prose_is_wrapped() {
        let mut s = String::new();
        let text = "word ".repeat(60);
        wrap(&mut s, &text, "  label ", "        ");
        assert!(s.lines().count() > 1, "{s}");
        assert!(s.lines().all(|l| l.len() <= TEXT_W), "{s}");
        assert!(s.starts_with("  label word"), "{s}");
        assert!(
            s.lines().skip(1).all(|l| l.starts_with("        word")),
            "{s}"
        );
        assert_eq!(s.split_whitespace().filter(|w| *w == "word").count(), 60);
        // Units are not separated from their numbers.
        let mut s = String::new();
        wrap(&mut s, &format!("{}8.93 s.", "x ".repeat(53)), "", "");
        assert!(s.contains("8.93 s."), "{s}");
    }

    #[test]
    fn zerocopy_sends_get_their_line_only_when_there_are_some() {
        let mut r = results();
        assert!(!render(&r).contains("MSG_ZEROCOPY"));
        r.methods[0].measured.bytes[ByteClass::ZerocopySent] = r.methods[0].delivered as i64;
        r.methods[0].measured.bytes[ByteClass::ZerocopyCopied] = r.methods[0].delivered as i64 / 2;
        let out = render(&r);
        let flat = out.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            flat.contains("read+write pinned 1.00 per byte delivered, copied later 0.50"),
            "{out}"
        );
    }

    #[test]
    fn figures_in_few_characters() {
        assert_eq!(fig(0.0), "0");
        assert_eq!(fig(1234.4), "1,234");
        assert_eq!(fig(32.0), "32.0");
        assert_eq!(fig(2.0), "2.00");
        assert_eq!(fig(0.0625), "0.062");
        assert_eq!(fig(0.0001), "<0.001");
        assert_eq!(fig(-3.5), "-3.50");
    }

    #[test]
    fn one_row_per_method_with_marks() {
        let out = render(&results());
        let rw = out
            .lines()
            .find(|l| l.starts_with("read+write"))
            .expect(&out);
        // syscalls 32 beside 32, no mark; faults 4 per MiB beside 0, marked.
        assert!(rw.contains("32.0    32.0"), "{rw}");
        assert!(rw.contains("4.00!"), "{rw}");
        assert!(rw.contains("1,000"), "MiB/s: {rw}");
        assert!(rw.contains("1.02 s"), "CPU per GiB: {rw}");
        let sf = out
            .lines()
            .find(|l| l.starts_with("sendfile "))
            .expect(&out);
        assert!(!sf.contains('!'), "{sf}");
        assert!(
            out.contains("read/file 64 calls 4.0 MiB, write/socket 64 calls 4.0 MiB"),
            "{out}"
        );
        assert!(out.contains("Baseline subtracted"), "{out}");
        assert!(out.contains("in-kernel"), "{out}");
        // Header and rows line up: every row is as wide as the header at most.
        let header = out.lines().find(|l| l.starts_with("method")).unwrap();
        assert!(rw.len() <= header.len() + 2, "{header}\n{rw}");
    }
}
