//! The man page and shell completions, generated from the command line's
//! own definition so they can never disagree with `--help`. `cargo xtask
//! dist` packages them; `zc-trace generate` prints them for anyone else.

use std::io::Write;

use anyhow::{Context as _, Result};
use clap::{CommandFactory as _, ValueEnum};

use crate::cli::Cli;

/// What `zc-trace generate` writes to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Artifact {
    /// The man page (roff), for man1/zc-trace.1.
    Man,
    Bash,
    Zsh,
    Fish,
}

pub fn write(artifact: Artifact, out: &mut impl Write) -> Result<()> {
    let mut cmd = Cli::command();
    let shell = match artifact {
        Artifact::Man => {
            return clap_mangen::Man::new(cmd)
                .render(out)
                .context("writing the man page");
        }
        Artifact::Bash => clap_complete::Shell::Bash,
        Artifact::Zsh => clap_complete::Shell::Zsh,
        Artifact::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(shell, &mut cmd, "zc-trace", out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(a: Artifact) -> String {
        let mut buf = Vec::new();
        write(a, &mut buf).unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn man_page_documents_the_options() {
        let man = text(Artifact::Man);
        assert!(
            man.starts_with(".ie") || man.contains(".TH zc-trace"),
            "{man}"
        );
        for opt in ["\\-\\-json", "\\-\\-output\\-dir", "\\-\\-duration", "lab"] {
            assert!(man.contains(opt), "{opt} missing from the man page");
        }
    }

    #[test]
    fn completions_name_the_subcommands() {
        for shell in [Artifact::Bash, Artifact::Zsh, Artifact::Fish] {
            let c = text(shell);
            assert!(
                c.contains("compare") && c.contains("json"),
                "{shell:?}: {c}"
            );
        }
    }
}
