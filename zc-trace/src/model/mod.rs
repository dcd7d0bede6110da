//! The pure model: raw counters in, a `Report` out. No I/O, no aya.
//!
//! `Counters` is what the collector read from the kernel at one instant
//! (named apart from the kernel's per-process `ProcCounters` map rows);
//! `ledger` turns a snapshot into the copy ledger; `report` holds the
//! serialisable result every renderer reads.

pub mod compare;
pub mod ledger;
pub mod report;
pub mod timeline;

use zc_trace_common::{ProcCounters, SyscallKey, SyscallStats, drop};

/// Everything the probes counted, summed over CPUs, at one instant.
#[derive(Clone, Debug, Default)]
pub struct Counters {
    /// All calls of all traced processes by (syscall, fd kinds), tgid 0:
    /// exact whatever happened to the per-process detail.
    pub syscalls: Vec<(SyscallKey, SyscallStats)>,
    /// Faults and scheduler switches of all traced processes.
    pub events: ProcCounters,
    /// Per-process detail (read at the end of a run only).
    pub processes: Vec<ProcessCounters>,
    pub dropped: [u64; drop::COUNT as usize],
}

/// What the probes counted for one process, or for `summed` processes of
/// one name (pid 0) when a run sees more than are kept one by one.
#[derive(Clone, Debug, Default)]
pub struct ProcessCounters {
    pub pid: u32,
    pub identity: ProcIdentity,
    pub syscalls: Vec<(SyscallKey, SyscallStats)>,
    pub events: ProcCounters,
    /// 0 for one process.
    pub summed: u64,
}

/// Name and parent of one traced process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcIdentity {
    pub ppid: u32,
    pub comm: String,
}

/// The syscall's name on this architecture, or `syscall_N`.
pub fn syscall_name(nr: u32) -> String {
    syscalls::Sysno::new(nr as usize)
        .map(|s| s.name().to_owned())
        .unwrap_or_else(|| format!("syscall_{nr}"))
}
