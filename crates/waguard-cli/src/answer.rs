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

/// Writes one error answer line. The message goes through [`shorten`], so an answer never
/// echoes more than a short prefix of a value from the input.
pub fn error_answer(
    out: &mut impl Write,
    line: usize,
    error: &str,
    path: Option<&str>,
) -> std::io::Result<()> {
    let error = shorten(error);
    let path = path.map(shorten);
    write_line(
        out,
        &ErrorAnswer {
            line,
            error: &error,
            path: path.as_deref(),
        },
    )
}

/// The most characters of one quoted value an error message keeps.
pub const VALUE_PREFIX: usize = 64;

/// The most characters an error message keeps in all.
pub const MESSAGE_LIMIT: usize = 1024;

/// `message` with every value quoted in it (between backticks or double quotes, as the line
/// reader, the core and serde quote them) cut to its first [`VALUE_PREFIX`] characters and
/// `…`, and the whole cut to [`MESSAGE_LIMIT`] characters and `…`.
///
/// ```
/// let long = "9".repeat(10_000);
/// let message = format!("`from`: `{long}` is not a business phone number id");
/// let short = waguard_cli::answer::shorten(&message);
/// assert!(short.len() < 200, "{short}");
/// assert!(short.ends_with("…` is not a business phone number id"), "{short}");
/// assert_eq!(waguard_cli::answer::shorten("`to`: missing"), "`to`: missing");
/// ```
pub fn shorten(message: &str) -> std::borrow::Cow<'_, str> {
    let needs_work = message.chars().count() > MESSAGE_LIMIT
        || message
            .split(['`', '"'])
            .skip(1)
            .step_by(2)
            .any(|value| value.chars().count() > VALUE_PREFIX);
    if !needs_work {
        return std::borrow::Cow::Borrowed(message);
    }
    let mut out = String::with_capacity(MESSAGE_LIMIT + 8);
    let mut chars = message.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '`' || c == '"' {
            // A quoted value: keep its prefix, skip the rest up to the closing quote.
            let mut kept = 0;
            let mut cut = false;
            while let Some(&next) = chars.peek() {
                if next == c {
                    break;
                }
                chars.next();
                if kept < VALUE_PREFIX {
                    out.push(next);
                    kept += 1;
                } else if !cut {
                    out.push('…');
                    cut = true;
                }
            }
            if let Some(close) = chars.next() {
                out.push(close);
            }
        }
    }
    if out.chars().count() > MESSAGE_LIMIT {
        out = out.chars().take(MESSAGE_LIMIT).collect();
        out.push('…');
    }
    std::borrow::Cow::Owned(out)
}

/// Writes a value as one JSON line.
pub fn write_line(out: &mut impl Write, value: &impl Serialize) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")
}

/// An error and its causes on one line, each cause said once: a cause whose text the message
/// already holds (an error that quotes its source, as most do) is not repeated.
///
/// ```
/// use std::io;
/// let cause = io::Error::new(io::ErrorKind::Other, "disk on fire");
/// let error = anyhow::Error::new(cause).context("cannot write: disk on fire");
/// assert_eq!(waguard_cli::answer::one_line(&*error), "cannot write: disk on fire");
/// let error = anyhow::anyhow!("disk on fire").context("cannot write");
/// assert_eq!(waguard_cli::answer::one_line(&*error), "cannot write: disk on fire");
/// ```
pub fn one_line(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let text = e.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        cause = e.source();
    }
    message
}
