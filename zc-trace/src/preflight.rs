//! Checks that run before anything is loaded, so a run that cannot succeed
//! fails at once with the fix, not half-way with a kernel error code; and
//! `Output`, the one way zc-trace creates a file, checked at the start and
//! completed at the end of a run.

use std::{
    fs::File,
    io::Write as _,
    os::fd::AsFd as _,
    os::unix::fs::{FileTypeExt as _, MetadataExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
};

use anyhow::Result;
use tempfile::NamedTempFile;

use crate::{
    btf,
    error::{EXIT_USAGE, failure},
};

const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_SYS_PTRACE: u32 = 19;

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

/// Loading probes needs only CAP_BPF + CAP_PERFMON, but the probes would
/// then see any process. A caller who is not root may attach only to a
/// process they could ptrace: one whose every uid and gid are their own
/// (so no setuid program) and which the kernel lets them inspect (it is
/// dumpable), unless they hold CAP_SYS_PTRACE.
pub fn check_may_trace(pid: i32) -> Result<()> {
    if euid() == 0 || effective_caps().is_some_and(|c| c & (1 << CAP_SYS_PTRACE) != 0) {
        return Ok(());
    }
    let refuse = |why: &str| {
        failure(
            1,
            format!(
                "process {pid} {why}: without root you may trace only your own processes \
                 (as with strace; CAP_SYS_PTRACE lifts this)"
            ),
        )
    };
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|_| refuse("cannot be inspected"))?;
    // SAFETY: getuid and getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let ids = |key: &str| -> Vec<u32> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|rest| {
                rest.split_whitespace()
                    .filter_map(|w| w.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    let (uids, gids) = (ids("Uid:"), ids("Gid:"));
    if uids.is_empty() || uids.iter().any(|&u| u != uid) || gids.iter().any(|&g| g != gid) {
        return Err(refuse("belongs to another user (or runs a setuid program)"));
    }
    // The kernel's own ptrace read check: environ opens only if it passes
    // (a process that made itself undumpable fails it).
    File::open(format!("/proc/{pid}/environ")).map_err(|_| refuse("does not allow inspection"))?;
    Ok(())
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

/// An output file, staged before tracing starts so that a bad path fails
/// now rather than after a long run. Everything is written to a temp file
/// (random name, O_EXCL, mode 0600) in the checked target directory, and
/// `commit` renames it over the final name: an existing file stays intact
/// until its replacement is complete, and a link planted at the final name
/// is replaced, never written through.
pub struct Output {
    path: PathBuf,
    what: String,
    sink: Sink,
}

enum Sink {
    /// A file: written beside its final name, renamed over it at the end.
    Temp(NamedTempFile),
    /// A pipe, terminal or socket (`--json /dev/stdout`): nothing to
    /// replace or corrupt, so it is written as it is.
    Stream(File),
}

impl Output {
    /// Checks where `path` goes (creating missing parent directories, as
    /// `-o` creates its directory) and creates the temp file, which proves
    /// the directory writable.
    pub fn create(path: &Path, what: &str) -> Result<Output> {
        let fail = |reason: String| output_failure(path, what, reason);
        if path.file_name().is_none() {
            return Err(fail("it names no file: give a file name".into()));
        }
        let dir = parent_dir(path);
        let shared = checked_dir(dir).map_err(fail)?;
        check_final_name(path, shared).map_err(fail)?;
        if is_stream(path) {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| fail(io_reason(&e)))?;
            return Ok(Output {
                path: path.to_owned(),
                what: what.to_owned(),
                sink: Sink::Stream(file),
            });
        }
        let temp = tempfile::Builder::new()
            .prefix(".zc-trace-")
            .tempfile_in(dir)
            .map_err(|e| {
                fail(format!(
                    "{}: choose a path in a writable directory (is {} there and writable?)",
                    io_reason(&e),
                    dir.display()
                ))
            })?;
        Ok(Output {
            path: path.to_owned(),
            what: what.to_owned(),
            sink: Sink::Temp(temp),
        })
    }

    /// Standard output (`--json -`): written as it is, like a pipe, whatever
    /// it is redirected to (the shell opened that file, not zc-trace).
    pub fn stdout(what: &str) -> Result<Output> {
        let fd = std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| output_failure(Path::new("-"), what, io_reason(&e)))?;
        Ok(Output {
            path: PathBuf::from("standard output"),
            what: what.to_owned(),
            sink: Sink::Stream(File::from(fd)),
        })
    }

    /// Writes all of `bytes` to the temp file.
    pub fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        let r = match &mut self.sink {
            Sink::Temp(temp) => temp.as_file_mut().write_all(bytes),
            Sink::Stream(file) => file.write_all(bytes),
        };
        r.map_err(|e| self.write_failure(&e))
    }

    /// Makes what was written the output: on disk (a full disk shows here,
    /// not later), with its final mode, renamed over the final name.
    pub fn commit(self) -> Result<()> {
        let temp = match &self.sink {
            Sink::Temp(temp) => temp,
            Sink::Stream(_) => return Ok(()),
        };
        let fail = |reason: String| output_failure(&self.path, &self.what, reason);
        let shared = checked_dir(parent_dir(&self.path)).map_err(fail)?;
        let mode = check_final_name(&self.path, shared).map_err(fail)?;
        let file = temp.as_file();
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .and_then(|()| file.sync_all())
            .map_err(|e| self.write_failure(&e))?;
        let Output { path, what, sink } = self;
        if let Sink::Temp(temp) = sink {
            temp.persist(&path)
                .map_err(|e| output_failure(&path, &what, io_reason(&e.error)))?;
        }
        Ok(())
    }

    fn write_failure(&self, e: &std::io::Error) -> anyhow::Error {
        let hint = if e.raw_os_error() == Some(libc::ENOSPC) {
            ": free some space or choose another disk"
        } else {
            ""
        };
        output_failure(&self.path, &self.what, format!("{}{hint}", io_reason(e)))
    }
}

