//! The probes' wakeup of a collector that backed off: while the counters
//! stand still the trace loop samples less often (session/cadence.rs) and
//! sets WAKE; the next count of a traced process clears it and sends a
//! record to WAKEUPS, whose readiness ends the wait. Nothing else is ever
//! sent there, so a run that never backs off never wakes on it.

use std::io;

use anyhow::{Context as _, Result};
use aya::maps::{Array, MapData, RingBuf};
use tokio::io::unix::AsyncFd;

pub struct WakeMaps {
    pub(super) flag: Array<MapData, u32>,
    pub(super) ring: RingBuf<MapData>,
}

pub struct Wakeups {
    flag: Array<MapData, u32>,
    ring: AsyncFd<RingBuf<MapData>>,
}

impl Wakeups {
    /// Needs the tokio runtime (with its I/O driver) entered.
    pub fn new(maps: WakeMaps) -> Result<Self> {
        let ring =
            crate::readiness::readable(maps.ring).context("cannot poll the probes' wakeup ring")?;
        Ok(Self {
            flag: maps.flag,
            ring,
        })
    }

    /// Asks the probes to wake the collector at the next count: at every
    /// sample taken while backed off (at most a few a second), so a
    /// wakeup the probes could not send (WAKE cleared, the record lost)
    /// costs one sample's wait, not the rest of the run's wakeups.
    pub fn ask(&mut self) -> Result<()> {
        self.flag
            .set(0, 1, 0)
            .context("cannot ask the probes for a wakeup (map WAKE)")
    }

    /// Waits for the probes' wakeup. Cancel-safe: a wakeup is not lost
    /// when another branch of the loop wins.
    pub async fn woken(&mut self) -> io::Result<()> {
        loop {
            let mut guard = self.ring.readable_mut().await?;
            let mut any = false;
            while guard.get_inner_mut().next().is_some() {
                any = true;
            }
            guard.clear_ready();
            if any {
                return Ok(());
            }
        }
    }
}
