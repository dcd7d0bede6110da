//! An output directory: report.json, the charts and report.html together,
//! or the comparison of several runs.

use std::{
    fs::File,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};

use crate::{model::report::Report, preflight};

use super::{
    charts::{self, Basis, Format},
    html, json,
};

fn format(svg: bool) -> Format {
    if svg { Format::Svg } else { Format::Png }
}

fn write_text(path: PathBuf, text: &str) -> Result<PathBuf> {
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Writes everything about one run into `dir`; returns the files written.
pub fn write_dir(report: &Report, dir: &Path, svg: bool) -> Result<Vec<PathBuf>> {
    preflight::check_output_dir(dir)?;
    let path = dir.join("report.json");
    let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    json::write(report, file)?;
    let mut files = vec![path];
    files.extend(charts::render_run(report, dir, format(svg))?);
    files.push(write_text(dir.join("report.html"), &html::render(report)?)?);
    Ok(files)
}

/// Writes the comparison of `runs` into `dir`: the chart and compare.html.
pub fn write_compare_dir(runs: &[(String, Report)], dir: &Path, svg: bool) -> Result<Vec<PathBuf>> {
    preflight::check_output_dir(dir)?;
    let mut files = charts::render_compare(runs, Basis::Moved, dir, format(svg))?;
    files.push(write_text(
        dir.join("compare.html"),
        &html::render_compare(runs, Basis::Moved)?,
    )?);
    Ok(files)
}
