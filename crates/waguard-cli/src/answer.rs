//! The answer lines of `replay` and the other subcommands (design.md section 7).

use std::io::Write;

use serde::Serialize;
use waguard::{Decision, Outgoing};

/// `{"line", "decision", "allowed", "reason", "until"}`.
#[derive(Serialize)]
pub struct DecisionAnswer {
    /// The physical input line, numbered from 1 (absent outside replay).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// `free_form`, `template_required` or `blocked`.
    pub decision: &'static str,
    /// Whether the line's message may go.
    pub allowed: bool,
    /// The rules.md reason, `null` for `free_form`.
    pub reason: Option<&'static str>,
    /// When the answer changes by time alone (RFC 3339), or `null`.
    pub until: Option<String>,
}

impl DecisionAnswer {
    /// The answer for `decision` about `outgoing`.
    pub fn new(line: Option<usize>, decision: &Decision, outgoing: Outgoing) -> Self {
        DecisionAnswer {
            line,
            decision: decision.kind(),
            allowed: decision.permits(outgoing),
            reason: decision.reason().map(|r| r.as_str()),
            until: decision.until().map(|t| t.to_string()),
        }
    }
}

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

/// A value shown in an error message: at most 64 characters, then `…`, so that an answer never
/// echoes a large input back.
pub fn short(value: &str) -> String {
    match value.char_indices().nth(64) {
        Some((cut, _)) => format!("{}…", &value[..cut]),
        None => value.to_owned(),
    }
}
