//! Chart tests on synthetic reports (and on results/demo.json when a real
//! run has written it). Set ZC_CHART_DIR to keep the files for a look.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Instant;

use super::*;
use crate::model::report::{Bytes, Counts, Process, SyscallEntry, Target, TimelineSample};

pub(crate) fn entry(nr: u32, class: &str, count: u64, bytes: u64, time_ns: u64) -> SyscallEntry {
    let counts = Counts {
        count,
        errors: count / 50,
        bytes,
        time_ns,
        on_cpu_ns: time_ns / 2,
        off_cpu_ns: time_ns - time_ns / 2,
    };
    SyscallEntry {
        nr,
        class: class.into(),
        counts,
        by_fd_kind: [("file".to_owned(), counts)].into(),
    }
}

/// A run of `duration_ns` with `n` samples of a workload whose rate swings,
/// so every panel has something to draw.
pub(crate) fn report(duration_ns: u64, n: usize) -> Report {
    let mut r = Report {
        schema_version: 1,
        target: Target {
            mode: "wrap".into(),
            command: Some(vec!["/usr/bin/cp".into(), "big.iso".into(), "/tmp/".into()]),
            pid: 4242,
            exit_code: Some(0),
            follow_forks: true,
            label: None,
            comm: None,
            ..Default::default()
        },
        duration_ns,
        ..Default::default()
    };
    let calls: [(&str, u32, &str, u64, u64, u64); 6] = [
        ("read", 0, "copy_to_user", 16_384, 64 << 20, 9_000_000),
        ("write", 1, "copy_from_user", 16_384, 64 << 20, 12_000_000),
        ("sendfile", 40, "zero_copy", 1_024, 256 << 20, 30_000_000),
        ("mmap", 9, "mapping", 40, 8 << 20, 200_000),
        ("openat", 257, "other", 120, 0, 400_000),
        ("close", 3, "other", 118, 0, 90_000),
    ];
    for (name, nr, class, count, bytes, time) in calls {
        r.syscalls
            .insert(name.into(), entry(nr, class, count, bytes, time));
    }
    let t = &mut r.totals;
    t.syscalls = r.syscalls.values().map(|e| e.counts.count).sum();
    t.time_ns = r.syscalls.values().map(|e| e.counts.time_ns).sum();
    t.mode_switches = 2 * t.syscalls + 2 * 900;
    t.context_switches.voluntary = 1_200;
    t.context_switches.involuntary = 85;
    t.page_faults.user = 900;
    t.page_faults.kernel = 120;
    t.page_faults.file = 300;
    t.bytes.copied_to_user = 64 << 20;
    t.bytes.copied_from_user = 64 << 20;
    t.bytes.zero_copy = 256 << 20;
    t.bytes.mapped = 8 << 20;
    r.processes.push(Process {
        pid: 4242,
        ppid: 1,
        comm: "cp".into(),
        syscalls: r.syscalls.clone(),
        io_uring: Default::default(),
        totals: r.totals,
        summed: 0,
        cgroup: None,
    });
    r.timeline.interval_ns = 100_000_000;
    r.timeline.samples = samples(&r, n);
    r
}

