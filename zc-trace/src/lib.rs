//! zc-trace: where do my bytes get copied, and what does it cost?
//!
//! preflight -> loader (probes live) -> target (held child released, or PID
//! registered) -> session loop (collector samples) -> model -> renderers.
//!
//! A library with a thin `main.rs`: the model (counters in, a `Report` out)
//! and the renderers (summary, JSON, charts, HTML) are public so tests and
//! tools reuse them instead of keeping copies.

// The standard eprint!/print! panic when their stream is a closed pipe
// (`zc-trace ... 2>&1 | head -0`), which would lose the report files the
// run is about to write. These versions, in scope for every module below,
// drop the text instead: nobody is reading it.
macro_rules! eprint {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($arg)*);
    }};
}
macro_rules! eprintln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}
macro_rules! print {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

pub mod app;
mod bpf_stats;
mod btf;
mod cgroup;
mod cli;
mod collector;
pub mod error;
mod features;
mod generate;
mod lab;
mod loader;
pub mod model;
mod preflight;
mod readiness;
pub mod render;
mod serve;
mod session;
mod target;
mod task_accounting;
mod top;
