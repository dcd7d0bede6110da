//! Chart 2, the timeline: rates over the run in stacked panels that share
//! one time axis. Rates come from `model::timeline::rates`; long runs are
//! first thinned to at most `MAX_INTERVALS` intervals by keeping every k-th
//! cumulative sample (and the last), so each drawn interval is the exact
//! average over the samples it spans and the totals are untouched.

use anyhow::Result;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::draw::{
    CAPTION_SIZE, LABEL_SIZE, font, footer, header, legend, legend_height, message, muted,
};
use super::palette::{AXIS, CONTEXT_SWITCHES, GRID, PAGE_FAULTS, SYSCALLS, byte_colour};
use super::units::{self, Scale, tick_in};
use super::{Area, title};
use crate::model::bytes::ByteClass;
use crate::model::report::{Report, TimelineSample};
use crate::model::timeline::{Rate, rates};
use crate::render::format::{duration_ns, grouped};

pub const NAME: &str = "Timeline";

/// Each interval is drawn as a flat step (two points), so this keeps a
/// series at 2,000 points or fewer.
pub const MAX_INTERVALS: usize = 1000;

const CAPTION_STRIP: u32 = 26;
/// Left edge of every plot: the panels share it so their time axes line up.
const PLOT_LEFT: i32 = 106;

/// Every k-th cumulative sample and the last, so that at most `max` remain;
/// returns them and k.
pub fn thin(samples: &[TimelineSample], max: usize) -> (Vec<TimelineSample>, usize) {
    let k = samples.len().div_ceil(max.max(1)).max(1);
    if k == 1 {
        return (samples.to_vec(), 1);
    }
    let mut out: Vec<TimelineSample> = samples.iter().skip(k - 1).step_by(k).copied().collect();
    if let Some(last) = samples.last()
        && out.last() != Some(last)
    {
        out.push(*last);
    }
    (out, k)
}

/// The median time between consecutive samples, if there are two.
pub fn median_spacing(samples: &[TimelineSample]) -> Option<u64> {
    let mut gaps: Vec<u64> = samples
        .windows(2)
        .map(|w| w[1].t_ns.saturating_sub(w[0].t_ns))
        .collect();
    if gaps.is_empty() {
        return None;
    }
    gaps.sort_unstable();
    Some(gaps[gaps.len() / 2])
}

/// One line of a panel: its legend label, colour and the rate it reads.
struct Series {
    label: String,
    colour: RGBColor,
    rate: Box<dyn Fn(&Rate) -> f64>,
}

struct Panel {
    caption: &'static str,
    series: Vec<Series>,
    bytes: bool,
}

