//! Every map the probes use, in one place.

use core::intrinsics::{AtomicOrdering, atomic_xadd};

use aya_ebpf::{
    bindings::{BPF_F_MMAPABLE, BPF_NOEXIST, BPF_RB_FORCE_WAKEUP},
    helpers::bpf_get_smp_processor_id,
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, PerCpuHashMap, ProgramArray, RingBuf},
};
use zc_trace_common::{
    CowSlot, ExitRecord, Inflight, ProcCounters, ProcInfo, RowKeys, SyscallKey, SyscallStats,
    TargetSlot, ZerocopyId, ZerocopySpan, drop, fold, latency, limits, totals,
};

/// The hot-path filter: byte `tgid % 64` of slot `tgid / 64` is 1 while
/// the process is traced. Every probe on every syscall of the machine
/// checks it, so it is an array (an inlined bounds check and a load), not
/// a hash. Sized to pid_max at load.
#[map]
pub static TARGET_SLOTS: Array<TargetSlot> = Array::with_max_entries(limits::MAX_TARGET_SLOTS, 0);

/// The live traced processes (tgid -> 1), for the collector: seeded by it,
/// grown at fork when following children, shrunk at exit.
#[map]
pub static TARGETS: HashMap<u32, u32> = HashMap::with_max_entries(limits::MAX_TARGETS, 0);

/// Names and parents of traced processes, written at fork and exec.
#[map]
pub static PROCS: HashMap<u32, ProcInfo> = HashMap::with_max_entries(limits::MAX_TARGETS, 0);

/// Syscall statistics of all traced processes together, in slot
/// `totals::slot(nr, dst_kind, src_kind)` of this CPU's part (see
/// `this_cpu`): an array, so it cannot fill and the totals stay exact
/// whatever happens to the per-process rows. Memory-mapped by the
/// collector, which reads it every sample without a syscall. Sized to
/// the possible CPUs at load.
#[map]
pub static TOTALS: Array<SyscallStats> =
    Array::with_max_entries(totals::SLOTS, BPF_F_MMAPABLE as u32);

/// Which slots of TOTALS each CPU has written, a bit per slot
/// (`totals::seen_bit`), `totals::SEEN_WORDS` words per CPU: set on a
/// slot's first call on that CPU, so the collector reads the few slots in
/// use instead of all of them every sample. Memory-mapped like TOTALS,
/// sized to the possible CPUs at load.
#[map]
pub static TOTALS_SEEN: Array<u64> =
    Array::with_max_entries(totals::SEEN_WORDS, BPF_F_MMAPABLE as u32);

/// Syscall statistics per (process, syscall, fd kinds), per CPU. Rows of
/// exited processes are folded away by the collector (see EXITS).
/// Preallocated (sized to the CPUs at load; see MAX_STATS for the start-up
/// cost): allocated row by row (NO_PREALLOC), each per-CPU row took a trip
/// through the kernel's per-CPU allocator, whose cache holds 1-3 rows,
/// refilled and drained by irq_work: a fork burst found it empty (rows
/// lost), and the frees made most of the collector's CPU when processes
/// came and went.
#[map]
pub static STATS: PerCpuHashMap<SyscallKey, SyscallStats> =
    PerCpuHashMap::with_max_entries(limits::MAX_STATS, 0);

/// The keys of each process's STATS rows, listed as they are created, so
/// that its exit can fold them by key (see probes/process.rs): a scan of
/// STATS from user space cost ~1 us a row. Sized like PROC_EVENTS.
#[map]
pub static ROW_KEYS: HashMap<u32, RowKeys> = HashMap::with_max_entries(limits::MAX_TARGETS, 0);

/// Slot 0: 1 once the collector reads the maps for the last time: exits
/// then leave their rows (and PROCS entry) in the maps for that read
/// instead of sending them in a record it would never see.
#[map]
pub static FINISHING: Array<u32> = Array::with_max_entries(1, 0);

/// One empty `RowKeys`, never written: what a new ROW_KEYS entry starts
/// as (too large for the stack).
#[map]
pub static NO_ROWS: Array<RowKeys> = Array::with_max_entries(1, 0);

