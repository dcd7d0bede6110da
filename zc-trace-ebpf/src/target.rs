//! Who is traced: the filter every probe runs first.

use aya_ebpf::helpers::{bpf_get_current_pid_tgid, bpf_get_current_task_btf};
use zc_trace_common::PIDS_PER_SLOT;

use crate::{config::OFF_TASK_TGID, maps::TARGET_SLOTS};

/// The current (tgid, tid) when the current process is traced.
#[inline(always)]
pub fn current_target() -> Option<(u32, u32)> {
    if !is_target(current_tgid()) {
        return None;
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    Some(((pid_tgid >> 32) as u32, pid_tgid as u32))
}

/// The current process's tgid. This filter runs on every syscall of the
/// machine: `current->tgid` is a plain load from the BTF-typed task (the
/// kernel inlines bpf_get_current_task_btf), where
/// bpf_get_current_pid_tgid is a call and a return, each dear with
/// retpolines and SRSO's safe RET.
#[inline(always)]
fn current_tgid() -> u32 {
    let off = OFF_TASK_TGID.load();
    if off == 0 {
        // No offsets from BTF: the helper still works.
        return (bpf_get_current_pid_tgid() >> 32) as u32;
    }
    // SAFETY: a BTF-typed pointer to the current task and a field offset
    // from the kernel's BTF: the verifier checks the load.
    unsafe {
        let task = bpf_get_current_task_btf() as *const u8;
        *(task.add(off as usize) as *const u32)
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
