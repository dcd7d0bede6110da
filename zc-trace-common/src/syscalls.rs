//! The syscalls zc-trace understands, and what their return value means.
//!
//! Numbers are x86_64's (arch/x86/entry/syscalls/syscall_64.tbl); the probes
//! see raw numbers, so this table is the one place that gives them meaning.
//! Both the probes (which bytes to add up, which fds to resolve) and the
//! collector (how to group and label) use it.

pub const READ: u32 = 0;
pub const WRITE: u32 = 1;
pub const MMAP: u32 = 9;
pub const MUNMAP: u32 = 11;
pub const PREAD64: u32 = 17;
pub const PWRITE64: u32 = 18;
pub const READV: u32 = 19;
pub const WRITEV: u32 = 20;
pub const MREMAP: u32 = 25;
pub const MSYNC: u32 = 26;
pub const MADVISE: u32 = 28;
pub const SENDFILE: u32 = 40;
pub const SENDTO: u32 = 44;
pub const RECVFROM: u32 = 45;
pub const SENDMSG: u32 = 46;
pub const RECVMSG: u32 = 47;
pub const CLONE: u32 = 56;
pub const FORK: u32 = 57;
pub const VFORK: u32 = 58;
pub const EXIT: u32 = 60;
pub const EXIT_GROUP: u32 = 231;
pub const SPLICE: u32 = 275;
pub const TEE: u32 = 276;
pub const VMSPLICE: u32 = 278;
pub const PREADV: u32 = 295;
pub const PWRITEV: u32 = 296;
pub const RECVMMSG: u32 = 299;
pub const SENDMMSG: u32 = 307;
pub const COPY_FILE_RANGE: u32 = 326;
pub const PREADV2: u32 = 327;
pub const PWRITEV2: u32 = 328;
pub const IO_URING_ENTER: u32 = 426;
pub const CLONE3: u32 = 435;
pub const RT_SIGRETURN: u32 = 15;

/// The number the kernel leaves in orig_ax when a call is not (or no
/// longer) a syscall: rt_sigreturn restores the interrupted registers with
/// orig_ax = -1 before sys_exit runs (arch/x86/kernel/signal_64.c,
/// restore_sigcontext), and a tracer skipping a call sets it.
pub const NO_SYSCALL: u32 = u32::MAX;

/// Set in a recorded number when the call was a 32-bit (compat) one: the
/// low bits are then an i386 number (arch/x86/entry/syscalls/syscall_32.tbl),
/// which no x86_64 rule below matches, so it moves no bytes in the ledger.
pub const COMPAT: u32 = 1 << 31;

/// i386 numbers the probes treat specially, as `COMPAT | n`.
pub mod i386 {
    use super::COMPAT;
    pub const EXIT: u32 = COMPAT | 1;
    pub const FORK: u32 = COMPAT | 2;
    pub const SIGRETURN: u32 = COMPAT | 119;
    pub const CLONE: u32 = COMPAT | 120;
    pub const RT_SIGRETURN: u32 = COMPAT | 173;
    pub const VFORK: u32 = COMPAT | 190;
    pub const EXIT_GROUP: u32 = COMPAT | 252;
    pub const CLONE3: u32 = COMPAT | 435;
    /// A 32-bit sigreturn seen without its entry (untimed runs): i386 has
    /// two, and only the entry tells them apart.
    pub const SOME_SIGRETURN: u32 = COMPAT | 0x7fff_ffff;
}

/// The code segment of 64-bit user mode (arch/x86/include/asm/segment.h,
/// __USER_CS): a syscall whose saved cs is another one came from 32-bit
/// code and was dispatched through the i386 table.
pub const USER64_CS: u64 = 0x33;

pub const EXECVE: u32 = 59;
pub const EXECVEAT: u32 = 322;

/// The number to record for a call that left the kernel with `orig_ax`,
/// to code that is 32-bit if `compat`; `entered` is the number sys_enter
/// saw, when known (it differs only when the call rewrote orig_ax).
///
/// An execve that switches between 64-bit and 32-bit programs leaves with
/// the new program's execve number (arch/x86/kernel/process_64.c,
/// __set_personality_ia32 sets orig_ax to i386's execve): it is counted
/// under the new program's ABI, as `compat:execve` for a 32-bit one.
#[inline(always)]
pub const fn recorded_nr(orig_ax: u32, compat: bool, entered: Option<u32>) -> u32 {
    let raw = match (orig_ax, entered) {
        (NO_SYSCALL, Some(nr)) => nr,
        (NO_SYSCALL, None) if compat => return i386::SOME_SIGRETURN,
        (NO_SYSCALL, None) => RT_SIGRETURN,
        (nr, _) => nr,
    };
    if compat { raw | COMPAT } else { raw }
}

