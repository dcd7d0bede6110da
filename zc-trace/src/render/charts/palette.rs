//! The one palette every chart (and the HTML report) uses, so a path has the
//! same colour everywhere: learn it once on the ledger, read it on the rest.
//! The byte paths and syscall classes take their colours from
//! `ByteClass::look()` and `Class::look()`, where each class is defined.

use plotters::style::RGBColor;

use crate::model::bytes::ByteClass;
use zc_trace_common::syscalls::Class;

/// The "N more" row that stands for many syscalls or processes at once.
pub const REST: RGBColor = RGBColor(200, 200, 200);

/// Cost metrics (not paths).
pub const SYSCALLS: RGBColor = RGBColor(57, 59, 121);
pub const MODE_SWITCHES: RGBColor = RGBColor(23, 190, 207);
pub const CONTEXT_SWITCHES: RGBColor = RGBColor(140, 86, 75);
pub const PAGE_FAULTS: RGBColor = RGBColor(227, 119, 194);

/// One colour per run in comparisons; dark tones that none of the path
/// colours above is mistaken for.
pub const RUNS: [RGBColor; 8] = [
    RGBColor(57, 59, 121),
    RGBColor(189, 158, 57),
    RGBColor(132, 60, 57),
    RGBColor(99, 121, 57),
    RGBColor(123, 65, 115),
    RGBColor(82, 84, 163),
    RGBColor(231, 150, 156),
    RGBColor(140, 109, 49),
];

pub const BACKGROUND: RGBColor = RGBColor(255, 255, 255);
pub const TEXT: RGBColor = RGBColor(33, 33, 33);
pub const MUTED: RGBColor = RGBColor(110, 110, 110);
pub const GRID: RGBColor = RGBColor(230, 230, 230);
pub const AXIS: RGBColor = RGBColor(120, 120, 120);

/// The colour of a syscall class, and of its path in the copy ledger.
pub const fn class_colour(class: Class) -> RGBColor {
    let (r, g, b) = class.look().rgb;
    RGBColor(r, g, b)
}

/// The colour of a byte class's path in every chart.
pub fn byte_colour(class: ByteClass) -> RGBColor {
    let (r, g, b) = class.look().rgb;
    RGBColor(r, g, b)
}

/// The legend of the paths of `classes`.
pub fn path_legend(classes: impl Iterator<Item = ByteClass>) -> Vec<(String, RGBColor)> {
    classes
        .map(|c| (c.look().label.to_owned(), byte_colour(c)))
        .collect()
}

/// Where a class sorts in the grouped syscall list.
pub fn class_rank(class: Class) -> usize {
    Class::ALL.iter().position(|c| *c == class).unwrap_or(0)
}

/// `#rrggbb`, for CSS.
pub fn hex(c: RGBColor) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}
