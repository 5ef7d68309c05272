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
use crate::id::PhoneNumber;
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

/// A pointer from one key to a phone key of the same business number, with the instant of the
/// item that set it: a BSUID's link to its phone (rule K5), or a number's move to a new number
/// (rule K6). A last-writer-wins register by that instant; at equal instants the greater
/// number, compared as a number, wins.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Link {
    /// The phone the pointer leads to.
    pub phone: PhoneNumber,
    /// When the item that set it happened.
    pub at: Timestamp,
}

impl Link {
    /// The order of the register: later instant first, then the greater number.
    fn rank(&self) -> (Timestamp, u64) {
        (self.at, self.phone.digits().parse().unwrap_or(0))
    }

    /// Sets `slot` to `candidate` if it wins the register; returns whether it changed.
    pub(crate) fn join(slot: &mut Option<Link>, candidate: &Link) -> bool {
        match slot {
            Some(current) if current.rank() >= candidate.rank() => false,
            _ => {
                *slot = Some(candidate.clone());
                true
            }
        }
    }
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
    /// E4: the erasure instant; events at or before it are ignored, except their consent part.
    pub erased_at: Option<Timestamp>,
    /// E4: the instant of the latest erasure that took the consent registers too
    /// (`include_opt_out`); consent events at or before it are ignored as well.
    pub consent_erased_at: Option<Timestamp>,
    /// K5: on a BSUID key, the phone this user id belongs to. A linked key keeps no state of its
    /// own: everything naming it applies to the phone's key.
    pub link: Option<Link>,
    /// K6: the number this phone number changed to, and when. Consent events of this key
    /// timestamped at or before that instant also count for the new number.
    pub moved_to: Option<Link>,
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
    /// L3: when the key was last counted against its portfolio's messaging limit; local
    /// bookkeeping of `reserve`.
    pub counted_at: Option<Timestamp>,
}