/// `n` cumulative samples spread over the run that end exactly at the totals.
fn samples(r: &Report, n: usize) -> Vec<TimelineSample> {
    let t = &r.totals;
    let mut acc = 0.0;
    // Three slow waves over the run, whatever its length.
    let weights: Vec<f64> = (0..n)
        .map(|i| 1.5 + (i as f64 * 6.0 * std::f64::consts::PI / n as f64).sin())
        .collect();
    let sum: f64 = weights.iter().sum();
    (0..n)
        .map(|i| {
            acc += weights[i];
            let f = if i + 1 == n { 1.0 } else { acc / sum };
            let at = |v: u64| (v as f64 * f) as u64;
            TimelineSample {
                t_ns: r.duration_ns * (i as u64 + 1) / n as u64,
                syscalls: at(t.syscalls),
                bytes: Bytes {
                    copied_to_user: at(t.bytes.copied_to_user),
                    copied_from_user: at(t.bytes.copied_from_user),
                    // Zero-copy starts a third of the way in and ramps up.
                    zero_copy: (t.bytes.zero_copy as f64
                        * ((i as f64 + 1.0 - n as f64 / 3.0) / (n as f64 * 2.0 / 3.0))
                            .clamp(0.0, 1.0)) as u64,
                    mapped: at(t.bytes.mapped),
                    ..Default::default()
                },
                page_faults: at(t.page_faults.user + t.page_faults.kernel),
                context_switches: at(t.context_switches.voluntary + t.context_switches.involuntary),
            }
        })
        .collect()
}

fn many_processes() -> Report {
    let mut r = report(3_000_000_000, 30);
    let base = r.processes[0].clone();
    r.processes = (0..20u32)
        .map(|i| {
            let mut p = base.clone();
            p.pid = 5000 + i;
            p.comm = if i == 3 {
                "a-very-long-process-name".into()
            } else {
                format!("worker-{i}")
            };
            let k = (i as u64 % 7) + 1;
            p.totals.bytes.copied_to_user /= k;
            p.totals.bytes.zero_copy = if i % 3 == 0 {
                0
            } else {
                p.totals.bytes.zero_copy / k
            };
            p.totals.syscalls /= k;
            p
        })
        .collect();
    for i in 0..30u32 {
        let name = format!("syscall_{i}");
        r.syscalls
            .insert(name, entry(400 + i, "other", 5 + i as u64, 0, 1_000));
    }
    r
}

/// The cases every test runs over: (name, report).
fn cases() -> Vec<(&'static str, Report)> {
    let mut zero = Report::default();
    zero.target.pid = 1;
    let mut attach = report(50_000_000, 1);
    attach.target.command = None;
    attach.target.mode = "attach".into();
    let mut cases = vec![
        ("normal", report(12_000_000_000, 120)),
        ("short-50ms-1-sample", attach),
        ("two-hours-72000-samples", report(7_200_000_000_000, 72_000)),
        ("many-processes", many_processes()),
        ("all-zero", zero),
    ];
    let demo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../results/demo.json");
    if let Ok(text) = std::fs::read_to_string(&demo)
        && let Ok(r) = serde_json::from_str::<Report>(&text)
    {
        cases.push(("demo", r));
    }
    cases
}

fn out_dir(case: &str) -> PathBuf {
    match std::env::var_os("ZC_CHART_DIR") {
        Some(d) => PathBuf::from(d).join(case),
        None => std::env::temp_dir().join(format!("zc-trace-charts-{}-{case}", std::process::id())),
    }
}

/// Decodes a PNG and checks its size and that it shows something: many
/// colours (text is anti-aliased) and a fair share of non-white pixels.
fn check_png(path: &std::path::Path) {
    let file = std::fs::File::open(path).unwrap();
    let mut reader = png::Decoder::new(file).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), SIZE, "{}", path.display());
    let channels = info.color_type.samples();
    let pixels = &buf[..info.buffer_size()];
    let mut colours = HashSet::new();
    let mut inked = 0usize;
    for px in pixels.chunks(channels) {
        colours.insert(px[..3].to_vec());
        if px[..3] != [255, 255, 255] {
            inked += 1;
        }
    }
    let total = (info.width * info.height) as usize;
    assert!(
        colours.len() > 30,
        "{}: {} colours",
        path.display(),
        colours.len()
    );
    assert!(
        inked * 100 > total,
        "{}: {inked} of {total} pixels drawn",
        path.display()
    );
}

fn check_svg(svg: &str) -> roxmltree::Document<'_> {
    let doc = roxmltree::Document::parse(svg).expect("SVG parses as XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    assert!(
        doc.descendants().any(|n| n.has_tag_name("text")),
        "SVG has text"
    );
    doc
}

