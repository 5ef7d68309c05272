//! Step 1: the business number (rules S1-S3).

use crate::decision::{BlockReason, Decision};
use crate::policy::Policy;
use crate::state::SenderState;
use crate::time::Timestamp;

use super::blocked;

/// The first sender-level refusal in force at `now`, if any: S1, then S2 throughput, then S2
/// service, then S3.
pub fn refusal(sender: &SenderState, now: Timestamp, policy: &Policy) -> Option<Decision> {
    // S1: only an explicit clear or a strictly newer success lifts it.
    if sender.is_restricted() {
        return Some(blocked(BlockReason::SenderRestricted, None));
    }
    // S2: fixed penalties from the latest failure; no doubling, so the state stays convergent.
    let active = |at: Option<Timestamp>, penalty| {
        at.map(|t| t.saturating_add(penalty))
            .filter(|until| *until > now)
    };
    if let Some(until) = active(sender.throughput_at, policy.throughput_penalty) {
        return Some(blocked(BlockReason::ThroughputLimited, Some(until)));
    }
    let service = active(sender.service_at, policy.service_penalty)
        .max(active(sender.api_update_at, policy.api_update_penalty));
    if let Some(until) = service {
        return Some(blocked(BlockReason::ServiceUnavailable, Some(until)));
    }
    // S3.
    active(sender.spam_at, policy.spam_penalty)
        .map(|until| blocked(BlockReason::SpamRateLimited, Some(until)))
}
