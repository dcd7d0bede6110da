//! The copy ledger's byte classes: one `ByteClass` per column of `Bytes`,
//! with everything a column means beside it (its JSON key, labels, colour,
//! why its bytes are not a CPU copy, whether they cross the user/kernel
//! boundary, and which calls or counters fill it). Every list of byte
//! classes (the JSON, the summary, the HTML, the charts, the timeline, the
//! exporter, the lab) iterates `ByteClass::ALL`, so a new class is a variant
//! here (in `ALL`, with its `key()` and `look()`), its `Bytes` field and
//! `get_mut` arm, and the probe that fills it (a counter `look().event`
//! reads, or an fd kind its section names). The compiler and the checks
//! below catch a piece left out.

use std::ops::{Index, IndexMut};

use derive_more::AddAssign;
use serde::{Deserialize, Serialize};
use zc_trace_common::{FdKind, ProcCounters, syscalls::Class};

/// One column of the copy ledger. Declared (and serde-named) in the order
/// of the JSON report's keys; `ledger_order` is the order it is shown in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ByteClass {
    CopiedToUser,
    CopiedFromUser,
    ZeroCopy,
    Mapped,
    Device,
    DirectIo,
    DiskRead,
    ZerocopySent,
    ZerocopyCopied,
    CowCopied,
}

/// The part of the ledger a class is shown in, in display order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    /// The bytes of the calls of a syscall class (the ledger rule for that
    /// class): shown even when zero, the reader's frame of reference.
    Calls(Class),
    /// Moved at a copying call without a CPU copy: the calls' bytes on fds
    /// of this kind are filed here instead of under their class.
    NoCpuCopy(FdKind),
    /// Copied by the kernel where no call's return value shows it.
    KernelCopy,
    /// DMA from storage, before any copy.
    Dma,
}

impl Section {
    fn rank(self) -> u8 {
        match self {
            Section::Calls(_) => 0,
            Section::NoCpuCopy(_) => 1,
            Section::KernelCopy => 2,
            Section::Dma => 3,
        }
    }
}

/// What a byte class means and how it is shown.
#[derive(Clone, Copy)]
pub struct Look {
    pub section: Section,
    /// The per-process counter the probes keep outside syscall rows that
    /// adds to this column, if any.
    pub event: Option<fn(&ProcCounters) -> u64>,
    /// Whether these bytes crossed the user/kernel boundary as bytes of
    /// their own: mapped bytes are a length, not a transfer; disk reads
    /// come before the boundary, the deferred copies of zero-copy sends are
    /// a part of `zerocopy_sent`, and copy-on-write copies stay in user
    /// memory.
    pub crosses_boundary: bool,
    /// The path's label in the charts and the HTML ...
    pub label: &'static str,
    /// ... and in plain ASCII for the terminal.
    pub text_label: &'static str,
    /// The calls that move these bytes, or why they are not a CPU copy,
    /// in full (HTML) ...
    pub via: &'static str,
    /// ... and short (terminal).
    pub text_via: &'static str,
    /// Red, green, blue: a syscall-class column takes its class's colour,
    /// so read is blue and write orange in every chart.
    pub rgb: (u8, u8, u8),
}

impl ByteClass {
    /// Every class, in the JSON report's order.
    pub const ALL: [ByteClass; 10] = [
        Self::CopiedToUser,
        Self::CopiedFromUser,
        Self::ZeroCopy,
        Self::Mapped,
        Self::Device,
        Self::DirectIo,
        Self::DiskRead,
        Self::ZerocopySent,
        Self::ZerocopyCopied,
        Self::CowCopied,
    ];

