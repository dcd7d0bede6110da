//! MSG_ZEROCOPY sends and what their completion notifications say:
//! `zerocopy_sent` (the send calls' row kind), `zerocopy_acked` and
//! `zerocopy_copied`. Both halves run in sys_exit_detail (probes/syscalls.rs).
//!
//! Sends (net/ipv4/tcp.c tcp_sendmsg_locked, net/core/skbuff.c
//! msg_zerocopy_realloc): a send with MSG_ZEROCOPY on a socket with the
//! SOCK_ZEROCOPY flag (setsockopt SO_ZEROCOPY) pins the user pages; without
//! the flag the kernel ignores MSG_ZEROCOPY and copies. Each such call that
//! sends bytes takes the next notification id, `sk->sk_zckey++` (an error
//! rolls it back), so at sys_exit the call's id is `sk_zckey - 1`.
//!
//! Notifications (net/ipv4/ip_sockglue.c ip_recv_error): the program reads
//! them with recvmsg(MSG_ERRQUEUE): a `struct sock_extended_err` in an
//! IP_RECVERR / IPV6_RECVERR cmsg, origin SO_EE_ORIGIN_ZEROCOPY, ids
//! `ee_info..=ee_data`, and SO_EE_CODE_ZEROCOPY_COPIED when the kernel
//! copied them after all (always over loopback: skb_orphan_frags_rx). No
//! tracepoint marks the notification or the deferred copy; the message the
//! program reads is the kernel's own account, and the only one.

use aya_ebpf::{
    bindings::pt_regs,
    cty::c_void,
    helpers::{bpf_loop, bpf_probe_read_user},
};
use zc_trace_common::{ZerocopyId, ZerocopySpan, drop, limits, syscalls as nr};

use super::{
    add,
    syscalls::{arg, mmsg_len},
};
use crate::{
    config::{OFF_FILE_PRIVATE, OFF_SOCK_FLAGS, OFF_SOCK_ZCKEY, OFF_SOCKET_SK, SOCK_ZEROCOPY},
    fds::{fd_file, read_at},
    maps::{ZC_SENDS, ZC_SOCKETS, count_drop},
};

// include/linux/socket.h, include/uapi/linux/errqueue.h, in.h, in6.h
pub(crate) const MSG_ZEROCOPY: u64 = 0x400_0000;
pub(crate) const MSG_ERRQUEUE: u64 = 0x2000;
const SO_EE_ORIGIN_ZEROCOPY: u8 = 5;
const SO_EE_CODE_ZEROCOPY_COPIED: u8 = 1;
const SOL_IP: i32 = 0;
const IP_RECVERR: i32 = 11;
const SOL_IPV6: i32 = 41;
const IPV6_RECVERR: i32 = 25;
/// `struct user_msghdr`: msg_control at +32, msg_controllen at +40.
const MSG_CONTROL: u64 = 32;
/// Control messages looked at before the error one (a timestamp cmsg can
/// come first when the program asked for timestamps).
const MAX_CMSGS: u32 = 4;

/// The `struct sock *` of a send call that the kernel will not copy at the
/// call: MSG_ZEROCOPY on a socket with SOCK_ZEROCOPY. 0 for anything else
/// (other calls, the flag alone, offsets unknown).
#[inline(always)]
pub fn zerocopy_send(id: u32, regs: *const pt_regs) -> u64 {
    let flags_arg = match id {
        nr::SENDTO | nr::SENDMMSG => 3,
        nr::SENDMSG => 2,
        _ => return 0,
    };
    if arg(regs, flags_arg) & MSG_ZEROCOPY == 0 || OFF_SOCK_ZCKEY.load() == 0 {
        return 0;
    }
    // SAFETY: bpf_probe_read_kernel only.
    let Ok(sk) = (unsafe { sock_of(arg(regs, 0)) }) else {
        return 0;
    };
    // SAFETY: as above.
    let Ok(flags) = (unsafe { read_at::<u64>(sk, OFF_SOCK_FLAGS.load()) }) else {
        return 0;
    };
    if flags & (1 << (SOCK_ZEROCOPY.load() & 63)) != 0 {
        sk
    } else {
        0
    }
}

/// Remembers where a successful zero-copy send's bytes lie in its socket's
/// running total, under the notification id(s) it took: one per call, or
/// one per message that carried bytes for sendmmsg (`msgs` = its return,
/// `bytes` = its messages' lengths summed).
#[inline(always)]
pub fn remember_sends(sk: u64, id: u32, regs: *const pt_regs, msgs: u64, bytes: u64) {
    // SAFETY: bpf_probe_read_kernel only.
    let Ok(zckey) = (unsafe { read_at::<u32>(sk, OFF_SOCK_ZCKEY.load()) }) else {
        return;
    };
    // SAFETY: a map value, read once; a racing sender on the same socket
    // costs an id's bytes, not the totals (see README).
    let before = ZC_SOCKETS.get_ptr(&sk).map_or(0, |t| unsafe { *t });
    let end = before + bytes;
    if id == nr::SENDMMSG {
        // Backwards from the last message, which took id zckey - 1: each
        // message that carried bytes took one. Through bpf_loop, so the
        // verifier checks the body once.
        let msgs = msgs.min(limits::MAX_MMSG as u64);
        let mut walk = Backwards {
            sk,
            vec: arg(regs, 1),
            msgs,
            next: zckey as u64,
            after: end,
        };
        // SAFETY: the callback only touches `walk`, which outlives the call.
        unsafe {
            bpf_loop(
                msgs as u32,
                remember_message as *mut c_void,
                (&mut walk as *mut Backwards).cast(),
                0,
            )
        };
    } else {
        remember(sk, zckey.wrapping_sub(1), before, end);
    }
    let _ = ZC_SOCKETS.insert(&sk, &end, 0);
}

