//! The command line.

use std::{ffi::OsString, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand};

use crate::error::{EXIT_USAGE, failure};

const EXAMPLES: &str = "\
Examples:
  zc-trace -- cp big.iso /tmp/              trace a command and its children
  zc-trace --json run.json -- ./server      also write the full report as JSON
  zc-trace -p 1234 --duration 10s           attach to a running process for 10 s
  zc-trace -p 1234 -f                       ... and follow the children it forks
  zc-trace -p 1234,1240 --json - | jq .     two processes; the report on stdout
  zc-trace --cgroup system.slice/nginx.service -d 1m   a service's cgroup (and below)
  zc-trace -a -d 10s                        the whole machine, per process and cgroup
  zc-trace -a --every 1s                    one line per second until Ctrl-C
  zc-trace -p 1234 --ndjson - | jq .        one JSON object per second, for pipelines
  zc-trace -o out/ -- ./server              report.json, charts and report.html in out/
  zc-trace report run.json -o out/          charts from a saved report (no root needed)
  zc-trace compare a.json b.json -o out/    two runs side by side, per MiB written
  zc-trace lab                              read+write vs mmap vs sendfile vs splice, measured
  zc-trace serve --listen 127.0.0.1:9464    OpenMetrics for Prometheus, the whole machine

The summary goes to stderr (or --summary FILE); the command's own stdin,
stdout and stderr pass through untouched. Needs root (or CAP_BPF and
CAP_PERFMON) and a kernel with BTF.";

