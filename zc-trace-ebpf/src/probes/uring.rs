//! io_uring requests of the traced processes: one record per completion,
//! by opcode and fd kind, for the process that submitted the request.
//!
//! io_uring:io_uring_complete (include/trace/events/io_uring.h, 6.18)
//!   TP_PROTO(struct io_ring_ctx *ctx, void *req, struct io_uring_cqe *cqe)
//! Fires when a request's CQE is written (io_fill_cqe_req), in whichever
//! thread posts it: the submitter, an io-wq worker, the SQPOLL thread or
//! task work. `req` is untyped, so its fields are probe reads.
//! io_uring:io_uring_cqe_overflow
//!   TP_PROTO(void *ctx, unsigned long long user_data, s32 res, u32 cflags, void *ocqe)
//! A CQE that found the ring full goes to the overflow list instead, and
//! io_uring_complete does not fire for it: counted as a loss.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_kernel},
    macros::btf_tracepoint,
    programs::BtfTracePointContext,
};
use zc_trace_common::{
    FdKind, SyscallKey, SyscallStats, drop,
    syscalls::Class,
    uring::{self, CQE_F_MORE, CQE_F_NOTIF, NOTIF_USAGE_ZC_COPIED, op},
};

use super::{add, syscalls::record};
use crate::{
    config::{
        OFF_NOTIF_ZC_REPORT, OFF_REQ_FILE, OFF_REQ_OPCODE, OFF_REQ_TCTX, OFF_SPLICE_FD_IN,
        OFF_SPLICE_FLAGS, OFF_TASK_TGID, OFF_TCTX_TASK,
    },
    fds::{fd_kind, file_kind, read_at},
    maps::{ZC_PENDING, count_drop},
    target::is_traced,
};

/// OFF_TCTX_TASK when the kernel keeps the submitting task in the request
/// itself (`io_kiocb.task`, before 6.13): OFF_REQ_TCTX is then its offset.
const TASK_IN_REQ: u32 = u32::MAX;
/// include/uapi/linux/splice.h: splice_fd_in is a registered file's index.
const SPLICE_F_FD_IN_FIXED: u32 = 1 << 31;

/// The part of `struct io_uring_cqe` the probe reads.
#[repr(C)]
#[derive(Clone, Copy)]
struct Cqe {
    user_data: u64,
    res: i32,
    flags: u32,
}

#[btf_tracepoint(function = "io_uring_complete")]
pub fn io_uring_complete(ctx: BtfTracePointContext) -> i32 {
    let req: u64 = ctx.arg(1);
    let cqe: u64 = ctx.arg(2);
    let tgid = submitter(req);
    if !is_traced(tgid) {
        return 0;
    }
    if req == 0 {
        // An auxiliary CQE (multishot, MSG_RING) names no request, so no
        // opcode: counted as a loss rather than guessed.
        count_drop(drop::URING_NO_REQUEST);
        return 0;
    }
    // SAFETY: bpf_probe_read_kernel tolerates any address.
    let Ok(cqe) = (unsafe { bpf_probe_read_kernel(cqe as *const Cqe) }) else {
        return 0;
    };
    let ring: u64 = ctx.arg(0);
    if cqe.flags & CQE_F_NOTIF != 0 {
        // A SEND_ZC's notification, posted for the kernel's own NOP
        // request: not a request of the program's, but the outcome of one.
        notified(tgid, req, ring, &cqe);
        return 0;
    }
    // SAFETY: as above.
    let Ok(opcode) = (unsafe { read_at::<u8>(req, OFF_REQ_OPCODE.load()) }) else {
        return 0;
    };
    let failed = cqe.res < 0;
    let moves_bytes = uring::class(opcode) != Class::Other;
    let (mut dst_kind, src_kind) = if moves_bytes {
        kinds(req, opcode)
    } else {
        (FdKind::None, FdKind::None)
    };
    let bytes = if moves_bytes && !failed {
        cqe.res as u64
    } else {
        0
    };
    if uring::pins_pages(opcode) {
        // Sent like a MSG_ZEROCOPY send(2): pinned, not copied at the call.
        dst_kind = FdKind::Zerocopy;
        if cqe.flags & CQE_F_MORE != 0 && bytes > 0 {
            await_notification(ring, cqe.user_data, bytes);
        }
    }
    let key = SyscallKey::new(tgid, uring::nr(opcode), dst_kind, src_kind);
    record(&key, SyscallStats::one_call(failed, bytes, 0));
    0
}

