//! The report: the one structure the JSON, the summary and the charts are
//! made from. Its JSON form is documented in README.md ("JSON report").

use std::collections::BTreeMap;

use derive_more::AddAssign;
use serde::{Deserialize, Serialize};
use zc_trace_common::{FdKind, syscalls::Class};

/// Bump when a field changes meaning or goes away; adding fields is fine.
/// 2: `copied_*` no longer hold character-device and O_DIRECT bytes, which
/// have their own keys (`device`, `direct_io`). Version 1 files still read:
/// their missing keys read as 0.
pub const SCHEMA_VERSION: u32 = 2;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: u32,
    pub tool: Tool,
    pub target: Target,
    /// Wall-clock start, milliseconds since the Unix epoch.
    pub started_at_unix_ms: u64,
    pub duration_ns: u64,
    pub syscalls: BTreeMap<String, SyscallEntry>,
    pub totals: Totals,
    pub processes: Vec<Process>,
    /// Every traced process summed by cgroup (--cgroup and -a only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cgroups: Vec<CgroupEntry>,
    pub timeline: Timeline,
    /// Records the probes could not keep, by reason; all zero on a clean run.
    pub dropped: BTreeMap<String, u64>,
    /// How the derived figures were computed (model, not measurement).
    pub notes: Vec<String>,
    /// What tracing cost: the probes' own run time and the collector's CPU.
    #[serde(default)]
    pub cost: Cost,
    /// Time in the kernel per call, by syscall: log2 buckets, where entry
    /// `b` counts calls of [2^b, 2^(b+1)) ns (the last is open-ended).
    /// Empty with --no-latency.
    #[serde(default)]
    pub latency: BTreeMap<String, Vec<u64>>,
}

/// zc-trace's own cost during the run, from the kernel's BPF run-time
/// statistics (BPF_ENABLE_STATS) and the collector's rusage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    /// False when the kernel refused to collect BPF run-time statistics.
    pub bpf_stats: bool,
    /// Probe runs, all programs, for every process of the machine (the
    /// filter runs even for processes that are not traced).
    pub bpf_events: u64,
    pub bpf_run_time_ns: u64,
    pub programs: Vec<ProgramCost>,
    /// User + system CPU of zc-trace itself while tracing.
    pub collector_cpu_ns: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProgramCost {
    pub program: String,
    pub events: u64,
    pub run_time_ns: u64,
}

