//! What the command line asks for, done: outputs opened first, then the
//! trace, then every report the user asked for.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::{
    bpf_stats::StatsMode,
    cli::{Cli, Command, TargetSpec},
    error::failure,
    lab,
    model::report::{Report, SCHEMA_VERSION},
    preflight::{self, Output},
    render,
    session::{self, TraceOptions},
};

pub fn run() -> Result<u8> {
    let cli = Cli::parse_args()?;
    match &cli.subcommand {
        None => trace(&cli),
        Some(Command::Lab(args)) => lab::run(args),
        Some(Command::Serve(args)) => crate::serve::run(args),
        Some(Command::Top(args)) => crate::top::run(args),
        Some(Command::LabSender { args }) => lab::sender_main(args),
        Some(Command::Generate { what }) => {
            crate::generate::write(*what, &mut std::io::stdout().lock())?;
            Ok(0)
        }
        Some(Command::Report {
            report,
            output_dir,
            svg,
        }) => {
            let r = load_report(report)?;
            render::output::write_dir(&r, output_dir, *svg)?;
            Ok(0)
        }
        Some(Command::Compare {
            reports,
            per,
            json,
            output_dir,
            svg,
        }) => {
            // A bad --json path fails before any report is read.
            let json_out = json
                .as_deref()
                .map(|p| Output::create(p, "comparison JSON"))
                .transpose()?;
            let loaded = reports
                .iter()
                .map(|p| load_report(p))
                .collect::<Result<Vec<_>>>()?;
            let labels = run_labels(reports, &loaded);
            let runs: Vec<(String, Report)> = labels.into_iter().zip(loaded).collect();
            let basis = per.basis();
            // The table is the result (stdout, like the lab's); errors go to stderr.
            print!("{}", render::compare::table(&runs, basis));
            if let Some(mut out) = json_out {
                let doc = crate::model::compare::json(&runs, basis);
                out.write_all(serde_json::to_string_pretty(&doc)?.as_bytes())?;
                out.write_all(b"\n")?;
                out.commit()?;
            }
            if let Some(dir) = output_dir {
                render::output::write_compare_dir(&runs, basis, dir, *svg)?;
            }
            Ok(0)
        }
    }
}

/// Short names for runs in tables and legends: the --label they were
/// traced with; else the file's name, unless it is the `report.json` that
/// every `-o DIR` writes, then the traced command or process. Two runs
/// never share a name: a repeated one gets its position appended.
fn run_labels(paths: &[PathBuf], reports: &[Report]) -> Vec<String> {
    let labels: Vec<String> = paths
        .iter()
        .zip(reports)
        .map(|(path, report)| run_label(path, report))
        .collect();
    let repeated = |l: &String| labels.iter().filter(|m| *m == l).count() > 1;
    labels
        .iter()
        .enumerate()
        .map(|(i, l)| {
            if repeated(l) {
                format!("{l} #{}", i + 1)
            } else {
                l.clone()
            }
        })
        .collect()
}

fn run_label(path: &Path, report: &Report) -> String {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
    let named = |s: &String| s != "report";
    report
        .target
        .label
        .clone()
        .or_else(|| stem.clone().filter(named))
        .or_else(|| report.label())
        .or(stem)
        .unwrap_or_else(|| path.display().to_string())
}

/// The largest report `report` and `compare` read. A report is parsed
/// into memory whole, at the peak about 4x its size (a 121 MB report took
/// 520 MB), so this keeps either command near 1 GiB at most.
pub const MAX_REPORT_BYTES: u64 = 256 << 20;

/// Only the field that says which schema a file follows.
#[derive(serde::Deserialize)]
struct Schema {
    schema_version: Option<serde_json::Value>,
    /// Only the lab's JSON has it: a file of a different kind.
    methods: Option<serde::de::IgnoredAny>,
}

/// Reads a saved report, with a clear word on files that are not one.
pub fn load_report(path: &Path) -> Result<Report> {
    let cannot_read = |e: std::io::Error| {
        failure(
            1,
            format!(
                "cannot read {}: {}",
                path.display(),
                preflight::io_reason(&e)
            ),
        )
    };
    let too_large = |size: u64| {
        failure(
            1,
            format!(
                "{} is {}, more than the {} a report may be: is it a zc-trace report?",
                path.display(),
                render::format::bytes(size),
                render::format::bytes(MAX_REPORT_BYTES)
            ),
        )
    };
    let file = std::fs::File::open(path).map_err(cannot_read)?;
    let size = file.metadata().map_err(cannot_read)?.len();
    if size > MAX_REPORT_BYTES {
        return Err(too_large(size));
    }
    // A pipe or device has no size: read one byte past the limit to tell.
    let mut text = Vec::with_capacity(size as usize);
    std::io::Read::read_to_end(
        &mut std::io::Read::take(file, MAX_REPORT_BYTES + 1),
        &mut text,
    )
    .map_err(cannot_read)?;
    if text.len() as u64 > MAX_REPORT_BYTES {
        return Err(too_large(text.len() as u64));
    }
    // The schema first, from a parse that keeps nothing else, so that a
    // report from a newer zc-trace is named as such rather than as broken.
    let schema: Schema = serde_json::from_slice(&text).map_err(|e| {
        failure(
            1,
            format!(
                "{} is not valid JSON ({e}): give a report written by `zc-trace --json`",
                path.display()
            ),
        )
    })?;
    if schema.methods.is_some() {
        return Err(failure(
            1,
            format!(
                "{} is the methods lab's JSON (`zc-trace lab --json`), not a traced run's report: \
                 give a file written by `zc-trace --json` or `-o` (the lab draws its own chart with `zc-trace lab -o DIR`)",
                path.display()
            ),
        ));
    }
    match schema.schema_version.as_ref().and_then(|v| v.as_u64()) {
        None => Err(failure(
            1,
            format!(
                "{} has no schema_version: it is not a zc-trace report",
                path.display()
            ),
        )),
        Some(v) if v > SCHEMA_VERSION as u64 => Err(failure(
            1,
            format!(
                "{} was written by a newer zc-trace (schema {v}, this one reads {SCHEMA_VERSION}): upgrade zc-trace",
                path.display()
            ),
        )),
        Some(_) => serde_json::from_slice(&text).map_err(|e| {
            failure(
                1,
                format!(
                    "{} is not a complete zc-trace report ({e}): was it cut short or edited?",
                    path.display()
                ),
            )
        }),
    }
}

