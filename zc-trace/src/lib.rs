//! zc-trace: where do my bytes get copied, and what does it cost?
//!
//! preflight -> loader (probes live) -> target (held child released, or PID
//! registered) -> session loop (collector samples) -> model -> renderers.
//!
//! A library with a thin `main.rs`: the model (counters in, a `Report` out)
//! and the renderers (summary, JSON, charts, HTML) are public so tests and
//! tools reuse them instead of keeping copies.

pub mod app;
mod btf;
mod cli;
mod collector;
pub mod error;
mod features;
mod generate;
mod lab;
mod loader;
pub mod model;
mod preflight;
pub mod render;
mod session;
mod target;
