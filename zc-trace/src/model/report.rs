//! The report: the one structure the JSON, the summary and the charts are
//! made from. Its JSON form is documented in README.md ("JSON report").

use std::collections::BTreeMap;

use derive_more::AddAssign;
use serde::{Deserialize, Serialize};
use zc_trace_common::syscalls::Class;

pub use super::bytes::Bytes;

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
    /// Completed io_uring requests by opcode (the kernel's name without
    /// IORING_OP_; `nr` is the opcode, `time_ns` is not measured: 0). Their
    /// bytes are in `totals.bytes`, their count is not in `totals.syscalls`.
    #[serde(default)]
    pub io_uring: BTreeMap<String, SyscallEntry>,
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
    /// Empty unless --latency.
    #[serde(default)]
    pub latency: BTreeMap<String, Vec<u64>>,
    /// How each syscall was timed; without per-call timing the cost in
    /// CPU time is the kernel's per-process accounting. Reports written
    /// before it existed timed the wall time only.
    #[serde(default = "Timing::wall_only")]
    pub timing: Timing,
}

/// What the run measured of each syscall's time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Timing {
    /// Wall time, split into on-CPU and off-CPU time.
    #[default]
    OnOffCpu,
    /// Wall time only: a report from before the split.
    WallOnly,
    /// Not timed (the default; --latency times calls).
    Off,
}

impl Timing {
    fn wall_only() -> Self {
        Timing::WallOnly
    }

    /// Whether calls were timed at all.
    pub fn per_call(self) -> bool {
        self != Timing::Off
    }

    /// Whether the on-CPU / off-CPU split is known.
    pub fn split(self) -> bool {
        self == Timing::OnOffCpu
    }
}

impl Report {
    /// The CPU time the report's cost figures use, and where it came from.
    pub fn cost_cpu(&self) -> (u64, CpuSource) {
        match self.timing {
            Timing::OnOffCpu => (self.totals.on_cpu_ns, CpuSource::OnCpuInSyscalls),
            Timing::WallOnly => (self.totals.time_ns, CpuSource::WallInSyscalls),
            Timing::Off => (self.totals.cpu.system_ns, CpuSource::SystemTime),
        }
    }
}

/// Where a cost in CPU time comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuSource {
    /// On-CPU time inside syscalls, timed per call in kernel.
    OnCpuInSyscalls,
    /// System CPU time of the traced threads from the kernel's accounting
    /// (per-call timing was off): syscalls, faults and interrupts alike.
    SystemTime,
    /// Wall time in syscalls, blocked time included: a report made before
    /// on-CPU time was measured.
    WallInSyscalls,
}

impl CpuSource {
    pub fn describe(self) -> &'static str {
        match self {
            CpuSource::OnCpuInSyscalls => "on-CPU time in syscalls (timed per call)",
            CpuSource::SystemTime => {
                "system CPU time from the kernel's accounting (per-call timing off)"
            }
            CpuSource::WallInSyscalls => {
                "wall time in syscalls, blocked time included (an older report, without on-CPU time)"
            }
        }
    }
}

/// zc-trace's own cost during the run, from the kernel's BPF run-time
/// statistics (BPF_ENABLE_STATS) and the collector's rusage.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    /// False when BPF run-time statistics were not collected (--no-cost,
    /// or the kernel refused them).
    pub bpf_stats: bool,
    /// "sampled": the statistics were on in short windows
    /// (`bpf_stats_on_ns` of the `bpf_stats_live_ns` the probes were live)
    /// and the figures below are scaled up to the whole run; "always":
    /// on all run long, exact (--exact-cost); "off" (--no-cost).
    /// (Absent from reports written before issue 12, which kept the
    /// statistics on all run long: such a report is written back as read.)
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub bpf_stats_mode: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bpf_stats_on_ns: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub bpf_stats_live_ns: u64,
    /// Probe runs, all programs, for every process of the machine (the
    /// filter runs even for processes that are not traced).
    pub bpf_events: u64,
    pub bpf_run_time_ns: u64,
    pub programs: Vec<ProgramCost>,
    /// User + system CPU of zc-trace itself while tracing.
    pub collector_cpu_ns: u64,
    /// How exited processes left the per-process maps.
    #[serde(default, skip_serializing_if = "Folds::is_empty")]
    pub folds: Folds,
}

