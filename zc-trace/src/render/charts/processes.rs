//! Chart 4, the processes: bytes by path for each traced process (stacked
//! in the ledger's colours) beside its syscall count.

use anyhow::Result;
use plotters::prelude::*;

use super::draw::{Bar, Bars, footer, hbars, header, legend, message};
use super::palette::{SYSCALLS, byte_colour, path_legend};
use super::{Area, title, units};
use crate::model::{
    bytes::ByteClass,
    report::{Process, Report, Totals},
};
use crate::render::format::{bytes, grouped};

pub const NAME: &str = "Processes";

/// Processes drawn before the rest are summed into one row.
pub const TOP: usize = 15;

/// Whether a process's bar has a part for `class`: the syscall classes'
/// columns, and the bytes that crossed the boundary without a CPU copy.
fn stacked(class: ByteClass) -> bool {
    class.always_shown() || class.look().crosses_boundary
}

/// The length of a process's stacked bar: every path drawn in it.
fn moved(t: &Totals) -> u64 {
    t.bytes.sum(stacked)
}

pub fn draw<DB: DrawingBackend>(root: &Area<DB>, r: &Report) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let mut procs: Vec<&Process> = r.processes.iter().collect();
    procs.sort_by(|a, b| {
        moved(&b.totals)
            .cmp(&moved(&a.totals))
            .then(b.totals.syscalls.cmp(&a.totals.syscalls))
            .then(a.pid.cmp(&b.pid))
    });
    let mut subtitle = format!("{} processes traced", r.processes.len());
    if procs.len() > TOP {
        subtitle += &format!("; the {TOP} that moved the most bytes, the rest summed");
    }
    subtitle += "; bytes stacked by path";
    let body = header(root, &title(NAME, r), &subtitle)?;
    if procs.is_empty() {
        return message(&body, "No process was traced", &[]);
    }

    let row = |label: String, t: &Totals| {
        let parts = ByteClass::ledger_order()
            .filter(|c| stacked(*c))
            .map(|c| (t.bytes.get(c) as f64, byte_colour(c)))
            .collect();
        (
            Bar {
                label: label.clone(),
                parts,
                value: bytes(moved(t)),
            },
            Bar::single(label, t.syscalls as f64, SYSCALLS, grouped(t.syscalls)),
        )
    };
    let mut rows: Vec<(Bar, Bar)> = procs
        .iter()
        .take(TOP)
        .map(|p| row(format!("{} ({})", p.comm, p.pid), &p.totals))
        .collect();
    if procs.len() > TOP {
        let mut sum = Totals::default();
        for p in &procs[TOP..] {
            sum += p.totals;
        }
        // Still split by path: the label says it is a sum.
        rows.push(row(format!("+ {} more processes", procs.len() - TOP), &sum));
    }
    let (by_path, calls): (Vec<Bar>, Vec<Bar>) = rows.into_iter().unzip();

    let (main, foot) = footer(&body, 34);
    let (left, right) = main.split_horizontally(850);
    let total = |b: &Bar| b.parts.iter().map(|p| p.0).sum::<f64>();
    let max_bytes = by_path.iter().map(total).fold(0.0, f64::max);
    let max_calls = calls.iter().map(total).fold(0.0, f64::max);
    hbars(
        &left,
        &Bars {
            caption: "Bytes by path",
            bars: &by_path,
            scale: units::bytes(max_bytes),
            axis: "bytes",
            label_width: 210,
        },
    )?;
    hbars(
        &right,
        &Bars {
            caption: "Syscalls",
            bars: &calls,
            scale: units::count(max_calls),
            axis: "calls",
            label_width: 0,
        },
    )?;
    let items = path_legend(ByteClass::shown(&r.totals.bytes).filter(|c| stacked(*c)));
    legend(&foot, &items)?;
    Ok(())
}
