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

/// Where a syscall's bytes go in the copy ledger: the one syscall class of
/// the probes, the report (its JSON name is `name()`), the renderers and the
/// lab. Everything a class means to a reader sits in `look()` below, so a new
/// class is this enum, its `look()`, its `Bytes` column and the probe that
/// files calls under it.
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
/// label, its colour, and its row of the copy ledger.
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
    /// The class's row of the copy ledger; `None` for a class whose bytes
    /// are not counted there.
    pub ledger: Option<LedgerRow>,
}

/// One row of the copy ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LedgerRow {
    /// The path's label in the charts and the HTML.
    pub label: &'static str,
    /// The same in plain ASCII for the terminal.
    pub text_label: &'static str,
    /// The calls that move these bytes, in full (HTML) ...
    pub via: &'static str,
    /// ... and short (terminal).
    pub text_via: &'static str,
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
                ledger: Some(LedgerRow {
                    label: "copied kernel → user",
                    text_label: "copied by CPU, kernel -> user",
                    via: "read, pread64, readv, recv* ...",
                    text_via: "read, recv* ...",
                }),
            },
            Self::CopyFromUser => Look {
                group: "copying",
                legend: "copying, user → kernel",
                rgb: (255, 127, 14),
                ledger: Some(LedgerRow {
                    label: "copied user → kernel",
                    text_label: "copied by CPU, user -> kernel",
                    via: "write, pwrite64, writev, send* ...",
                    text_via: "write, send* ...",
                }),
            },
            Self::ZeroCopy => Look {
                group: "zero-copy",
                legend: "zero-copy",
                rgb: (44, 160, 44),
                ledger: Some(LedgerRow {
                    label: "zero-copy",
                    text_label: "moved zero-copy",
                    via: "sendfile, splice, tee, vmsplice, copy_file_range",
                    text_via: "sendfile, splice, tee, vmsplice, copy_file_range",
                }),
            },
            Self::Mapping => Look {
                group: "mapping",
                legend: "mapping",
                rgb: (148, 103, 189),
                ledger: Some(LedgerRow {
                    label: "mapped (mmap)",
                    text_label: "mapped (file-backed mmap)",
                    via: "file-backed mmap length",
                    text_via: "mmap length",
                }),
            },
            Self::Other => Look {
                group: "other",
                legend: "other",
                rgb: (140, 140, 140),
                ledger: None,
            },
        }
    }

    /// The classes with a row in the copy ledger, in ledger order.
    pub fn ledger() -> impl Iterator<Item = (Class, LedgerRow)> {
        Self::ALL
            .into_iter()
            .filter_map(|c| c.look().ledger.map(|row| (c, row)))
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

/// Syscalls that never return to sys_exit on success; counted at entry.
#[inline(always)]
pub const fn never_returns(nr: u32) -> bool {
    matches!(nr, EXIT | EXIT_GROUP)
}

/// Whether a sys_exit with return value `ret` is a new child's first return
/// from fork/clone (it returns 0 there without having entered the call):
/// not a call of its own, as strace counts.
#[inline(always)]
pub const fn is_child_return(nr: u32, ret: i64) -> bool {
    ret == 0 && matches!(nr, CLONE | FORK | VFORK | CLONE3)
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
