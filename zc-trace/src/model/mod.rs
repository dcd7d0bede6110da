//! The pure model: raw counters in, a `Report` out. No I/O, no aya.
//!
//! `Snapshot` is what the collector read from the kernel at one instant
//! (named apart from the kernel's per-process `ProcCounters` map rows);
//! `ledger` turns a snapshot into the copy ledger; `report` holds the
//! serialisable result every renderer reads.

pub mod compare;
pub mod ledger;
pub mod report;
pub mod timeline;

use std::collections::BTreeMap;

use zc_trace_common::{ProcCounters, SyscallKey, SyscallStats, drop};

/// Everything the probes counted, summed over CPUs, at one instant.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub syscalls: Vec<(SyscallKey, SyscallStats)>,
    pub procs: BTreeMap<u32, ProcCounters>,
    pub dropped: [u64; drop::COUNT as usize],
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
