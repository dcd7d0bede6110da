//! Folding an exited process out of the per-process maps, in the probe
//! that sees its last thread exit: its rows, summed over CPUs, go to the
//! collector in its exit record and leave the maps. From user space the
//! same fold took a scan of STATS and ~1 us a row (a read and a delete
//! through bpf()); here it is a lookup per row and CPU and a delete.
//!
//! After this, nothing may make a row for the process that nobody would
//! fold: a thread still on its way out on another CPU is only switched out
//! (sched.rs counts such a switch into an existing row, and a dying
//! thread's last switch not at all). A switch that lands between the sum
//! and the delete here is lost. Once the collector starts its last read of
//! the maps it sets FINISHING: exits then leave their rows to that read.

use core::ffi::c_void;

use aya_ebpf::{
    bindings::BPF_RB_NO_WAKEUP,
    helpers::{bpf_loop, bpf_map_lookup_percpu_elem},
};
use zc_trace_common::{ExitRecord, Exited, ProcCounters, RowKeys, SyscallStats, fold, limits};

use crate::{
    config::NR_CPUS,
    maps::{EXIT_SCRATCH, EXITS, FINISHING, PROC_EVENTS, PROCS, ROW_KEYS, STATS, wake_collector},
};

/// Sends `exited` to the collector, with the process's rows when they are
/// listed and fit, and removes what was sent from the maps. False when the
/// ring buffer is full (nothing sent, nothing removed).
#[inline(always)]
pub fn send_exit(exited: Exited) -> bool {
    let tgid = exited.tgid;
    let Some(record) = EXIT_SCRATCH.get_ptr_mut(0) else {
        return false;
    };
    // SAFETY: this CPU's scratch record, used only while this runs.
    let record = unsafe { &mut *record };
    record.exited = exited;
    record.folded = 0;
    record.rows = 0;
    let list = ROW_KEYS.get_ptr(&tgid);
    // SAFETY: a ROW_KEYS value; the process's threads, which alone append
    // to it, are gone.
    let rows = list.map_or(u64::MAX, |l| unsafe { (*l).count });
    let mut walk = Walk {
        tgid,
        hole: false,
        list: list.unwrap_or(core::ptr::null()),
        record,
    };
    let mut len = HEADER_ONLY;
    let finishing = FINISHING.get(0).is_some_and(|&f| f != 0);
    if !finishing && worth_folding(rows) && room_for(rows) {
        let rows = rows as u32;
        walk.record.events = events_of(tgid);
        // SAFETY: the callback only touches `walk`, which outlives the call.
        unsafe { bpf_loop(rows, sum_row as *mut c_void, (&raw mut walk).cast(), 0) };
        if !walk.hole {
            walk.record.folded = 1;
            walk.record.rows = rows;
            len = fold::HEADER_BYTES + rows * fold::ROW_BYTES;
        }
    }
    let folded = walk.record.folded != 0;
    if len > core::mem::size_of::<ExitRecord>() as u32 {
        return false;
    }
    // SAFETY: the first `len` bytes of the record (bounded just above).
    let bytes = unsafe {
        core::slice::from_raw_parts(
            (walk.record as *const ExitRecord).cast::<u8>(),
            len as usize,
        )
    };
    // Nobody waits on the ring: the collector reads it every sample.
    if EXITS
        .output::<[u8]>(bytes, BPF_RB_NO_WAKEUP as u64)
        .is_err()
    {
        return false;
    }
    wake_collector();
    if finishing {
        // The collector's last read names the process from PROCS.
        return true;
    }
    let _ = PROCS.remove(&tgid);
    if folded {
        // SAFETY: as above.
        let rows = walk.record.rows;
        unsafe { bpf_loop(rows, drop_row as *mut c_void, (&raw mut walk).cast(), 0) };
        let _ = PROC_EVENTS.remove(&tgid);
    }
    let _ = ROW_KEYS.remove(&tgid);
    true
}

/// Bytes of a record sent without rows: up to `rows`.
const HEADER_ONLY: u32 = core::mem::offset_of!(ExitRecord, events) as u32;