    /// The class's key in the JSON report (its serde name, and the name
    /// of its `Bytes` field).
    pub const fn key(self) -> &'static str {
        match self {
            Self::CopiedToUser => "copied_to_user",
            Self::CopiedFromUser => "copied_from_user",
            Self::ZeroCopy => "zero_copy",
            Self::Mapped => "mapped",
            Self::Device => "device",
            Self::DirectIo => "direct_io",
            Self::DiskRead => "disk_read",
            Self::ZerocopySent => "zerocopy_sent",
            Self::ZerocopyCopied => "zerocopy_copied",
            Self::CowCopied => "cow_copied",
        }
    }

    pub fn look(self) -> Look {
        let calls = |class: Class, label, text_label, via, text_via| Look {
            section: Section::Calls(class),
            event: None,
            crosses_boundary: class != Class::Mapping,
            label,
            text_label,
            via,
            text_via,
            rgb: class.look().rgb,
        };
        // The classes past the syscall columns say the same on every output.
        let beyond = |section, crosses_boundary, label, reason, rgb| Look {
            section,
            event: None,
            crosses_boundary,
            label,
            text_label: label,
            via: reason,
            text_via: reason,
            rgb,
        };
        match self {
            Self::CopiedToUser => calls(
                Class::CopyToUser,
                "copied kernel → user",
                "copied by CPU, kernel -> user",
                "read, pread64, readv, recv* ...",
                "read, recv* ...",
            ),
            Self::CopiedFromUser => calls(
                Class::CopyFromUser,
                "copied user → kernel",
                "copied by CPU, user -> kernel",
                "write, pwrite64, writev, send* ...",
                "write, send* ...",
            ),
            Self::ZeroCopy => calls(
                Class::ZeroCopy,
                "zero-copy",
                "moved zero-copy",
                "sendfile, splice, tee, vmsplice, copy_file_range",
                "sendfile, splice, tee, vmsplice, copy_file_range",
            ),
            Self::Mapped => calls(
                Class::Mapping,
                "mapped (mmap)",
                "mapped (file-backed mmap)",
                "file-backed mmap length",
                "mmap length",
            ),
            Self::Device => beyond(
                Section::NoCpuCopy(FdKind::Device),
                true,
                "character device",
                "read/write on a character device (/dev/null, ttys ...): the driver decides, no copy booked",
                (188, 189, 34),
            ),
            Self::DirectIo => beyond(
                Section::NoCpuCopy(FdKind::Direct),
                true,
                "direct I/O (O_DIRECT)",
                "O_DIRECT file I/O: the device DMAs to/from the user pages, no CPU copy",
                (0, 128, 128),
            ),
            Self::DiskRead => Look {
                event: Some(|e| e.disk_read),
                ..beyond(
                    Section::Dma,
                    false,
                    "disk -> page cache",
                    "read from storage into the page cache (DMA) before any copy to the program",
                    (120, 120, 60),
                )
            },
            Self::ZerocopySent => Look {
                event: Some(|e| e.zerocopy_sent),
                ..beyond(
                    Section::NoCpuCopy(FdKind::Zerocopy),
                    true,
                    "sent zero-copy (pinned)",
                    "sent with MSG_ZEROCOPY / io_uring SEND_ZC: pinned, not copied at the call",
                    (44, 160, 140),
                )
            },
            Self::ZerocopyCopied => Look {
                event: Some(|e| e.zerocopy_copied),
                ..beyond(
                    Section::KernelCopy,
                    false,
                    "zero-copy, copied later",
                    "of the zero-copy sends, what the kernel reported it copied after all (always over loopback)",
                    (214, 120, 80),
                )
            },
            Self::CowCopied => Look {
                event: Some(|e| e.cow_copied),
                ..beyond(
                    Section::KernelCopy,
                    false,
                    "copy-on-write copies",
                    "copied by copy-on-write faults (fork, MAP_PRIVATE writes): one page per fault",
                    (170, 60, 110),
                )
            },
        }
    }

    /// Every class in the order the ledger shows them: the syscall classes'
    /// columns, then bytes moved without a CPU copy at the call, the
    /// kernel's copies no call shows, and the DMA before any copy.
    pub fn ledger_order() -> impl Iterator<Item = ByteClass> {
        let mut all = Self::ALL;
        all.sort_by_key(|c| c.look().section.rank());
        all.into_iter()
    }

    /// Whether the ledger shows the class even when it holds nothing: the
    /// syscall classes' columns do, the rest only when some run used them.
    pub fn always_shown(self) -> bool {
        matches!(self.look().section, Section::Calls(_))
    }

    /// The classes the ledger of `b` shows, in ledger order.
    pub fn shown(b: &Bytes) -> impl Iterator<Item = ByteClass> + '_ {
        Self::ledger_order().filter(|c| c.always_shown() || b.get(*c) > 0)
    }

    /// The ledger rule: the column the bytes of a call of syscall class
    /// `class` on an fd of kind `kind` are filed under (`None` for a class
    /// whose bytes the ledger does not count). A read or write on a
    /// character device or an O_DIRECT fd is not a CPU copy: the driver,
    /// or the device's DMA, moves the data.
    pub fn filed_under(class: Class, kind: FdKind) -> Option<ByteClass> {
        let copying = matches!(class, Class::CopyToUser | Class::CopyFromUser);
        let by_kind = || {
            Self::ALL
                .into_iter()
                .find(|c| c.look().section == Section::NoCpuCopy(kind))
        };
        let by_class = || {
            Self::ALL
                .into_iter()
                .find(|c| c.look().section == Section::Calls(class))
        };
        copying.then(by_kind).flatten().or_else(by_class)
    }
}

