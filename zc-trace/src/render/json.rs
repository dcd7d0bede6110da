//! The JSON report (schema in README.md).

use std::io::Write;

use anyhow::{Context as _, Result};

use crate::model::report::Report;

pub fn write(report: &Report, out: impl Write) -> Result<()> {
    let mut out = std::io::BufWriter::new(out);
    serde_json::to_writer_pretty(&mut out, report).context("writing the JSON report")?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::report::{Counts, SyscallEntry};

    #[test]
    fn round_trips_and_flattens_counts() {
        let mut r = Report {
            schema_version: 1,
            duration_ns: 5,
            ..Default::default()
        };
        r.syscalls.insert(
            "read".into(),
            SyscallEntry {
                nr: 0,
                class: "copy_to_user".into(),
                counts: Counts {
                    count: 2,
                    errors: 0,
                    bytes: 10,
                    time_ns: 7,
                    ..Default::default()
                },
                by_fd_kind: [(
                    "file".to_owned(),
                    Counts {
                        count: 2,
                        errors: 0,
                        bytes: 10,
                        time_ns: 7,
                        ..Default::default()
                    },
                )]
                .into(),
            },
        );
        let mut buf = Vec::new();
        write(&r, &mut buf).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["syscalls"]["read"]["count"], 2);
        assert_eq!(v["syscalls"]["read"]["by_fd_kind"]["file"]["bytes"], 10);
        let back: Report = serde_json::from_slice(&buf).unwrap();
        assert_eq!(back, r);
    }
}
