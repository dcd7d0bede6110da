//! The kind of file behind an fd, read from the current task's fd table.
//!
//! Reading `current->files->fdt->fd[fd]->f_inode->i_mode` at the time of the
//! call gives the exact answer for every fd, including those opened before
//! tracing began, inherited across fork or passed over a unix socket, with
//! no bookkeeping of open/dup/close to get wrong.

use aya_ebpf::helpers::{bpf_get_current_task, bpf_probe_read_kernel};
use zc_trace_common::{FdKind, KernelOffsets};

use crate::config::OFFSETS;

// include/uapi/linux/stat.h
const S_IFMT: u16 = 0o170000;
const S_IFSOCK: u16 = 0o140000;
const S_IFREG: u16 = 0o100000;
const S_IFIFO: u16 = 0o010000;

#[inline(always)]
unsafe fn read_at<T>(base: u64, offset: u32) -> Result<T, i64> {
    // SAFETY: bpf_probe_read_kernel tolerates any address.
    unsafe { bpf_probe_read_kernel((base + offset as u64) as *const T) }.map_err(|e| e as i64)
}

/// The kind of the current task's file descriptor `fd`.
#[inline(always)]
pub fn fd_kind(fd: u64) -> FdKind {
    let off = OFFSETS.load();
    if off.file_inode == 0 {
        return FdKind::Unknown;
    }
    // SAFETY: every read goes through bpf_probe_read_kernel.
    match unsafe { try_fd_kind(&off, fd) } {
        Ok(kind) => kind,
        Err(_) => FdKind::Unknown,
    }
}

unsafe fn try_fd_kind(off: &KernelOffsets, fd: u64) -> Result<FdKind, i64> {
    // fds are ints; a negative one (e.g. mmap's -1) is not open.
    if fd > i32::MAX as u64 {
        return Ok(FdKind::Unknown);
    }
    let task = unsafe { bpf_get_current_task() };
    let files: u64 = unsafe { read_at(task, off.task_files)? };
    let fdt: u64 = unsafe { read_at(files, off.files_fdt)? };
    let max_fds: u32 = unsafe { read_at(fdt, off.fdt_max_fds)? };
    if fd >= max_fds as u64 {
        return Ok(FdKind::Unknown);
    }
    let fd_array: u64 = unsafe { read_at(fdt, off.fdt_fd)? };
    let file: u64 = unsafe { read_at(fd_array, (fd * 8) as u32)? };
    if file == 0 {
        return Ok(FdKind::Unknown);
    }
    let inode: u64 = unsafe { read_at(file, off.file_inode)? };
    let mode: u16 = unsafe { read_at(inode, off.inode_mode)? };
    Ok(match mode & S_IFMT {
        S_IFREG => FdKind::File,
        S_IFSOCK => FdKind::Socket,
        S_IFIFO => FdKind::Pipe,
        _ => FdKind::Other,
    })
}
