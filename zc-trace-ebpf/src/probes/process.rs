//! Following children: a process forked by a traced process is traced from
//! its first instruction, because sched_process_fork runs before the child
//! can be scheduled.
//!
//! sched:sched_process_fork
//!   TP_PROTO(struct task_struct *parent, struct task_struct *child)
//! sched:sched_process_exec
//!   TP_PROTO(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
//! sched:sched_process_exit
//!   TP_PROTO(struct task_struct *p, bool group_dead)

use aya_ebpf::{
    bindings::{BPF_NOEXIST, pt_regs},
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
        bpf_get_current_task_btf, bpf_probe_read_kernel, bpf_task_pt_regs,
    },
    macros::btf_tracepoint,
    programs::BtfTracePointContext,
};
use zc_trace_common::{
    Exited, FdKind, ProcInfo, SyscallKey, SyscallStats, drop, scope, syscalls::never_returns,
};

use crate::{
    config::{
        FOLLOW_FORKS, OFF_TASK_MAJ_FLT, OFF_TASK_MIN_FLT, OFF_TASK_RUNTIME, OFF_TASK_STIME,
        OFF_TASK_TGID, OFF_TASK_UTIME, SCOPE,
    },
    maps::{PROC_EVENTS, PROCS, ROW_KEYS, TARGETS, count_drop},
    probes::{
        add,
        cow::settle_exiting,
        fold::send_exit,
        syscalls::{call_nr, record},
    },
    target::{current_target, current_task_field, set_target},
};

#[btf_tracepoint(function = "sched_process_fork")]
pub fn sched_process_fork(ctx: BtfTracePointContext) -> i32 {
    let by_pid = SCOPE.load() == scope::PIDS;
    if by_pid && FOLLOW_FORKS.load() == 0 {
        return 0;
    }
    let Some((parent_tgid, _)) = current_target() else {
        return 0;
    };
    let child: u64 = ctx.arg(1);
    let off = OFF_TASK_TGID.load() as u64;
    // SAFETY: bpf_probe_read_kernel tolerates any address.
    let Ok(child_tgid) = (unsafe { bpf_probe_read_kernel((child + off) as *const i32) }) else {
        return 0;
    };
    let child_tgid = child_tgid as u32;
    // A new thread shares its parent's tgid and is already traced.
    if off == 0 || child_tgid == parent_tgid {
        return 0;
    }
    // A cgroup's or the machine's children are counted by where they run:
    // only their name and parent are worth keeping.
    if by_pid && !follow(child_tgid) {
        return 0;
    }
    let info = ProcInfo {
        ppid: parent_tgid,
        execs: 0,
        comm: bpf_get_current_comm().unwrap_or_default(),
    };
    if PROCS.insert(&child_tgid, &info, 0).is_err() {
        count_drop(drop::PROC_FULL);
    }
    0
}

/// Marks a child of a traced process as traced; false if it cannot be.
#[inline(always)]
fn follow(child_tgid: u32) -> bool {
    if !set_target(child_tgid, true) {
        count_drop(drop::TARGETS_FULL);
        return false;
    }
    // The child is traced from here on; the collector lists these to
    // signal them when tracing stops. EEXIST (an exit not yet seen) is fine.
    if let Err(e) = TARGETS.insert(&child_tgid, &1, BPF_NOEXIST as u64) {
        if e != -EEXIST {
            count_drop(drop::TARGETS_FULL);
        }
    }
    true
}

/// include/uapi/asm-generic/errno-base.h
const EEXIST: i32 = 17;

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
            if PROCS.insert(&tgid, &info, 0).is_err() {
                count_drop(drop::PROC_FULL);
            }
        }
    }
    0
}

/// The exiting thread's own fault counters, min_flt + maj_flt: the kernel
/// bumps them in mm_account_fault() for every completed fault, including
/// those get_user_pages takes with no exception (regs == NULL), which the
/// exception tracepoints and perf's fault events never see.
/// https://github.com/torvalds/linux/blob/v6.18/mm/memory.c (mm_account_fault)
#[inline(always)]
fn task_faults() -> u64 {
    if OFF_TASK_MIN_FLT.load() == 0 {
        return 0;
    }
    // SAFETY: task_struct.min_flt and .maj_flt, unsigned longs.
    unsafe {
        current_task_field::<u64>(OFF_TASK_MIN_FLT.load())
            + current_task_field::<u64>(OFF_TASK_MAJ_FLT.load())
    }
}

