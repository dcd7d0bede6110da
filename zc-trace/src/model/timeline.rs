//! The sampled time series: cumulative counters every interval.

use zc_trace_common::{FdKind, syscalls::class_of, uring};

use super::{
    Counters,
    bytes::{ByteClass, PerClass},
    report::{Bytes, TimelineSample},
};

/// The cumulative totals of `counters`, stamped `t_ns` after the start.
pub fn sample(counters: &Counters, t_ns: u64) -> TimelineSample {
    let ev = &counters.events;
    let mut bytes = Bytes::from_events(ev);
    let mut syscalls = 0;
    for (key, stats) in &counters.syscalls {
        if uring::opcode(key.nr).is_none() {
            syscalls += stats.count;
        }
        bytes.add(class_of(key.nr), FdKind::from_u8(key.dst_kind), stats.bytes);
    }
    TimelineSample {
        t_ns,
        syscalls,
        bytes,
        page_faults: ev.faults_user + ev.faults_kernel,
        context_switches: ev.ctx_voluntary + ev.ctx_involuntary,
    }
}

/// Per-second rates over one interval of the timeline.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rate {
    pub t_start_ns: u64,
    pub t_end_ns: u64,
    pub syscalls: f64,
    /// Bytes per second of each byte class.
    bytes: PerClass<f64>,
    pub page_faults: f64,
    pub context_switches: f64,
}

impl Rate {
    /// Bytes per second filed under `class`.
    pub fn bytes(&self, class: ByteClass) -> f64 {
        self.bytes[class]
    }
}

/// The rates between consecutive cumulative samples. The first interval runs
/// from the start of tracing (t = 0, every counter zero), so one sample gives
/// one interval. A sample stamped no later than the one before it adds no
/// interval of its own: its counts go to the next interval, so every
/// interval's rate x its length still adds up to the totals. A counter that
/// goes backwards (it never should) counts as no change.
pub fn rates(samples: &[TimelineSample]) -> Vec<Rate> {
    let mut out = Vec::with_capacity(samples.len());
    let mut prev = TimelineSample::default();
    for s in samples {
        if s.t_ns <= prev.t_ns {
            continue;
        }
        let secs = (s.t_ns - prev.t_ns) as f64 / 1e9;
        let per_s = |now: u64, before: u64| now.saturating_sub(before) as f64 / secs;
        out.push(Rate {
            t_start_ns: prev.t_ns,
            t_end_ns: s.t_ns,
            syscalls: per_s(s.syscalls, prev.syscalls),
            bytes: PerClass::from_fn(|c| per_s(s.bytes.get(c), prev.bytes.get(c))),
            page_faults: per_s(s.page_faults, prev.page_faults),
            context_switches: per_s(s.context_switches, prev.context_switches),
        });
        prev = *s;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t_ns: u64, syscalls: u64, zero_copy: u64) -> TimelineSample {
        TimelineSample {
            t_ns,
            syscalls,
            bytes: Bytes {
                zero_copy,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn rates_are_differences_over_time_from_zero() {
        let r = rates(&[at(100_000_000, 10, 1000), at(300_000_000, 30, 1000)]);
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].t_start_ns, r[0].t_end_ns), (0, 100_000_000));
        assert!((r[0].syscalls - 100.0).abs() < 1e-9);
        assert!((r[0].bytes(ByteClass::ZeroCopy) - 10_000.0).abs() < 1e-9);
        assert_eq!((r[1].t_start_ns, r[1].t_end_ns), (100_000_000, 300_000_000));
        assert!((r[1].syscalls - 100.0).abs() < 1e-9);
        assert_eq!(r[1].bytes(ByteClass::ZeroCopy), 0.0);
    }

    #[test]
    fn samples_carry_io_uring_bytes_but_not_as_syscalls() {
        use zc_trace_common::{SyscallKey, SyscallStats, syscalls as nr, uring};
        let row = |nr: u32, kind: FdKind, count: u64, bytes: u64| {
            let stats = SyscallStats {
                count,
                bytes,
                ..Default::default()
            };
            (SyscallKey::new(0, nr, kind, FdKind::None), stats)
        };
        let counters = Counters {
            syscalls: vec![
                row(nr::IO_URING_ENTER, FdKind::Other, 4, 0),
                row(uring::nr(uring::op::READ), FdKind::File, 4, 4096),
            ],
            ..Default::default()
        };
        let s = sample(&counters, 1);
        assert_eq!(s.syscalls, 4);
        assert_eq!(s.bytes.copied_to_user, 4096);
    }

    #[test]
    fn empty_and_odd_samples() {
        assert!(rates(&[]).is_empty());
        // A sample at t = 0 has no interval; a repeated stamp folds into the next.
        let r = rates(&[at(0, 5, 0), at(10, 6, 0), at(10, 8, 0), at(20, 10, 0)]);
        assert_eq!(r.len(), 2);
        let total: f64 = r
            .iter()
            .map(|x| x.syscalls * (x.t_end_ns - x.t_start_ns) as f64 / 1e9)
            .sum();
        assert!((total - 10.0).abs() < 1e-9, "{total}");
        // A counter going backwards is no change, not a huge unsigned rate.
        let r = rates(&[at(10, 8, 0), at(20, 3, 0)]);
        assert_eq!(r[1].syscalls, 0.0);
    }
}