impl Cost {
    pub fn ns_per_event(&self) -> f64 {
        if self.bpf_events == 0 {
            0.0
        } else {
            self.bpf_run_time_ns as f64 / self.bpf_events as f64
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    pub name: String,
    pub version: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// "wrap" (zc-trace -- CMD), "attach" (zc-trace -p PID,...), "cgroup"
    /// (--cgroup PATH) or "all" (-a).
    pub mode: String,
    pub command: Option<Vec<String>>,
    /// The wrapped command's pid, or the first of `-p`'s.
    pub pid: u32,
    /// All of `-p`'s processes, when it named more than one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pids: Vec<u32>,
    /// The traced cgroup v2 directory, with --cgroup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    /// Exit code of the wrapped command (128 + signal if killed); null when
    /// attached or when tracing ended before it exited.
    pub exit_code: Option<i32>,
    pub follow_forks: bool,
    /// The run's name in comparisons (--label); absent: named after its
    /// command or process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Attach mode: the name of the process attached to, when tracing began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comm: Option<String>,
}

impl Report {
    /// The traced command with its program by file name (the directory is
    /// noise): "cp big.iso /tmp". None when a running process was attached.
    pub fn command_line(&self) -> Option<String> {
        let [program, args @ ..] = self.target.command.as_deref()? else {
            return None;
        };
        let program = std::path::Path::new(program)
            .file_name()
            .map_or_else(|| program.clone(), |n| n.to_string_lossy().into_owned());
        let mut words = vec![program];
        words.extend(args.iter().cloned());
        Some(words.join(" "))
    }

    /// The name of the process attached to (`-p`), as the kernel knows it.
    pub fn attached_comm(&self) -> Option<&str> {
        let row = || {
            self.processes
                .iter()
                .find(|p| p.pid == self.target.pid && p.summed == 0)
                .map(|p| p.comm.as_str())
        };
        self.target
            .comm
            .as_deref()
            .or_else(row)
            .filter(|c| !c.is_empty())
    }

    /// What the run traced, for titles: "cp big.iso /tmp (pid 42)" or
    /// "nginx (pid 42)" or "pid 42". Not escaped: a renderer escapes it.
    pub fn target_name(&self) -> String {
        let pid = self.target.pid;
        match self.command_line() {
            Some(command) => format!("{command} (pid {pid})"),
            None if self.target.mode == "attach" && self.target.pids.len() <= 1 => {
                match self.attached_comm() {
                    Some(comm) => format!("{comm} (pid {pid})"),
                    None => format!("pid {pid}"),
                }
            }
            None => self.target.traced(),
        }
    }

    /// A short name for the run in tables and legends: --label, else the
    /// command (at most `LABEL_WORDS` words), else the process name.
    pub fn label(&self) -> Option<String> {
        if let Some(label) = &self.target.label {
            return Some(label.clone());
        }
        if let Some(command) = self.command_line() {
            let words: Vec<&str> = command.split_whitespace().collect();
            let mut short = words[..words.len().min(LABEL_WORDS)].join(" ");
            if words.len() > LABEL_WORDS {
                short.push_str(" ...");
            }
            return Some(short);
        }
        self.attached_comm().map(str::to_owned)
    }
}

/// Words of a command kept in a run's short label.
const LABEL_WORDS: usize = 3;

impl Target {
    /// What was traced, for a title: "pid 42", "pids 42,43", "cgroup
    /// /sys/fs/cgroup/web" or "the whole machine" (a wrapped command is
    /// named by its command line instead). Not escaped.
    pub fn traced(&self) -> String {
        match (self.mode.as_str(), &self.cgroup) {
            ("all", _) => "the whole machine".into(),
            (_, Some(path)) => format!("cgroup {path}"),
            _ if self.pids.len() > 1 => {
                let list: Vec<String> = self.pids.iter().map(u32::to_string).collect();
                format!("pids {}", list.join(","))
            }
            _ => format!("pid {}", self.pid),
        }
    }
}

/// Count, failures, bytes and kernel time of a group of calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, AddAssign)]
pub struct Counts {
    pub count: u64,
    pub errors: u64,
    pub bytes: u64,
    pub time_ns: u64,
}

impl From<zc_trace_common::SyscallStats> for Counts {
    fn from(s: zc_trace_common::SyscallStats) -> Self {
        Counts {
            count: s.count,
            errors: s.errors,
            bytes: s.bytes,
            time_ns: s.time_ns,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SyscallEntry {
    pub nr: u32,
    pub class: Class,
    #[serde(flatten)]
    pub counts: Counts,
    /// Split by the kind of fd used: "file", "direct" (O_DIRECT), "socket",
    /// "pipe", "device" (character device), "other", "unknown", "none" (no
    /// fd), or "SRC->DST" for two-fd calls.
    pub by_fd_kind: BTreeMap<String, Counts>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, AddAssign)]
pub struct ContextSwitches {
    pub voluntary: u64,
    pub involuntary: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, AddAssign)]
pub struct PageFaults {
    /// Faults taken in user mode (each one a kernel entry and exit).
    pub user: u64,
    /// Faults taken in kernel mode, e.g. while copying to a user buffer.
    pub kernel: u64,
    /// File-backed faults served from the page cache (a subset of the two).
    pub file: u64,
    /// Faults taken inside the kernel on the task's behalf without an
    /// exception (get_user_pages: vmsplice, O_DIRECT, process_vm_*): the
    /// kernel's per-thread counters, read as each thread exits, minus the
    /// two above. user + kernel + get_user_pages = the rusage minflt + majflt
    /// of the threads that exited while traced.
    #[serde(default)]
    pub get_user_pages: u64,
}

impl PageFaults {
    /// Every fault the traced threads took, as rusage counts them.
    pub fn total(&self) -> u64 {
        self.user + self.kernel + self.get_user_pages
    }
}

impl ContextSwitches {
    pub fn total(&self) -> u64 {
        self.voluntary + self.involuntary
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, AddAssign)]
pub struct Bytes {
    /// Returned by read-family calls: copied by the CPU, kernel -> user.
    pub copied_to_user: u64,
    /// Accepted by write-family calls: copied by the CPU, user -> kernel.
    pub copied_from_user: u64,
    /// Moved by sendfile/splice/tee/vmsplice/copy_file_range.
    pub zero_copy: u64,
    /// Length of file-backed mmap calls.
    pub mapped: u64,
    /// Read or written by read/write-family calls on a character device
    /// (/dev/null, /dev/zero, ttys ...): the driver decides, not a copy.
    #[serde(default)]
    pub device: u64,
    /// Read or written by read/write-family calls on an O_DIRECT file or
    /// block device: DMA straight to or from the user pages, no CPU copy.
    #[serde(default)]
    pub direct_io: u64,
    /// Read from storage into the page cache on the process's behalf (the
    /// DMA before any copy): pages inserted in its context outside write
    /// calls. Not part of the bytes that crossed the user/kernel boundary.
    #[serde(default)]
    pub disk_read: u64,
}

// Class::ALL lists the classes in discriminant order with Other last (the
// rank of a class in every table and legend): a class numbered before Other
// but missing from ALL fails here.
const _: () = {
    let mut i = 0;
    while i < Class::ALL.len() {
        assert!(Class::ALL[i] as usize == i);
        i += 1;
    }
    assert!(Class::ALL.len() == Class::Other as usize + 1);
};

impl Bytes {
    /// The ledger rule: the column a class's bytes are filed under, `None`
    /// for a class whose bytes the ledger does not count.
    fn column(&mut self, class: Class) -> Option<&mut u64> {
        match class {
            Class::CopyToUser => Some(&mut self.copied_to_user),
            Class::CopyFromUser => Some(&mut self.copied_from_user),
            Class::ZeroCopy => Some(&mut self.zero_copy),
            Class::Mapping => Some(&mut self.mapped),
            Class::Other => None,
        }
    }

    /// Files `bytes` of a call of class `class` on an fd of kind `kind`
    /// under its column. A read or write on a character device or an
    /// O_DIRECT fd is not a CPU copy: the driver, or the device's DMA, moves
    /// the data.
    pub fn add(&mut self, class: Class, kind: FdKind, bytes: u64) {
        let copy = matches!(class, Class::CopyToUser | Class::CopyFromUser);
        let column = match kind {
            FdKind::Device if copy => Some(&mut self.device),
            FdKind::Direct if copy => Some(&mut self.direct_io),
            _ => self.column(class),
        };
        if let Some(n) = column {
            *n += bytes;
        }
    }

    /// The bytes filed under `class` (0 for a class without a column).
    pub fn of(&self, class: Class) -> u64 {
        let mut copy = *self;
        copy.column(class).map_or(0, |n| *n)
    }

    /// Every column's bytes, in ledger order.
    pub fn total(&self) -> u64 {
        Class::ledger().map(|(c, _)| self.of(c)).sum()
    }

    /// The bytes moved since `before`, column by column (0 for a column
    /// that went backwards, which a cumulative count never should).
    pub fn since(&self, before: &Bytes) -> Bytes {
        let mut out = Bytes::default();
        for (class, _) in Class::ledger() {
            if let Some(n) = out.column(class) {
                *n = self.of(class).saturating_sub(before.of(class));
            }
        }
        out.device = self.device.saturating_sub(before.device);
        out.direct_io = self.direct_io.saturating_sub(before.direct_io);
        out.disk_read = self.disk_read.saturating_sub(before.disk_read);
        out
    }

    /// Bytes the CPU copied across the boundary, both ways.
    pub fn cpu_copied(&self) -> u64 {
        self.copied_to_user + self.copied_from_user
    }

    /// The share of the bytes moved that went zero-copy rather than
    /// copied by the CPU, 0..=1 (0 when nothing moved).
    pub fn zero_copy_share(&self) -> f64 {
        let moved = self.zero_copy + self.cpu_copied();
        if moved == 0 {
            0.0
        } else {
            self.zero_copy as f64 / moved as f64
        }
    }
}

#[cfg(test)]
mod share_tests {
    use super::Bytes;

    #[test]
    fn zero_copy_share_of_what_moved() {
        assert_eq!(Bytes::default().zero_copy_share(), 0.0);
        let b = Bytes {
            copied_to_user: 1,
            copied_from_user: 1,
            zero_copy: 2,
            mapped: 100,
            ..Default::default()
        };
        assert_eq!(b.cpu_copied(), 2);
        assert_eq!(b.zero_copy_share(), 0.5);
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, AddAssign)]
pub struct Totals {
    pub syscalls: u64,
    pub errors: u64,
    pub time_ns: u64,
    /// Derived: 2 per returning syscall, 1 per exit/exit_group, 2 per
    /// user-mode page fault.
    pub mode_switches: u64,
    pub context_switches: ContextSwitches,
    pub page_faults: PageFaults,
    pub bytes: Bytes,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Process {
    pub pid: u32,
    pub ppid: u32,
    pub comm: String,
    /// Its cgroup v2 path (at its exit, or at the end of the run), with
    /// --cgroup and -a.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    pub syscalls: BTreeMap<String, SyscallEntry>,
    pub totals: Totals,
    /// Absent for one process. N: this row sums N processes named `comm`
    /// (pid 0), because the run saw more processes than the report keeps
    /// one by one (the busiest).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub summed: u64,
}

/// The processes of one cgroup, summed (each process counted in the cgroup
/// it was in when it exited or the run ended).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CgroupEntry {
    /// The cgroup v2 id (its directory's inode); u64::MAX sums the
    /// cgroups past the first 1024.
    pub id: u64,
    /// Its path below the v2 mount, as /proc/PID/cgroup shows it.
    pub path: String,
    /// Processes summed.
    pub processes: u64,
    pub syscalls: BTreeMap<String, SyscallEntry>,
    pub totals: Totals,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    pub interval_ns: u64,
    /// Cumulative counters at each sample; rates are differences.
    pub samples: Vec<TimelineSample>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineSample {
    pub t_ns: u64,
    pub syscalls: u64,
    /// The ledger's columns, inline in the JSON (copied_to_user ...).
    #[serde(flatten)]
    pub bytes: Bytes,
    pub page_faults: u64,
    pub context_switches: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_are_named_in_json_as_in_the_table() {
        for class in Class::ALL {
            let json = serde_json::to_string(&class).unwrap();
            assert_eq!(json, format!("\"{}\"", class.name()));
            assert_eq!(serde_json::from_str::<Class>(&json).unwrap(), class);
        }
        assert_eq!(
            serde_json::from_str::<Class>("\"direct_io\"").unwrap(),
            Class::Other,
            "a class from a newer zc-trace reads as other"
        );
    }

    #[test]
    fn bytes_are_filed_by_class() {
        let mut b = Bytes::default();
        for (i, class) in Class::ALL.into_iter().enumerate() {
            b.add(class, FdKind::File, 1 << i);
        }
        assert_eq!(b.of(Class::Mapping), 8);
        assert_eq!(b.of(Class::Other), 0);
        assert_eq!(b.total(), 15);
    }
}
