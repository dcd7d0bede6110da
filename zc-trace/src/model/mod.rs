//! The pure model: raw counters in, a `Report` out. No I/O, no aya.
//!
//! `Counters` is what the collector read from the kernel at one instant
//! (named apart from the kernel's per-process `ProcCounters` map rows);
//! `ledger` turns a snapshot into the copy ledger; `report` holds the
//! serialisable result every renderer reads.

pub mod bytes;
pub mod compare;
pub mod interval;
pub mod ledger;
pub mod rates;
pub mod report;
pub mod timeline;

use zc_trace_common::{
    ProcCounters, SyscallKey, SyscallStats, drop,
    syscalls::{COMPAT, i386},
};

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
    /// Per-cgroup sums of every process (--cgroup and -a only): pid 0,
    /// `identity.cgroup` the id, `summed` the processes.
    pub cgroups: Vec<ProcessCounters>,
    /// The v2 paths of the cgroup ids above, as found at the end.
    pub cgroup_paths: std::collections::BTreeMap<u64, String>,
    pub dropped: [u64; drop::COUNT as usize],
}

impl Counters {
    /// Every syscall of every traced process (io_uring requests, which
    /// share the rows, are not calls: sys_exit never saw them).
    pub fn calls(&self) -> u64 {
        self.syscalls
            .iter()
            .filter(|(k, _)| zc_trace_common::uring::opcode(k.nr).is_none())
            .map(|(_, s)| s.count)
            .sum()
    }
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

/// Name, parent and cgroup of one traced process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcIdentity {
    pub ppid: u32,
    pub comm: String,
    /// Its cgroup v2 id (at its exit, or when read), 0 when not known or
    /// not asked for (only --cgroup and -a report cgroups).
    pub cgroup: u64,
}

/// The syscall's name: x86_64's, or `compat:NAME` from the i386 table for a
/// call made from 32-bit code; `syscall_N` / `compat:N` when unknown.
pub fn syscall_name(nr: u32) -> String {
    if nr == i386::SOME_SIGRETURN {
        return "compat:sigreturn|rt_sigreturn".into();
    }
    if nr & COMPAT != 0 {
        let n = nr & !COMPAT;
        return syscalls::x86::Sysno::new(n as usize)
            .map_or_else(|| format!("compat:{n}"), |s| format!("compat:{}", s.name()));
    }
    syscalls::Sysno::new(nr as usize)
        .map(|s| s.name().to_owned())
        .unwrap_or_else(|| format!("syscall_{nr}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compat_calls_are_named_from_the_i386_table() {
        assert_eq!(syscall_name(45), "recvfrom");
        assert_eq!(syscall_name(COMPAT | 45), "compat:brk");
        assert_eq!(syscall_name(i386::RT_SIGRETURN), "compat:rt_sigreturn");
        assert_eq!(syscall_name(COMPAT | 9999), "compat:9999");
        assert_eq!(syscall_name(15), "rt_sigreturn");
    }
}