pub fn draw<DB: DrawingBackend>(root: &Area<DB>, r: &Report) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let samples = &r.timeline.samples;
    let (thinned, k) = thin(samples, MAX_INTERVALS);
    let rates = rates(&thinned);
    let interval = r.timeline.interval_ns;
    let mut subtitle = format!(
        "{} {} of the cumulative counters",
        grouped(samples.len() as u64),
        if samples.len() == 1 {
            "sample"
        } else {
            "samples"
        },
    );
    // The spacing the samples really have: the collector may be late on a
    // busy machine, and the first sample comes when tracing starts.
    if let Some(median) = median_spacing(samples) {
        subtitle += &format!(", {} apart (median", duration_ns(median));
        if median.abs_diff(interval) > interval / 20 {
            subtitle += &format!("; --interval {}", duration_ns(interval));
            if median > interval {
                // The collector backs off while the counters stand still.
                subtitle += ", less often while nothing changed";
            }
        }
        subtitle += ")";
    }
    if k > 1 {
        subtitle += &format!(
            "; drawn as {} averages of {k} samples each",
            grouped(rates.len() as u64)
        );
    }
    subtitle += "; a rate is the change between two samples over the time between them";
    let body = header(root, &title(NAME, r), &subtitle)?;

    if rates.len() < 2 {
        let lines = vec![
            format!(
                "{} over {}, sampled every {}: one interval is not a timeline.",
                match samples.len() {
                    0 => "No sample".to_owned(),
                    1 => "One sample".to_owned(),
                    n => format!("{n} samples"),
                },
                duration_ns(r.duration_ns),
                duration_ns(interval)
            ),
            "The totals are exact all the same: see the copy ledger.".to_owned(),
            "Trace a longer run, or lower --interval, to see rates over time.".to_owned(),
        ];
        return message(&body, "Run too short for a timeline", &lines);
    }

    let b = &r.totals.bytes;
    let path_series = |class: ByteClass| {
        let label = class.look().label;
        Series {
            label: if b.get(class) == 0 {
                format!("{label} (none)")
            } else {
                label.to_owned()
            },
            colour: byte_colour(class),
            rate: Box::new(move |r: &Rate| r.bytes(class)),
        }
    };
    let panels = [
        Panel {
            caption: "Bytes per second, by path",
            series: ByteClass::shown(b).map(path_series).collect(),
            bytes: true,
        },
        Panel {
            caption: "Syscalls per second",
            series: vec![Series {
                label: "syscalls".into(),
                colour: SYSCALLS,
                rate: Box::new(|r| r.syscalls),
            }],
            bytes: false,
        },
        Panel {
            caption: "Page faults per second",
            series: vec![Series {
                label: "page faults".into(),
                colour: PAGE_FAULTS,
                rate: Box::new(|r| r.page_faults),
            }],
            bytes: false,
        },
        Panel {
            caption: "Context switches per second",
            series: vec![Series {
                label: "context switches".into(),
                colour: CONTEXT_SWITCHES,
                rate: Box::new(|r| r.context_switches),
            }],
            bytes: false,
        },
    ];

    let end_ns = rates
        .last()
        .map(|r| r.t_end_ns)
        .unwrap_or(0)
        .max(r.duration_ns)
        .max(1);
    let time = units::run_time(end_ns);
    let items: Vec<(String, RGBColor)> = panels
        .iter()
        .flat_map(|p| p.series.iter().map(|s| (s.label.clone(), s.colour)))
        .collect();
    // Room for the legend, however many rows the paths shown take.
    let legend_rows = legend_height(body.dim_in_pixel().0, &items);
    let (plots, foot) = footer(&body, legend_rows + 4);
    // The byte panel gets the most room; the last one also carries the time
    // axis labels.
    let h = plots.dim_in_pixel().1;
    let axis_h = 54;
    let small = h.saturating_sub(axis_h) / 5;
    let (bytes_area, rest) = plots.split_vertically(h.saturating_sub(axis_h + 3 * small));
    let (p2, rest) = rest.split_vertically(small);
    let (p3, p4) = rest.split_vertically(small);
    let areas = [bytes_area, p2, p3, p4];
    for (i, (panel, area)) in panels.iter().zip(&areas).enumerate() {
        let last = i == panels.len() - 1;
        draw_panel(area, panel, &rates, &time, end_ns, last)?;
    }

    legend(&foot, &items)?;
    Ok(())
}

