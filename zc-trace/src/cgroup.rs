//! cgroup v2 for `--cgroup` and the per-cgroup report: where the v2
//! hierarchy is mounted (/sys/fs/cgroup on most distributions,
//! /sys/fs/cgroup/unified beside the v1 controllers in the hybrid layout),
//! the id and depth the probes filter on, and ids back to paths.
//!
//! A cgroup v2 id is the inode number of its directory in cgroupfs
//! (kernfs), which is what bpf_get_current_cgroup_id returns.

use std::{
    collections::BTreeMap,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use anyhow::Result;

use crate::{error::failure, render::format::printable};

/// statfs(2) f_type of cgroup v2 (include/uapi/linux/magic.h).
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// A cgroup to trace: its directory, v2 id and depth below the v2 root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Traced {
    pub dir: PathBuf,
    pub id: u64,
    pub level: u32,
}

/// Where cgroup v2 is mounted, from /proc/self/mounts (the first mount).
pub fn v2_root() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    v2_root_in(&mounts)
}

fn v2_root_in(mounts: &str) -> Option<PathBuf> {
    mounts.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let (_, dir, fs) = (f.next()?, f.next()?, f.next()?);
        (fs == "cgroup2").then(|| PathBuf::from(unescape_mount(dir)))
    })
}

/// /proc/self/mounts writes a space as \040 (and tab, newline, backslash
/// likewise in octal).
fn unescape_mount(field: &str) -> String {
    let mut out = String::new();
    let mut rest = field;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest
            .get(i + 1..i + 4)
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(c) => {
                out.push(c as char);
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn is_cgroup2(dir: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: statfs fills the struct we pass; c is a valid C string.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    unsafe { libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type as i64 == CGROUP2_SUPER_MAGIC }
}

/// `--cgroup`'s argument: a directory on the v2 mount, or a v2 path as
/// /proc/PID/cgroup shows it ("/system.slice/nginx.service"), taken from
/// the v2 root.
pub fn resolve(arg: &Path) -> Result<Traced> {
    let shown = printable(&arg.to_string_lossy()).into_owned();
    let Some(root) = v2_root() else {
        return Err(failure(
            1,
            "this machine has no cgroup v2 mounted: mount it (`mount -t cgroup2 none /sys/fs/cgroup/unified`) or use -p or -a",
        ));
    };
    let dir = if arg.is_dir() && is_cgroup2(arg) {
        arg.to_owned()
    } else {
        let under_root = root.join(arg.strip_prefix("/").unwrap_or(arg));
        if !(under_root.is_dir() && is_cgroup2(&under_root)) {
            let why = if arg.is_dir() {
                "is not a cgroup v2 directory (a v1 controller's?)"
            } else {
                "is no cgroup"
            };
            return Err(failure(
                1,
                format!(
                    "{shown} {why}: give a directory under the cgroup v2 mount {} or a path as /proc/PID/cgroup shows it (0::/PATH)",
                    root.display()
                ),
            ));
        }
        under_root
    };
    let dir = dir.canonicalize().unwrap_or(dir);
    let root = root.canonicalize().unwrap_or(root);
    let Ok(rel) = dir.strip_prefix(&root) else {
        return Err(failure(
            1,
            format!(
                "{shown} is not under the cgroup v2 mount {}: give a directory below it",
                root.display()
            ),
        ));
    };
    let id = std::fs::metadata(&dir)
        .map_err(|e| failure(1, format!("cannot read {shown}: {e}")))?
        .ino();
    Ok(Traced {
        level: rel.components().count() as u32,
        dir,
        id,
    })
}

/// The v2 paths of cgroup ids ("/system.slice/x.service"), found by
/// walking the v2 mount once, when the first id is asked for.
#[derive(Default)]
pub struct Names {
    paths: BTreeMap<u64, String>,
    walked: bool,
}

/// Directories walked at most, so a machine with a huge hierarchy cannot
/// stall the end of a run.
const MAX_WALK: usize = 100_000;

impl Names {
    /// The path of cgroup `id`, or "cgroup ID" for one that is gone.
    pub fn path(&mut self, id: u64) -> String {
        if !self.paths.contains_key(&id) && !self.walked {
            self.walk();
        }
        self.paths
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("(removed cgroup {id})"))
    }

    /// Lets the next unknown id walk the mount again (cgroups made since;
    /// at most one walk per call of this).
    pub fn forget_misses(&mut self) {
        self.walked = false;
    }

    fn walk(&mut self) {
        self.walked = true;
        let Some(root) = v2_root() else { return };
        let mut stack = vec![root.clone()];
        let mut seen = 0;
        while let Some(dir) = stack.pop() {
            seen += 1;
            if seen > MAX_WALK {
                break;
            }
            let Ok(meta) = std::fs::metadata(&dir) else {
                continue;
            };
            let rel = dir.strip_prefix(&root).unwrap_or(&dir);
            self.paths
                .insert(meta.ino(), format!("/{}", rel.to_string_lossy()));
            if let Ok(entries) = std::fs::read_dir(&dir) {
                stack.extend(
                    entries
                        .flatten()
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                        .map(|e| e.path()),
                );
            }
        }
    }
}

/// The v2 cgroup id of live process `pid` (from /proc/PID/cgroup's "0::"
/// line), or 0 when it is gone.
pub fn of_process(pid: u32, root: &Path) -> u64 {
    let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) else {
        return 0;
    };
    let Some(path) = text.lines().find_map(|l| l.strip_prefix("0::")) else {
        return 0;
    };
    let dir = root.join(path.trim_start_matches('/'));
    std::fs::metadata(dir).map_or(0, |m| m.ino())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_v2_mount_in_both_layouts() {
        let hybrid = "tmpfs /sys/fs/cgroup tmpfs ro 0 0\n\
                      cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n\
                      cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n";
        assert_eq!(v2_root_in(hybrid), Some("/sys/fs/cgroup/unified".into()));
        let unified = "cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n";
        assert_eq!(v2_root_in(unified), Some("/sys/fs/cgroup".into()));
        assert_eq!(
            v2_root_in("cgroup /sys/fs/cgroup/cpu cgroup rw 0 0\n"),
            None
        );
        assert_eq!(unescape_mount("/a\\040b"), "/a b");
    }

    #[test]
    fn a_path_that_is_no_cgroup_is_refused_with_the_mount_named() {
        if v2_root().is_none() {
            return;
        }
        let e = resolve(Path::new("/no/such/cgroup")).unwrap_err();
        assert!(e.to_string().contains("is no cgroup"), "{e}");
        let e = resolve(Path::new("/etc")).unwrap_err();
        assert!(e.to_string().contains("not a cgroup v2 directory"), "{e}");
    }
}