/// The copy ledger: bytes by class. Its JSON keys are `ByteClass::key`
/// (the field names), in `ByteClass::ALL` order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, AddAssign)]
pub struct Bytes {
    /// Returned by read-family calls: copied by the CPU, kernel -> user.
    pub copied_to_user: u64,
    /// Accepted by write-family calls: copied by the CPU, user -> kernel.
    pub copied_from_user: u64,
    /// Moved by sendfile/splice/tee/vmsplice/copy_file_range.
    pub zero_copy: u64,
    /// Length of file-backed mmap calls.
    pub mapped: u64,
    /// Read or written by read/write-family calls on a character device
    /// (/dev/null, /dev/zero, ttys ...): the driver decides, not a copy.
    #[serde(default)]
    pub device: u64,
    /// Read or written by read/write-family calls on an O_DIRECT file or
    /// block device: DMA straight to or from the user pages, no CPU copy.
    #[serde(default)]
    pub direct_io: u64,
    /// Read from storage into the page cache on the process's behalf (the
    /// DMA before any copy): pages inserted in its context outside write
    /// calls. Not part of the bytes that crossed the user/kernel boundary.
    #[serde(default)]
    pub disk_read: u64,
    /// Handed to the kernel pinned, not copied at the call: send calls
    /// with MSG_ZEROCOPY on an SO_ZEROCOPY socket, io_uring SEND_ZC.
    #[serde(default)]
    pub zerocopy_sent: u64,
    /// Of `zerocopy_sent`, what the kernel reported it copied after all
    /// (over loopback: all of it). Only known for the completions the
    /// program read; see the notes.
    #[serde(default)]
    pub zerocopy_copied: u64,
    /// Copied by copy-on-write faults (a forked child writing its parent's
    /// pages, writes into a MAP_PRIVATE file mapping): page size x pages
    /// copied. Not part of the bytes that crossed the user/kernel boundary.
    #[serde(default)]
    pub cow_copied: u64,
}

// One field per class: a field without a class (or the reverse) fails here;
// `get` and `get_mut` then cannot compile without an arm for it, and a
// test checks each arm against the JSON key.
const _: () = assert!(size_of::<Bytes>() == ByteClass::ALL.len() * size_of::<u64>());

impl Bytes {
    pub fn get(&self, class: ByteClass) -> u64 {
        let mut copy = *self;
        *copy.get_mut(class)
    }

