//! Page faults of traced processes: user mode, kernel mode (the kernel
//! touching user memory, e.g. in copy_to_user) and file-backed.
//!
//! exceptions:page_fault_{user,kernel} (arch/x86/include/asm/trace/exceptions.h)
//!   TP_PROTO(unsigned long address, struct pt_regs *regs, unsigned long error_code)
//! filemap:mm_filemap_fault (include/trace/events/filemap.h)
//!   TP_PROTO(struct address_space *mapping, pgoff_t index)
//! All three fire in the context of the faulting task. A new fault also
//! settles the copy-on-write candidates of the thread's last one (cow.rs).

use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};

use super::{bump, cow::settle_candidates};
use crate::target::current_target;

#[btf_tracepoint(function = "page_fault_user")]
pub fn page_fault_user(_ctx: BtfTracePointContext) -> i32 {
    if let Some((tgid, tid)) = current_target() {
        bump(tgid, |c| &mut c.faults_user);
        settle_candidates(tid);
    }
    0
}

#[btf_tracepoint(function = "page_fault_kernel")]
pub fn page_fault_kernel(_ctx: BtfTracePointContext) -> i32 {
    if let Some((tgid, tid)) = current_target() {
        bump(tgid, |c| &mut c.faults_kernel);
        settle_candidates(tid);
    }
    0
}

#[btf_tracepoint(function = "mm_filemap_fault")]
pub fn mm_filemap_fault(_ctx: BtfTracePointContext) -> i32 {
    if let Some((tgid, _)) = current_target() {
        bump(tgid, |c| &mut c.faults_file);
    }
    0
}
