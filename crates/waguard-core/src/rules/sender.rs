//! Step 1: the business number (rules S1-S3; S4's pacing is kept by the guard).

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
    // Section 7: api_rate_limited comes before service_unavailable.
    if let Some(until) = active(sender.api_rate_at, policy.api_rate_penalty) {
        return Some(blocked(BlockReason::ApiRateLimited, Some(until)));
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

/// S4: when a pace of `rate` (a GCRA whose theoretical arrival time is `tat`) allows the next
/// message, if not at `now`.
pub fn pace_exhausted_until(
    tat: Option<Timestamp>,
    now: Timestamp,
    rate: crate::policy::PairRate,
) -> Option<Timestamp> {
    let tat = tat?;
    let interval = crate::time::duration_nanos(rate.interval);
    let tolerance = interval.saturating_mul(i64::from(rate.burst.saturating_sub(1)));
    let next = Timestamp::from_unix_nanos(tat.unix_nanos().saturating_sub(tolerance));
    (next > now).then_some(next)
}

/// S4: the pace's theoretical arrival time after one more message at `now`.
pub fn pace_consume(
    tat: Option<Timestamp>,
    now: Timestamp,
    rate: crate::policy::PairRate,
) -> Timestamp {
    tat.map_or(now, |t| t.max(now))
        .saturating_add(rate.interval)
}

/// S4 in section 7's order: a decision of the chain, with the business number's pace applied.
/// The pace refuses after S1 and before everything else; when the S2 penalty refuses too,
/// `until` is the later of the two.
///
/// ```
/// use waguard_core::rules::sender::paced;
/// use waguard_core::*;
/// let policy = Policy::default();
/// let now = Timestamp::parse_rfc3339("2026-03-01T00:00:00Z").unwrap();
/// let free = Decision::TemplateRequired { reason: TemplateReason::FirstContact };
/// assert_eq!(paced(free, None, now, &policy), free);
/// let busy = now.saturating_add(std::time::Duration::from_secs(2));
/// let d = paced(free, Some(busy), now, &policy);
/// assert_eq!(d.reason().unwrap().as_str(), "throughput_limited");
/// ```
pub fn paced(
    decision: Decision,
    tat: Option<Timestamp>,
    now: Timestamp,
    policy: &Policy,
) -> Decision {
    if let Decision::Blocked {
        reason: BlockReason::SenderRestricted,
        ..
    } = decision
    {
        return decision;
    }
    let Some(next) = pace_exhausted_until(tat, now, policy.throughput) else {
        return decision;
    };
    let until = match decision {
        Decision::Blocked {
            reason: BlockReason::ThroughputLimited,
            until: Some(penalty),
        } => penalty.max(next),
        _ => next,
    };
    blocked(BlockReason::ThroughputLimited, Some(until))
}
