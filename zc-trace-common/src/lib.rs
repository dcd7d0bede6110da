//! Types shared by the kernel probes and the userspace collector.
//!
//! Everything here is `#[repr(C)]` with fixed-width fields and explicit
//! padding, so both sides agree on the bytes in every map. The `user` feature
//! adds `aya::Pod` impls for the collector.
#![no_std]

pub mod syscalls;
pub mod uring;

/// Kind of file behind a file descriptor, read from the inode's `i_mode` at
/// the time of the call.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FdKind {
    /// The syscall takes no file descriptor (or the fd is not the point).
    None = 0,
    /// A regular file opened without O_DIRECT.
    File = 1,
    Socket = 2,
    Pipe = 3,
    /// Block devices (read through their page cache), anonymous inodes
    /// (eventfd, epoll ...), directories.
    Other = 4,
    /// The fd was not open or could not be resolved.
    Unknown = 5,
    /// A character device (/dev/null, /dev/zero, ttys ...): its driver
    /// decides what a read or write does, so it is never booked as a copy.
    Device = 6,
    /// A regular file or block device opened with O_DIRECT: the data moves
    /// by DMA straight to or from the user pages.
    Direct = 7,
    /// A socket with SO_ZEROCOPY, sent to with MSG_ZEROCOPY: the kernel pins
    /// the user pages instead of copying them (it may still copy later, and
    /// says so in the completion notification). Only send calls have it.
    Zerocopy = 8,
}

impl FdKind {
    pub const fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::None,
            1 => Self::File,
            2 => Self::Socket,
            3 => Self::Pipe,
            4 => Self::Other,
            6 => Self::Device,
            7 => Self::Direct,
            8 => Self::Zerocopy,
            _ => Self::Unknown,
        }
    }

    pub const ALL: [Self; 9] = [
        Self::None,
        Self::File,
        Self::Socket,
        Self::Pipe,
        Self::Other,
        Self::Unknown,
        Self::Device,
        Self::Direct,
        Self::Zerocopy,
    ];

    /// The kind named `name` (see `name`), if any.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::File => "file",
            Self::Socket => "socket",
            Self::Pipe => "pipe",
            Self::Other => "other",
            Self::Unknown => "unknown",
            Self::Device => "device",
            Self::Direct => "direct",
            Self::Zerocopy => "zerocopy",
        }
    }
}

/// Key of the per-CPU syscall statistics map: one row per process, syscall
/// and fd kind(s).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SyscallKey {
    pub tgid: u32,
    pub nr: u32,
    /// Kind of the fd the data went to (or the only fd of the call).
    pub dst_kind: u8,
    /// Kind of the fd the data came from, for two-fd calls (sendfile,
    /// splice, tee, copy_file_range); `FdKind::None` otherwise.
    pub src_kind: u8,
    pub _pad: [u8; 6],
}

impl SyscallKey {
    #[inline(always)]
    pub const fn new(tgid: u32, nr: u32, dst_kind: FdKind, src_kind: FdKind) -> Self {
        Self {
            tgid,
            nr,
            dst_kind: dst_kind as u8,
            src_kind: src_kind as u8,
            _pad: [0; 6],
        }
    }
}

/// Per-CPU values of one `SyscallKey` row.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, derive_more::AddAssign)]
pub struct SyscallStats {
    pub count: u64,
    pub errors: u64,
    /// Sum of successful return values that mean bytes (or the mapped length
    /// for file-backed mmap); 0 for calls whose return is not a byte count.
    pub bytes: u64,
    /// Time from sys_enter to sys_exit (wall time).
    pub time_ns: u64,
    /// The part of `time_ns` the thread spent off the CPU (blocked, or
    /// runnable and waiting for a CPU): switched out by the scheduler.
    pub off_cpu_ns: u64,
}

impl SyscallStats {
    /// One call's figures.
    #[inline(always)]
    pub const fn one_call(failed: bool, bytes: u64, time_ns: u64) -> Self {
        Self {
            count: 1,
            errors: failed as u64,
            bytes,
            time_ns,
            off_cpu_ns: 0,
        }
    }
}

