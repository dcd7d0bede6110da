//! Who is traced: the filter every probe runs first.

use aya_ebpf::helpers::{bpf_get_current_ancestor_cgroup_id, bpf_get_current_pid_tgid};
use zc_trace_common::{PIDS_PER_SLOT, scope};

use crate::{
    config::{CGROUP_ID, CGROUP_LEVEL, SCOPE, SELF_TGID},
    maps::TARGET_SLOTS,
};

/// The current (tgid, tid) when the current process is traced.
#[inline(always)]
pub fn current_target() -> Option<(u32, u32)> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    let traced = match SCOPE.load() {
        scope::PIDS => is_target(tgid),
        // The idle tasks (pid 0) are not processes; zc-trace's own calls
        // are its cost, reported apart.
        scope::CGROUP => tgid != 0 && tgid != SELF_TGID.load() && in_traced_cgroup(),
        _ => tgid != 0 && tgid != SELF_TGID.load(),
    };
    if traced {
        Some((tgid, pid_tgid as u32))
    } else {
        None
    }
}

/// Whether the current task is in the traced cgroup or below it: its
/// ancestor at the traced cgroup's level is that cgroup. Checked at each
/// event, so a process moved in counts from the move on and one moved out
/// stops at once.
/// https://github.com/torvalds/linux/blob/v6.18/kernel/bpf/helpers.c (bpf_get_current_ancestor_cgroup_id)
#[inline(always)]
pub fn in_traced_cgroup() -> bool {
    // SAFETY: a plain helper call on the current task.
    let id = unsafe { bpf_get_current_ancestor_cgroup_id(CGROUP_LEVEL.load() as i32) };
    id == CGROUP_ID.load()
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