/// Where an exit builds its `ExitRecord` (too large for the stack).
#[map]
pub static EXIT_SCRATCH: PerCpuArray<ExitRecord> = PerCpuArray::with_max_entries(1, 0);

/// Fault and scheduler counters of all traced processes together, one
/// slot per CPU, memory-mapped like TOTALS: exact, and all the timeline
/// needs. Sized to the possible CPUs at load.
#[map]
pub static EVENT_TOTALS: Array<ProcCounters> = Array::with_max_entries(1, BPF_F_MMAPABLE as u32);

/// Fault and scheduler counters per process, per CPU. Preallocated, as
/// STATS.
#[map]
pub static PROC_EVENTS: PerCpuHashMap<u32, ProcCounters> =
    PerCpuHashMap::with_max_entries(limits::MAX_TARGETS, 0);

/// Traced processes whose last thread exited (`ExitRecord`s, with their
/// rows when the exit could fold them): STATS and PROC_EVENTS then hold
/// only live processes however many come and go.
#[map]
pub static EXITS: RingBuf = RingBuf::with_byte_size(limits::EXITS_BYTES, 0);

/// Non-zero while the collector waits longer than --interval between
/// timeline samples because nothing changed (zc-trace/src/session/
/// cadence.rs): the next count of a traced process clears it and wakes
/// the collector through WAKEUPS, so the timeline shows when activity
/// resumed as closely as if it had never backed off.
#[map]
pub static WAKE: Array<u32> = Array::with_max_entries(1, 0);

/// Where that wakeup goes: one 8-byte record per backing off.
#[map]
pub static WAKEUPS: RingBuf = RingBuf::with_byte_size(4096, 0);

/// Wakes the collector if it asked for it (see WAKE): a load and a branch
/// on the traced processes' paths only, never on another process's.
#[inline(always)]
pub fn wake_collector() {
    let Some(flag) = WAKE.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: a one-word array slot; CPUs racing to clear it each send a
    // record, and the collector takes any number of them as one wakeup.
    unsafe {
        if *flag != 0 {
            *flag = 0;
            let _ = WAKEUPS.output::<u64>(0u64, BPF_RB_FORCE_WAKEUP as u64);
        }
    }
}

/// Syscalls in flight, in slot `tid & INFLIGHT_MASK`: when they started.
/// An array rather than a hash: no allocation or lock on the hot path.
#[map]
pub static INFLIGHT: Array<Inflight> = Array::with_max_entries(limits::MAX_INFLIGHT, 0);

/// Log2 histogram of time in the kernel per syscall (timed runs only):
/// slot `nr * BUCKETS + bucket`, per CPU.
#[map]
pub static LATENCY: PerCpuArray<u64> = PerCpuArray::with_max_entries(latency::SLOTS, 0);

/// Slot 0: sys_exit_detail, the sys_exit of the few calls whose bytes need
/// more than the return value (probes/syscalls.rs). The loader fills it
/// before sys_exit is attached.
#[map]
pub static DETAIL: ProgramArray = ProgramArray::with_max_entries(1, 0);

/// Each zero-copy send's place in its socket's running total, until its
/// completion notification is read. LRU: a program that never reads them
/// pushes out only its own oldest sends.
#[map]
pub static ZC_SENDS: LruHashMap<ZerocopyId, ZerocopySpan> =
    LruHashMap::with_max_entries(limits::MAX_ZEROCOPY_SENDS, 0);

/// Running total of zero-copy bytes sent per socket (`struct sock *`).
#[map]
pub static ZC_SOCKETS: LruHashMap<u64, u64> =
    LruHashMap::with_max_entries(limits::MAX_ZEROCOPY_SOCKETS, 0);

/// Per thread, in slot `tid & COW_MASK`: up to two pages that may be
/// copy-on-write copies, until their faults are over (see probes/cow.rs).
/// An array rather than a hash: every page fault of a traced thread looks
/// here, and an array lookup is a few instructions, a hash lookup a call.
#[map]
pub static COW_CANDIDATES: Array<CowSlot> = Array::with_max_entries(limits::MAX_COW_SLOTS, 0);

