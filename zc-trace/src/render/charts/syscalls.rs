//! Chart 3, the syscalls: calls, bytes and kernel time of the busiest
//! syscalls, grouped by class in the order of the summary (copying,
//! zero-copy, mapping, other) and coloured by it.

use anyhow::Result;
use plotters::prelude::*;

use super::draw::{Bar, Bars, footer, hbars, header, legend, message};
use super::palette::{REST, class_colour, class_rank};
use super::{Area, title, units};
use crate::model::report::{Counts, Report, SyscallEntry};
use crate::render::format::{bytes, duration_ns, grouped};
use zc_trace_common::syscalls::Class;

pub const NAME: &str = "Syscalls";

/// Rows drawn before the rest are summed into one.
pub const TOP: usize = 20;

/// A syscall row: its name and entry.
pub type Row<'a> = (&'a str, &'a SyscallEntry);

/// The rows: the `TOP` syscalls by calls, grouped by class, then the sum of
/// the rest (if any) with how many syscalls it stands for.
pub fn rows(r: &Report) -> (Vec<Row<'_>>, Option<(usize, Counts)>) {
    let mut all: Vec<Row<'_>> = r.syscalls.iter().map(|(n, e)| (n.as_str(), e)).collect();
    all.sort_by(|a, b| b.1.counts.count.cmp(&a.1.counts.count).then(a.0.cmp(b.0)));
    let rest = (all.len() > TOP).then(|| {
        let mut sum = Counts::default();
        all[TOP..].iter().for_each(|(_, e)| sum += e.counts);
        (all.len() - TOP, sum)
    });
    all.truncate(TOP);
    all.sort_by(|a, b| {
        class_rank(a.1.class)
            .cmp(&class_rank(b.1.class))
            .then(b.1.counts.count.cmp(&a.1.counts.count))
            .then(a.0.cmp(b.0))
    });
    (all, rest)
}

pub fn draw<DB: DrawingBackend>(root: &Area<DB>, r: &Report) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let t = &r.totals;
    let (top, rest) = rows(r);
    let mut subtitle = format!(
        "{} distinct syscalls, {} calls ({} failed), {} in the kernel",
        r.syscalls.len(),
        grouped(t.syscalls),
        grouped(t.errors),
        duration_ns(t.time_ns)
    );
    if rest.is_some() {
        subtitle += &format!("; the {TOP} most called, grouped by class");
    }
    let body = header(root, &title(NAME, r), &subtitle)?;
    if top.is_empty() {
        return message(
            &body,
            "No syscalls were traced",
            &["The target made no system call while it was traced.".to_owned()],
        );
    }

    let rest_label = |n: usize| format!("+ {n} more syscalls");
    let bar = |label: String, colour, v: f64, value: String| Bar::single(label, v, colour, value);
    let mut calls = Vec::new();
    let mut moved = Vec::new();
    let mut time = Vec::new();
    for (name, e) in &top {
        let c = &e.counts;
        let colour = class_colour(e.class);
        calls.push(bar(
            name.to_string(),
            colour,
            c.count as f64,
            grouped(c.count),
        ));
        // An "other" call that moved nothing gets no byte label: "0 B" on
        // every close() would only be noise.
        let label = if e.class == Class::Other && c.bytes == 0 {
            String::new()
        } else {
            bytes(c.bytes)
        };
        moved.push(bar(name.to_string(), colour, c.bytes as f64, label));
        time.push(bar(
            name.to_string(),
            colour,
            c.time_ns as f64,
            duration_ns(c.time_ns),
        ));
    }
    if let Some((n, c)) = &rest {
        calls.push(bar(rest_label(*n), REST, c.count as f64, grouped(c.count)));
        moved.push(bar(rest_label(*n), REST, c.bytes as f64, bytes(c.bytes)));
        time.push(bar(
            rest_label(*n),
            REST,
            c.time_ns as f64,
            duration_ns(c.time_ns),
        ));
    }

    let (main, foot) = footer(&body, 34);
    let (left, right) = main.split_horizontally(500);
    let (middle, right) = right.split_horizontally(390);
    let max = |bars: &[Bar]| bars.iter().map(|b| b.parts[0].0).fold(0.0, f64::max);
    hbars(
        &left,
        &Bars {
            caption: "Calls",
            bars: &calls,
            scale: units::count(max(&calls)),
            axis: "calls",
            label_width: 170,
        },
    )?;
    hbars(
        &middle,
        &Bars {
            caption: "Bytes",
            bars: &moved,
            scale: units::bytes(max(&moved)),
            axis: "bytes returned",
            label_width: 0,
        },
    )?;
    hbars(
        &right,
        &Bars {
            caption: "Time in the kernel",
            bars: &time,
            scale: units::nanos(max(&time)),
            axis: "time in the kernel",
            label_width: 0,
        },
    )?;

    // The legend names only the classes present, so it never promises a
    // colour the chart does not show.
    let mut items: Vec<(String, RGBColor)> = Class::ALL
        .into_iter()
        .filter(|class| top.iter().any(|(_, e)| e.class == *class))
        .map(|class| (class.look().legend.to_owned(), class_colour(class)))
        .collect();
    if let Some((n, _)) = rest {
        items.push((format!("{n} less-called syscalls, summed"), REST));
    }
    legend(&foot, &items)?;
    Ok(())
}
