//! Step 5: the resend cap of a reservation with an idempotency key (rule G1).

use crate::decision::{BlockReason, Decision};
use crate::policy::{Policy, DAY};
use crate::state::ConversationState;
use crate::time::Timestamp;

use super::blocked;

/// The stored hash of a caller's idempotency key (XXH3-64).
pub fn hash_key(idempotency_key: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(idempotency_key.as_bytes())
}

/// G1: once `max_attempts` allowed reservations were made within 24h of the first, further ones
/// are refused until that 24h period ends; then a new period starts.
pub fn resend_limit(
    state: &ConversationState,
    key_hash: u64,
    now: Timestamp,
    policy: &Policy,
) -> Option<Decision> {
    let attempts = state.attempts_for(key_hash)?;
    let period_end = attempts.first_at.saturating_add(DAY);
    (now < period_end && attempts.count >= policy.max_attempts)
        .then(|| blocked(BlockReason::ResendLimit, Some(period_end)))
}
