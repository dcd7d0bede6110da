//! Numbers in human form: 64.0 MiB, 1.2 M, 3.4 ms.

use crate::model::report::Timing;

pub use zc_trace_format::{bytes, duration_ns, grouped};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_forms() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1024), "1.0 KiB");
        assert_eq!(bytes(64 << 20), "64.0 MiB");
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_234_567), "1,234,567");
        assert_eq!(duration_ns(999), "999 ns");
        assert_eq!(duration_ns(1_500), "1.5 us");
        assert_eq!(duration_ns(2_500_000), "2.5 ms");
        assert_eq!(duration_ns(3_210_000_000), "3.21 s");
        assert_eq!(duration_ns(3_725_000_000_000), "62m05s");
    }
}

/// Text a traced process controls (its name, argv, paths), made safe to
/// show: control characters (C0, DEL, C1) and the bidirectional overrides
/// that reorder what a terminal shows come out as `\x1b` / `\u{202e}`,
/// so a process named "\e]0;pwned\a" cannot drive the operator's terminal
/// or break an SVG. Every text renderer passes such text through here.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.contains(unsafe_char) {
        return text.into();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            c if !unsafe_char(c) => out.push(c),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    out.into()
}

#[cfg(test)]
mod printable_tests {
    use super::printable;

    #[test]
    fn escapes_what_a_terminal_would_obey() {
        assert_eq!(printable("cp big.iso"), "cp big.iso");
        assert_eq!(printable("\u{1b}]0;pwned\u{7}"), "\\x1b]0;pwned\\x07");
        assert_eq!(printable("a\nb\tc\u{7f}"), "a\\x0ab\\x09c\\x7f");
        assert_eq!(printable("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(printable("evil\u{202e}txt.exe"), "evil\\u{202e}txt.exe");
        assert_eq!(printable("naïve café"), "naïve café");
    }
}

/// Where a run's page faults were taken, for the summary and the HTML.
pub fn fault_split(pf: &crate::model::report::PageFaults) -> String {
    let gup = if pf.get_user_pages > 0 {
        format!(
            ", {} inside the kernel (get_user_pages)",
            grouped(pf.get_user_pages)
        )
    } else {
        String::new()
    };
    format!(
        "{} in user mode, {} in kernel mode{gup}; {} file-backed",
        grouped(pf.user),
        grouped(pf.kernel),
        grouped(pf.file)
    )
}

/// Time in syscalls, each figure named for what it is: on-CPU first (the
/// cost), then off-CPU and wall; says so when calls were not timed.
pub fn call_time(t: &crate::model::report::Totals, timing: Timing) -> String {
    match timing {
        Timing::Off => return "not timed per call (--latency times them)".to_owned(),
        Timing::WallOnly => {
            return format!(
                "{} wall (an older report: on-CPU time not measured)",
                duration_ns(t.time_ns)
            );
        }
        Timing::OnOffCpu => {}
    }
    format!(
        "{} on-CPU, {} off-CPU (blocked or waiting), {} wall",
        duration_ns(t.on_cpu_ns),
        duration_ns(t.off_cpu_ns),
        duration_ns(t.time_ns)
    )
}

/// One CPU time cell of a process row: "-" in an older report, which did
/// not measure it.
pub fn cpu_cell(r: &crate::model::report::Report, ns: u64) -> String {
    if r.timing == Timing::WallOnly {
        "-".to_owned()
    } else {
        duration_ns(ns)
    }
}

/// The traced threads' CPU time from the kernel's accounting.
pub fn cpu_time(r: &crate::model::report::Report) -> String {
    let cpu = &r.totals.cpu;
    if r.timing == Timing::WallOnly {
        return "not measured (an older report)".to_owned();
    }
    format!(
        "{} user + {} system (all traced threads, kernel accounting)",
        duration_ns(cpu.user_ns),
        duration_ns(cpu.system_ns)
    )
}
