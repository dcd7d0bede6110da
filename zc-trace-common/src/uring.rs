//! io_uring requests: their opcodes, names and ledger classes.
//!
//! A completed request is recorded like a syscall, in a `SyscallKey` whose
//! number is `URING | opcode` (`nr`): it then has its process's row, its
//! slot in the exact totals and its fd kind, and the collector tells it
//! apart from a syscall by that bit. Names are the kernel's
//! (include/uapi/linux/io_uring.h, `enum io_uring_op`, without
//! `IORING_OP_`); a test checks them against the running kernel's BTF.

use crate::syscalls::{COMPAT, Class};

/// Set in a recorded number when it is an io_uring opcode, not a syscall
/// (below COMPAT, far above any syscall number).
pub const URING: u32 = 1 << 30;

/// Opcodes with a name and a slot in the totals (6.18 has 63).
pub const MAX_OPS: u32 = 64;

/// `enum io_uring_op`, in order: index = opcode.
pub const NAMES: [&str; 63] = [
    "NOP",
    "READV",
    "WRITEV",
    "FSYNC",
    "READ_FIXED",
    "WRITE_FIXED",
    "POLL_ADD",
    "POLL_REMOVE",
    "SYNC_FILE_RANGE",
    "SENDMSG",
    "RECVMSG",
    "TIMEOUT",
    "TIMEOUT_REMOVE",
    "ACCEPT",
    "ASYNC_CANCEL",
    "LINK_TIMEOUT",
    "CONNECT",
    "FALLOCATE",
    "OPENAT",
    "CLOSE",
    "FILES_UPDATE",
    "STATX",
    "READ",
    "WRITE",
    "FADVISE",
    "MADVISE",
    "SEND",
    "RECV",
    "OPENAT2",
    "EPOLL_CTL",
    "SPLICE",
    "PROVIDE_BUFFERS",
    "REMOVE_BUFFERS",
    "TEE",
    "SHUTDOWN",
    "RENAMEAT",
    "UNLINKAT",
    "MKDIRAT",
    "SYMLINKAT",
    "LINKAT",
    "MSG_RING",
    "FSETXATTR",
    "SETXATTR",
    "FGETXATTR",
    "GETXATTR",
    "SOCKET",
    "URING_CMD",
    "SEND_ZC",
    "SENDMSG_ZC",
    "READ_MULTISHOT",
    "WAITID",
    "FUTEX_WAIT",
    "FUTEX_WAKE",
    "FUTEX_WAITV",
    "FIXED_FD_INSTALL",
    "FTRUNCATE",
    "BIND",
    "LISTEN",
    "RECV_ZC",
    "EPOLL_WAIT",
    "READV_FIXED",
    "WRITEV_FIXED",
    "PIPE",
];

/// The opcodes the probe and the ledger rules name.
pub mod op {
    pub const NOP: u8 = 0;
    pub const READV: u8 = 1;
    pub const WRITEV: u8 = 2;
    pub const READ_FIXED: u8 = 4;
    pub const WRITE_FIXED: u8 = 5;
    pub const SENDMSG: u8 = 9;
    pub const RECVMSG: u8 = 10;
    pub const READ: u8 = 22;
    pub const WRITE: u8 = 23;
    pub const SEND: u8 = 26;
    pub const RECV: u8 = 27;
    pub const SPLICE: u8 = 30;
    pub const TEE: u8 = 33;
    pub const SEND_ZC: u8 = 47;
    pub const SENDMSG_ZC: u8 = 48;
    pub const READ_MULTISHOT: u8 = 49;
    pub const READV_FIXED: u8 = 60;
    pub const WRITEV_FIXED: u8 = 61;
}

/// include/uapi/linux/io_uring.h: `IORING_CQE_F_NOTIF`, set on the
/// notification CQE of a SEND_ZC / SENDMSG_ZC (posted for a NOP request of
/// the kernel's own, not one the program submitted).
pub const CQE_F_NOTIF: u32 = 1 << 3;

