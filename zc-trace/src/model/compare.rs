//! Runs side by side: every cost divided by the bytes the run delivered,
//! so a change of method (read/write -> sendfile) or of a setting shows as
//! a difference per MiB rather than a difference in run length.
//!
//! The default basis is the bytes the workload *wrote* to files and
//! sockets, each byte once whatever path it took (write, send, sendfile,
//! the pipe -> socket half of a splice, copy_file_range): read+write of a
//! 64 MiB file and sendfile of it both deliver 64 MiB. Other bases are the
//! bytes *read* from files and sockets, the bytes *moved* across the
//! boundary (copied either way plus zero-copy, counting read+write twice),
//! and the lab's *delivered* bytes (what its receiver got).

use zc_trace_common::{FdKind, syscalls::Class};

use super::report::{CpuSource, Report};

const MIB: f64 = 1024.0 * 1024.0;

/// What a comparison divides costs by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Basis<'a> {
    /// Bytes written to files and sockets, each byte once.
    Written,
    /// Bytes read from files and sockets, each byte once.
    Read,
    /// Bytes each run moved: copied either way plus zero-copy.
    Moved,
    /// Bytes each run delivered, one figure per run in run order.
    Delivered(&'a [u64]),
}

impl Basis<'_> {
    pub fn noun(&self) -> &'static str {
        match self {
            Basis::Written => "written",
            Basis::Read => "read",
            Basis::Moved => "moved",
            Basis::Delivered(_) => "delivered",
        }
    }

    /// What the basis counts, for every legend that names it.
    pub fn definition(&self) -> &'static str {
        match self {
            Basis::Written => {
                "written = bytes written to files and sockets, each byte once (write/send families, sendfile, splice to a socket or file, copy_file_range)"
            }
            Basis::Read => {
                "read = bytes read from files and sockets, each byte once (read/recv families, sendfile, splice from a file or socket, copy_file_range)"
            }
            Basis::Moved => {
                "moved = copied kernel -> user + copied user -> kernel + zero-copy (read+write counts each byte twice)"
            }
            Basis::Delivered(_) => "delivered = bytes the receiver got, once each",
        }
    }

    /// The bytes run `i` is divided by.
    pub fn bytes(&self, i: usize, r: &Report) -> u64 {
        match self {
            Basis::Written => endpoint_bytes(r, End::Destination),
            Basis::Read => endpoint_bytes(r, End::Source),
            Basis::Moved => moved_bytes(r),
            Basis::Delivered(b) => b.get(i).copied().unwrap_or(0),
        }
    }
}

/// Bytes a run moved (see `Bytes::moved`).
pub fn moved_bytes(r: &Report) -> u64 {
    r.totals.bytes.moved()
}

/// Which end of a transfer a basis looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Source,
    Destination,
}

/// Whether data on an fd of `kind` is a file's or a socket's: where a
/// workload's bytes come from and go to (pipes and devices are on the way).
/// `Zerocopy` is a socket sent to with MSG_ZEROCOPY.
fn is_endpoint(kind: FdKind) -> bool {
    matches!(
        kind,
        FdKind::File | FdKind::Socket | FdKind::Direct | FdKind::Zerocopy
    )
}

/// Bytes of the calls that take data from (Source) or put it into
/// (Destination) a file or socket: each byte once, because a transfer has
/// one call at each end (read then write; splice file -> pipe then
/// pipe -> socket; one sendfile). io_uring requests count as the calls
/// they stand for.
fn endpoint_bytes(r: &Report, end: End) -> u64 {
    let mut total = 0;
    for e in r.syscalls.values().chain(r.io_uring.values()) {
        for (key, c) in &e.by_fd_kind {
            let (src, dst) = match key.split_once("->") {
                Some((s, d)) => (FdKind::from_name(s), FdKind::from_name(d)),
                None => (None, FdKind::from_name(key)),
            };
            let kind = match (end, e.class) {
                (End::Destination, Class::CopyFromUser | Class::ZeroCopy) => dst,
                (End::Source, Class::CopyToUser) => dst,
                (End::Source, Class::ZeroCopy) => src,
                _ => None,
            };
            if kind.is_some_and(is_endpoint) {
                total += c.bytes;
            }
        }
    }
    total
}

/// One run's costs per MiB (or per byte) of its basis; `None` when the run
/// has no bytes to divide by: "n/a", not a cost of zero.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Normalised {
    pub basis_bytes: u64,
    pub syscalls_per_mib: Option<f64>,
    pub mode_switches_per_mib: Option<f64>,
    /// Bytes copied by the CPU across the boundary (both directions) per
    /// byte: 2 for read+write, 0 for sendfile.
    pub cpu_copies_per_byte: Option<f64>,
    pub zero_copy_per_byte: Option<f64>,
    pub page_faults_per_mib: Option<f64>,
    pub context_switches_per_mib: Option<f64>,
    /// CPU time per MiB, in ns (see `Report::cost_cpu` for its source).
    pub cpu_ns_per_mib: Option<f64>,
    pub cpu_source: Option<CpuSource>,
    /// Wall time in syscalls per MiB, in ns (blocked time included).
    pub wall_ns_per_mib: Option<f64>,
}