#[derive(Debug, Parser)]
#[command(
    name = "zc-trace",
    version,
    about = "Where do my bytes get copied? Counts the syscalls, bytes, copies, zero-copy \
             transfers, mode switches, context switches and page faults of a process, in kernel.",
    after_help = EXAMPLES,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub subcommand: Option<Command>,

    /// Attach to running processes (all their threads), comma-separated.
    #[arg(short = 'p', long = "pid", value_name = "PID,...")]
    pub pid: Option<String>,

    /// Trace every process in this cgroup v2 and below it, including those
    /// that join later (a directory under the v2 mount, or a path as
    /// /proc/PID/cgroup shows it). Runs until Ctrl-C or --duration.
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<PathBuf>,

    /// Trace the whole machine (every process but zc-trace). Runs until
    /// Ctrl-C or --duration.
    #[arg(short = 'a', long = "all")]
    pub all: bool,

    /// With -p: also trace the children the process forks from now on.
    /// (A wrapped command's children are always followed.)
    #[arg(short = 'f', long = "follow-forks")]
    pub follow_forks: bool,

    /// Write the full report as JSON to FILE (`-` for stdout).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Write report.json, the charts and report.html into DIR.
    #[arg(short = 'o', long = "output-dir", value_name = "DIR")]
    pub output_dir: Option<PathBuf>,

    /// With -o: charts as SVG instead of PNG.
    #[arg(long)]
    pub svg: bool,

    /// Name the run in comparisons (`compare`) instead of by its command.
    #[arg(long, value_name = "TEXT", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub label: Option<String>,

    /// Write the summary to FILE instead of stderr.
    #[arg(long, value_name = "FILE")]
    pub summary: Option<PathBuf>,

    /// Do not print the summary (still written with --summary).
    #[arg(short, long)]
    pub quiet: bool,

    /// Stop tracing after this long (e.g. 500ms, 10s, 5m; at most a year).
    #[arg(short, long, value_name = "TIME", value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// Time every syscall: time in the kernel per call and latency
    /// histograms. Attaches a second probe, which runs on every syscall of
    /// every process on the machine (not timed by default).
    #[arg(long)]
    pub latency: bool,

    /// Do not time syscalls: the default (kept for scripts that ask for it).
    #[arg(long, hide = true, conflicts_with = "latency")]
    pub no_latency: bool,

    /// Do not measure zc-trace's own cost at all (by default BPF run-time
    /// statistics are on 1% of the time, in windows from 10 ms, and scaled).
    #[arg(long)]
    pub no_cost: bool,

    /// Measure zc-trace's own cost exactly: BPF run-time statistics on all
    /// run long, which adds two clock reads to every probe run (on every
    /// syscall of the machine).
    #[arg(long, conflicts_with = "no_cost")]
    pub exact_cost: bool,

    /// How often to sample the counters for the timeline (10ms to 1h);
    /// while they stand still, less often (up to 1s apart), until the
    /// next count.
    #[arg(long, value_name = "TIME", default_value = "200ms", value_parser = parse_interval)]
    pub interval: Duration,

    /// Print one line per interval while tracing (like `perf stat -I`):
    /// bytes copied each way, zero-copy, syscalls, mode switches, context
    /// switches, faults (10ms to 1h).
    #[arg(long, value_name = "TIME", value_parser = parse_interval)]
    pub every: Option<Duration>,

    /// Stream one JSON object per interval (--every, else 1s) to FILE (`-`
    /// for stdout); schema in the README.
    #[arg(long, value_name = "FILE")]
    pub ndjson: Option<PathBuf>,

    /// The command to run and trace, after `--`.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render the charts and report.html of a saved JSON report (no root needed).
    Report {
        /// A report written by `zc-trace --json` or `-o`.
        #[arg(value_name = "RUN.json")]
        report: PathBuf,
        /// Where to write the charts.
        #[arg(short = 'o', long = "output-dir", value_name = "DIR")]
        output_dir: PathBuf,
        /// Charts as SVG instead of PNG.
        #[arg(long)]
        svg: bool,
    },
    /// Compare runs side by side, per MiB written to files and sockets (table + charts).
    Compare {
        /// Two or more saved JSON reports.
        #[arg(value_name = "RUN.json", num_args = 2.., required = true)]
        reports: Vec<PathBuf>,
        /// What costs are divided by: bytes written to files and sockets
        /// (each byte once, whatever call moved it), bytes read from them,
        /// or bytes moved across the boundary (read+write counts twice).
        #[arg(long, value_enum, default_value_t = Per::Written)]
        per: Per,
        /// Also write the table as JSON for scripts.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Where to write the comparison chart and HTML.
        #[arg(short = 'o', long = "output-dir", value_name = "DIR")]
        output_dir: Option<PathBuf>,
        /// Charts as SVG instead of PNG.
        #[arg(long)]
        svg: bool,
    },
    /// Serve OpenMetrics at http://ADDR/metrics until stopped: bytes by
    /// class, syscalls, mode and context switches, faults, labelled by
    /// cgroup and process (top N + "other"), and zc-trace's own cost.
    Serve(ServeArgs),
    /// A live view: processes or cgroups ranked by CPU-copied bytes/s, with
    /// zero-copy share, syscalls/s and faults/s (keys: c z s f sort, g
    /// groups, p pause, q quit).
    Top(TopArgs),
    /// The zero-copy methods lab: send a file over loopback TCP with each
    /// method and measure what the textbook table only claims.
    Lab(LabArgs),
    /// Print the man page or a shell's completions (e.g. `zc-trace generate
    /// bash > /etc/bash_completion.d/zc-trace`).
    Generate {
        #[arg(value_enum)]
        what: crate::generate::Artifact,
    },
    /// The lab's sender process (internal: run by `zc-trace lab`).
    #[command(hide = true)]
    LabSender {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// The bases `compare --per` offers (see `model::compare::Basis`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Per {
    Written,
    Read,
    Moved,
}

impl Per {
    pub fn basis(self) -> crate::model::compare::Basis<'static> {
        use crate::model::compare::Basis;
        match self {
            Per::Written => Basis::Written,
            Per::Read => Basis::Read,
            Per::Moved => Basis::Moved,
        }
    }
}

/// Options of `zc-trace serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Where to listen, IP:PORT (e.g. 127.0.0.1:9464, [::]:9464).
    #[arg(long, value_name = "ADDR")]
    pub listen: String,

    #[command(flatten)]
    pub who: Who,

    /// (cgroup, process) label pairs with series of their own; the rest
    /// are summed as "other".
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub top: usize,

    /// How often the counters are brought up to date (10ms to 1h).
    #[arg(long, value_name = "TIME", default_value = "1s", value_parser = parse_interval)]
    pub update: Duration,

    /// Keep the kernel's BPF statistics on all along for exact probe
    /// figures (two clock reads per probe run, on every syscall of the
    /// machine); by default they are sampled, as in a traced run.
    #[arg(long)]
    pub exact_cost: bool,
}

/// Options of `zc-trace top`.
#[derive(Debug, Clone, Args)]
pub struct TopArgs {
    #[command(flatten)]
    pub who: Who,

