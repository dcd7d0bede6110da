//! From traced runs to one method's figures: the sender's counts, minus the
//! baseline's (the same sender doing everything but the transfer), and the
//! median over runs.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{bytes::PerClass, report::Report};

/// Count and bytes of one (syscall, fd kind) row.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, derive_more::SubAssign)]
pub struct Row {
    pub count: i64,
    pub bytes: i64,
}

/// What the tracer counted for the sender in one run (or the difference of
/// two runs, or a median of runs). Signed, so that a difference that comes
/// out below zero (noise in start-up faults) shows as such until it is
/// reported.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sample {
    /// "syscall/fd kind" -> count and bytes; rows that are zero are left out.
    pub calls: BTreeMap<String, Row>,
    pub syscalls: i64,
    pub errors: i64,
    pub mode_switches: i64,
    /// Wall time in syscalls, and its on-CPU part (the cost).
    pub kernel_ns: i64,
    pub on_cpu_ns: i64,
    /// The copy ledger's bytes, class by class (disk reads are non-zero
    /// with --cold).
    pub bytes: PerClass<i64>,
    pub faults_user: i64,
    pub faults_kernel: i64,
    pub faults_file: i64,
    pub cs_voluntary: i64,
    pub cs_involuntary: i64,
}

/// Every scalar field of a Sample, for the generic operations below (the
/// bytes of each class are handled with them).
macro_rules! scalars {
    ($m:ident) => {
        $m!(
            syscalls,
            errors,
            mode_switches,
            kernel_ns,
            on_cpu_ns,
            faults_user,
            faults_kernel,
            faults_file,
            cs_voluntary,
            cs_involuntary
        )
    };
}

impl Sample {
    /// The whole report (only the sender is traced, so all of it is the
    /// sender's).
    pub fn from_report(r: &Report) -> Self {
        let t = &r.totals;
        let mut calls = BTreeMap::new();
        let requests = r
            .io_uring
            .iter()
            .map(|(op, e)| (format!("io_uring:{op}"), e));
        let syscalls = r.syscalls.iter().map(|(name, e)| (name.clone(), e));
        for (name, e) in syscalls.chain(requests) {
            for (kind, c) in &e.by_fd_kind {
                calls.insert(
                    format!("{name}/{kind}"),
                    Row {
                        count: c.count as i64,
                        bytes: c.bytes as i64,
                    },
                );
            }
        }
        Sample {
            calls,
            syscalls: t.syscalls as i64,
            errors: t.errors as i64,
            mode_switches: t.mode_switches as i64,
            kernel_ns: t.time_ns as i64,
            on_cpu_ns: t.on_cpu_ns as i64,
            bytes: PerClass::from_fn(|c| t.bytes.get(c) as i64),
            faults_user: t.page_faults.user as i64,
            faults_kernel: t.page_faults.kernel as i64,
            faults_file: t.page_faults.file as i64,
            cs_voluntary: t.context_switches.voluntary as i64,
            cs_involuntary: t.context_switches.involuntary as i64,
        }
    }

    /// This run minus `base`, field by field and row by row.
    pub fn minus(&self, base: &Sample) -> Sample {
        let mut calls = self.calls.clone();
        for (k, b) in &base.calls {
            *calls.entry(k.clone()).or_default() -= *b;
        }
        calls.retain(|_, r| *r != Row::default());
        let mut out = Sample {
            calls,
            bytes: PerClass::from_fn(|c| self.bytes[c] - base.bytes[c]),
            ..Default::default()
        };
        macro_rules! sub {
            ($($f:ident),*) => { $( out.$f = self.$f - base.$f; )* };
        }
        scalars!(sub);
        out
    }

    /// The per-field median of `samples` (each row and each counter on
    /// its own). Empty input gives zeros.
    pub fn median(samples: &[Sample]) -> Sample {
        let keys: BTreeSet<&String> = samples.iter().flat_map(|s| s.calls.keys()).collect();
        let mut calls = BTreeMap::new();
        for k in keys {
            let get = |f: fn(&Row) -> i64| {
                median_i64(
                    samples
                        .iter()
                        .map(|s| s.calls.get(k).map_or(0, f))
                        .collect(),
                )
            };
            let r = Row {
                count: get(|r| r.count),
                bytes: get(|r| r.bytes),
            };
            if r != Row::default() {
                calls.insert(k.clone(), r);
            }
        }
        let mut out = Sample {
            calls,
            bytes: PerClass::from_fn(|c| median_i64(samples.iter().map(|s| s.bytes[c]).collect())),
            ..Default::default()
        };
        macro_rules! med {
            ($($f:ident),*) => { $( out.$f = median_i64(samples.iter().map(|s| s.$f).collect()); )* };
        }
        scalars!(med);
        out
    }

    /// Differences below zero are start-up noise the baseline
    /// over-subtracted: reported as zero (rows are left as they are).
    pub fn clamped(&self) -> Sample {
        let mut out = self.clone();
        macro_rules! clamp {
            ($($f:ident),*) => { $( out.$f = out.$f.max(0); )* };
        }
        scalars!(clamp);
        out.bytes = PerClass::from_fn(|c| out.bytes[c].max(0));
        out
    }

