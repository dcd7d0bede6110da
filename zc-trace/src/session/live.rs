//! Live output while tracing: one compact line per `--every` interval on
//! stderr (like `perf stat -I`), and one JSON object per interval for
//! `--ndjson`.

use std::{path::PathBuf, time::Duration};

use anyhow::Result;

use crate::{
    model::{
        Counters,
        interval::{Interval, cumulative},
        report::Totals,
    },
    preflight::Output,
    render::format::{bytes, grouped},
};

/// What to print while tracing.
#[derive(Clone, Debug)]
pub struct LiveOptions {
    pub every: Duration,
    /// One line per interval on stderr.
    pub lines: bool,
    /// One JSON object per interval: a file, or `-` for stdout.
    pub ndjson: Option<PathBuf>,
}

/// `--ndjson`'s interval when `--every` is not given.
pub const DEFAULT_EVERY: Duration = Duration::from_secs(1);

pub struct Live {
    pub every: Duration,
    lines: bool,
    ndjson: Option<Output>,
    before: Totals,
    t_before_ns: u64,
}

impl Live {
    /// Opens the --ndjson output (before tracing: a bad path fails now).
    pub fn open(opts: &LiveOptions) -> Result<Self> {
        let ndjson = opts
            .ndjson
            .as_deref()
            .map(|p| {
                if p.as_os_str() == "-" {
                    Output::stdout("interval stream")
                } else {
                    Output::create(p, "interval stream")
                }
            })
            .transpose()?;
        Ok(Self {
            every: opts.every,
            lines: opts.lines,
            ndjson,
            before: Totals::default(),
            t_before_ns: 0,
        })
    }

    /// Reports the interval that ends now (`t_ns` after the start).
    pub fn tick(&mut self, counters: &Counters, t_ns: u64) {
        let now = cumulative(counters);
        let interval = Interval::between(&self.before, &now, self.t_before_ns, t_ns);
        self.before = now;
        self.t_before_ns = t_ns;
        if self.lines {
            eprintln!("{}", line(&interval));
        }
        if let Some(out) = &mut self.ndjson {
            let mut text = serde_json::to_string(&interval).unwrap_or_default();
            text.push('\n');
            if let Err(e) = out.write_all(text.as_bytes()) {
                // Nobody reads it any more (a closed pipe): the trace goes on.
                eprintln!("zc-trace: warning: {e:#}: no more intervals are written");
                self.ndjson = None;
            }
        }
    }

    /// Puts a --ndjson file in place (a stream needs nothing).
    pub fn finish(self) -> Result<()> {
        match self.ndjson {
            Some(out) => out.commit(),
            None => Ok(()),
        }
    }
}

/// "  2.000 s  copied 64.0 MiB in, 64.0 MiB out  zero-copy 0 B  syscalls
/// 2,048  mode switches 4,096  ctx switches 12  faults 3".
pub fn line(i: &Interval) -> String {
    format!(
        "{:>8.3} s  copied {} in, {} out  zero-copy {}  syscalls {}  mode switches {}  ctx switches {}  faults {}",
        i.t_end_ns as f64 / 1e9,
        bytes(i.bytes.copied_to_user),
        bytes(i.bytes.copied_from_user),
        bytes(i.bytes.zero_copy),
        grouped(i.syscalls),
        grouped(i.mode_switches),
        grouped(i.context_switches.voluntary + i.context_switches.involuntary),
        grouped(i.page_faults)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_names_every_counter() {
        let mut i = Interval {
            t_end_ns: 2_000_000_000,
            syscalls: 2048,
            mode_switches: 4096,
            page_faults: 3,
            ..Default::default()
        };
        i.bytes.copied_to_user = 64 << 20;
        let l = line(&i);
        assert!(
            l.starts_with("   2.000 s  copied 64.0 MiB in, 0 B out"),
            "{l}"
        );
        assert!(l.contains("syscalls 2,048  mode switches 4,096"), "{l}");
        assert!(l.ends_with("faults 3"), "{l}");
    }
}
