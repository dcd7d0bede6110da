//! The programs, one file per hook family. Each has the same shape: filter on
//! the traced processes first, then do the work.

mod cow;
mod disk;
mod faults;
mod fold;
mod offcpu;
mod process;
mod sched;
pub(crate) mod syscalls;
mod uring;
mod zerocopy;

use crate::maps::{EVENT_TOTALS, PROC_EVENTS, count_drop, row_or_insert, this_cpu, wake_collector};
use zc_trace_common::{ProcCounters, drop};

/// Adds one to an event counter (see `add`).
#[inline(always)]
pub(crate) fn bump(tgid: u32, field: impl Fn(&mut ProcCounters) -> &mut u64) {
    add(tgid, field, 1)
}

/// Adds one to an event counter of a process that may be gone: only if
/// its row is still there (see sched.rs), to the row and the totals, so
/// that the totals stay the sum of the rows.
#[inline(always)]
pub(crate) fn bump_if_row(tgid: u32, field: impl Fn(&mut ProcCounters) -> &mut u64) {
    let Some(row) = PROC_EVENTS.get_ptr_mut(&tgid) else {
        return;
    };
    // SAFETY (both): per-CPU slots, written only by this CPU with
    // preemption off.
    unsafe { *field(&mut *row) += 1 };
    if let Some(total) = this_cpu(&EVENT_TOTALS, 1, 0) {
        unsafe { *field(&mut *total) += 1 };
    }
    wake_collector();
}

/// Adds `n` to an event counter: to the exact totals, then to the
/// process's row (which may be full: the totals never are).
#[inline(always)]
pub(crate) fn add(tgid: u32, field: impl Fn(&mut ProcCounters) -> &mut u64, n: u64) {
    // SAFETY (both): per-CPU slots, written only by this CPU with
    // preemption off.
    if let Some(total) = this_cpu(&EVENT_TOTALS, 1, 0) {
        unsafe { *field(&mut *total) += n };
    }
    match row_or_insert(&PROC_EVENTS, &tgid, || {}) {
        Some(row) => unsafe { *field(&mut *row) += n },
        None => count_drop(drop::PROC_FULL),
    }
    wake_collector();
}
