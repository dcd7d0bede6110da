//! The syscall table's grouping, shared by the summary and the HTML: the
//! copying calls first, then zero-copy, mapping and everything else, each
//! group busiest first, the long tail of "other" folded; then the io_uring
//! requests by opcode.

use zc_trace_common::syscalls::Class;

use crate::model::report::{Report, SyscallEntry, Timing};

use super::format::{bytes, duration_ns, grouped};

/// "other" rows shown before the rest are folded.
pub const OTHER_ROWS: usize = 8;

/// Title of the group of io_uring requests (by opcode, after the syscalls).
pub const URING_GROUP: &str = "io_uring requests (by opcode, completed)";

pub struct Group<'a> {
    pub title: &'static str,
    /// Rows shown, busiest first.
    pub shown: Vec<(&'a str, &'a SyscallEntry)>,
    /// Rows folded away (only ever in "other").
    pub folded: Vec<(&'a str, &'a SyscallEntry)>,
    /// What is known of the rows' time: the run's timing, or Off for
    /// io_uring requests, whose time is not measured.
    pub timing: Timing,
}

/// Rows busiest first, then by name.
fn busiest_first<'a>(rows: &mut [(&'a str, &'a SyscallEntry)]) {
    rows.sort_by(|a, b| b.1.counts.count.cmp(&a.1.counts.count).then(a.0.cmp(b.0)));
}

/// The non-empty groups of a report, in display order: one per distinct
/// `Look::group` of the classes, "other" (and only it) folded, then the
/// io_uring requests.
pub fn groups(r: &Report) -> Vec<Group<'_>> {
    let mut titles: Vec<&'static str> = Class::ALL.iter().map(|c| c.look().group).collect();
    titles.dedup();
    let mut requests: Vec<(&str, &SyscallEntry)> =
        r.io_uring.iter().map(|(n, e)| (n.as_str(), e)).collect();
    busiest_first(&mut requests);
    let uring = (!requests.is_empty()).then_some(Group {
        title: URING_GROUP,
        shown: requests,
        folded: Vec::new(),
        timing: Timing::Off,
    });
    titles
        .into_iter()
        .filter_map(|title| {
            let mut rows: Vec<(&str, &SyscallEntry)> = r
                .syscalls
                .iter()
                .filter(|(_, e)| e.class.look().group == title)
                .map(|(n, e)| (n.as_str(), e))
                .collect();
            if rows.is_empty() {
                return None;
            }
            busiest_first(&mut rows);
            let folds = rows.iter().any(|(_, e)| e.class == Class::Other);
            let folded = if folds && rows.len() > OTHER_ROWS {
                rows.split_off(OTHER_ROWS)
            } else {
                Vec::new()
            };
            Some(Group {
                title,
                shown: rows,
                folded,
                timing: r.timing,
            })
        })
        .chain(uring)
        .collect()
}

/// The time columns of a syscall row, in order: what each one is.
pub const TIME_COLUMNS: [&str; 3] = ["on-CPU", "off-CPU", "avg wall"];

/// The derived cells of one syscall row, alike in every renderer.
pub struct Cells {
    /// Time on a CPU and off it (blocked or waiting) in the calls, and the
    /// mean wall time per call (see TIME_COLUMNS); "-" when not timed.
    pub on_cpu: String,
    pub off_cpu: String,
    pub avg: String,
    /// Bytes, or "-" for a call whose return is not a byte count.
    pub bytes: String,
    /// "file 12", "file->socket 3": calls per fd kind, calls without an fd left out.
    pub kinds: Vec<String>,
}

pub fn cells(e: &SyscallEntry, timing: Timing) -> Cells {
    let c = &e.counts;
    let time = |ns: Option<u64>, known: bool| match ns {
        Some(ns) if known => duration_ns(ns),
        _ => "-".into(),
    };
    Cells {
        on_cpu: time(Some(c.on_cpu_ns), timing.split()),
        off_cpu: time(Some(c.off_cpu_ns), timing.split()),
        avg: time(c.time_ns.checked_div(c.count), timing.per_call()),
        bytes: if e.class == Class::Other && c.bytes == 0 {
            "-".into()
        } else {
            bytes(c.bytes)
        },
        kinds: e
            .by_fd_kind
            .iter()
            .filter(|(k, _)| k.as_str() != "none")
            .map(|(k, v)| format!("{k} {}", grouped(v.count)))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::report::Counts;

    #[test]
    fn groups_in_order_busiest_first_with_the_tail_folded() {
        let mut r = Report::default();
        let mut add = |name: &str, class: &str, count: u64| {
            r.syscalls.insert(
                name.into(),
                SyscallEntry {
                    class: class.into(),
                    counts: Counts {
                        count,
                        ..Default::default()
                    },
                    ..Default::default()
                },
            );
        };
        add("write", "copy_from_user", 5);
        add("read", "copy_to_user", 9);
        add("sendfile", "zero_copy", 1);
        for i in 0..10 {
            add(&format!("other{i}"), "other", i);
        }
        let g = groups(&r);
        let titles: Vec<&str> = g.iter().map(|g| g.title).collect();
        assert_eq!(titles, ["copying", "zero-copy", "other"]);
        assert_eq!(
            g[0].shown.iter().map(|r| r.0).collect::<Vec<_>>(),
            ["read", "write"]
        );
        assert_eq!(g[2].shown.len(), OTHER_ROWS);
        assert_eq!(g[2].shown[0].0, "other9");
        assert_eq!(g[2].folded.len(), 2);
        assert!(g.iter().all(|g| g.timing == r.timing));

        r.io_uring.insert(
            "READ".into(),
            SyscallEntry {
                class: "copy_to_user".into(),
                counts: Counts {
                    count: 4,
                    bytes: 4096,
                    ..Default::default()
                },
                ..Default::default()
            },
        );
        let g = groups(&r);
        let last = g.last().unwrap();
        assert_eq!((last.title, last.timing), (URING_GROUP, Timing::Off));
        assert_eq!(last.shown[0].0, "READ");
        let c = cells(last.shown[0].1, last.timing);
        assert_eq!(
            (c.on_cpu.as_str(), c.off_cpu.as_str(), c.avg.as_str()),
            ("-", "-", "-")
        );
    }
}
