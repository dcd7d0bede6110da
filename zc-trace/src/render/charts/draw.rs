//! The pieces every chart is built from: a header, a legend row, a panel of
//! horizontal bars, a message panel. All sizes are in pixels of the 1280x800
//! canvas.

use anyhow::Result;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::palette::{AXIS, GRID, MUTED, TEXT};
use super::units::{Scale, tick_in};
use super::{Area, FAMILY};

pub const TITLE_SIZE: f64 = 26.0;
pub const CAPTION_SIZE: f64 = 19.0;
pub const LABEL_SIZE: f64 = 15.0;
/// Height of the title and subtitle strip at the top of each chart.
pub const HEADER_HEIGHT: u32 = 78;
const PAD: i32 = 20;

pub fn font(size: f64) -> TextStyle<'static> {
    (FAMILY, size).into_font().color(&TEXT)
}

pub fn muted(size: f64) -> TextStyle<'static> {
    (FAMILY, size).into_font().color(&MUTED)
}

/// Width of `text` in pixels at `size`.
pub fn text_width(text: &str, size: f64) -> u32 {
    super::text::measure(text, size).0.ceil() as u32
}

/// `text`, cut with an ellipsis to fit `max` pixels at `size`.
pub fn fit(text: &str, size: f64, max: u32) -> String {
    if text_width(text, size) <= max {
        return text.to_owned();
    }
    let chars: Vec<char> = text.chars().collect();
    let (mut lo, mut hi) = (0, chars.len());
    // Longest prefix that fits with the ellipsis: binary search, since
    // measuring is the slow part.
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        let candidate: String = chars[..mid].iter().collect::<String>() + "…";
        if text_width(&candidate, size) <= max {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    chars[..lo].iter().collect::<String>().trim_end().to_owned() + "…"
}

/// Draws the title and a muted subtitle; returns the area below them.
pub fn header<DB: DrawingBackend>(area: &Area<DB>, title: &str, subtitle: &str) -> Result<Area<DB>>
where
    DB::ErrorType: 'static,
{
    let width = area.dim_in_pixel().0.saturating_sub(2 * PAD as u32);
    area.draw_text(&fit(title, TITLE_SIZE, width), &font(TITLE_SIZE), (PAD, 14))?;
    area.draw_text(
        &fit(subtitle, LABEL_SIZE + 1.0, width),
        &muted(LABEL_SIZE + 1.0),
        (PAD, 50),
    )?;
    Ok(area.split_vertically(HEADER_HEIGHT).1)
}

const LEGEND_BOX: i32 = 14;
const LEGEND_LINE: i32 = 24;

/// Where a legend `width` pixels wide puts each item: (x, y, its label as
/// it fits), wrapping onto more lines when a row is full.
fn legend_layout(width: u32, items: &[(String, RGBColor)]) -> Vec<(i32, i32, String)> {
    let width = width as i32 - PAD;
    let (mut x, mut y) = (PAD, 6);
    let mut placed = Vec::with_capacity(items.len());
    for (label, _) in items {
        let label = fit(
            label,
            LABEL_SIZE,
            (width - PAD - LEGEND_BOX - 6).max(0) as u32,
        );
        let w = LEGEND_BOX + 6 + text_width(&label, LABEL_SIZE) as i32;
        if x > PAD && x + w > width {
            x = PAD;
            y += LEGEND_LINE;
        }
        placed.push((x, y, label));
        x += w + 26;
    }
    placed
}

/// The height of a legend laid out as `placed`: down to its last row.
fn placed_height(placed: &[(i32, i32, String)]) -> u32 {
    (placed.last().map_or(6, |p| p.1) + LEGEND_LINE) as u32
}

/// The height a legend of `items` takes in an area `width` pixels wide.
pub fn legend_height(width: u32, items: &[(String, RGBColor)]) -> u32 {
    placed_height(&legend_layout(width, items))
}

/// A row of coloured squares with their labels, wrapping onto more lines if
/// they do not fit. Returns the height used.
pub fn legend<DB: DrawingBackend>(area: &Area<DB>, items: &[(String, RGBColor)]) -> Result<u32>
where
    DB::ErrorType: 'static,
{
    let placed = legend_layout(area.dim_in_pixel().0, items);
    for ((x, y, label), (_, colour)) in placed.iter().zip(items) {
        let (x, y) = (*x, *y);
        area.draw(&Rectangle::new(
            [(x, y + 2), (x + LEGEND_BOX, y + 2 + LEGEND_BOX)],
            colour.filled(),
        ))?;
        area.draw_text(label, &font(LABEL_SIZE), (x + LEGEND_BOX + 6, y + 1))?;
    }
    Ok(placed_height(&placed))
}

/// A panel that has nothing to plot: its caption and a few centred lines
/// saying why, inside a light frame, so it never looks like a broken chart.
pub fn message<DB: DrawingBackend>(area: &Area<DB>, caption: &str, lines: &[String]) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let (w, h) = area.dim_in_pixel();
    let (w, h) = (w as i32, h as i32);
    area.draw(&Rectangle::new(
        [(PAD, 10), (w - PAD, h - 10)],
        GRID.stroke_width(2),
    ))?;
    let centre = |size: f64| font(size).pos(Pos::new(HPos::Center, VPos::Center));
    let mut y = h / 2 - (lines.len() as i32 * 28) / 2 - 20;
    area.draw_text(caption, &centre(CAPTION_SIZE + 3.0), (w / 2, y))?;
    for line in lines {
        y += 34;
        let text = fit(line, CAPTION_SIZE - 2.0, (w - 4 * PAD) as u32);
        area.draw_text(&text, &centre(CAPTION_SIZE - 2.0).color(&MUTED), (w / 2, y))?;
    }
    Ok(())
}