/// Where a syscall's bytes go in the copy ledger: the one syscall class of
/// the probes, the report (its JSON name is `name()`), the renderers and the
/// lab. Everything a class means to a reader sits in `look()` below, so a new
/// class is this enum, its `look()` and the probe that files calls under it
/// (and, if the ledger counts its bytes, a `ByteClass` whose section names
/// it, in zc-trace's model).
#[repr(u8)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(
    feature = "user",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum Class {
    /// The CPU copies from the kernel into the caller's buffer.
    CopyToUser = 0,
    /// The CPU copies from the caller's buffer into the kernel.
    CopyFromUser = 1,
    /// Data moves between kernel objects by reference or in-kernel copy,
    /// never through a user buffer.
    ZeroCopy = 2,
    /// Address-space calls: mmap, munmap, mremap, msync, madvise.
    Mapping = 3,
    /// Everything else (still two mode switches each). A class this build
    /// does not know, read from a saved report, is taken for this one.
    #[default]
    #[cfg_attr(feature = "user", serde(other))]
    Other = 4,
}

/// How a class is shown: its section of the syscall tables, its legend
/// label and its colour (its row of the copy ledger is a `ByteClass`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Look {
    /// Title of the section of the syscall tables the class is listed in
    /// (both copying classes share one).
    pub group: &'static str,
    /// Legend label of a syscall of this class.
    pub legend: &'static str,
    /// Red, green, blue: a copying call takes the colour of the path its
    /// bytes go, so read is blue and write orange in every chart.
    pub rgb: (u8, u8, u8),
}

impl Class {
    /// Every class, in display order.
    pub const ALL: [Class; 5] = [
        Self::CopyToUser,
        Self::CopyFromUser,
        Self::ZeroCopy,
        Self::Mapping,
        Self::Other,
    ];

    /// The class's name in the JSON report (its serde name).
    pub const fn name(self) -> &'static str {
        match self {
            Self::CopyToUser => "copy_to_user",
            Self::CopyFromUser => "copy_from_user",
            Self::ZeroCopy => "zero_copy",
            Self::Mapping => "mapping",
            Self::Other => "other",
        }
    }

    pub const fn look(self) -> Look {
        match self {
            Self::CopyToUser => Look {
                group: "copying",
                legend: "copying, kernel → user",
                rgb: (31, 119, 180),
            },
            Self::CopyFromUser => Look {
                group: "copying",
                legend: "copying, user → kernel",
                rgb: (255, 127, 14),
            },
            Self::ZeroCopy => Look {
                group: "zero-copy",
                legend: "zero-copy",
                rgb: (44, 160, 44),
            },
            Self::Mapping => Look {
                group: "mapping",
                legend: "mapping",
                rgb: (148, 103, 189),
            },
            Self::Other => Look {
                group: "other",
                legend: "other",
                rgb: (140, 140, 140),
            },
        }
    }
}

/// What the probes do with one syscall's arguments and return value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    pub class: Class,
    /// Argument index of the fd the data goes to (or the only fd).
    pub dst_fd: Option<u8>,
    /// Argument index of the fd the data comes from (two-fd calls).
    pub src_fd: Option<u8>,
    /// Whether a positive return value is a byte count.
    pub ret_is_bytes: bool,
}

const fn io(class: Class, dst_fd: u8) -> Shape {
    Shape {
        class,
        dst_fd: Some(dst_fd),
        src_fd: None,
        ret_is_bytes: true,
    }
}

const fn two_fd(src_fd: u8, dst_fd: u8) -> Shape {
    Shape {
        class: Class::ZeroCopy,
        dst_fd: Some(dst_fd),
        src_fd: Some(src_fd),
        ret_is_bytes: true,
    }
}

const fn mapping() -> Shape {
    Shape {
        class: Class::Mapping,
        dst_fd: None,
        src_fd: None,
        ret_is_bytes: false,
    }
}

pub const OTHER: Shape = Shape {
    class: Class::Other,
    dst_fd: None,
    src_fd: None,
    ret_is_bytes: false,
};

