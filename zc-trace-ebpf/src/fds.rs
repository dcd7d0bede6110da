//! The kind of file behind an fd, read from the current task's fd table.
//!
//! Reading `current->files->fdt->fd[fd]->f_inode->i_mode` at the time of the
//! call gives the exact answer for every fd, including those opened before
//! tracing began, inherited across fork or passed over a unix socket, with
//! no bookkeeping of open/dup/close to get wrong.

use aya_ebpf::helpers::{bpf_get_current_task_btf, bpf_probe_read_kernel};
use zc_trace_common::FdKind;

use crate::config::{
    OFF_FDT_FD, OFF_FDT_MAX_FDS, OFF_FILE_INODE, OFF_FILES_FDT, OFF_INODE_MODE, OFF_TASK_FILES,
};

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
    if OFF_FILE_INODE.load() == 0 {
        return FdKind::Unknown;
    }
    // SAFETY: BTF-checked loads and bpf_probe_read_kernel only.
    match unsafe { try_fd_kind(fd) } {
        Ok(kind) => kind,
        Err(_) => FdKind::Unknown,
    }
}

unsafe fn try_fd_kind(fd: u64) -> Result<FdKind, i64> {
    // fds are ints; a negative one (e.g. mmap's -1) is not open.
    if fd > i32::MAX as u64 {
        return Ok(FdKind::Unknown);
    }
    // task, files and fdtable are BTF-typed pointers: plain loads the
    // verifier checks against the kernel's BTF, far cheaper than a helper
    // call each. The offsets come from read-only globals, which the
    // verifier sees as constants.
    let task = unsafe { bpf_get_current_task_btf() } as *const u8;
    let files = unsafe { *(task.add(OFF_TASK_FILES.load() as usize) as *const *const u8) };
    if files.is_null() {
        return Ok(FdKind::Unknown);
    }
    let fdt = unsafe { *(files.add(OFF_FILES_FDT.load() as usize) as *const *const u8) };
    if fdt.is_null() {
        return Ok(FdKind::Unknown);
    }
    let max_fds = unsafe { *(fdt.add(OFF_FDT_MAX_FDS.load() as usize) as *const u32) };
    if fd >= max_fds as u64 {
        return Ok(FdKind::Unknown);
    }
    // `struct file **`: the verifier types it as a number, so the rest of
    // the walk goes through bpf_probe_read_kernel.
    let fd_array = unsafe { *(fdt.add(OFF_FDT_FD.load() as usize) as *const u64) };
    let file: u64 = unsafe { read_at(fd_array, (fd * 8) as u32)? };
    if file == 0 {
        return Ok(FdKind::Unknown);
    }
    let inode: u64 = unsafe { read_at(file, OFF_FILE_INODE.load())? };
    let mode: u16 = unsafe { read_at(inode, OFF_INODE_MODE.load())? };
    Ok(match mode & S_IFMT {
        S_IFREG => FdKind::File,
        S_IFSOCK => FdKind::Socket,
        S_IFIFO => FdKind::Pipe,
        _ => FdKind::Other,
    })
}
