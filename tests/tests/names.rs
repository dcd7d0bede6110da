//! Names people recognise (issue 10 item 6): runs written with `-o DIR`
//! are labelled by their command or `--label` in comparisons, not all
//! "report"; attach mode names the process beside its pid and says when
//! the children it already had are the ones doing the work.

use std::process::{Command, Stdio};
use std::time::Duration;

use zc_trace_tests::harness::{Report, TempDir, require_root, tracer_bin};

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Traces `cmd` quietly into `dir` with extra `flags`.
fn trace_into(dir: &std::path::Path, flags: &[&str], cmd: &[&str]) {
    let out = Command::new(tracer_bin())
        .arg("-q")
        .arg("-o")
        .arg(dir)
        .args(flags)
        .arg("--")
        .args(cmd)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

/// `compare`'s table for the reports written into `a` and `b`.
fn compare(a: &std::path::Path, b: &std::path::Path) -> String {
    let out = Command::new(tracer_bin())
        .arg("compare")
        .arg(a.join("report.json"))
        .arg(b.join("report.json"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn compare_labels_runs_by_command_or_label_not_report() {
    if !require_root("compare_labels_runs_by_command_or_label_not_report") {
        return;
    }
    let dir = TempDir::new("names-compare");
    let (a, b) = (dir.join("a"), dir.join("b"));
    trace_into(
        &a,
        &[],
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=4k", "count=16"],
    );
    trace_into(&b, &["--label", "catted"], &["cat", "/etc/hostname"]);
    let table = compare(&a, &b);
    assert!(
        table.contains("dd if=/dev/zero of=/dev/null ..."),
        "{table}"
    );
    assert!(table.contains("catted"), "{table}");
    assert!(!table.contains("report"), "{table}");
    let saved = Report::load(&b.join("report.json"));
    assert_eq!(saved.0["target"]["label"], "catted");
}

#[test]
fn compare_tells_two_runs_of_one_name_apart() {
    if !require_root("compare_tells_two_runs_of_one_name_apart") {
        return;
    }
    let dir = TempDir::new("names-twice");
    let (a, b) = (dir.join("a"), dir.join("b"));
    trace_into(&a, &[], &["true"]);
    trace_into(&b, &[], &["true"]);
    let table = compare(&a, &b);
    assert!(
        table.contains("true #1") && table.contains("true #2"),
        "{table}"
    );
}

/// A shell whose two children do the work, as an nginx master's workers
/// do: attaching to the shell names it and the children it already had.
#[test]
fn attach_names_the_process_and_its_untraced_children() {
    if !require_root("attach_names_the_process_and_its_untraced_children") {
        return;
    }
    let dir = TempDir::new("names-attach");
    let mut shell = Command::new("bash")
        .args(["-c", "sleep 30 & sleep 30 & wait"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let pid = shell.id();
    // Both children forked: the shell's thread lists them.
    let children =
        || std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    for _ in 0..200 {
        if children().split_whitespace().count() == 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let kids: Vec<String> = children().split_whitespace().map(str::to_owned).collect();
    assert_eq!(kids.len(), 2, "the shell's children: {kids:?}");
    let json = dir.join("attach.json");
    let out = Command::new(tracer_bin())
        .args(["-p", &pid.to_string(), "--duration", "300ms", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    let _ = Command::new("pkill")
        .args(["-P", &pid.to_string()])
        .status();
    let _ = shell.kill();
    let _ = shell.wait();
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&format!("pid {pid} (bash)")), "{err}");
    assert!(
        err.contains(&format!("not traced ({}, {})", kids[0], kids[1])),
        "{err}"
    );
    let r = Report::load(&json);
    assert_eq!(r.0["target"]["comm"], "bash");
    let notes = r.0["notes"].to_string();
    assert!(notes.contains(&kids[0]), "{notes}");
}
