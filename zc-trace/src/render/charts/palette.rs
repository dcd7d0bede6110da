//! The one palette every chart (and the HTML report) uses, so a path has the
//! same colour everywhere: learn it once on the ledger, read it on the rest.

use plotters::style::RGBColor;

/// Copied by the CPU, kernel -> user (read, recv ...).
pub const TO_USER: RGBColor = RGBColor(31, 119, 180);
/// Copied by the CPU, user -> kernel (write, send ...).
pub const FROM_USER: RGBColor = RGBColor(255, 127, 14);
/// Moved without entering user space (sendfile, splice ...).
pub const ZERO_COPY: RGBColor = RGBColor(44, 160, 44);
/// File-backed mmap length.
pub const MAPPED: RGBColor = RGBColor(148, 103, 189);
/// Syscalls that move no bytes of their own.
pub const OTHER: RGBColor = RGBColor(140, 140, 140);
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

/// A byte path of the copy ledger: its label and colour, in ledger order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    ToUser,
    FromUser,
    ZeroCopy,
    Mapped,
}

impl Path {
    pub const ALL: [Path; 4] = [Path::ToUser, Path::FromUser, Path::ZeroCopy, Path::Mapped];

    pub fn label(self) -> &'static str {
        match self {
            Path::ToUser => "copied kernel → user",
            Path::FromUser => "copied user → kernel",
            Path::ZeroCopy => "zero-copy",
            Path::Mapped => "mapped (mmap)",
        }
    }

    pub fn colour(self) -> RGBColor {
        match self {
            Path::ToUser => TO_USER,
            Path::FromUser => FROM_USER,
            Path::ZeroCopy => ZERO_COPY,
            Path::Mapped => MAPPED,
        }
    }

    pub fn of(self, b: &crate::model::report::Bytes) -> u64 {
        match self {
            Path::ToUser => b.copied_to_user,
            Path::FromUser => b.copied_from_user,
            Path::ZeroCopy => b.zero_copy,
            Path::Mapped => b.mapped,
        }
    }
}

/// The colour of a syscall class: a copying call takes the colour of the
/// path its bytes go, so read is blue and write orange here as in the ledger.
pub fn class_colour(class: &str) -> RGBColor {
    match class {
        "copy_to_user" => TO_USER,
        "copy_from_user" => FROM_USER,
        "zero_copy" => ZERO_COPY,
        "mapping" => MAPPED,
        _ => OTHER,
    }
}

/// The classes in display order, with their legend labels.
pub const CLASSES: [(&str, &str); 5] = [
    ("copy_to_user", "copying, kernel → user"),
    ("copy_from_user", "copying, user → kernel"),
    ("zero_copy", "zero-copy"),
    ("mapping", "mapping"),
    ("other", "other"),
];

/// Where a class sorts in the grouped syscall list (unknown classes last).
pub fn class_rank(class: &str) -> usize {
    CLASSES
        .iter()
        .position(|(c, _)| *c == class)
        .unwrap_or(CLASSES.len() - 1)
}

/// `#rrggbb`, for CSS.
pub fn hex(c: RGBColor) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}
