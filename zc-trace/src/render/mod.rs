//! Renderers: each turns a `Report` into something for people or programs.
//! None of them touches the kernel or the maps.

pub mod charts;
pub mod compare;
pub mod format;
pub mod groups;
pub mod html;
pub mod json;
pub mod output;
pub mod summary;

/// A report saved by the zc-trace before the class/counter refactor
/// (issue 14) renders to the same JSON and summary, byte for byte.
#[cfg(test)]
mod golden {
    use crate::model::report::Report;

    const FIXTURE: &str = include_str!("../../tests/fixtures/bash-pipe-cp.json");
    const SUMMARY: &str = include_str!("../../tests/fixtures/bash-pipe-cp.summary.txt");

    #[test]
    fn saved_report_renders_byte_identical() {
        let r: Report = serde_json::from_str(FIXTURE).unwrap();
        let mut json = Vec::new();
        super::json::write(&r, &mut json).unwrap();
        assert!(String::from_utf8(json).unwrap() == FIXTURE, "JSON differs");
        let summary = super::summary::render(&r);
        assert!(
            summary == SUMMARY,
            "summary differs:\n{summary}\n---- expected ----\n{SUMMARY}"
        );
    }
}
