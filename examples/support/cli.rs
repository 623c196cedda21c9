//! The command-line contract every example keeps: clap parses the arguments; a bad one is a
//! single line on stderr, `PROGRAM: message`, and exit status 2; `--help` and `--version`
//! print and exit 0.

use std::fmt::Display;
use std::process::ExitCode;

use clap::Parser;

/// The parsed arguments, or the exit code to return at once (after printing what clap had
/// to say: help and version on stdout, an error as one line on stderr).
pub(crate) fn parse<C: Parser>(program: &str) -> Result<C, ExitCode> {
    C::try_parse().map_err(|e| {
        if !e.use_stderr() {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        // clap's message up to its first blank line (before any tip or usage), on one line.
        let text = e.to_string();
        let message: Vec<&str> = text
            .lines()
            .map(str::trim)
            .take_while(|l| !l.is_empty() && !l.starts_with("Usage:"))
            .collect();
        usage_error(program, message.join(" ").trim_start_matches("error: "))
    })
}

/// `program: message` on stderr; exit status 2 (bad arguments).
pub(crate) fn usage_error(program: &str, message: impl Display) -> ExitCode {
    eprintln!("{program}: {message}");
    ExitCode::from(2)
}
