//! Axis units in human form. The unit is chosen once per axis from its
//! largest value and the data are divided by it, so plotters picks round
//! ticks in that unit (0, 5, 10 MiB) rather than round numbers of bytes.

/// A divisor and the name of the unit it gives.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scale {
    pub div: f64,
    pub unit: &'static str,
}

impl Scale {
    pub fn apply(&self, v: f64) -> f64 {
        v / self.div
    }
}

fn pick(max: f64, base: f64, units: &[&'static str]) -> Scale {
    let mut div = 1.0;
    let mut i = 0;
    while i + 1 < units.len() && max >= div * base {
        div *= base;
        i += 1;
    }
    Scale {
        div,
        unit: units[i],
    }
}

/// B, KiB, MiB ... for a byte axis whose largest value is `max`.
pub fn bytes(max: f64) -> Scale {
    pick(max, 1024.0, &["B", "KiB", "MiB", "GiB", "TiB", "PiB"])
}

/// Bytes per second.
pub fn byte_rate(max: f64) -> Scale {
    pick(max, 1024.0, &["B/s", "KiB/s", "MiB/s", "GiB/s", "TiB/s"])
}

/// Plain counts: "", k, M, G.
pub fn count(max: f64) -> Scale {
    pick(max, 1000.0, &["", "k", "M", "G", "T"])
}

/// Counts per second.
pub fn count_rate(max: f64) -> Scale {
    pick(max, 1000.0, &["/s", "k/s", "M/s", "G/s"])
}

/// Kernel time: ns, us, ms, s.
pub fn nanos(max: f64) -> Scale {
    pick(max, 1000.0, &["ns", "us", "ms", "s"])
}

/// The time axis of a run: ms below 2 s, s below 5 min, then minutes.
pub fn run_time(duration_ns: u64) -> Scale {
    if duration_ns < 2_000_000_000 {
        Scale {
            div: 1e6,
            unit: "ms",
        }
    } else if duration_ns < 300_000_000_000 {
        Scale {
            div: 1e9,
            unit: "s",
        }
    } else {
        Scale {
            div: 60e9,
            unit: "min",
        }
    }
}

/// A tick value without float noise: 2.5, 10, 0.125 (at most 3 decimals).
pub fn tick(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return "0".into();
    }
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.to_owned() }
}

/// A tick with its unit: "2.5 MiB", "10k", "50/s"; zero is just "0".
pub fn tick_in(v: f64, scale: &Scale) -> String {
    let n = tick(v);
    if n == "0" {
        return n;
    }
    // Count suffixes attach to the number; byte and time units stand apart.
    let attached = scale.unit.is_empty()
        || scale.unit.starts_with('/')
        || matches!(scale.unit.split('/').next(), Some("k" | "M" | "G" | "T"));
    if attached {
        format!("{n}{}", scale.unit)
    } else {
        format!("{n} {}", scale.unit)
    }
}

/// A count as a label: exact below 10,000, else "12.3 k (12,345)".
pub fn count_label(n: u64) -> String {
    if n < 10_000 {
        return super::super::format::grouped(n);
    }
    let s = count(n as f64);
    format!(
        "{:.1} {} ({})",
        n as f64 / s.div,
        s.unit,
        super::super::format::grouped(n)
    )
}

pub use zc_trace_format::figure;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales() {
        assert_eq!(bytes(0.0).unit, "B");
        assert_eq!(bytes(1023.0).unit, "B");
        assert_eq!(bytes(1024.0).unit, "KiB");
        assert_eq!(bytes(5.0 * 1024.0 * 1024.0 * 1024.0).unit, "GiB");
        assert_eq!(count(999.0).unit, "");
        assert_eq!(count(2_500_000.0).unit, "M");
        assert_eq!(run_time(50_000_000).unit, "ms");
        assert_eq!(run_time(30_000_000_000).unit, "s");
        assert_eq!(run_time(7_200_000_000_000).unit, "min");
        assert_eq!(nanos(4_500_000.0).unit, "ms");
    }

    #[test]
    fn labels() {
        assert_eq!(tick(2.5), "2.5");
        assert_eq!(tick(10.0), "10");
        assert_eq!(tick(0.30000000000000004), "0.3");
        assert_eq!(tick_in(10.0, &count(20_000.0)), "10k");
        assert_eq!(tick_in(1.5, &bytes(2e6)), "1.5 MiB");
        assert_eq!(tick_in(0.0, &bytes(2e6)), "0");
        assert_eq!(tick_in(50.0, &count_rate(60.0)), "50/s");
        assert_eq!(tick_in(2.5, &count_rate(3e3)), "2.5k/s");
        assert_eq!(tick_in(2.5, &byte_rate(3e6)), "2.5 MiB/s");
        assert_eq!(count_label(1670), "1,670");
        assert_eq!(count_label(1_234_567), "1.2 M (1,234,567)");
        assert_eq!(figure(f64::NAN), "n/a");
        assert_eq!(figure(0.5), "0.50");
        assert_eq!(figure(1234.4), "1,234");
    }
}
