//! What the running kernel offers zc-trace, for `zc-trace --version`: the
//! facts a bug report needs and that decide which probes can run.

use std::fmt::Write as _;

use crate::btf::{self, Btf};

/// The git commit zc-trace was built from (see build.rs).
const COMMIT: &str = env!("ZC_TRACE_GIT_COMMIT");

/// `zc-trace 0.1.0 (git 1a2b3c4)`.
pub fn short_version() -> String {
    format!("zc-trace {} (git {COMMIT})", env!("CARGO_PKG_VERSION"))
}

/// The version, then one line per kernel feature zc-trace uses or could use.
pub fn long_version() -> String {
    let mut out = short_version();
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let _ = writeln!(
        out,
        "\nkernel:   {} {}",
        std::env::consts::ARCH,
        release.trim()
    );
    let vmlinux = btf::vmlinux_path();
    let btf = std::fs::read(&vmlinux)
        .ok()
        .and_then(|d| Btf::parse(d).ok());
    let _ = writeln!(
        out,
        "BTF:      {}",
        if btf.is_some() {
            format!("yes ({})", vmlinux.display())
        } else {
            format!(
                "no ({} missing or unreadable): zc-trace cannot run",
                vmlinux.display()
            )
        }
    );
    let tp_btf = btf.as_ref().map(|b| {
        ["sys_enter", "sys_exit"]
            .iter()
            .all(|t| b.has_btf_tracepoint(t))
    });
    let _ = writeln!(
        out,
        "tp_btf:   {}",
        match tp_btf {
            Some(true) => "yes (sys_enter, sys_exit: used for every syscall)",
            Some(false) => "no: this kernel lacks the BTF tracepoints zc-trace attaches to",
            None => "unknown (no BTF)",
        }
    );
    let _ = writeln!(out, "fentry:   {}", fentry(btf.as_ref()));
    let kprobes = std::path::Path::new("/sys/bus/event_source/devices/kprobe").exists();
    let _ = write!(
        out,
        "kprobes:  {} (not used)",
        if kprobes { "yes" } else { "no" }
    );
    out
}

/// Whether an fentry program loads and attaches here: only trying tells
/// (a kernel may have the BTF and still refuse), and trying needs root.
fn fentry(btf: Option<&Btf>) -> String {
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return "unknown (run --version as root to try loading one)".into();
    }
    let Some(target) = btf.and_then(|b| b.find_func("vfs_read")) else {
        return "no (no BTF for vfs_read)".into();
    };
    match try_fentry(target) {
        Ok(()) => "yes (a test program loaded and attached to vfs_read; not used yet)".into(),
        Err((step, e)) => format!("no ({step} refused: {})", crate::preflight::io_reason(&e)),
    }
}

/// Loads `r0 = 0; exit` as an fentry program on BTF function `btf_id`,
/// attaches it, and closes both at once (which detaches it).
fn try_fentry(btf_id: u32) -> Result<(), (&'static str, std::io::Error)> {
    const BPF_PROG_LOAD: libc::c_long = 5;
    const BPF_RAW_TRACEPOINT_OPEN: libc::c_long = 17;
    const BPF_PROG_TYPE_TRACING: u32 = 26;
    const BPF_TRACE_FENTRY: u32 = 24;
    // mov r0, 0; exit
    let insns: [u64; 2] = [0xb7, 0x95];
    let license = c"GPL";
    // union bpf_attr for BPF_PROG_LOAD (include/uapi/linux/bpf.h): only
    // the fields set here are non-zero.
    let mut attr = [0u8; 128];
    let mut put = |at: usize, bytes: &[u8]| attr[at..at + bytes.len()].copy_from_slice(bytes);
    put(0, &BPF_PROG_TYPE_TRACING.to_ne_bytes());
    put(4, &(insns.len() as u32).to_ne_bytes());
    put(8, &(insns.as_ptr() as u64).to_ne_bytes());
    put(16, &(license.as_ptr() as u64).to_ne_bytes());
    put(68, &BPF_TRACE_FENTRY.to_ne_bytes());
    put(108, &btf_id.to_ne_bytes());
    let prog = bpf(BPF_PROG_LOAD, &mut attr).map_err(|e| ("loading", e))?;
    let mut open = [0u8; 16];
    open[8..12].copy_from_slice(&(prog as u32).to_ne_bytes());
    let link = bpf(BPF_RAW_TRACEPOINT_OPEN, &mut open).map_err(|e| ("attaching", e));
    // SAFETY: both are fds this function opened and nothing else uses.
    unsafe {
        if let Ok(l) = link {
            libc::close(l);
        }
        libc::close(prog);
    }
    link.map(drop)
}

fn bpf(cmd: libc::c_long, attr: &mut [u8]) -> std::io::Result<i32> {
    // SAFETY: attr is a zero-padded bpf_attr of the size passed.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
    if fd < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(fd as i32)
    }
}