/// Per-CPU event counters of one traced process (keyed by tgid).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, derive_more::AddAssign)]
pub struct ProcCounters {
    pub ctx_voluntary: u64,
    pub ctx_involuntary: u64,
    pub faults_user: u64,
    pub faults_kernel: u64,
    pub faults_file: u64,
    /// The kernel's own fault counters (task->min_flt + maj_flt) of the
    /// process's threads, added as each thread exits: they also count the
    /// faults taken inside the kernel on the task's behalf (get_user_pages:
    /// vmsplice, O_DIRECT, process_vm_*), which no exception tracepoint sees.
    pub faults_task: u64,
    /// Bytes inserted into the page cache in the process's context outside
    /// write calls: read from storage on its behalf (folio size x folios).
    pub disk_read: u64,
    /// Bytes handed to the kernel pinned rather than copied, by paths that
    /// are not a syscall row of their own (io_uring SEND_ZC / SENDMSG_ZC);
    /// MSG_ZEROCOPY send calls are rows of fd kind `Zerocopy`.
    pub zerocopy_sent: u64,
    /// Of the bytes sent zero-copy, those whose completion the program (or
    /// the kernel, for io_uring) reported: their outcome is known.
    pub zerocopy_acked: u64,
    /// Of the acknowledged bytes, those the kernel says it copied after all
    /// (SO_EE_CODE_ZEROCOPY_COPIED, IORING_NOTIF_USAGE_ZC_COPIED).
    pub zerocopy_copied: u64,
    /// Bytes copied by copy-on-write faults (page size x pages copied).
    pub cow_copied: u64,
    /// The kernel's own CPU accounting of the process's threads, added as
    /// each thread exits: task->utime, task->stime (tick-sampled, in ns)
    /// and task->se.sum_exec_runtime (the precise total they are scaled to,
    /// as getrusage does).
    pub cpu_user_ns: u64,
    pub cpu_system_ns: u64,
    pub cpu_runtime_ns: u64,
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

impl ProcInfo {
    pub const UNNAMED: Self = Self {
        ppid: 0,
        execs: 0,
        comm: [0; 16],
    };
}

/// What the probes send when a traced process's last thread exits, so the
/// collector can fold its rows out of the maps: its pid, and its name and
/// parent from PROCS (which the probe then deletes).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exited {
    pub tgid: u32,
    /// 1 when `info` names the process: its PROCS entry, or the exiting
    /// thread's name when it had none.
    pub named: u32,
    pub info: ProcInfo,
    /// The cgroup v2 id of the exiting thread (the process's cgroup at
    /// its end), for the per-cgroup report.
    pub cgroup: u64,
}

/// One row of an `ExitRecord`: a `SyscallKey` without its pid (the
/// record's) and the row's figures summed over CPUs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FoldedRow {
    pub nr: u32,
    pub dst_kind: u8,
    pub src_kind: u8,
    pub _pad: [u8; 2],
    pub stats: SyscallStats,
}

/// What the probes send when a traced process's last thread exits (ring
/// buffer EXITS). When the probe could fold the process (`folded` = 1) the
/// record carries its `rows` syscall rows and its event counters, summed
/// over CPUs and already removed from the maps, so the collector reads them
/// here with no bpf() call; only the used rows are sent. Otherwise (more
/// than `fold::MAX_ROWS` rows, or their list was lost) it is the header
/// alone and the collector folds the rows from the maps.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExitRecord {
    pub exited: Exited,
    pub folded: u32,
    pub rows: u32,
    pub events: ProcCounters,
    pub row: [FoldedRow; fold::MAX_ROWS as usize],
}

