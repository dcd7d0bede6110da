//! What the command line asks for, done: outputs opened first, then the
//! trace, then every report the user asked for.

use std::{io::Write as _, path::Path};

use anyhow::{Context as _, Result};

use crate::{
    cli::{Cli, Command},
    error::failure,
    lab,
    model::report::{Report, SCHEMA_VERSION},
    preflight, render,
    session::{self, TraceOptions},
};

pub fn run() -> Result<u8> {
    let cli = Cli::parse_args()?;
    match &cli.subcommand {
        None => trace(&cli),
        Some(Command::Lab(args)) => lab::run(args),
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
            output_dir,
            svg,
        }) => {
            let runs = reports
                .iter()
                .map(|p| Ok((run_label(p), load_report(p)?)))
                .collect::<Result<Vec<_>>>()?;
            eprint!("{}", render::compare::table(&runs));
            if let Some(dir) = output_dir {
                render::output::write_compare_dir(&runs, dir, *svg)?;
            }
            Ok(0)
        }
    }
}

/// A short name for a run in tables and legends: the file name.
fn run_label(path: &Path) -> String {
    path.file_stem().map_or_else(
        || path.display().to_string(),
        |s| s.to_string_lossy().into_owned(),
    )
}

/// Reads a saved report, with a clear word on files that are not one.
pub fn load_report(path: &Path) -> Result<Report> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        failure(
            1,
            format!(
                "cannot read {}: {}",
                path.display(),
                preflight::io_reason(&e)
            ),
        )
    })?;
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        failure(
            1,
            format!(
                "{} is not valid JSON ({e}): give a report written by `zc-trace --json`",
                path.display()
            ),
        )
    })?;
    match value.get("schema_version").and_then(|v| v.as_u64()) {
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
        Some(_) => serde_json::from_value(value).map_err(|e| {
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
    // Outputs first: a bad path must fail before any tracing is done.
    let json_out = cli
        .json
        .as_deref()
        .map(|p| preflight::create_output(p, "JSON report"))
        .transpose()?;
    let summary_out = cli
        .summary
        .as_deref()
        .map(|p| preflight::create_output(p, "summary"))
        .transpose()?;
    if let Some(dir) = &cli.output_dir {
        preflight::check_output_dir(dir)?;
    }

    let traced = session::trace(&TraceOptions {
        spec,
        follow_forks: cli.follow_forks,
        interval: cli.interval,
        duration: cli.duration,
        announce: true,
        timed: !cli.no_latency,
        cost: !cli.no_cost,
    })?;

    let report = &traced.report;
    if let Some(out) = json_out {
        render::json::write(report, out.file)
            .with_context(|| format!("writing {}", out.path.display()))?;
    }
    let text = render::summary::render(report);
    if let Some(mut out) = summary_out {
        out.file
            .write_all(text.as_bytes())
            .with_context(|| format!("writing {}", out.path.display()))?;
    } else if !cli.quiet {
        eprint!("{text}");
    }
    if let Some(dir) = &cli.output_dir {
        let files = render::output::write_dir(report, dir, cli.svg)?;
        eprintln!("zc-trace: wrote {} files to {}", files.len(), dir.display());
    }
    Ok(traced.exit_status())
}
