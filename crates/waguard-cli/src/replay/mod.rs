//! `waguard replay`: NDJSON lines in, NDJSON answers out (design.md section 7).

use std::io::{BufRead, Write};

use waguard::{Decision, Guard, Outgoing, Store, Timestamp};
use waguard_webhook::Limits;

pub use waguard_server::line::{parse, Line, Timed};

use crate::answer::{decision_answer, error_answer};

/// How a replay ended.
#[derive(Debug, Default, Clone, Copy)]
pub struct Summary {
    /// Physical lines read, blank ones included.
    pub lines: usize,
    /// Lines that produced at least one error answer.
    pub failed: usize,
}

/// Settings of one replay.
#[derive(Debug, Default, Clone)]
pub struct Options {
    /// The app secret for `webhook_raw` lines (rule H2).
    pub app_secret: Option<Vec<u8>>,
    /// Webhook size and depth limits.
    pub limits: Limits,
}

/// Replays every line of `input` against `guard`, writing answers to `out`.
///
/// Lines are read as bytes: a line that is not UTF-8 is an error answer for that line (with
/// the column of its first bad byte), like any other invalid line, and the replay goes on.
/// Fails only when the input cannot be read or the output cannot be written (exit status 2);
/// every problem with a line is an error answer for that line, and the replay goes on.
pub async fn run<S: Store>(
    guard: &Guard<S>,
    mut input: impl BufRead,
    out: &mut impl Write,
    options: &Options,
    mut progress: impl FnMut(usize),
) -> std::io::Result<Summary> {
    let mut summary = Summary::default();
    let mut buffer = Vec::new();
    let mut number = 0;
    loop {
        buffer.clear();
        if input.read_until(b'\n', &mut buffer)? == 0 {
            break;
        }
        number += 1;
        summary.lines = number;
        progress(number);
        let bytes = strip_line_end(&buffer);
        let failed = match std::str::from_utf8(bytes) {
            Err(e) => {
                let message = format!(
                    "the line is not UTF-8 text (invalid byte at column {}); nothing of it was applied",
                    e.valid_up_to() + 1
                );
                error_answer(out, number, &message, None)?;
                true
            }
            Ok(text) if text.trim().is_empty() => continue,
            Ok(text) => match parse(text) {
                Ok(timed) => apply(guard, number, timed, out, options).await?,
                Err(message) => {
                    error_answer(out, number, &message, None)?;
                    true
                }
            },
        };
        if failed {
            summary.failed += 1;
        }
    }
    Ok(summary)
}

/// A line without its `\n` or `\r\n` ending.
fn strip_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Applies one valid line; returns whether it produced an error answer.
async fn apply<S: Store>(
    guard: &Guard<S>,
    number: usize,
    Timed { at, line }: Timed<'_>,
    out: &mut impl Write,
    options: &Options,
) -> std::io::Result<bool> {
    let result: Result<Option<(Decision, Outgoing)>, String> = match line {
        Line::Webhook { body } => {
            return webhook(guard, number, body.as_bytes(), at, out, options).await;
        }
        Line::WebhookRaw { body, signature } => {
            let Some(secret) = options.app_secret.as_deref() else {
                error_answer(
                    out,
                    number,
                    "webhook_raw: no app secret to verify the signature with; pass --app-secret or set WAGUARD_APP_SECRET",
                    None,
                )?;
                return Ok(true);
            };
            if let Err(e) =
                waguard_webhook::verify_signature(body.as_bytes(), signature.as_deref(), secret)
            {
                error_answer(
                    out,
                    number,
                    &format!("webhook_raw: {e}; nothing of this body was applied"),
                    None,
                )?;
                return Ok(true);
            }
            return webhook(guard, number, body.as_bytes(), at, out, options).await;
        }
        line => waguard_server::apply(guard, line, at)
            .await
            .map(|applied| applied.decision())
            .map_err(|e| e.to_string()),
    };
    match result {
        Ok(Some((decision, outgoing))) => {
            decision_answer(out, Some(number), &decision, outgoing)?;
            Ok(false)
        }
        Ok(None) => Ok(false),
        Err(message) => {
            error_answer(out, number, &message, None)?;
            Ok(true)
        }
    }
}

