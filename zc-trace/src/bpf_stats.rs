//! The kernel's BPF run-time statistics, kept on all run long or only in
//! short windows.
//!
//! BPF_ENABLE_STATS makes every run of every BPF program read the clock
//! twice (~40 ns on a VM with retpolines), and sys_exit runs for every
//! syscall of every process on the machine: kept on, the statistics alone
//! would cost the whole machine more than the probes' own filter. By
//! default they are on DUTY of the time (1%), in windows: the first WINDOW
//! (10 ms) long as the probes go live (a run shorter than that is measured
//! exactly), each next one twice as long, up to MAX_WINDOW (1 s). The
//! programs' run counts and run times are read as each window opens and
//! closes, and what they grew by inside the windows, scaled by the time
//! the probes were live over the time the statistics were on, estimates
//! the whole run. (Only the windows count: another tool may turn the
//! statistics on too, since they are global.) The syscall probes run once
//! per call of a traced process, which zc-trace counts exactly: only their
//! runs for other processes are scaled, and their time is their time per
//! run in the windows times the runs so estimated.
//!
//! Windows grow because each costs the same whatever its length: two
//! readings of every program's figures, and two rewrites of the kernel's
//! code (the statistics are a static key, patched on every CPU as they go
//! on and off): ~0.4 ms of CPU a window on a 2-CPU VM. 10 ms windows twice
//! a second cost the collector ~0.8 ms/s; these cost ~0.2 ms/s in the
//! first seconds and ~0.005 ms/s after two minutes. (At 2% they were half
//! of the collector's CPU in its first seconds once sampling the timeline
//! backed off while idle: 0.4 of 0.6 ms/s.) The first is short all
//! the same: whatever runs beside zc-trace as it starts would otherwise
//! pay the statistics' clock reads on every syscall for its length (a
//! getppid loop started beside it took 1.49x its time alone with a 50 ms
//! first window, against 1.16x with no statistics). A window opens at a
//! timeline sample's wakeup when one comes before it is due.

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use crate::{loader::Probes, model::report::Cost};

/// How long the first window of statistics is meant to last ...
pub const WINDOW: Duration = Duration::from_millis(10);
/// ... each next one twice as long, up to this.
pub const MAX_WINDOW: Duration = Duration::from_secs(1);
/// The share of the run the statistics are on. A window that closes late
/// (a busy machine wakes the collector late) is followed by a longer gap,
/// so the share holds.
pub const DUTY: f64 = 0.01;

/// How the probes' own cost is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatsMode {
    /// Not at all (--no-cost).
    Off,
    /// In windows, DUTY of the time, scaled (the default).
    Sampled,
    /// All run long: exact counts and times (--exact-cost).
    Always,
}

impl StatsMode {
    pub fn name(self) -> &'static str {
        match self {
            StatsMode::Off => "off",
            StatsMode::Sampled => "sampled",
            StatsMode::Always => "always",
        }
    }
}

/// The statistics' on/off schedule for one run of `probes`.
pub struct StatsWindows<'p> {
    probes: &'p Probes,
    mode: StatsMode,
    /// Open while the statistics are on: BPF_ENABLE_STATS is
    /// reference-counted and ends with the last fd, so nothing needs
    /// restoring, even after a crash.
    fd: Option<OwnedFd>,
    /// When the probes went live (the windows' schedule starts there).
    live_since: Instant,
    /// When the current window opened.
    opened: Instant,
    /// When the last window closed, and how long it had been open.
    closed: Instant,
    last_len: Duration,
    /// How long the current or next window is meant to last.
    window: Duration,
    /// Time the statistics were on, windows closed so far.
    on: Duration,
    /// Whether the kernel ever turned them on for us.
    enabled: bool,
    /// The programs' figures as the current window opened.
    at_open: Cost,
    /// What they grew by in the windows closed so far.
    in_windows: Cost,
    /// Calls of the traced processes (exactly counted) as the current
    /// window opened, and in the windows closed so far.
    traced_at_open: u64,
    traced_in_windows: u64,
}

