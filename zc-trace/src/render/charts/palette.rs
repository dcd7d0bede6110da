//! The one palette every chart (and the HTML report) uses, so a path has the
//! same colour everywhere: learn it once on the ledger, read it on the rest.
//! The byte paths and syscall classes take their colours from
//! `Class::look()`, where each class is defined.

use plotters::style::RGBColor;

use crate::model::report::Bytes;
use zc_trace_common::syscalls::Class;

/// Read or written on a character device (not a copy).
pub const DEVICE: RGBColor = RGBColor(188, 189, 34);
/// O_DIRECT file I/O (DMA to or from user pages).
pub const DIRECT_IO: RGBColor = RGBColor(0, 128, 128);
/// Read from storage into the page cache (DMA).
pub const DISK_READ: RGBColor = RGBColor(120, 120, 60);
/// Pinned by MSG_ZEROCOPY / SEND_ZC instead of copied at the call.
pub const ZEROCOPY_SENT: RGBColor = RGBColor(44, 160, 140);
/// Copied by the kernel after all (deferred copy of a zero-copy send).
pub const ZEROCOPY_COPIED: RGBColor = RGBColor(214, 120, 80);
/// Copied by copy-on-write faults.
pub const COW_COPIED: RGBColor = RGBColor(170, 60, 110);
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

/// The legend of the copy ledger's paths, in ledger order.
pub fn path_legend() -> Vec<(String, RGBColor)> {
    Class::ledger()
        .map(|(c, row)| (row.label.to_owned(), class_colour(c)))
        .collect()
}

/// The ledger's rows beyond the syscall classes' columns: bytes that moved
/// without a CPU copy at the call (device, O_DIRECT, MSG_ZEROCOPY), the
/// kernel's copies the calls do not show (deferred zero-copy copies,
/// copy-on-write) and the DMA from disk before any copy. Shown only when
/// non-zero: most runs never touch them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExtraPath {
    Device,
    DirectIo,
    ZerocopySent,
    ZerocopyCopied,
    CowCopied,
    DiskRead,
}

impl ExtraPath {
    pub const ALL: [ExtraPath; 6] = [
        ExtraPath::Device,
        ExtraPath::DirectIo,
        ExtraPath::ZerocopySent,
        ExtraPath::ZerocopyCopied,
        ExtraPath::CowCopied,
        ExtraPath::DiskRead,
    ];

    /// The rows that carried bytes in `b`, in ledger order.
    pub fn shown(b: &Bytes) -> Vec<ExtraPath> {
        Self::ALL.into_iter().filter(|p| p.of(b) > 0).collect()
    }

    /// Whether the bytes crossed the user/kernel boundary as bytes of their
    /// own: disk reads come before that, the deferred copies of zero-copy
    /// sends are a part of `zerocopy_sent`, and copy-on-write copies stay
    /// in user memory.
    pub fn crosses_boundary(self) -> bool {
        matches!(
            self,
            ExtraPath::Device | ExtraPath::DirectIo | ExtraPath::ZerocopySent
        )
    }

    /// The bytes of the rows that cross the boundary.
    pub fn boundary_bytes(b: &Bytes) -> u64 {
        Self::ALL
            .into_iter()
            .filter(|p| p.crosses_boundary())
            .map(|p| p.of(b))
            .sum()
    }

    /// Why these bytes are not a CPU copy across the boundary.
    pub fn reason(self) -> &'static str {
        match self {
            ExtraPath::Device => {
                "read/write on a character device (/dev/null, ttys ...): the driver decides, no copy booked"
            }
            ExtraPath::DirectIo => {
                "O_DIRECT file I/O: the device DMAs to/from the user pages, no CPU copy"
            }
            ExtraPath::ZerocopySent => {
                "sent with MSG_ZEROCOPY / io_uring SEND_ZC: pinned, not copied at the call"
            }
            ExtraPath::ZerocopyCopied => {
                "of the zero-copy sends, what the kernel reported it copied after all (always over loopback)"
            }
            ExtraPath::CowCopied => {
                "copied by copy-on-write faults (fork, MAP_PRIVATE writes): one page per fault"
            }
            ExtraPath::DiskRead => {
                "read from storage into the page cache (DMA) before any copy to the program"
            }
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            ExtraPath::Device => "character device",
            ExtraPath::DirectIo => "direct I/O (O_DIRECT)",
            ExtraPath::ZerocopySent => "sent zero-copy (pinned)",
            ExtraPath::ZerocopyCopied => "zero-copy, copied later",
            ExtraPath::CowCopied => "copy-on-write copies",
            ExtraPath::DiskRead => "disk -> page cache",
        }
    }

    pub fn colour(self) -> RGBColor {
        match self {
            ExtraPath::Device => DEVICE,
            ExtraPath::DirectIo => DIRECT_IO,
            ExtraPath::ZerocopySent => ZEROCOPY_SENT,
            ExtraPath::ZerocopyCopied => ZEROCOPY_COPIED,
            ExtraPath::CowCopied => COW_COPIED,
            ExtraPath::DiskRead => DISK_READ,
        }
    }

    pub fn of(self, b: &Bytes) -> u64 {
        match self {
            ExtraPath::Device => b.device,
            ExtraPath::DirectIo => b.direct_io,
            ExtraPath::ZerocopySent => b.zerocopy_sent,
            ExtraPath::ZerocopyCopied => b.zerocopy_copied,
            ExtraPath::CowCopied => b.cow_copied,
            ExtraPath::DiskRead => b.disk_read,
        }
    }
}

/// Where a class sorts in the grouped syscall list.
pub fn class_rank(class: Class) -> usize {
    Class::ALL.iter().position(|c| *c == class).unwrap_or(0)
}

/// `#rrggbb`, for CSS.
pub fn hex(c: RGBColor) -> String {
    format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2)
}
