//! An output directory: report.json, the charts and report.html together,
//! or the comparison of several runs.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::{model::report::Report, preflight};

use super::{
    charts::{self, Basis, Format},
    html, json,
};

fn format(svg: bool) -> Format {
    if svg { Format::Svg } else { Format::Png }
}

/// Every file name `write_dir` may write.
pub fn run_file_names(svg: bool) -> impl Iterator<Item = String> {
    ["report.json".to_owned(), "report.html".to_owned()]
        .into_iter()
        .chain(charts::run_file_names(format(svg)))
}

/// Writes everything about one run into `dir`; returns the files written.
pub fn write_dir(report: &Report, dir: &Path, svg: bool) -> Result<Vec<PathBuf>> {
    preflight::check_output_dir(dir)?;
    let path = dir.join("report.json");
    let mut bytes = Vec::new();
    json::write(report, &mut bytes)?;
    preflight::write_output(&path, "JSON report", &bytes)?;
    let mut files = vec![path];
    files.extend(charts::render_run(report, dir, format(svg))?);
    let path = dir.join("report.html");
    preflight::write_output(&path, "HTML report", html::render(report)?.as_bytes())?;
    files.push(path);
    Ok(files)
}

/// Writes the comparison of `runs` into `dir`: the chart and compare.html.
pub fn write_compare_dir(
    runs: &[(String, Report)],
    basis: Basis,
    dir: &Path,
    svg: bool,
) -> Result<Vec<PathBuf>> {
    preflight::check_output_dir(dir)?;
    let mut files = charts::render_compare(runs, basis, dir, format(svg))?;
    let path = dir.join("compare.html");
    let page = html::render_compare(runs, basis)?;
    preflight::write_output(&path, "comparison page", page.as_bytes())?;
    files.push(path);
    Ok(files)
}
