//! What the command line asks for, done: outputs opened first, then the
//! trace, then every report the user asked for.

use std::io::Write as _;

use anyhow::{Context as _, Result};

use crate::{
    cli::Cli,
    preflight, render,
    session::{self, TraceOptions},
};

pub fn run() -> Result<u8> {
    let cli = Cli::parse_args()?;
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

    let traced = session::trace(&TraceOptions {
        spec,
        follow_forks: cli.follow_forks,
        interval: cli.interval,
        duration: cli.duration,
        announce: true,
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
    Ok(traced.exit_status())
}
