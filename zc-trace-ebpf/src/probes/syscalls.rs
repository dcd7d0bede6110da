//! Every syscall of the traced processes: count, errors, bytes, time, and the
//! kind of fd it used.
//!
//! raw_syscalls:sys_enter  TP_PROTO(struct pt_regs *regs, long id)
//! raw_syscalls:sys_exit   TP_PROTO(struct pt_regs *regs, long ret)
//!
//! A call is counted at sys_exit, where the saved user registers still hold
//! its number (orig_ax) and arguments: one program run per call is enough to
//! count it. sys_enter is attached only to time calls (`TIMED`). exit and
//! exit_group never reach sys_exit; probes/process.rs counts them when the
//! thread exits.

use aya_ebpf::{
    bindings::pt_regs,
    helpers::{bpf_ktime_get_ns, bpf_probe_read_user},
    macros::btf_tracepoint,
    programs::BtfTracePointContext,
};
use zc_trace_common::{
    FdKind, Inflight, SyscallKey, SyscallStats, drop, latency, limits,
    syscalls::{
        self as nr, MAP_ANONYMOUS, is_child_return, is_sigreturn, recorded_nr, same_call, shape,
    },
    totals,
};

use crate::{
    config::{INFLIGHT_MASK, TIMED},
    fds::fd_kind,
    maps::{INFLIGHT, LATENCY, STATS, TOTALS, count_drop, row_or_insert, this_cpu},
    target::current_target,
};

#[btf_tracepoint(function = "sys_enter")]
pub fn sys_enter(ctx: BtfTracePointContext) -> i32 {
    let Some((_, tid)) = current_target() else {
        return 0;
    };
    let id: i64 = ctx.arg(1);
    if let Some(slot) = INFLIGHT.get_ptr_mut(tid & INFLIGHT_MASK.load()) {
        // SAFETY: only this thread writes a slot with its tid while it is
        // in a syscall; a colliding thread is caught by the tid check.
        unsafe {
            *slot = Inflight {
                start_ns: bpf_ktime_get_ns(),
                tid,
                nr: id as u32,
                off_cpu_ns: 0,
                off_since_ns: 0,
            }
        };
    }
    0
}

#[btf_tracepoint(function = "sys_exit")]
pub fn sys_exit(ctx: BtfTracePointContext) -> i32 {
    let Some((tgid, tid)) = current_target() else {
        return 0;
    };
    let regs: *const pt_regs = ctx.arg(0);
    let ret: i64 = ctx.arg(1);
    let id = call_nr(regs, tid);
    if is_child_return(id, ret) {
        return 0;
    }
    let (time_ns, off_cpu_ns) = if TIMED.load() != 0 {
        finish_timing(tid, id)
    } else {
        (0, 0)
    };
    let failed = (-4095..0).contains(&ret) && !is_sigreturn(id);

    let shape = shape(id);
    let dst_kind = match shape.dst_fd {
        Some(i) => fd_kind(arg(regs, i)),
        None if id == nr::MMAP => {
            // mmap(addr, len, prot, flags, fd, off): anonymous maps pass -1.
            if arg(regs, 3) & MAP_ANONYMOUS != 0 {
                FdKind::None
            } else {
                fd_kind(arg(regs, 4))
            }
        }
        None => FdKind::None,
    };
    let src_kind = match shape.src_fd {
        Some(i) => fd_kind(arg(regs, i)),
        None => FdKind::None,
    };
    let bytes = if failed || ret <= 0 {
        0
    } else if shape.ret_is_bytes {
        ret as u64
    } else if id == nr::MMAP && dst_kind != FdKind::None {
        arg(regs, 1)
    } else if id == nr::RECVMMSG || id == nr::SENDMMSG {
        mmsg_bytes(arg(regs, 1), ret as u64)
    } else {
        0
    };
    let key = SyscallKey::new(tgid, id, dst_kind, src_kind);
    let call = SyscallStats {
        off_cpu_ns,
        ..SyscallStats::one_call(failed, bytes, time_ns)
    };
    record(&key, call);
    0
}

/// The number to record for the call leaving the kernel (see
/// `recorded_nr`): orig_ax, marked when the call came from 32-bit code
/// (whose numbers are i386's); for a sigreturn, which overwrote orig_ax,
/// the number its sys_enter saw when it was timed.
#[inline(always)]
pub(crate) fn call_nr(regs: *const pt_regs, tid: u32) -> u32 {
    // SAFETY: a BTF-typed pointer to the live pt_regs (see `arg`).
    let (orig_ax, cs) = unsafe { ((*regs).orig_rax as u32, (*regs).cs) };
    let compat = cs & 0xffff != nr::USER64_CS;
    // Only the rare sigreturn looks at its entry: the common path stays
    // two loads from the registers.
    let entered = if orig_ax == nr::NO_SYSCALL && TIMED.load() != 0 {
        entered_nr(tid)
    } else {
        None
    };
    recorded_nr(orig_ax, compat, entered)
}

