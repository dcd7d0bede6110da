//! Chart 5, latency: how long calls spent in the kernel, as the in-kernel
//! log2 histograms of the busiest I/O syscalls, one panel each on a shared
//! time axis so their shapes compare at a glance.

use anyhow::Result;
use plotters::prelude::*;

use super::draw::{CAPTION_SIZE, LABEL_SIZE, font, footer, header, legend, message, muted};
use super::palette::{AXIS, BACKGROUND, GRID, class_colour, class_rank};
use super::{Area, title, units};
use crate::model::report::Report;
use crate::render::format::{duration_ns, grouped};
use zc_trace_common::syscalls::Class;

pub const NAME: &str = "Latency";

/// Panels drawn at most (2 rows of 3).
pub const TOP: usize = 6;

/// The syscalls to draw: those with a histogram, I/O classes first (the
/// copying, zero-copy and mapping calls are what this tool is about), then
/// by calls.
pub fn chosen(r: &Report) -> Vec<(&str, &[u64])> {
    let mut rows: Vec<(&str, &[u64])> = r
        .latency
        .iter()
        .filter(|(_, b)| b.iter().any(|&n| n > 0))
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let class = |name: &str| class_of(r, name);
    let io = |name: &str| class(name) != Class::Other;
    let calls = |b: &[u64]| b.iter().sum::<u64>();
    rows.sort_by(|a, b| {
        io(b.0)
            .cmp(&io(a.0))
            .then(calls(b.1).cmp(&calls(a.1)))
            .then(a.0.cmp(b.0))
    });
    rows.truncate(TOP);
    rows.sort_by(|a, b| {
        class_rank(class(a.0))
            .cmp(&class_rank(class(b.0)))
            .then(calls(b.1).cmp(&calls(a.1)))
    });
    rows
}

/// The class of syscall `name` in `r` (other when it has no row).
fn class_of(r: &Report, name: &str) -> Class {
    r.syscalls.get(name).map_or(Class::Other, |e| e.class)
}

/// The lower bound of bucket `b` (2^b ns) in human form: "256 ns", "1 us".
pub fn bucket_label(b: u32) -> String {
    let ns = 1u64 << b.min(63);
    // Powers of two are not round in decimal units: one significant figure
    // is enough to read an axis.
    let (v, unit) = match ns {
        n if n < 1_000 => (n as f64, "ns"),
        n if n < 1_000_000 => (n as f64 / 1e3, "us"),
        n if n < 1_000_000_000 => (n as f64 / 1e6, "ms"),
        n => (n as f64 / 1e9, "s"),
    };
    if v >= 10.0 {
        format!("{v:.0} {unit}")
    } else {
        format!("{v:.1} {unit}").replace(".0 ", " ")
    }
}

