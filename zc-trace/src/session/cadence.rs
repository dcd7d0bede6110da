//! How often the trace loop samples the timeline.
//!
//! Every wakeup of the collector costs ~0.1 ms of CPU on a VM with
//! retpolines and SRSO, about half of it the kernel's for waking a process
//! at all (a C loop on a 100 ms timerfd takes ~0.05 ms a wakeup there):
//! sampling every --interval all run long cost ~1.2 ms/s while the target
//! did nothing. So while the counters stand still the wait doubles, up to
//! IDLE_MAX, and the first change brings it back to --interval. Nothing is
//! lost: a sample carries its time, a quiet stretch is exactly as quiet as
//! its two ends say, and the probes wake the collector at the first count
//! after it backed off (see `WAKE` in the probes), so the timeline still
//! shows when activity resumed to within --interval.

use std::time::Duration;

use crate::model::report::TimelineSample;

/// The longest wait between two samples while nothing changes.
pub const IDLE_MAX: Duration = Duration::from_secs(1);

pub struct Cadence {
    base: Duration,
    period: Duration,
    /// The last sample, its time aside: what "nothing changed" compares to.
    last: Option<TimelineSample>,
}

impl Cadence {
    /// Sampling every `base` (--interval) to begin with.
    pub fn new(base: Duration) -> Self {
        Self {
            base,
            period: base,
            last: None,
        }
    }

    /// Whether the wait is longer than --interval (the counters stood
    /// still): the collector then wants a wakeup at the next count.
    pub fn backed_off(&self) -> bool {
        self.period > self.base
    }

    /// Takes `sample` into account, and whether something else happened
    /// since the last one (a process exited, or the probes woke the
    /// collector: a count that moved no timeline field, such as a syscall
    /// past the totals' numbers, still ends the back-off, or each such
    /// count would wake the collector for a sample of its own): returns
    /// the wait before the next sample.
    pub fn after(&mut self, sample: &TimelineSample, news: bool) -> Duration {
        let unchanged = !news && !self.differs(sample);
        self.period = if unchanged {
            (self.period * 2).min(IDLE_MAX.max(self.base))
        } else {
            self.base
        };
        self.last = Some(still(sample));
        self.period
    }

    /// Whether `sample` differs from the last one taken (its time aside).
    pub fn differs(&self, sample: &TimelineSample) -> bool {
        self.last != Some(still(sample))
    }
}

/// A sample without its time.
fn still(sample: &TimelineSample) -> TimelineSample {
    TimelineSample { t_ns: 0, ..*sample }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn sample(t_ns: u64, syscalls: u64) -> TimelineSample {
        TimelineSample {
            t_ns,
            syscalls,
            ..Default::default()
        }
    }

    #[test]
    fn a_still_timeline_backs_off_by_doubling_up_to_the_idle_max() {
        let mut c = Cadence::new(100 * MS);
        let periods: Vec<_> = (0..7u64)
            .map(|i| c.after(&sample(i * 100, 5), false).as_millis())
            .collect();
        // The first sample has nothing to compare to.
        assert_eq!(periods, [100, 200, 400, 800, 1000, 1000, 1000]);
        assert!(c.backed_off());
    }

    #[test]
    fn any_change_or_exit_brings_back_the_interval() {
        let mut c = Cadence::new(100 * MS);
        c.after(&sample(0, 5), false);
        c.after(&sample(1, 5), false);
        assert_eq!(c.after(&sample(2, 5), false), 400 * MS);
        assert_eq!(c.after(&sample(3, 6), false), 100 * MS);
        assert!(!c.backed_off());
        c.after(&sample(4, 6), false);
        assert_eq!(c.after(&sample(5, 6), true), 100 * MS, "an exit");
        c.after(&sample(6, 6), false);
        assert_eq!(c.after(&sample(7, 6), true), 100 * MS, "the probes' wakeup");
        assert!(!c.differs(&sample(99, 6)), "the time aside");
        assert!(c.differs(&sample(7, 7)));
        let mut faults = sample(7, 6);
        faults.page_faults = 1;
        assert_eq!(c.after(&faults, false), 100 * MS);
    }

    #[test]
    fn an_interval_longer_than_the_idle_max_is_kept() {
        let mut c = Cadence::new(5000 * MS);
        c.after(&sample(0, 1), false);
        assert_eq!(c.after(&sample(1, 1), false), 5000 * MS);
        assert!(!c.backed_off());
    }
}
