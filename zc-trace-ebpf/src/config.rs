//! Read-only settings, written by the collector before the programs load.

use aya_ebpf::Global;
use zc_trace_common::KernelOffsets;

/// 1: children of traced processes are traced too.
#[unsafe(no_mangle)]
pub static FOLLOW_FORKS: Global<u32> = Global::new(0);

/// Struct field offsets of the running kernel (see `KernelOffsets`).
#[unsafe(no_mangle)]
pub static OFFSETS: Global<KernelOffsets> = Global::new(KernelOffsets {
    task_files: 0,
    task_tgid: 0,
    files_fdt: 0,
    fdt_max_fds: 0,
    fdt_fd: 0,
    file_inode: 0,
    inode_mode: 0,
    _pad: 0,
});
