//! Who is traced: the filter every probe runs first.

use aya_ebpf::helpers::{
    bpf_get_current_ancestor_cgroup_id, bpf_get_current_pid_tgid, bpf_get_current_task_btf,
};
use zc_trace_common::{PIDS_PER_SLOT, scope};

use crate::{
    config::{CGROUP_ID, CGROUP_LEVEL, OFF_TASK_PID, OFF_TASK_TGID, SCOPE, SELF_TGID},
    maps::TARGET_SLOTS,
};

/// The current (tgid, tid) when the current process is traced.
#[inline(always)]
pub fn current_target() -> Option<(u32, u32)> {
    let tgid = current_tgid();
    if !is_traced(tgid) {
        return None;
    }
    Some((tgid, current_tid()))
}

/// Whether process `tgid` is counted, in every scope. For a cgroup the
/// test is on the current task: call it for the current process, or for
/// one whose threads share its cgroup (an io_uring request's submitter,
/// completed by its io-wq or SQPOLL thread or in its task work).
#[inline(always)]
pub fn is_traced(tgid: u32) -> bool {
    match SCOPE.load() {
        scope::PIDS => is_target(tgid),
        // The idle tasks (pid 0) are not processes; zc-trace's own calls
        // are its cost, reported apart.
        scope::CGROUP => tgid != 0 && tgid != SELF_TGID.load() && in_traced_cgroup(),
        _ => tgid != 0 && tgid != SELF_TGID.load(),
    }
}

/// The current process's tgid. This filter runs on every syscall of the
/// machine: `current->tgid` is a plain load from the BTF-typed task (the
/// kernel inlines bpf_get_current_task_btf), where
/// bpf_get_current_pid_tgid is a call and a return, each dear with
/// retpolines and SRSO's safe RET.
#[inline(always)]
fn current_tgid() -> u32 {
    match OFF_TASK_TGID.load() {
        // No offsets from BTF: the helper still works.
        0 => (bpf_get_current_pid_tgid() >> 32) as u32,
        // SAFETY: task_struct.tgid's offset.
        off => unsafe { current_task_field(off) },
    }
}

/// The current thread's id: `current->pid`, a plain load like
/// `current_tgid`'s.
#[inline(always)]
fn current_tid() -> u32 {
    match OFF_TASK_PID.load() {
        0 => bpf_get_current_pid_tgid() as u32,
        // SAFETY: task_struct.pid's offset.
        off => unsafe { current_task_field(off) },
    }
}

/// The field at byte `off` of the current task_struct: a plain load from
/// the BTF-typed task, which the verifier checks against the kernel's BTF
/// (`off` must come from a read-only global, a constant to it).
///
/// # Safety
/// `off` is the offset of a field of type `T` (from the kernel's BTF).
#[inline(always)]
pub(crate) unsafe fn current_task_field<T: Copy>(off: u32) -> T {
    unsafe {
        let task = bpf_get_current_task_btf() as *const u8;
        *(task.add(off as usize) as *const T)
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