/// Parses a webhook body and ingests its events; one answer per item that cannot be applied.
async fn webhook<S: Store>(
    guard: &Guard<S>,
    number: usize,
    body: &[u8],
    at: Timestamp,
    out: &mut impl Write,
    options: &Options,
) -> std::io::Result<bool> {
    let parsed = match waguard_webhook::parse(body, at, &options.limits) {
        Ok(parsed) => parsed,
        Err(e) => {
            error_answer(out, number, &format!("webhook: {e}"), None)?;
            return Ok(true);
        }
    };
    let mut failed = false;
    for item in &parsed.errors {
        error_answer(out, number, &item.problem.to_string(), Some(&item.path))?;
        failed = true;
    }
    // `at` is the receive time: item instants beyond it plus the allowed skew are clamped (E5).
    if let Err(e) = guard.ingest_at(parsed.events, at).await {
        error_answer(out, number, &format!("webhook: {e}"), None)?;
        failed = true;
    }
    Ok(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replay(input: &[u8]) -> (Summary, Vec<serde_json::Value>) {
        let guard = Guard::new(waguard::MemoryStore::new(), waguard::Policy::default()).unwrap();
        let mut out = Vec::new();
        let summary = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(run(&guard, input, &mut out, &Options::default(), |_| {}))
            .unwrap();
        let answers = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (summary, answers)
    }

    const OPT_OUT: &str =
        r#"{"at":"2026-03-01T00:00:00Z","opt_out":{"from":"1","to":"+33612345678"}}"#;
    const CHECK: &str = r#"{"at":"2026-03-01T00:01:00Z","check":{"from":"1","to":"+33612345678","message":"template","category":"utility"}}"#;

    #[test]
    fn a_line_that_is_not_utf8_is_an_error_answer_and_the_replay_goes_on() {
        let mut input = Vec::new();
        input.extend_from_slice(b"{\"at\":\"2026-03-01T00:00:00Z\",\"opt_out\":{\"from\":\"1\",\"to\":\"+3361\xff\xfe\"}}\r\n");
        input.extend_from_slice(OPT_OUT.as_bytes());
        input.extend_from_slice(b"\r\n\n");
        input.extend_from_slice(CHECK.as_bytes());
        let (summary, answers) = replay(&input);
        assert_eq!(
            summary.lines, 4,
            "the last line has no newline and still counts"
        );
        assert_eq!(summary.failed, 1);
        assert_eq!(answers.len(), 2, "{answers:?}");
        assert_eq!(answers[0]["line"], 1);
        let error = answers[0]["error"].as_str().unwrap();
        assert!(
            error.contains("not UTF-8") && error.contains("column 63"),
            "{error}"
        );
        // The opt-out of line 2 was applied: the check of line 4 is refused.
        assert_eq!(answers[1]["line"], 4);
        assert_eq!(answers[1]["allowed"], false, "{answers:?}");
    }

    #[test]
    fn an_error_answer_echoes_only_a_prefix_of_a_huge_value() {
        let huge = "7".repeat(1 << 20);
        let line = format!(
            r#"{{"at":"2026-03-01T00:00:00Z","opt_out":{{"from":"{huge}","to":"+33612345678"}}}}"#
        );
        let scope = format!(
            r#"{{"at":"2026-03-01T00:00:00Z","opt_out":{{"from":"1","to":"+33612345678","scope":"{huge}"}}}}"#
        );
        let input = format!("{line}\n{scope}\n");
        let (summary, answers) = replay(input.as_bytes());
        assert_eq!(summary.failed, 2);
        for answer in &answers {
            let error = answer["error"].as_str().unwrap();
            assert!(
                error.chars().count() < 400,
                "{} chars: {}",
                error.len(),
                &error[..200]
            );
            assert!(
                error.contains(&"7".repeat(64)) && error.contains('…'),
                "{error}"
            );
        }
    }
}
