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
    cty::c_void,
    helpers::{bpf_ktime_get_ns, bpf_loop, bpf_probe_read_user},
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

use super::zerocopy::{
    MSG_ERRQUEUE, MSG_ZEROCOPY, read_notification, remember_sends, zerocopy_send,
};
use crate::{
    config::{INFLIGHT_MASK, TIMED},
    fds::fd_kind,
    maps::{
        DETAIL, INFLIGHT, LATENCY, TOTALS, TOTALS_SEEN, count_drop, count_drops, stats_row,
        this_cpu, wake_collector,
    },
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
    let id = call_nr(regs, tid);
    if needs_detail(id, regs) {
        // SAFETY: a tail call: on success it does not return. It fails
        // only with an empty slot, which the loader never leaves; the call
        // is then booked below without its detail.
        unsafe { DETAIL.tail_call(&ctx, 0) };
    }
    exit_call::<false>(&ctx, tgid, tid, id)
}

/// sys_exit of the calls `needs_detail` picks, reached by tail call: a
/// program of its own so that the common case runs none of their tests
/// and the verifier walks their loops only here (in sys_exit, on each of
/// its paths, they took it ~1 s at every start; here ~0.25 s).
#[btf_tracepoint(function = "sys_exit")]
pub fn sys_exit_detail(ctx: BtfTracePointContext) -> i32 {
    let Some((tgid, tid)) = current_target() else {
        return 0;
    };
    // One copy per call, its number a constant: each has one fd kind to
    // tell, so the verifier walks few paths.
    match call_nr(ctx.arg(0), tid) {
        nr::RECVMMSG => exit_call::<true>(&ctx, tgid, tid, nr::RECVMMSG),
        nr::SENDMMSG => exit_call::<true>(&ctx, tgid, tid, nr::SENDMMSG),
        nr::SENDTO => exit_call::<true>(&ctx, tgid, tid, nr::SENDTO),
        nr::SENDMSG => exit_call::<true>(&ctx, tgid, tid, nr::SENDMSG),
        nr::RECVMSG => exit_call::<true>(&ctx, tgid, tid, nr::RECVMSG),
        other => exit_call::<false>(&ctx, tgid, tid, other),
    }
}

/// The calls whose bytes or byte class need more than the return value
/// and the fd kinds: recvmmsg and sendmmsg (the lengths of their messages),
/// sends with MSG_ZEROCOPY (the socket's SOCK_ZEROCOPY flag, the
/// notification ids) and recvmsg(MSG_ERRQUEUE) (a zero-copy notification).
#[inline(always)]
fn needs_detail(id: u32, regs: *const pt_regs) -> bool {
    match id {
        nr::RECVMMSG | nr::SENDMMSG => true,
        nr::SENDTO => arg(regs, 3) & MSG_ZEROCOPY != 0,
        nr::SENDMSG => arg(regs, 2) & MSG_ZEROCOPY != 0,
        nr::RECVMSG => arg(regs, 2) & MSG_ERRQUEUE != 0,
        _ => false,
    }
}

