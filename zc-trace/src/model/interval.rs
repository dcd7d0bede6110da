//! What happened in one interval of a live run (`--every`, `--ndjson`,
//! `serve`): the difference of two cumulative snapshots of the totals.

use serde::Serialize;

use super::{
    Counters,
    ledger::totals_of_rows,
    report::{Bytes, ContextSwitches, Totals},
};

/// The all-process totals so far, as the report computes them.
pub fn cumulative(counters: &Counters) -> Totals {
    totals_of_rows(&counters.syscalls, &counters.events)
}

/// One interval; its JSON is one line of `--ndjson` (schema in README).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Interval {
    /// Since the start of tracing.
    pub t_start_ns: u64,
    pub t_end_ns: u64,
    pub syscalls: u64,
    pub errors: u64,
    /// Derived by the mode-switch rule, as in the report.
    pub mode_switches: u64,
    pub context_switches: ContextSwitches,
    /// User- and kernel-mode page faults (the exceptions).
    pub page_faults: u64,
    /// The ledger's columns, inline (copied_to_user ...).
    #[serde(flatten)]
    pub bytes: Bytes,
}

impl Interval {
    /// From `before` (at `t_start_ns`) to `now` (at `t_end_ns`). A counter
    /// that went backwards (the derived ones can) counts as no change.
    pub fn between(before: &Totals, now: &Totals, t_start_ns: u64, t_end_ns: u64) -> Self {
        let d = |now: u64, before: u64| now.saturating_sub(before);
        let faults = |t: &Totals| t.page_faults.user + t.page_faults.kernel;
        Interval {
            t_start_ns,
            t_end_ns,
            syscalls: d(now.syscalls, before.syscalls),
            errors: d(now.errors, before.errors),
            mode_switches: d(now.mode_switches, before.mode_switches),
            context_switches: ContextSwitches {
                voluntary: d(
                    now.context_switches.voluntary,
                    before.context_switches.voluntary,
                ),
                involuntary: d(
                    now.context_switches.involuntary,
                    before.context_switches.involuntary,
                ),
            },
            page_faults: d(faults(now), faults(before)),
            bytes: now.bytes.since(&before.bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interval_is_the_difference_and_never_negative() {
        let mut before = Totals::default();
        before.syscalls = 10;
        before.bytes.copied_to_user = 100;
        before.page_faults.user = 5;
        let mut now = before;
        now.syscalls = 25;
        now.bytes.copied_to_user = 164;
        now.bytes.zero_copy = 7;
        now.page_faults.get_user_pages = 0;
        now.mode_switches = 0;
        before.mode_switches = 3;
        let i = Interval::between(&before, &now, 1, 2);
        assert_eq!(i.syscalls, 15);
        assert_eq!(i.bytes.copied_to_user, 64);
        assert_eq!(i.bytes.zero_copy, 7);
        assert_eq!(i.mode_switches, 0, "backwards is no change");
        assert_eq!((i.t_start_ns, i.t_end_ns), (1, 2));
    }
}
