//! A report saved by an earlier zc-trace (before the class and counter
//! refactor of issue 14) renders to the same JSON and summary: through the
//! library, and through `zc-trace report`. The JSON is the same value but
//! for the keys schema 2 added (issue 9), which a schema 1 file reads as 0,
//! and the keys of the on-CPU / off-CPU split (issue 10 item 3). The
//! summary fixture changes only on purpose (issue 10 item 3 labelled the
//! time columns; an older report has no on-CPU time and says so).

use std::path::{Path, PathBuf};

use zc_trace::{
    model::report::Report,
    render::{json, summary},
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn read(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).unwrap()
}

/// The bytes keys schema 2 added.
const SCHEMA_2_BYTES: [&str; 6] = [
    "device",
    "direct_io",
    "disk_read",
    "zerocopy_sent",
    "zerocopy_copied",
    "cow_copied",
];

/// `json` without the keys schema 2 added to every totals object and
/// timeline sample, and without the (empty) io_uring tables.
/// Keys added since, which a file without them reads as their default:
/// the on-CPU / off-CPU split and CPU time (issue 10 item 3), anywhere.
const ADDED_KEYS: [&str; 4] = ["on_cpu_ns", "off_cpu_ns", "cpu", "timing"];

fn strip_added(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            for key in ADDED_KEYS {
                map.remove(key);
            }
            map.values_mut().for_each(strip_added);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_added),
        _ => {}
    }
}

/// `json` without the keys schema 2 added to every totals object and
/// timeline sample, nor the keys added since.
fn as_schema_1(json: &str) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_str(json).unwrap();
    strip_added(&mut v);
    let strip = |t: &mut serde_json::Value| {
        for key in SCHEMA_2_BYTES {
            t["bytes"].as_object_mut().unwrap().remove(key);
        }
        t["page_faults"]
            .as_object_mut()
            .unwrap()
            .remove("get_user_pages");
    };
    strip(&mut v["totals"]);
    v.as_object_mut().unwrap().remove("io_uring");
    for p in v["processes"].as_array_mut().unwrap() {
        strip(&mut p["totals"]);
        p.as_object_mut().unwrap().remove("io_uring");
    }
    for sample in v["timeline"]["samples"].as_array_mut().unwrap() {
        for key in SCHEMA_2_BYTES {
            sample.as_object_mut().unwrap().remove(key);
        }
    }
    v
}

#[test]
fn saved_report_renders_the_same_json_and_summary() {
    let saved = read("bash-pipe-cp.json");
    let r: Report = serde_json::from_str(&saved).unwrap();
    let mut out = Vec::new();
    json::write(&r, &mut out).unwrap();
    let written = String::from_utf8(out).unwrap();
    assert!(as_schema_1(&written) == as_schema_1(&saved), "JSON differs");
    let text = summary::render(&r);
    let expected = read("bash-pipe-cp.summary.txt");
    assert!(
        text == expected,
        "summary differs:\n{text}\n---- expected ----\n{expected}"
    );
}

#[test]
fn report_subcommand_writes_the_saved_json_unchanged() {
    let dir = std::env::temp_dir().join(format!("zc-trace-golden-{}", std::process::id()));
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_zc-trace"))
        .arg("report")
        .arg(fixture("bash-pipe-cp.json"))
        .arg("-o")
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    let written = std::fs::read_to_string(dir.join("report.json")).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        as_schema_1(&written) == as_schema_1(&read("bash-pipe-cp.json")),
        "report.json differs"
    );
}