/// The number a completed request of opcode `op` is recorded under.
#[inline(always)]
pub const fn nr(op: u8) -> u32 {
    URING | op as u32
}

/// The opcode of a recorded number, if it is an io_uring request's.
#[inline(always)]
pub const fn opcode(nr: u32) -> Option<u8> {
    if nr & (URING | COMPAT) == URING && nr & !URING <= u8::MAX as u32 {
        Some(nr as u8)
    } else {
        None
    }
}

/// The opcode's name as the kernel spells it, without `IORING_OP_`;
/// `None` for one newer than this table.
pub fn name(op: u8) -> Option<&'static str> {
    NAMES.get(op as usize).copied()
}

/// The ledger rule for a request: the same as the syscall that does the
/// same thing (read/recv copy to the user's buffer, write/send from it,
/// splice and tee move pages inside the kernel). The fd's kind then moves
/// a copy to `device` or `direct_io`, as for syscalls (`Bytes::add`); a
/// SEND_ZC is a send whose fd kind is `Zerocopy` (see `pins_pages`), as a
/// MSG_ZEROCOPY send(2) is.
#[inline(always)]
pub const fn class(op: u8) -> Class {
    use op::*;
    match op {
        READ | READV | READ_FIXED | READV_FIXED | READ_MULTISHOT | RECV | RECVMSG => {
            Class::CopyToUser
        }
        WRITE | WRITEV | WRITE_FIXED | WRITEV_FIXED | SEND | SENDMSG | SEND_ZC | SENDMSG_ZC => {
            Class::CopyFromUser
        }
        SPLICE | TEE => Class::ZeroCopy,
        _ => Class::Other,
    }
}

/// Whether the request pins the user's pages instead of copying them
/// (SEND_ZC, SENDMSG_ZC): its bytes are `zerocopy_sent`, and its
/// notification CQE says whether the kernel copied them after all.
#[inline(always)]
pub const fn pins_pages(op: u8) -> bool {
    matches!(op, op::SEND_ZC | op::SENDMSG_ZC)
}

/// include/uapi/linux/io_uring.h: `IORING_CQE_F_MORE`, set on a SEND_ZC's
/// result when a notification CQE will follow.
pub const CQE_F_MORE: u32 = 1 << 1;
/// `IORING_NOTIF_USAGE_ZC_COPIED`: set in the notification's `res` when the
/// kernel copied the data after all (only with IORING_SEND_ZC_REPORT_USAGE).
pub const NOTIF_USAGE_ZC_COPIED: u32 = 1 << 31;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opcodes_round_trip_and_are_not_syscalls() {
        for op in 0..=u8::MAX {
            assert_eq!(opcode(nr(op)), Some(op));
        }
        assert_eq!(opcode(0), None);
        assert_eq!(opcode(COMPAT | 22), None);
        assert_eq!(opcode(URING | 0x100), None);
        assert!(NAMES.len() <= MAX_OPS as usize);
    }

    #[test]
    fn names_match_the_named_opcodes() {
        assert_eq!(name(op::READ), Some("READ"));
        assert_eq!(name(op::SEND_ZC), Some("SEND_ZC"));
        assert_eq!(name(op::SPLICE), Some("SPLICE"));
        assert_eq!(name(op::WRITEV_FIXED), Some("WRITEV_FIXED"));
        assert_eq!(name(200), None);
        assert_eq!(class(op::READ_FIXED), Class::CopyToUser);
        assert_eq!(class(op::SEND), Class::CopyFromUser);
        assert_eq!(class(op::TEE), Class::ZeroCopy);
        assert_eq!(class(op::NOP), Class::Other);
        assert!(pins_pages(op::SEND_ZC) && pins_pages(op::SENDMSG_ZC) && !pins_pages(op::SEND));
    }
}