impl ConversationState {
    /// Applies one event; returns whether the state changed. Never fails: events were validated
    /// when built. Events at or before an erasure are ignored (E4).
    pub fn apply(&mut self, event: &Event, policy: &Policy) -> bool {
        let at = event.at();
        if self.erased_at.is_some_and(|e| at <= e) {
            // E4: a late retry cannot bring erased state back, but an objection (or its
            // lifting) is applied whenever it arrives, unless the consent was erased too.
            if self.consent_erased_at.is_some_and(|e| at <= e) {
                return false;
            }
            let changed = self.apply_consent(event, policy);
            if changed {
                raise(&mut self.latest_event, at);
                self.prune(policy);
            }
            return changed;
        }
        let mut changed = event.advances_latest() && raise(&mut self.latest_event, at);
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

    /// The consent part of an event (O1 keywords, O2 preferences and 131050, explicit opt-outs
    /// and opt-ins), applied alone: what E4 applies of an event at or before an erasure. A
    /// 131050 goes straight into the marketing register, as D2's folding would put it: once
    /// its delivery proof is erased nothing can void it.
    fn apply_consent(&mut self, event: &Event, policy: &Policy) -> bool {
        match event {
            Event::Inbound {
                text: Some(text),
                at,
                ..
            } => match policy.keyword(text) {
                Some(Keyword::Stop) => raise(&mut self.opt_all.out_at, *at),
                Some(Keyword::Start) => raise(&mut self.opt_all.in_at, *at),
                None => false,
            },
            Event::Failure { code, at, .. }
                if CodeEffect::of(*code) == CodeEffect::MarketingOptOut =>
            {
                raise(&mut self.opt_marketing.out_at, *at)
            }
            Event::MarketingPreference { value, at } => match value {
                Preference::Stop => raise(&mut self.opt_marketing.out_at, *at),
                Preference::Resume => raise(&mut self.opt_marketing.in_at, *at),
            },
            Event::OptOut { scope, at } => raise(&mut self.register(*scope).out_at, *at),
            Event::OptIn { scope, at } => raise(&mut self.register(*scope).in_at, *at),
            _ => false,
        }
    }

    fn register(&mut self, scope: Scope) -> &mut OptRegister {
        match scope {
            Scope::All => &mut self.opt_all,
            Scope::Marketing => &mut self.opt_marketing,
        }
    }

    /// E4: erases the key's state as it stands, whatever the instants it holds, except the
    /// consent registers of O1 and O2 (the suppression list), and leaves a tombstone at `at` so
    /// that late retries of events at or before it cannot bring the state back. An unvoided
    /// 131050 is folded into the marketing register first (D2).
    ///
    /// With `include_consent` (`forget` with `include_opt_out`) the consent registers go too,
    /// with the K5 link and the K6 forward, and consent events at or before `at` are ignored
    /// from then on. An opt-out or opt-in timestamped after `at` stays: it cannot be part of
    /// what the person asked to erase, and keeping it protects them.
    ///
    /// Returns whether the state changed.
    pub fn erase(&mut self, at: Timestamp, include_consent: bool, policy: &Policy) -> bool {
        let before = self.clone();
        if let Some(t) = self.feedback.latest_unvoided(CodeEffect::MarketingOptOut) {
            raise(&mut self.opt_marketing.out_at, t);
        }
        let mut kept = ConversationState {
            // Only events at or after the erasure count from now on.
            latest_event: self.latest_event.max(Some(at)),
            erased_at: self.erased_at.max(Some(at)),
            consent_erased_at: self.consent_erased_at,
            link: self.link.take(),
            moved_to: self.moved_to.take(),
            opt_all: self.opt_all,
            opt_marketing: self.opt_marketing,
            ..ConversationState::default()
        };
        if include_consent {
            kept.consent_erased_at = kept.consent_erased_at.max(Some(at));
            kept.link = None;
            kept.moved_to = None;
        }
        // Reuse the lists' allocations.
        self.clear();
        let (failures, deliveries, attempts) = (
            std::mem::take(&mut self.feedback.failures),
            std::mem::take(&mut self.feedback.deliveries),
            std::mem::take(&mut self.attempts),
        );
        *self = kept;
        self.feedback.failures = failures;
        self.feedback.deliveries = deliveries;
        self.attempts = attempts;
        self.drop_erased();
        self.prune(policy);
        *self != before
    }

    /// A state holding only a tombstone at `at` (consent registers included when
    /// `include_consent`): what an erasure leaves of a record it could not read.
    pub fn tombstone(at: Timestamp, include_consent: bool) -> Self {
        ConversationState {
            latest_event: Some(at),
            erased_at: Some(at),
            consent_erased_at: include_consent.then_some(at),
            ..ConversationState::default()
        }
    }

    /// Drops what a tombstone covers (used when states are joined): non-consent values at or
    /// before the erasure, consent values at or before a consent erasure.
    fn drop_erased(&mut self) {
        if let Some(e) = self.erased_at {
            for slot in [
                &mut self.last_inbound,
                &mut self.referral_at,
                &mut self.first_template_at,
                &mut self.last_template_at,
                &mut self.last_delivered_at,
                &mut self.closed_mark,
                &mut self.pair_budget_tat,
                &mut self.counted_at,
            ] {
                erase_upto(slot, e);
            }
            // The first template is a min register: once erased it may only come back from a
            // template after the erasure, which `last_template_at` still holds.
            if self.first_template_at.is_none() && self.last_template_at.is_some() {
                // The earliest surviving template is not known exactly; the latest is a safe
                // stand-in (it only matters for W3).
                self.first_template_at = self.last_template_at;
            }
            self.feedback.erase_upto(e);
            self.attempts.retain(|a| a.first_at > e);
        }
        if let Some(e) = self.consent_erased_at {
            self.opt_all.erase_upto(e);
            self.opt_marketing.erase_upto(e);
        }
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
        // E4: the tombstone goes once an event later than the erasure plus the horizon came
        // (no retry of older events can follow).
        if self.erased_at.is_some_and(|e| e < cutoff) {
            self.erased_at = None;
        }
        if self.consent_erased_at.is_some_and(|e| e < cutoff) {
            self.consent_erased_at = None;
        }
    }

    /// Joins another state of the same key into this one (the lattice join): commutative,
    /// associative and idempotent. Reservation bookkeeping takes the more restrictive value.
    pub fn merge(&mut self, other: &ConversationState, policy: &Policy) {
        self.latest_event = self.latest_event.max(other.latest_event);
        self.erased_at = self.erased_at.max(other.erased_at);
        self.consent_erased_at = self.consent_erased_at.max(other.consent_erased_at);
        if let Some(link) = &other.link {
            Link::join(&mut self.link, link);
        }
        if let Some(moved) = &other.moved_to {
            Link::join(&mut self.moved_to, moved);
        }
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
        self.counted_at = self.counted_at.max(other.counted_at);
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

    /// K5: records that this (BSUID) key belongs to `phone`, by the item at `at`; returns
    /// whether the link changed. The state the key held is for the caller to join into the
    /// phone's key ([`take_own_state`](Self::take_own_state)).
    pub fn set_link(&mut self, phone: PhoneNumber, at: Timestamp) -> bool {
        Link::join(&mut self.link, &Link { phone, at })
    }

    /// K5: takes everything but the link and the tombstones out of this state, for joining
    /// into the linked phone's key. What is left is the link record.
    pub fn take_own_state(&mut self) -> ConversationState {
        let link = self.link.take();
        let erased_at = self.erased_at;
        let consent_erased_at = self.consent_erased_at;
        let own = std::mem::take(self);
        *self = ConversationState {
            link,
            erased_at,
            consent_erased_at,
            latest_event: own.latest_event,
            ..ConversationState::default()
        };
        own
    }

    /// K6: records that this number changed to `phone` at `at`; returns whether it changed.
    pub fn set_moved_to(&mut self, phone: PhoneNumber, at: Timestamp) -> bool {
        Link::join(&mut self.moved_to, &Link { phone, at })
    }

    /// K6: joins the consent registers of `old` (the number that changed) into this state, as
    /// far as their instants are at or before `at`, the instant of the change. Returns whether
    /// anything changed.
    pub fn join_consent_upto(&mut self, old: &ConversationState, at: Timestamp) -> bool {
        let mut changed = false;
        for (mine, theirs) in [
            (&mut self.opt_all.out_at, old.opt_all.out_at),
            (&mut self.opt_all.in_at, old.opt_all.in_at),
            (&mut self.opt_marketing.out_at, old.opt_marketing.out_at),
            (&mut self.opt_marketing.in_at, old.opt_marketing.in_at),
        ] {
            if let Some(t) = theirs.filter(|t| *t <= at) {
                changed |= raise(mine, t);
            }
        }
        changed
    }

    /// K6: the event to apply to the new number when `event` reaches this (old) number: its
    /// consent part, as an explicit opt-out or opt-in, when it happened at or before the change.
    pub fn consent_to_forward(
        &self,
        event: &Event,
        policy: &Policy,
    ) -> Option<(PhoneNumber, Event)> {
        let moved = self.moved_to.as_ref()?;
        let at = event.at();
        if at > moved.at {
            return None;
        }
        let forward = match event {
            Event::Inbound {
                text: Some(text), ..
            } => match policy.keyword(text)? {
                Keyword::Stop => Event::OptOut {
                    at,
                    scope: Scope::All,
                },
                Keyword::Start => Event::OptIn {
                    at,
                    scope: Scope::All,
                },
            },
            Event::Failure { code, .. } if CodeEffect::of(*code) == CodeEffect::MarketingOptOut => {
                Event::OptOut {
                    at,
                    scope: Scope::Marketing,
                }
            }
            Event::MarketingPreference { .. } | Event::OptOut { .. } | Event::OptIn { .. } => {
                event.clone()
            }
            _ => return None,
        };
        Some((moved.phone.clone(), forward))
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
        // E4: a local record at or before an erasure is ignored like any other event.
        if self.erased_at.is_some_and(|e| at <= e) {
            return;
        }
        lower(&mut self.first_template_at, at);
        raise(&mut self.last_template_at, at);
        raise(&mut self.latest_event, at);
    }
}
