//! The portfolio's messaging limit (rules L1-L3): the limit Meta set, and the counts of unique
//! users reached outside a customer-service window, in buckets aligned to the Unix epoch.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::decision::{BlockReason, Decision};
use crate::policy::{Policy, DAY};
use crate::time::Timestamp;

/// Meta's cap on unique users reached outside a window in a moving 24 hours (L2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MessagingLimit {
    /// At most this many users.
    Users(u64),
    /// No cap.
    Unlimited,
}

impl MessagingLimit {
    /// L2: a limit as the webhooks write it: `TIER_50` ... `TIER_100K`, `TIER_UNLIMITED`, an
    /// integer (`-1`: unlimited); `None` for `TIER_NOT_SET` and anything else (no change).
    ///
    /// ```
    /// use waguard_core::MessagingLimit;
    /// assert_eq!(MessagingLimit::parse("TIER_2K"), Some(MessagingLimit::Users(2000)));
    /// assert_eq!(MessagingLimit::parse("-1"), Some(MessagingLimit::Unlimited));
    /// assert_eq!(MessagingLimit::parse("TIER_NOT_SET"), None);
    /// ```
    pub fn parse(text: &str) -> Option<Self> {
        let users = match text.trim().to_ascii_uppercase().as_str() {
            "TIER_50" => 50,
            "TIER_250" => 250,
            "TIER_1K" => 1_000,
            "TIER_2K" => 2_000,
            "TIER_10K" => 10_000,
            "TIER_100K" => 100_000,
            "TIER_UNLIMITED" => return Some(MessagingLimit::Unlimited),
            other => match other.parse::<i64>() {
                Ok(-1) => return Some(MessagingLimit::Unlimited),
                Ok(n) if n >= 0 => n as u64,
                _ => return None,
            },
        };
        Some(MessagingLimit::Users(users))
    }
}

/// One portfolio's record: the limit register (last writer wins by event time) and the count
/// buckets (start of the bucket -> users counted in it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PortfolioState {
    /// L2: the latest limit a webhook set, with its time.
    pub limit: Option<(Timestamp, MessagingLimit)>,
    /// L3: users counted per bucket, by the bucket's start.
    pub buckets: BTreeMap<Timestamp, u64>,
}

impl PortfolioState {
    /// L2: sets the limit if the event is newer (at equal times the lower limit, the safe
    /// side). Returns whether it changed.
    pub fn set_limit(&mut self, limit: MessagingLimit, at: Timestamp) -> bool {
        let wins = match self.limit {
            None => true,
            Some((t, current)) => at > t || (at == t && limit < current),
        };
        if wins {
            self.limit = Some((at, limit));
        }
        wins
    }

    /// The limit in force: the webhook's, else `Policy::messaging_limit`.
    pub fn effective_limit(&self, policy: &Policy) -> Option<MessagingLimit> {
        self.limit
            .map(|(_, l)| l)
            .or(policy.messaging_limit.map(MessagingLimit::Users))
    }

    /// The start of the bucket holding `at`.
    fn bucket_of(at: Timestamp, width: Duration) -> Timestamp {
        let w = i64::try_from(width.as_nanos()).unwrap_or(i64::MAX).max(1);
        let n = at.unix_nanos();
        Timestamp::from_unix_nanos(n.saturating_sub(n.rem_euclid(w)))
    }

    /// When a bucket starting at `start` stops being live.
    fn bucket_end(start: Timestamp, width: Duration) -> Timestamp {
        start.saturating_add(width).saturating_add(DAY)
    }

    /// L3: the users counted in live buckets at `now`.
    pub fn live_count(&self, now: Timestamp, policy: &Policy) -> u64 {
        let w = policy.messaging_limit_bucket;
        self.buckets
            .iter()
            .filter(|(s, _)| Self::bucket_end(**s, w) > now)
            .map(|(_, n)| *n)
            .sum()
    }

    /// L3: the refusal of a template that would count at `now`, if the live count has reached
    /// the limit: `until` is the earliest instant a live bucket stops being live.
    pub fn refusal(&self, now: Timestamp, policy: &Policy) -> Option<Decision> {
        let MessagingLimit::Users(limit) = self.effective_limit(policy)? else {
            return None;
        };
        if self.live_count(now, policy) < limit {
            return None;
        }
        let until = self.next_expiry(now, policy);
        Some(Decision::Blocked {
            reason: BlockReason::MessagingLimitReached,
            until,
        })
    }

    /// L3: when the earliest live bucket stops being live, if any is.
    pub fn next_expiry(&self, now: Timestamp, policy: &Policy) -> Option<Timestamp> {
        let w = policy.messaging_limit_bucket;
        self.buckets
            .iter()
            .filter(|(s, n)| **n > 0 && Self::bucket_end(**s, w) > now)
            .map(|(s, _)| Self::bucket_end(*s, w))
            .min()
    }

    /// L3: counts one user at `now` (and forgets buckets no longer live).
    pub fn count(&mut self, now: Timestamp, policy: &Policy) {
        let w = policy.messaging_limit_bucket;
        self.buckets.retain(|s, _| Self::bucket_end(*s, w) > now);
        *self.buckets.entry(Self::bucket_of(now, w)).or_insert(0) += 1;
    }

    /// L3: takes back a count made at `at` (a reservation that did not happen after all).
    pub fn uncount(&mut self, at: Timestamp, policy: &Policy) {
        let start = Self::bucket_of(at, policy.messaging_limit_bucket);
        if let Some(n) = self.buckets.get_mut(&start) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.buckets.remove(&start);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_unix_seconds(1_772_323_200 + s).unwrap()
    }

    #[test]
    fn l3_buckets_expire_and_give_the_until() {
        let policy = Policy {
            messaging_limit: Some(2),
            ..Policy::default()
        };
        let mut p = PortfolioState::default();
        assert_eq!(p.refusal(t(0), &policy), None);
        p.count(t(10), &policy);
        p.count(t(3_700), &policy);
        assert_eq!(p.live_count(t(3_700), &policy), 2);
        // The first bucket [0, 1h) is live until 1h + 24h.
        assert_eq!(
            p.refusal(t(4_000), &policy),
            Some(Decision::Blocked {
                reason: BlockReason::MessagingLimitReached,
                until: Some(t(3_600 + 86_400))
            })
        );
        assert_eq!(p.refusal(t(3_600 + 86_400), &policy), None);
        // A webhook's limit wins over the policy's; unlimited is never reached.
        p.set_limit(MessagingLimit::Unlimited, t(1));
        assert_eq!(p.refusal(t(4_000), &policy), None);
        assert!(!p.set_limit(MessagingLimit::Users(1), t(0)), "older");
        p.uncount(t(10), &policy);
        assert_eq!(p.live_count(t(4_000), &policy), 1);
    }
}
