//! Following children: a process forked by a traced process is traced from
//! its first instruction, because sched_process_fork runs before the child
//! can be scheduled.
//!
//! sched:sched_process_fork
//!   TP_PROTO(struct task_struct *parent, struct task_struct *child)
//! sched:sched_process_exec
//!   TP_PROTO(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{bpf_get_current_comm, bpf_probe_read_kernel},
    macros::btf_tracepoint,
    programs::BtfTracePointContext,
};
use zc_trace_common::{ProcInfo, drop};

use crate::{
    config::{FOLLOW_FORKS, OFFSETS},
    maps::{PROCS, TARGETS, count_drop},
    target::current_target,
};

#[btf_tracepoint(function = "sched_process_fork")]
pub fn sched_process_fork(ctx: BtfTracePointContext) -> i32 {
    if FOLLOW_FORKS.load() == 0 {
        return 0;
    }
    let Some((parent_tgid, _)) = current_target() else {
        return 0;
    };
    let child: u64 = ctx.arg(1);
    let off = OFFSETS.load().task_tgid as u64;
    // SAFETY: bpf_probe_read_kernel tolerates any address.
    let Ok(child_tgid) = (unsafe { bpf_probe_read_kernel((child + off) as *const i32) }) else {
        return 0;
    };
    let child_tgid = child_tgid as u32;
    // A new thread shares its parent's tgid and is already traced.
    if off == 0 || child_tgid == parent_tgid {
        return 0;
    }
    if TARGETS.insert(&child_tgid, &1, BPF_NOEXIST as u64).is_err() {
        // EEXIST is fine (a recycled pid); anything else is a full map.
        if !crate::target::is_target(child_tgid) {
            count_drop(drop::TARGETS_FULL);
            return 0;
        }
    }
    let info = ProcInfo {
        ppid: parent_tgid,
        execs: 0,
        comm: bpf_get_current_comm().unwrap_or_default(),
    };
    let _ = PROCS.insert(&child_tgid, &info, 0);
    0
}

#[btf_tracepoint(function = "sched_process_exec")]
pub fn sched_process_exec(_ctx: BtfTracePointContext) -> i32 {
    let Some((tgid, _)) = current_target() else {
        return 0;
    };
    let comm = bpf_get_current_comm().unwrap_or_default();
    match PROCS.get_ptr_mut(&tgid) {
        // SAFETY: written only by this process's own exec and fork events.
        Some(info) => unsafe {
            (*info).comm = comm;
            (*info).execs += 1;
        },
        None => {
            let info = ProcInfo {
                ppid: 0,
                execs: 1,
                comm,
            };
            let _ = PROCS.insert(&tgid, &info, 0);
        }
    }
    0
}
