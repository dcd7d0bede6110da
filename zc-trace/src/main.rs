//! zc-trace: where do my bytes get copied, and what does it cost?
//!
//! preflight -> loader (probes live) -> target (held child released, or PID
//! registered) -> session loop (collector samples) -> model -> renderers.

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

mod app;
mod btf;
mod cli;
mod collector;
mod error;
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
    reopen_closed_stdio();
    match app::run() {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("zc-trace: error: {e:#}");
            ExitCode::from(error::exit_code(&e))
        }
    }
}

/// A closed stdin, stdout or stderr (`2>&-`) gets /dev/null, so the next
/// file opened cannot take its number and receive what was meant for the
/// terminal (a report file filled with progress lines).
fn reopen_closed_stdio() {
    for fd in 0..=2 {
        // SAFETY: F_GETFD only asks whether the descriptor is open.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
            // SAFETY: open takes the lowest free number, which is `fd`.
            unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        }
    }
}
