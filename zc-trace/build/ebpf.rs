//! The eBPF sub-build's command, shared by build.rs (which embeds its
//! object) and `cargo xtask` (which starts it early, beside the host build:
//! cargo runs build.rs only once its dependencies are built, minutes into a
//! first build, and build.rs then finds the object ready).

use std::{ffi::OsString, path::Path, process::Command};

/// Debian's rustc linked by `cargo xtask setup` (../shared/toolchain.md): it
/// has the library source that `-Z build-std=core` needs.
pub const TOOLCHAIN: &str = "zc-bpf";
pub const PACKAGE: &str = "zc-trace-ebpf";

/// The BPF target of a host with this endianness ("little" or "big").
pub fn bpf_target(endian: &str) -> &'static str {
    match endian {
        "big" => "bpfeb-unknown-none",
        _ => "bpfel-unknown-none",
    }
}

/// `rustup run zc-bpf cargo build` of the eBPF crate for `bpf_target`.
pub fn sub_build(manifest_dir: &Path, target_dir: &Path, bpf_target: &str, arch: &str) -> Command {
    let mut cmd = Command::new("rustup");
    cmd.args(["run", TOOLCHAIN, "cargo", "build", "--quiet", "--release"])
        .args(["--package", PACKAGE, "--bins", "--target", bpf_target])
        .args(["-Z", "build-std=core"])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(manifest_dir.join(".."))
        // Debian's rustc is a stable compiler; -Z needs this (toolchain.md).
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags(arch))
        // The outer cargo's compiler is the host toolchain's, not zc-bpf's.
        .env_remove("RUSTC")
        .env_remove("RUSTC_WORKSPACE_WRAPPER");
    // What cargo sets for a build script stays out of the sub-build: build
    // scripts of its dependencies watch some of it (aya-ebpf's watch HOST),
    // so the same command run by xtask, without them, would rebuild what
    // build.rs built and the other way round.
    for (key, _) in std::env::vars_os() {
        let name = key.to_string_lossy();
        if BUILD_SCRIPT_ENV.contains(&&*name)
            || name.starts_with("CARGO_CFG_")
            || name.starts_with("CARGO_FEATURE_")
        {
            cmd.env_remove(&key);
        }
    }
    cmd
}

/// The variables cargo sets for a build script (besides CARGO_CFG_* and
/// CARGO_FEATURE_*) that no user sets for a build.
const BUILD_SCRIPT_ENV: &[&str] = &[
    "HOST",
    "TARGET",
    "OPT_LEVEL",
    "PROFILE",
    "DEBUG",
    "NUM_JOBS",
    "OUT_DIR",
    "RUSTC_LINKER",
    "RUSTDOC",
];

/// The flags aya-build passes: the target arch for aya-ebpf's register
/// layout, debug info and BTF for the loader.
fn rustflags(arch: &str) -> OsString {
    const SEPARATOR: &str = "\x1f";
    let arch = if arch.starts_with("riscv64") {
        "riscv64"
    } else {
        arch
    };
    [
        &format!("--cfg=bpf_target_arch=\"{arch}\""),
        "-Cdebuginfo=2",
        "-Clink-arg=--btf",
    ]
    .join(SEPARATOR)
    .into()
}