pub fn normalise(r: &Report, basis_bytes: u64) -> Normalised {
    let t = &r.totals;
    let per_mib = |x: u64| (basis_bytes > 0).then(|| x as f64 * MIB / basis_bytes as f64);
    let per_byte = |x: u64| (basis_bytes > 0).then(|| x as f64 / basis_bytes as f64);
    let (cpu_ns, source) = r.cost_cpu();
    Normalised {
        basis_bytes,
        syscalls_per_mib: per_mib(t.syscalls),
        mode_switches_per_mib: per_mib(t.mode_switches),
        cpu_copies_per_byte: per_byte(t.bytes.copied_to_user + t.bytes.copied_from_user),
        zero_copy_per_byte: per_byte(t.bytes.zero_copy),
        page_faults_per_mib: per_mib(t.page_faults.total()),
        context_switches_per_mib: per_mib(t.context_switches.total()),
        cpu_ns_per_mib: per_mib(cpu_ns),
        cpu_source: Some(source),
        wall_ns_per_mib: r.timing.per_call().then(|| per_mib(t.time_ns)).flatten(),
    }
}

/// What a compared figure is, for its axis and labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    PerMib,
    PerByte,
    /// Nanoseconds per MiB.
    TimePerMib,
}

/// The figures a comparison shows, in display order: (name, value, unit).
pub fn figures(n: &Normalised, noun: &str) -> Vec<(String, Option<f64>, Unit)> {
    vec![
        (
            format!("syscalls per MiB {noun}"),
            n.syscalls_per_mib,
            Unit::PerMib,
        ),
        (
            format!("mode switches per MiB {noun} (derived)"),
            n.mode_switches_per_mib,
            Unit::PerMib,
        ),
        (
            format!("bytes copied by the CPU per byte {noun}"),
            n.cpu_copies_per_byte,
            Unit::PerByte,
        ),
        (
            format!("zero-copy bytes per byte {noun}"),
            n.zero_copy_per_byte,
            Unit::PerByte,
        ),
        (
            format!("page faults per MiB {noun}"),
            n.page_faults_per_mib,
            Unit::PerMib,
        ),
        (
            format!("context switches per MiB {noun}"),
            n.context_switches_per_mib,
            Unit::PerMib,
        ),
        (
            format!("CPU time per MiB {noun}"),
            n.cpu_ns_per_mib,
            Unit::TimePerMib,
        ),
    ]
}