/// The number this thread's sys_enter saw, if it is still in its slot.
#[inline(always)]
fn entered_nr(tid: u32) -> Option<u32> {
    let slot = INFLIGHT.get_ptr_mut(tid & INFLIGHT_MASK.load())?;
    // SAFETY: see sys_enter.
    let start = unsafe { *slot };
    (start.tid == tid && start.start_ns != 0).then_some(start.nr)
}

/// Time since this thread's sys_enter of call `id` (and the call's bucket
/// in the latency histogram) and the part of it spent off the CPU, or 0
/// (counted as untimed) when the entry was not seen. Clears the entry.
#[inline(always)]
fn finish_timing(tid: u32, id: u32) -> (u64, u64) {
    let Some(slot) = INFLIGHT.get_ptr_mut(tid & INFLIGHT_MASK.load()) else {
        return (0, 0);
    };
    // SAFETY: see sys_enter.
    let start = unsafe { *slot };
    if start.tid != tid {
        // This thread has not entered a call since tracing began (the call
        // was in progress at attach), or, when pid_max exceeds the slots,
        // another thread took the slot: counted apart from real losses.
        count_drop(drop::IN_PROGRESS);
        return (0, 0);
    }
    if !same_call(start.nr, id) || start.start_ns == 0 {
        count_drop(drop::UNTIMED);
        return (0, 0);
    }
    // SAFETY: as above; cleared so a later exit without entry is not timed
    // against this start.
    unsafe { (*slot).start_ns = 0 };
    // SAFETY: a plain helper call.
    let ns = unsafe { bpf_ktime_get_ns() }.saturating_sub(start.start_ns);
    if id < latency::MAX_NR {
        if let Some(count) = LATENCY.get_ptr_mut(id * latency::BUCKETS + latency::bucket(ns)) {
            // SAFETY: a per-CPU slot, written only by this CPU.
            unsafe { *count += 1 };
        }
    }
    (ns, start.off_cpu_ns.min(ns))
}

/// Syscall argument `i` from the saved user registers (x86_64 ABI:
/// rdi, rsi, rdx, r10, r8, r9).
#[inline(always)]
pub(crate) fn arg(regs: *const pt_regs, i: u8) -> u64 {
    // SAFETY: tp_btf hands us a BTF-typed pointer to the live pt_regs; the
    // verifier checks these loads against the kernel's struct pt_regs.
    unsafe {
        match i {
            0 => (*regs).rdi,
            1 => (*regs).rsi,
            2 => (*regs).rdx,
            3 => (*regs).r10,
            4 => (*regs).r8,
            _ => (*regs).r9,
        }
    }
}

/// Sum of `msg_len` over the first `n` entries of a user `struct mmsghdr`
/// array (include/linux/socket.h: a 56-byte msghdr, then msg_len).
#[inline(always)]
fn mmsg_bytes(vec: u64, n: u64) -> u64 {
    const MMSGHDR_SIZE: u64 = 64;
    const MSG_LEN_OFFSET: u64 = 56;
    if n > limits::MAX_MMSG as u64 {
        count_drop(drop::MMSG_TRUNCATED);
    }
    let mut total = 0u64;
    for i in 0..limits::MAX_MMSG as u64 {
        if i >= n {
            break;
        }
        let at = vec + i * MMSGHDR_SIZE + MSG_LEN_OFFSET;
        // SAFETY: bpf_probe_read_user tolerates any address.
        match unsafe { bpf_probe_read_user(at as *const u32) } {
            Ok(len) => total += len as u64,
            Err(_) => count_drop(drop::MMSG_UNREADABLE),
        }
    }
    total
}

/// Adds a call's figures to the exact totals, then to its process's row
/// (which may be full: the totals never are).
#[inline(always)]
pub(crate) fn record(key: &SyscallKey, call: SyscallStats) {
    if let Some(slot) = totals::slot(key.nr, key.dst_kind, key.src_kind) {
        if let Some(total) = this_cpu(&TOTALS, totals::SLOTS, slot) {
            // SAFETY: this CPU's slot, written only by this CPU with
            // preemption off.
            unsafe { *total += call };
        }
    }
    match row_or_insert(&STATS, key) {
        // SAFETY: as above.
        Some(row) => unsafe { *row += call },
        None => count_drop(drop::STATS_FULL),
    }
}