/// Row lookups (rows x CPUs) an exit may make with preemption off: ~20
/// rows on 2 CPUs take ~4 us here; a machine with hundreds of CPUs leaves
/// its larger processes to the collector's scan.
const FOLD_BUDGET: u64 = 4096;

/// Whether a process with `rows` listed rows is folded here.
#[inline(always)]
fn worth_folding(rows: u64) -> bool {
    rows <= u64::from(fold::MAX_ROWS) && rows * u64::from(NR_CPUS.load()) <= FOLD_BUDGET
}

/// Whether the exit ring has room for a record with `rows` rows and still
/// for a record without rows from every process a run may follow.
#[inline(always)]
fn room_for(rows: u64) -> bool {
    let free = u64::from(limits::EXITS_BYTES).saturating_sub(EXITS.query(0));
    let record = u64::from(fold::HEADER_BYTES) + rows * u64::from(fold::ROW_BYTES) + 8;
    free >= u64::from(limits::EXITS_HEADERS_ROOM) + record
}

/// What sum_row and drop_row share with send_exit.
struct Walk<'a> {
    tgid: u32,
    /// A listed index no one wrote (see `list_row`): rows may be missing.
    hole: bool,
    list: *const RowKeys,
    record: &'a mut ExitRecord,
}

impl Walk<'_> {
    /// Listed row `i` as `fold::pack`ed (0: no one wrote it).
    #[inline(always)]
    fn packed(&self, i: u32) -> Option<u64> {
        if self.list.is_null() {
            return None;
        }
        // SAFETY: a ROW_KEYS value (checked non-null).
        unsafe { (*self.list).keys.get(i as usize).copied() }
    }
}

/// `key`'s value of per-CPU map `map`, summed over the possible CPUs.
#[inline(always)]
fn sum_over_cpus<M, K, V: Copy + Default + core::ops::AddAssign>(map: &M, key: &K) -> V {
    let mut sum = V::default();
    let map = core::ptr::from_ref(map).cast_mut().cast::<c_void>();
    let key = core::ptr::from_ref(key).cast::<c_void>();
    let mut cpu = 0;
    // NR_CPUS is a constant to the verifier: the loop is bounded.
    while cpu < NR_CPUS.load() {
        // SAFETY: a map lookup; the value, when found, is a V.
        let value = unsafe { bpf_map_lookup_percpu_elem(map, key, cpu) } as *const V;
        if !value.is_null() {
            // SAFETY: as above.
            sum += unsafe { *value };
        }
        cpu += 1;
    }
    sum
}

/// The process's event counters, summed over CPUs.
#[inline(always)]
fn events_of(tgid: u32) -> ProcCounters {
    sum_over_cpus::<_, _, ProcCounters>(&PROC_EVENTS, &tgid)
}

/// bpf_loop's body for send_exit: sums listed row `i` into the record.
#[inline(never)]
extern "C" fn sum_row(i: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: ctx is the Walk send_exit passed.
    let walk = unsafe { &mut *(ctx as *mut Walk) };
    let i = i as u32;
    let Some(packed) = walk.packed(i) else {
        return 1;
    };
    if packed == 0 {
        walk.hole = true;
        return 1;
    }
    let key = fold::key(walk.tgid, packed);
    let stats: SyscallStats = sum_over_cpus(&STATS, &key);
    if let Some(row) = walk.record.row.get_mut(i as usize) {
        row.nr = key.nr;
        row.dst_kind = key.dst_kind;
        row.src_kind = key.src_kind;
        row.stats = stats;
    }
    0
}

/// bpf_loop's body for send_exit: removes listed row `i` from STATS.
#[inline(never)]
extern "C" fn drop_row(i: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: ctx is the Walk send_exit passed.
    let walk = unsafe { &*(ctx as *const Walk) };
    let Some(packed) = walk.packed(i as u32) else {
        return 1;
    };
    let _ = STATS.remove(&fold::key(walk.tgid, packed));
    0
}
