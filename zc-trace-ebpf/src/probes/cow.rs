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
    helpers::bpf_probe_read_kernel, macros::btf_tracepoint, programs::BtfTracePointContext,
};
use zc_trace_common::{CowSlot, drop};

use super::add;
use crate::{
    config::{COW_MASK, GFP_COW, GFP_COW_MASK, OFF_FOLIO_MAPPING},
    maps::{COW_CANDIDATES, count_drop},
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
    let Some(slot) = slot_of(tid) else {
        return 0;
    };
    let page: u64 = ctx.arg(0);
    if slot.tid != tid {
        // Another thread's slot: its candidates are settled now, which is
        // early only if that thread is in a fault at this very moment.
        if slot.pages != [0, 0] {
            settle_slot(slot);
            count_drop(drop::COW_EVICTED);
        }
        *slot = CowSlot {
            tid,
            tgid,
            pages: [page, 0],
        };
        return 0;
    }
    let pending = &mut slot.pages;
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

/// The current thread's slot (which may hold another thread's candidates).
#[inline(always)]
fn slot_of(tid: u32) -> Option<&'static mut CowSlot> {
    let slot = COW_CANDIDATES.get_ptr_mut(tid & COW_MASK.load())?;
    // SAFETY: a thread writes its slot only from its own context, one
    // program at a time; a thread sharing the slot takes it over whole.
    Some(unsafe { &mut *slot })
}

/// Settles the current thread's candidates: their faults are over (a new
/// one begins, or the thread exits).
#[inline(always)]
pub fn settle_candidates(tid: u32) {
    if let Some(slot) = slot_of(tid) {
        if slot.tid == tid {
            settle_slot(slot);
        }
    }
}

/// Settles an exiting thread's candidates and frees its slot.
#[inline(always)]
pub fn settle_exiting(tid: u32) {
    if let Some(slot) = slot_of(tid) {
        if slot.tid == tid {
            settle_slot(slot);
            slot.tid = 0;
        }
    }
}

/// Settles a slot's candidates, for the process that allocated them.
#[inline(always)]
fn settle_slot(slot: &mut CowSlot) {
    settle(slot.tgid, slot.pages[0]);
    settle(slot.tgid, slot.pages[1]);
    slot.pages = [0, 0];
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
