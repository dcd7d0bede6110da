//! `cargo xtask dist`: zc-trace as a Debian package (the self-contained
//! binary, its man page and bash/zsh/fish completions), and the check that
//! the package and `cargo install` both give a working tracer.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result, bail, ensure};

use crate::{build_release, release_bin, run_cmd, setup, target_dir};

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Builds `<target>/dist/zc-trace_<version>_<arch>.deb`; returns its path.
pub fn build() -> Result<PathBuf> {
    setup::all(false)?;
    build_release()?;
    let arch = output_of(Command::new("dpkg").arg("--print-architecture"))?;
    let dist = target_dir()?.join("dist");
    std::fs::create_dir_all(&dist)?;
    let stage = tempfile::Builder::new()
        .prefix("zc-trace-deb-")
        .tempdir_in(&dist)
        .context("creating the package's staging directory")?;
    let root = stage.path();
    stage_files(root, &release_bin("zc-trace")?)?;
    write_control(root, arch.trim())?;
    let deb = dist.join(format!("zc-trace_{VERSION}_{}.deb", arch.trim()));
    crate::setup::quietly(
        Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zxz", "--build"])
            .arg(root)
            .arg(&deb),
    )
    .context("dpkg-deb --build")?;
    eprintln!("xtask: dist: {}", deb.display());
    Ok(deb)
}

/// The package's tree: binary, man page, completions.
fn stage_files(root: &Path, bin: &Path) -> Result<()> {
    let install = |rel: &str, bytes: &[u8], mode: u32| -> Result<()> {
        use std::os::unix::fs::PermissionsExt as _;
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().expect("a file in a directory"))?;
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))?;
        Ok(())
    };
    let generated = |what: &str| {
        Command::new(bin)
            .args(["generate", what])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| o.stdout)
            .with_context(|| format!("zc-trace generate {what}"))
    };
    install("usr/bin/zc-trace", &std::fs::read(bin)?, 0o755)?;
    install(
        "usr/share/man/man1/zc-trace.1.gz",
        &gzip(&generated("man")?)?,
        0o644,
    )?;
    install(
        "usr/share/bash-completion/completions/zc-trace",
        &generated("bash")?,
        0o644,
    )?;
    install(
        "usr/share/zsh/vendor-completions/_zc-trace",
        &generated("zsh")?,
        0o644,
    )?;
    install(
        "usr/share/fish/vendor_completions.d/zc-trace.fish",
        &generated("fish")?,
        0o644,
    )
}

fn write_control(root: &Path, arch: &str) -> Result<()> {
    let control = format!(
        "Package: zc-trace\n\
         Version: {VERSION}\n\
         Architecture: {arch}\n\
         Maintainer: zc-trace developers <zc-trace@localhost>\n\
         Depends: libc6 (>= 2.34), libgcc-s1\n\
         Section: utils\n\
         Priority: optional\n\
         Description: where do my bytes get copied? An eBPF copy ledger\n \
         zc-trace traces a process, a command or a PID with eBPF and keeps an\n \
         exact ledger of the bytes the CPU copied across the user/kernel boundary\n \
         and those moved without a copy, with syscalls, mode switches, context\n \
         switches and page faults. Needs root and a kernel with BTF.\n"
    );
    let dir = root.join("DEBIAN");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("control"), control)?;
    Ok(())
}

fn gzip(bytes: &[u8]) -> Result<Vec<u8>> {
    use std::io::Write as _;
    let mut child = Command::new("gzip")
        .args(["-9n"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("running gzip")?;
    child.stdin.take().expect("piped").write_all(bytes)?;
    let out = child.wait_with_output()?;
    ensure!(out.status.success(), "gzip failed ({})", out.status);
    Ok(out.stdout)
}

fn output_of(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    ensure!(out.status.success(), "{cmd:?} failed ({})", out.status);
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Installs the package with dpkg, and the crate with `cargo install`, and
/// proves each gives a tracer that works on its own: `--version`, its man
/// page, and one real trace with exact counts. The package is removed again.
pub fn check() -> Result<()> {
    let deb = build()?;
    eprintln!("xtask: dist check: dpkg -i {}", deb.display());
    crate::setup::quietly(Command::new("dpkg").arg("-i").arg(&deb)).context("dpkg -i")?;
    let installed =
        check_tracer(Path::new("/usr/bin/zc-trace"), "the .deb").and_then(|()| check_man_page());
    let removed = crate::setup::quietly(Command::new("dpkg").args(["-r", "zc-trace"]));
    installed?;
    removed.context("dpkg -r zc-trace")?;

    let root = tempfile::tempdir().context("creating a directory for cargo install")?;
    eprintln!("xtask: dist check: cargo install --locked --path zc-trace");
    // The release build's directory: cargo install rebuilds nothing that
    // `build_release` already built, and still links its own binary.
    crate::setup::quietly(
        Command::new("cargo")
            .args(["install", "--locked", "--path", "zc-trace", "--root"])
            .arg(root.path())
            .arg("--target-dir")
            .arg(target_dir()?),
    )
    .context("cargo install --path zc-trace")?;
    check_tracer(&root.path().join("bin/zc-trace"), "cargo install")?;
    eprintln!("xtask: dist check: 2 passed, 0 failed");
    Ok(())
}

/// `BIN --version` answers, and `BIN -- dd` counts dd's 64 writes exactly.
fn check_tracer(bin: &Path, how: &str) -> Result<()> {
    let version = output_of(Command::new(bin).arg("--version"))?;
    ensure!(
        version.contains(VERSION),
        "{how}: `zc-trace --version` printed {version:?}"
    );
    let dir = tempfile::tempdir()?;
    let json = dir.path().join("dd.json");
    // From another directory, so nothing of the source tree can be used.
    run_cmd(
        Command::new(bin)
            .current_dir(dir.path())
            .args(["--quiet", "--json"])
            .arg(&json)
            .args([
                "--",
                "dd",
                "if=/dev/zero",
                "of=/dev/null",
                "bs=4096",
                "count=64",
                "status=none",
            ]),
    )
    .with_context(|| format!("{how}: tracing dd"))?;
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json)?)?;
    let writes = report["syscalls"]["write"]["count"].as_u64();
    if writes != Some(64) {
        bail!("{how}: the traced dd made {writes:?} writes, not 64: {report}");
    }
    Ok(())
}

fn check_man_page() -> Result<()> {
    let page = output_of(Command::new("man").args(["-w", "zc-trace"]));
    match page {
        Ok(p) if p.contains("zc-trace.1") => Ok(()),
        // man-db is not on every minimal machine: check the file instead.
        _ => {
            let p = Path::new("/usr/share/man/man1/zc-trace.1.gz");
            ensure!(
                p.is_file(),
                "the .deb installed no man page at {}",
                p.display()
            );
            Ok(())
        }
    }
}
