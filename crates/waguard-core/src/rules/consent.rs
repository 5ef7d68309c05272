//! Steps 3 and 6: opt-out and consent (rules O1-O4).

use crate::code::CodeEffect;
use crate::decision::{BlockReason, Decision};
use crate::event::Outgoing;
use crate::policy::Policy;
use crate::state::ConversationState;

use super::blocked;

/// O1: a full opt-out blocks everything until a later opt-in.
pub fn opted_out(state: &ConversationState) -> Option<Decision> {
    state
        .opt_all
        .is_out()
        .then(|| blocked(BlockReason::OptedOut, None))
}

/// O2: a marketing opt-out (preference `stop`, explicit, or an unvoided 131050) blocks
/// marketing templates until a later `resume` or opt-in.
pub fn marketing_opted_out(state: &ConversationState) -> Option<Decision> {
    let failed = state.feedback.latest_unvoided(CodeEffect::MarketingOptOut);
    state
        .opt_marketing
        .is_out_with(failed)
        .then(|| blocked(BlockReason::MarketingOptedOut, None))
}

/// O4: with `require_opt_in`, a template needs recorded consent: an opt-in of scope `all` (or
/// START) for any template; for marketing templates a `marketing` opt-in or `resume` counts too.
pub fn no_opt_in(
    state: &ConversationState,
    outgoing: Outgoing,
    policy: &Policy,
) -> Option<Decision> {
    if !policy.require_opt_in {
        return None;
    }
    let consent = state.opt_all.in_at.is_some()
        || (outgoing.is_marketing() && state.opt_marketing.in_at.is_some());
    (!consent).then(|| blocked(BlockReason::NoOptIn, None))
}
