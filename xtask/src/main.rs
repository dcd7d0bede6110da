//! Project automation: `cargo xtask setup | build | run | test`.
//!
//! Every command installs what it needs first (idempotently), so the two
//! README commands work on a fresh machine.

mod bench;
mod dist;
/// The eBPF sub-build's command, shared with zc-trace's build.rs.
#[path = "../../zc-trace/build/ebpf.rs"]
mod ebpf;
mod setup;

use std::{
    path::{Path, PathBuf},
    process::{Command, ExitCode},
};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "zc-trace's build, test and demo automation"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install every prerequisite (Debian packages, the BPF toolchain, bpf-linker).
    Setup,
    /// Build the zc-trace binary (release).
    Build,
    /// The main job: build, then run the methods lab (read+write vs mmap vs
    /// sendfile vs splice ...) and trace the workload suite, with charts.
    Run {
        /// Where the reports and charts go.
        #[arg(long, default_value = "results")]
        out: PathBuf,
        /// Size of the lab's test file.
        #[arg(long, default_value = "256M")]
        size: String,
    },
    /// Build, then run every test (unit and end-to-end, with real eBPF: needs root).
    Test {
        /// Extra arguments for `cargo test`.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Build the Debian package (binary, man page, completions) into target/dist/.
    Dist {
        /// Then install it (dpkg -i) and `cargo install` the crate, check that
        /// each gives a working tracer, and remove the package again.
        #[arg(long)]
        check: bool,
    },
    /// Build, then measure zc-trace's overhead against strace, perf and
    /// bpftrace (results/bench-DATE/: bench.md, bench.json, bench.png).
    Bench(bench::Args),
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let cli = Cli::parse();
    let root = workspace_root();
    std::env::set_current_dir(&root)?;
    match cli.cmd {
        Cmd::Setup => setup::all(true),
        Cmd::Build => {
            setup::all(false)?;
            let _ebpf = EarlyEbpfBuild::start();
            cargo(&["build", "--release", "-p", "zc-trace"])
        }
        Cmd::Run { out, size } => {
            setup::all(false)?;
            build_release()?;
            let zc_trace = release_bin("zc-trace")?;
            // The lab: every method measured, its table on stdout, its chart in out/lab.
            run_cmd(
                Command::new(&zc_trace)
                    .args(["lab", "--size", &size, "--json"])
                    .arg(out.join("lab.json"))
                    .arg("-o")
                    .arg(out.join("lab")),
            )?;
            demo(&out.join("demo"))
        }
        Cmd::Bench(args) => bench::run(&root, args),
        Cmd::Dist { check: false } => dist::build().map(drop),
        Cmd::Dist { check: true } => dist::check(),
        Cmd::Test { args } => {
            setup::all(true)?;
            // The e2e tests run the real binary; build it with the tests' profile.
            announce_build("zc-trace (debug) and the tests");
            let ebpf = EarlyEbpfBuild::start();
            cargo(&["build", "-p", "zc-trace", "--bin", "zc-trace"])?;
            drop(ebpf);
            let bin = target_dir()?.join("debug/zc-trace");
            // The eBPF crate only builds for BPF (through zc-trace's build.rs).
            let mut test = vec!["test", "--workspace", "--exclude", "zc-trace-ebpf"];
            test.extend(args.iter().map(String::as_str));
            run_cmd(Command::new("cargo").args(&test).env("ZC_TRACE_BIN", bin))?;
            // What a user installs must work as well as what the tests ran.
            dist::check()
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace")
        .to_owned()
}

/// The release binaries the main job and the benchmark run: the tracer
/// and the workload.
pub fn build_release() -> Result<()> {
    announce_build("zc-trace and the workload (release)");
    let _ebpf = EarlyEbpfBuild::start();
    cargo(&[
        "build",
        "--release",
        "-p",
        "zc-trace",
        "-p",
        "zc-trace-tests",
        "--bin",
        "zc-trace",
        "--bin",
        "zc-workload",
    ])
}

/// The eBPF sub-build, started beside cargo's build with the command
/// build.rs runs: cargo runs build.rs only once the host crates it waits
/// on are built, minutes into a first build, and the eBPF build is then
/// the longest step left. build.rs finds the object built (or waits on
/// cargo's lock of `<target>/bpf` for it) and reports any failure with its
/// own log; this one's output goes to `<target>/bpf/early-build.log`.
/// Waited for when dropped.
struct EarlyEbpfBuild(Option<std::process::Child>);

impl EarlyEbpfBuild {
    fn start() -> Self {
        let spawn = || -> Result<std::process::Child> {
            let dir = target_dir()?.join("bpf");
            std::fs::create_dir_all(&dir)?;
            let log = std::fs::File::create(dir.join("early-build.log"))?;
            let endian = if cfg!(target_endian = "big") {
                "big"
            } else {
                "little"
            };
            let manifest = workspace_root().join("zc-trace");
            Ok(ebpf::sub_build(
                &manifest,
                &dir,
                ebpf::bpf_target(endian),
                std::env::consts::ARCH,
            )
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?)
        };
        EarlyEbpfBuild(spawn().ok())
    }
}

impl Drop for EarlyEbpfBuild {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.wait();
        }
    }
}