/// Adds the exiting thread's CPU time, as the kernel accounts it (utime,
/// stime, se.sum_exec_runtime: what getrusage sums over a process's
/// threads), to its process's counters.
/// https://github.com/torvalds/linux/blob/v6.18/kernel/sched/cputime.c (cputime_adjust)
#[inline(always)]
fn add_task_cpu(tgid: u32) {
    if OFF_TASK_RUNTIME.load() == 0 {
        return;
    }
    // SAFETY: task_struct.utime, .stime and .se.sum_exec_runtime, u64s.
    let (user, system, runtime) = unsafe {
        (
            current_task_field::<u64>(OFF_TASK_UTIME.load()),
            current_task_field::<u64>(OFF_TASK_STIME.load()),
            current_task_field::<u64>(OFF_TASK_RUNTIME.load()),
        )
    };
    add(tgid, |c| &mut c.cpu_user_ns, user);
    add(tgid, |c| &mut c.cpu_system_ns, system);
    add(tgid, |c| &mut c.cpu_runtime_ns, runtime);
}

/// Counts exit and exit_group, which never reach sys_exit, from the
/// exiting thread's saved syscall number; and once a process's last thread
/// is gone, stops tracing it (a recycled pid is not traced by mistake) and
/// tells the collector, which folds its rows out of the maps.
#[btf_tracepoint(function = "sched_process_exit")]
pub fn sched_process_exit(ctx: BtfTracePointContext) -> i32 {
    let group_dead = ctx.arg::<u64>(1) & 0xff != 0;
    let Some((tgid, tid)) = current_target() else {
        left_cgroup_exit(group_dead);
        return 0;
    };
    // SAFETY: helpers on the current task; the result is a BTF pointer to
    // its saved user registers, checked by the verifier.
    let regs = unsafe { bpf_task_pt_regs(bpf_get_current_task_btf()) } as *const pt_regs;
    if !regs.is_null() {
        let id = call_nr(regs, tid);
        // A thread killed by another's exit_group has some other (or no)
        // syscall in orig_ax: only the caller's own exit is counted.
        if never_returns(id) {
            let key = SyscallKey::new(tgid, id, FdKind::None, FdKind::None);
            record(&key, SyscallStats::one_call(false, 0, 0));
        }
    }
    add(tgid, |c| &mut c.faults_task, task_faults());
    settle_exiting(tid);
    add_task_cpu(tgid);
    if group_dead {
        set_target(tgid, false);
        let _ = TARGETS.remove(&tgid);
        announce_exit(tgid);
    }
    0
}

/// A process that was counted in the traced cgroup and moved out before it
/// ended still has rows: its exit is announced too, or they would stay in
/// the maps until the end of the run.
#[inline(always)]
fn left_cgroup_exit(group_dead: bool) {
    if !group_dead || SCOPE.load() != scope::CGROUP {
        return;
    }
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if PROC_EVENTS.get_ptr(&tgid).is_some()
        || PROCS.get_ptr(&tgid).is_some()
        || ROW_KEYS.get_ptr(&tgid).is_some()
    {
        announce_exit(tgid);
    }
}

/// Sends the exited process's pid, name and parent (and, when they fit,
/// its rows: see fold.rs) to the collector; when the ring buffer is full
/// its PROCS entry and rows stay (the collector reads them at the end) and
/// the loss is counted.
#[inline(always)]
fn announce_exit(tgid: u32) {
    let info = PROCS.get_ptr(&tgid);
    let exited = Exited {
        tgid,
        named: 1,
        // SAFETY: a PROCS value, written only by this process's own events.
        // Without one (a process that was running when a cgroup or the
        // machine began to be traced) its name is the exiting thread's.
        info: info.map_or_else(
            || ProcInfo {
                comm: bpf_get_current_comm().unwrap_or_default(),
                ..ProcInfo::UNNAMED
            },
            |i| unsafe { *i },
        ),
        // SAFETY: a plain helper call on the current task.
        cgroup: unsafe { bpf_get_current_cgroup_id() },
    };
    if !send_exit(exited) {
        count_drop(drop::EXITS_UNFOLDED);
    }
}
