//! The end of an attached run. A target's exit wakes a backed-off
//! collector (its exit probe counts), but that probe runs before the
//! kernel marks the process exited: /proc and its pidfd still say alive,
//! and the run would end one sample later. The pidfd of a traced process
//! found alive becomes readable when it has exited, and only then are the
//! others looked at, so the run ends as its last target does.

use std::os::fd::OwnedFd;

use anyhow::Result;
use tokio::io::unix::AsyncFd;

use crate::collector::Collector;

#[derive(Default)]
pub struct TargetWatch {
    pidfd: Option<AsyncFd<OwnedFd>>,
}

impl TargetWatch {
    /// Whether every target has exited; if not, watches one alive.
    pub fn all_exited(&mut self, collector: &mut Collector) -> Result<bool> {
        if !collector.any_target_alive() {
            return Ok(true);
        }
        if self.pidfd.is_none() {
            if let Some(fd) = collector.alive_target_pidfd()? {
                self.pidfd = Some(crate::readiness::readable(fd)?);
            }
        }
        Ok(false)
    }

    /// Waits until the watched process exits (never, with none watched).
    pub async fn exited(&mut self) -> Result<()> {
        match &self.pidfd {
            Some(fd) => {
                let _ready = fd.readable().await?;
                self.pidfd = None;
                Ok(())
            }
            None => std::future::pending().await,
        }
    }
}
