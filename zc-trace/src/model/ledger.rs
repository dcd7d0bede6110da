//! The copy ledger: raw per-(process, syscall, fd kind) rows grouped into
//! syscall tables and totals, per process and overall.

use std::collections::BTreeMap;

use zc_trace_common::{
    FdKind, ProcCounters, SyscallKey, SyscallStats, drop,
    syscalls::{class_of, never_returns},
    uring,
};

use super::{
    Counters,
    report::{
        Bytes, CgroupEntry, ContextSwitches, Counts, CpuTime, PageFaults, Process, Report,
        SCHEMA_VERSION, SyscallEntry, Target, Timeline, Timing, Tool, Totals,
    },
    syscall_name,
};

/// How a row's fd kinds are named in the report.
pub fn kind_key(kind: u8, src_kind: u8) -> String {
    let dst = FdKind::from_u8(kind).name();
    match FdKind::from_u8(src_kind) {
        FdKind::None => dst.to_owned(),
        src => format!("{}->{dst}", src.name()),
    }
}

/// Groups rows by syscall name, with the per-fd-kind split (io_uring
/// requests left out: see `uring_table`).
pub fn syscall_table<'a>(
    rows: impl IntoIterator<Item = &'a (SyscallKey, SyscallStats)>,
) -> BTreeMap<String, SyscallEntry> {
    table(rows, |nr| match uring::opcode(nr) {
        Some(_) => None,
        None => Some((syscall_name(nr), nr)),
    })
}

/// Groups the io_uring requests' rows by opcode name (the kernel's,
/// without IORING_OP_), with the per-fd-kind split. `nr` is the opcode.
pub fn uring_table<'a>(
    rows: impl IntoIterator<Item = &'a (SyscallKey, SyscallStats)>,
) -> BTreeMap<String, SyscallEntry> {
    table(rows, |nr| {
        let op = uring::opcode(nr)?;
        let name = uring::name(op).map_or_else(|| format!("OP_{op}"), str::to_owned);
        Some((name, op as u32))
    })
}

/// Groups the rows `named` gives a (name, number) by that name.
fn table<'a>(
    rows: impl IntoIterator<Item = &'a (SyscallKey, SyscallStats)>,
    named: impl Fn(u32) -> Option<(String, u32)>,
) -> BTreeMap<String, SyscallEntry> {
    let mut table: BTreeMap<String, SyscallEntry> = BTreeMap::new();
    for (key, stats) in rows {
        let Some((name, nr)) = named(key.nr) else {
            continue;
        };
        let c = Counts::from(*stats);
        let entry = table.entry(name).or_insert_with(|| SyscallEntry {
            nr,
            class: class_of(key.nr),
            ..Default::default()
        });
        entry.counts += c;
        *entry
            .by_fd_kind
            .entry(kind_key(key.dst_kind, key.src_kind))
            .or_default() += c;
    }
    table
}

/// Totals of raw rows (syscalls and io_uring requests) and the event
/// counters of the same processes.
pub fn totals_of_rows<'a>(
    rows: impl IntoIterator<Item = &'a (SyscallKey, SyscallStats)> + Clone,
    events: &ProcCounters,
) -> Totals {
    totals(&syscall_table(rows.clone()), &uring_table(rows), events)
}