fn trace(cli: &Cli) -> Result<u8> {
    let spec = cli.target()?;
    if let TargetSpec::Attach(pids) = &spec {
        for &pid in pids {
            preflight::check_may_trace(pid)?;
        }
    }
    if cli.json.as_deref().is_some_and(is_stdout) && cli.ndjson.as_deref().is_some_and(is_stdout) {
        return Err(failure(
            crate::error::EXIT_USAGE,
            "--json - and --ndjson - would both write to stdout: send one of them to a file",
        ));
    }
    // Outputs first: a bad path must fail before any tracing is done.
    let json_out = cli
        .json
        .as_deref()
        .map(|p| {
            if is_stdout(p) {
                Output::stdout("JSON report")
            } else {
                Output::create(p, "JSON report")
            }
        })
        .transpose()?;
    let summary_out = cli
        .summary
        .as_deref()
        .map(|p| Output::create(p, "summary"))
        .transpose()?;
    if let Some(dir) = &cli.output_dir {
        preflight::check_output_dir(dir)?;
    }
    check_planned_outputs(cli)?;

    let mut traced = session::trace(&TraceOptions {
        spec,
        follow_forks: cli.follow_forks,
        interval: cli.interval,
        duration: cli.duration,
        announce: !cli.quiet,
        timed: cli.latency,
        cost: cost_mode(cli),
        live: live_options(cli),
    })?;
    traced.report.target.label = cli.label.clone();

    let report = &traced.report;
    let text = render::summary::render(report);
    let to_stderr = summary_out.is_none() && !cli.quiet;
    if to_stderr {
        eprint!("{text}");
    }
    let mut failures = Vec::new();
    if let Some(out) = json_out {
        failures.extend(write_json(report, out).err());
    }
    if let Some(mut out) = summary_out {
        failures.extend(
            out.write_all(text.as_bytes())
                .and_then(|()| out.commit())
                .err(),
        );
    }
    if let Some(dir) = &cli.output_dir {
        match render::output::write_dir(report, dir, cli.svg) {
            Ok(files) if !cli.quiet => {
                eprintln!("zc-trace: wrote {} files to {}", files.len(), dir.display())
            }
            Ok(_) => {}
            Err(e) => failures.push(e),
        }
    }
    let mut failures = failures.into_iter();
    let Some(first) = failures.next() else {
        return Ok(traced.exit_status());
    };
    // The run is not lost with a file: the summary still reaches the user.
    if !to_stderr {
        eprint!("{text}");
    }
    for other in failures {
        eprintln!("zc-trace: error: {other:#}");
    }
    Err(first)
}

/// How the probes' own cost is measured: sampled unless asked otherwise.
fn cost_mode(cli: &Cli) -> StatsMode {
    if cli.no_cost {
        StatsMode::Off
    } else if cli.exact_cost {
        StatsMode::Always
    } else {
        StatsMode::Sampled
    }
}

/// --every and --ndjson, if given.
fn live_options(cli: &Cli) -> Option<session::live::LiveOptions> {
    if cli.every.is_none() && cli.ndjson.is_none() {
        return None;
    }
    Some(session::live::LiveOptions {
        every: cli.every.unwrap_or(session::live::DEFAULT_EVERY),
        lines: cli.every.is_some(),
        ndjson: cli.ndjson.clone(),
    })
}

/// `-` as an output file: standard output, as `--json -`.
fn is_stdout(path: &Path) -> bool {
    path.as_os_str() == "-"
}

fn write_json(report: &Report, mut out: Output) -> Result<()> {
    let mut bytes = Vec::new();
    render::json::write(report, &mut bytes)?;
    out.write_all(&bytes)?;
    out.commit()
}

/// Every file the run will write, checked before it starts (see
/// `preflight::check_planned_outputs`).
fn check_planned_outputs(cli: &Cli) -> Result<()> {
    let in_dir = cli
        .output_dir
        .iter()
        .flat_map(|dir| render::output::run_file_names(cli.svg).map(move |n| dir.join(n)));
    let paths: Vec<PathBuf> = cli
        .json
        .iter()
        .chain(&cli.ndjson)
        .filter(|p| !is_stdout(p))
        .chain(&cli.summary)
        .cloned()
        .chain(in_dir)
        .collect();
    preflight::check_planned_outputs(&paths)
}
