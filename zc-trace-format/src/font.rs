//! The font every chart is drawn with (DejaVu Sans, embedded: no
//! fontconfig, the same glyphs on every machine), and text widths from its
//! metrics, kerning included.

use std::sync::OnceLock;

use ab_glyph::{Font as _, FontRef, PxScale, ScaleFont as _};

/// DejaVu Sans (its licence is beside it in assets/).
pub static FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// The embedded font; `None` only if it does not parse, which its test
/// rules out.
pub fn font() -> Option<&'static FontRef<'static>> {
    static FONT: OnceLock<Option<FontRef<'static>>> = OnceLock::new();
    FONT.get_or_init(|| FontRef::try_from_slice(FONT_BYTES).ok())
        .as_ref()
}

/// The scale that draws `f` at an em of `em` pixels (SVG's font-size):
/// ab_glyph scales by the font's height (ascent - descent), not by the em.
pub fn px_scale(f: &FontRef<'_>, em: f32) -> PxScale {
    let upem = f.units_per_em().unwrap_or(2048.0);
    PxScale::from(em * f.height_unscaled() / upem)
}

/// Width in pixels of `text` at an em of `em` pixels: advances and kerning.
pub fn width(f: &FontRef<'_>, text: &str, em: f32) -> f32 {
    let s = f.as_scaled(px_scale(f, em));
    let mut width = 0.0;
    let mut prev = None;
    for c in text.chars() {
        let id = s.glyph_id(c);
        if let Some(p) = prev {
            width += s.kern(p, id);
        }
        width += s.h_advance(id);
        prev = Some(id);
    }
    width
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_font_parses_and_measures() {
        let f = font().expect("the embedded font parses");
        let w = width(f, "128", 12.0);
        assert!(w > 15.0 && w < 30.0, "{w}");
        assert!(width(f, "1288", 12.0) > w);
    }
}
