//! What a [`Line`] asks of a [`Guard`], done: the one place that turns a replay line or a `/v1`
//! body into a guard call, for `waguard replay` and `waguard serve` alike.

use waguard::{CodeEffect, Decision, Guard, GuardError, Outgoing, Store, Timestamp};

use crate::line::Line;

/// What [`apply`] did.
#[derive(Debug)]
#[non_exhaustive]
pub enum Applied {
    /// A `check` or `reserve`: the decision about that message.
    Decided {
        /// The decision.
        decision: Decision,
        /// The message it is about.
        outgoing: Outgoing,
    },
    /// A `send_error`: the code and what it does (an unknown or not-retryable code changes
    /// nothing).
    SendError {
        /// Meta's error code.
        code: u32,
        /// Its effect.
        effect: CodeEffect,
    },
    /// Any other line: applied.
    Done,
}

impl Applied {
    /// The decision and its message, for `check` and `reserve`.
    pub fn decision(&self) -> Option<(Decision, Outgoing)> {
        match self {
            Applied::Decided { decision, outgoing } => Some((*decision, *outgoing)),
            _ => None,
        }
    }
}

/// [`apply`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// The guard failed: the store could not answer, or a stored record could not be read.
    #[error(transparent)]
    Guard(#[from] GuardError),
    /// A `webhook` or `webhook_raw` line: those are parsed and ingested as webhooks, not
    /// applied as one call.
    #[error("a webhook line is ingested as a webhook, not applied as one call")]
    Webhook,
}

/// Applies one line that is a single guard call (every kind but `webhook` and `webhook_raw`)
/// at `at`.
pub async fn apply<S: Store>(
    guard: &Guard<S>,
    line: Line<'_>,
    at: Timestamp,
) -> Result<Applied, ApplyError> {
    Ok(match line {
        Line::Check {
            key,
            outgoing,
            template,
        } => Applied::Decided {
            decision: guard
                .check_named(&key, outgoing, template.as_ref(), at)
                .await?,
            outgoing,
        },
        Line::Reserve {
            key,
            outgoing,
            idempotency_key,
            template,
        } => Applied::Decided {
            decision: guard
                .reserve_named(
                    &key,
                    outgoing,
                    template.as_ref(),
                    idempotency_key.as_deref(),
                    at,
                )
                .await?,
            outgoing,
        },
        Line::SendError {
            key,
            code,
            wamid,
            template,
        } => Applied::SendError {
            code,
            effect: guard
                .record_send_error_named(&key, code, wamid.as_deref(), template.as_ref(), at)
                .await?,
        },
        Line::OptOut { key, scope } => {
            guard.opt_out(&key, scope, at).await?;
            Applied::Done
        }
        Line::OptIn { key, scope } => {
            guard.opt_in(&key, scope, at).await?;
            Applied::Done
        }
        Line::Forget {
            key,
            include_opt_out: false,
        } => {
            guard.forget(&key, at).await?;
            Applied::Done
        }
        Line::Forget {
            key,
            include_opt_out: true,
        } => {
            guard.forget_including_opt_out(&key, at).await?;
            Applied::Done
        }
        Line::ClearSender { business } => {
            guard.clear_sender(&business, at).await?;
            Applied::Done
        }
        Line::Webhook { .. } | Line::WebhookRaw { .. } => return Err(ApplyError::Webhook),
    })
}
