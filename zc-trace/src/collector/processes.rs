//! Per-process detail, bounded whatever the number of processes a run
//! sees: the busiest processes are kept one by one, the others are summed
//! by name. (The all-process totals never depend on this.)

use std::{cmp::Reverse, collections::BTreeMap, collections::BinaryHeap};

use zc_trace_common::{SyscallKey, SyscallStats};

use crate::model::{ProcIdentity, ProcessCounters};

/// Processes kept one by one: the busiest by syscall count.
pub const ONE_BY_ONE: usize = 256;
/// Names the other processes are summed under; past them, one row.
pub const NAMES: usize = 256;
const OTHERS: &str = "(other names)";

/// A process ranked by how busy it was, then by arrival. A newcomer
/// replaces the least busy only when strictly busier: among equals, the
/// first ones stay.
struct Ranked {
    calls: u64,
    arrival: u64,
    process: ProcessCounters,
}

impl Ranked {
    fn rank(&self) -> (u64, u64) {
        (self.calls, self.arrival)
    }
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.rank() == other.rank()
    }
}
impl Eq for Ranked {}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.rank().cmp(&other.rank())
    }
}

/// Cgroups summed one by one; past them, one row (id `OTHER_CGROUPS`).
pub const CGROUPS: usize = 1024;
pub const OTHER_CGROUPS: u64 = u64::MAX;

#[derive(Default)]
pub struct Processes {
    /// A min-heap: the least busy process kept one by one is on top.
    one_by_one: BinaryHeap<Reverse<Ranked>>,
    by_name: BTreeMap<String, ProcessCounters>,
    arrivals: u64,
    /// Every process summed by cgroup, when cgroups are reported: exact
    /// whatever happens to the per-process rows.
    by_cgroup: Option<BTreeMap<u64, ProcessCounters>>,
}

impl Processes {
    /// Also sums every process by its cgroup (`ProcIdentity::cgroup`).
    pub fn by_cgroup() -> Self {
        Self {
            by_cgroup: Some(BTreeMap::new()),
            ..Default::default()
        }
    }

    /// Takes in one process's final counters.
    pub fn add(&mut self, process: ProcessCounters) {
        self.sum_by_cgroup(&process);
        self.arrivals += 1;
        let ranked = Ranked {
            calls: process.syscalls.iter().map(|(_, s)| s.count).sum(),
            arrival: self.arrivals,
            process,
        };
        if self.one_by_one.len() < ONE_BY_ONE {
            self.one_by_one.push(Reverse(ranked));
            return;
        }
        let out = match self.one_by_one.peek() {
            Some(Reverse(least)) if least.calls < ranked.calls => {
                let out = self.one_by_one.pop();
                self.one_by_one.push(Reverse(ranked));
                out.map(|Reverse(r)| r.process)
            }
            _ => Some(ranked.process),
        };
        if let Some(p) = out {
            self.sum_by_name(p);
        }
    }

    fn sum_by_cgroup(&mut self, p: &ProcessCounters) {
        let Some(by_cgroup) = &mut self.by_cgroup else {
            return;
        };
        let mut id = p.identity.cgroup;
        if by_cgroup.len() >= CGROUPS && !by_cgroup.contains_key(&id) {
            id = OTHER_CGROUPS;
        }
        let row = by_cgroup.entry(id).or_insert_with(|| ProcessCounters {
            identity: ProcIdentity {
                cgroup: id,
                ..Default::default()
            },
            ..Default::default()
        });
        row.summed += p.summed.max(1);
        row.events += p.events;
        add_rows(&mut row.syscalls, &p.syscalls);
    }

    /// The per-cgroup sums (empty unless made with `by_cgroup`).
    pub fn cgroup_rows(&mut self) -> Vec<ProcessCounters> {
        self.by_cgroup
            .as_mut()
            .map(|m| std::mem::take(m).into_values().collect())
            .unwrap_or_default()
    }

    fn sum_by_name(&mut self, p: ProcessCounters) {
        let name = if self.by_name.len() < NAMES || self.by_name.contains_key(&p.identity.comm) {
            p.identity.comm
        } else {
            OTHERS.to_owned()
        };
        let row = self
            .by_name
            .entry(name)
            .or_insert_with_key(|name| ProcessCounters {
                identity: ProcIdentity {
                    comm: name.clone(),
                    ..Default::default()
                },
                ..Default::default()
            });
        row.summed += p.summed.max(1);
        row.events += p.events;
        add_rows(&mut row.syscalls, &p.syscalls);
    }