    /// How often the view is refreshed (10ms to 1h).
    #[arg(long, short = 'i', value_name = "TIME", default_value = "1s", value_parser = parse_interval)]
    pub interval: Duration,
}

impl std::ops::Deref for TopArgs {
    type Target = Who;
    fn deref(&self) -> &Who {
        &self.who
    }
}

impl std::ops::Deref for ServeArgs {
    type Target = Who;
    fn deref(&self) -> &Who {
        &self.who
    }
}

/// What `serve` and `top` count.
#[derive(Debug, Clone, Args)]
pub struct Who {
    /// Count this cgroup v2 and below (default: the whole machine).
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<PathBuf>,

    /// Count the whole machine (the default).
    #[arg(short = 'a', long = "all")]
    pub all: bool,

    /// Count these processes, comma-separated.
    #[arg(short = 'p', long = "pid", value_name = "PID,...")]
    pub pid: Option<String>,

    /// With -p: also count the children they fork from now on.
    #[arg(short = 'f', long = "follow-forks")]
    pub follow_forks: bool,
}

impl Who {
    /// What to count: -p, --cgroup or (by default) the whole machine.
    pub fn target(&self) -> anyhow::Result<TargetSpec> {
        match (&self.pid, &self.cgroup, self.all) {
            (Some(pids), None, false) => parse_pids(pids).map(TargetSpec::Attach),
            (None, Some(dir), false) => Ok(TargetSpec::Cgroup(dir.clone())),
            (None, None, _) => Ok(TargetSpec::All),
            _ => Err(failure(
                EXIT_USAGE,
                "give only one of -p PID, --cgroup PATH and -a, not both",
            )),
        }
    }
}

/// Options of `zc-trace lab`.
#[derive(Debug, Clone, Args)]
pub struct LabArgs {
    /// Size of the test file (e.g. 256M, 1G, 64K).
    #[arg(long, default_value = "256M", value_parser = parse_size)]
    pub size: u64,

    /// Bytes per read/write/splice/sendfile call.
    #[arg(long, default_value = "64K", value_parser = parse_size)]
    pub chunk: u64,

    /// Methods to run, comma-separated: read-write, mmap-write, sendfile,
    /// splice, readv-writev, copy-file-range, mmap-zerocopy.
    #[arg(long, value_delimiter = ',', value_name = "METHOD,...")]
    pub methods: Vec<String>,

    /// Drop the file from the page cache before each run, so disk reads show.
    #[arg(long)]
    pub cold: bool,

    /// Runs per method; the table shows the median.
    #[arg(long, default_value_t = 3)]
    pub runs: u32,

    /// Write the measured table as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Also write the comparison chart (and lab.json) into DIR.
    #[arg(short = 'o', long = "output-dir", value_name = "DIR")]
    pub output_dir: Option<PathBuf>,

    /// Where to put the test file (default: a new directory under $TMPDIR).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// What to trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    Wrap(Vec<OsString>),
    /// One or more running processes, as given (deduplicated).
    Attach(Vec<i32>),
    /// A cgroup v2 and its descendants, as given.
    Cgroup(PathBuf),
    /// Every process of the machine.
    All,
}

impl Cli {
    /// Parses the command line; errors come back as one-line failures.
    pub fn parse_args() -> anyhow::Result<Self> {
        // Any bytes: a command's arguments and paths need not be UTF-8.
        let args: Vec<OsString> = std::env::args_os().collect();
        // Before clap: the long version probes the kernel, which only
        // `--version` should pay for. Only zc-trace's own options count,
        // not the wrapped command's after `--`.
        let own = || args.iter().skip(1).take_while(|a| *a != "--");
        if own().any(|a| a == "--version") {
            println!("{}", crate::features::long_version());
            std::process::exit(0);
        }
        if own().any(|a| a == "-V") {
            println!("{}", crate::features::short_version());
            std::process::exit(0);
        }
        match Self::try_parse_from(&args) {
            Ok(cli) => Ok(cli),
            Err(e)
                if matches!(
                    e.kind(),
                    clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
                ) =>
            {
                e.exit()
            }
            Err(e) => {
                // A stray word where options are expected is almost always a
                // command given without `--`.
                let invalid = match e.get(clap::error::ContextKind::InvalidArg) {
                    Some(clap::error::ContextValue::String(s)) => s.clone(),
                    _ => String::new(),
                };
                if e.kind() == clap::error::ErrorKind::UnknownArgument
                    && !invalid.starts_with('-')
                    && !args.iter().any(|a| a == "--")
                {
                    let cmd = if invalid.is_empty() {
                        "CMD".to_owned()
                    } else {
                        invalid
                    };
                    return Err(failure(
                        EXIT_USAGE,
                        format!(
                            "put `--` before the command to trace, e.g. `zc-trace -- {cmd} ...`"
                        ),
                    ));
                }
                let first = first_paragraph(&e.to_string());
                Err(failure(
                    EXIT_USAGE,
                    format!("{first} (see `zc-trace --help`)"),
                ))
            }
        }
    }

