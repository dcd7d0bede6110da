//! Chart 3, the syscalls: calls, bytes and on-CPU time of the busiest
//! syscalls, grouped by class in the order of the summary (copying,
//! zero-copy, mapping, other) and coloured by it; then the io_uring
//! requests by opcode, as in the summary's last group.

use anyhow::Result;
use plotters::prelude::*;

use super::draw::{Bar, Bars, footer, hbars, header, legend, message};
use super::palette::{REST, class_colour, class_rank};
use super::{Area, title, units};
use crate::model::report::{Counts, Report, SyscallEntry, Timing};
use crate::render::format::{bytes, call_time, duration_ns, grouped};
use zc_trace_common::syscalls::Class;

pub const NAME: &str = "Syscalls";

/// Rows drawn in a panel before the rest are summed into one.
pub const TOP: usize = 20;

/// A syscall row: its name and entry.
pub type Row<'a> = (&'a str, &'a SyscallEntry);

/// The figure a panel plots. Each panel ranks the syscalls by its own
/// figure, so the time panel shows the calls that took the time, not the
/// most frequent ones with the time summed away in "+ N more".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Figure {
    Calls,
    Bytes,
    /// On-CPU time in the calls: their cost.
    Time,
    /// Wall time, for reports made before on-CPU time was measured.
    Wall,
}

impl Figure {
    pub fn of(self, c: &Counts) -> u64 {
        match self {
            Figure::Calls => c.count,
            Figure::Bytes => c.bytes,
            Figure::Time => c.on_cpu_ns,
            Figure::Wall => c.time_ns,
        }
    }

    fn text(self, v: u64) -> String {
        match self {
            Figure::Calls => grouped(v),
            Figure::Bytes => bytes(v),
            Figure::Time | Figure::Wall => duration_ns(v),
        }
    }

    fn scale(self, max: f64) -> units::Scale {
        match self {
            Figure::Calls => units::count(max),
            Figure::Bytes => units::bytes(max),
            Figure::Time | Figure::Wall => units::nanos(max),
        }
    }

    fn caption(self) -> &'static str {
        match self {
            Figure::Calls => "Calls",
            Figure::Bytes => "Bytes",
            Figure::Time => "On-CPU time in the kernel",
            Figure::Wall => "Wall time in the kernel",
        }
    }

    fn axis(self) -> &'static str {
        match self {
            Figure::Calls => "calls",
            Figure::Bytes => "bytes returned",
            Figure::Time => "on-CPU time (wall minus blocked or waiting)",
            Figure::Wall => "wall time (blocked time included)",
        }
    }

    /// What a panel with no row says instead.
    fn none(self) -> &'static str {
        match self {
            Figure::Calls => "no syscalls",
            Figure::Bytes => "no syscall moved bytes",
            Figure::Time | Figure::Wall => "calls were not timed",
        }
    }
}

/// The rows of a panel: the `TOP` syscalls with the largest non-zero
/// `figure`, grouped by class, then the sum of the other non-zero rows (if
/// any) with how many syscalls it stands for.
pub fn rows(r: &Report, figure: Figure) -> (Vec<Row<'_>>, Option<(usize, Counts)>) {
    let mut all: Vec<Row<'_>> = r
        .syscalls
        .iter()
        .map(|(n, e)| (n.as_str(), e))
        .filter(|(_, e)| figure.of(&e.counts) > 0)
        .collect();
    let value = |row: &Row<'_>| figure.of(&row.1.counts);
    all.sort_by(|a, b| value(b).cmp(&value(a)).then(a.0.cmp(b.0)));
    let rest = (all.len() > TOP).then(|| {
        let mut sum = Counts::default();
        all[TOP..].iter().for_each(|(_, e)| sum += e.counts);
        (all.len() - TOP, sum)
    });
    all.truncate(TOP);
    all.sort_by(|a, b| {
        class_rank(a.1.class)
            .cmp(&class_rank(b.1.class))
            .then(value(b).cmp(&value(a)))
            .then(a.0.cmp(b.0))
    });
    (all, rest)
}

/// io_uring opcodes drawn at most.
pub const TOP_REQUESTS: usize = 8;

