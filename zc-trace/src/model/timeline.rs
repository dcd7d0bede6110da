//! The sampled time series: cumulative counters every interval.

use zc_trace_common::syscalls::shape;

use super::{
    Counters,
    ledger::add_bytes,
    ledger::sum_events,
    report::{Bytes, TimelineSample},
};

/// The cumulative totals of `counters`, stamped `t_ns` after the start.
pub fn sample(counters: &Counters, t_ns: u64) -> TimelineSample {
    let mut bytes = Bytes::default();
    let mut syscalls = 0;
    for (key, stats) in &counters.syscalls {
        syscalls += stats.count;
        add_bytes(&mut bytes, shape(key.nr).class, stats.bytes);
    }
    let ev = sum_events(counters.procs.values());
    TimelineSample {
        t_ns,
        syscalls,
        copied_to_user: bytes.copied_to_user,
        copied_from_user: bytes.copied_from_user,
        zero_copy: bytes.zero_copy,
        mapped: bytes.mapped,
        page_faults: ev.faults_user + ev.faults_kernel,
        context_switches: ev.ctx_voluntary + ev.ctx_involuntary,
    }
}