/// Counts a call as it leaves the kernel. `DETAIL`: the call is one
/// `needs_detail` picked (compiled out of sys_exit otherwise).
#[inline(always)]
fn exit_call<const DETAIL: bool>(ctx: &BtfTracePointContext, tgid: u32, tid: u32, id: u32) -> i32 {
    let regs: *const pt_regs = ctx.arg(0);
    let ret: i64 = ctx.arg(1);
    if is_child_return(id, ret) {
        return 0;
    }
    let (time_ns, off_cpu_ns) = if TIMED.load() != 0 {
        finish_timing(tid, id)
    } else {
        (0, 0)
    };
    let failed = (-4095..0).contains(&ret) && !is_sigreturn(id);
    let moved = !failed && ret > 0;

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
    // A MSG_ZEROCOPY send pins the pages instead of copying them: its row
    // is of its own kind, and its bytes are remembered for the notification.
    // The socket is a plain number, 0 for none: an Option's undefined
    // payload on the None path once made LLVM spill an unset register,
    // which the verifier refuses ("R5 !read_ok").
    let zerocopy_sk = if DETAIL && dst_kind == FdKind::Socket {
        zerocopy_send(id, regs)
    } else {
        0
    };
    let dst_kind = if zerocopy_sk != 0 {
        FdKind::Zerocopy
    } else {
        dst_kind
    };
    let src_kind = match shape.src_fd {
        Some(i) => fd_kind(arg(regs, i)),
        None => FdKind::None,
    };
    let bytes = if !moved {
        0
    } else if shape.ret_is_bytes {
        ret as u64
    } else if id == nr::MMAP && dst_kind != FdKind::None {
        arg(regs, 1)
    } else if DETAIL && (id == nr::RECVMMSG || id == nr::SENDMMSG) {
        // After the fd kinds: before them, the loop's exits multiply the
        // paths the verifier walks after it (measured: 1.5 s at load).
        mmsg_bytes(arg(regs, 1), ret as u64)
    } else {
        0
    };
    if DETAIL {
        if zerocopy_sk != 0 {
            if bytes > 0 {
                remember_sends(zerocopy_sk, id, regs, ret as u64, bytes);
            }
        } else if !failed && dst_kind == FdKind::Socket {
            read_notification(tgid, id, regs);
        }
    }
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
/// array. Through bpf_loop: the verifier checks the body once, where an
/// unrolled loop of 64 was walked again on every path to it (~0.25 s of
/// every start).
#[inline(always)]
fn mmsg_bytes(vec: u64, n: u64) -> u64 {
    if n > limits::MAX_MMSG as u64 {
        count_drop(drop::MMSG_TRUNCATED);
    }
    let mut sum = MmsgSum {
        vec,
        total: 0,
        unreadable: 0,
    };
    let loops = n.min(limits::MAX_MMSG as u64) as u32;
    // SAFETY: the callback only touches `sum`, which outlives the call.
    unsafe {
        bpf_loop(
            loops,
            add_mmsg_len as *mut c_void,
            (&mut sum as *mut MmsgSum).cast(),
            0,
        )
    };
    if sum.unreadable > 0 {
        count_drops(drop::MMSG_UNREADABLE, sum.unreadable);
    }
    sum.total
}

/// mmsg_bytes's running sum, shared with its bpf_loop callback.
#[repr(C)]
struct MmsgSum {
    vec: u64,
    total: u64,
    unreadable: u64,
}

/// bpf_loop's body for mmsg_bytes: adds entry `i`'s length.
#[inline(never)]
extern "C" fn add_mmsg_len(i: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: ctx is the MmsgSum mmsg_bytes passed.
    let sum = unsafe { &mut *(ctx as *mut MmsgSum) };
    match mmsg_len(sum.vec, i & 0xffff_ffff) {
        Ok(len) => sum.total += len,
        Err(_) => sum.unreadable += 1,
    }
    0
}

/// `msg_len` of entry `i` of a user `struct mmsghdr` array
/// (include/linux/socket.h: a 56-byte msghdr, then msg_len; 64 in all).
#[inline(always)]
pub(crate) fn mmsg_len(vec: u64, i: u64) -> Result<u64, i64> {
    const MMSGHDR_SIZE: u64 = 64;
    const MSG_LEN_OFFSET: u64 = 56;
    let at = vec + i * MMSGHDR_SIZE + MSG_LEN_OFFSET;
    // SAFETY: bpf_probe_read_user tolerates any address.
    unsafe { bpf_probe_read_user(at as *const u32) }
        .map(|n| n as u64)
        .map_err(|e| e as i64)
}

/// Adds a call's figures to its process's row (which may be full), and
/// to the exact totals (which never are).
#[inline(always)]
pub(crate) fn record(key: &SyscallKey, call: SyscallStats) {
    match stats_row(key) {
        // SAFETY: this CPU's slot, written only by this CPU with
        // preemption off.
        Some(row) => unsafe { *row += call },
        None => count_drop(drop::STATS_FULL),
    }
    // The totals last: the first call's branch then ends the program
    // (placed before the row, it doubled the paths the verifier walks).
    if let Some(slot) = totals::slot(key.nr, key.dst_kind, key.src_kind) {
        if let Some(total) = this_cpu(&TOTALS, totals::SLOTS, slot) {
            // SAFETY: as above.
            unsafe {
                let first = (*total).count == 0;
                *total += call;
                if first {
                    mark_seen(slot);
                }
            };
        }
    }
    wake_collector();
}

/// Sets this CPU's bit of TOTALS slot `slot` in TOTALS_SEEN: once per slot
/// and CPU in a run, so the calls after the first pay nothing for it.
#[inline(always)]
fn mark_seen(slot: u32) {
    let (word, bit) = totals::seen_bit(slot);
    if let Some(word) = this_cpu(&TOTALS_SEEN, totals::SEEN_WORDS, word) {
        // SAFETY: this CPU's word, as for TOTALS.
        unsafe { *word |= bit };
    }
}
