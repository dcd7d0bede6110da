//! The comparison chart: the cost of moving bytes in several runs side by
//! side, each figure normalised by the bytes of the run's basis (written,
//! by default), so a run that moved more data is not penalised for it.

use anyhow::Result;
use plotters::prelude::*;

use super::draw::{Bar, Bars, LABEL_SIZE, footer, hbars, header, legend, text_width};
use super::palette::RUNS;
use super::{Area, units};
// One definition of the figures for the table, the chart and the HTML.
use crate::model::compare::{Basis, Unit, figures, normalise};
use crate::model::report::Report;
use crate::render::format::{bytes, duration_ns};

pub const NAME: &str = "Comparison";

/// One normalised figure of a run; `None` when the run has no bytes to
/// divide by (a chart shows that as "n/a", not as a cost of zero).
#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    pub name: String,
    pub value: Option<f64>,
    pub unit: Unit,
}

impl Metric {
    /// The value as the chart and the HTML table show it.
    pub fn label(&self) -> String {
        match (self.value, self.unit) {
            (None, _) => "n/a".into(),
            (Some(ns), Unit::TimePerMib) => duration_ns(ns as u64),
            (Some(v), _) => units::figure(v),
        }
    }
}

/// The figures compared, in display order, divided by `basis_bytes`.
pub fn metrics(r: &Report, basis_bytes: u64, noun: &str) -> Vec<Metric> {
    figures(&normalise(r, basis_bytes), noun)
        .into_iter()
        .map(|(name, value, unit)| Metric { name, value, unit })
        .collect()
}

pub fn draw<DB: DrawingBackend>(
    root: &Area<DB>,
    runs: &[(String, Report)],
    basis: Basis,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let labels: Vec<&str> = runs.iter().map(|(l, _)| l.as_str()).collect();
    let noun = basis.noun();
    let title = format!("{NAME} per MiB {noun}: {}", labels.join(" vs "));
    let subtitle = format!(
        "{}; lower is cheaper, except zero-copy share",
        basis.definition()
    );
    let body = header(root, &title, &subtitle)?;
    let shown = runs.len().min(RUNS.len());
    let (grid, foot) = footer(&body, 12 + 24 * shown as u32);
    let label_width = labels
        .iter()
        .map(|l| text_width(l, LABEL_SIZE))
        .max()
        .unwrap_or(0)
        .clamp(50, 190)
        + 18;

    let all: Vec<Vec<Metric>> = runs
        .iter()
        .enumerate()
        .map(|(i, (_, r))| metrics(r, basis.bytes(i, r), noun))
        .collect();
    // Seven figures: the eighth panel stays empty.
    let panels = grid.split_evenly((2, 4));
    let figures = all.first().map_or(0, Vec::len);
    for (m, area) in panels.iter().enumerate().take(figures) {
        let bars: Vec<Bar> = runs
            .iter()
            .zip(&all)
            .enumerate()
            .map(|(i, ((label, _), metrics))| {
                let colour = RUNS[i % RUNS.len()];
                match metrics[m].value {
                    Some(v) => Bar::single(label.clone(), v, colour, metrics[m].label()),
                    None => Bar::single(label.clone(), 0.0, colour, format!("n/a: nothing {noun}")),
                }
            })
            .collect();
        let max = bars.iter().map(|b| b.parts[0].0).fold(0.0, f64::max);
        hbars(
            area,
            &Bars {
                caption: &all[0][m].name,
                bars: &bars,
                scale: match all[0][m].unit {
                    Unit::TimePerMib => units::nanos(max),
                    _ => units::count(max),
                },
                axis: match all[0][m].unit {
                    Unit::PerMib => "per MiB",
                    Unit::PerByte => "ratio",
                    Unit::TimePerMib => "CPU time per MiB",
                },
                label_width,
            },
        )?;
    }

    let items: Vec<(String, RGBColor)> = runs
        .iter()
        .take(shown)
        .enumerate()
        .map(|(i, (label, r))| {
            (
                format!(
                    "{label}: {}, {}, {noun} {}",
                    r.target_name(),
                    duration_ns(r.duration_ns),
                    bytes(basis.bytes(i, r))
                ),
                RUNS[i],
            )
        })
        .collect();
    legend(&foot, &items)?;
    Ok(())
}
