//! The kernel's own per-thread accounting (fault counters, CPU time) of
//! threads the exit probe cannot read: those alive when tracing starts
//! (what they had before the attach is not ours) and when it stops (they
//! never passed sched_process_exit).
//!
//! The probe adds each thread's figures as it exits; as the collector
//! folds each process (before it is filed one by one, by name or by
//! cgroup), the live threads' figures of a process still alive are added
//! and those at the start taken off (`over_the_run`), so the figures cover
//! exactly the traced span.
//! /proc/PID/task/TID/stat fields 10 (minflt), 12 (majflt), 14 (utime) and
//! 15 (stime, both in clock ticks), see proc_pid_stat(5); schedstat's first
//! field is the thread's run time in ns (se.sum_exec_runtime).

use std::collections::BTreeMap;

use zc_trace_common::ProcCounters;

/// The accounting figures of one or more threads (the fields of
/// `ProcCounters` the exit probe fills from the task).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, derive_more::AddAssign)]
pub struct TaskFigures {
    pub faults: u64,
    pub user_ns: u64,
    pub system_ns: u64,
    pub runtime_ns: u64,
}

impl TaskFigures {
    pub fn of(c: &ProcCounters) -> Self {
        TaskFigures {
            faults: c.faults_task,
            user_ns: c.cpu_user_ns,
            system_ns: c.cpu_system_ns,
            runtime_ns: c.cpu_runtime_ns,
        }
    }

    pub fn store(self, c: &mut ProcCounters) {
        c.faults_task = self.faults;
        c.cpu_user_ns = self.user_ns;
        c.cpu_system_ns = self.system_ns;
        c.cpu_runtime_ns = self.runtime_ns;
    }

    /// `self - other`, field by field, never below zero.
    pub fn minus(self, other: Self) -> Self {
        TaskFigures {
            faults: self.faults.saturating_sub(other.faults),
            user_ns: self.user_ns.saturating_sub(other.user_ns),
            system_ns: self.system_ns.saturating_sub(other.system_ns),
            runtime_ns: self.runtime_ns.saturating_sub(other.runtime_ns),
        }
    }
}

/// Nanoseconds per clock tick of /proc's utime and stime.
fn tick_ns() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    1_000_000_000 / u64::try_from(hz).unwrap_or(100).max(1)
}

/// Faults and CPU ticks of one `stat` line; the fields after the command
/// name, which may itself hold spaces and parentheses.
fn stat_figures(stat: &str, tick_ns: u64) -> Option<TaskFigures> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state): field N is fields[N - 3].
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(TaskFigures {
        faults: field(10)? + field(12)?,
        user_ns: field(14)? * tick_ns,
        system_ns: field(15)? * tick_ns,
        runtime_ns: 0,
    })
}

/// Run time (ns) of one `schedstat` line.
fn schedstat_runtime(schedstat: &str) -> Option<u64> {
    schedstat.split_whitespace().next()?.parse().ok()
}

/// Sum of the figures of the live threads of process `tgid` (zero if gone).
pub fn live_threads(tgid: u32) -> TaskFigures {
    let mut sum = TaskFigures::default();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{tgid}/task")) else {
        return sum;
    };
    let tick = tick_ns();
    for task in tasks.flatten() {
        let read = |name: &str| std::fs::read_to_string(task.path().join(name)).ok();
        let Some(mut t) = read("stat").and_then(|s| stat_figures(&s, tick)) else {
            continue;
        };
        t.runtime_ns = read("schedstat")
            .and_then(|s| schedstat_runtime(&s))
            .unwrap_or(t.user_ns + t.system_ns);
        sum += t;
    }
    sum
}

/// Every live process's `live_threads` (for --cgroup and -a, whose
/// processes are not known in advance).
pub fn all_live() -> BTreeMap<u32, TaskFigures> {
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return BTreeMap::new();
    };
    procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .map(|pid| (pid, live_threads(pid)))
        .collect()
}

/// A process's figures over the traced span: what the probe added as its
/// threads exited (`counted`), plus its live threads' figures now, minus
/// what its threads had when tracing began.
pub fn over_the_run(counted: TaskFigures, live: TaskFigures, at_start: TaskFigures) -> TaskFigures {
    let mut now = counted;
    now += live;
    now.minus(at_start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_faults_and_ticks_past_an_awkward_name() {
        let stat = "42 (a) b (c)) S 1 42 42 0 -1 4194560 1107 0 3 0 5 6 0 0 20 0 1 0";
        let t = stat_figures(stat, 10).unwrap();
        assert_eq!(t.faults, 1110);
        assert_eq!((t.user_ns, t.system_ns), (50, 60));
        assert_eq!(stat_figures("42 (x) S 1", 10), None);
        assert_eq!(schedstat_runtime("123456 789 10\n"), Some(123456));
    }

    #[test]
    fn our_own_threads_have_taken_faults_and_run() {
        let t = live_threads(std::process::id());
        assert!(t.faults > 0 && t.runtime_ns > 0, "{t:?}");
    }

    #[test]
    fn the_run_adds_the_live_and_takes_off_the_start() {
        let f = |runtime_ns| TaskFigures {
            runtime_ns,
            ..Default::default()
        };
        assert_eq!(over_the_run(f(100), f(20), f(30)), f(90));
        // A start above what was counted (a pid reused) never goes below 0.
        assert_eq!(over_the_run(f(10), f(0), f(30)), f(0));
    }
}
