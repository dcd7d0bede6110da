//! The programs, one file per hook family. Each has the same shape: filter on
//! the traced processes first, then do the work.

mod faults;
mod process;
mod sched;
pub(crate) mod syscalls;

use crate::maps::{COUNTERS, count_drop};
use zc_trace_common::{ProcCounters, drop};

/// Adds one to a per-process counter, creating the row on first use.
#[inline(always)]
pub(crate) fn bump(tgid: u32, field: impl Fn(&mut ProcCounters) -> &mut u64) {
    if let Some(row) = COUNTERS.get_ptr_mut(&tgid) {
        // SAFETY: per-CPU row, written only by this CPU with preemption off.
        unsafe { *field(&mut *row) += 1 };
        return;
    }
    let mut row = ProcCounters::default();
    *field(&mut row) += 1;
    if COUNTERS.insert(&tgid, &row, 0).is_err() {
        count_drop(drop::PROC_FULL);
    }
}