/// remember_sends' walk over a sendmmsg's messages, last first.
#[repr(C)]
struct Backwards {
    sk: u64,
    vec: u64,
    msgs: u64,
    /// The id the next message (walking back) took, plus one.
    next: u64,
    /// Where that message's bytes end in the socket's running total.
    after: u64,
}

/// bpf_loop's body for remember_sends: the `j`th message from the end.
#[inline(never)]
extern "C" fn remember_message(j: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: ctx is the Backwards remember_sends passed.
    let w = unsafe { &mut *(ctx as *mut Backwards) };
    let i = w.msgs.wrapping_sub(1).wrapping_sub(j & 0xffff_ffff);
    let len = mmsg_len(w.vec, i).unwrap_or(0);
    if len > 0 {
        w.next = w.next.wrapping_sub(1);
        let start = w.after.saturating_sub(len);
        remember(w.sk, w.next as u32, start, w.after);
        w.after = start;
    }
    0
}

#[inline(always)]
fn remember(sk: u64, id: u32, before: u64, after: u64) {
    let key = ZerocopyId { sk, id, _pad: 0 };
    let _ = ZC_SENDS.insert(&key, &ZerocopySpan { before, after }, 0);
}

/// For a recvmsg(MSG_ERRQUEUE) that returned a zero-copy notification:
/// books its bytes as acknowledged, and as copied when the kernel says so.
#[inline(always)]
pub fn read_notification(tgid: u32, id: u32, regs: *const pt_regs) {
    if id != nr::RECVMSG || arg(regs, 2) & MSG_ERRQUEUE == 0 || OFF_SOCK_ZCKEY.load() == 0 {
        return;
    }
    let Some(ee) = extended_err(arg(regs, 1)) else {
        return;
    };
    // struct sock_extended_err: errno u32, origin, type, code, pad, info, data.
    if ee[4] != SO_EE_ORIGIN_ZEROCOPY {
        return;
    }
    let lo = u32::from_le_bytes([ee[8], ee[9], ee[10], ee[11]]);
    let hi = u32::from_le_bytes([ee[12], ee[13], ee[14], ee[15]]);
    // SAFETY: bpf_probe_read_kernel only.
    let Ok(sk) = (unsafe { sock_of(arg(regs, 0)) }) else {
        return;
    };
    let span = |id| ZC_SENDS.get_ptr(&ZerocopyId { sk, id, _pad: 0 });
    let (Some(first), Some(last)) = (span(lo), span(hi)) else {
        count_drop(drop::ZEROCOPY_UNMATCHED);
        return;
    };
    // SAFETY: map values, read once.
    let bytes = unsafe { (*last).after.saturating_sub((*first).before) };
    add(tgid, |c| &mut c.zerocopy_acked, bytes);
    if ee[6] & SO_EE_CODE_ZEROCOPY_COPIED != 0 {
        add(tgid, |c| &mut c.zerocopy_copied, bytes);
    }
}

/// The 16 bytes of the `struct sock_extended_err` in the control data the
/// call wrote (msg_controllen is its length after the call).
#[inline(always)]
fn extended_err(msg: u64) -> Option<[u8; 16]> {
    // SAFETY (all reads): bpf_probe_read_user tolerates any address.
    let [control, len]: [u64; 2] =
        unsafe { bpf_probe_read_user((msg + MSG_CONTROL) as *const [u64; 2]) }.ok()?;
    let end = control.checked_add(len)?;
    let mut at = control;
    for _ in 0..MAX_CMSGS {
        // struct cmsghdr: cmsg_len (size_t), cmsg_level, cmsg_type (int).
        if at + 32 > end {
            return None;
        }
        let hdr: [u64; 2] = unsafe { bpf_probe_read_user(at as *const [u64; 2]) }.ok()?;
        let (level, kind) = (hdr[1] as u32 as i32, (hdr[1] >> 32) as u32 as i32);
        if (level, kind) == (SOL_IP, IP_RECVERR) || (level, kind) == (SOL_IPV6, IPV6_RECVERR) {
            return unsafe { bpf_probe_read_user((at + 16) as *const [u8; 16]) }.ok();
        }
        // CMSG_NXTHDR: the next header starts 8-byte aligned.
        let step = (hdr[0] + 7) & !7;
        if step < 16 {
            return None;
        }
        at += step;
    }
    None
}

/// `((struct socket *)file->private_data)->sk` of the current task's fd.
/// Only called for fds the probe already saw to be sockets.
#[inline(always)]
unsafe fn sock_of(fd: u64) -> Result<u64, i64> {
    let file = unsafe { fd_file(fd) };
    if file == 0 {
        return Err(0);
    }
    let socket: u64 = unsafe { read_at(file, OFF_FILE_PRIVATE.load())? };
    if socket == 0 {
        return Err(0);
    }
    let sk: u64 = unsafe { read_at(socket, OFF_SOCKET_SK.load())? };
    if sk == 0 { Err(0) } else { Ok(sk) }
}
