//! User-facing failures: one line that names the cause and the fix, and the
//! exit code to leave with.

use std::fmt;

/// A failure the user can act on. Anything else that reaches `main` is
/// printed the same way with exit code 1.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// Exit code of a shell for a command it cannot find.
pub const EXIT_NOT_FOUND: u8 = 127;
/// Exit code of a shell for a command it found but cannot run.
pub const EXIT_CANNOT_RUN: u8 = 126;
/// Bad command line.
pub const EXIT_USAGE: u8 = 2;

pub fn failure(code: u8, message: impl Into<String>) -> anyhow::Error {
    Failure {
        code,
        message: message.into(),
    }
    .into()
}

/// The exit code for an error that reached `main`.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    err.downcast_ref::<Failure>().map_or(1, |f| f.code)
}
