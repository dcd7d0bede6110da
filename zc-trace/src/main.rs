//! zc-trace: where do my bytes get copied, and what does it cost?
//!
//! preflight -> loader (probes live) -> target (held child released, or PID
//! registered) -> session loop (collector samples) -> model -> renderers.

mod app;
mod btf;
mod cli;
mod collector;
mod error;
mod features;
mod generate;
mod lab;
mod loader;
mod model;
mod preflight;
mod render;
mod session;
mod target;

use std::process::ExitCode;

fn main() -> ExitCode {
    match app::run() {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("zc-trace: error: {e:#}");
            ExitCode::from(error::exit_code(&e))
        }
    }
}
