//! Runs side by side: every cost divided by the bytes of the run, so a
//! change of method (read/write -> sendfile) or of a setting shows as a
//! difference per MiB rather than a difference in run length.
//!
//! Two bases: bytes *moved* across the boundary (copied either way plus
//! zero-copy; what `zc-trace compare` uses, since a saved report knows
//! nothing else) and bytes *delivered* to the consumer (the lab knows its
//! file size: there read+write moves each byte twice but delivers it once).

use super::report::Report;

const MIB: f64 = 1024.0 * 1024.0;

/// What a comparison divides costs by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Basis<'a> {
    /// Bytes each run moved: copied either way plus zero-copy.
    Moved,
    /// Bytes each run delivered, one figure per run in run order.
    Delivered(&'a [u64]),
}

impl Basis<'_> {
    pub fn noun(&self) -> &'static str {
        match self {
            Basis::Moved => "moved",
            Basis::Delivered(_) => "delivered",
        }
    }

    /// The bytes run `i` is divided by.
    pub fn bytes(&self, i: usize, r: &Report) -> u64 {
        match self {
            Basis::Moved => moved_bytes(r),
            Basis::Delivered(b) => b.get(i).copied().unwrap_or(0),
        }
    }
}

/// Bytes a run moved (see `Bytes::moved`).
pub fn moved_bytes(r: &Report) -> u64 {
    r.totals.bytes.moved()
}

/// One run's costs per MiB (or per byte) of its basis; `None` when the run
/// has no bytes to divide by: "n/a", not a cost of zero.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Normalised {
    pub basis_bytes: u64,
    pub syscalls_per_mib: Option<f64>,
    pub mode_switches_per_mib: Option<f64>,
    /// Bytes copied by the CPU (both directions) per byte.
    pub copied_per_byte: Option<f64>,
    pub zero_copy_per_byte: Option<f64>,
    pub page_faults_per_mib: Option<f64>,
    pub context_switches_per_mib: Option<f64>,
    /// Time in the kernel per MiB, in ns.
    pub kernel_ns_per_mib: Option<f64>,
}

pub fn normalise(r: &Report, basis_bytes: u64) -> Normalised {
    let t = &r.totals;
    let per_mib = |x: u64| (basis_bytes > 0).then(|| x as f64 * MIB / basis_bytes as f64);
    let per_byte = |x: u64| (basis_bytes > 0).then(|| x as f64 / basis_bytes as f64);
    Normalised {
        basis_bytes,
        syscalls_per_mib: per_mib(t.syscalls),
        mode_switches_per_mib: per_mib(t.mode_switches),
        copied_per_byte: per_byte(t.bytes.copied_to_user + t.bytes.copied_from_user),
        zero_copy_per_byte: per_byte(t.bytes.zero_copy),
        page_faults_per_mib: per_mib(t.page_faults.total()),
        context_switches_per_mib: per_mib(t.context_switches.total()),
        kernel_ns_per_mib: per_mib(t.time_ns),
    }
}

/// The figures a comparison shows, in display order: (name, value).
pub fn figures(n: &Normalised, noun: &str) -> Vec<(String, Option<f64>)> {
    vec![
        (format!("syscalls per MiB {noun}"), n.syscalls_per_mib),
        (
            format!("mode switches per MiB {noun} (derived)"),
            n.mode_switches_per_mib,
        ),
        (
            format!("bytes copied by the CPU per byte {noun}"),
            n.copied_per_byte,
        ),
        (
            format!("zero-copy bytes per byte {noun}"),
            n.zero_copy_per_byte,
        ),
        (format!("page faults per MiB {noun}"), n.page_faults_per_mib),
        (
            format!("context switches per MiB {noun}"),
            n.context_switches_per_mib,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_mib_and_per_byte() {
        let mut r = Report::default();
        r.totals.bytes.copied_to_user = 1 << 20;
        r.totals.bytes.copied_from_user = 1 << 20;
        r.totals.syscalls = 64;
        r.totals.mode_switches = 128;
        r.totals.page_faults.user = 2;
        let n = normalise(&r, moved_bytes(&r));
        assert_eq!(n.basis_bytes, 2 << 20);
        assert_eq!(n.syscalls_per_mib, Some(32.0));
        assert_eq!(n.mode_switches_per_mib, Some(64.0));
        assert_eq!(n.copied_per_byte, Some(1.0));
        assert_eq!(n.zero_copy_per_byte, Some(0.0));
        assert_eq!(n.page_faults_per_mib, Some(1.0));
        // The same run per byte delivered (1 MiB read, then written).
        let d = normalise(&r, 1 << 20);
        assert_eq!(d.syscalls_per_mib, Some(64.0));
        assert_eq!(d.copied_per_byte, Some(2.0));
    }

    #[test]
    fn device_and_direct_io_bytes_still_count_as_moved() {
        // dd if=F iflag=direct of=/dev/null: schema 1 booked both halves
        // as copies; the bytes moved are the same in schema 2.
        let mut r = Report::default();
        r.totals.bytes.direct_io = 1 << 20;
        r.totals.bytes.device = 1 << 20;
        r.totals.bytes.disk_read = 1 << 20;
        r.totals.page_faults.get_user_pages = 256;
        let n = normalise(&r, moved_bytes(&r));
        assert_eq!(n.basis_bytes, 2 << 20);
        assert_eq!(n.copied_per_byte, Some(0.0));
        assert_eq!(n.page_faults_per_mib, Some(128.0));
    }

    #[test]
    fn a_run_without_bytes_has_no_per_mib_cost() {
        let mut r = Report::default();
        r.totals.syscalls = 10;
        let n = normalise(&r, 0);
        assert_eq!(n.syscalls_per_mib, None);
        assert_eq!(n.copied_per_byte, None);
    }

    #[test]
    fn basis_picks_the_bytes() {
        let mut r = Report::default();
        r.totals.bytes.zero_copy = 10;
        assert_eq!(Basis::Moved.bytes(0, &r), 10);
        assert_eq!(Basis::Delivered(&[7, 8]).bytes(1, &r), 8);
        assert_eq!(Basis::Delivered(&[7]).bytes(3, &r), 0);
        assert_eq!(Basis::Delivered(&[]).noun(), "delivered");
    }
}
