//! Copy-on-write copies, `cow_copied`: one page per copy.
//!
//! kmem:mm_page_alloc (include/trace/events/kmem.h)
//!   TP_PROTO(struct page *page, unsigned int order, gfp_t gfp_flags, int migratetype)
//!
//! A COW copy happens in mm/memory.c wp_page_copy() (a write to a shared
//! private page: after fork, or a page-cache page mapped into a MAP_PRIVATE
//! mapping) and do_cow_fault() (a write to a MAP_PRIVATE file page not yet
//! mapped). Both take the new page from folio_prealloc(need_zero = false):
//! one order-0 page of exactly GFP_HIGHUSER_MOVABLE | __GFP_COMP, copied
//! into, then mapped as anonymous memory. There is no tracepoint at the
//! copy or at the end of the fault, so the rule is:
//!
//! 1. An order-0 allocation with exactly that gfp in a traced thread is a
//!    candidate. The zero page and first touches allocate zeroed pages
//!    (`__GFP_ZERO`, another gfp) and reuse or MAP_SHARED dirty tracking
//!    allocate nothing, so write faults that copy nothing never get here.
//! 2. A candidate is a copy if, once its fault is over, it is mapped as
//!    anonymous memory (`folio->mapping` has PAGE_MAPPING_ANON). The same
//!    gfp also creates page-cache pages (no readahead, tmpfs): those have
//!    a file mapping; a fault that lost a race or was retried frees its
//!    page: no mapping. So the check is made later, when the thread's next
//!    fault begins, when it has two newer candidates (do_cow_fault can
//!    allocate a page-cache page between its copy's allocation and its
//!    mapping; get_user_pages runs faults back to back, without an
//!    exception), or when it exits.

use aya_ebpf::{
    bindings::BPF_ANY, helpers::bpf_probe_read_kernel, macros::btf_tracepoint,
    programs::BtfTracePointContext,
};

use super::add;
use crate::{
    config::{GFP_COW, GFP_COW_MASK, OFF_FOLIO_MAPPING},
    maps::COW_CANDIDATES,
    target::current_target,
};

/// x86_64's page size (the syscall table is x86_64's too).
const PAGE_SIZE: u64 = 4096;
/// include/linux/page-flags.h: the low bit of `mapping` on anonymous pages.
const PAGE_MAPPING_ANON: u64 = 1;

#[btf_tracepoint(function = "mm_page_alloc")]
pub fn mm_page_alloc(ctx: BtfTracePointContext) -> i32 {
    // Every allocation on the machine comes here: the constant test first.
    let order: u32 = ctx.arg(1);
    let gfp: u32 = ctx.arg(2);
    if order != 0 || gfp & GFP_COW_MASK.load() != GFP_COW.load() || GFP_COW.load() == 0 {
        return 0;
    }
    let Some((tgid, tid)) = current_target() else {
        return 0;
    };
    let page: u64 = ctx.arg(0);
    let Some(pending) = COW_CANDIDATES.get_ptr_mut(&tid) else {
        let _ = COW_CANDIDATES.insert(&tid, &[page, 0], BPF_ANY as u64);
        return 0;
    };
    // SAFETY: this thread's entry: only this thread writes it, and it runs
    // one program at a time.
    let pending = unsafe { &mut *pending };
    // A page freed and handed out again (a retried fault) is one candidate.
    if pending[0] == page || pending[1] == page {
        return 0;
    }
    if pending[0] == 0 {
        pending[0] = page;
    } else if pending[1] == 0 {
        pending[1] = page;
    } else {
        settle(tgid, pending[0]);
        *pending = [pending[1], page];
    }
    0
}

/// Settles the current thread's candidates: their faults are over (a new
/// one begins, or the thread exits).
#[inline(always)]
pub fn settle_candidates(tgid: u32, tid: u32) {
    let Some(pending) = COW_CANDIDATES.get_ptr_mut(&tid) else {
        return;
    };
    // SAFETY: see mm_page_alloc.
    let pending = unsafe { &mut *pending };
    settle(tgid, pending[0]);
    settle(tgid, pending[1]);
    *pending = [0, 0];
}

/// Settles an exiting thread's candidates and forgets it.
#[inline(always)]
pub fn settle_exiting(tgid: u32, tid: u32) {
    settle_candidates(tgid, tid);
    let _ = COW_CANDIDATES.remove(&tid);
}

/// Books one copied page if `page` ended up as anonymous memory.
#[inline(always)]
fn settle(tgid: u32, page: u64) {
    if page == 0 {
        return;
    }
    let at = page + OFF_FOLIO_MAPPING.load() as u64;
    // SAFETY: bpf_probe_read_kernel tolerates any address.
    let mapping: u64 = unsafe { bpf_probe_read_kernel(at as *const u64) }.unwrap_or(0);
    if mapping & PAGE_MAPPING_ANON != 0 {
        add(tgid, |c| &mut c.cow_copied, PAGE_SIZE);
    }
}