/// The shape of syscall `nr`. recvmmsg/sendmmsg return a message count; the
/// probe sums their `msg_len` fields instead (see the probe).
#[inline(always)]
pub const fn shape(nr: u32) -> Shape {
    use Class::*;
    match nr {
        READ | PREAD64 | READV | PREADV | PREADV2 | RECVFROM | RECVMSG => io(CopyToUser, 0),
        WRITE | PWRITE64 | WRITEV | PWRITEV | PWRITEV2 | SENDTO | SENDMSG => io(CopyFromUser, 0),
        RECVMMSG => Shape {
            ret_is_bytes: false,
            ..io(CopyToUser, 0)
        },
        SENDMMSG => Shape {
            ret_is_bytes: false,
            ..io(CopyFromUser, 0)
        },
        // sendfile(out_fd, in_fd, ...), splice(fd_in, off_in, fd_out, ...),
        // tee(fd_in, fd_out, ...), copy_file_range(fd_in, off_in, fd_out, ...)
        SENDFILE => two_fd(1, 0),
        SPLICE => two_fd(0, 2),
        TEE => two_fd(0, 1),
        COPY_FILE_RANGE => two_fd(0, 2),
        // vmsplice(fd, iov, ...): user pages referenced into a pipe.
        VMSPLICE => io(ZeroCopy, 0),
        // mmap's fd is argument 4; the probe resolves it itself because
        // anonymous mappings pass -1.
        MMAP | MUNMAP | MREMAP | MSYNC | MADVISE => mapping(),
        IO_URING_ENTER => Shape {
            class: Other,
            dst_fd: Some(0),
            src_fd: None,
            ret_is_bytes: false,
        },
        _ => OTHER,
    }
}

/// The ledger class of a recorded number: a syscall's (`shape`) or, for an
/// io_uring request, its opcode's (`uring::class`).
#[inline(always)]
pub const fn class_of(nr: u32) -> Class {
    match crate::uring::opcode(nr) {
        Some(op) => crate::uring::class(op),
        None => shape(nr).class,
    }
}

/// Whether a call recorded as `recorded` is the one sys_enter saw as
/// `entered`: the same number, or an execve that switched ABI on the way.
#[inline(always)]
pub const fn same_call(entered: u32, recorded: u32) -> bool {
    entered == recorded & !COMPAT || (is_execve(entered) && is_execve(recorded))
}

#[inline(always)]
const fn is_execve(nr: u32) -> bool {
    matches!(nr & !COMPAT, EXECVE | EXECVEAT | 11 | 358)
}

/// Syscalls that never return to sys_exit on success; counted at entry.
#[inline(always)]
pub const fn never_returns(nr: u32) -> bool {
    matches!(nr, EXIT | EXIT_GROUP | i386::EXIT | i386::EXIT_GROUP)
}

/// Whether the call restores a signal frame: its return value is whatever
/// the interrupted code had in rax, neither an error nor a byte count.
#[inline(always)]
pub const fn is_sigreturn(nr: u32) -> bool {
    matches!(
        nr,
        RT_SIGRETURN | i386::SIGRETURN | i386::RT_SIGRETURN | i386::SOME_SIGRETURN
    )
}

/// Whether a sys_exit with return value `ret` is a new child's first return
/// from fork/clone (it returns 0 there without having entered the call):
/// not a call of its own, as strace counts.
#[inline(always)]
pub const fn is_child_return(nr: u32, ret: i64) -> bool {
    ret == 0
        && matches!(
            nr,
            CLONE | FORK | VFORK | CLONE3 | i386::CLONE | i386::FORK | i386::VFORK | i386::CLONE3
        )
}

/// mmap flags the probe needs (include/uapi/asm-generic/mman-common.h).
pub const MAP_ANONYMOUS: u64 = 0x20;

impl From<&str> for Class {
    /// The class named `name` (as in the JSON report); `Other` for a name
    /// this build does not know, as when reading a saved report.
    fn from(name: &str) -> Self {
        Self::ALL
            .into_iter()
            .find(|c| c.name() == name)
            .unwrap_or(Self::Other)
    }
}

impl PartialEq<&str> for Class {
    fn eq(&self, name: &&str) -> bool {
        self.name() == *name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rt_sigreturn_is_named_from_its_entry_or_its_arch() {
        assert_eq!(recorded_nr(NO_SYSCALL, false, None), RT_SIGRETURN);
        assert_eq!(recorded_nr(NO_SYSCALL, false, Some(15)), RT_SIGRETURN);
        assert_eq!(recorded_nr(NO_SYSCALL, true, Some(119)), i386::SIGRETURN);
        assert_eq!(recorded_nr(NO_SYSCALL, true, None), i386::SOME_SIGRETURN);
        assert!(is_sigreturn(recorded_nr(NO_SYSCALL, true, Some(173))));
    }

    #[test]
    fn compat_calls_move_no_bytes() {
        // i386 brk (45) is x86_64 recvfrom; i386 getpid (20) is writev.
        for nr in [45, 20, 3, 4] {
            let id = recorded_nr(nr, true, None);
            assert_eq!(shape(id), OTHER, "compat {nr}");
        }
        assert_eq!(recorded_nr(45, false, None), RECVFROM);
        assert!(same_call(EXECVE, recorded_nr(11, true, None)));
        assert!(same_call(45, recorded_nr(45, true, None)));
        assert!(!same_call(45, recorded_nr(11, true, None)));
        assert!(never_returns(recorded_nr(252, true, None)));
        assert!(is_child_return(recorded_nr(120, true, None), 0));
        assert!(!is_child_return(recorded_nr(120, true, None), 7));
    }
}
