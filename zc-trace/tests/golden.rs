//! A report saved by an earlier zc-trace (before the class and counter
//! refactor of issue 14) renders to the same JSON and summary, byte for
//! byte: through the library, and through `zc-trace report`.

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

#[test]
fn saved_report_renders_the_same_json_and_summary() {
    let saved = read("bash-pipe-cp.json");
    let r: Report = serde_json::from_str(&saved).unwrap();
    let mut out = Vec::new();
    json::write(&r, &mut out).unwrap();
    assert!(String::from_utf8(out).unwrap() == saved, "JSON differs");
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
    assert!(written == read("bash-pipe-cp.json"), "report.json differs");
}
