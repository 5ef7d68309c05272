//! Step 7: the customer-service window (rules W1-W4, W7; W6: templates are never refused here).

use crate::code::CodeEffect;
use crate::decision::{Decision, TemplateReason};
use crate::policy::{Policy, WINDOW};
use crate::state::ConversationState;
use crate::time::Timestamp;

/// W4: the latest instant Meta said the window was closed (unvoided 131047, or folded).
pub fn closed_mark(state: &ConversationState) -> Option<Timestamp> {
    state
        .closed_mark
        .max(state.feedback.latest_unvoided(CodeEffect::WindowClosed))
}

/// W2/W4: `free_form` while `now < last_inbound + 24h - margin` and no 131047 at or after the
/// last inbound; otherwise `template_required` with the reason of W3. (W7: a group key's state
/// is fed by its participants' messages, so the same arithmetic applies.)
pub fn decide(state: &ConversationState, now: Timestamp, policy: &Policy) -> Decision {
    let mark = closed_mark(state);
    let Some(inbound) = state.last_inbound else {
        let reason = if state.last_template_at.is_some() {
            TemplateReason::AwaitingReply
        } else {
            TemplateReason::FirstContact
        };
        return Decision::TemplateRequired { reason };
    };
    let closes_at = inbound
        .saturating_add(WINDOW)
        .saturating_sub(policy.window_margin);
    let closed_by_platform = mark.is_some_and(|m| m >= inbound);
    if now < closes_at && !closed_by_platform {
        return Decision::FreeForm { closes_at };
    }
    // W3: when did the last inbound's window close, by time or by W4? By W4 it closed at the
    // earliest unvoided 131047 at or after the inbound: a second 131047 after a re-engagement
    // template does not move it. Marks folded out of the feedback set keep only their latest
    // instant, the best bound left for them.
    let closed_at = if closed_by_platform {
        let recent = state
            .feedback
            .earliest_unvoided_since(CodeEffect::WindowClosed, inbound);
        let folded = state.closed_mark.filter(|m| *m >= inbound);
        let earliest = match (recent, folded) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        earliest.map_or(closes_at, |m| m.min(closes_at))
    } else {
        closes_at
    };
    let reason = match state.last_template_at {
        Some(template) if template >= inbound && template >= closed_at => {
            TemplateReason::AwaitingReply
        }
        _ if closed_by_platform && now < closes_at => TemplateReason::WindowClosedByPlatform,
        _ => TemplateReason::WindowExpired,
    };
    Decision::TemplateRequired { reason }
}
