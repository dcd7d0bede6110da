//! Charts of a report, as PNG (bitmap backend) or SVG (svg backend).
//!
//! Text comes from an embedded DejaVu Sans (zc-trace-format), registered with
//! plotters' `ab_glyph` feature and measured and rasterised by `text`, so
//! rendering needs no system font and no fontconfig. Each chart is one
//! module that draws onto any plotters backend; this file picks the charts
//! of a run, registers the font and writes the files.
//!
//! Every chart uses the one palette in `palette`: a byte path has the same
//! colour in the ledger, the timeline, the syscalls and the processes.

mod compare;
mod draw;
mod latency;
mod ledger;
mod palette;
mod processes;
mod syscalls;
mod text;
mod timeline;
mod units;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow, bail};
use plotters::coord::Shift;
use plotters::prelude::*;

pub use crate::model::compare::Basis;
use crate::model::report::Report;
use text::Typeset;

pub use compare::metrics;
pub use palette::{byte_colour, class_colour, hex};
pub use units::figure;

/// Every chart is drawn at this size, in pixels (the SVG's view box too).
pub const SIZE: (u32, u32) = (1280, 800);

/// The font family every chart asks for; the embedded font is registered
/// under it, and SVG viewers fall back to their own sans-serif.
const FAMILY: &str = "sans-serif";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Png,
    Svg,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Png => "png",
            Format::Svg => "svg",
        }
    }
}

/// The charts of one run, in reading order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chart {
    Ledger,
    Timeline,
    Syscalls,
    Latency,
    Processes,
}

impl Chart {
    fn of(report: &Report) -> Vec<Chart> {
        let mut charts = vec![
            Chart::Ledger,
            Chart::Timeline,
            Chart::Syscalls,
            Chart::Latency,
        ];
        if report.processes.len() > 1 {
            charts.push(Chart::Processes);
        }
        charts
    }

    const ALL: [Chart; 5] = [
        Chart::Ledger,
        Chart::Timeline,
        Chart::Syscalls,
        Chart::Latency,
        Chart::Processes,
    ];

    fn stem(self) -> &'static str {
        match self {
            Chart::Ledger => "ledger",
            Chart::Timeline => "timeline",
            Chart::Syscalls => "syscalls",
            Chart::Latency => "latency",
            Chart::Processes => "processes",
        }
    }

    /// The chart's name: the start of its drawn title and its HTML heading.
    fn name(self) -> &'static str {
        match self {
            Chart::Ledger => ledger::NAME,
            Chart::Timeline => timeline::NAME,
            Chart::Syscalls => syscalls::NAME,
            Chart::Latency => latency::NAME,
            Chart::Processes => processes::NAME,
        }
    }

    fn draw<DB: DrawingBackend>(self, area: &Area<DB>, report: &Report) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        match self {
            Chart::Ledger => ledger::draw(area, report),
            Chart::Timeline => timeline::draw(area, report),
            Chart::Syscalls => syscalls::draw(area, report),
            Chart::Latency => latency::draw(area, report),
            Chart::Processes => processes::draw(area, report),
        }
    }
}

/// Every file name `render_run` may write.
pub fn run_file_names(format: Format) -> impl Iterator<Item = String> {
    Chart::ALL
        .into_iter()
        .map(move |c| format!("{}.{}", c.stem(), format.extension()))
}

/// Writes the charts of one run into `dir` (created if missing); returns the
/// files written: ledger, timeline, syscalls, latency and, with more than
/// one process, processes (`Chart::of`).
pub fn render_run(report: &Report, dir: &Path, format: Format) -> Result<Vec<PathBuf>> {
    fonts()?;
    Chart::of(report)
        .into_iter()
        .map(|chart| {
            let path = dir.join(format!("{}.{}", chart.stem(), format.extension()));
            write(
                &path,
                format,
                |a| chart.draw(a, report),
                |a| chart.draw(a, report),
            )?;
            Ok(path)
        })
        .collect()
}