/// One horizontal bar: a label, stacked parts (raw value, colour), and the
/// text written at its end.
#[derive(Clone, Debug, Default)]
pub struct Bar {
    pub label: String,
    pub parts: Vec<(f64, RGBColor)>,
    pub value: String,
}

impl Bar {
    pub fn single(
        label: impl Into<String>,
        v: f64,
        colour: RGBColor,
        value: impl Into<String>,
    ) -> Bar {
        Bar {
            label: label.into(),
            parts: vec![(v, colour)],
            value: value.into(),
        }
    }

    fn total(&self) -> f64 {
        self.parts.iter().map(|(v, _)| v.max(0.0)).sum()
    }
}

/// A panel of horizontal bars, first bar on top.
pub struct Bars<'a> {
    pub caption: &'a str,
    pub bars: &'a [Bar],
    /// The unit of the value axis (the bars' raw values are divided by it).
    pub scale: Scale,
    pub axis: &'a str,
    /// Width of the row labels; 0 for a panel beside one that shows them.
    pub label_width: u32,
}

pub fn hbars<DB: DrawingBackend>(area: &Area<DB>, b: &Bars) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let n = b.bars.len().max(1);
    let max = b.bars.iter().map(Bar::total).fold(0.0, f64::max);
    // An all-zero panel still gets a real axis (0 to 1 unit), not a
    // degenerate one.
    // Room after the longest bars for their value labels, so labels sit
    // outside the bars (where they read on white) whenever the panel allows.
    let margin_left = if b.label_width > 0 { 10 } else { 4 };
    let plot_w = area.dim_in_pixel().0 as f64 - b.label_width as f64 - margin_left as f64 - 28.0;
    let mut xmax = if max > 0.0 {
        b.scale.apply(max) * 1.02
    } else {
        1.0
    };
    for bar in b.bars.iter().filter(|bar| !bar.value.is_empty()) {
        let room = (plot_w - text_width(&bar.value, LABEL_SIZE) as f64 - 14.0).max(plot_w * 0.55);
        xmax = xmax.max(b.scale.apply(bar.total()) * plot_w / room);
    }
    // Row i (0 = top) sits at y = n - 1 - i; y runs from -0.5 to n - 0.5 so
    // each row is one unit tall and its label tick falls on an integer.
    let top = n as f64 - 0.5;
    let caption = fit(
        b.caption,
        CAPTION_SIZE,
        area.dim_in_pixel().0.saturating_sub(12),
    );
    let mut chart = ChartBuilder::on(area)
        .caption(caption, font(CAPTION_SIZE))
        .margin_top(6)
        .margin_bottom(4)
        .margin_left(margin_left)
        .margin_right(28)
        .x_label_area_size(52)
        .y_label_area_size(b.label_width)
        .build_cartesian_2d(0.0..xmax, -0.5..top)?;
    let scale = b.scale;
    let labels: Vec<String> = b
        .bars
        .iter()
        .map(|bar| fit(&bar.label, LABEL_SIZE, b.label_width.saturating_sub(14)))
        .collect();
    let row_label = |y: &f64| -> String {
        let r = y.round();
        if (y - r).abs() > 1e-6 || r < 0.0 {
            return String::new();
        }
        let i = n as i64 - 1 - r as i64;
        usize::try_from(i)
            .ok()
            .and_then(|i| labels.get(i).cloned())
            .unwrap_or_default()
    };
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n + n / 2 + 1)
        .y_label_formatter(&row_label)
        // About 75 px per tick label ("400 MiB" and a gap), so narrow panels
        // get fewer labels rather than labels run together.
        .x_labels(((plot_w / 75.0) as usize).clamp(3, 6))
        .x_label_formatter(&|v| tick_in(*v, &scale))
        .x_desc(b.axis)
        .label_style(font(LABEL_SIZE))
        .axis_desc_style(font(LABEL_SIZE))
        .bold_line_style(GRID)
        .light_line_style(TRANSPARENT)
        .axis_style(AXIS)
        .draw()?;

    let width_px = chart.plotting_area().dim_in_pixel().0 as f64;
    let height_px = chart.plotting_area().dim_in_pixel().1 as f64;
    // Bars take 64% of their row, but never grow thicker than 34 px.
    let half = (0.32f64).min(17.0 * n as f64 / height_px.max(1.0));
    for (i, bar) in b.bars.iter().enumerate() {
        let y = (n - 1 - i) as f64;
        let mut x0 = 0.0;
        for (v, colour) in &bar.parts {
            let x1 = x0 + scale.apply(v.max(0.0));
            if x1 > x0 {
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(x0, y - half), (x1, y + half)],
                    colour.filled(),
                )))?;
            }
            x0 = x1;
        }
        if bar.value.is_empty() {
            continue;
        }
        // The value goes after the bar if it fits there, else inside the
        // bar's end, in a colour that reads on the bar.
        let end_px = x0 / xmax * width_px;
        let w = text_width(&bar.value, LABEL_SIZE) as f64;
        let inside = end_px + 8.0 + w > width_px && end_px > w + 12.0;
        let (dx, hpos, colour) = if inside {
            let last = bar.parts.last().map(|p| p.1).unwrap_or(TEXT);
            (-6, HPos::Right, on(last))
        } else {
            (6, HPos::Left, TEXT)
        };
        let style = font(LABEL_SIZE)
            .color(&colour)
            .pos(Pos::new(hpos, VPos::Center));
        // Stacked bars end in a thin part that an inside label would spill
        // over; there the label gets a light backing instead.
        let spills = inside && bar.parts.len() > 1;
        let style = if spills {
            font(LABEL_SIZE).pos(Pos::new(hpos, VPos::Center))
        } else {
            style
        };
        if spills {
            let h = (LABEL_SIZE * 0.7) as i32;
            chart.draw_series(std::iter::once(
                EmptyElement::at((x0, y))
                    + Rectangle::new([(-(w as i32) - 10, -h), (-2, h)], WHITE.mix(0.85).filled()),
            ))?;
        }
        chart.draw_series(std::iter::once(
            EmptyElement::at((x0, y)) + Text::new(bar.value.clone(), (dx, 0), style),
        ))?;
    }
    Ok(())
}

/// Black or white, whichever reads better on `bg`.
pub fn on(bg: RGBColor) -> RGBColor {
    let l = 0.299 * bg.0 as f64 + 0.587 * bg.1 as f64 + 0.114 * bg.2 as f64;
    if l > 150.0 { TEXT } else { WHITE }
}

/// Splits `area` into a body and a footer of `footer` pixels.
pub fn footer<DB: DrawingBackend>(area: &Area<DB>, footer: u32) -> (Area<DB>, Area<DB>) {
    let h = area.dim_in_pixel().1;
    area.split_vertically(h.saturating_sub(footer))
}
