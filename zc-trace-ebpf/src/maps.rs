//! Every map the probes use, in one place.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, PerCpuArray, PerCpuHashMap},
};
use zc_trace_common::{
    Inflight, ProcCounters, ProcInfo, SyscallKey, SyscallStats, TargetSlot, drop, latency, limits,
};

/// The hot-path filter: byte `tgid % 64` of slot `tgid / 64` is 1 while
/// the process is traced. Every probe on every syscall of the machine
/// checks it, so it is an array (an inlined bounds check and a load), not
/// a hash. Sized to pid_max at load.
#[map]
pub static TARGET_SLOTS: Array<TargetSlot> = Array::with_max_entries(limits::MAX_TARGET_SLOTS, 0);

/// The traced processes (tgid -> 1), for the collector: seeded by it,
/// grown at fork when following children.
#[map]
pub static TARGETS: HashMap<u32, u32> = HashMap::with_max_entries(limits::MAX_TARGETS, 0);

/// Names and parents of traced processes, written at fork and exec.
#[map]
pub static PROCS: HashMap<u32, ProcInfo> = HashMap::with_max_entries(limits::MAX_TARGETS, 0);

/// Syscall statistics per (process, syscall, fd kinds), per CPU.
#[map]
pub static STATS: PerCpuHashMap<SyscallKey, SyscallStats> =
    PerCpuHashMap::with_max_entries(limits::MAX_STATS, 0);

/// Fault and scheduler counters per process, per CPU.
#[map]
pub static COUNTERS: PerCpuHashMap<u32, ProcCounters> =
    PerCpuHashMap::with_max_entries(limits::MAX_TARGETS, 0);

/// Syscalls in flight, in slot `tid & INFLIGHT_MASK`: when they started.
/// An array rather than a hash: no allocation or lock on the hot path.
#[map]
pub static INFLIGHT: Array<Inflight> = Array::with_max_entries(limits::MAX_INFLIGHT, 0);

/// Log2 histogram of time in the kernel per syscall (timed runs only):
/// slot `nr * BUCKETS + bucket`, per CPU.
#[map]
pub static LATENCY: PerCpuArray<u64> = PerCpuArray::with_max_entries(latency::SLOTS, 0);

/// What the probes could not record (indices in `zc_trace_common::drop`).
#[map]
pub static DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(drop::COUNT, 0);

/// Counts one lost record of the given kind.
#[inline(always)]
pub fn count_drop(kind: u32) {
    if let Some(slot) = DROPS.get_ptr_mut(kind) {
        // SAFETY: a per-CPU slot, only this CPU writes it and preemption is
        // off while a BPF program runs.
        unsafe { *slot += 1 };
    }
}
