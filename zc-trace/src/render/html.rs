//! report.html: one self-contained page (inline CSS and SVG, no scripts, no
//! external resources) with the summary tables and the charts.

use std::fmt::Write as _;

use anyhow::Result;

use super::charts::{self, byte_colour, class_colour, hex, metrics};
use super::format::{
    bytes, call_time, cpu_cell, cpu_time, duration_ns, fault_split, grouped, printable,
};
use super::groups::{TIME_COLUMNS, cells, groups};
use crate::model::bytes::ByteClass;
use crate::model::compare::Basis;
use crate::model::ledger::MODE_SWITCH_RULE;
use crate::model::report::{Report, SyscallEntry, Timing};
use zc_trace_format::utc_ms as utc;

const STYLE: &str = "\
body{font-family:'DejaVu Sans',system-ui,sans-serif;color:#212121;margin:0 auto;max-width:1320px;padding:0 20px 40px}
h1{margin:24px 0 4px}h2{margin:32px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#666;margin:2px 0}.target{margin:4px 0 8px;font-size:17px;overflow-wrap:anywhere}
table{border-collapse:collapse;margin:8px 0;font-size:14px}
th,td{padding:4px 10px;text-align:left;border-bottom:1px solid #eee;vertical-align:top}
th{background:#f5f5f5}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
tr.group td{background:#fafafa;font-weight:bold}
.swatch{display:inline-block;width:12px;height:12px;margin-right:6px;vertical-align:-1px}
.warn{background:#fff3cd;border:1px solid #e0c36c;padding:8px 12px}
figure{margin:16px 0}figure svg{width:100%;height:auto;border:1px solid #eee}
figcaption{font-weight:bold;margin-bottom:4px}
details summary{cursor:pointer;color:#666;font-size:14px}
";

/// The full report of one run as an HTML document.
pub fn render(report: &Report) -> Result<String> {
    let svgs = charts::run_svgs(report)?;
    let target = target(report);
    let mut s = String::new();
    head(&mut s, &format!("zc-trace: {target}"));
    let _ = writeln!(
        s,
        "<h1>zc-trace report</h1>\n<p class=target><code>{}</code></p>",
        esc(&target)
    );
    let mut meta = format!(
        "{} mode, traced for {}, started {}",
        esc(&report.target.mode),
        duration_ns(report.duration_ns),
        utc(report.started_at_unix_ms)
    );
    if let Some(code) = report.target.exit_code {
        let _ = write!(meta, ", exit code {code}");
    }
    let _ = writeln!(s, "<p class=meta>{meta}</p>");
    let _ = writeln!(
        s,
        "<p class=meta>{} {}, schema version {}</p>",
        esc(&report.tool.name),
        esc(&report.tool.version),
        report.schema_version
    );

    ledger(&mut s, report);
    cost(&mut s, report);
    syscalls(&mut s, report);
    if report.processes.len() > 1 {
        processes(&mut s, report);
    }
    dropped(&mut s, report);
    if !report.notes.is_empty() {
        let _ = writeln!(s, "<h2>Notes</h2><ul>");
        for note in &report.notes {
            let _ = writeln!(s, "<li>{}</li>", esc(note));
        }
        let _ = writeln!(s, "</ul>");
    }

    let _ = writeln!(s, "<h2 id=charts>Charts</h2>");
    for (title, svg) in &svgs {
        figure(&mut s, title, svg);
    }
    let _ = writeln!(s, "</body></html>");
    Ok(s)
}

/// The comparison of several runs (label, report): a table of the
/// normalised figures and the comparison chart.
pub fn render_compare(runs: &[(String, Report)], basis: Basis) -> Result<String> {
    let (title, svg) = charts::compare_svg(runs, basis)?;
    let noun = basis.noun();
    let mut s = String::new();
    let labels: Vec<&str> = runs.iter().map(|(l, _)| l.as_str()).collect();
    head(&mut s, &format!("zc-trace: {}", labels.join(" vs ")));
    let _ = writeln!(s, "<h1>zc-trace: {}</h1>", esc(&labels.join(" vs ")));
    let _ = writeln!(
        s,
        "<p class=meta>{}; CPU time is on-CPU time in syscalls (system CPU time when calls were not timed); mode switches are derived</p>",
        esc(basis.definition())
    );
    let _ = writeln!(
        s,
        "<h2>Runs</h2><table><tr><th>run</th><th>target</th><th class=n>duration</th><th class=n>{noun}</th><th class=n>syscalls</th></tr>"
    );
    for (i, (label, r)) in runs.iter().enumerate() {
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td></tr>",
            esc(label),
            esc(&target(r)),
            duration_ns(r.duration_ns),
            bytes(basis.bytes(i, r)),
            grouped(r.totals.syscalls)
        );
    }
    let _ = writeln!(s, "</table>");

    let _ = write!(s, "<h2>Per MiB {noun}</h2><table><tr><th>figure</th>");
    for label in &labels {
        let _ = write!(s, "<th class=n>{}</th>", esc(label));
    }
    let _ = writeln!(s, "</tr>");
    let all: Vec<_> = runs
        .iter()
        .enumerate()
        .map(|(i, (_, r))| metrics(r, basis.bytes(i, r), noun))
        .collect();
    for (i, m) in all.first().into_iter().flatten().enumerate() {
        let _ = write!(s, "<tr><td>{}</td>", esc(&m.name));
        for run in &all {
            let v = run[i].label();
            let _ = write!(s, "<td class=n>{v}</td>");
        }
        let _ = writeln!(s, "</tr>");
    }
    let _ = writeln!(s, "</table>");
    let _ = writeln!(s, "<h2>Chart</h2>");
    figure(&mut s, &title, &svg);
    let _ = writeln!(s, "</body></html>");
    Ok(s)
}

fn head(s: &mut String, title: &str) {
    let _ = writeln!(
        s,
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>\n{STYLE}</style></head><body>",
        esc(title)
    );
}

fn figure(s: &mut String, title: &str, svg: &str) {
    // The SVG goes in as it is: plotters writes a complete <svg> element
    // with its own view box and escapes its text.
    let svg = svg.trim_start_matches(|c| c != '<');
    let svg = svg.strip_prefix("<?xml").map_or(svg, |rest| {
        rest.split_once("?>")
            .map_or(svg, |(_, after)| after.trim_start())
    });
    let id = title.to_lowercase().replace(' ', "-");
    let _ = writeln!(
        s,
        "<figure id=\"{}\"><figcaption>{}</figcaption>\n{svg}</figure>",
        esc(&id),
        esc(title)
    );
}

fn ledger(s: &mut String, r: &Report) {
    let b = &r.totals.bytes;
    let _ = writeln!(
        s,
        "<h2>Copy ledger</h2><table><tr><th>path</th><th class=n>bytes</th><th class=n>exact</th><th>by</th></tr>"
    );
    for class in ByteClass::shown(b) {
        let look = class.look();
        let n = b.get(class);
        let _ = writeln!(
            s,
            "<tr><td><span class=swatch style=\"background:{}\"></span>{}</td><td class=n>{}</td><td class=n>{} B</td><td>{}</td></tr>",
            hex(byte_colour(class)),
            esc(look.label),
            bytes(n),
            grouped(n),
            esc(look.via)
        );
    }
    let _ = writeln!(s, "</table>");
}

fn cost(s: &mut String, r: &Report) {
    let t = &r.totals;
    let cs = &t.context_switches;
    let pf = &t.page_faults;
    let rows = [
        (
            "syscalls".to_owned(),
            grouped(t.syscalls),
            format!("{} failed", grouped(t.errors)),
        ),
        (
            "time in syscalls".to_owned(),
            duration_ns(t.on_cpu_ns),
            call_time(t, r.timing),
        ),
        (
            "CPU time".to_owned(),
            duration_ns(t.cpu.total()),
            cpu_time(r),
        ),
        (
            "mode switches (derived)".to_owned(),
            grouped(t.mode_switches),
            MODE_SWITCH_RULE.to_owned(),
        ),
        (
            "context switches".to_owned(),
            grouped(cs.total()),
            format!(
                "{} voluntary, {} involuntary",
                grouped(cs.voluntary),
                grouped(cs.involuntary)
            ),
        ),
        (
            "page faults".to_owned(),
            grouped(pf.total()),
            fault_split(pf),
        ),
    ];
    let _ = writeln!(
        s,
        "<h2>Cost</h2><table><tr><th></th><th class=n>count</th><th></th></tr>"
    );
    for (what, n, detail) in rows {
        let _ = writeln!(
            s,
            "<tr><td>{what}</td><td class=n>{n}</td><td>{detail}</td></tr>"
        );
    }
    let _ = writeln!(s, "</table>");
}

fn syscalls(s: &mut String, r: &Report) {
    let _ = writeln!(s, "<h2>Syscalls</h2>");
    if r.syscalls.is_empty() {
        let _ = writeln!(s, "<p>No syscall was traced.</p>");
        return;
    }
    let [on, off, avg] = TIME_COLUMNS;
    let header = format!(
        "<tr><th>syscall</th><th class=n>calls</th><th class=n>errors</th><th class=n>bytes</th>\
         <th class=n>{on}</th><th class=n>{off}</th><th class=n>{avg}</th><th>by fd kind</th></tr>"
    );
    let _ = writeln!(s, "<table>{header}");
    let mut folded: Vec<(&str, &SyscallEntry)> = Vec::new();
    for group in groups(r) {
        let _ = writeln!(s, "<tr class=group><td colspan=8>{}</td></tr>", group.title);
        for (name, e) in &group.shown {
            syscall_row(s, name, e, group.timing);
        }
        folded.extend(group.folded);
    }
    let _ = writeln!(s, "</table>");
    if !folded.is_empty() {
        let calls: u64 = folded.iter().map(|(_, e)| e.counts.count).sum();
        let _ = writeln!(
            s,
            "<details><summary>{} more syscalls, {} calls</summary><table>{header}",
            folded.len(),
            grouped(calls)
        );
        for (name, e) in folded {
            syscall_row(s, name, e, r.timing);
        }
        let _ = writeln!(s, "</table></details>");
    }
}

fn syscall_row(s: &mut String, name: &str, e: &SyscallEntry, timing: Timing) {
    let c = &e.counts;
    let cells = cells(e, timing);
    let kinds: Vec<String> = cells.kinds.iter().map(|k| esc(k)).collect();
    let _ = writeln!(
        s,
        "<tr><td><span class=swatch style=\"background:{}\"></span>{}</td><td class=n>{}</td><td class=n>{}</td>\
         <td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td>{}</td></tr>",
        hex(class_colour(e.class)),
        esc(name),
        grouped(c.count),
        grouped(c.errors),
        cells.bytes,
        cells.on_cpu,
        cells.off_cpu,
        cells.avg,
        kinds.join(", ")
    );
}

fn processes(s: &mut String, r: &Report) {
    let _ = writeln!(
        s,
        "<h2>Processes</h2><table><tr><th class=n>pid</th><th class=n>ppid</th><th>process</th><th class=n>syscalls</th>\
         <th class=n>kernel → user</th><th class=n>user → kernel</th><th class=n>zero-copy</th><th class=n>mapped</th>\
         <th class=n>page faults</th><th class=n>ctx switches</th><th class=n>user CPU</th><th class=n>system CPU</th></tr>"
    );
    for p in &r.processes {
        let t = &p.totals;
        let b = &t.bytes;
        let _ = writeln!(
            s,
            "<tr><td class=n>{}</td><td class=n>{}</td><td>{}</td><td class=n>{}</td><td class=n>{}</td>\
             <td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{}</td>\
             <td class=n>{}</td><td class=n>{}</td></tr>",
            p.pid,
            p.ppid,
            esc(&p.comm),
            grouped(t.syscalls),
            bytes(b.copied_to_user),
            bytes(b.copied_from_user),
            bytes(b.zero_copy),
            bytes(b.mapped),
            grouped(t.page_faults.total()),
            grouped(t.context_switches.total()),
            cpu_cell(r, t.cpu.user_ns),
            cpu_cell(r, t.cpu.system_ns)
        );
    }
    let _ = writeln!(s, "</table>");
}

fn dropped(s: &mut String, r: &Report) {
    let lost: Vec<String> = r
        .dropped
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{}: {}", esc(k), grouped(*n)))
        .collect();
    if !lost.is_empty() {
        let _ = writeln!(
            s,
            "<p class=warn><b>Records lost in kernel</b> ({}): the figures above are lower bounds.</p>",
            lost.join(", ")
        );
    }
}

fn target(r: &Report) -> String {
    match &r.target.command {
        Some(cmd) if !cmd.is_empty() => format!("{} (pid {})", cmd.join(" "), r.target.pid),
        _ => r.target_name(),
    }
}

fn esc(text: &str) -> String {
    zc_trace_format::xml_escape(&printable(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::charts::tests::report;

    /// Every inline <svg> element, as text.
    fn svgs(html: &str) -> Vec<&str> {
        html.match_indices("<svg")
            .map(|(start, _)| {
                let end =
                    html[start..].find("</svg>").expect("closed svg") + start + "</svg>".len();
                &html[start..end]
            })
            .collect()
    }

    fn self_contained(html: &str) {
        for external in ["<script", "<link", "src=", "href=", "url(", "@import"] {
            assert!(!html.contains(external), "external resource: {external}");
        }
    }

    #[test]
    fn report_has_tables_titles_and_inline_svg() {
        let mut r = report(2_000_000_000, 20);
        let mut child = r.processes[0].clone();
        child.pid += 1;
        child.comm = "child".into();
        r.processes.push(child);
        r.notes.push("mode_switches is derived".into());
        r.dropped.insert("stats_map_full".into(), 3);
        let html = render(&r).unwrap();
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.trim_end().ends_with("</html>"));
        self_contained(&html);
        for title in ["Copy ledger", "Timeline", "Syscalls", "Processes"] {
            assert!(
                html.contains(&format!("<figcaption>{title}</figcaption>")),
                "{title}"
            );
        }
        for section in [
            "<h2>Cost</h2>",
            "<h2>Notes</h2>",
            "zero-copy",
            "mapping",
            "other",
        ] {
            assert!(html.contains(section), "{section}");
        }
        assert!(html.contains("cp big.iso /tmp/ (pid 4242)"));
        assert!(html.contains("67,108,864 B"));
        assert!(html.contains("stats_map_full: 3"));
        let inline = svgs(&html);
        assert_eq!(inline.len(), 5);
        for svg in inline {
            roxmltree::Document::parse(svg).expect("inline SVG parses");
        }
    }

    #[test]
    fn odd_input_is_escaped_and_does_not_panic() {
        let mut r = Report::default();
        r.target.command = Some(vec!["<script>alert(1)</script>".into(), "a&b".into()]);
        let html = render(&r).unwrap();
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains("No syscall was traced"));
        assert!(
            !html.contains("<h2>Processes</h2>"),
            "one process or none: no table"
        );
        self_contained(&html);
        for svg in svgs(&html) {
            roxmltree::Document::parse(svg).expect("inline SVG parses");
        }
    }

    #[test]
    fn compare_of_two_runs() {
        let a = report(1_000_000_000, 10);
        let mut b = report(3_000_000_000, 30);
        b.totals.bytes.zero_copy = 0;
        let html = render_compare(
            &[("sendfile".into(), a), ("read-write".into(), b)],
            Basis::Moved,
        )
        .unwrap();
        self_contained(&html);
        assert!(html.contains("sendfile") && html.contains("read-write"));
        assert!(html.contains("syscalls per MiB moved"));
        assert_eq!(svgs(&html).len(), 1);
        roxmltree::Document::parse(svgs(&html)[0]).unwrap();
        assert!(render_compare(&[], Basis::Moved).is_err());
    }

    /// With ZC_CHART_DIR set, writes pages to open in a browser: a synthetic
    /// run, results/demo.json if present, and a comparison of the two.
    #[test]
    fn pages_for_a_look() {
        let Some(dir) = std::env::var_os("ZC_CHART_DIR").map(std::path::PathBuf::from) else {
            return;
        };
        std::fs::create_dir_all(&dir).unwrap();
        let synthetic = report(12_000_000_000, 120);
        std::fs::write(dir.join("synthetic.html"), render(&synthetic).unwrap()).unwrap();
        let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../results/demo.json");
        if let Ok(text) = std::fs::read_to_string(demo) {
            let demo: Report = serde_json::from_str(&text).unwrap();
            std::fs::write(dir.join("demo.html"), render(&demo).unwrap()).unwrap();
            let runs = [
                ("demo".to_owned(), demo),
                ("synthetic".to_owned(), synthetic),
            ];
            std::fs::write(
                dir.join("compare.html"),
                render_compare(&runs, Basis::Moved).unwrap(),
            )
            .unwrap();
        }
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_795_436_796_069), "2026-11-23 12:26:36 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
    }
}
