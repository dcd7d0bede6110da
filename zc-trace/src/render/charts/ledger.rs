//! Chart 1, the copy ledger: bytes by path beside what moving them cost.

use anyhow::Result;
use plotters::prelude::*;

use super::draw::{Bar, Bars, LABEL_SIZE, footer, hbars, header, legend, muted};
use super::palette::{
    CONTEXT_SWITCHES, MODE_SWITCHES, PAGE_FAULTS, SYSCALLS, byte_colour, path_legend,
};
use super::{Area, title, units};
use crate::model::{
    bytes::ByteClass,
    ledger::{MODE_SWITCH_RULE, how_measured},
    report::Report,
};
use crate::render::format::{bytes, duration_ns, grouped};

pub const NAME: &str = "Copy ledger";

pub fn draw<DB: DrawingBackend>(root: &Area<DB>, r: &Report) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let t = &r.totals;
    let b = &t.bytes;
    let copied = b.copied_to_user + b.copied_from_user;
    let time = if r.timing.split() {
        format!(", {} on-CPU in them", duration_ns(t.on_cpu_ns))
    } else {
        String::new()
    };
    let subtitle = format!(
        "{} copied by the CPU across the user/kernel boundary, {} zero-copy, {} mapped; {} syscalls{time}",
        bytes(copied),
        bytes(b.zero_copy),
        bytes(b.mapped),
        grouped(t.syscalls),
    );
    let body = header(root, &title(NAME, r), &subtitle)?;
    let (main, foot) = footer(&body, 64);
    let (left, right) = main.split_horizontally(740);

    let paths: Vec<Bar> = ByteClass::shown(b)
        .map(|class| {
            let n = b.get(class);
            let value = if n < 1024 && class.always_shown() {
                bytes(n)
            } else {
                format!("{} ({} B)", bytes(n), grouped(n))
            };
            Bar::single(class.look().label, n as f64, byte_colour(class), value)
        })
        .collect();
    let max = paths.iter().map(|p| p.parts[0].0).fold(0.0, f64::max);
    hbars(
        &left,
        &Bars {
            caption: "Bytes by path",
            bars: &paths,
            scale: units::bytes(max),
            axis: "bytes",
            label_width: 190,
        },
    )?;

    let cs = &t.context_switches;
    let pf = &t.page_faults;
    let costs = [
        ("syscalls", t.syscalls, SYSCALLS),
        ("mode switches (derived)", t.mode_switches, MODE_SWITCHES),
        ("ctx switches, voluntary", cs.voluntary, CONTEXT_SWITCHES),
        (
            "ctx switches, involuntary",
            cs.involuntary,
            CONTEXT_SWITCHES,
        ),
        ("page faults, user mode", pf.user, PAGE_FAULTS),
        ("page faults, kernel mode", pf.kernel, PAGE_FAULTS),
        ("page faults, file-backed", pf.file, PAGE_FAULTS),
        (
            "page faults, get_user_pages",
            pf.get_user_pages,
            PAGE_FAULTS,
        ),
    ];
    // Faults through get_user_pages only where there were some: most runs
    // take none, and the bar would only crowd the chart.
    let costs: Vec<Bar> = costs
        .iter()
        .filter(|(label, n, _)| *n > 0 || !label.ends_with("get_user_pages"))
        .map(|(label, n, colour)| Bar::single(*label, *n as f64, *colour, units::count_label(*n)))
        .collect();
    let max = costs.iter().map(|c| c.parts[0].0).fold(0.0, f64::max);
    hbars(
        &right,
        &Bars {
            caption: "What it cost (counts)",
            bars: &costs,
            scale: units::count(max),
            axis: "count",
            label_width: 200,
        },
    )?;

    let items = path_legend(ByteClass::shown(b));
    let used = legend(&foot, &items)?;
    // Two lines: one is wider than the chart.
    let lines = [
        format!("{} Mode switches are derived: {MODE_SWITCH_RULE}.", how_measured(r)),
        "Copies inside the kernel are not visible to a syscall tracer; DMA only as disk_read and direct I/O.".to_owned(),
    ];
    for (i, line) in lines.iter().enumerate() {
        foot.draw_text(
            line,
            &muted(LABEL_SIZE - 1.0),
            (20, used as i32 + 6 + 14 * i as i32),
        )?;
    }
    Ok(())
}