/// What the probes could not record (indices in `zc_trace_common::drop`).
#[map]
pub static DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(drop::COUNT, 0);

/// Bytes of io_uring SEND_ZC requests whose notification has not arrived,
/// by (ring, user_data): the notification CQE carries the outcome but not
/// the bytes. LRU: a ring torn down before its notifications leaves no
/// entry behind for good.
#[map]
pub static ZC_PENDING: LruHashMap<[u64; 2], u64> =
    LruHashMap::with_max_entries(limits::MAX_ZC_PENDING, 0);

/// This CPU's slot of `map[key]`, created zeroed on first use, after which
/// `created` runs; None when the map is full. NOEXIST: of two CPUs creating
/// one row at once, one creates it and the other finds it (a new per-CPU
/// row starts at zero on every CPU, so neither count is lost).
#[inline(always)]
pub fn row_or_insert<K, V: Default>(
    map: &PerCpuHashMap<K, V>,
    key: &K,
    created: impl FnOnce(),
) -> Option<*mut V> {
    if let Some(row) = map.get_ptr_mut(key) {
        return Some(row);
    }
    let made = map.insert(key, &V::default(), BPF_NOEXIST as u64).is_ok();
    let row = map.get_ptr_mut(key)?;
    if made {
        created();
    }
    Some(row)
}

/// This CPU's slot of the STATS row `key`, listed in ROW_KEYS when created.
#[inline(always)]
pub fn stats_row(key: &SyscallKey) -> Option<*mut SyscallStats> {
    row_or_insert(&STATS, key, || list_row(key))
}

/// Adds a new STATS row's key to its process's ROW_KEYS list. A list that
/// is full or cannot be made only counts past MAX_ROWS (or is missing):
/// that process's exit then leaves its rows to the collector's scan.
#[inline(never)]
fn list_row(key: &SyscallKey) {
    let list = match ROW_KEYS.get_ptr_mut(&key.tgid) {
        Some(list) => list,
        None => {
            let Some(empty) = NO_ROWS.get(0) else { return };
            // EEXIST: another thread of the process made it first.
            let _ = ROW_KEYS.insert(&key.tgid, empty, BPF_NOEXIST as u64);
            let Some(list) = ROW_KEYS.get_ptr_mut(&key.tgid) else {
                return;
            };
            list
        }
    };
    // SAFETY: a ROW_KEYS value. Two threads of the process listing rows at
    // once on two CPUs may read the same `count` and write the same index;
    // the count still grows by two (an atomic add: the BPF target has no
    // fetch-and-add), so the list has a hole, which the exit sees (a
    // listed key is never 0) and leaves that process to the collector.
    unsafe {
        let at = (*list).count;
        if at < u64::from(fold::MAX_ROWS) {
            (*list).keys[at as usize] = fold::pack(key.nr, key.dst_kind, key.src_kind);
        }
        atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(&raw mut (*list).count, 1);
    }
}

/// Slot `slot` of this CPU's part of an array laid out per CPU by hand
/// (`slots` per CPU): like a per-CPU array, only this CPU writes it while
/// the program runs, but the collector can map it into memory.
#[inline(always)]
pub fn this_cpu<T>(map: &Array<T>, slots: u32, slot: u32) -> Option<*mut T> {
    // SAFETY: a plain helper call (inlined by the verifier).
    let cpu = unsafe { bpf_get_smp_processor_id() };
    map.get_ptr_mut(cpu * slots + slot)
}

/// Counts one lost record of the given kind.
#[inline(always)]
pub fn count_drop(kind: u32) {
    count_drops(kind, 1)
}

/// Counts `n` lost records of one kind.
#[inline(always)]
pub fn count_drops(kind: u32, n: u64) {
    if let Some(slot) = DROPS.get_ptr_mut(kind) {
        // SAFETY: a per-CPU slot, only this CPU writes it and preemption is
        // off while a BPF program runs.
        unsafe { *slot += n };
    }
}
