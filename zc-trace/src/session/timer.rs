//! The trace loop's timers, each a timerfd the runtime polls: the kernel
//! wakes zc-trace once, when one is due. A tokio timer due more than 64 ms
//! away wakes the runtime twice (once to move it down tokio's timing
//! wheel, once when due, plus a self-wake through an eventfd), and the
//! timeline's tick, every 100 ms all run long then, was most of the collector's
//! wakeups.

use std::{
    io,
    os::fd::OwnedFd,
    time::{Duration, Instant},
};

use rustix::time::{
    Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec, timerfd_create,
    timerfd_settime,
};
use tokio::io::unix::AsyncFd;

pub struct Timer {
    fd: AsyncFd<OwnedFd>,
    /// When a one-shot timer is set for (re-armed only when this changes).
    due: Option<Instant>,
    /// A periodic timer's period (re-armed only when this changes).
    period: Option<Duration>,
}

fn timespec(d: Duration) -> Timespec {
    Timespec {
        tv_sec: d.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: d.subsec_nanos().into(),
    }
}

impl Timer {
    /// A timer that is not armed. Needs the tokio runtime (with its I/O
    /// driver) entered.
    pub fn new() -> io::Result<Self> {
        let cannot = |e: io::Error| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot create a timer (timerfd): {e}: check the open-files limit (ulimit -n)"
                ),
            )
        };
        // CLOCK_MONOTONIC: Instant's clock.
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )
        .map_err(|e| cannot(e.into()))?;
        let fd = crate::readiness::readable(fd).map_err(cannot)?;
        Ok(Self {
            fd,
            due: None,
            period: None,
        })
    }

    /// A timer that fires `first` from now, then every `period`. Periods
    /// missed while zc-trace was busy fire once, as soon as it waits again.
    pub fn every(first: Duration, period: Duration) -> io::Result<Self> {
        let mut timer = Self::new()?;
        // A zero it_value would disarm the timer.
        let tiny = Duration::from_nanos(1);
        timer.arm(first.max(tiny), period.max(tiny))?;
        timer.period = Some(period.max(tiny));
        Ok(timer)
    }

    /// Makes a periodic timer fire every `period` from now on, when that
    /// is not its period already (then it keeps its pace, and no syscall).
    pub fn repeat(&mut self, period: Duration) -> io::Result<()> {
        let period = period.max(Duration::from_nanos(1));
        if self.period != Some(period) {
            self.arm(period, period)?;
            self.period = Some(period);
            self.due = None;
        }
        Ok(())
    }

    fn arm(&self, first: Duration, period: Duration) -> io::Result<()> {
        let spec = Itimerspec {
            it_interval: timespec(period),
            it_value: timespec(first),
        };
        timerfd_settime(self.fd.get_ref(), TimerfdTimerFlags::empty(), &spec)?;
        Ok(())
    }

    /// Makes a one-shot timer fire at `at` (at once if that has passed),
    /// or never for None.
    pub fn set(&mut self, at: Option<Instant>) -> io::Result<()> {
        if at == self.due {
            return Ok(());
        }
        self.due = at;
        self.period = None;
        match at {
            // A zero it_value disarms: an instant already passed is 1 ns away.
            Some(at) => self.arm(
                at.saturating_duration_since(Instant::now())
                    .max(Duration::from_nanos(1)),
                Duration::ZERO,
            ),
            None => self.arm(Duration::ZERO, Duration::ZERO),
        }
    }

    /// Waits until the timer fires.
    pub async fn fired(&mut self) -> io::Result<()> {
        loop {
            let mut guard = self.fd.readable().await?;
            let mut expirations = [0u8; 8];
            match rustix::io::read(guard.get_inner(), &mut expirations) {
                Ok(_) => {
                    // The read reset the count: not ready until it fires
                    // again (clearing here saves a read that would fail;
                    // a firing since the guard was made is not lost).
                    guard.clear_ready();
                    self.due = None;
                    return Ok(());
                }
                Err(rustix::io::Errno::AGAIN) => guard.clear_ready(),
                Err(e) => return Err(e.into()),
            }
        }
    }
}