/// Totals of a syscall table and an io_uring table plus the event counters
/// of the same processes: requests add bytes, not syscalls.
pub fn totals(
    table: &BTreeMap<String, SyscallEntry>,
    requests: &BTreeMap<String, SyscallEntry>,
    events: &ProcCounters,
) -> Totals {
    let mut t = Totals {
        context_switches: ContextSwitches {
            voluntary: events.ctx_voluntary,
            involuntary: events.ctx_involuntary,
        },
        page_faults: PageFaults {
            user: events.faults_user,
            kernel: events.faults_kernel,
            file: events.faults_file,
            get_user_pages: in_kernel_faults(events),
        },
        bytes: Bytes::from_events(events),
        cpu: CpuTime::adjusted(
            events.cpu_user_ns,
            events.cpu_system_ns,
            events.cpu_runtime_ns,
        ),
        ..Default::default()
    };
    let mut one_way = 0;
    for entry in table.values() {
        let c = &entry.counts;
        t.syscalls += c.count;
        t.errors += c.errors;
        t.time_ns += c.time_ns;
        t.on_cpu_ns += c.on_cpu_ns;
        t.off_cpu_ns += c.off_cpu_ns;
        if never_returns(entry.nr) {
            one_way += c.count;
        }
    }
    for entry in table.values().chain(requests.values()) {
        for (kind, c) in &entry.by_fd_kind {
            let kind = FdKind::from_name(kind.rsplit("->").next().unwrap_or(kind))
                .unwrap_or(FdKind::Unknown);
            t.bytes.add(entry.class, kind, c.bytes);
        }
    }
    t.mode_switches = mode_switches(t.syscalls - one_way, one_way, t.page_faults.user);
    t
}

/// The mode-switch rule in words, for every note and legend that states it.
macro_rules! mode_switch_rule {
    () => {
        "2 per returning syscall, 1 per exit/exit_group, 2 per user-mode page fault"
    };
}
pub const MODE_SWITCH_RULE: &str = mode_switch_rule!();

/// The mode-switch rule, the one place it is computed: a returning syscall
/// enters and leaves the kernel (2), exit/exit_group only enter it (1), and
/// a user-mode page fault is an entry and a return too (2). Interrupts are
/// not counted.
/// Generic so the lab's textbook model (in fractions) uses it too.
pub fn mode_switches<T>(returning_calls: T, one_way_calls: T, user_faults: T) -> T
where
    T: Copy + From<u8> + std::ops::Add<Output = T> + std::ops::Mul<Output = T>,
{
    let two = T::from(2);
    two * returning_calls + one_way_calls + two * user_faults
}

/// Faults no exception tracepoint saw: the kernel's own per-thread
/// counters (summed as threads exit) minus the exceptions counted. These
/// are the faults get_user_pages takes on the task's behalf (vmsplice,
/// O_DIRECT, process_vm_*, futexes), plus any a thread took before tracing
/// began (a wrapped command's few between fork and exec). 0 while no traced
/// thread has exited; an exception the kernel did not account (a retried or
/// fixed-up fault) can make the difference smaller, never negative.
fn in_kernel_faults(e: &ProcCounters) -> u64 {
    e.faults_task
        .saturating_sub(e.faults_user + e.faults_kernel)
}

/// What the run was, beside its counters.
#[derive(Clone, Debug, Default)]
pub struct RunInfo {
    pub target: Target,
    pub started_at_unix_ms: u64,
    pub duration_ns: u64,
    pub timeline: Timeline,
    /// How each syscall was timed.
    pub timing: Timing,
}