/// How the rows of exited processes left the per-process maps during the
/// run: folded by the exit probe into the process's exit record (no bpf()
/// call), or, as a fallback (more than 64 syscall rows, a full exit ring),
/// found by a scan of the maps. The last read, at the end, is not counted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Folds {
    pub by_probe: u64,
    pub by_scan: u64,
    /// Scans of the per-process maps while tracing.
    pub scans: u64,
}

impl Folds {
    fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProgramCost {
    pub program: String,
    pub events: u64,
    pub run_time_ns: u64,
}

impl Cost {
    /// Scales runs and run time seen while the statistics were on (for
    /// 1/factor of the run) up to the whole run. The syscall probes ran
    /// once per call of the traced processes, `traced` calls in all
    /// (`traced_seen` while on): only their other runs are scaled, and
    /// their time follows their runs at the time per run seen.
    pub fn scale(&mut self, factor: f64, traced: u64, traced_seen: u64) {
        let scaled = |n: u64| (n as f64 * factor).round() as u64;
        for p in &mut self.programs {
            let events = if p.program == "sys_exit" || p.program == "sys_enter" {
                traced + scaled(p.events.saturating_sub(traced_seen))
            } else {
                scaled(p.events)
            };
            p.run_time_ns = match p.events {
                0 => 0,
                seen => (p.run_time_ns as f64 * events as f64 / seen as f64).round() as u64,
            };
            p.events = events;
        }
        self.bpf_events = self.programs.iter().map(|p| p.events).sum();
        self.bpf_run_time_ns = self.programs.iter().map(|p| p.run_time_ns).sum();
    }

    /// Adds what the programs' figures grew by from `then` to `now` (two
    /// readings of the same programs).
    pub fn add_growth(&mut self, now: &Cost, then: &Cost) {
        for p in &now.programs {
            let before = then.programs.iter().find(|q| q.program == p.program);
            let events = p.events - before.map_or(0, |q| q.events.min(p.events));
            let run_time_ns =
                p.run_time_ns - before.map_or(0, |q| q.run_time_ns.min(p.run_time_ns));
            self.bpf_events += events;
            self.bpf_run_time_ns += run_time_ns;
            match self.programs.iter_mut().find(|q| q.program == p.program) {
                Some(q) => {
                    q.events += events;
                    q.run_time_ns += run_time_ns;
                }
                None => self.programs.push(ProgramCost {
                    program: p.program.clone(),
                    events,
                    run_time_ns,
                }),
            }
        }
        self.programs
            .sort_by_key(|p| std::cmp::Reverse(p.run_time_ns));
    }

    /// Whether the probes' figures are estimates from sampled windows.
    pub fn sampled(&self) -> bool {
        self.bpf_stats_mode == "sampled"
    }

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
    /// Wall time from entry to return (0 without per-call timing).
    pub time_ns: u64,
    /// The part of `time_ns` on a CPU: the cost of the calls.
    #[serde(default)]
    pub on_cpu_ns: u64,
    /// The part of `time_ns` off the CPU: blocked, or waiting for a CPU.
    #[serde(default)]
    pub off_cpu_ns: u64,
}

impl From<zc_trace_common::SyscallStats> for Counts {
    fn from(s: zc_trace_common::SyscallStats) -> Self {
        let time = CallTime::split(s.time_ns, s.off_cpu_ns);
        Counts {
            count: s.count,
            errors: s.errors,
            bytes: s.bytes,
            time_ns: time.wall_ns,
            on_cpu_ns: time.on_cpu_ns,
            off_cpu_ns: time.off_cpu_ns,
        }
    }
}

/// Time in syscalls, split by where the thread was.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallTime {
    pub wall_ns: u64,
    pub on_cpu_ns: u64,
    pub off_cpu_ns: u64,
}