/// Folding an exited process in the probes (see `ExitRecord`).
pub mod fold {
    /// Syscall rows (distinct syscall and fd kinds) a process may have for
    /// its exit to fold them: `true` has ~20, a busy server ~50.
    pub const MAX_ROWS: u32 = 64;
    /// Bytes of an `ExitRecord` before its rows.
    pub const HEADER_BYTES: u32 = core::mem::offset_of!(super::ExitRecord, row) as u32;
    pub const ROW_BYTES: u32 = core::mem::size_of::<super::FoldedRow>() as u32;

    /// A row's (syscall, dst kind, src kind) in one word, for `RowKeys`;
    /// never 0 (LISTED is set), so an index no one wrote shows.
    #[inline(always)]
    pub const fn pack(nr: u32, dst_kind: u8, src_kind: u8) -> u64 {
        LISTED | nr as u64 | (dst_kind as u64) << 32 | (src_kind as u64) << 40
    }

    const LISTED: u64 = 1 << 63;

    #[inline(always)]
    pub const fn unpack(packed: u64) -> (u32, u8, u8) {
        (packed as u32, (packed >> 32) as u8, (packed >> 40) as u8)
    }

    /// Process `tgid`'s STATS key of a `pack`ed row, built as two words:
    /// field by field, the 6-byte padding made the BPF backend call memset.
    #[inline(always)]
    pub const fn key(tgid: u32, packed: u64) -> super::SyscallKey {
        const _: () = assert!(cfg!(target_endian = "little"));
        let words = [
            tgid as u64 | (packed as u32 as u64) << 32,
            (packed >> 32) & 0xffff,
        ];
        // SAFETY: SyscallKey is 16 bytes of plain integers (asserted
        // below): tgid, nr, dst_kind, src_kind, then zeroed padding.
        unsafe { core::mem::transmute::<[u64; 2], super::SyscallKey>(words) }
    }
}

/// The syscall rows a process has in STATS (`fold::pack`ed), in the order
/// they were created: its exit folds them by key, without a scan of the
/// map. `count` past `fold::MAX_ROWS` means the list overflowed.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct RowKeys {
    pub count: u64,
    pub keys: [u64; fold::MAX_ROWS as usize],
}

/// Who the probes count (the `SCOPE` setting).
pub mod scope {
    /// The processes in the target array (wrap, -p).
    pub const PIDS: u32 = 0;
    /// Every process in one cgroup v2 and its descendants (--cgroup).
    pub const CGROUP: u32 = 1;
    /// Every process of the machine but zc-trace itself (-a).
    pub const ALL: u32 = 2;
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
    /// Off-CPU time of the call so far (probes/offcpu.rs).
    pub off_cpu_ns: u64,
    /// When the scheduler switched the thread out during the call; 0 while
    /// it runs.
    pub off_since_ns: u64,
}

/// A thread's copy-on-write candidates (probes/cow.rs), in the slot
/// `tid & mask` of an array: up to two pages, oldest first, 0 for none.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CowSlot {
    pub tid: u32,
    pub tgid: u32,
    pub pages: [u64; 2],
}

/// One zero-copy send, keyed by its socket and the notification id the
/// kernel gave it (`sk->sk_zckey`, one per send call).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZerocopyId {
    /// The `struct sock *`.
    pub sk: u64,
    pub id: u32,
    pub _pad: u32,
}

/// Where a zero-copy send's bytes lie in its socket's running total of
/// zero-copy bytes: a notification for ids `lo..=hi` covers
/// `span(hi).after - span(lo).before` bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZerocopySpan {
    pub before: u64,
    pub after: u64,
}

/// Pids per element of the target filter array: one byte each, so the
/// probes can mark a pid with a single-byte store that cannot clobber a
/// neighbour's, and the filter is an array lookup, not a hash.
pub const PIDS_PER_SLOT: u32 = 64;
pub type TargetSlot = [u8; PIDS_PER_SLOT as usize];

/// Kernel functions (kfuncs) the probes call. aya cannot emit a kfunc call,
/// so a probe calls a placeholder helper number and the loader rewrites
/// each such call into the kfunc call (the `kfunc` module of the loader).
pub mod kfunc {
    /// `bpf_rdonly_cast(obj, btf_id)` (Linux 6.2+): a read-only, untrusted
    /// pointer of kernel type `btf_id`. Never a real helper number (those
    /// end near 220).
    pub const RDONLY_CAST: u32 = 0x7a63_0001;
}