    pub fn target(&self) -> anyhow::Result<TargetSpec> {
        let given = [
            self.pid.is_some(),
            !self.command.is_empty(),
            self.cgroup.is_some(),
            self.all,
        ];
        match given.iter().filter(|g| **g).count() {
            0 => {
                return Err(failure(
                    EXIT_USAGE,
                    "nothing to trace: give a command after `--` (zc-trace -- ./server), a PID (zc-trace -p 1234), --cgroup PATH or -a",
                ));
            }
            1 => {}
            _ => {
                return Err(failure(
                    EXIT_USAGE,
                    "give only one of -p PID, --cgroup PATH, -a and a command after `--`, not both",
                ));
            }
        }
        if let Some(pids) = &self.pid {
            return parse_pids(pids).map(TargetSpec::Attach);
        }
        if let Some(dir) = &self.cgroup {
            return Ok(TargetSpec::Cgroup(dir.clone()));
        }
        if self.all {
            return Ok(TargetSpec::All);
        }
        Ok(TargetSpec::Wrap(self.command.clone()))
    }
}

/// `-p`'s "1234" or "1234,1240" (as strace and perf take it), in order,
/// without repeats.
fn parse_pids(list: &str) -> anyhow::Result<Vec<i32>> {
    let mut pids = Vec::new();
    for word in list.split(',').map(str::trim) {
        match word.parse::<i32>() {
            Ok(p) if p > 0 => {
                if !pids.contains(&p) {
                    pids.push(p)
                }
            }
            _ => {
                return Err(failure(
                    EXIT_USAGE,
                    format!(
                        "`{}` is not a process id: -p takes positive numbers, comma-separated (see `pgrep NAME`)",
                        crate::render::format::printable(word)
                    ),
                ));
            }
        }
    }
    Ok(pids)
}

/// "256M", "64K", "1G", "4096" (bytes); binary units.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size like 64K or 256M"))?;
    let mult: u64 = match unit
        .trim()
        .to_ascii_uppercase()
        .trim_end_matches("IB")
        .trim_end_matches('B')
    {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        other => return Err(format!("unknown unit `{other}` in `{s}`: use K, M or G")),
    };
    match n.checked_mul(mult) {
        Some(0) => Err(format!("`{s}` is zero: give a positive size")),
        Some(v) => Ok(v),
        None => Err(format!("`{s}` is too large")),
    }
}

/// clap's error up to its usage lines, on one line: "the following
/// required arguments were not provided: --output-dir <DIR>".
fn first_paragraph(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .take_while(|l| !l.trim().is_empty() && !l.starts_with("Usage"))
        .map(str::trim)
        .collect();
    let joined = lines.join(" ");
    let joined = joined.trim_start_matches("error: ");
    if joined.is_empty() {
        "invalid arguments".into()
    } else {
        joined.into()
    }
}

/// "250ms", "1m30s", "2m", "1h", "100us" (humantime's units), "1.5s"; a
/// bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let bad = || format!("`{s}` is not a duration like 500ms, 10s or 1m30s");
    let d = match s.strip_suffix('s').unwrap_or(s).parse::<f64>() {
        // A plain (possibly fractional) number of seconds, which humantime
        // does not take.
        Ok(secs) if secs.is_finite() && secs >= 0.0 => Duration::try_from_secs_f64(secs).ok(),
        Ok(_) => return Err(bad()),
        Err(_) => match humantime::parse_duration(s) {
            Ok(d) => Some(d),
            Err(humantime::DurationError::NumberOverflow) => None,
            Err(e) => return Err(format!("{}: {e}", bad())),
        },
    };
    let d = d
        .filter(|d| *d <= MAX_DURATION)
        .ok_or_else(|| format!("`{s}` is too long: give at most a year (8760h)"))?;
    if d.is_zero() {
        return Err(format!("`{s}` is zero: give a positive duration"));
    }
    Ok(d)
}

