//! When to fold exited processes out of the per-process maps. A fold
//! reads every row in the maps, the live processes' too, so folding once a
//! second whatever waited made the collector's CPU grow with the processes
//! alive (10,000 of them and 10 exits a second: 12-35 ms/s). A fold is due
//! when the rows waiting are worth the scan, would crowd the maps, or have
//! waited long; never more often than once a second (the fixed cost of a
//! fold is then shared by all that exited in it).

use std::time::{Duration, Instant};

use crate::loader::Rows;

/// Folds are at least this far apart ...
const FOLD_EVERY: Duration = Duration::from_secs(1);
/// ... unless this many exited processes wait (bounds what they take).
const FOLD_AT: usize = 1024;
/// Exited processes wait at most this long.
const MAX_WAIT: Duration = Duration::from_secs(30);
/// A fold may read up to this many rows of live processes per row it
/// folds: reading a row costs a fraction of deleting one, so the scan
/// at most doubles the fold's cost per exited process.
const SCAN_SHARE: usize = 4;
/// Syscall rows of an exited process until the first fold measures them.
const FIRST_GUESS_ROWS: f64 = 16.0;

#[derive(Debug)]
pub struct FoldSchedule {
    /// What the per-process maps hold.
    capacity: Rows,
    last: Instant,
    /// Rows the last fold left in the maps (the live processes'): syscall
    /// rows, and event rows (one per process).
    stats_left: usize,
    events_left: usize,
    /// Syscall rows per folded process, on average.
    rows_per_process: f64,
    folded: usize,
    folded_rows: usize,
}

impl FoldSchedule {
    pub fn new(now: Instant, capacity: Rows) -> Self {
        Self {
            capacity,
            last: now,
            stats_left: 0,
            events_left: 0,
            rows_per_process: FIRST_GUESS_ROWS,
            folded: 0,
            folded_rows: 0,
        }
    }

    /// Whether `waiting` exited processes should be folded at `now`.
    pub fn due(&self, waiting: usize, now: Instant) -> bool {
        if waiting == 0 {
            return false;
        }
        if waiting >= FOLD_AT {
            return true;
        }
        let waited = now.saturating_duration_since(self.last);
        if waited < FOLD_EVERY {
            return false;
        }
        let rows = (waiting as f64 * self.rows_per_process) as usize;
        let worth_the_scan = (rows + waiting) * SCAN_SHARE >= self.stats_left + self.events_left;
        let crowding = rows >= room(self.capacity.stats, self.stats_left) / 2
            || waiting >= room(self.capacity.processes, self.events_left) / 2;
        worth_the_scan || crowding || waited >= MAX_WAIT
    }

    /// A fold at `now` moved `processes` with `rows` syscall rows out of
    /// the maps and left the live processes' rows.
    pub fn folded(
        &mut self,
        now: Instant,
        processes: usize,
        rows: usize,
        stats_left: usize,
        events_left: usize,
    ) {
        self.last = now;
        self.stats_left = stats_left;
        self.events_left = events_left;
        self.folded += processes;
        self.folded_rows += rows;
        if self.folded > 0 {
            self.rows_per_process = self.folded_rows as f64 / self.folded as f64;
        }
    }
}

/// Free rows in a map of `capacity` rows holding `used`.
fn room(capacity: u32, used: usize) -> usize {
    (capacity as usize).saturating_sub(used)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: Rows = Rows {
        stats: 65_536,
        processes: 16_384,
    };

    fn after(s: &FoldSchedule, d: Duration) -> Instant {
        s.last + d
    }

    #[test]
    fn churn_folds_once_a_second() {
        // A shell starting short-lived processes: few live rows.
        let mut s = FoldSchedule::new(Instant::now(), FULL);
        s.folded(s.last, 800, 800 * 19, 40, 2);
        assert!(!s.due(0, after(&s, Duration::from_secs(5))));
        assert!(!s.due(80, after(&s, Duration::from_millis(500))));
        assert!(s.due(80, after(&s, FOLD_EVERY)));
        assert!(s.due(1, after(&s, FOLD_EVERY)));
        assert!(s.due(FOLD_AT, after(&s, Duration::ZERO)));
    }

    #[test]
    fn many_live_processes_wait_for_enough_exits() {
        // 10,000 live processes with 3 rows each, 10 exits a second.
        let mut s = FoldSchedule::new(Instant::now(), FULL);
        s.folded(s.last, 10, 30, 30_000, 10_000);
        assert!(!s.due(10, after(&s, FOLD_EVERY)));
        assert!(!s.due(290, after(&s, Duration::from_secs(29))));
        assert!(s.due(300, after(&s, MAX_WAIT)));
    }

    #[test]
    fn enough_exits_are_worth_reading_the_live_rows() {
        // 1,000 live processes with 3 rows each.
        let mut s = FoldSchedule::new(Instant::now(), FULL);
        s.folded(s.last, 10, 30, 3_000, 1_000);
        assert!(!s.due(200, after(&s, FOLD_EVERY)));
        assert!(s.due(250, after(&s, FOLD_EVERY)));
    }

    #[test]
    fn maps_near_full_fold_sooner() {
        let mut s = FoldSchedule::new(Instant::now(), FULL);
        s.folded(s.last, 10, 100, 60_000, 1_000);
        // 5,536 rows free: 300 processes of 10 rows take more than half.
        assert!(s.due(300, after(&s, FOLD_EVERY)));
        assert!(!s.due(200, after(&s, FOLD_EVERY)));
    }
}
