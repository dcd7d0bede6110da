//! Read-only settings, written by the collector before the programs load.

use aya_ebpf::Global;

/// 1: time every syscall (sys_enter is attached); 0: count at exit only.
#[unsafe(no_mangle)]
pub static TIMED: Global<u32> = Global::new(1);

/// Slots in INFLIGHT minus one (a power of two minus one).
#[unsafe(no_mangle)]
pub static INFLIGHT_MASK: Global<u32> = Global::new(0);

/// Slots in COW_CANDIDATES minus one (a power of two minus one).
#[unsafe(no_mangle)]
pub static COW_MASK: Global<u32> = Global::new(0);

/// 1: children of traced processes are traced too.
#[unsafe(no_mangle)]
pub static FOLLOW_FORKS: Global<u32> = Global::new(0);

/// Who is counted: `zc_trace_common::scope`.
#[unsafe(no_mangle)]
pub static SCOPE: Global<u32> = Global::new(0);

/// With scope CGROUP: the traced cgroup's v2 id and its depth below the
/// v2 root (the root is level 0).
#[unsafe(no_mangle)]
pub static CGROUP_ID: Global<u64> = Global::new(0);
#[unsafe(no_mangle)]
pub static CGROUP_LEVEL: Global<u32> = Global::new(0);

/// The possible CPUs: how many values a per-CPU map row has.
#[unsafe(no_mangle)]
pub static NR_CPUS: Global<u32> = Global::new(1);

/// zc-trace's own process, never counted with scopes CGROUP and ALL.
#[unsafe(no_mangle)]
pub static SELF_TGID: Global<u32> = Global::new(0);

/// Struct field offsets of the running kernel (see `KernelOffsets`), one
/// global each: the verifier treats a load straight from a read-only global
/// as a constant, which it needs to check BTF pointer walks.
macro_rules! offsets {
    ($($name:ident),*) => {
        $(
            #[unsafe(no_mangle)]
            pub static $name: Global<u32> = Global::new(0);
        )*
    };
}

offsets!(
    // BTF ids of `struct file` and `struct kiocb` (see `fds::as_kernel`).
    BTF_FILE,
    BTF_KIOCB,
    OFF_TASK_FILES,
    OFF_TASK_TGID,
    OFF_TASK_PID,
    OFF_TASK_UTIME,
    OFF_TASK_STIME,
    OFF_TASK_RUNTIME,
    OFF_FILES_FDT,
    OFF_FDT_MAX_FDS,
    OFF_FDT_FD,
    OFF_FILE_INODE,
    OFF_INODE_MODE,
    OFF_FILE_FLAGS,
    OFF_TASK_MIN_FLT,
    OFF_TASK_MAJ_FLT,
    OFF_TASK_FLAGS,
    OFF_FOLIO_FLAGS,
    OFF_FOLIO_NR_PAGES,
    PG_HEAD,
    OFF_FILE_MAPPING,
    OFF_FOLIO_MAPPING,
    OFF_FILE_PRIVATE,
    OFF_SOCKET_SK,
    OFF_SOCK_FLAGS,
    OFF_SOCK_ZCKEY,
    SOCK_ZEROCOPY,
    GFP_COW,
    GFP_COW_MASK,
    OFF_REQ_FILE,
    OFF_REQ_OPCODE,
    OFF_REQ_TCTX,
    OFF_TCTX_TASK,
    OFF_SPLICE_FD_IN,
    OFF_SPLICE_FLAGS,
    OFF_NOTIF_ZC_REPORT
);
