//! Builds the kernel-side crate for BPF and leaves the object in OUT_DIR,
//! where the loader embeds it: one self-contained executable.
//!
//! This does what aya-build's `build_ebpf` does, with two differences that
//! matter to a user watching the build:
//! - the sub-build's output is kept in a log and shown only if it fails
//!   (aya-build turns every line into a `warning:` that cargo replays on
//!   every later build);
//! - the sub-build's target directory is shared by the debug and release
//!   builds (`<target>/bpf`), so `core` is compiled for BPF once, not once
//!   per profile.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail};

#[path = "build/ebpf.rs"]
mod ebpf;
use ebpf::{PACKAGE, bpf_target, sub_build};

/// The eBPF crate's binary target, embedded by loader.rs.
const OBJECT: &str = "zc-trace";

fn main() -> Result<()> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let ebpf_dir = manifest_dir.join("..").join(PACKAGE);
    println!("cargo:rerun-if-changed={}", ebpf_dir.display());
    println!("cargo:rerun-if-changed=../zc-trace-common");
    emit_git_commit(&manifest_dir);
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let target_dir = bpf_target_dir(&out_dir);
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH")?;
    let bpf_target = bpf_target(&std::env::var("CARGO_CFG_TARGET_ENDIAN")?);

    let log = target_dir.join("build.log");
    std::fs::create_dir_all(&target_dir)
        .with_context(|| format!("creating {}", target_dir.display()))?;
    let log_file =
        std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let status = sub_build(&manifest_dir, &target_dir, bpf_target, &arch)
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .status()
        .context(
            "cannot run `rustup`: the eBPF programs are built with the `zc-bpf` rustup toolchain \
             (run `cargo xtask setup`, and put ~/.cargo/bin on PATH)",
        )?;
    if !status.success() {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        eprintln!("{text}");
        bail!(
            "building the eBPF programs ({PACKAGE}) failed ({status}); its output is above and in {} \
             (is the toolchain set up? run `cargo xtask setup`)",
            log.display()
        );
    }
    let built = target_dir.join(bpf_target).join("release").join(OBJECT);
    std::fs::copy(&built, out_dir.join(OBJECT))
        .with_context(|| format!("copying {} into OUT_DIR", built.display()))?;
    Ok(())
}

/// `<target>/bpf`, where `<target>` is the directory cargo marked as its
/// own with CACHEDIR.TAG above OUT_DIR (this works with CARGO_TARGET_DIR,
/// `cargo install`'s temporary directory and cross builds alike); OUT_DIR
/// itself if there is none.
fn bpf_target_dir(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .find(|d| d.join("CACHEDIR.TAG").is_file())
        .map_or_else(|| out_dir.join("bpf"), |t| t.join("bpf"))
}

/// ZC_TRACE_GIT_COMMIT for `zc-trace --version`: the commit of a git
/// checkout, "unknown" elsewhere (a crate from a registry). Rebuilt when
/// HEAD moves.
fn emit_git_commit(manifest_dir: &Path) {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .current_dir(manifest_dir)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=ZC_TRACE_GIT_COMMIT={commit}");
    for file in ["HEAD", "packed-refs"] {
        if let Some(p) = git(&["rev-parse", "--path-format=absolute", "--git-path", file]) {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    if let Some(head) = git(&["symbolic-ref", "-q", "HEAD"]) {
        if let Some(p) = git(&["rev-parse", "--path-format=absolute", "--git-path", &head]) {
            println!("cargo:rerun-if-changed={p}");
        }
    }
}