/// The io_uring requests' rows, "io_uring OPCODE", busiest first: the same
/// in every panel, below the syscalls.
pub fn requests(r: &Report) -> Vec<(String, &SyscallEntry)> {
    let mut all: Vec<(String, &SyscallEntry)> = r
        .io_uring
        .iter()
        .map(|(op, e)| (format!("io_uring {op}"), e))
        .collect();
    all.sort_by(|a, b| b.1.counts.count.cmp(&a.1.counts.count).then(a.0.cmp(&b.0)));
    all.truncate(TOP_REQUESTS);
    all
}

/// The bars of one panel, with the rest summed last.
fn bars(r: &Report, figure: Figure) -> (Vec<Bar>, Option<usize>) {
    let (top, rest) = rows(r, figure);
    let mut bars: Vec<Bar> = top
        .iter()
        .map(|(name, e)| {
            let v = figure.of(&e.counts);
            Bar::single(*name, v as f64, class_colour(e.class), figure.text(v))
        })
        .collect();
    if let Some((n, c)) = &rest {
        let v = figure.of(c);
        bars.push(Bar::single(
            format!("+ {n} more"),
            v as f64,
            REST,
            figure.text(v),
        ));
    }
    // Blank rows below, so rows are as tall in a panel of three as in a
    // panel of twenty and the panels read side by side.
    let full = bars.len().max(TOP + 1);
    bars.resize_with(full, || Bar::single("", 0.0, REST, ""));
    // A request's time is not measured: its row shows "-".
    for (name, e) in requests(r) {
        let (v, text) = match figure {
            Figure::Time => (0, "-".to_owned()),
            _ => (figure.of(&e.counts), figure.text(figure.of(&e.counts))),
        };
        bars.push(Bar::single(name, v as f64, class_colour(e.class), text));
    }
    (bars, rest.map(|(n, _)| n))
}

pub fn draw<DB: DrawingBackend>(root: &Area<DB>, r: &Report) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let t = &r.totals;
    let mut subtitle = format!(
        "{} distinct syscalls, {} calls ({} failed); time in syscalls: {}",
        r.syscalls.len(),
        grouped(t.syscalls),
        grouped(t.errors),
        call_time(t, r.timing)
    );
    if r.syscalls.len() > TOP {
        subtitle += &format!("; each panel shows its own top {TOP}, grouped by class");
    }
    if !r.io_uring.is_empty() {
        subtitle += "; then io_uring requests by opcode (time not measured)";
    }
    let body = header(root, &title(NAME, r), &subtitle)?;
    if r.syscalls.is_empty() {
        return message(
            &body,
            "No syscalls were traced",
            &["The target made no system call while it was traced.".to_owned()],
        );
    }

    let (main, foot) = footer(&body, 34);
    let panels = main.split_evenly((1, 3));
    let mut summed = false;
    let time = if r.timing == Timing::WallOnly {
        Figure::Wall
    } else {
        Figure::Time
    };
    for (figure, area) in [Figure::Calls, Figure::Bytes, time]
        .into_iter()
        .zip(panels.iter())
    {
        let (bars, rest) = bars(r, figure);
        summed |= rest.is_some();
        if bars.iter().all(|b| b.label.is_empty()) {
            message(area, figure.caption(), &[figure.none().to_owned()])?;
            continue;
        }
        let max = bars.iter().map(|b| b.parts[0].0).fold(0.0, f64::max);
        hbars(
            area,
            &Bars {
                caption: figure.caption(),
                bars: &bars,
                scale: figure.scale(max),
                axis: figure.axis(),
                label_width: 130,
            },
        )?;
    }

    // The legend names only the classes present, so it never promises a
    // colour the chart does not show.
    let mut items: Vec<(String, RGBColor)> = Class::ALL
        .into_iter()
        .filter(|class| {
            (r.syscalls.values())
                .chain(r.io_uring.values())
                .any(|e| e.class == *class)
        })
        .map(|class| (class.look().legend.to_owned(), class_colour(class)))
        .collect();
    if summed {
        items.push(("the rest of a panel, summed".to_owned(), REST));
    }
    legend(&foot, &items)?;
    Ok(())
}
