//! The answer lines of `replay` and the other subcommands (design.md section 7).

use std::io::Write;

use serde::Serialize;
use waguard::{Decision, Outgoing};

pub use waguard_server::answer::{short, DecisionAnswer};

#[derive(Serialize)]
struct ErrorAnswer<'a> {
    line: usize,
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<&'a str>,
}

/// Writes one decision answer line.
pub fn decision_answer(
    out: &mut impl Write,
    line: Option<usize>,
    decision: &Decision,
    outgoing: Outgoing,
) -> std::io::Result<()> {
    write_line(out, &DecisionAnswer::new(line, decision, outgoing))
}

/// Writes one error answer line.
pub fn error_answer(
    out: &mut impl Write,
    line: usize,
    error: &str,
    path: Option<&str>,
) -> std::io::Result<()> {
    write_line(out, &ErrorAnswer { line, error, path })
}

/// Writes a value as one JSON line.
pub fn write_line(out: &mut impl Write, value: &impl Serialize) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")
}