/// Keeps a SEND_ZC's bytes until its notification says what became of them.
#[inline(always)]
fn await_notification(ring: u64, user_data: u64, bytes: u64) {
    let key = [ring, user_data];
    match ZC_PENDING.get_ptr_mut(&key) {
        // Another request with the same user_data is still waiting: its
        // notification will settle both (user_data is all the CQE names).
        // SAFETY: a map value of ours; a racing CPU's add may be lost,
        // which only makes the outcome of those bytes unknown.
        Some(pending) => unsafe { *pending += bytes },
        None => {
            let _ = ZC_PENDING.insert(&key, &bytes, 0);
        }
    }
}

/// A SEND_ZC notification: the bytes of its request are acknowledged if
/// the program asked for usage reports (the kernel tracks the outcome only
/// then: io_notif_data.zc_report), and copied if the kernel says so.
#[inline(always)]
fn notified(tgid: u32, req: u64, ring: u64, cqe: &Cqe) {
    let key = [ring, cqe.user_data];
    // SAFETY: a copy out of a map value of ours.
    let Some(bytes) = (unsafe { ZC_PENDING.get(&key) }).copied() else {
        return;
    };
    let _ = ZC_PENDING.remove(&key);
    // SAFETY: bpf_probe_read_kernel only.
    let reported = unsafe { read_at::<u8>(req, OFF_NOTIF_ZC_REPORT.load()) }.unwrap_or(0);
    if reported == 0 || OFF_NOTIF_ZC_REPORT.load() == 0 {
        return;
    }
    add(tgid, |c| &mut c.zerocopy_acked, bytes);
    if cqe.res as u32 & NOTIF_USAGE_ZC_COPIED != 0 {
        add(tgid, |c| &mut c.zerocopy_copied, bytes);
    }
}

#[btf_tracepoint(function = "io_uring_cqe_overflow")]
pub fn io_uring_cqe_overflow(_ctx: BtfTracePointContext) -> i32 {
    // No request here; the overflow is posted by a thread of the ring's
    // process (its submitter, a worker or task work).
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if is_traced(tgid) {
        count_drop(drop::URING_OVERFLOW);
    }
    0
}

/// The tgid of the task that submitted `req` (`req->tctx->task`), or the
/// current one's: io-wq workers and the SQPOLL thread are threads of the
/// submitting process, so it is the same unless the CQE is posted from
/// another process's context.
#[inline(always)]
fn submitter(req: u64) -> u32 {
    let current = (bpf_get_current_pid_tgid() >> 32) as u32;
    if req == 0 || OFF_REQ_TCTX.load() == 0 {
        return current;
    }
    // SAFETY: bpf_probe_read_kernel only.
    let task = unsafe {
        let Ok(link) = read_at::<u64>(req, OFF_REQ_TCTX.load()) else {
            return current;
        };
        match OFF_TCTX_TASK.load() {
            TASK_IN_REQ => Ok(link),
            off if link != 0 => read_at::<u64>(link, off),
            _ => Err(0),
        }
    };
    match task {
        // SAFETY: as above.
        Ok(t) if t != 0 => unsafe { read_at::<u32>(t, OFF_TASK_TGID.load()) }.unwrap_or(current),
        _ => current,
    }
}

/// The fd kinds of a request that moves bytes: its file (the output of a
/// SPLICE/TEE, whose input is `splice_fd_in`), which is still held when
/// the CQE is posted.
#[inline(always)]
fn kinds(req: u64, opcode: u8) -> (FdKind, FdKind) {
    // SAFETY: bpf_probe_read_kernel only.
    let file = unsafe { read_at::<u64>(req, OFF_REQ_FILE.load()) }.unwrap_or(0);
    let dst = file_kind(file);
    if opcode != op::SPLICE && opcode != op::TEE {
        return (dst, FdKind::None);
    }
    // SAFETY: as above.
    let (fd_in, flags) = unsafe {
        (
            read_at::<i32>(req, OFF_SPLICE_FD_IN.load()).unwrap_or(-1),
            read_at::<u32>(req, OFF_SPLICE_FLAGS.load()).unwrap_or(0),
        )
    };
    // A registered file is no fd of the task: its kind is not looked up.
    // io-wq workers and the SQPOLL thread share the submitter's fd table.
    let src = if flags & SPLICE_F_FD_IN_FIXED != 0 || fd_in < 0 {
        FdKind::Unknown
    } else {
        fd_kind(fd_in as u64)
    };
    (dst, src)
}
