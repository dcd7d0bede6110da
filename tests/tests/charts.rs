//! Charts and HTML end to end: a traced run written with `-o DIR`, rendered
//! again from its JSON without root, compared with another run, and the
//! HTML report opened in headless Chromium.

use std::{
    path::Path,
    process::{Command, Output},
};

use zc_trace_tests::harness::{TempDir, require_root, scenario_args, skip, tracer_bin};

const WORKLOAD: &str = env!("CARGO_BIN_EXE_zc-workload");

/// The charts of one run; processes.png only when it had several processes.
const RUN_CHARTS: &[&str] = &["ledger.png", "timeline.png", "syscalls.png", "latency.png"];

fn trace_into(dir: &TempDir, out: &Path, scenario: &str) -> Output {
    let mut cmd = Command::new(tracer_bin());
    cmd.arg("--quiet")
        .arg("-o")
        .arg(out)
        .arg("--")
        .arg(WORKLOAD);
    cmd.args(scenario_args(dir, scenario, 16, 4096, 2));
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Decodes a PNG and checks it is the size charts are drawn at and not
/// blank: a real picture has many colours.
fn check_png(path: &Path) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert!(
        info.width >= 800 && info.height >= 500,
        "{}: {}x{}",
        path.display(),
        info.width,
        info.height
    );
    let bytes = &buf[..info.buffer_size()];
    let px = info.color_type.samples();
    let mut colours: Vec<&[u8]> = bytes.chunks(px).collect();
    let background = colours[0];
    let drawn = colours.iter().filter(|c| **c != background).count();
    colours.sort_unstable();
    colours.dedup();
    assert!(
        colours.len() > 8,
        "{}: only {} colours",
        path.display(),
        colours.len()
    );
    assert!(
        drawn * 100 > bytes.len() / px,
        "{}: under 1% of pixels drawn",
        path.display()
    );
}

#[test]
fn output_dir_has_report_charts_and_html() {
    if !require_root("output_dir_has_report_charts_and_html") {
        return;
    }
    let dir = TempDir::new("charts-run");
    let out = dir.join("out");
    trace_into(&dir, &out, "fork");
    for name in RUN_CHARTS.iter().chain(&["processes.png"]) {
        check_png(&out.join(name));
    }
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        html.matches("<svg").count() >= 4,
        "the HTML inlines every chart"
    );
    assert!(!html.contains("src=\"http"), "the HTML is self-contained");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["schema_version"], 2);
}