/// Writes a whole output file made at the end of a run (a chart, a page).
pub fn write_output(path: &Path, what: &str, bytes: &[u8]) -> Result<()> {
    let mut out = Output::create(path, what)?;
    out.write_all(bytes)?;
    out.commit()
}

fn output_failure(path: &Path, what: &str, reason: String) -> anyhow::Error {
    failure(
        1,
        format!("cannot write the {what} to {}: {reason}", path.display()),
    )
}

fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// An output directory: created if missing, checked as `Output` checks
/// every directory, and proven writable by a temp file that is removed.
pub fn check_output_dir(dir: &Path) -> Result<()> {
    check_dir(dir, "the output directory")
}

/// A directory zc-trace writes into (`what` names it in the error):
/// created if missing, checked as `Output` checks every directory, and
/// proven writable by a temp file that is removed.
pub fn check_dir(dir: &Path, what: &str) -> Result<()> {
    let fail = |reason: String| {
        failure(
            1,
            format!("cannot write to {what} {}: {reason}", dir.display()),
        )
    };
    checked_dir(dir).map_err(fail)?;
    tempfile::Builder::new()
        .prefix(".zc-trace-")
        .tempfile_in(dir)
        .map(drop)
        .map_err(|e| fail(format!("{}: choose a writable directory", io_reason(&e))))
}

/// Whether a directory may be written by users other than its owner.
fn shared(meta: &std::fs::Metadata) -> bool {
    // SAFETY: getegid cannot fail.
    writable_by_others(meta.mode(), meta.gid(), unsafe { libc::getegid() })
}

/// World-writable, or group-writable for a group other than our own
/// primary one (with user private groups, as on Fedora, a user's
/// directories are group-writable for a group of one).
fn writable_by_others(mode: u32, gid: u32, our_gid: u32) -> bool {
    mode & 0o002 != 0 || (mode & 0o020 != 0 && gid != our_gid)
}

fn sticky(meta: &std::fs::Metadata) -> bool {
    meta.mode() & libc::S_ISVTX != 0
}

fn euid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

/// Root and we are the users whose files and links we trust.
fn trusted(uid: u32) -> bool {
    uid == 0 || uid == euid()
}

