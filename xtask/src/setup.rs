//! Idempotent installation of everything zc-trace needs to build and test,
//! following ../shared/toolchain.md: Debian's rustc with library source
//! (for -Z build-std=core), linked as the `zc-bpf` rustup toolchain, and
//! bpf-linker built against Debian's LLVM 22.

use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::run_cmd;

/// The toolchain name build.rs passes to aya-build.
const TOOLCHAIN: &str = "zc-bpf";
const BPF_LINKER_VERSION: &str = "0.13.0";
const LLVM_MAJOR: &str = "22";

/// Needed to build (first list) and to test (second list).
const BUILD_PACKAGES: &[&str] = &[
    "rustc-web",
    "cargo-web",
    "rust-web-src",
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
];
/// strace is the oracle of the e2e tests, /usr/bin/time (rusage) of the
/// fault counts; chromium renders report.html; gcc-multilib builds the
/// 32-bit program the compat-syscall test traces; fio is the real io_uring
/// program of the io_uring tests; prometheus scrapes
/// `zc-trace serve` in the exporter's end-to-end test (curl asks its API);
/// tmux runs `zc-trace top` in an 80x24 terminal for its test.
const TEST_PACKAGES: &[&str] = &[
    "strace",
    "chromium",
    "gcc-multilib",
    "time",
    "fio",
    "prometheus",
    "curl",
    "tmux",
];

pub fn all(for_tests: bool) -> Result<()> {
    let mut packages = BUILD_PACKAGES.to_vec();
    if for_tests {
        packages.extend(TEST_PACKAGES);
    }
    apt(&packages)?;
    toolchain()?;
    bpf_linker()?;
    mount_tracefs();
    Ok(())
}

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

pub(crate) fn apt(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing Debian packages: {}", missing.join(" "));
    quietly(Command::new("apt-get").args(["update", "-qq"]))
        .context("apt-get update (setup needs root and the Debian mirrors)")?;
    quietly(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
    .context("apt-get install")
}

/// Runs a set-up step with its output kept back: shown only if it fails,
/// so a working set-up prints one line per step.
pub(crate) fn quietly(cmd: &mut Command) -> Result<()> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        eprint!("{}", String::from_utf8_lossy(&out.stdout));
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        bail!("{cmd:?} failed ({})", out.status);
    }
    Ok(())
}

fn toolchain() -> Result<()> {
    let linked = Command::new("rustup")
        .args(["run", TOOLCHAIN, "rustc", "-vV"])
        .output()
        .ok()
        .filter(|o| o.status.success());
    let out = match linked {
        Some(out) => out,
        None => {
            eprintln!("xtask: linking Debian's rustc as the `{TOOLCHAIN}` rustup toolchain");
            run_cmd(Command::new("rustup").args(["toolchain", "link", TOOLCHAIN, "/usr"]))
                .context("rustup toolchain link (is rustup on PATH?)")?;
            Command::new("rustup")
                .args(["run", TOOLCHAIN, "rustc", "-vV"])
                .output()?
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let llvm = text
        .lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .unwrap_or("?");
    if !llvm.starts_with(LLVM_MAJOR) {
        bail!(
            "Debian's rustc (/usr/bin/rustc) uses LLVM {llvm}, but bpf-linker is built for LLVM {LLVM_MAJOR}: \
             install the rustc-web from bookworm-security that uses LLVM {LLVM_MAJOR}, or change LLVM_MAJOR in xtask/src/setup.rs"
        );
    }
    if !std::path::Path::new("/usr/lib/rustlib/src/rust/library/core").exists() {
        bail!(
            "the Rust library source is missing from /usr/lib/rustlib/src: apt-get install rust-web-src"
        );
    }
    Ok(())
}

fn bpf_linker() -> Result<()> {
    let current = Command::new("bpf-linker")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success());
    if let Some(out) = current {
        if String::from_utf8_lossy(&out.stdout).contains(BPF_LINKER_VERSION) {
            return Ok(());
        }
    }
    eprintln!(
        "xtask: building bpf-linker {BPF_LINKER_VERSION} against LLVM {LLVM_MAJOR} (about a minute)"
    );
    let prefix = format!("/usr/lib/llvm-{LLVM_MAJOR}");
    quietly(
        Command::new("cargo")
            .args([
                "install",
                "bpf-linker",
                "--locked",
                "--version",
                BPF_LINKER_VERSION,
                "--no-default-features",
                // Unoptimised: its work is done in LLVM (already built,
                // optimised), and the object it links is byte for byte the
                // same; its build takes 69 s of CPU instead of 179 s.
                "--debug",
                "--features",
            ])
            .arg(format!("llvm-{LLVM_MAJOR}"))
            // Without LLVM_PREFIX its build script finds /usr/bin/llvm-config (LLVM 14).
            .env("LLVM_PREFIX", &prefix)
            .env(format!("LLVM_SYS_{LLVM_MAJOR}1_PREFIX"), &prefix),
    )
    .context("cargo install bpf-linker")
}

/// tracefs is not needed by zc-trace (it attaches through BTF), but perf
/// and bpftrace, which the benchmarks compare against, need it.
fn mount_tracefs() {
    if std::path::Path::new("/sys/kernel/tracing/events").exists() {
        return;
    }
    let ok = Command::new("mount")
        .args(["-t", "tracefs", "tracefs", "/sys/kernel/tracing"])
        .status()
        .map(|s| s.success());
    if matches!(ok, Ok(true)) {
        eprintln!("xtask: mounted tracefs at /sys/kernel/tracing");
    }
}
