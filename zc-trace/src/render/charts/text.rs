//! Text: measured and, for bitmaps, drawn from the embedded font.
//!
//! plotters' own `ab_glyph` text path places each glyph at its advance but
//! drops the glyph's left bearing, so "128" renders as "1 28". `Typeset`
//! wraps a backend and does text itself: on a bitmap it rasterises glyphs at
//! their true positions; on SVG it leaves the <text> element to the viewer.
//! Either way it reports text sizes from the same metrics, so layout,
//! truncation and label placement agree with what is drawn.
//!
//! Sizes follow plotters' SVG convention (font-size = size / 1.24 px), so a
//! label is the same size in the PNG and in the browser.

use ab_glyph::{Font, FontRef, PxScale, ScaleFont, point};
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind,
};

use crate::render::format::printable;

pub use zc_trace_format::font::{FONT_BYTES, font};

/// Pixels per em for a plotters font size.
fn em(size: f64) -> f32 {
    (size / 1.24) as f32
}

fn px_scale(f: &FontRef<'_>, size: f64) -> PxScale {
    zc_trace_format::font::px_scale(f, em(size))
}

/// Width and height in pixels of `text` drawn at `size`.
pub fn measure(text: &str, size: f64) -> (f64, f64) {
    let Some(f) = font() else {
        return (text.chars().count() as f64 * size * 0.5, size / 1.24);
    };
    let width = zc_trace_format::font::width(f, text, em(size));
    (width as f64, em(size) as f64)
}

/// A backend whose text is measured (and, with `raster`, drawn) here.
pub struct Typeset<B> {
    inner: B,
    raster: bool,
}

impl<B> Typeset<B> {
    /// For bitmaps: glyphs are rasterised here.
    pub fn raster(inner: B) -> Self {
        Typeset {
            inner,
            raster: true,
        }
    }

    /// For SVG: text stays text, only its measurements come from here.
    pub fn vector(inner: B) -> Self {
        Typeset {
            inner,
            raster: false,
        }
    }
}

type Drawn<B> = Result<(), DrawingErrorKind<<B as DrawingBackend>::ErrorType>>;

impl<B: DrawingBackend> DrawingBackend for Typeset<B> {
    type ErrorType = B::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }

    fn ensure_prepared(&mut self) -> Drawn<B> {
        self.inner.ensure_prepared()
    }

    fn present(&mut self) -> Drawn<B> {
        self.inner.present()
    }

    fn draw_pixel(&mut self, point: BackendCoord, color: BackendColor) -> Drawn<B> {
        self.inner.draw_pixel(point, color)
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Drawn<B> {
        self.inner.draw_line(from, to, style)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Drawn<B> {
        self.inner.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Drawn<B> {
        self.inner.draw_path(path, style)
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Drawn<B> {
        self.inner.draw_circle(center, radius, style, fill)
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Drawn<B> {
        self.inner.fill_polygon(vert, style)
    }

    fn blit_bitmap(&mut self, pos: BackendCoord, size: (u32, u32), src: &[u8]) -> Drawn<B> {
        self.inner.blit_bitmap(pos, size, src)
    }

    fn estimate_text_size<S: BackendTextStyle>(
        &self,
        text: &str,
        style: &S,
    ) -> Result<(u32, u32), DrawingErrorKind<Self::ErrorType>> {
        let (w, h) = measure(&printable(text), style.size());
        Ok((w.ceil() as u32, h.ceil() as u32))
    }

    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> Drawn<B> {
        let text = &printable(text);
        match font() {
            Some(f) if self.raster => rasterise(&mut self.inner, f, text, style, pos),
            _ => self.inner.draw_text(text, style, pos),
        }
    }
}

/// Draws `text` glyph by glyph, anchored as an SVG viewer anchors it
/// (text-anchor for x; for y the baseline offsets plotters' SVG backend
/// writes: 0.76em below a top anchor, half an x-height below a centre one).
fn rasterise<B: DrawingBackend, S: BackendTextStyle>(
    backend: &mut B,
    f: &FontRef<'static>,
    text: &str,
    style: &S,
    pos: BackendCoord,
) -> Drawn<B> {
    let colour = style.color();
    if colour.alpha == 0.0 || text.is_empty() {
        return Ok(());
    }
    let size = style.size();
    let scaled = f.as_scaled(px_scale(f, size));
    let em = em(size);
    let (width, _) = measure(text, size);
    let anchor = style.anchor();
    let dx = match anchor.h_pos {
        HPos::Left => 0.0,
        HPos::Center => -width as f32 / 2.0,
        HPos::Right => -width as f32,
    };
    let baseline = match anchor.v_pos {
        VPos::Top => 0.76 * em,
        VPos::Center => 0.273 * em,
        VPos::Bottom => -0.273 * em,
    };
    let transform = style.transform();
    let (w, h) = backend.get_size();
    let mut caret = dx;
    let mut prev = None;
    let mut pixels = Vec::new();
    for c in text.chars() {
        let id = scaled.glyph_id(c);
        if let Some(p) = prev {
            caret += scaled.kern(p, id);
        }
        prev = Some(id);
        let glyph = id.with_scale_and_position(scaled.scale(), point(caret, baseline));
        caret += scaled.h_advance(id);
        let Some(outline) = f.outline_glyph(glyph) else {
            continue;
        };
        let bounds = outline.px_bounds();
        let (x0, y0) = (bounds.min.x as i32, bounds.min.y as i32);
        pixels.clear();
        outline.draw(|x, y, coverage| {
            if coverage > 0.01 {
                pixels.push((x0 + x as i32, y0 + y as i32, coverage.min(1.0)));
            }
        });
        for &(x, y, coverage) in &pixels {
            let (x, y) = transform.transform(x, y);
            let (x, y) = (pos.0 + x, pos.1 + y);
            if x >= 0 && y >= 0 && (x as u32) < w && (y as u32) < h {
                let c = BackendColor {
                    alpha: colour.alpha * coverage as f64,
                    rgb: colour.rgb,
                };
                backend.draw_pixel((x, y), c)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_from_the_embedded_font() {
        assert!(font().is_some());
        let (w1, h) = measure("1", 20.0);
        let (w128, _) = measure("128", 20.0);
        assert!(w1 > 5.0 && (w128 - 3.0 * w1).abs() < 0.5, "{w1} {w128}");
        assert!((h - 20.0 / 1.24).abs() < 1e-3);
        assert_eq!(measure("", 20.0).0, 0.0);
    }
}
