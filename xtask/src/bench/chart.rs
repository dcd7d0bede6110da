//! The overhead chart: one horizontal bar per (workload, tracer), the
//! median ratio traced/untraced on a log scale, with a min-max whisker.
//! Drawn twice from one list of shapes: a PNG (rasterised here, text from
//! the embedded DejaVu Sans through ab_glyph) and an SVG.

use std::io::BufWriter;
use std::path::Path;

use ab_glyph::{Font as _, FontRef, ScaleFont as _, point};
use anyhow::{Context as _, Result, anyhow};
use zc_trace_format::{figure, font::px_scale, xml_escape};

type Rgb = [u8; 3];

/// One bar of the chart.
pub struct Bar {
    /// Shown once per group, above its bars.
    pub group: String,
    pub label: String,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// Index into the palette (one colour per tracer).
    pub color: usize,
}

const PALETTE: &[Rgb] = &[
    [0x1f, 0x77, 0xb4],
    [0x6b, 0xae, 0xd6],
    [0x2c, 0xa0, 0x2c],
    [0x94, 0x67, 0xbd],
    [0xff, 0x7f, 0x0e],
    [0xd6, 0x27, 0x28],
    [0x8c, 0x56, 0x4b],
];
const INK: Rgb = [0x22, 0x22, 0x22];
const GREY: Rgb = [0x88, 0x88, 0x88];
const GRID: Rgb = [0xdd, 0xdd, 0xdd];
const WHITE: Rgb = [0xff, 0xff, 0xff];

enum Anchor {
    Start,
    End,
}

enum Shape {
    Rect {
        x: f32,
        y: f32,
        w: f32,
        h: f32,
        fill: Rgb,
    },
    Text {
        x: f32,
        /// Baseline.
        y: f32,
        size: f32,
        fill: Rgb,
        anchor: Anchor,
        text: String,
    },
}

struct Scene {
    width: u32,
    height: u32,
    shapes: Vec<Shape>,
}

impl Scene {
    fn rect(&mut self, x: f32, y: f32, w: f32, h: f32, fill: Rgb) {
        self.shapes.push(Shape::Rect { x, y, w, h, fill });
    }

    fn text(
        &mut self,
        x: f32,
        y: f32,
        size: f32,
        fill: Rgb,
        anchor: Anchor,
        text: impl Into<String>,
    ) {
        self.shapes.push(Shape::Text {
            x,
            y,
            size,
            fill,
            anchor,
            text: text.into(),
        });
    }
}

/// Writes the chart as `png` and as `svg`.
pub fn write(
    bars: &[Bar],
    legend: &[(String, usize)],
    title: &str,
    png: &Path,
    svg: &Path,
) -> Result<()> {
    font()?;
    let scene = layout(bars, legend, title);
    std::fs::write(svg, to_svg(&scene)).with_context(|| format!("writing {}", svg.display()))?;
    to_png(&scene, png).with_context(|| format!("writing {}", png.display()))
}

const ROW: f32 = 20.0;
const GROUP_GAP: f32 = 26.0;
const LEFT: f32 = 200.0;
const PLOT_W: f32 = 620.0;

/// The log-scaled ratio axis: from `lo` to `top`, with its ticks.
struct Axis {
    lo: f64,
    top: f64,
    ticks: Vec<f64>,
}

impl Axis {
    fn of(bars: &[Bar]) -> Self {
        let hi = bars
            .iter()
            .map(|b| b.max.max(b.median))
            .fold(2.0f64, f64::max);
        // Below 1x is noise (a traced run faster than its pair), shown all the same.
        let lo_seen = bars
            .iter()
            .map(|b| b.min.min(b.median))
            .fold(1.0f64, f64::min);
        let lo = if lo_seen >= 0.5 { 0.5 } else { 0.2 };
        // Decade-ish ticks: 0.5, 1, 2, 5, 10, 20, 50 ...
        let mut ticks = if lo < 0.5 { vec![0.2, 0.5] } else { vec![0.5] };
        let mut decade = 1.0;
        let top = 'outer: loop {
            for m in [1.0, 2.0, 5.0] {
                let t = m * decade;
                ticks.push(t);
                if t >= hi {
                    break 'outer t;
                }
            }
            decade *= 10.0;
        };
        Axis { lo, top, ticks }
    }

    /// The x of ratio `v`.
    fn x(&self, v: f64) -> f32 {
        LEFT + ((v.max(self.lo) / self.lo).ln() / (self.top / self.lo).ln()) as f32 * PLOT_W
    }
}