fn draw_panel<DB: DrawingBackend>(
    area: &Area<DB>,
    panel: &Panel,
    rates: &[Rate],
    time: &Scale,
    end_ns: u64,
    with_time_axis: bool,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let max = panel
        .series
        .iter()
        .flat_map(|s| rates.iter().map(|r| (s.rate)(r)))
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max);
    let scale = if panel.bytes {
        units::byte_rate(max)
    } else {
        units::count_rate(max)
    };
    let ymax = if max > 0.0 {
        scale.apply(max) * 1.08
    } else {
        1.0
    };
    let xmax = time.apply(end_ns as f64);
    // The caption gets its own strip above the plot, so it never sits on
    // the data and the top tick label has room.
    let (strip, area) = area.split_vertically(CAPTION_STRIP);
    strip.draw_text(panel.caption, &font(CAPTION_SIZE - 2.0), (PLOT_LEFT, 6))?;
    let mut chart = ChartBuilder::on(&area)
        .margin_top(8)
        .margin_left(10)
        .margin_right(28)
        .x_label_area_size(if with_time_axis { 54 } else { 0 })
        .y_label_area_size((PLOT_LEFT - 10) as u32)
        .build_cartesian_2d(0.0..xmax, 0.0..ymax)?;
    let t = *time;
    let x_fmt = |v: &f64| tick_in(*v, &t);
    let y_fmt = |v: &f64| tick_in(*v, &scale);
    let mut mesh = chart.configure_mesh();
    mesh.x_labels(12)
        .y_labels(if panel.bytes { 5 } else { 3 })
        .x_label_formatter(&x_fmt)
        .y_label_formatter(&y_fmt)
        .label_style(font(LABEL_SIZE))
        .axis_desc_style(font(LABEL_SIZE))
        .bold_line_style(GRID)
        .light_line_style(TRANSPARENT)
        .axis_style(AXIS);
    if with_time_axis {
        mesh.x_desc(format!("time since the start of tracing ({})", time.unit));
    }
    mesh.draw()?;

    // A rate holds over its whole interval, so intervals wide enough to see
    // are drawn as flat steps; narrower ones (long runs) as a line through
    // their midpoints, which reads as a line rather than as a fuzz of risers.
    let plot_px = chart.plotting_area().dim_in_pixel().0 as f64;
    let steps = plot_px / rates.len().max(1) as f64 >= 3.0;
    for (i, s) in panel.series.iter().enumerate() {
        let points: Vec<(f64, f64)> = if steps {
            rates
                .iter()
                .flat_map(|r| {
                    let y = scale.apply((s.rate)(r));
                    [
                        (t.apply(r.t_start_ns as f64), y),
                        (t.apply(r.t_end_ns as f64), y),
                    ]
                })
                .collect()
        } else {
            rates
                .iter()
                .map(|r| {
                    let mid = (r.t_start_ns as f64 + r.t_end_ns as f64) / 2.0;
                    (t.apply(mid), scale.apply((s.rate)(r)))
                })
                .collect()
        };
        // Equal series (a copy reads and writes the same bytes) would hide
        // one another: the first line of a panel is drawn wider, so it shows
        // as a border around any line drawn over it.
        let width = if i == 0 && panel.series.len() > 1 {
            5
        } else {
            2
        };
        chart.draw_series(LineSeries::new(points, s.colour.stroke_width(width)))?;
    }

    let plot = chart.plotting_area();
    if max <= 0.0 {
        let style = muted(LABEL_SIZE).pos(Pos::new(HPos::Center, VPos::Center));
        plot.draw(&Text::new(
            "none during the run",
            (xmax / 2.0, ymax / 2.0),
            style,
        ))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t_ns: u64, syscalls: u64) -> TimelineSample {
        TimelineSample {
            t_ns,
            syscalls,
            ..Default::default()
        }
    }

    #[test]
    fn spacing_is_what_the_samples_show() {
        assert_eq!(median_spacing(&[s(5, 1)]), None);
        let late = [s(2, 1), s(100, 2), s(250, 3), s(350, 4), s(360, 5)];
        assert_eq!(median_spacing(&late), Some(100));
    }

    #[test]
    fn thinning_keeps_the_last_sample_and_the_totals() {
        let samples: Vec<_> = (1..=72_000u64).map(|i| s(i * 100_000_000, i * 3)).collect();
        let (kept, k) = thin(&samples, MAX_INTERVALS);
        assert!(kept.len() <= MAX_INTERVALS + 1, "{}", kept.len());
        assert_eq!(k, 72);
        assert_eq!(kept.last(), samples.last());
        let total: f64 = rates(&kept)
            .iter()
            .map(|r| r.syscalls * (r.t_end_ns - r.t_start_ns) as f64 / 1e9)
            .sum();
        assert!((total - 216_000.0).abs() < 1e-6, "{total}");

        let (few, k) = thin(&samples[..5], MAX_INTERVALS);
        assert_eq!((few.len(), k), (5, 1));
        assert!(thin(&[], MAX_INTERVALS).0.is_empty());
    }
}
