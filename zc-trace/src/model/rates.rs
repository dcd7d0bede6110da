//! Live rankings for `zc-trace top`: per-second rates of each process or
//! cgroup between two cumulative snapshots, and the orders they are sorted
//! by. Pure: snapshots in, rows out.

use std::collections::BTreeMap;

use super::report::Totals;

/// One row of the live view.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Row {
    /// "1234 nginx" or a cgroup path; not escaped.
    pub label: String,
    /// Bytes copied by the CPU (both ways) per second.
    pub copied_per_s: f64,
    /// Zero-copy bytes per second.
    pub zero_copy_per_s: f64,
    pub syscalls_per_s: f64,
    pub faults_per_s: f64,
}

impl Row {
    /// Zero-copy share of the bytes moved in the interval, 0..=1.
    pub fn zero_copy_share(&self) -> f64 {
        let moved = self.copied_per_s + self.zero_copy_per_s;
        if moved > 0.0 {
            self.zero_copy_per_s / moved
        } else {
            0.0
        }
    }
}

/// What the rows are ranked by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SortKey {
    #[default]
    Copied,
    ZeroCopyShare,
    Syscalls,
    Faults,
}

impl SortKey {
    /// The key a keypress picks.
    pub fn from_key(c: char) -> Option<Self> {
        match c {
            'c' => Some(Self::Copied),
            'z' => Some(Self::ZeroCopyShare),
            's' => Some(Self::Syscalls),
            'f' => Some(Self::Faults),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Copied => "CPU-copied B/s",
            Self::ZeroCopyShare => "zero-copy share",
            Self::Syscalls => "syscalls/s",
            Self::Faults => "faults/s",
        }
    }

    fn of(self, r: &Row) -> f64 {
        match self {
            Self::Copied => r.copied_per_s,
            Self::ZeroCopyShare => r.zero_copy_share(),
            Self::Syscalls => r.syscalls_per_s,
            Self::Faults => r.faults_per_s,
        }
    }
}

/// The rates of each key over `secs`: `now` minus `before` (a key new in
/// `now` counts from zero; one gone from `now` is left out).
pub fn rows<K: Ord>(
    before: &BTreeMap<K, Totals>,
    now: &BTreeMap<K, Totals>,
    secs: f64,
    label: impl Fn(&K) -> String,
) -> Vec<Row> {
    if secs <= 0.0 {
        return Vec::new();
    }
    now.iter()
        .map(|(k, t)| {
            let b = before.get(k).copied().unwrap_or_default();
            let per_s = |now: u64, before: u64| now.saturating_sub(before) as f64 / secs;
            let faults = |t: &Totals| t.page_faults.user + t.page_faults.kernel;
            Row {
                label: label(k),
                copied_per_s: per_s(t.bytes.cpu_copied(), b.bytes.cpu_copied()),
                zero_copy_per_s: per_s(t.bytes.zero_copy, b.bytes.zero_copy),
                syscalls_per_s: per_s(t.syscalls, b.syscalls),
                faults_per_s: per_s(faults(t), faults(&b)),
            }
        })
        .collect()
}

/// Highest first by `key`, then by label.
pub fn sort(rows: &mut [Row], key: SortKey) {
    rows.sort_by(|a, b| {
        key.of(b)
            .total_cmp(&key.of(a))
            .then_with(|| a.label.cmp(&b.label))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(copied: u64, zero: u64, calls: u64) -> Totals {
        let mut t = Totals::default();
        t.bytes.copied_to_user = copied;
        t.bytes.zero_copy = zero;
        t.syscalls = calls;
        t
    }

    #[test]
    fn rates_are_differences_per_second_and_sort_by_the_key() {
        let before = BTreeMap::from([(1, totals(100, 0, 10)), (2, totals(0, 0, 0))]);
        let now = BTreeMap::from([
            (1, totals(300, 0, 30)),
            (2, totals(100, 300, 5)),
            (3, totals(50, 0, 100)),
        ]);
        let mut r = rows(&before, &now, 2.0, |k| k.to_string());
        sort(&mut r, SortKey::Copied);
        let order: Vec<&str> = r.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(order, ["1", "2", "3"], "copied: 100/s, 50/s, 25/s");
        assert_eq!(r[0].copied_per_s, 100.0);
        assert_eq!(r[1].zero_copy_share(), 0.75);
        sort(&mut r, SortKey::Syscalls);
        assert_eq!(r[0].label, "3");
        sort(&mut r, SortKey::ZeroCopyShare);
        assert_eq!(r[0].label, "2");
        assert!(rows(&before, &now, 0.0, |k| k.to_string()).is_empty());
        assert_eq!(SortKey::from_key('f'), Some(SortKey::Faults));
        assert_eq!(Row::default().zero_copy_share(), 0.0);
    }
}
