//! Builds the kernel-side crate for BPF and leaves the object in OUT_DIR,
//! where main.rs embeds it: one self-contained executable.

fn main() -> anyhow::Result<()> {
    let manifest_dir = std::path::PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let ebpf_dir = manifest_dir.join("../zc-trace-ebpf");
    let ebpf_dir = ebpf_dir.to_string_lossy();
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "zc-trace-ebpf",
            root_dir: &ebpf_dir,
            ..Default::default()
        }],
        // Debian's rustc linked by `cargo xtask setup` (../shared/toolchain.md):
        // it has the library source that -Z build-std=core needs.
        aya_build::Toolchain::Custom("zc-bpf"),
    )
}