const PLOT_TOP: f32 = 70.0;

fn layout(bars: &[Bar], legend: &[(String, usize)], title: &str) -> Scene {
    let axis = Axis::of(bars);
    let groups = {
        let mut g: Vec<&str> = bars.iter().map(|b| b.group.as_str()).collect();
        g.dedup();
        g.len()
    };
    let plot_h = bars.len() as f32 * ROW + groups as f32 * GROUP_GAP;
    let height = PLOT_TOP + plot_h + 50.0;
    let width = LEFT + PLOT_W + 90.0;
    let mut s = Scene {
        width: width as u32,
        height: height as u32,
        shapes: vec![],
    };
    s.rect(0.0, 0.0, width, height, WHITE);
    s.text(12.0, 24.0, 16.0, INK, Anchor::Start, title);
    draw_legend(&mut s, legend);
    draw_grid(&mut s, &axis, plot_h);
    draw_bars(&mut s, &axis, bars);
    s
}

fn draw_legend(s: &mut Scene, legend: &[(String, usize)]) {
    let mut lx = 12.0;
    for (name, color) in legend {
        s.rect(lx, 40.0, 12.0, 12.0, PALETTE[color % PALETTE.len()]);
        s.text(lx + 16.0, 50.5, 12.0, INK, Anchor::Start, name.clone());
        lx += 22.0 + text_width(name, 12.0) + 12.0;
    }
}

/// Grid lines at the ticks (1x darker), their labels and the axis title.
fn draw_grid(s: &mut Scene, axis: &Axis, plot_h: f32) {
    for &t in &axis.ticks {
        let x = axis.x(t);
        s.rect(x, PLOT_TOP, 1.0, plot_h, if t == 1.0 { GREY } else { GRID });
        s.text(
            x,
            PLOT_TOP + plot_h + 16.0,
            11.0,
            INK,
            Anchor::Start,
            format!("{t}x"),
        );
    }
    s.text(
        LEFT,
        PLOT_TOP + plot_h + 36.0,
        11.0,
        GREY,
        Anchor::Start,
        "workload time traced / untraced (median of the pairs; whisker: min-max; log scale)",
    );
}

/// Each bar from 1x to its median, its min-max whisker and its figure,
/// under its group's heading.
fn draw_bars(s: &mut Scene, axis: &Axis, bars: &[Bar]) {
    let mut y = PLOT_TOP;
    let mut last_group = None;
    for b in bars {
        if last_group != Some(b.group.as_str()) {
            y += GROUP_GAP;
            s.text(12.0, y - 7.0, 13.0, INK, Anchor::Start, b.group.clone());
            last_group = Some(b.group.as_str());
        }
        let color = PALETTE[b.color % PALETTE.len()];
        s.text(
            LEFT - 8.0,
            y + 14.0,
            11.0,
            INK,
            Anchor::End,
            b.label.clone(),
        );
        // From 1x to the median, either way.
        let (one, x1) = (axis.x(1.0), axis.x(b.median));
        s.rect(
            one.min(x1),
            y + 3.0,
            (x1 - one).abs().max(1.0),
            ROW - 6.0,
            color,
        );
        let (wmin, wmax) = (axis.x(b.min), axis.x(b.max));
        s.rect(wmin, y + ROW / 2.0 - 0.5, (wmax - wmin).max(1.0), 1.0, INK);
        s.rect(wmin, y + 5.0, 1.0, ROW - 10.0, INK);
        s.rect(wmax, y + 5.0, 1.0, ROW - 10.0, INK);
        s.text(
            wmax.max(x1) + 5.0,
            y + 14.0,
            11.0,
            INK,
            Anchor::Start,
            format!("{}x", figure(b.median)),
        );
        y += ROW;
    }
}

/// zc-trace's embedded font (DejaVu Sans).
fn font() -> Result<&'static FontRef<'static>> {
    zc_trace_format::font::font().ok_or_else(|| anyhow!("the embedded font does not parse"))
}

/// Width of `text` at an em of `size` pixels (0 without the font, which
/// `write` fails on before anything is laid out).
fn text_width(text: &str, size: f32) -> f32 {
    font().map_or(0.0, |f| zc_trace_format::font::width(f, text, size))
}

