//! The timeline's samples, taken at the cadence's pace (cadence.rs): on
//! the tick, or at once when the probes wake a collector that backed off.

use std::time::{Duration, Instant};

use anyhow::Result;

use super::{cadence::Cadence, timer::Timer};
use crate::{
    bpf_stats::StatsWindows,
    collector::{Collector, Wakeups},
    model::{report::TimelineSample, timeline},
};

pub struct Sampler {
    tick: Timer,
    cadence: Cadence,
    wakeups: Wakeups,
    /// The probes woke the collector since the last sample.
    woken: bool,
    started: Instant,
    pub samples: Vec<TimelineSample>,
}

impl Sampler {
    /// The first sample now (t ~ 0), the next `interval` later. Needs the
    /// tokio runtime entered.
    pub fn new(collector: &mut Collector, interval: Duration, started: Instant) -> Result<Self> {
        Ok(Self {
            tick: Timer::every(Duration::ZERO, interval)?,
            cadence: Cadence::new(interval),
            wakeups: collector.wakeups()?,
            woken: false,
            started,
            samples: Vec::new(),
        })
    }

    /// Waits until a sample is due: the tick, or the probes' wakeup.
    pub async fn due(&mut self) -> Result<()> {
        tokio::select! {
            r = self.tick.fired() => r?,
            r = self.wakeups.woken() => {
                r?;
                self.woken = true;
            }
        }
        Ok(())
    }

    /// Folds the processes that exited, samples the totals, and sets when
    /// the next sample is due (opening a window of statistics due before).
    pub fn sample(&mut self, collector: &mut Collector, stats: &mut StatsWindows) -> Result<()> {
        let exits = collector.fold_exited()?;
        let totals = collector.totals();
        let sample = timeline::sample(&totals, self.started.elapsed().as_nanos() as u64);
        self.samples.push(sample);
        let news = exits > 0 || std::mem::take(&mut self.woken);
        let period = self.cadence.after(&sample, news);
        self.tick.repeat(period)?;
        if self.cadence.backed_off() {
            self.wakeups.ask()?;
            // A count between the read above and the request woke no one:
            // if there was one, sample again now, as its wakeup would have.
            let now = timeline::sample(&collector.totals(), 0);
            if self.cadence.differs(&now) {
                self.woken = true;
                return self.sample(collector, stats);
            }
        }
        stats.open_if_due_by(Instant::now() + period, totals.calls());
        Ok(())
    }
}
