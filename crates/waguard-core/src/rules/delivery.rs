//! Steps 4-6: delivery feedback on the contact (rules D1-D4) and the pair budget (D3).

use crate::code::CodeEffect;
use crate::decision::{BlockReason, Decision};
use crate::policy::{Policy, DAY};
use crate::state::ConversationState;
use crate::time::Timestamp;

use super::blocked;

/// D1: 131026/131030 block the key for the cooldown, unless voided by the same message's
/// delivery (D2), or cleared early by a later inbound or a later delivered/read status.
pub fn undeliverable(
    state: &ConversationState,
    now: Timestamp,
    policy: &Policy,
) -> Option<Decision> {
    let failed = state.feedback.latest_unvoided(CodeEffect::Undeliverable)?;
    let until = failed.saturating_add(policy.undeliverable_cooldown);
    let cleared = state.last_inbound > Some(failed) || state.last_delivered_at > Some(failed);
    (now < until && !cleared).then(|| blocked(BlockReason::Undeliverable, Some(until)))
}

/// The burst tolerance of the pair budget's GCRA, `interval * (burst - 1)`, in nanoseconds.
fn tolerance_nanos(policy: &Policy) -> i64 {
    let interval = crate::time::duration_nanos(policy.pair_rate.interval);
    interval.saturating_mul(i64::from(policy.pair_rate.burst.saturating_sub(1)))
}

/// When the next reservation would succeed, if the budget is exhausted at `now`.
pub fn budget_exhausted_until(
    state: &ConversationState,
    now: Timestamp,
    policy: &Policy,
) -> Option<Timestamp> {
    let tat = state.pair_budget_tat?;
    let next = Timestamp::from_unix_nanos(tat.unix_nanos().saturating_sub(tolerance_nanos(policy)));
    (next > now).then_some(next)
}

/// D3: Meta's 131056 penalty (unless voided) and the local pair budget; when both refuse,
/// `until` is the later of the two.
pub fn pair_rate_limited(
    state: &ConversationState,
    now: Timestamp,
    policy: &Policy,
) -> Option<Decision> {
    let penalty = state
        .feedback
        .latest_unvoided(CodeEffect::PairRateLimited)
        .map(|t| t.saturating_add(policy.pair_penalty))
        .filter(|until| *until > now);
    let budget = budget_exhausted_until(state, now, policy);
    penalty
        .max(budget)
        .map(|until| blocked(BlockReason::PairRateLimited, Some(until)))
}

/// Takes one slot of the pair budget at `now` (call only when the reservation is allowed).
pub(crate) fn consume_pair_budget(state: &mut ConversationState, now: Timestamp, policy: &Policy) {
    let base = state.pair_budget_tat.map_or(now, |tat| tat.max(now));
    state.pair_budget_tat = Some(base.saturating_add(policy.pair_rate.interval));
}

/// D4: 131049/130472 hold marketing templates back for 24h (unless voided).
pub fn marketing_limited(state: &ConversationState, now: Timestamp) -> Option<Decision> {
    let until = state
        .feedback
        .latest_unvoided(CodeEffect::MarketingLimited)?
        .saturating_add(DAY);
    (now < until).then(|| blocked(BlockReason::MarketingLimited, Some(until)))
}
