//! Who is traced: the filter every probe runs first.

use aya_ebpf::helpers::bpf_get_current_pid_tgid;

use crate::maps::TARGETS;

/// The current (tgid, tid) when the current process is traced.
#[inline(always)]
pub fn current_target() -> Option<(u32, u32)> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    // SAFETY: the value is only tested for presence.
    if unsafe { TARGETS.get(&tgid) }.is_some() {
        Some((tgid, pid_tgid as u32))
    } else {
        None
    }
}

#[inline(always)]
pub fn is_target(tgid: u32) -> bool {
    // SAFETY: as above.
    unsafe { TARGETS.get(&tgid) }.is_some()
}
