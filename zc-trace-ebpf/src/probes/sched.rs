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

use super::{bump, offcpu};
use crate::{config::TIMED, target::current_target};

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
    if preempt & 0xff == 0 && prev_state as u32 != 0 {
        bump(tgid, |c| &mut c.ctx_voluntary);
    } else {
        bump(tgid, |c| &mut c.ctx_involuntary);
    }
    0
}