    pub fn get_mut(&mut self, class: ByteClass) -> &mut u64 {
        match class {
            ByteClass::CopiedToUser => &mut self.copied_to_user,
            ByteClass::CopiedFromUser => &mut self.copied_from_user,
            ByteClass::ZeroCopy => &mut self.zero_copy,
            ByteClass::Mapped => &mut self.mapped,
            ByteClass::Device => &mut self.device,
            ByteClass::DirectIo => &mut self.direct_io,
            ByteClass::DiskRead => &mut self.disk_read,
            ByteClass::ZerocopySent => &mut self.zerocopy_sent,
            ByteClass::ZerocopyCopied => &mut self.zerocopy_copied,
            ByteClass::CowCopied => &mut self.cow_copied,
        }
    }

    /// Files `bytes` of a call of class `class` on an fd of kind `kind`
    /// under its column (see `ByteClass::filed_under`).
    pub fn add(&mut self, class: Class, kind: FdKind, bytes: u64) {
        if let Some(c) = ByteClass::filed_under(class, kind) {
            *self.get_mut(c) += bytes;
        }
    }

    /// The sum of the classes `keep` selects.
    pub fn sum(&self, keep: impl Fn(ByteClass) -> bool) -> u64 {
        ByteClass::ALL
            .into_iter()
            .filter(|c| keep(*c))
            .map(|c| self.get(c))
            .sum()
    }

    /// The bytes the calls moved across the user/kernel boundary: copied
    /// either way, moved zero-copy, and moved without a CPU copy at the
    /// call (devices, O_DIRECT, MSG_ZEROCOPY). Mapped bytes are a length,
    /// not a transfer; disk reads, the kernel's deferred copies of
    /// zero-copy sends and copy-on-write copies are not extra bytes moved.
    pub fn moved(&self) -> u64 {
        self.sum(|c| c.look().crosses_boundary)
    }

    /// The bytes the counters of events (not syscall rows) file: disk
    /// reads, zero-copy sends outside syscalls and their notifications,
    /// copy-on-write copies.
    pub fn from_events(e: &ProcCounters) -> Self {
        let mut b = Bytes::default();
        for c in ByteClass::ALL {
            if let Some(count) = c.look().event {
                *b.get_mut(c) = count(e);
            }
        }
        b
    }

    /// The bytes moved since `before`, column by column (0 for a column
    /// that went backwards, which a cumulative count never should).
    pub fn since(&self, before: &Bytes) -> Bytes {
        let mut out = Bytes::default();
        for c in ByteClass::ALL {
            *out.get_mut(c) = self.get(c).saturating_sub(before.get(c));
        }
        out
    }

    /// Bytes the CPU copied across the boundary, both ways.
    pub fn cpu_copied(&self) -> u64 {
        self.copied_to_user + self.copied_from_user
    }

    /// The share of the bytes moved that went zero-copy rather than
    /// copied by the CPU, 0..=1 (0 when nothing moved).
    pub fn zero_copy_share(&self) -> f64 {
        let moved = self.zero_copy + self.cpu_copied();
        if moved == 0 {
            0.0
        } else {
            self.zero_copy as f64 / moved as f64
        }
    }
}

/// A value for each byte class (a rate, a signed difference ...), indexed
/// by `ByteClass`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PerClass<T>([T; ByteClass::ALL.len()]);

impl<T> Index<ByteClass> for PerClass<T> {
    type Output = T;
    fn index(&self, c: ByteClass) -> &T {
        &self.0[c as usize]
    }
}

impl<T> IndexMut<ByteClass> for PerClass<T> {
    fn index_mut(&mut self, c: ByteClass) -> &mut T {
        &mut self.0[c as usize]
    }
}

impl<T> PerClass<T> {
    /// `f` of each class.
    pub fn from_fn(f: impl Fn(ByteClass) -> T) -> Self {
        PerClass(ByteClass::ALL.map(f))
    }
}

// `PerClass` indexes by discriminant: ALL must list the classes in
// declaration order.
const _: () = {
    let mut i = 0;
    while i < ByteClass::ALL.len() {
        assert!(ByteClass::ALL[i] as usize == i);
        i += 1;
    }
};

#[cfg(test)]
mod tests {
    use super::*;