fn to_png(s: &Scene, path: &Path) -> Result<()> {
    let (w, h) = (s.width as usize, s.height as usize);
    let mut px = vec![0u8; w * h * 3];
    let mut blend = |x: i32, y: i32, c: Rgb, a: f32| {
        if x < 0 || y < 0 || x as usize >= w || y as usize >= h {
            return;
        }
        let i = (y as usize * w + x as usize) * 3;
        for k in 0..3 {
            px[i + k] = (px[i + k] as f32 * (1.0 - a) + c[k] as f32 * a).round() as u8;
        }
    };
    let f = font()?;
    for shape in &s.shapes {
        match shape {
            Shape::Rect { x, y, w, h, fill } => {
                let (x0, y0) = (x.round() as i32, y.round() as i32);
                let (x1, y1) = ((x + w).round() as i32, (y + h).round() as i32);
                for yy in y0..y1.max(y0 + 1) {
                    for xx in x0..x1.max(x0 + 1) {
                        blend(xx, yy, *fill, 1.0);
                    }
                }
            }
            Shape::Text {
                x,
                y,
                size,
                fill,
                anchor,
                text,
            } => {
                let sc = px_scale(f, *size);
                let sf = f.as_scaled(sc);
                let mut caret = match anchor {
                    Anchor::Start => *x,
                    Anchor::End => x - text_width(text, *size),
                };
                let mut prev = None;
                for c in text.chars() {
                    let id = sf.glyph_id(c);
                    if let Some(p) = prev {
                        caret += sf.kern(p, id);
                    }
                    let glyph = id.with_scale_and_position(sc, point(caret, *y));
                    caret += sf.h_advance(id);
                    prev = Some(id);
                    if let Some(og) = f.outline_glyph(glyph) {
                        let b = og.px_bounds();
                        og.draw(|gx, gy, cov| {
                            blend(
                                b.min.x as i32 + gx as i32,
                                b.min.y as i32 + gy as i32,
                                *fill,
                                cov.clamp(0.0, 1.0),
                            )
                        });
                    }
                }
            }
        }
    }
    let file = std::fs::File::create(path)?;
    let mut enc = png::Encoder::new(BufWriter::new(file), s.width, s.height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header()?;
    writer.write_image_data(&px)?;
    writer.finish()?;
    Ok(())
}

fn to_svg(s: &Scene) -> String {
    let hex = |c: &Rgb| format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2]);
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
         font-family=\"DejaVu Sans, Verdana, sans-serif\">\n",
        w = s.width,
        h = s.height
    );
    for shape in &s.shapes {
        match shape {
            Shape::Rect { x, y, w, h, fill } => out.push_str(&format!(
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" fill=\"{}\"/>\n",
                hex(fill)
            )),
            Shape::Text {
                x,
                y,
                size,
                fill,
                anchor,
                text,
            } => out.push_str(&format!(
                "<text x=\"{x:.1}\" y=\"{y:.1}\" font-size=\"{size}\" fill=\"{}\"{}>{}</text>\n",
                hex(fill),
                match anchor {
                    Anchor::Start => "",
                    Anchor::End => " text-anchor=\"end\"",
                },
                xml_escape(text)
            )),
        }
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chart is drawn with zc-trace's font and figures: a real PNG and
    /// an SVG whose text is the bars' labels and ratios.
    #[test]
    fn writes_a_png_and_an_svg_with_the_labels() {
        let dir = tempfile::tempdir().unwrap();
        let (png_path, svg_path) = (dir.path().join("c.png"), dir.path().join("c.svg"));
        let bar = |label: &str, median| Bar {
            group: "dd <1 MiB>".into(),
            label: label.into(),
            median,
            min: median * 0.9,
            max: median * 1.1,
            color: 0,
        };
        let bars = [bar("zc-trace", 1.234), bar("strace", 12.34)];
        write(
            &bars,
            &[("zc-trace".into(), 0)],
            "Overhead",
            &png_path,
            &svg_path,
        )
        .unwrap();
        let svg = std::fs::read_to_string(&svg_path).unwrap();
        for text in [">1.23x<", ">12.3x<", ">dd &lt;1 MiB&gt;<", ">Overhead<"] {
            assert!(svg.contains(text), "{text} in {svg}");
        }
        let decoder = png::Decoder::new(std::io::BufReader::new(
            std::fs::File::open(&png_path).unwrap(),
        ));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        let px = &buf[..info.buffer_size()];
        let dark = px.chunks(3).filter(|p| p.iter().all(|c| *c < 0x40)).count();
        assert!(dark > 100, "text is drawn: {dark} dark pixels");
    }
}
