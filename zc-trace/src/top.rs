//! `zc-trace top`: a live terminal view (ratatui) of the processes or
//! cgroups that copy the most, refreshed every interval. Keys: c z s f sort
//! by CPU-copied bytes/s, zero-copy share, syscalls/s, faults/s; g switches
//! between processes and cgroups; p pauses; q (or Esc, Ctrl-C) quits.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Result;
use ratatui::{
    Frame,
    crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers},
    layout::{Constraint, Layout},
    style::{Modifier, Style},
    text::Line,
    widgets::{Cell, Row as TableRow, Table},
};

use crate::{
    cgroup::Names,
    cli::{TargetSpec, TopArgs},
    collector::Collector,
    model::{
        ledger::totals_of_rows,
        rates::{self, Row, SortKey},
        report::Totals,
    },
    render::format::{bytes, printable},
    session,
};

/// Who a row is: a process (pid, name) or a cgroup path.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    Process(u32, String),
    Cgroup(String),
}

fn label(k: &Key) -> String {
    match k {
        Key::Process(pid, comm) => format!("{pid} {comm}"),
        Key::Cgroup(path) => path.clone(),
    }
}

/// The cumulative counters of every process and cgroup, read each tick.
struct Snapshots {
    names: Names,
    /// Exited processes' totals, by cgroup (a cgroup's sum must not drop
    /// when one of its processes exits).
    folded_by_cgroup: BTreeMap<String, Totals>,
}

impl Snapshots {
    fn cgroup_path(&mut self, id: u64) -> String {
        match id {
            0 => "(unknown)".into(),
            id => self.names.path(id),
        }
    }

    fn take(&mut self, collector: &mut Collector) -> Result<BTreeMap<Key, Totals>> {
        let (folded, live) = collector.snapshot()?;
        self.names.forget_misses();
        let mut out = BTreeMap::new();
        for p in folded {
            let t = totals_of_rows(&p.syscalls, &p.events);
            let path = self.cgroup_path(p.identity.cgroup);
            *self.folded_by_cgroup.entry(path).or_default() += t;
            // Its last interval still shows, once.
            out.insert(Key::Process(p.pid, p.identity.comm.clone()), t);
        }
        for (path, t) in &self.folded_by_cgroup {
            out.insert(Key::Cgroup(path.clone()), *t);
        }
        for p in live {
            let t = totals_of_rows(&p.syscalls, &p.events);
            let path = self.cgroup_path(p.identity.cgroup);
            *out.entry(Key::Cgroup(path)).or_default() += t;
            out.insert(Key::Process(p.pid, p.identity.comm.clone()), t);
        }
        Ok(out)
    }
}

/// What the screen shows.
struct View {
    what: String,
    sort: SortKey,
    cgroups: bool,
    paused: bool,
    rows: Vec<Row>,
    interval: Duration,
}

impl View {
    /// Handles a key; false to quit.
    fn key(&mut self, code: KeyCode, mods: KeyModifiers) -> bool {
        match code {
            KeyCode::Char('q') | KeyCode::Esc => return false,
            KeyCode::Char('c') if mods.contains(KeyModifiers::CONTROL) => return false,
            KeyCode::Char('p') | KeyCode::Char(' ') => self.paused = !self.paused,
            KeyCode::Char('g') => self.cgroups = !self.cgroups,
            KeyCode::Char(c) => {
                if let Some(k) = SortKey::from_key(c) {
                    self.sort = k;
                    rates::sort(&mut self.rows, k);
                }
            }
            _ => {}
        }
        true
    }

