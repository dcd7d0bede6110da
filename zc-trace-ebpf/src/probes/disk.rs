//! Reads from storage into the page cache on a traced process's behalf:
//! the textbook's first DMA copy (disk -> page cache), `disk_read`.
//!
//! filemap:mm_filemap_add_to_page_cache (include/trace/events/filemap.h)
//!   TP_PROTO(struct folio *folio)
//! Fires in __filemap_add_folio() in the context of whoever inserts the
//! folio; for reads that is the reader (sync and async readahead, mmap fault
//! readahead all run in its context), before the read is issued. Buffered
//! writes into an uncached range insert folios too, without reading the
//! disk: insertions into the file a call writes (write family, sendfile,
//! splice, copy_file_range) are left out, and only those: a write from an
//! mmap of a cold file, or a copy from a cold file, reads that file.

use aya_ebpf::{
    bindings::pt_regs,
    helpers::{bpf_get_current_task_btf, bpf_probe_read_kernel, bpf_task_pt_regs},
    macros::btf_tracepoint,
    programs::BtfTracePointContext,
};
use zc_trace_common::syscalls::{Class, shape};

use super::{add, syscalls::arg};
use crate::{
    config::{OFF_FILE_MAPPING, OFF_FOLIO_FLAGS, OFF_FOLIO_MAPPING, OFF_FOLIO_NR_PAGES, PG_HEAD},
    fds::{fd_file, read_at},
    target::current_target,
};

/// x86_64's page size (the syscall table is x86_64's too).
const PAGE_SIZE: u64 = 4096;
/// What a syscall's saved rax holds until it returns (arch/x86/entry/
/// entry_64.S: `PUSH_AND_CLEAR_REGS rax=$-ENOSYS`); an exception frame
/// holds the user's rax instead.
const ENOSYS: i64 = 38;

#[btf_tracepoint(function = "mm_filemap_add_to_page_cache")]
pub fn mm_filemap_add_to_page_cache(ctx: BtfTracePointContext) -> i32 {
    let Some((tgid, _)) = current_target() else {
        return 0;
    };
    let folio: u64 = ctx.arg(0);
    if OFF_FOLIO_NR_PAGES.load() == 0 || written_by_current_call(folio) {
        return 0;
    }
    add(tgid, |c| &mut c.disk_read, folio_pages(folio) * PAGE_SIZE);
    0
}

/// folio_nr_pages(): 1 unless the folio is large (PG_head set), then
/// `_nr_pages` (64-bit kernels; include/linux/mm.h).
#[inline(always)]
fn folio_pages(folio: u64) -> u64 {
    let at = |off: u32| folio + off as u64;
    // SAFETY: bpf_probe_read_kernel tolerates any address.
    let flags: u64 =
        unsafe { bpf_probe_read_kernel(at(OFF_FOLIO_FLAGS.load()) as *const u64) }.unwrap_or(0);
    if flags & (1 << (PG_HEAD.load() & 63)) == 0 {
        return 1;
    }
    // SAFETY: as above.
    let n: u32 =
        unsafe { bpf_probe_read_kernel(at(OFF_FOLIO_NR_PAGES.load()) as *const u32) }.unwrap_or(1);
    n.max(1) as u64
}

/// Whether `folio` belongs to the file the current thread is writing with
/// a syscall: its user entry frame is a syscall's (rax still -ENOSYS) that
/// writes to an fd, and the folio's mapping is that fd's.
#[inline(always)]
fn written_by_current_call(folio: u64) -> bool {
    // SAFETY: helpers on the current task; a BTF pointer to its saved user
    // registers, checked by the verifier.
    let regs = unsafe { bpf_task_pt_regs(bpf_get_current_task_btf()) } as *const pt_regs;
    if regs.is_null() {
        return false;
    }
    // SAFETY: as above.
    let (ax, id) = unsafe { ((*regs).rax as i64, (*regs).orig_rax as u32) };
    if ax != -ENOSYS {
        return false;
    }
    // The calls that put data into an fd: the write family and the
    // two-fd zero-copy calls (sendfile, splice, copy_file_range ...).
    let s = shape(id);
    let fd = match (s.class, s.dst_fd) {
        (Class::CopyFromUser | Class::ZeroCopy, Some(i)) => arg(regs, i),
        _ => return false,
    };
    // SAFETY: bpf_probe_read_kernel only.
    unsafe {
        let file = fd_file(fd);
        let dst: Result<u64, i64> = read_at(file, OFF_FILE_MAPPING.load());
        let own: Result<u64, i64> = read_at(folio, OFF_FOLIO_MAPPING.load());
        matches!((dst, own), (Ok(d), Ok(o)) if d != 0 && d == o)
    }
}