    /// Each class's key is its serde name and its `Bytes` field's JSON key,
    /// in the same order: `get` reads the field the key names.
    #[test]
    fn every_class_is_its_bytes_field_in_json() {
        let mut b = Bytes::default();
        for (i, c) in ByteClass::ALL.into_iter().enumerate() {
            *b.get_mut(c) = i as u64 + 1;
            let name = serde_json::to_string(&c).unwrap();
            assert_eq!(name, format!("\"{}\"", c.key()));
        }
        let serde_json::Value::Object(json) = serde_json::to_value(b).unwrap() else {
            panic!("Bytes is not a JSON object");
        };
        let keys: Vec<&str> = ByteClass::ALL.map(|c| c.key()).to_vec();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(json.keys().map(String::as_str).collect::<Vec<_>>(), sorted);
        for (i, c) in ByteClass::ALL.into_iter().enumerate() {
            assert_eq!(json[c.key()], i as u64 + 1, "{}", c.key());
        }
        let text = serde_json::to_string(&b).unwrap();
        let order: Vec<usize> = keys.iter().map(|k| text.find(k).unwrap()).collect();
        assert!(order.is_sorted(), "JSON keys in ALL order: {text}");
    }

    #[test]
    fn bytes_are_filed_by_class() {
        let mut b = Bytes::default();
        for (i, class) in Class::ALL.into_iter().enumerate() {
            b.add(class, FdKind::File, 1 << i);
        }
        assert_eq!(b.mapped, 8);
        assert_eq!(b.sum(|_| true), 15, "other's bytes are not filed");
    }

    #[test]
    fn the_ledger_shows_syscall_columns_first_and_dma_last() {
        let order: Vec<&str> = ByteClass::ledger_order().map(|c| c.key()).collect();
        assert_eq!(
            order,
            [
                "copied_to_user",
                "copied_from_user",
                "zero_copy",
                "mapped",
                "device",
                "direct_io",
                "zerocopy_sent",
                "zerocopy_copied",
                "cow_copied",
                "disk_read"
            ]
        );
        let b = Bytes {
            cow_copied: 1,
            ..Default::default()
        };
        let shown: Vec<ByteClass> = ByteClass::shown(&b).collect();
        assert_eq!(shown.len(), 5);
        assert_eq!(shown[4], ByteClass::CowCopied);
    }

    #[test]
    fn copies_on_devices_and_direct_fds_are_not_cpu_copies() {
        let mut b = Bytes::default();
        b.add(Class::CopyToUser, FdKind::Device, 1);
        b.add(Class::CopyFromUser, FdKind::Direct, 2);
        b.add(Class::CopyFromUser, FdKind::Zerocopy, 4);
        b.add(Class::ZeroCopy, FdKind::Device, 8);
        b.add(Class::Other, FdKind::Device, 16);
        assert_eq!(
            (b.device, b.direct_io, b.zerocopy_sent, b.zero_copy),
            (1, 2, 4, 8)
        );
        assert_eq!(b.cpu_copied(), 0);
        assert_eq!(b.moved(), 15);
    }

    #[test]
    fn event_counters_fill_their_columns() {
        let e = ProcCounters {
            disk_read: 1,
            zerocopy_sent: 2,
            zerocopy_copied: 3,
            cow_copied: 4,
            faults_user: 99,
            ..Default::default()
        };
        let b = Bytes::from_events(&e);
        assert_eq!(
            (
                b.disk_read,
                b.zerocopy_sent,
                b.zerocopy_copied,
                b.cow_copied
            ),
            (1, 2, 3, 4)
        );
        assert_eq!(b.sum(|_| true), 10);
    }

    #[test]
    fn since_subtracts_every_column() {
        let mut now = Bytes::default();
        let mut before = Bytes::default();
        for c in ByteClass::ALL {
            *now.get_mut(c) = 10;
            *before.get_mut(c) = 3;
        }
        before.cow_copied = 20;
        let d = now.since(&before);
        assert_eq!(d.sum(|_| true), 7 * 9);
        assert_eq!(d.cow_copied, 0);
    }
}