    fn draw(&self, f: &mut Frame) {
        let [head, keys, table] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Length(1),
            Constraint::Min(1),
        ])
        .areas(f.area());
        let state = if self.paused { "  PAUSED" } else { "" };
        f.render_widget(
            Line::from(format!(
                "zc-trace top: {}, every {:?}, by {}{state}",
                printable(&self.what),
                self.interval,
                self.sort.name()
            ))
            .style(Style::new().add_modifier(Modifier::BOLD)),
            head,
        );
        f.render_widget(
            Line::from("sort: c copied z zero-copy s syscalls f faults  g groups  p pause  q quit"),
            keys,
        );
        let header = TableRow::new([
            if self.cgroups {
                "cgroup"
            } else {
                "pid process"
            },
            "copied/s",
            "zc share",
            "syscalls/s",
            "faults/s",
        ])
        .style(Style::new().add_modifier(Modifier::REVERSED));
        let rows = self.rows.iter().map(|r| {
            TableRow::new([
                Cell::from(printable(&r.label).into_owned()),
                Cell::from(bytes(r.copied_per_s as u64)),
                Cell::from(format!("{:.0}%", 100.0 * r.zero_copy_share())),
                Cell::from(format!("{:.0}", r.syscalls_per_s)),
                Cell::from(format!("{:.0}", r.faults_per_s)),
            ])
        });
        let widths = [
            Constraint::Fill(1),
            Constraint::Length(11),
            Constraint::Length(8),
            Constraint::Length(10),
            Constraint::Length(9),
        ];
        f.render_widget(Table::new(rows, widths).header(header), table);
    }
}

/// Restores the terminal however `run` ends.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

pub fn run(args: &TopArgs) -> Result<u8> {
    let spec = args.target()?;
    // The probes stay attached while `_probes` lives.
    let session::Loaded {
        probes: _probes,
        mut collector,
        ..
    } = session::load(&spec, args.follow_forks, false, || Ok(()))?;
    collector.sum_by_cgroup();
    collector.keep_live();
    if let TargetSpec::Attach(pids) = &spec {
        session::attach_all(pids, &mut collector, &mut BTreeMap::new())?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [libc::SIGTERM, libc::SIGHUP] {
        let stop = Arc::clone(&stop);
        // SAFETY: the handler only stores to an atomic.
        let _ = unsafe {
            signal_hook_registry::register(sig, move || stop.store(true, Ordering::Relaxed))
        };
    }
    let mut snaps = Snapshots {
        names: Names::default(),
        folded_by_cgroup: BTreeMap::new(),
    };
    let mut view = View {
        what: match &spec {
            TargetSpec::Cgroup(dir) => format!("cgroup {}", dir.display()),
            TargetSpec::Attach(pids) => format!("pid {pids:?}"),
            _ => "the whole machine".into(),
        },
        sort: SortKey::default(),
        cgroups: false,
        paused: false,
        rows: Vec::new(),
        interval: args.interval,
    };
    let mut terminal = ratatui::init();
    let _restore = Restore;
    let mut before = snaps.take(&mut collector)?;
    let mut at = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        terminal.draw(|f| view.draw(f))?;
        let wait = args.interval.saturating_sub(at.elapsed());
        if event::poll(wait.min(Duration::from_millis(250)))? {
            if let Event::Key(k) = event::read()? {
                if k.kind == KeyEventKind::Press && !view.key(k.code, k.modifiers) {
                    break;
                }
            }
            continue;
        }
        if at.elapsed() < args.interval {
            continue;
        }
        let now = snaps.take(&mut collector)?;
        let secs = at.elapsed().as_secs_f64();
        at = Instant::now();
        if !view.paused {
            let wanted = |k: &Key| matches!(k, Key::Cgroup(_)) == view.cgroups;
            let pick = |m: &BTreeMap<Key, Totals>| -> BTreeMap<Key, Totals> {
                m.iter()
                    .filter(|(k, _)| wanted(k))
                    .map(|(k, t)| (k.clone(), *t))
                    .collect()
            };
            view.rows = rates::rows(&pick(&before), &pick(&now), secs, label);
            rates::sort(&mut view.rows, view.sort);
        }
        before = now;
    }
    Ok(0)
}