/// Creates `dir` if missing, then checks that nobody but us (and root) can
/// swap anything on the way to it: no link on the given path belongs to
/// another user, and every directory from / down belongs to us or root and
/// is writable by nobody else, unless it is sticky (like /tmp). Returns
/// whether `dir` itself is such a shared sticky directory.
fn checked_dir(dir: &Path) -> Result<bool, String> {
    std::fs::create_dir_all(dir).map_err(|e| {
        format!(
            "cannot create {}: {}: choose a path in a writable directory",
            dir.display(),
            io_reason(&e)
        )
    })?;
    let given = std::path::absolute(dir).map_err(|e| io_reason(&e))?;
    for link in given.ancestors() {
        let Ok(meta) = std::fs::symlink_metadata(link) else {
            continue;
        };
        if meta.file_type().is_symlink() && !trusted(meta.uid()) {
            return Err(format!(
                "{} is a link owned by user {}: give the real path, or a directory only you can write",
                link.display(),
                meta.uid()
            ));
        }
    }
    let real = std::fs::canonicalize(dir).map_err(|e| io_reason(&e))?;
    let mut is_shared = false;
    for step in real.ancestors() {
        let meta = std::fs::metadata(step).map_err(|e| io_reason(&e))?;
        if !trusted(meta.uid()) {
            return Err(format!(
                "{} belongs to user {}, who could swap the file for a link: choose a directory of your own",
                step.display(),
                meta.uid()
            ));
        }
        if shared(&meta) && !sticky(&meta) {
            return Err(format!(
                "{} is writable by other users, who could swap the file for a link: choose a directory \
                 only you can write",
                step.display()
            ));
        }
        if step == real {
            is_shared = shared(&meta);
        }
    }
    Ok(is_shared)
}

/// A pipe, terminal or socket at `path` (through links, as /dev/stdout).
fn is_stream(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| {
        let t = m.file_type();
        t.is_char_device() || t.is_fifo() || t.is_socket()
    })
}

/// What may be replaced at the final name; returns the mode the new file
/// gets: 0600, or that of the file it replaces (a user who made a report
/// readable to others asked for it).
fn check_final_name(path: &Path, in_shared_dir: bool) -> Result<u32, String> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0o600),
        Err(e) => return Err(io_reason(&e)),
    };
    if meta.is_dir() {
        return Err("it is a directory: give a file name".into());
    }
    if meta.file_type().is_block_device() {
        return Err("it is a disk: give a file name".into());
    }
    if in_shared_dir && meta.uid() != euid() {
        return Err(format!(
            "it exists and belongs to user {} in a directory others can write: choose a new name",
            meta.uid()
        ));
    }
    Ok(if meta.is_file() {
        meta.mode() & 0o777
    } else {
        0o600
    })
}

/// Checks every file a run will write, before it starts: refuses two
/// outputs on one path (`--json F --summary F`), which would leave one of
/// them, or a mix, in F, and a name that may not be replaced (another
/// user's file in /tmp), which would otherwise fail only at the end. Call
/// after the outputs and output directories are created.
pub fn check_planned_outputs(paths: &[PathBuf]) -> Result<()> {
    for path in paths {
        let shared = checked_dir(parent_dir(path))
            .map_err(|reason| output_failure(path, "output", reason))?;
        check_final_name(path, shared).map_err(|reason| output_failure(path, "output", reason))?;
    }
    let key = |p: &Path| {
        std::fs::canonicalize(parent_dir(p))
            .map(|d| d.join(p.file_name().unwrap_or_default()))
            .unwrap_or_else(|_| p.to_owned())
    };
    for (i, a) in paths.iter().enumerate() {
        if paths[..i].iter().any(|b| key(b) == key(a)) {
            return Err(failure(
                EXIT_USAGE,
                format!(
                    "two outputs would be written to {}: give each output its own path",
                    a.display()
                ),
            ));
        }
    }
    Ok(())
}

/// The OS error without Rust's "(os error N)" suffix.
pub fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_else_can_write_a_directory() {
        assert!(!writable_by_others(0o755, 100, 1000));
        assert!(writable_by_others(0o777, 1000, 1000));
        assert!(writable_by_others(0o1777, 0, 0), "sticky is checked apart");
        assert!(writable_by_others(0o775, 100, 1000), "a shared group");
        assert!(!writable_by_others(0o775, 1000, 1000), "our private group");
    }
}
