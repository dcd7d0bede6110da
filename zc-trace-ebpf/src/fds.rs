//! The kind of file behind an fd, read from the current task's fd table.
//!
//! Reading `current->files->fdt->fd[fd]->f_inode->i_mode` at the time of the
//! call gives the exact answer for every fd, including those opened before
//! tracing began, inherited across fork or passed over a unix socket, with
//! no bookkeeping of open/dup/close to get wrong.

use aya_ebpf::helpers::{bpf_get_current_task_btf, bpf_probe_read_kernel};
use zc_trace_common::FdKind;

use crate::config::{
    OFF_FDT_FD, OFF_FDT_MAX_FDS, OFF_FILE_FLAGS, OFF_FILE_INODE, OFF_FILES_FDT, OFF_INODE_MODE,
    OFF_TASK_FILES,
};

// include/uapi/linux/stat.h
const S_IFMT: u16 = 0o170000;
const S_IFSOCK: u16 = 0o140000;
const S_IFREG: u16 = 0o100000;
const S_IFBLK: u16 = 0o060000;
const S_IFCHR: u16 = 0o020000;
const S_IFIFO: u16 = 0o010000;
// x86's value (include/uapi/asm-generic/fcntl.h); the syscall table is x86_64's too.
const O_DIRECT: u32 = 0o40000;

#[inline(always)]
pub unsafe fn read_at<T>(base: u64, offset: u32) -> Result<T, i64> {
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

// Inlined, like every function here: after a BPF-to-BPF call R1-R5 are
// unset, and LLVM may still copy one of them where it holds a value it
// considers undefined (an Option's payload on its None path); the verifier
// refuses that ("R3 !read_ok").
#[inline(always)]
unsafe fn try_fd_kind(fd: u64) -> Result<FdKind, i64> {
    let file = unsafe { fd_file(fd)? };
    Ok(file_kind(file))
}

/// The kind of an open `struct file *` (Unknown for 0 or an unreadable one).
#[inline(always)]
pub fn file_kind(file: u64) -> FdKind {
    if file == 0 || OFF_FILE_INODE.load() == 0 {
        return FdKind::Unknown;
    }
    // SAFETY: bpf_probe_read_kernel only.
    unsafe { try_file_kind(file) }.unwrap_or(FdKind::Unknown)
}

#[inline(always)]
unsafe fn try_file_kind(file: u64) -> Result<FdKind, i64> {
    let (inode, flags) = unsafe { inode_and_flags(file)? };
    let mode: u16 = unsafe { read_at(inode, OFF_INODE_MODE.load())? };
    // O_DIRECT means nothing on sockets, and on a pipe it asks for packet
    // mode (pipe2(2)): only files and block devices do direct I/O.
    let direct = flags & O_DIRECT != 0;
    Ok(match mode & S_IFMT {
        S_IFCHR => FdKind::Device,
        S_IFREG | S_IFBLK if direct => FdKind::Direct,
        S_IFREG => FdKind::File,
        S_IFSOCK => FdKind::Socket,
        S_IFIFO => FdKind::Pipe,
        _ => FdKind::Other,
    })
}

/// The current task's `struct file *` for `fd`, 0 if it is not open.
#[inline(always)]
pub unsafe fn fd_file(fd: u64) -> Result<u64, i64> {
    // fds are ints; a negative one (e.g. mmap's -1) is not open.
    if fd > i32::MAX as u64 {
        return Ok(0);
    }
    // task, files and fdtable are BTF-typed pointers: plain loads the
    // verifier checks against the kernel's BTF, far cheaper than a helper
    // call each. The offsets come from read-only globals, which the
    // verifier sees as constants.
    let task = unsafe { bpf_get_current_task_btf() } as *const u8;
    let files = unsafe { *(task.add(OFF_TASK_FILES.load() as usize) as *const *const u8) };
    if files.is_null() {
        return Ok(0);
    }
    let fdt = unsafe { *(files.add(OFF_FILES_FDT.load() as usize) as *const *const u8) };
    if fdt.is_null() {
        return Ok(0);
    }
    let max_fds = unsafe { *(fdt.add(OFF_FDT_MAX_FDS.load() as usize) as *const u32) };
    if fd >= max_fds as u64 {
        return Ok(0);
    }
    // `struct file **`: the verifier types it as a number, so the rest of
    // the walk goes through bpf_probe_read_kernel.
    let fd_array = unsafe { *(fdt.add(OFF_FDT_FD.load() as usize) as *const u64) };
    unsafe { read_at(fd_array, (fd * 8) as u32) }
}

/// `file->f_inode` and `file->f_flags`. Where f_flags follows f_inode
/// (x86_64 since 6.12 at least: +32 and +40), one 16-byte read gets both,
/// so telling O_DIRECT apart costs no extra helper call per syscall.
#[inline(always)]
unsafe fn inode_and_flags(file: u64) -> Result<(u64, u32), i64> {
    let inode_at = OFF_FILE_INODE.load();
    let flags_at = OFF_FILE_FLAGS.load();
    if flags_at == inode_at + 8 {
        let pair: [u64; 2] = unsafe { read_at(file, inode_at)? };
        // Little-endian: the u32 f_flags is the low half of the second word.
        return Ok((pair[0], pair[1] as u32));
    }
    Ok(unsafe { (read_at(file, inode_at)?, read_at(file, flags_at)?) })
}