impl<'p> StatsWindows<'p> {
    /// Starts the schedule as the probes go live: on now unless `Off`.
    pub fn start(mode: StatsMode, probes: &'p Probes) -> Self {
        let now = Instant::now();
        let mut w = StatsWindows {
            probes,
            mode,
            fd: None,
            live_since: now,
            opened: now,
            closed: now,
            last_len: Duration::ZERO,
            window: WINDOW,
            on: Duration::ZERO,
            enabled: false,
            at_open: Cost::default(),
            in_windows: Cost::default(),
            traced_at_open: 0,
            traced_in_windows: 0,
        };
        if mode != StatsMode::Off {
            w.open(0);
        }
        w
    }

    /// When the statistics go on or off next; None when they never will.
    pub fn next_toggle(&self) -> Option<Instant> {
        if self.mode != StatsMode::Sampled || !self.enabled {
            return None;
        }
        Some(match self.fd {
            Some(_) => self.opened + self.window,
            None => self.closed + self.last_len.max(WINDOW).mul_f64(1.0 / DUTY - 1.0),
        })
    }

    /// Opens the next window now if it is due before `by` (the next
    /// sample): the sample's wakeup opens it, a few ms early, instead of a
    /// wakeup of its own.
    pub fn open_if_due_by(&mut self, by: Instant, traced: u64) {
        if self.fd.is_none() && self.next_toggle().is_some_and(|at| at <= by) {
            self.open(traced);
        }
    }

    /// Closes the open window or opens the next, as the schedule says;
    /// `traced` is the number of calls the traced processes made so far.
    pub fn toggle(&mut self, traced: u64) {
        if self.fd.is_some() {
            self.close(traced);
        } else {
            self.open(traced);
        }
    }

    fn open(&mut self, traced: u64) {
        self.fd = aya::sys::enable_stats(aya::sys::Stats::RunTime).ok();
        self.opened = Instant::now();
        self.enabled |= self.fd.is_some();
        self.at_open = self.probes.cost();
        self.traced_at_open = traced;
    }

    fn close(&mut self, traced: u64) {
        if self.fd.is_none() {
            return;
        }
        self.in_windows
            .add_growth(&self.probes.cost(), &self.at_open);
        self.traced_in_windows += traced.saturating_sub(self.traced_at_open);
        self.fd = None;
        self.closed = Instant::now();
        self.last_len = self.closed - self.opened;
        self.on += self.last_len;
        self.window = (self.window * 2).min(MAX_WINDOW);
    }

    /// Ends the schedule: the run's cost as the windows saw it, scaled
    /// up to the whole run when they were sampled. `traced` is the number
    /// of calls the traced processes made in the whole run.
    pub fn finish(mut self, traced: u64) -> Cost {
        self.close(traced);
        self.so_far(traced)
    }

    /// The run's cost until now, as `finish` would give it (an open
    /// window counts up to now): what the exporter reports while it runs.
    pub fn so_far(&self, traced: u64) -> Cost {
        let mut cost = self.in_windows.clone();
        let mut on = self.on;
        let mut traced_seen = self.traced_in_windows;
        if self.fd.is_some() {
            cost.add_growth(&self.probes.cost(), &self.at_open);
            on += self.opened.elapsed();
            traced_seen += traced.saturating_sub(self.traced_at_open);
        }
        let live = self.live_since.elapsed();
        cost.bpf_stats = self.enabled;
        cost.bpf_stats_mode = self.mode.name().to_owned();
        cost.bpf_stats_on_ns = on.as_nanos() as u64;
        cost.bpf_stats_live_ns = live.as_nanos() as u64;
        if self.mode == StatsMode::Sampled && self.enabled {
            let factor = live.as_secs_f64() / on.as_secs_f64().max(1e-9);
            cost.scale(factor, traced, traced_seen);
        }
        cost
    }
}