/// Builds the full report from the final counters.
pub fn build_report(counters: &Counters, run: RunInfo) -> Report {
    let syscalls = syscall_table(&counters.syscalls);
    let io_uring = uring_table(&counters.syscalls);
    let overall = totals(&syscalls, &io_uring, &counters.events);

    let cgroup_path = |id: u64| counters.cgroup_paths.get(&id).cloned();
    let processes = counters
        .processes
        .iter()
        .map(|p| {
            let table = syscall_table(&p.syscalls);
            let requests = uring_table(&p.syscalls);
            Process {
                pid: p.pid,
                ppid: p.identity.ppid,
                comm: p.identity.comm.clone(),
                cgroup: cgroup_path(p.identity.cgroup),
                totals: totals(&table, &requests, &p.events),
                syscalls: table,
                io_uring: requests,
                summed: p.summed,
            }
        })
        .collect();
    let cgroups = counters
        .cgroups
        .iter()
        .map(|c| {
            let table = syscall_table(&c.syscalls);
            let requests = uring_table(&c.syscalls);
            CgroupEntry {
                id: c.identity.cgroup,
                path: cgroup_path(c.identity.cgroup)
                    .unwrap_or_else(|| format!("(cgroup {})", c.identity.cgroup)),
                processes: c.summed,
                totals: totals(&table, &requests, &c.events),
                syscalls: table,
                io_uring: requests,
            }
        })
        .collect();

    let dropped = drop::NAMES
        .iter()
        .zip(counters.dropped)
        .map(|(name, n)| ((*name).to_owned(), n))
        .collect();

    Report {
        schema_version: SCHEMA_VERSION,
        tool: Tool {
            name: "zc-trace".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        },
        target: run.target,
        started_at_unix_ms: run.started_at_unix_ms,
        duration_ns: run.duration_ns,
        syscalls,
        io_uring,
        totals: overall,
        processes,
        cgroups,
        timeline: run.timeline,
        dropped,
        notes: NOTES
            .iter()
            .map(|s| (*s).to_owned())
            .chain(unread_notifications_note(&overall, &counters.events))
            .collect(),
        cost: Default::default(),
        latency: BTreeMap::new(),
        timing: run.timing,
    }
}

/// The note for zero-copy sends whose completion notification the program
/// never read: whether the kernel copied those bytes after all is unknown
/// (zerocopy_copied does not count them), not zero.
fn unread_notifications_note(t: &Totals, events: &ProcCounters) -> Option<String> {
    let sent = t.bytes.zerocopy_sent;
    let unknown = sent.saturating_sub(events.zerocopy_acked);
    (unknown > 0).then(|| {
        format!(
            "zerocopy_copied is unknown for {unknown} of the {sent} bytes sent zero-copy: \
             the program never read their completion notifications (recvmsg MSG_ERRQUEUE), \
             or sent them with io_uring SEND_ZC without IORING_SEND_ZC_REPORT_USAGE, \
             so whether the kernel copied them after all is unknown, not zero"
        )
    })
}

/// How exact the measured figures are, for every footer: only what the
/// probes count one by one is called exact, and only when nothing was lost.
pub fn how_measured(r: &Report) -> &'static str {
    if r.dropped.values().any(|n| *n > 0) {
        "Counted in kernel, but records were lost: the figures are lower bounds."
    } else if r.timing.split() {
        "Calls, bytes and fd kinds counted in kernel, exactly; on-CPU time = wall - off-CPU, per call."
    } else {
        "Calls, bytes and fd kinds counted in kernel, exactly."
    }
}

/// Method notes of earlier versions, which saved reports still carry: not
/// notes about their run. The first called times and faults exact.
const SUPERSEDED_NOTES: &[&str] = &[
    "counts, errors, bytes, time, fd kinds, page faults and context switches are measured in kernel, exactly",
];

/// Whether `note` states the method (this version's or an earlier one's)
/// rather than something about its run.
pub fn is_method_note(note: &str) -> bool {
    NOTES.contains(&note) || SUPERSEDED_NOTES.contains(&note)
}