#[test]
fn report_renders_a_saved_run_without_root_and_as_svg() {
    if !require_root("report_renders_a_saved_run_without_root_and_as_svg") {
        return;
    }
    let dir = TempDir::new("charts-report");
    let out = dir.join("run");
    trace_into(&dir, &out, "sendfile");
    let again = dir.join("again");
    std::fs::create_dir_all(&again).unwrap();
    // As nobody: rendering needs no privileges. Reports are written 0600
    // (they hold argv): share this one, as its owner would.
    std::fs::set_permissions(
        out.join("report.json"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let status = Command::new("chown")
        .arg("-R")
        .arg("65534:65534")
        .arg(&again)
        .status()
        .unwrap();
    assert!(status.success());
    let r = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(tracer_bin())
        .arg("report")
        .arg(out.join("report.json"))
        .arg("-o")
        .arg(&again)
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    for name in RUN_CHARTS {
        check_png(&again.join(name));
    }
    let svg_dir = dir.join("svg");
    let r = Command::new(tracer_bin())
        .arg("report")
        .arg(out.join("report.json"))
        .arg("-o")
        .arg(&svg_dir)
        .arg("--svg")
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    for name in RUN_CHARTS {
        let svg = std::fs::read_to_string(svg_dir.join(name.replace(".png", ".svg"))).unwrap();
        assert!(
            svg.starts_with("<svg") || svg.contains("<svg"),
            "{name} as SVG"
        );
        assert!(svg.trim_end().ends_with("</svg>"), "{name}: a complete SVG");
    }
}

#[test]
fn compare_two_runs() {
    if !require_root("compare_two_runs") {
        return;
    }
    let dir = TempDir::new("charts-compare");
    let (a, b) = (dir.join("file-read"), dir.join("sendfile"));
    trace_into(&dir, &a, "socket");
    trace_into(&dir, &b, "sendfile");
    let (ra, rb) = (dir.join("socket.json"), dir.join("sendfile.json"));
    std::fs::copy(a.join("report.json"), &ra).unwrap();
    std::fs::copy(b.join("report.json"), &rb).unwrap();
    let out = dir.join("cmp");
    let r = Command::new(tracer_bin())
        .arg("compare")
        .arg(&ra)
        .arg(&rb)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "{stderr}");
    // The table is compare's result: on stdout (issue 13).
    let table = String::from_utf8_lossy(&r.stdout);
    assert!(table.lines().any(|l| l.starts_with("socket ")), "{table}");
    assert!(table.lines().any(|l| l.starts_with("sendfile ")), "{table}");
    check_png(&out.join("compare.png"));
}

#[test]
fn bad_reports_get_one_line_errors() {
    let dir = TempDir::new("charts-bad");
    let cases: &[(&str, &str, &str)] = &[
        ("garbage.json", "this is not json", "is not valid JSON"),
        ("newer.json", r#"{"schema_version": 99}"#, "newer zc-trace"),
        ("other.json", r#"{"hello": 1}"#, "not a zc-trace report"),
        (
            "cut.json",
            r#"{"schema_version": 1, "tool": {"name": "zc-trace""#,
            "is not valid JSON",
        ),
        (
            "partial.json",
            r#"{"schema_version": 1, "syscalls": 5}"#,
            "not a complete zc-trace report",
        ),
    ];
    for (name, text, needle) in cases {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let r = Command::new(tracer_bin())
            .arg("report")
            .arg(&path)
            .arg("-o")
            .arg(dir.join("out"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(1), "{name}: {stderr}");
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{name}: one line: {stderr}");
        assert!(
            stderr.contains(needle),
            "{name}: `{needle}` missing from {stderr}"
        );
    }
    let r = Command::new(tracer_bin())
        .arg("report")
        .arg(dir.join("missing.json"))
        .arg("-o")
        .arg(dir.join("o"))
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&r.stderr).contains("cannot read"));
}

#[test]
fn html_report_renders_in_headless_chromium() {
    if !require_root("html_report_renders_in_headless_chromium") {
        return;
    }
    let Some(chromium) = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .find(|p| Path::new(p).exists())
    else {
        skip(
            "html_report_renders_in_headless_chromium",
            "needs chromium (cargo xtask setup installs it for the tests)",
        );
        return;
    };
    let dir = TempDir::new("charts-html");
    let out = dir.join("out");
    trace_into(&dir, &out, "splice");
    let shot = dir.join("shot.png");
    let profile = dir.join("profile");
    let r = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1280,2400",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", out.join("report.html").display()))
        .output()
        .unwrap();
    assert!(
        shot.exists(),
        "chromium made no screenshot: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    check_png(&shot);
}

/// The timeline's bytes panel draws every path the copy ledger shows (it
/// used to draw only the four syscall classes' columns: dd between
/// character devices moved its bytes without a line for them).
#[test]
fn timeline_draws_every_path_the_ledger_shows() {
    if !require_root("timeline_draws_every_path_the_ledger_shows") {
        return;
    }
    let dir = TempDir::new("charts-timeline-paths");
    let out = dir.join("out");
    let r = Command::new(tracer_bin())
        .args(["--quiet", "--interval", "20ms", "--svg", "-o"])
        .arg(&out)
        .args(["--", "bash", "-c"])
        .arg("dd if=/dev/zero of=/dev/null bs=1M count=64 status=none; sleep 0.3")
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert!(
        json["totals"]["bytes"]["device"].as_u64().unwrap() >= 128 << 20,
        "dd read and wrote 64 MiB on character devices: {}",
        json["totals"]["bytes"]
    );
    let ledger = std::fs::read_to_string(out.join("ledger.svg")).unwrap();
    let timeline = std::fs::read_to_string(out.join("timeline.svg")).unwrap();
    assert!(
        !timeline.contains("Run too short"),
        "a timeline of several intervals"
    );
    for label in ["character device", "copied kernel → user", "mapped (mmap)"] {
        let text = format!("\n{label}\n</text>");
        assert!(ledger.contains(&text), "the ledger shows {label}");
        assert!(timeline.contains(&text), "the timeline draws {label}");
    }
}