    pub fn page_faults(&self) -> i64 {
        self.faults_user + self.faults_kernel
    }

    pub fn context_switches(&self) -> i64 {
        self.cs_voluntary + self.cs_involuntary
    }

    /// A row, zero if absent.
    #[cfg(test)]
    pub fn row(&self, key: &str) -> Row {
        self.calls.get(key).copied().unwrap_or_default()
    }
}

/// The median; of an even number of values, the mean of the middle two
/// (rounded toward zero for integers).
pub fn median_i64(mut v: Vec<i64>) -> i64 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2
    }
}

pub fn median_f64(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// What the sender measured about itself in one run.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Timing {
    /// Bytes the method handed over, as the sender counted them.
    pub sent: u64,
    /// From the first call of the transfer until the receiver had drained
    /// everything and closed (monotonic clock).
    pub transfer_ns: u64,
    /// CPU time of the sender over the same span (getrusage).
    pub user_ns: u64,
    pub sys_ns: u64,
}

impl Timing {
    pub fn mib_per_s(&self, delivered: u64) -> f64 {
        if self.transfer_ns == 0 {
            return 0.0;
        }
        delivered as f64 / MIB / (self.transfer_ns as f64 / 1e9)
    }

    /// User + system CPU time scaled to 1 GiB delivered, in ns.
    pub fn cpu_ns_per_gib(&self, delivered: u64) -> f64 {
        if delivered == 0 {
            return 0.0;
        }
        (self.user_ns + self.sys_ns) as f64 * GIB / delivered as f64
    }
}

pub const MIB: f64 = 1024.0 * 1024.0;
pub const GIB: f64 = 1024.0 * MIB;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::bytes::ByteClass;
    use crate::model::report::{Counts, SyscallEntry};

    fn report(reads: u64, read_bytes: u64, startup_reads: u64, faults: u64) -> Report {
        let mut r = Report::default();
        let kinds = [
            (
                "file".to_owned(),
                Counts {
                    count: reads,
                    bytes: read_bytes,
                    ..Default::default()
                },
            ),
            (
                "other".to_owned(),
                Counts {
                    count: startup_reads,
                    bytes: 832 * startup_reads,
                    ..Default::default()
                },
            ),
        ];
        r.syscalls.insert(
            "read".into(),
            SyscallEntry {
                nr: 0,
                class: "copy_to_user".into(),
                counts: Counts {
                    count: reads + startup_reads,
                    bytes: read_bytes + 832 * startup_reads,
                    ..Default::default()
                },
                by_fd_kind: kinds.into(),
            },
        );
        r.totals.syscalls = reads + startup_reads + 30;
        r.totals.bytes.copied_to_user = read_bytes + 832 * startup_reads;
        r.totals.page_faults.user = faults;
        r
    }

    #[test]
    fn the_baseline_is_subtracted_row_by_row() {
        let base = Sample::from_report(&report(0, 0, 2, 50));
        let run = Sample::from_report(&report(16, 1 << 20, 2, 53));
        let d = run.minus(&base);
        assert_eq!(d.syscalls, 16);
        assert_eq!(d.bytes[ByteClass::CopiedToUser], 1 << 20);
        assert_eq!(d.faults_user, 3);
        assert_eq!(
            d.row("read/file"),
            Row {
                count: 16,
                bytes: 1 << 20
            }
        );
        assert!(
            !d.calls.contains_key("read/other"),
            "start-up rows cancel out: {:?}",
            d.calls
        );
        // A row only the baseline has goes negative, visibly.
        let d = base.minus(&run);
        assert_eq!(d.row("read/file").count, -16);
    }

    #[test]
    fn medians() {
        assert_eq!(median_i64(vec![]), 0);
        assert_eq!(median_i64(vec![5]), 5);
        assert_eq!(median_i64(vec![9, 1, 5]), 5);
        assert_eq!(median_i64(vec![4, 1, 2, 100]), 3);
        assert_eq!(median_f64(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median_f64(vec![1.0, 2.0]), 1.5);

        let a = Sample::from_report(&report(16, 100, 0, 10));
        let b = Sample::from_report(&report(16, 100, 0, 99));
        let c = Sample::from_report(&report(17, 100, 1, 12));
        let m = Sample::median(&[a, b, c]);
        assert_eq!(m.faults_user, 12);
        assert_eq!(m.row("read/file").count, 16);
        assert_eq!(
            m.row("read/other"),
            Row::default(),
            "absent in 2 of 3 runs: median 0"
        );
    }

    #[test]
    fn rates() {
        let t = Timing {
            sent: 1 << 30,
            transfer_ns: 2_000_000_000,
            user_ns: 100_000_000,
            sys_ns: 400_000_000,
        };
        assert_eq!(t.mib_per_s(1 << 30), 512.0);
        assert_eq!(t.cpu_ns_per_gib(1 << 30), 500_000_000.0);
        assert_eq!(t.cpu_ns_per_gib(1 << 29), 1_000_000_000.0);
        assert_eq!(Timing::default().mib_per_s(10), 0.0);
    }
}