/// Indices into the per-CPU `DROPS` array: everything the probes had to
/// give up on is counted here and shown in the report.
pub mod drop {
    /// A syscall is missing from its process's row (the per-process map
    /// was full); the all-process totals still count it.
    pub const STATS_FULL: u32 = 0;
    /// A syscall was counted without its time: its entry was not seen
    /// (it began before tracing did) or another thread took its slot.
    pub const UNTIMED: u32 = 1;
    /// A child is traced but missing from the list of live targets (the
    /// map was full, or its pid is above pid_max and it is not traced at
    /// all): it is not signalled when tracing stops.
    pub const TARGETS_FULL: u32 = 2;
    /// A fault or scheduler switch is missing from its process's row (the
    /// per-process counter map was full); the totals still count it.
    pub const PROC_FULL: u32 = 3;
    /// recvmmsg/sendmmsg with more messages than the probe reads: the bytes
    /// of the excess messages are missing.
    pub const MMSG_TRUNCATED: u32 = 4;
    /// The bytes of a recvmmsg/sendmmsg message could not be read.
    pub const MMSG_UNREADABLE: u32 = 5;
    /// A process exited but the collector was not told (the exit ring
    /// buffer was full): its rows stay in the maps until the end of the run.
    pub const EXITS_UNFOLDED: u32 = 6;
    /// Not a loss: a call returned on a thread whose entry was not seen,
    /// because it was already in progress when tracing began (at attach).
    /// It is counted, without its time; the report says so in a note.
    pub const IN_PROGRESS: u32 = 7;
    /// A zero-copy completion notification named sends the probes no
    /// longer remembered (evicted from ZC_SENDS): its bytes are missing
    /// from zerocopy_copied and count as unknown.
    pub const ZEROCOPY_UNMATCHED: u32 = 8;
    /// An io_uring CQE posted without its request (a multishot request's
    /// further CQEs, MSG_RING): its opcode is unknown, so it is not counted.
    pub const URING_NO_REQUEST: u32 = 9;
    /// An io_uring CQE that found the completion ring full (it waits in
    /// the kernel's overflow list): its request is not counted.
    pub const URING_OVERFLOW: u32 = 10;
    /// A thread's copy-on-write candidates were settled early, because
    /// another thread needed their slot (tids collide in the slots only
    /// when pid_max exceeds them): a copy still in progress on another CPU
    /// at that moment is missed.
    pub const COW_EVICTED: u32 = 11;
    pub const COUNT: u32 = 12;