    /// The rows: processes kept one by one (by pid), then the sums by name.
    pub fn into_rows(self) -> Vec<ProcessCounters> {
        let mut rows: Vec<ProcessCounters> = self
            .one_by_one
            .into_iter()
            .map(|Reverse(r)| r.process)
            .collect();
        rows.sort_by_key(|p| p.pid);
        rows.extend(self.by_name.into_values());
        rows
    }
}

/// Adds syscall rows into `into`, matching them by syscall and fd kinds
/// (`into`'s rows belong to no one process: tgid 0). `into` is kept sorted
/// by key, as it must be to begin with (every list this builds is): with
/// thousands of exits a second, each filing ~20 rows into its name's sum,
/// a binary search instead of a scan of the sum's rows.
pub fn add_rows(into: &mut Vec<(SyscallKey, SyscallStats)>, rows: &[(SyscallKey, SyscallStats)]) {
    for (key, stats) in rows {
        let key = SyscallKey { tgid: 0, ..*key };
        match into.binary_search_by_key(&key, |(k, _)| *k) {
            Ok(i) => into[i].1 += *stats,
            Err(i) => into.insert(i, (key, *stats)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zc_trace_common::FdKind;

    fn process(pid: u32, comm: &str, calls: u64) -> ProcessCounters {
        ProcessCounters {
            pid,
            identity: ProcIdentity {
                ppid: 1,
                comm: comm.into(),
                ..Default::default()
            },
            syscalls: vec![(
                SyscallKey::new(pid, 0, FdKind::File, FdKind::None),
                SyscallStats {
                    count: calls,
                    ..Default::default()
                },
            )],
            ..Default::default()
        }
    }

    #[test]
    fn keeps_the_busiest_one_by_one_and_sums_the_rest_by_name() {
        let mut p = Processes::default();
        for pid in 0..10 * ONE_BY_ONE as u32 {
            p.add(process(
                pid + 1,
                if pid % 2 == 0 { "even" } else { "odd" },
                1,
            ));
        }
        // Busier than all of the above: each pushes one out.
        for pid in 0..ONE_BY_ONE as u32 {
            p.add(process(100_000 + pid, "busy", 5));
        }
        let rows = p.into_rows();
        let (single, summed): (Vec<_>, Vec<_>) = rows.iter().partition(|r| r.summed == 0);
        assert_eq!(single.len(), ONE_BY_ONE);
        assert!(single.iter().all(|r| r.identity.comm == "busy"));
        assert_eq!(summed.len(), 2);
        assert_eq!(
            summed.iter().map(|r| r.summed).sum::<u64>(),
            10 * ONE_BY_ONE as u64
        );
        // Nothing is lost: every call is in one row or another.
        let calls: u64 = rows
            .iter()
            .flat_map(|r| &r.syscalls)
            .map(|(_, s)| s.count)
            .sum();
        assert_eq!(calls, 10 * ONE_BY_ONE as u64 + 5 * ONE_BY_ONE as u64);
    }

    #[test]
    fn names_past_the_limit_share_one_row() {
        let mut p = Processes::default();
        for pid in 0..(ONE_BY_ONE + NAMES + 10) as u32 {
            p.add(process(pid + 1, &format!("n{pid}"), 1));
        }
        let rows = p.into_rows();
        assert_eq!(rows.len(), ONE_BY_ONE + NAMES + 1);
        let others = rows.iter().find(|r| r.identity.comm == OTHERS).unwrap();
        assert_eq!(others.summed, 10);
    }

    #[test]
    fn added_rows_are_summed_by_key_and_kept_in_key_order() {
        let row = |tgid, nr, kind, count| {
            (
                SyscallKey::new(tgid, nr, kind, FdKind::None),
                SyscallStats {
                    count,
                    ..Default::default()
                },
            )
        };
        let mut sum = Vec::new();
        add_rows(
            &mut sum,
            &[row(7, 1, FdKind::File, 1), row(7, 0, FdKind::Pipe, 2)],
        );
        add_rows(
            &mut sum,
            &[row(9, 0, FdKind::Pipe, 3), row(9, 0, FdKind::File, 4)],
        );
        add_rows(&mut sum, &[row(8, 1, FdKind::File, 5)]);
        let want = vec![
            row(0, 0, FdKind::File, 4),
            row(0, 0, FdKind::Pipe, 5),
            row(0, 1, FdKind::File, 6),
        ];
        let mut sorted = want.clone();
        sorted.sort_by_key(|(k, _)| *k);
        assert_eq!(sorted, want, "the expected rows are in key order");
        assert_eq!(sum, want);
    }
}