pub fn draw<DB: DrawingBackend>(root: &Area<DB>, r: &Report) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let rows = chosen(r);
    let subtitle = "wall time in the kernel per call (blocked time included), log2 buckets measured in kernel: a bar at 1 us counts calls of 1-2 us";
    let body = header(root, &title(NAME, r), subtitle)?;
    if rows.is_empty() {
        let why = if r.totals.syscalls == 0 {
            "No syscalls were traced.".to_owned()
        } else {
            "This run did not time its calls (--latency does), or the report predates latency histograms.".to_owned()
        };
        return message(&body, "No latency data", &[why]);
    }
    // One x range for all panels: from the fastest to the slowest bucket seen.
    let lo = rows
        .iter()
        .filter_map(|(_, b)| b.iter().position(|&n| n > 0))
        .min()
        .unwrap_or(0) as u32;
    let hi = rows
        .iter()
        .filter_map(|(_, b)| b.iter().rposition(|&n| n > 0))
        .max()
        .unwrap_or(0) as u32;
    let (lo, hi) = (lo.saturating_sub(1), (hi + 2).max(lo + 6));

    let (grid, foot) = footer(&body, 34);
    let cols = rows.len().min(3);
    let panels = grid.split_evenly((rows.len().div_ceil(3), cols));
    for ((name, buckets), area) in rows.iter().zip(panels.iter()) {
        let colour = class_colour(class_of(r, name));
        let calls: u64 = buckets.iter().sum();
        let peak = *buckets.iter().max().unwrap_or(&1) as f64;
        let scale = units::count(peak);
        let mut chart = ChartBuilder::on(area)
            .caption(
                format!("{name}: {} calls", grouped(calls)),
                font(CAPTION_SIZE - 2.0),
            )
            .margin(12)
            // Room for the last axis label, centred on the panel's edge.
            .margin_right(28)
            .x_label_area_size(34)
            .y_label_area_size(58)
            .build_cartesian_2d(lo as f64..hi as f64, 0.0..scale.apply(peak) * 1.15)?;
        let plot_px = chart.plotting_area().dim_in_pixel().0;
        let every = label_step(hi - lo, plot_px);
        let integer_ticks = scale.unit.is_empty();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(BACKGROUND)
            .bold_line_style(GRID)
            .axis_style(AXIS)
            // plotters may offer points between bucket edges: only edges
            // that are a multiple of `every` get a label, so labels never
            // run into each other however narrow the panel.
            .x_labels((hi - lo + 1) as usize)
            .x_label_formatter(&|x| {
                let b = x.round();
                if (x - b).abs() < 1e-6 && (b as u32).is_multiple_of(every) {
                    bucket_label(b.max(0.0) as u32)
                } else {
                    String::new()
                }
            })
            // Calls come in whole numbers: a small peak gets one tick per
            // call, never "0.5".
            .y_labels(if integer_ticks {
                (peak as usize + 1).min(6)
            } else {
                5
            })
            .y_label_formatter(&|y| {
                if integer_ticks && (y - y.round()).abs() > 1e-6 {
                    String::new()
                } else {
                    units::tick_in(*y, &scale)
                }
            })
            .label_style(font(LABEL_SIZE - 2.0))
            .draw()?;
        chart.draw_series(
            buckets
                .iter()
                .enumerate()
                .filter(|(_, n)| **n > 0)
                .map(|(b, n)| {
                    let x = b as f64;
                    Rectangle::new(
                        [(x + 0.08, 0.0), (x + 0.92, scale.apply(*n as f64))],
                        colour.filled(),
                    )
                }),
        )?;
        let entry = r.syscalls.get(*name);
        if let Some(e) = entry.filter(|e| e.counts.count > 0) {
            let avg = duration_ns(e.counts.time_ns / e.counts.count);
            let (w, _) = area.dim_in_pixel();
            area.draw_text(
                &format!("avg wall {avg}"),
                &muted(LABEL_SIZE - 1.0),
                (w as i32 - 140, 40),
            )?;
        }
    }
    let items: Vec<(String, RGBColor)> = Class::ALL
        .into_iter()
        .filter(|class| rows.iter().any(|(n, _)| class_of(r, n) == *class))
        .map(|class| (class.look().legend.to_owned(), class_colour(class)))
        .collect();
    legend(&foot, &items)?;
    Ok(())
}

/// Widest bucket label ("262 us") in pixels at the axis font, with a gap.
const LABEL_PX: u32 = 52;

/// Label every `step`-th bucket edge (an even step, so labels fall on the
/// same edges in every panel) such that `buckets` edges fit in `plot_px`.
pub fn label_step(buckets: u32, plot_px: u32) -> u32 {
    let fit = (plot_px / LABEL_PX).max(1);
    let step = buckets.div_ceil(fit).max(2);
    step + step % 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_spaced_to_fit_the_panel() {
        // 24 buckets in 330 px: 6 labels fit, so every 4th edge.
        assert_eq!(label_step(24, 330), 4);
        // A wide panel still labels every second edge at most.
        assert_eq!(label_step(8, 2000), 2);
        assert_eq!(label_step(40, 10), 40);
        for (buckets, px) in [(24, 330), (30, 250), (12, 700), (63, 400)] {
            let step = label_step(buckets, px);
            assert!(
                buckets / step * LABEL_PX <= px.max(LABEL_PX),
                "{buckets} in {px}: {step}"
            );
        }
    }

    #[test]
    fn bucket_labels_are_readable() {
        assert_eq!(bucket_label(0), "1 ns");
        assert_eq!(bucket_label(8), "256 ns");
        assert_eq!(bucket_label(10), "1 us");
        assert_eq!(bucket_label(20), "1 ms");
        assert_eq!(bucket_label(30), "1.1 s");
    }

    #[test]
    fn io_syscalls_come_first() {
        let mut r = Report::default();
        for (name, class, calls) in [
            ("read", "copy_to_user", 5),
            ("futex", "other", 500),
            ("sendfile", "zero_copy", 2),
        ] {
            r.syscalls.insert(
                name.into(),
                crate::model::report::SyscallEntry {
                    class: class.into(),
                    ..Default::default()
                },
            );
            let mut b = vec![0; 40];
            b[10] = calls;
            r.latency.insert(name.into(), b);
        }
        let names: Vec<&str> = chosen(&r).iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["read", "sendfile", "futex"]);
    }
}
