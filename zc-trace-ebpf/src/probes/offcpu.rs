//! Off-CPU time of timed syscalls: how long a traced thread was switched
//! out (blocked, or runnable but waiting for a CPU) between its sys_enter
//! and sys_exit. The call's on-CPU time is its wall time minus this.
//!
//! Called from the sched_switch probe (probes/sched.rs) when calls are
//! timed. sched_switch runs on the CPU giving `prev` up to `next`, so the
//! switch-out is stamped for prev (the current task) and the switch-in
//! closes the interval for next; both touch the thread's INFLIGHT slot,
//! which only that thread's own events write (it runs nowhere else while
//! being switched).
//! https://github.com/torvalds/linux/blob/v6.18/kernel/sched/core.c (__schedule)

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_kernel},
    programs::BtfTracePointContext,
};
use zc_trace_common::scope;

use crate::{
    config::{INFLIGHT_MASK, OFF_TASK_PID, OFF_TASK_TGID, SCOPE},
    maps::INFLIGHT,
    target::{is_target, is_traced},
};

/// Stamps the switch-out of the current thread and closes the switch-in
/// of `next`, when either is a traced thread inside a syscall.
#[inline(always)]
pub fn switched(ctx: &BtfTracePointContext) {
    // SAFETY: a plain helper call.
    let now = unsafe { bpf_ktime_get_ns() };
    let prev = bpf_get_current_pid_tgid();
    if is_traced((prev >> 32) as u32) {
        switched_out(prev as u32, now);
    }
    let next: u64 = ctx.arg(2);
    if let Some(tid) = traced_tid(next) {
        switched_in(tid, now);
    }
}

/// The tid of task `task` when its process is traced.
#[inline(always)]
fn traced_tid(task: u64) -> Option<u32> {
    let (pid_off, tgid_off) = (OFF_TASK_PID.load() as u64, OFF_TASK_TGID.load() as u64);
    if pid_off == 0 {
        return None;
    }
    // Only traced threads' sys_enter fill a slot, and the slot is checked
    // against the tid: the filter only saves work. In a cgroup or machine
    // scope it would be on the current task, not `task`: skipped.
    if SCOPE.load() == scope::PIDS {
        // SAFETY: bpf_probe_read_kernel tolerates any address.
        let tgid = unsafe { bpf_probe_read_kernel((task + tgid_off) as *const i32) }.ok()?;
        if !is_target(tgid as u32) {
            return None;
        }
    }
    // SAFETY: as above.
    let tid = unsafe { bpf_probe_read_kernel((task + pid_off) as *const i32) }.ok()?;
    Some(tid as u32)
}

#[inline(always)]
fn switched_out(tid: u32, now: u64) {
    if let Some(slot) = INFLIGHT.get_ptr_mut(tid & INFLIGHT_MASK.load()) {
        // SAFETY: the thread's own slot (see the module comment); a slot
        // of another thread, or of no call in progress, is left alone.
        unsafe {
            if (*slot).tid == tid && (*slot).start_ns != 0 {
                (*slot).off_since_ns = now;
            }
        }
    }
}

#[inline(always)]
fn switched_in(tid: u32, now: u64) {
    if let Some(slot) = INFLIGHT.get_ptr_mut(tid & INFLIGHT_MASK.load()) {
        // SAFETY: as above.
        unsafe {
            let since = (*slot).off_since_ns;
            if (*slot).tid == tid && (*slot).start_ns != 0 && since != 0 {
                (*slot).off_cpu_ns += now.saturating_sub(since);
                (*slot).off_since_ns = 0;
            }
        }
    }
}
