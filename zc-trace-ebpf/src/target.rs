//! Who is traced: the filter every probe runs first.

use aya_ebpf::helpers::bpf_get_current_pid_tgid;
use zc_trace_common::PIDS_PER_SLOT;

use crate::maps::TARGET_SLOTS;

/// The current (tgid, tid) when the current process is traced.
#[inline(always)]
pub fn current_target() -> Option<(u32, u32)> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    if is_target(tgid) {
        Some((tgid, pid_tgid as u32))
    } else {
        None
    }
}

#[inline(always)]
pub fn is_target(tgid: u32) -> bool {
    match TARGET_SLOTS.get(tgid / PIDS_PER_SLOT) {
        Some(slot) => slot[(tgid % PIDS_PER_SLOT) as usize] != 0,
        None => false,
    }
}

/// Marks or unmarks `tgid` as traced; a one-byte store, safe beside the
/// other CPUs' stores to neighbouring pids.
#[inline(always)]
pub fn set_target(tgid: u32, traced: bool) -> bool {
    match TARGET_SLOTS.get_ptr_mut(tgid / PIDS_PER_SLOT) {
        // SAFETY: the index is < 64 and the slot is 64 bytes.
        Some(slot) => unsafe {
            (*slot)[(tgid % PIDS_PER_SLOT) as usize] = traced as u8;
            true
        },
        None => false,
    }
}