/// The longest duration zc-trace takes: long enough for any trace, short
/// enough that no clock arithmetic on it can overflow.
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);
/// The shortest sampling interval: each sample reads every map, and a
/// faster loop costs a core without making the timeline any clearer.
const MIN_INTERVAL: Duration = Duration::from_millis(10);
const MAX_INTERVAL: Duration = Duration::from_secs(3600);

/// A duration in MIN_INTERVAL..=MAX_INTERVAL.
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&d) {
        return Err(format!(
            "`{s}` is outside what --interval takes: give 10ms to 1h"
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("256M"), Ok(256 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("2kb"), Ok(2048));
        assert!(parse_size("0").is_err());
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5T").is_err());
    }

    #[test]
    fn subcommands_parse() {
        let cli = Cli::try_parse_from([
            "zc-trace",
            "lab",
            "--size",
            "1M",
            "--methods",
            "sendfile,splice",
        ])
        .unwrap();
        match cli.subcommand {
            Some(Command::Lab(a)) => {
                assert_eq!(a.size, 1 << 20);
                assert_eq!(a.chunk, 64 << 10);
                assert_eq!(a.methods, ["sendfile", "splice"]);
                assert_eq!(a.runs, 3);
            }
            other => panic!("{other:?}"),
        }
        assert!(
            Cli::try_parse_from(["zc-trace", "compare", "a.json"]).is_err(),
            "compare needs two"
        );
        let cli = Cli::try_parse_from(["zc-trace", "report", "r.json", "-o", "out"]).unwrap();
        assert!(matches!(cli.subcommand, Some(Command::Report { .. })));
        // A command to trace is not mistaken for a subcommand.
        let cli = Cli::try_parse_from(["zc-trace", "--", "report"]).unwrap();
        assert!(cli.subcommand.is_none());
        assert_eq!(cli.command, ["report"]);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("100us"), Ok(Duration::from_micros(100)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("3 parsecs").is_err());
        assert_eq!(parse_duration("8760h"), Ok(MAX_DURATION));
        assert!(parse_duration("99999999999999999999s").is_err());
        assert!(parse_duration("8761h").is_err());
        assert_eq!(parse_interval("10ms"), Ok(MIN_INTERVAL));
        assert!(parse_interval("1ns").is_err());
        assert!(parse_interval("2h").is_err());
    }

    #[test]
    fn target_needs_exactly_one_of_pid_and_command() {
        let cli = |args: &[&str]| Cli::try_parse_from(args).unwrap();
        assert_eq!(
            cli(&["zc-trace", "--", "ls", "-l"]).target().unwrap(),
            TargetSpec::Wrap(vec!["ls".into(), "-l".into()])
        );
        assert_eq!(
            cli(&["zc-trace", "-p", "42"]).target().unwrap(),
            TargetSpec::Attach(vec![42])
        );
        assert_eq!(
            cli(&["zc-trace", "-p", "42,7, 42"]).target().unwrap(),
            TargetSpec::Attach(vec![42, 7])
        );
        assert!(cli(&["zc-trace", "-p", "42,"]).target().is_err());
        assert!(cli(&["zc-trace", "-p", "42,x"]).target().is_err());
        assert!(cli(&["zc-trace"]).target().is_err());
        assert!(cli(&["zc-trace", "-p", "abc"]).target().is_err());
        assert!(cli(&["zc-trace", "-p", "0"]).target().is_err());
        assert!(cli(&["zc-trace", "-p", "1", "--", "ls"]).target().is_err());
        assert_eq!(cli(&["zc-trace", "-a"]).target().unwrap(), TargetSpec::All);
        assert_eq!(
            cli(&["zc-trace", "--cgroup", "/x"]).target().unwrap(),
            TargetSpec::Cgroup("/x".into())
        );
        assert!(cli(&["zc-trace", "-a", "-p", "1"]).target().is_err());
        assert!(cli(&["zc-trace", "-a", "--cgroup", "/x"]).target().is_err());
    }
}
