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
/// Fails only when the input cannot be read or the output cannot be written (exit status 2);
/// every problem with a line is an error answer for that line, and the replay goes on.
pub async fn run<S: Store>(
    guard: &Guard<S>,
    input: impl BufRead,
    out: &mut impl Write,
    options: &Options,
    mut progress: impl FnMut(usize),
) -> std::io::Result<Summary> {
    let mut summary = Summary::default();
    for (index, text) in input.lines().enumerate() {
        let text = text?;
        let number = index + 1;
        summary.lines = number;
        progress(number);
        if text.trim().is_empty() {
            continue;
        }
        let failed = match parse(&text) {
            Ok(timed) => apply(guard, number, timed, out, options).await?,
            Err(message) => {
                error_answer(out, number, &message, None)?;
                true
            }
        };
        if failed {
            summary.failed += 1;
        }
    }
    Ok(summary)
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