    pub const NAMES: [&str; COUNT as usize] = [
        "stats_map_full",
        "untimed_calls",
        "targets_map_full",
        "proc_map_full",
        "mmsg_truncated",
        "mmsg_unreadable",
        "exits_unfolded",
        "in_progress_at_start",
        "zerocopy_unmatched",
        "io_uring_cqe_without_request",
        "io_uring_cqe_overflow",
        "cow_candidates_evicted",
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

/// The exact all-process totals: a per-CPU array with one slot per
/// (syscall, fd kind), per (io_uring opcode, fd kind), and per (call,
/// source kind, destination kind) for the two-fd calls. An array cannot
/// fill, so the totals stay exact whatever happens to the per-process rows.
pub mod totals {
    use super::{latency::MAX_NR, syscalls as nr, uring};

    /// FdKind values.
    pub const KINDS: u32 = super::FdKind::ALL.len() as u32;
    const ONE_FD_SLOTS: u32 = MAX_NR * KINDS;
    /// io_uring requests, after the syscalls.
    const URING_SLOTS: u32 = uring::MAX_OPS * KINDS;
    const TWO_FD_CALLS: [u32; 6] = [
        nr::SENDFILE,
        nr::SPLICE,
        nr::TEE,
        nr::COPY_FILE_RANGE,
        uring::nr(uring::op::SPLICE),
        uring::nr(uring::op::TEE),
    ];
    /// Two-fd calls with a source kind (not None): KINDS - 1 of them.
    const PAIRS: u32 = (KINDS - 1) * KINDS;
    const TWO_FD_START: u32 = ONE_FD_SLOTS + URING_SLOTS;
    pub const SLOTS: u32 = TWO_FD_START + TWO_FD_CALLS.len() as u32 * PAIRS;
    /// Words of the bitmap of the slots a CPU has written (one bit per
    /// slot): a run touches a few dozen of the thousands of slots, and
    /// the collector sums only those.
    pub const SEEN_WORDS: u32 = SLOTS.div_ceil(64);

    /// Where slot `slot`'s bit is in a CPU's part of the bitmap: the
    /// word, and the bit within it.
    #[inline(always)]
    pub const fn seen_bit(slot: u32) -> (u32, u64) {
        (slot / 64, 1 << (slot % 64))
    }

    /// The slot of a call; None for numbers past MAX_NR that are no
    /// io_uring opcode below MAX_OPS (their only record is their process's
    /// row).
    #[inline(always)]
    pub const fn slot(nr: u32, dst_kind: u8, src_kind: u8) -> Option<u32> {
        let (dst, src) = (dst_kind as u32 % KINDS, src_kind as u32 % KINDS);
        if src != 0 {
            let mut i = 0;
            while i < TWO_FD_CALLS.len() {
                if TWO_FD_CALLS[i] == nr {
                    return Some(TWO_FD_START + i as u32 * PAIRS + (src - 1) * KINDS + dst);
                }
                i += 1;
            }
        }
        if nr < MAX_NR {
            return Some(nr * KINDS + dst);
        }
        match uring::opcode(nr) {
            Some(op) if (op as u32) < uring::MAX_OPS => {
                Some(ONE_FD_SLOTS + op as u32 * KINDS + dst)
            }
            _ => None,
        }
    }

    /// The (syscall, dst kind, src kind) of a slot.
    pub const fn call(slot: u32) -> (u32, u8, u8) {
        if slot < ONE_FD_SLOTS {
            return (slot / KINDS, (slot % KINDS) as u8, 0);
        }
        if slot < TWO_FD_START {
            let at = slot - ONE_FD_SLOTS;
            return (uring::nr((at / KINDS) as u8), (at % KINDS) as u8, 0);
        }
        let i = (slot - TWO_FD_START) / PAIRS;
        let rest = (slot - TWO_FD_START) % PAIRS;
        let nr = if (i as usize) < TWO_FD_CALLS.len() {
            TWO_FD_CALLS[i as usize]
        } else {
            u32::MAX
        };
        (nr, (rest % KINDS) as u8, (rest / KINDS + 1) as u8)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn every_slot_names_one_call() {
            for slot in 0..SLOTS {
                let (nr, dst, src) = call(slot);
                assert_eq!(super::slot(nr, dst, src), Some(slot), "slot {slot}");
            }
            assert_eq!(super::slot(MAX_NR, 0, 0), None);
            assert_eq!(super::slot(uring::nr(uring::MAX_OPS as u8), 1, 0), None);
            assert!(super::slot(uring::nr(uring::op::READ), 1, 0).is_some());
            // A source kind on a one-fd call keeps its destination's slot.
            assert_eq!(super::slot(0, 1, 2), super::slot(0, 1, 0));
        }
    }
}

/// Map sizes the probes are compiled with; the loader also caps the
/// in-flight array it sizes to pid_max by `MAX_INFLIGHT`.
pub mod limits {
    /// Copy-on-write candidate slots at most (a power of two; fewer when
    /// pid_max is lower). Tids share a slot only above it, and a slot
    /// holds candidates only until its thread's next fault.
    pub const MAX_COW_SLOTS: u32 = 1 << 16;
    /// Zero-copy sends remembered until their notification is read (LRU).
    pub const MAX_ZEROCOPY_SENDS: u32 = 1 << 16;
    /// Sockets with a running total of zero-copy bytes (LRU).
    pub const MAX_ZEROCOPY_SOCKETS: u32 = 4096;
    /// Live traced processes at once (exited ones leave the maps).
    pub const MAX_TARGETS: u32 = 16384;
    /// Per-process syscall rows of live processes (and of exited ones the
    /// collector has not folded away yet): ~20 a short-lived process, so
    /// 3,000 `true` started at once fill 60,000. Preallocated, so each costs
    /// start-up time: 65,536 per-CPU rows took 90-110 ms here (32,768 took
    /// 35-60 ms, but lost 176,000 rows of such a burst).
    pub const MAX_STATS: u32 = 65536;
    /// Kernel memory each preallocated per-CPU map (the per-process rows)
    /// may take: machines with many CPUs get fewer rows than the maximum.
    pub const PER_CPU_MAP_BYTES: u64 = 16 << 20;
    /// Bytes of the ring buffer that announces exited processes. It keeps
    /// room for MAX_TARGETS records without rows (56 bytes each with the
    /// ring's header; their processes are folded from the maps by the
    /// collector), so every process a run follows can end at once; the
    /// rest, 1.1 MiB, takes records with rows (~1.1 KiB for `true`'s 20):
    /// ~1,000 between two reads of the collector (every 200 ms by default,
    /// so 5,000 exits a second; beyond that, the collector's scan folds
    /// the rest, as exactly but at a higher cost).
    pub const EXITS_BYTES: u32 = 2 << 20;
    /// What EXITS keeps for records without rows.
    pub const EXITS_HEADERS_ROOM: u32 = MAX_TARGETS * 56;
    /// In-flight slots at most (a power of two; fewer when pid_max is lower).
    pub const MAX_INFLIGHT: u32 = 1 << 20;
    /// Target filter slots compiled in (4M pids); sized to pid_max at load.
    pub const MAX_TARGET_SLOTS: u32 = (4 << 20) / super::PIDS_PER_SLOT;
    /// recvmmsg/sendmmsg messages whose lengths the probe sums.
    pub const MAX_MMSG: u32 = 64;
    /// io_uring SEND_ZC requests awaiting their notification at once.
    pub const MAX_ZC_PENDING: u32 = 16384;
}

const _: () = assert!(core::mem::size_of::<SyscallKey>() == 16);
const _: () = assert!(core::mem::size_of::<SyscallStats>() == 40);
const _: () = assert!(core::mem::size_of::<ProcCounters>() == 112);
const _: () = assert!(core::mem::size_of::<ProcInfo>() == 24);
const _: () = assert!(core::mem::size_of::<Inflight>() == 32);
const _: () = assert!(core::mem::size_of::<CowSlot>() == 24);
const _: () = assert!(core::mem::size_of::<Exited>() == 40);
const _: () = assert!(core::mem::size_of::<FoldedRow>() == 48);
// A record without rows, with the ring's 8-byte header, in EXITS_HEADERS_ROOM.
const _: () = assert!(core::mem::offset_of!(ExitRecord, events) + 8 <= 56);
const _: () = assert!(fold::HEADER_BYTES == 160);
const _: () = assert!(core::mem::size_of::<ZerocopyId>() == 16);
const _: () = assert!(core::mem::size_of::<ZerocopySpan>() == 16);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are #[repr(C)] plain integers with explicit
    // padding, valid for any bit pattern.
    unsafe impl aya::Pod for super::SyscallKey {}
    unsafe impl aya::Pod for super::SyscallStats {}
    unsafe impl aya::Pod for super::ProcCounters {}
    unsafe impl aya::Pod for super::ProcInfo {}
    unsafe impl aya::Pod for super::Inflight {}
    unsafe impl aya::Pod for super::Exited {}
    unsafe impl aya::Pod for super::FoldedRow {}
    unsafe impl aya::Pod for super::RowKeys {}
}