impl CallTime {
    /// Wall time and its off-CPU part (clamped to the wall time).
    pub fn split(wall_ns: u64, off_cpu_ns: u64) -> Self {
        let off = off_cpu_ns.min(wall_ns);
        CallTime {
            wall_ns,
            on_cpu_ns: wall_ns - off,
            off_cpu_ns: off,
        }
    }
}

/// CPU time of the traced threads from the kernel's own accounting, as
/// getrusage reports it: tick-sampled user and system time scaled to the
/// precise run time (the kernel's cputime_adjust).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, AddAssign)]
pub struct CpuTime {
    pub user_ns: u64,
    pub system_ns: u64,
}

impl CpuTime {
    /// `runtime_ns` split in the ratio of the sampled `user` and `system`
    /// (all to user when nothing was sampled, as the kernel does).
    /// https://github.com/torvalds/linux/blob/v6.18/kernel/sched/cputime.c (cputime_adjust)
    pub fn adjusted(user: u64, system: u64, runtime_ns: u64) -> Self {
        let sampled = user as u128 + system as u128;
        let system_ns = (runtime_ns as u128 * system as u128)
            .checked_div(sampled)
            .map_or(0, |ns| ns.min(runtime_ns as u128) as u64);
        CpuTime {
            user_ns: runtime_ns - system_ns,
            system_ns,
        }
    }

    pub fn total(&self) -> u64 {
        self.user_ns + self.system_ns
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
    /// Wall time in syscalls (0 without per-call timing).
    pub time_ns: u64,
    /// The part of `time_ns` on a CPU, and off it (blocked or waiting).
    #[serde(default)]
    pub on_cpu_ns: u64,
    #[serde(default)]
    pub off_cpu_ns: u64,
    /// User and system CPU time of the traced threads (kernel accounting).
    #[serde(default)]
    pub cpu: CpuTime,
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
    /// The io_uring requests the process submitted, as in `Report`.
    #[serde(default)]
    pub io_uring: BTreeMap<String, SyscallEntry>,
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
    /// The io_uring requests its processes submitted, as in `Report`.
    #[serde(default)]
    pub io_uring: BTreeMap<String, SyscallEntry>,
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
    fn cpu_time_is_the_run_time_split_as_sampled() {
        let c = CpuTime::adjusted(3, 1, 1000);
        assert_eq!((c.user_ns, c.system_ns), (750, 250));
        assert_eq!(CpuTime::adjusted(0, 0, 1000).user_ns, 1000);
        assert_eq!(CpuTime::adjusted(0, 5, 1000).system_ns, 1000);
        assert_eq!(
            CpuTime::adjusted(u64::MAX, u64::MAX, u64::MAX).total(),
            u64::MAX
        );
    }

    #[test]
    fn call_time_is_wall_split_on_and_off_cpu() {
        let t = CallTime::split(100, 30);
        assert_eq!((t.on_cpu_ns, t.off_cpu_ns), (70, 30));
        assert_eq!(
            CallTime::split(100, 300).on_cpu_ns,
            0,
            "off-CPU never above wall"
        );
    }

    /// Sampled statistics: the syscall probes' runs for the traced calls
    /// are the exact count, only their other runs are scaled (and their
    /// time follows at the time per run seen); other programs are scaled.
    #[test]
    fn sampled_cost_scales_only_what_was_not_counted() {
        let program = |name: &str, events, run_time_ns| ProgramCost {
            program: name.into(),
            events,
            run_time_ns,
        };
        let mut c = Cost {
            programs: vec![
                program("sys_exit", 150, 15_000),
                program("sched_switch", 10, 500),
            ],
            ..Default::default()
        };
        // On 1/50 of the run; 100 of the 150 sys_exit runs seen were
        // traced calls, of 10,000 in the run.
        c.scale(50.0, 10_000, 100);
        assert_eq!(c.programs[0].events, 10_000 + 50 * 50);
        assert_eq!(c.programs[0].run_time_ns, 100 * 12_500);
        assert_eq!(c.programs[1].events, 500);
        assert_eq!(c.programs[1].run_time_ns, 25_000);
        assert_eq!(c.bpf_events, 13_000);
        assert_eq!(c.bpf_run_time_ns, 1_275_000);
    }
}
