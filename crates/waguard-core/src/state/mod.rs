//! The state per key and per business number, as join-semilattices (rules E1, E2, E4).

mod feedback;
mod register;
mod sender;

pub use feedback::{DeliveryEntry, FailureEntry, Feedback};
pub use register::OptRegister;
pub use sender::SenderState;

use serde::{Deserialize, Serialize};

use crate::code::{CodeEffect, CodeScope};
use crate::event::{DeliveryStatus, Event, Preference, Scope};
use crate::policy::{Keyword, Policy};
use crate::time::Timestamp;
use register::{erase_upto, lower, min_join, raise};

/// Attempts of one idempotency key within its 24h period (rule G1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Attempts {
    /// Hash of the caller's idempotency key (XXH3-64).
    pub key_hash: u64,
    /// The first allowed attempt of the current period.
    pub first_at: Timestamp,
    /// Allowed attempts in the current period.
    pub count: u32,
}

/// Everything the guard knows about one (business, contact) key.
///
/// Every field is a max, min or last-writer-wins register, or a bounded set joined by union, so
/// applying the same events in any order and with any duplicates gives the same state (E1), and
/// no event moves a register backwards (E2). Derived facts (is D1 cleared, is the window
/// reopened) are computed by [`decide`](crate::decide), never stored.
///
/// ```
/// use waguard_core::{ConversationState, Event, Policy, Timestamp};
/// let policy = Policy::default();
/// let hello = Event::Inbound { at: Timestamp::from_unix_seconds(100).unwrap(), text: None, referral: false };
/// let mut a = ConversationState::default();
/// a.apply(&hello, &policy);
/// let mut b = a.clone();
/// b.apply(&hello, &policy); // a duplicate changes nothing
/// assert_eq!(a, b);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ConversationState {
    /// The newest event time seen (bounds the feedback set and the tombstone).
    pub latest_event: Option<Timestamp>,
    /// E4: the erasure instant; events at or before it are ignored.
    pub erased_at: Option<Timestamp>,
    /// W1: the latest inbound message or user-initiated call.
    pub last_inbound: Option<Timestamp>,
    /// W5: the latest inbound that came from a click-to-WhatsApp ad or Page button.
    pub referral_at: Option<Timestamp>,
    /// W3: the first template sent.
    pub first_template_at: Option<Timestamp>,
    /// W3: the latest template sent.
    pub last_template_at: Option<Timestamp>,
    /// D1: the latest delivered/read status, whatever the message.
    pub last_delivered_at: Option<Timestamp>,
    /// W4: the latest 131047 that left the feedback set unvoided.
    pub closed_mark: Option<Timestamp>,
    /// O1: full opt-out and opt-in (explicit `all`, STOP and START keywords).
    pub opt_all: OptRegister,
    /// O2: marketing opt-out and opt-in (explicit `marketing`, `user_preferences`, folded 131050).
    pub opt_marketing: OptRegister,
    /// D2: recent failures and deliveries.
    pub feedback: Feedback,
    /// D3: the theoretical arrival time of the pair-rate budget (GCRA); local bookkeeping.
    pub pair_budget_tat: Option<Timestamp>,
    /// G1: attempts per idempotency key, sorted by key hash; local bookkeeping.
    pub attempts: Vec<Attempts>,
}

impl ConversationState {
    /// Applies one event; returns whether the state changed. Never fails: events were validated
    /// when built. Events at or before an erasure are ignored (E4).
    pub fn apply(&mut self, event: &Event, policy: &Policy) -> bool {
        let at = event.at();
        if self.erased_at.is_some_and(|e| at <= e) {
            return false;
        }
        let mut changed = raise(&mut self.latest_event, at);
        changed |= match event {
            Event::Inbound { text, referral, .. } => {
                let mut c = raise(&mut self.last_inbound, at);
                if *referral {
                    c |= raise(&mut self.referral_at, at);
                }
                match text.as_deref().and_then(|t| policy.keyword(t)) {
                    Some(Keyword::Stop) => c |= raise(&mut self.opt_all.out_at, at),
                    Some(Keyword::Start) => c |= raise(&mut self.opt_all.in_at, at),
                    None => {}
                }
                c
            }
            Event::TemplateSent { .. } => {
                lower(&mut self.first_template_at, at) | raise(&mut self.last_template_at, at)
            }
            Event::Status { status, wamid, .. } => match status {
                DeliveryStatus::Sent => false,
                DeliveryStatus::Delivered | DeliveryStatus::Read => {
                    let mut c = raise(&mut self.last_delivered_at, at);
                    if let Some(w) = wamid {
                        c |= self.feedback.add_delivery(*w, at);
                    }
                    c
                }
            },
            Event::Failure { code, wamid, .. } => {
                if CodeEffect::of(*code).scope() == CodeScope::Contact {
                    self.feedback.add_failure(FailureEntry {
                        wamid: *wamid,
                        at,
                        code: *code,
                    })
                } else {
                    false
                }
            }
            Event::MarketingPreference { value, .. } => match value {
                Preference::Stop => raise(&mut self.opt_marketing.out_at, at),
                Preference::Resume => raise(&mut self.opt_marketing.in_at, at),
            },
            Event::OptOut { scope, .. } => raise(&mut self.register(*scope).out_at, at),
            Event::OptIn { scope, .. } => raise(&mut self.register(*scope).in_at, at),
        };
        if changed {
            self.prune(policy);
        }
        changed
    }