/// One line before a build that may be silent for minutes: cargo prints
/// nothing while build.rs compiles the eBPF programs.
fn announce_build(what: &str) {
    eprintln!(
        "xtask: building {what}; the first build compiles the eBPF programs too and takes a few minutes"
    );
}

/// Where cargo puts its builds: `CARGO_TARGET_DIR`, `build.target-dir` or
/// `./target`, as `cargo metadata` resolves them.
pub fn target_dir() -> Result<PathBuf> {
    let out = Command::new("cargo")
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!("cargo metadata failed ({})", out.status);
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("reading cargo metadata's JSON")?;
    meta["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .context("cargo metadata gave no target_directory")
}

/// A binary of the release build (see `build_release`).
pub fn release_bin(name: &str) -> Result<PathBuf> {
    Ok(target_dir()?.join("release").join(name))
}

/// Gives a command the environment the user's shell had, without what
/// `cargo run` added for xtask itself: its dynamic-library path (the
/// traced program would probe every directory of it at start-up), its
/// CARGO_* variables and the RUSTC_BOOTSTRAP of .cargo/config.toml.
pub fn as_from_a_shell(cmd: &mut Command) -> &mut Command {
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if k.starts_with("CARGO_") || k == "CARGO" || k == "RUSTC_BOOTSTRAP" {
            cmd.env_remove(&key);
        }
    }
    match user_library_path() {
        Some(p) => cmd.env("LD_LIBRARY_PATH", p),
        None => cmd.env_remove("LD_LIBRARY_PATH"),
    }
}

/// LD_LIBRARY_PATH less the directories cargo put in front of it (the
/// target directory and the Rust toolchains'), or None if nothing is left.
fn user_library_path() -> Option<std::ffi::OsString> {
    let path = std::env::var_os("LD_LIBRARY_PATH")?;
    let target = target_dir().ok();
    let kept: Vec<PathBuf> = std::env::split_paths(&path)
        .filter(|d| {
            let s = d.to_string_lossy();
            !(target.as_ref().is_some_and(|t| d.starts_with(t))
                || s.contains("/.rustup/toolchains/")
                || s.contains("/rustlib/")
                || s.is_empty())
        })
        .collect();
    if kept.is_empty() {
        None
    } else {
        std::env::join_paths(kept).ok()
    }
}

fn cargo(args: &[&str]) -> Result<()> {
    run_cmd(Command::new("cargo").args(args))
}

pub fn run_cmd(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().with_context(|| format!("running {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}

/// A new directory in `parent` with a random name and mode 0700 (removed
/// on drop): root writes into it, so nobody may have made it first or be
/// able to plant a link in it, as they could at a predictable
/// /tmp/name-<pid>.
pub fn private_temp_dir(parent: &Path, prefix: &str) -> Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt as _;
    tempfile::Builder::new()
        .prefix(prefix)
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(parent)
        .with_context(|| format!("creating a private directory in {}", parent.display()))
}

/// Traces the workload suite: file reads, pipes, sockets, sendfile, splice,
/// mmap, copy_file_range, a forked child and threads; report and charts
/// into `out`.
fn demo(out: &Path) -> Result<()> {
    let tmp = private_temp_dir(&std::env::temp_dir(), "zc-trace-demo-")?;
    let dir = tmp.path();
    let input = dir.join("input.bin");
    // 16 chunks of 4 KiB: within every scenario's limits (a pipe holds 64 KiB, a UDP datagram < 64 KiB).
    let mut data = vec![0u8; 16 * 4096];
    zc_trace_tests::fill_pattern(&mut data, 0);
    std::fs::write(&input, data)?;
    let result = run_cmd(
        as_from_a_shell(&mut Command::new(release_bin("zc-trace")?))
            .arg("-o")
            .arg(out)
            // The demo shows every chart, the latency histograms too.
            .arg("--latency")
            .arg("--")
            .arg(release_bin("zc-workload")?)
            .args(["all", "--count", "16", "--size", "4096", "--file"])
            .arg(&input)
            .arg("--file2")
            .arg(dir.join("copy.bin")),
    );
    drop(tmp);
    result?;
    eprintln!(
        "xtask: reports and charts are in {}/ (lab/compare.png, demo/report.html ...)",
        out.parent().unwrap_or(out).display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    /// Issue 15 item 2: the demo and bench used /tmp/zc-trace-demo-<pid>,
    /// which anyone could create first (with a link in it) for root to
    /// write through. A planted name is never used now.
    #[test]
    fn private_temp_dirs_are_new_and_0700() {
        let parent = private_temp_dir(&std::env::temp_dir(), "xtask-test-").unwrap();
        let planted = parent
            .path()
            .join(format!("zc-trace-demo-{}", std::process::id()));
        std::fs::create_dir(&planted).unwrap();
        let a = private_temp_dir(parent.path(), "zc-trace-demo-").unwrap();
        let b = private_temp_dir(parent.path(), "zc-trace-demo-").unwrap();
        assert_ne!(a.path(), b.path());
        assert_ne!(a.path(), planted);
        let mode = std::fs::metadata(a.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