/// What is derived rather than measured; printed with every report.
pub const NOTES: &[&str] = &[
    "counts, errors, bytes and fd kinds of syscalls are counted in kernel, exactly; context switches and page faults are counted in kernel as they happen",
    "time_ns is wall time from entry to return; off_cpu_ns the part the thread was switched out (blocked, or waiting for a CPU); on_cpu_ns = time_ns - off_cpu_ns, the calls' cost. All three are 0 without per-call timing (--latency turns it on)",
    "cpu.user_ns and cpu.system_ns are the kernel's accounting of the traced threads as getrusage reports it (user/system sampled at each tick, scaled to the exact run time): read as each thread exits and from /proc for threads still alive; the last tick a thread ran before exiting may be missing",
    concat!(
        "mode_switches is derived: ",
        mode_switch_rule!(),
        " (interrupts not included)"
    ),
    "copied bytes are the byte counts of read/write-family calls, except on character devices (device: the driver decides) and O_DIRECT fds (direct_io: DMA to/from user pages); copies inside the kernel (page cache -> socket buffer) are not visible to a syscall tracer",
    "io_uring requests are counted when their completion (CQE) is posted, by opcode, for the process that submitted them (io-wq workers and task work included); their bytes go into the ledger by the rules of the matching syscalls; io_uring_enter itself is a syscall and moves no bytes",
    "disk_read is the page cache the target's threads filled outside the files they were writing (sparse-file holes count as read); page_faults.get_user_pages is the kernel's per-thread fault counters minus the faults the exception tracepoints saw",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ProcIdentity, ProcessCounters};
    use zc_trace_common::syscalls as nr;

    fn row(
        tgid: u32,
        nr: u32,
        kind: FdKind,
        src: FdKind,
        count: u64,
        bytes: u64,
    ) -> (SyscallKey, SyscallStats) {
        (
            SyscallKey {
                tgid,
                nr,
                dst_kind: kind as u8,
                src_kind: src as u8,
                _pad: [0; 6],
            },
            SyscallStats {
                count,
                errors: 0,
                bytes,
                time_ns: count * 10,
                off_cpu_ns: count * 4,
            },
        )
    }

    #[test]
    fn only_an_intact_run_is_called_exact() {
        let mut r = Report::default();
        assert!(how_measured(&r).contains("exactly"));
        r.dropped.insert("stats_map_full".into(), 0);
        assert!(how_measured(&r).contains("exactly"));
        r.dropped.insert("proc_map_full".into(), 3);
        assert!(!how_measured(&r).contains("exact"), "{}", how_measured(&r));
        // Neither times nor faults (which the exceptions miss some of) are
        // among the figures called exact.
        let exact = NOTES[0].split("exactly").next().unwrap();
        assert!(
            !exact.contains("time") && !exact.contains("fault"),
            "{exact}"
        );
    }

    #[test]
    fn kind_keys_name_both_ends_of_two_fd_calls() {
        assert_eq!(
            kind_key(FdKind::Socket as u8, FdKind::File as u8),
            "file->socket"
        );
        assert_eq!(kind_key(FdKind::Pipe as u8, FdKind::None as u8), "pipe");
        assert_eq!(kind_key(FdKind::None as u8, FdKind::None as u8), "none");
    }

    #[test]
    fn table_groups_kinds_under_one_syscall() {
        let rows = [
            row(1, nr::READ, FdKind::File, FdKind::None, 3, 300),
            row(1, nr::READ, FdKind::Pipe, FdKind::None, 2, 20),
            row(2, nr::READ, FdKind::File, FdKind::None, 1, 100),
        ];
        let t = syscall_table(&rows);
        let read = &t["read"];
        assert_eq!(read.class, "copy_to_user");
        assert_eq!(read.counts.count, 6);
        assert_eq!(read.counts.bytes, 420);
        assert_eq!(read.by_fd_kind["file"].count, 4);
        assert_eq!(read.by_fd_kind["pipe"].bytes, 20);
    }

    #[test]
    fn ledger_files_bytes_by_class_and_counts_mode_switches() {
        let rows = [
            row(1, nr::READ, FdKind::File, FdKind::None, 2, 200),
            row(1, nr::WRITE, FdKind::Socket, FdKind::None, 2, 200),
            row(1, nr::SENDFILE, FdKind::Socket, FdKind::File, 1, 4096),
            row(1, nr::MMAP, FdKind::File, FdKind::None, 1, 8192),
            row(1, nr::EXIT_GROUP, FdKind::None, FdKind::None, 1, 0),
            row(1, 39 /* getpid */, FdKind::None, FdKind::None, 5, 0),
        ];
        let events = ProcCounters {
            faults_user: 3,
            ..Default::default()
        };
        let t = totals(&syscall_table(&rows), &uring_table(&rows), &events);
        assert_eq!(t.syscalls, 12);
        assert_eq!(
            t.bytes,
            Bytes {
                copied_to_user: 200,
                copied_from_user: 200,
                zero_copy: 4096,
                mapped: 8192,
                ..Default::default()
            }
        );
        // 11 returning calls x 2 + exit_group x 1 + 3 user faults x 2
        assert_eq!(t.mode_switches, 22 + 1 + 6);
    }

    #[test]
    fn io_uring_requests_add_bytes_by_the_syscall_rules_but_no_syscalls() {
        use zc_trace_common::uring::{self, op};
        let rows = [
            row(1, nr::IO_URING_ENTER, FdKind::Other, FdKind::None, 3, 0),
            row(1, uring::nr(op::READ), FdKind::File, FdKind::None, 2, 200),
            row(
                1,
                uring::nr(op::READ),
                FdKind::Direct,
                FdKind::None,
                1,
                4096,
            ),
            row(1, uring::nr(op::WRITE), FdKind::Device, FdKind::None, 1, 10),
            row(1, uring::nr(op::SEND), FdKind::Socket, FdKind::None, 1, 100),
            row(
                1,
                uring::nr(op::SEND_ZC),
                FdKind::Zerocopy,
                FdKind::None,
                1,
                1000,
            ),
            row(1, uring::nr(op::SPLICE), FdKind::Pipe, FdKind::File, 1, 50),
            row(1, uring::nr(28), FdKind::None, FdKind::None, 1, 0),
            row(1, uring::nr(200), FdKind::None, FdKind::None, 1, 0),
        ];
        let (calls, requests) = (syscall_table(&rows), uring_table(&rows));
        assert_eq!(calls.keys().collect::<Vec<_>>(), ["io_uring_enter"]);
        assert_eq!(requests["READ"].counts.count, 3);
        assert_eq!(requests["READ"].nr, op::READ as u32);
        assert_eq!(requests["SPLICE"].by_fd_kind["file->pipe"].bytes, 50);
        assert!(requests.contains_key("OPENAT2") && requests.contains_key("OP_200"));
        assert_eq!(requests["OPENAT2"].counts.bytes, 0);
        let t = totals(&calls, &requests, &ProcCounters::default());
        assert_eq!(
            (t.syscalls, t.mode_switches),
            (3, 6),
            "requests are not syscalls"
        );
        assert_eq!(
            t.bytes,
            Bytes {
                copied_to_user: 200,
                copied_from_user: 100,
                zero_copy: 50,
                device: 10,
                direct_io: 4096,
                zerocopy_sent: 1000,
                ..Default::default()
            }
        );
    }

    #[test]
    fn device_and_direct_io_bytes_are_not_copies() {
        let rows = [
            row(1, nr::READ, FdKind::Direct, FdKind::None, 1, 1000),
            row(1, nr::READ, FdKind::File, FdKind::None, 1, 10),
            row(1, nr::WRITE, FdKind::Device, FdKind::None, 1, 1000),
            row(1, nr::PWRITE64, FdKind::Direct, FdKind::None, 1, 300),
            // Two-fd calls stay zero-copy whatever their ends are.
            row(1, nr::SPLICE, FdKind::Device, FdKind::Pipe, 1, 50),
        ];
        let b = totals(
            &syscall_table(&rows),
            &uring_table(&rows),
            &ProcCounters::default(),
        )
        .bytes;
        assert_eq!(
            b,
            Bytes {
                copied_to_user: 10,
                zero_copy: 50,
                device: 1000,
                direct_io: 1300,
                ..Default::default()
            }
        );
    }

    #[test]
    fn zerocopy_sends_and_cow_copies_are_not_syscall_copies() {
        let rows = [
            row(1, nr::SENDTO, FdKind::Zerocopy, FdKind::None, 2, 1000),
            row(1, nr::SENDTO, FdKind::Socket, FdKind::None, 1, 10),
        ];
        let e = ProcCounters {
            zerocopy_sent: 500,
            zerocopy_acked: 1500,
            zerocopy_copied: 1200,
            cow_copied: 8192,
            ..Default::default()
        };
        let t = totals(&syscall_table(&rows), &uring_table(&rows), &e);
        assert_eq!(
            t.bytes,
            Bytes {
                copied_from_user: 10,
                zerocopy_sent: 1500,
                zerocopy_copied: 1200,
                cow_copied: 8192,
                ..Default::default()
            }
        );
        assert_eq!(t.bytes.moved(), 1510);
        assert_eq!(unread_notifications_note(&t, &e), None);
    }

    #[test]
    fn unread_zerocopy_notifications_are_unknown_not_zero() {
        let rows = [row(1, nr::SENDMSG, FdKind::Zerocopy, FdKind::None, 4, 4096)];
        let e = ProcCounters {
            zerocopy_acked: 1024,
            ..Default::default()
        };
        let t = totals(&syscall_table(&rows), &uring_table(&rows), &e);
        let note = unread_notifications_note(&t, &e).unwrap();
        assert!(
            note.contains("unknown for 3072 of the 4096 bytes"),
            "{note}"
        );
    }

    #[test]
    fn faults_without_an_exception_are_the_task_counters_left_over() {
        let e = ProcCounters {
            faults_user: 80,
            faults_kernel: 6,
            faults_task: 16_489,
            ..Default::default()
        };
        let pf = totals(&BTreeMap::new(), &BTreeMap::new(), &e).page_faults;
        assert_eq!(pf.get_user_pages, 16_403);
        assert_eq!(pf.total(), 16_489);
        // No thread exited yet (counters not read): nothing, not negative.
        let live = ProcCounters {
            faults_task: 0,
            ..e
        };
        assert_eq!(
            totals(&BTreeMap::new(), &BTreeMap::new(), &live)
                .page_faults
                .get_user_pages,
            0
        );
    }

    #[test]
    fn schema_1_bytes_read_without_the_new_keys() {
        let v1 = r#"{"copied_to_user": 1, "copied_from_user": 2, "zero_copy": 3, "mapped": 4}"#;
        let b: Bytes = serde_json::from_str(v1).unwrap();
        assert_eq!(
            (b.copied_to_user, b.mapped, b.device, b.direct_io),
            (1, 4, 0, 0)
        );
    }

    #[test]
    fn report_splits_processes_and_keeps_drops() {
        let p10 = vec![row(10, nr::WRITE, FdKind::Pipe, FdKind::None, 1, 5)];
        let p11 = vec![row(11, nr::WRITE, FdKind::Pipe, FdKind::None, 2, 7)];
        let child = ProcCounters {
            ctx_voluntary: 4,
            ..Default::default()
        };
        let counters = Counters {
            syscalls: vec![row(0, nr::WRITE, FdKind::Pipe, FdKind::None, 3, 12)],
            events: child,
            processes: vec![
                ProcessCounters {
                    pid: 10,
                    syscalls: p10,
                    ..Default::default()
                },
                ProcessCounters {
                    pid: 11,
                    identity: ProcIdentity {
                        ppid: 10,
                        comm: "child".into(),
                        cgroup: 0,
                    },
                    syscalls: p11,
                    events: child,
                    summed: 0,
                },
            ],
            dropped: std::array::from_fn(|i| if i == drop::UNTIMED as usize { 2 } else { 0 }),
            ..Default::default()
        };
        let r = build_report(&counters, RunInfo::default());
        assert_eq!(r.schema_version, SCHEMA_VERSION);
        assert_eq!(r.processes.len(), 2);
        assert_eq!(r.processes[1].comm, "child");
        assert_eq!(r.processes[1].totals.bytes.copied_from_user, 7);
        assert_eq!(r.processes[1].totals.context_switches.voluntary, 4);
        assert_eq!(r.totals.bytes.copied_from_user, 12);
        assert_eq!(r.totals.context_switches.voluntary, 4);
        assert_eq!(r.dropped["untimed_calls"], 2);
    }
}
