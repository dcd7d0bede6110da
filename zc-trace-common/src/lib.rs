//! Types shared by the kernel probes and the userspace collector.
//!
//! Everything here is `#[repr(C)]` with fixed-width fields and explicit
//! padding, so both sides agree on the bytes in every map. The `user` feature
//! adds `aya::Pod` impls for the collector.
#![no_std]

pub mod syscalls;

/// Kind of file behind a file descriptor, read from the inode's `i_mode` at
/// the time of the call.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FdKind {
    /// The syscall takes no file descriptor (or the fd is not the point).
    None = 0,
    File = 1,
    Socket = 2,
    Pipe = 3,
    /// Character devices, anonymous inodes (eventfd, epoll ...), directories.
    Other = 4,
    /// The fd was not open or could not be resolved.
    Unknown = 5,
}

impl FdKind {
    pub const fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::None,
            1 => Self::File,
            2 => Self::Socket,
            3 => Self::Pipe,
            4 => Self::Other,
            _ => Self::Unknown,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::File => "file",
            Self::Socket => "socket",
            Self::Pipe => "pipe",
            Self::Other => "other",
            Self::Unknown => "unknown",
        }
    }
}

/// Key of the per-CPU syscall statistics map: one row per process, syscall
/// and fd kind(s).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SyscallKey {
    pub tgid: u32,
    pub nr: u32,
    /// Kind of the fd the data went to (or the only fd of the call).
    pub kind: u8,
    /// Kind of the fd the data came from, for two-fd calls (sendfile,
    /// splice, tee, copy_file_range); `FdKind::None` otherwise.
    pub src_kind: u8,
    pub _pad: [u8; 6],
}

/// Per-CPU values of one `SyscallKey` row.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(derive_more::AddAssign))]
pub struct SyscallStats {
    pub count: u64,
    pub errors: u64,
    /// Sum of successful return values that mean bytes (or the mapped length
    /// for file-backed mmap); 0 for calls whose return is not a byte count.
    pub bytes: u64,
    /// Time from sys_enter to sys_exit.
    pub time_ns: u64,
}

/// Per-CPU event counters of one traced process (keyed by tgid).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(derive_more::AddAssign))]
pub struct ProcCounters {
    pub ctx_voluntary: u64,
    pub ctx_involuntary: u64,
    pub faults_user: u64,
    pub faults_kernel: u64,
    pub faults_file: u64,
}

/// What the probes know of a traced process, written at fork and exec.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcInfo {
    pub ppid: u32,
    /// Number of exec calls seen (0 = still the image it was forked as).
    pub execs: u32,
    pub comm: [u8; 16],
}

/// Start of a syscall in flight, in the slot `tid & mask` of an array:
/// the tid and nr are checked at exit, so a slot shared by two threads
/// costs a timing, never a wrong one.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inflight {
    pub start_ns: u64,
    pub tid: u32,
    pub nr: u32,
}

/// Pids per element of the target filter array: one byte each, so the
/// probes can mark a pid with a single-byte store that cannot clobber a
/// neighbour's, and the filter is an array lookup, not a hash.
pub const PIDS_PER_SLOT: u32 = 64;
pub type TargetSlot = [u8; PIDS_PER_SLOT as usize];

/// Indices into the per-CPU `DROPS` array: everything the probes had to
/// give up on is counted here and shown in the report.
pub mod drop {
    /// A syscall could not be counted: the statistics map was full.
    pub const STATS_FULL: u32 = 0;
    /// A syscall was counted without its time: its entry was not seen
    /// (it began before tracing did) or another thread took its slot.
    pub const UNTIMED: u32 = 1;
    /// A new child could not be followed: the target map was full.
    pub const TARGETS_FULL: u32 = 2;
    /// A fault or scheduler switch could not be counted: the per-process
    /// counter map was full.
    pub const PROC_FULL: u32 = 3;
    /// recvmmsg/sendmmsg with more messages than the probe reads: the bytes
    /// of the excess messages are missing.
    pub const MMSG_TRUNCATED: u32 = 4;
    /// The bytes of a recvmmsg/sendmmsg message could not be read.
    pub const MMSG_UNREADABLE: u32 = 5;
    pub const COUNT: u32 = 6;

    pub const NAMES: [&str; COUNT as usize] = [
        "stats_map_full",
        "untimed_calls",
        "targets_map_full",
        "proc_map_full",
        "mmsg_truncated",
        "mmsg_unreadable",
    ];
}

/// The in-kernel latency histogram: log2 buckets of time in the kernel,
/// per syscall number. Bucket `b` counts calls that took [2^b, 2^(b+1)) ns
/// (bucket 0 also holds 0 and 1 ns); the last bucket is open-ended.
pub mod latency {
    pub const BUCKETS: u32 = 40;
    /// Syscall numbers histogrammed (all of x86_64's fit).
    pub const MAX_NR: u32 = 512;
    pub const SLOTS: u32 = BUCKETS * MAX_NR;

    /// The bucket of a duration.
    #[inline(always)]
    pub const fn bucket(ns: u64) -> u32 {
        let b = 63 - (ns | 1).leading_zeros();
        if b >= BUCKETS { BUCKETS - 1 } else { b }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn buckets_are_log2() {
            assert_eq!(bucket(0), 0);
            assert_eq!(bucket(1), 0);
            assert_eq!(bucket(2), 1);
            assert_eq!(bucket(1023), 9);
            assert_eq!(bucket(1024), 10);
            assert_eq!(bucket(u64::MAX), BUCKETS - 1);
        }
    }
}

/// Map sizes the probes are compiled with; the loader also caps the
/// in-flight array it sizes to pid_max by `MAX_INFLIGHT`.
pub mod limits {
    pub const MAX_TARGETS: u32 = 16384;
    pub const MAX_STATS: u32 = 65536;
    /// In-flight slots at most (a power of two; fewer when pid_max is lower).
    pub const MAX_INFLIGHT: u32 = 1 << 20;
    /// Target filter slots compiled in (4M pids); sized to pid_max at load.
    pub const MAX_TARGET_SLOTS: u32 = (4 << 20) / super::PIDS_PER_SLOT;
    /// recvmmsg/sendmmsg messages whose lengths the probe sums.
    pub const MAX_MMSG: u32 = 64;
}

const _: () = assert!(core::mem::size_of::<SyscallKey>() == 16);
const _: () = assert!(core::mem::size_of::<SyscallStats>() == 32);
const _: () = assert!(core::mem::size_of::<ProcCounters>() == 40);
const _: () = assert!(core::mem::size_of::<ProcInfo>() == 24);
const _: () = assert!(core::mem::size_of::<Inflight>() == 16);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are #[repr(C)] plain integers with explicit
    // padding, valid for any bit pattern.
    unsafe impl aya::Pod for super::SyscallKey {}
    unsafe impl aya::Pod for super::SyscallStats {}
    unsafe impl aya::Pod for super::ProcCounters {}
    unsafe impl aya::Pod for super::ProcInfo {}
    unsafe impl aya::Pod for super::Inflight {}
}