    fn register(&mut self, scope: Scope) -> &mut OptRegister {
        match scope {
            Scope::All => &mut self.opt_all,
            Scope::Marketing => &mut self.opt_marketing,
        }
    }

    /// E4: erases everything known at or before `at`, leaving a tombstone so that late retries
    /// of older events cannot bring the state back. Returns whether the state changed.
    pub fn erase(&mut self, at: Timestamp, policy: &Policy) -> bool {
        if !raise(&mut self.erased_at, at) {
            return false;
        }
        raise(&mut self.latest_event, at);
        self.drop_erased();
        self.prune(policy);
        true
    }

    /// A state holding only a tombstone at `at`.
    pub fn tombstone(at: Timestamp) -> Self {
        ConversationState {
            latest_event: Some(at),
            erased_at: Some(at),
            ..ConversationState::default()
        }
    }

    fn drop_erased(&mut self) {
        let Some(e) = self.erased_at else { return };
        for slot in [
            &mut self.last_inbound,
            &mut self.referral_at,
            &mut self.first_template_at,
            &mut self.last_template_at,
            &mut self.last_delivered_at,
            &mut self.closed_mark,
            &mut self.pair_budget_tat,
        ] {
            erase_upto(slot, e);
        }
        // The first template is a min register: once erased it may only come back from a
        // template after the erasure, which `last_template_at` still holds.
        if self.first_template_at.is_none() && self.last_template_at.is_some() {
            // Templates after the erasure were applied after it, so the earliest surviving one
            // is not known exactly; the latest is a safe stand-in (it only matters for W3).
            self.first_template_at = self.last_template_at;
        }
        self.opt_all.erase_upto(e);
        self.opt_marketing.erase_upto(e);
        self.feedback.erase_upto(e);
        self.attempts.retain(|a| a.first_at > e);
    }

    /// Bounds the feedback set and the tombstone by the horizon before the newest event (D2, E4).
    fn prune(&mut self, policy: &Policy) {
        let Some(latest) = self.latest_event else {
            return;
        };
        let cutoff = latest.saturating_sub(policy.feedback_horizon);
        let folded = self.feedback.prune(cutoff);
        if let Some(t) = folded.marketing_out {
            raise(&mut self.opt_marketing.out_at, t);
        }
        if let Some(t) = folded.closed_mark {
            raise(&mut self.closed_mark, t);
        }
        if self.erased_at.is_some_and(|e| e < cutoff) {
            self.erased_at = None;
        }
    }

    /// Joins another state of the same key into this one (the lattice join): commutative,
    /// associative and idempotent. Reservation bookkeeping takes the more restrictive value.
    pub fn merge(&mut self, other: &ConversationState, policy: &Policy) {
        self.latest_event = self.latest_event.max(other.latest_event);
        self.erased_at = self.erased_at.max(other.erased_at);
        self.last_inbound = self.last_inbound.max(other.last_inbound);
        self.referral_at = self.referral_at.max(other.referral_at);
        self.first_template_at = min_join(self.first_template_at, other.first_template_at);
        self.last_template_at = self.last_template_at.max(other.last_template_at);
        self.last_delivered_at = self.last_delivered_at.max(other.last_delivered_at);
        self.closed_mark = self.closed_mark.max(other.closed_mark);
        self.opt_all.join(&other.opt_all);
        self.opt_marketing.join(&other.opt_marketing);
        self.feedback.join(&other.feedback);
        self.pair_budget_tat = self.pair_budget_tat.max(other.pair_budget_tat);
        for a in &other.attempts {
            self.join_attempts(*a);
        }
        self.drop_erased();
        self.prune(policy);
    }

    fn join_attempts(&mut self, a: Attempts) {
        match self
            .attempts
            .binary_search_by_key(&a.key_hash, |x| x.key_hash)
        {
            Ok(i) => {
                let mine = &mut self.attempts[i];
                if (a.first_at, a.count) > (mine.first_at, mine.count) {
                    *mine = a;
                }
            }
            Err(i) => self.attempts.insert(i, a),
        }
    }

    /// Whether nothing is recorded at all (no tombstone either): a store may delete the record.
    pub fn is_empty(&self) -> bool {
        *self == ConversationState::default()
    }

    /// The attempts recorded for an idempotency key hash.
    pub fn attempts_for(&self, key_hash: u64) -> Option<&Attempts> {
        self.attempts
            .binary_search_by_key(&key_hash, |a| a.key_hash)
            .ok()
            .map(|i| &self.attempts[i])
    }

    pub(crate) fn record_attempt(
        &mut self,
        key_hash: u64,
        now: Timestamp,
        period: std::time::Duration,
    ) {
        // Periods that ended are forgotten, which keeps the list bounded.
        self.attempts
            .retain(|a| a.first_at.saturating_add(period) > now);
        match self
            .attempts
            .binary_search_by_key(&key_hash, |a| a.key_hash)
        {
            Ok(i) => self.attempts[i].count = self.attempts[i].count.saturating_add(1),
            Err(i) => self.attempts.insert(
                i,
                Attempts {
                    key_hash,
                    first_at: now,
                    count: 1,
                },
            ),
        }
    }

    pub(crate) fn record_template(&mut self, at: Timestamp) {
        lower(&mut self.first_template_at, at);
        raise(&mut self.last_template_at, at);
        raise(&mut self.latest_event, at);
    }
}
