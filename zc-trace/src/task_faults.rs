//! The kernel's own fault counters of threads the exit probe cannot read:
//! those alive when tracing starts (their counts from before the attach are
//! not ours) and when it stops (they never passed sched_process_exit).
//!
//! The probe adds each thread's `min_flt + maj_flt` as it exits; here,
//! per traced process, the live threads' counters at the end are added and
//! those at the start taken off, so `page_faults` covers exactly the traced
//! span. /proc/PID/task/TID/stat fields 10 (minflt) and 12 (majflt), see
//! proc_pid_stat(5).

use std::collections::BTreeMap;

use crate::model::Counters;

/// minflt + majflt of one `stat` line; the fields after the command name,
/// which may itself hold spaces and parentheses.
fn stat_faults(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state): minflt is field 10, majflt field 12.
    Some(fields.get(7)?.parse::<u64>().ok()? + fields.get(9)?.parse::<u64>().ok()?)
}

/// Sum of the live threads' fault counters of process `tgid` (0 if gone).
pub fn live_threads(tgid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{tgid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("stat")).ok())
        .filter_map(|s| stat_faults(&s))
        .sum()
}

/// Every live process's `live_threads` (for --cgroup and -a, whose
/// processes are not known in advance).
pub fn all_live() -> BTreeMap<u32, u64> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return BTreeMap::new();
    };
    procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .map(|pid| (pid, live_threads(pid)))
        .collect()
}

/// Completes each process's `faults_task` (and the all-process total):
/// plus its live threads now, minus what its threads had when tracing
/// began (`at_start`, by tgid).
pub fn settle(counters: &mut Counters, at_start: &BTreeMap<u32, u64>) {
    let mut total = counters.events.faults_task;
    for p in &mut counters.processes {
        let before = at_start.get(&p.pid).copied().unwrap_or(0);
        let had = p.events.faults_task;
        let now = (had + live_threads(p.pid)).saturating_sub(before);
        total = (total + now).saturating_sub(had);
        p.events.faults_task = now;
    }
    counters.events.faults_task = total;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_minflt_and_majflt_past_an_awkward_name() {
        let stat = "42 (a) b (c)) S 1 42 42 0 -1 4194560 1107 0 3 0 5 6 0 0 20 0 1 0";
        assert_eq!(stat_faults(stat), Some(1110));
        assert_eq!(stat_faults("42 (x) S 1"), None);
    }

    #[test]
    fn our_own_threads_have_taken_faults() {
        assert!(live_threads(std::process::id()) > 0);
    }
}