/// The comparison for scripts (`compare --json`).
pub fn json(runs: &[(String, Report)], basis: Basis) -> serde_json::Value {
    let rows: Vec<serde_json::Value> = runs
        .iter()
        .enumerate()
        .map(|(i, (label, r))| {
            let n = normalise(r, basis.bytes(i, r));
            serde_json::json!({
                "label": label,
                "basis_bytes": n.basis_bytes,
                "syscalls_per_mib": n.syscalls_per_mib,
                "mode_switches_per_mib": n.mode_switches_per_mib,
                "cpu_copies_per_byte": n.cpu_copies_per_byte,
                "zero_copy_per_byte": n.zero_copy_per_byte,
                "cpu_ns_per_mib": n.cpu_ns_per_mib,
                "cpu_source": n.cpu_source.map(CpuSource::describe),
                "wall_ns_per_mib": n.wall_ns_per_mib,
            })
        })
        .collect();
    serde_json::json!({
        "basis": basis.noun(),
        "basis_definition": basis.definition(),
        "runs": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::report::{Counts, SyscallEntry, Timing};

    /// A report of calls (name, class, "fd kind key", bytes), one per row.
    fn run(calls: &[(&str, Class, &str, u64)]) -> Report {
        let mut r = Report::default();
        for (name, class, kind, bytes) in calls {
            let c = Counts {
                count: 1,
                bytes: *bytes,
                ..Default::default()
            };
            let e = r
                .syscalls
                .entry((*name).to_owned())
                .or_insert_with(|| SyscallEntry {
                    class: *class,
                    ..Default::default()
                });
            e.counts += c;
            e.by_fd_kind.insert((*kind).to_owned(), c);
            r.totals.syscalls += 1;
            let k = kind.rsplit("->").next().and_then(FdKind::from_name);
            r.totals
                .bytes
                .add(*class, k.unwrap_or(FdKind::Unknown), *bytes);
        }
        r
    }

    const MIB: u64 = 1 << 20;

    #[test]
    fn read_write_and_sendfile_deliver_the_same_bytes() {
        let rw = run(&[
            ("read", Class::CopyToUser, "file", MIB),
            ("write", Class::CopyFromUser, "socket", MIB),
        ]);
        let sf = run(&[("sendfile", Class::ZeroCopy, "file->socket", MIB)]);
        let splice = run(&[
            ("splice", Class::ZeroCopy, "file->pipe", MIB),
            ("splice", Class::ZeroCopy, "pipe->socket", MIB),
        ]);
        for r in [&rw, &sf, &splice] {
            assert_eq!(Basis::Written.bytes(0, r), MIB);
            assert_eq!(Basis::Read.bytes(0, r), MIB);
        }
        assert_eq!(Basis::Moved.bytes(0, &rw), 2 * MIB);
        let n = normalise(&rw, Basis::Written.bytes(0, &rw));
        assert_eq!(n.cpu_copies_per_byte, Some(2.0));
        assert_eq!(n.syscalls_per_mib, Some(2.0));
        let n = normalise(&sf, Basis::Written.bytes(0, &sf));
        assert_eq!(n.cpu_copies_per_byte, Some(0.0));
        assert_eq!(n.zero_copy_per_byte, Some(1.0));
    }

    #[test]
    fn pipes_and_devices_are_not_where_bytes_are_delivered() {
        // cat F | gzip > /dev/null: nothing reaches a file or socket.
        let r = run(&[
            ("read", Class::CopyToUser, "file", MIB),
            ("write", Class::CopyFromUser, "pipe", MIB),
            ("write", Class::CopyFromUser, "device", MIB),
            ("vmsplice", Class::ZeroCopy, "pipe", MIB),
        ]);
        assert_eq!(Basis::Written.bytes(0, &r), 0);
        assert_eq!(normalise(&r, 0).syscalls_per_mib, None, "n/a, not 0");
    }

    #[test]
    fn cpu_cost_is_on_cpu_time_or_the_accounting_when_untimed() {
        let mut r = run(&[("write", Class::CopyFromUser, "file", MIB)]);
        r.totals.on_cpu_ns = 1000;
        r.totals.time_ns = 9000;
        r.totals.cpu.system_ns = 5000;
        let n = normalise(&r, MIB);
        assert_eq!(n.cpu_ns_per_mib, Some(1000.0));
        assert_eq!(n.wall_ns_per_mib, Some(9000.0));
        assert_eq!(n.cpu_source, Some(CpuSource::OnCpuInSyscalls));
        r.timing = Timing::Off;
        let n = normalise(&r, MIB);
        assert_eq!(n.cpu_ns_per_mib, Some(5000.0));
        assert_eq!(n.wall_ns_per_mib, None);
    }

    #[test]
    fn device_and_direct_io_bytes_still_count_as_moved() {
        let mut r = Report::default();
        r.totals.bytes.direct_io = 1 << 20;
        r.totals.bytes.device = 1 << 20;
        r.totals.bytes.disk_read = 1 << 20;
        r.totals.page_faults.get_user_pages = 256;
        let n = normalise(&r, moved_bytes(&r));
        assert_eq!(n.basis_bytes, 2 << 20);
        assert_eq!(n.cpu_copies_per_byte, Some(0.0));
        assert_eq!(n.page_faults_per_mib, Some(128.0));
    }

    #[test]
    fn basis_picks_the_bytes() {
        let mut r = Report::default();
        r.totals.bytes.zero_copy = 10;
        assert_eq!(Basis::Moved.bytes(0, &r), 10);
        assert_eq!(Basis::Delivered(&[7, 8]).bytes(1, &r), 8);
        assert_eq!(Basis::Delivered(&[7]).bytes(3, &r), 0);
        assert_eq!(Basis::Delivered(&[]).noun(), "delivered");
    }

    #[test]
    fn json_names_the_basis_and_every_figure() {
        let r = run(&[("sendfile", Class::ZeroCopy, "file->socket", MIB)]);
        let j = json(&[("sf".into(), r)], Basis::Written);
        assert_eq!(j["basis"], "written");
        let row = &j["runs"][0];
        assert_eq!(row["label"], "sf");
        assert_eq!(row["basis_bytes"], MIB);
        assert_eq!(row["cpu_copies_per_byte"], 0.0);
        assert_eq!(row["zero_copy_per_byte"], 1.0);
        for key in [
            "syscalls_per_mib",
            "mode_switches_per_mib",
            "cpu_ns_per_mib",
        ] {
            assert!(row.get(key).is_some(), "{key}");
        }
    }
}