/// Side-by-side comparison of several runs (label, report), normalised per
/// MiB of `basis`; writes compare.png or compare.svg into `dir`.
pub fn render_compare(
    runs: &[(String, Report)],
    basis: Basis,
    dir: &Path,
    format: Format,
) -> Result<Vec<PathBuf>> {
    fonts()?;
    if runs.is_empty() {
        bail!("no runs to compare");
    }
    let path = dir.join(format!("compare.{}", format.extension()));
    write(
        &path,
        format,
        |a| compare::draw(a, runs, basis),
        |a| compare::draw(a, runs, basis),
    )?;
    Ok(vec![path])
}

/// The charts of one run as SVG documents, for inlining into HTML:
/// (chart name, svg).
pub fn run_svgs(report: &Report) -> Result<Vec<(String, String)>> {
    fonts()?;
    Chart::of(report)
        .into_iter()
        .map(|chart| Ok((chart.name().to_owned(), svg(|a| chart.draw(a, report))?)))
        .collect()
}

/// The comparison chart as an SVG document: (chart name, svg).
pub fn compare_svg(runs: &[(String, Report)], basis: Basis) -> Result<(String, String)> {
    fonts()?;
    if runs.is_empty() {
        bail!("no runs to compare");
    }
    Ok((
        compare::NAME.to_owned(),
        svg(|a| compare::draw(a, runs, basis))?,
    ))
}

type Area<DB> = DrawingArea<DB, Shift>;

/// Draws one chart into `path` (written as every output is, see
/// `preflight::Output`). Closures cannot be generic over the backend, so
/// the caller passes the same drawing once per backend type.
fn write(
    path: &Path,
    format: Format,
    png: impl FnOnce(&Area<Typeset<BitMapBackend>>) -> Result<()>,
    svg_draw: impl FnOnce(&Area<Typeset<SVGBackend>>) -> Result<()>,
) -> Result<()> {
    let bytes = match format {
        Format::Png => png_bytes(png).with_context(|| format!("drawing {}", path.display()))?,
        Format::Svg => svg(svg_draw)?.into_bytes(),
    };
    crate::preflight::write_output(path, "chart", &bytes)
}

/// Draws into an RGB buffer and encodes it as PNG, in memory.
fn png_bytes(draw: impl FnOnce(&Area<Typeset<BitMapBackend>>) -> Result<()>) -> Result<Vec<u8>> {
    let (w, h) = SIZE;
    let mut rgb = vec![0u8; w as usize * h as usize * 3];
    {
        let area = Typeset::raster(BitMapBackend::with_buffer(&mut rgb, SIZE)).into_drawing_area();
        area.fill(&palette::BACKGROUND)?;
        draw(&area)?;
        area.present()?;
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, w, h);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.write_header()?.write_image_data(&rgb)?;
    Ok(out)
}

fn svg(draw: impl FnOnce(&Area<Typeset<SVGBackend>>) -> Result<()>) -> Result<String> {
    let mut out = String::new();
    {
        let area = Typeset::vector(SVGBackend::with_string(&mut out, SIZE)).into_drawing_area();
        area.fill(&palette::BACKGROUND)?;
        draw(&area)?;
        area.present()?;
    }
    Ok(out)
}

/// Registers the embedded font with plotters once per process: its text
/// styles look the family up even though `Typeset` measures and draws.
fn fonts() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FAMILY, FontStyle::Normal, text::FONT_BYTES).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(anyhow!("the embedded chart font could not be loaded"))
    }
}

/// "Copy ledger: cp big.iso /tmp (pid 42), 1.50 s". A long command is cut
/// with an ellipsis, never the pid or the duration.
fn title(name: &str, report: &Report) -> String {
    let duration = super::format::duration_ns(report.duration_ns);
    let pid = report.target.pid;
    let what = report
        .command_line()
        .or_else(|| report.attached_comm().map(str::to_owned));
    match what {
        Some(what) => {
            let rest = format!(" (pid {pid}), {duration}");
            let fixed = draw::text_width(&format!("{name}: {rest}"), draw::TITLE_SIZE);
            let budget = (SIZE.0 - 40).saturating_sub(fixed);
            format!(
                "{name}: {}{rest}",
                draw::fit(&what, draw::TITLE_SIZE, budget)
            )
        }
        None => format!(
            "{name}: {}, {duration}",
            super::format::printable(&report.target_name())
        ),
    }
}

#[cfg(test)]
pub(crate) mod tests;
