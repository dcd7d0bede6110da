//! Checks that run before anything is loaded, so a run that cannot succeed
//! fails at once with the fix, not half-way with a kernel error code.

use std::{
    fs::File,
    path::{Path, PathBuf},
};

use anyhow::Result;

use crate::{btf, error::failure};

const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;
const CAP_SYS_ADMIN: u32 = 21;

/// Root, or CAP_BPF + CAP_PERFMON (or CAP_SYS_ADMIN), is needed to load
/// tracing programs.
pub fn check_privileges() -> Result<()> {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return Ok(());
    }
    let caps = effective_caps().unwrap_or(0);
    let has = |cap: u32| caps & (1 << cap) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        return Ok(());
    }
    Err(failure(
        1,
        "zc-trace needs root to load eBPF programs: run it with sudo (or grant CAP_BPF and CAP_PERFMON: \
         sudo setcap cap_bpf,cap_perfmon+ep $(which zc-trace))",
    ))
}

fn effective_caps() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line.trim_start_matches("CapEff:").trim(), 16).ok()
}

/// The probes attach through BTF (tp_btf) and walk kernel structs by BTF
/// offsets; without BTF nothing works.
pub fn check_btf() -> Result<()> {
    let path = btf::vmlinux_path();
    if path.exists() {
        return Ok(());
    }
    Err(failure(
        1,
        format!(
            "this kernel has no BTF ({} is missing): zc-trace needs a kernel built with \
             CONFIG_DEBUG_INFO_BTF=y (most distribution kernels since 5.4 are)",
            path.display()
        ),
    ))
}

/// An output file, created (and truncated) before tracing starts so that a
/// bad path fails now rather than after a long run.
pub struct Output {
    pub path: PathBuf,
    pub file: File,
}

/// Missing parent directories are created, as `-o` creates its directory.
pub fn create_output(path: &Path, what: &str) -> Result<Output> {
    let created = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => std::fs::create_dir_all(dir),
        None => Ok(()),
    };
    match created.and_then(|()| File::create(path)) {
        Ok(file) => Ok(Output {
            path: path.to_owned(),
            file,
        }),
        Err(e) => {
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            Err(failure(
                1,
                format!(
                    "cannot write the {what} to {}: {}: choose a path in a writable directory \
                     (is {} there and writable?)",
                    path.display(),
                    io_reason(&e),
                    dir.display()
                ),
            ))
        }
    }
}

/// An output directory: created if missing, and proven writable now.
pub fn check_output_dir(dir: &Path) -> Result<()> {
    let probe = dir.join(".zc-trace-write-test");
    let result = std::fs::create_dir_all(dir).and_then(|()| File::create(&probe).map(drop));
    let _ = std::fs::remove_file(&probe);
    result.map_err(|e| {
        failure(
            1,
            format!(
                "cannot write to the output directory {}: {}: choose a writable directory",
                dir.display(),
                io_reason(&e)
            ),
        )
    })
}

/// The OS error without Rust's "(os error N)" suffix.
pub fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}
