//! Scheduler context switches of traced threads, voluntary or not.
//!
//! sched:sched_switch (include/trace/events/sched.h)
//!   TP_PROTO(bool preempt, struct task_struct *prev,
//!            struct task_struct *next, unsigned int prev_state)
//! It fires in prev's context, so the current task is the one switched out.
//! __schedule() (kernel/sched/core.c) charges the switch to prev->nvcsw when
//! it was not a preemption and prev was not runnable (it blocked), and to
//! prev->nivcsw otherwise; the same rule here gives the numbers of
//! /proc/PID/status and getrusage().

use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};

use super::{bump, bump_if_row, offcpu};
use crate::{
    config::{OFF_TASK_FLAGS, TIMED},
    target::{current_target, current_task_field},
};

/// include/linux/sched.h
const TASK_DEAD: u32 = 0x80;

#[btf_tracepoint(function = "sched_switch")]
pub fn sched_switch(ctx: BtfTracePointContext) -> i32 {
    if TIMED.load() != 0 {
        offcpu::switched(&ctx);
    }
    let Some((tgid, _)) = current_target() else {
        return 0;
    };
    let preempt: u64 = ctx.arg(0);
    let prev_state: u64 = ctx.arg(3);
    // A dying thread's last switch out comes after its exit, which may have
    // folded its process: not counted (getrusage does not count it either:
    // the thread's counters were summed into its process before it).
    if prev_state as u32 & TASK_DEAD != 0 {
        return 0;
    }
    let voluntary = preempt & 0xff == 0 && prev_state as u32 != 0;
    // An exiting thread may be switched out (preempted) after its
    // process's exit folded the process's rows: such a switch is not
    // counted (a wrapped command's is not either: its process is no longer
    // traced by then), and makes no new row, which nobody would fold.
    if exiting() {
        if voluntary {
            bump_if_row(tgid, |c| &mut c.ctx_voluntary);
        } else {
            bump_if_row(tgid, |c| &mut c.ctx_involuntary);
        }
    } else if voluntary {
        bump(tgid, |c| &mut c.ctx_voluntary);
    } else {
        bump(tgid, |c| &mut c.ctx_involuntary);
    }
    0
}

/// include/linux/sched.h: set by do_exit before sched_process_exit.
const PF_EXITING: u32 = 0x4;

/// Whether the current thread is on its way out (do_exit).
#[inline(always)]
fn exiting() -> bool {
    let off = OFF_TASK_FLAGS.load();
    // SAFETY: task_struct.flags, an unsigned int.
    off != 0 && unsafe { current_task_field::<u32>(off) } & PF_EXITING != 0
}