#[test]
fn png_charts_decode_at_size_and_are_not_blank() {
    for (name, r) in cases() {
        let dir = out_dir(name);
        let started = Instant::now();
        let files = render_run(&r, &dir, Format::Png).unwrap();
        eprintln!("{name}: {} charts in {:?}", files.len(), started.elapsed());
        let stems: Vec<String> = files
            .iter()
            .map(|f| f.file_stem().unwrap().to_string_lossy().into_owned())
            .collect();
        let mut expected = vec!["ledger", "timeline", "syscalls", "latency"];
        if r.processes.len() > 1 {
            expected.push("processes");
        }
        assert_eq!(stems, expected, "{name}");
        for f in &files {
            check_png(f);
        }
        if std::env::var_os("ZC_CHART_DIR").is_none() {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

#[test]
fn svg_charts_parse_and_name_the_target() {
    for (name, r) in cases() {
        let svgs = run_svgs(&r).unwrap();
        assert!(svgs.len() >= 3, "{name}");
        for (title, svg) in &svgs {
            let doc = check_svg(svg);
            let text: String = doc.descendants().filter_map(|n| n.text()).collect();
            assert!(text.contains(title.as_str()), "{name}: {title} not drawn");
            assert!(
                text.contains("pid "),
                "{name}: {title} does not name the target"
            );
        }
        let dir = out_dir(&format!("{name}-svg"));
        for f in render_run(&r, &dir, Format::Svg).unwrap() {
            check_svg(&std::fs::read_to_string(&f).unwrap());
        }
        if std::env::var_os("ZC_CHART_DIR").is_none() {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

#[test]
fn one_hour_at_100ms_renders_in_seconds() {
    let r = report(3_600_000_000_000, 36_000);
    let started = Instant::now();
    let svgs = run_svgs(&r).unwrap();
    let took = started.elapsed();
    assert_eq!(svgs.len(), 4);
    // Debug builds are slow; the release binary takes a fraction of this.
    assert!(took.as_secs() < 30, "{took:?}");
    // The drawn timeline is thinned: its polylines stay small.
    let timeline = &svgs[1].1;
    assert!(
        timeline.len() < 1_000_000,
        "{} bytes of SVG",
        timeline.len()
    );
}

#[test]
fn short_run_says_so_instead_of_drawing_an_empty_timeline() {
    for n in [0, 1] {
        let mut r = report(50_000_000, 1);
        r.timeline.samples.truncate(n);
        let svgs = run_svgs(&r).unwrap();
        assert!(
            svgs[1].1.contains("Run too short for a timeline"),
            "{n} samples"
        );
    }
}

#[test]
fn syscall_rows_are_capped_and_grouped() {
    let r = many_processes();
    let (top, rest) = syscalls::rows(&r, syscalls::Figure::Calls);
    assert_eq!(top.len(), syscalls::TOP);
    let (n, sum) = rest.unwrap();
    assert_eq!(n, r.syscalls.len() - syscalls::TOP);
    let total: u64 = top.iter().map(|(_, e)| e.counts.count).sum::<u64>() + sum.count;
    assert_eq!(
        total,
        r.syscalls.values().map(|e| e.counts.count).sum::<u64>()
    );
    let ranks: Vec<usize> = top
        .iter()
        .map(|(_, e)| palette::class_rank(e.class))
        .collect();
    assert!(
        ranks.windows(2).all(|w| w[0] <= w[1]),
        "grouped by class: {ranks:?}"
    );
    assert!(syscalls::requests(&r).is_empty());
}

#[test]
fn io_uring_requests_follow_the_syscalls() {
    let mut r = report(2_000_000_000, 20);
    for (op, count) in (0..12).map(|i| (format!("OP_{i}"), i + 1)) {
        let e = SyscallEntry {
            counts: Counts {
                count,
                ..Default::default()
            },
            ..Default::default()
        };
        r.io_uring.insert(op, e);
    }
    let rows = syscalls::requests(&r);
    assert_eq!(rows.len(), syscalls::TOP_REQUESTS);
    assert_eq!(rows[0].0, "io_uring OP_11", "busiest first");
    let svgs = run_svgs(&r).unwrap();
    let drawn = svgs.iter().any(|(_, svg)| {
        let doc = check_svg(svg);
        let text: String = doc.descendants().filter_map(|n| n.text()).collect();
        text.contains("io_uring OP_11")
    });
    assert!(drawn, "the syscalls chart draws the requests");
}

/// Issue 10 item 8: a rarely called syscall that took the time (wait4) is
/// a row of the time panel, not summed away behind frequent cheap calls.
#[test]
fn each_syscall_panel_ranks_by_its_own_figure() {
    use self::syscalls::Figure;
    let mut r = many_processes();
    for (i, e) in r.syscalls.values_mut().enumerate() {
        e.counts.count = 1_000 + i as u64;
        e.counts.time_ns = 10;
        e.counts.bytes = 0;
    }
    let slow = r.syscalls.keys().next().unwrap().clone();
    r.syscalls.get_mut(&slow).unwrap().counts.count = 1;
    r.syscalls.get_mut(&slow).unwrap().counts.time_ns = 3_000_000_000;
    let names = |f: Figure| -> Vec<String> {
        syscalls::rows(&r, f)
            .0
            .iter()
            .map(|(n, _)| n.to_string())
            .collect()
    };
    assert!(!names(Figure::Calls).contains(&slow), "the least called");
    assert!(names(Figure::Time).contains(&slow), "the slowest");
    assert!(names(Figure::Bytes).is_empty(), "nothing moved bytes");
}

#[test]
fn compare_two_runs() {
    let a = report(2_000_000_000, 20);
    let mut b = report(3_000_000_000, 30);
    b.totals.bytes.zero_copy = 0;
    b.totals.syscalls *= 3;
    let zero = Report::default();
    let runs = vec![
        ("read-write".to_owned(), b),
        ("sendfile".to_owned(), a),
        ("idle".to_owned(), zero),
    ];
    let dir = out_dir("compare");
    for format in [Format::Png, Format::Svg] {
        let files = render_compare(&runs, Basis::Moved, &dir, format).unwrap();
        assert_eq!(files.len(), 1);
        match format {
            Format::Png => check_png(&files[0]),
            Format::Svg => {
                check_svg(&std::fs::read_to_string(&files[0]).unwrap());
            }
        }
    }
    let (_, svg) = compare_svg(&runs, Basis::Moved).unwrap();
    assert!(svg.contains("n/a: nothing moved"));
    assert!(render_compare(&[], Basis::Moved, &dir, Format::Png).is_err());
    // Per byte delivered (the lab's basis): one figure per run.
    let delivered = [1 << 20, 1 << 20, 0];
    let (_, svg) = compare_svg(&runs, Basis::Delivered(&delivered)).unwrap();
    assert!(svg.contains("per MiB delivered"));
    assert!(svg.contains("n/a: nothing delivered"));
    if std::env::var_os("ZC_CHART_DIR").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn metrics_guard_division_by_zero() {
    let m = metrics(&Report::default(), 0, "moved");
    assert_eq!(m.len(), 7, "with CPU time per MiB");
    assert!(m.iter().all(|m| m.value.is_none()));
    let r = report(1_000_000_000, 10);
    let m = metrics(&r, crate::model::compare::moved_bytes(&r), "moved");
    let moved = (64 + 64 + 256) as f64;
    assert!((m[0].value.unwrap() - r.totals.syscalls as f64 / moved).abs() < 1e-9);
    assert!((m[2].value.unwrap() - 128.0 / moved).abs() < 1e-9);
}
