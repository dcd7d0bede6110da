//! The kind of file behind an fd, read from the current task's fd table.
//!
//! Reading `current->files->fdt->fd[fd]->f_inode->i_mode` at the time of the
//! call gives the exact answer for every fd, including those opened before
//! tracing began, inherited across fork or passed over a unix socket, with
//! no bookkeeping of open/dup/close to get wrong.

use aya_ebpf::helpers::{bpf_get_current_task_btf, bpf_probe_read_kernel};
use zc_trace_common::{FdKind, kfunc};

use crate::config::{
    BTF_FILE, BTF_KIOCB, OFF_FDT_FD, OFF_FDT_MAX_FDS, OFF_FILE_FLAGS, OFF_FILE_INODE,
    OFF_FILES_FDT, OFF_INODE_MODE, OFF_TASK_FILES,
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
    // SAFETY: BTF-checked and fault-tolerant loads only.
    file_kind(unsafe { fd_file(fd) })
}

/// The kind of an open `struct file *` (Unknown for 0).
#[inline(always)]
pub fn file_kind(file: u64) -> FdKind {
    if file == 0 || OFF_FILE_INODE.load() == 0 || BTF_FILE.load() == 0 {
        return FdKind::Unknown;
    }
    // SAFETY: loads through a read-only untrusted pointer, which the JIT
    // makes fault-tolerant (a bad address reads 0).
    unsafe {
        let file = as_kernel(file, BTF_FILE.load());
        let inode = *(file.add(OFF_FILE_INODE.load() as usize) as *const *const u8);
        if inode.is_null() {
            return FdKind::Unknown;
        }
        let flags = *(file.add(OFF_FILE_FLAGS.load() as usize) as *const u32);
        let mode = *(inode.add(OFF_INODE_MODE.load() as usize) as *const u16);
        kind_of(mode, flags)
    }
}

/// The kind of a file of mode `mode` opened with `flags`.
#[inline(always)]
fn kind_of(mode: u16, flags: u32) -> FdKind {
    // O_DIRECT means nothing on sockets, and on a pipe it asks for packet
    // mode (pipe2(2)): only files and block devices do direct I/O.
    let direct = flags & O_DIRECT != 0;
    match mode & S_IFMT {
        S_IFCHR => FdKind::Device,
        S_IFREG | S_IFBLK if direct => FdKind::Direct,
        S_IFREG => FdKind::File,
        S_IFSOCK => FdKind::Socket,
        S_IFIFO => FdKind::Pipe,
        _ => FdKind::Other,
    }
}

/// The current task's `struct file *` for `fd`, 0 if it is not open.
#[inline(always)]
pub unsafe fn fd_file(fd: u64) -> u64 {
    // fds are ints; a negative one (e.g. mmap's -1) is not open. Without
    // the kfunc's ids (no offsets from BTF) no fd is read.
    if fd > i32::MAX as u64 || BTF_KIOCB.load() == 0 {
        return 0;
    }
    // task, files and fdtable are BTF-typed pointers: plain loads the
    // verifier checks against the kernel's BTF, far cheaper than a helper
    // call each. The offsets come from read-only globals, which the
    // verifier sees as constants.
    let task = unsafe { bpf_get_current_task_btf() } as *const u8;
    let files = unsafe { *(task.add(OFF_TASK_FILES.load() as usize) as *const *const u8) };
    if files.is_null() {
        return 0;
    }
    let fdt = unsafe { *(files.add(OFF_FILES_FDT.load() as usize) as *const *const u8) };
    if fdt.is_null() {
        return 0;
    }
    let max_fds = unsafe { *(fdt.add(OFF_FDT_MAX_FDS.load() as usize) as *const u32) };
    if fd >= max_fds as u64 {
        return 0;
    }
    // `struct file **`: the verifier types it as a number. Its entry is
    // read as the first field of a `struct kiocb` (`struct file
    // *ki_filp`, at offset 0), which types the result as a file.
    let fd_array = unsafe { *(fdt.add(OFF_FDT_FD.load() as usize) as *const u64) };
    let entry = unsafe { as_kernel(fd_array + fd * 8, BTF_KIOCB.load()) };
    unsafe { *(entry as *const u64) }
}

/// `addr` as a read-only pointer to the kernel type `btf_id`:
/// bpf_rdonly_cast, which the verifier replaces by a plain move. Loads
/// through it are plain loads that the JIT makes fault-tolerant, where
/// each bpf_probe_read_kernel is a helper call (with SRSO's safe RET, a
/// dear return).
#[inline(always)]
pub unsafe fn as_kernel(addr: u64, btf_id: u32) -> *const u8 {
    // SAFETY: the loader turns this call of a placeholder helper number
    // into the kfunc call (a program with a placeholder left in does not
    // load).
    unsafe {
        let cast: unsafe extern "C" fn(u64, u32) -> *const u8 =
            core::mem::transmute(kfunc::RDONLY_CAST as usize);
        cast(addr, btf_id)
    }
}
