//! `zc-trace --version`: the version, the commit, and what the kernel
//! offers (issue 13), measured here, on a kernel whose facts are known
//! (../shared/toolchain.md: BTF and tp_btf work, fentry is refused).

use std::process::Command;

use zc_trace_tests::harness::{require_root, tracer_bin};

fn version(flag: &str) -> String {
    let out = Command::new(tracer_bin()).arg(flag).output().unwrap();
    assert!(out.status.success(), "{flag}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn short_version_names_the_commit() {
    let v = version("-V");
    assert!(v.starts_with("zc-trace 0."), "{v}");
    assert!(v.contains("(git "), "{v}");
    assert_eq!(v.lines().count(), 1, "{v}");
}

#[test]
fn long_version_reports_the_kernel_features_found() {
    if !require_root("long_version_reports_the_kernel_features_found") {
        return;
    }
    let v = version("--version");
    let line = |key: &str| {
        v.lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no `{key}` line in:\n{v}"))
            .to_owned()
    };
    assert!(line("kernel:").contains(std::env::consts::ARCH), "{v}");
    assert!(line("BTF:").contains("yes"), "{v}");
    assert!(line("tp_btf:").contains("yes"), "{v}");
    // Whatever this kernel says, the line says it was tried, not guessed.
    let fentry = line("fentry:");
    assert!(
        fentry.contains("yes (a test program loaded") || fentry.contains("refused"),
        "{fentry}"
    );
    assert!(line("kprobes:").contains("not used"), "{v}");
}

#[test]
fn version_after_double_dash_belongs_to_the_command() {
    if !require_root("version_after_double_dash_belongs_to_the_command") {
        return;
    }
    let out = Command::new(tracer_bin())
        .args(["--quiet", "--", "sh", "-c", ":", "sh", "--version"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stdout.is_empty(),
        "zc-trace printed its version: {out:?}"
    );
}
