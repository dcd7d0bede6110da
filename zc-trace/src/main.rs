//! The zc-trace command: everything is in the library; this maps its
//! result to one error line and an exit code.

use std::process::ExitCode;

use zc_trace::{app, error};

fn main() -> ExitCode {
    match app::run() {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("zc-trace: error: {e:#}");
            ExitCode::from(error::exit_code(&e))
        }
    }
}
