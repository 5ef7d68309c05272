//! State per business number (rules S1-S3).

use serde::{Deserialize, Serialize};

use super::register::raise;
use crate::code::CodeEffect;
use crate::event::SenderEvent;
use crate::time::Timestamp;

/// What the guard knows about one business number. Every field is a max register, so events
/// apply in any order with the same result (E1); penalties are computed at decision time from
/// the failure instants and the policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SenderState {
    /// S1: the latest restricting failure (368, 131031, 133010, 131042, 131045).
    pub restricted_at: Option<Timestamp>,
    /// S1: the latest success or explicit clear; lifts the restriction when strictly later.
    pub cleared_at: Option<Timestamp>,
    /// S2: the latest 130429.
    pub throughput_at: Option<Timestamp>,
    /// S2: the latest 131057, 131000 or code 1.
    pub service_at: Option<Timestamp>,
    /// S2: the latest code 2 (API update).
    pub api_update_at: Option<Timestamp>,
    /// S3: the latest 131048.
    pub spam_at: Option<Timestamp>,
    /// S2: the latest code 4 or 80007 (API call limits).
    pub api_rate_at: Option<Timestamp>,
    /// T4: the account (WABA) this number belongs to, as the webhooks carrying its
    /// `phone_number_id` last said, with their receive time (`Policy::accounts` overrides it).
    pub account: Option<(crate::id::AccountId, Timestamp)>,
}

impl SenderState {
    /// Applies an event; returns whether the state changed. Codes without a sender-level
    /// effect are ignored.
    pub fn apply(&mut self, event: &SenderEvent) -> bool {
        match *event {
            SenderEvent::Success { at } | SenderEvent::Clear { at } => {
                raise(&mut self.cleared_at, at)
            }
            SenderEvent::Failure { at, code } => match CodeEffect::of(code) {
                CodeEffect::SenderRestricted => raise(&mut self.restricted_at, at),
                CodeEffect::ThroughputLimited => raise(&mut self.throughput_at, at),
                CodeEffect::ServiceUnavailable => raise(&mut self.service_at, at),
                CodeEffect::ApiUpdate => raise(&mut self.api_update_at, at),
                CodeEffect::SpamRateLimited => raise(&mut self.spam_at, at),
                CodeEffect::ApiRateLimited => raise(&mut self.api_rate_at, at),
                _ => false,
            },
        }
    }

    /// Whether applying `event` is worth a write. A success matters only while it would lift a
    /// standing restriction: recording every status would make one busy business number a hot
    /// row. The price: a restriction older than an unrecorded success that arrives after it
    /// stands until the next success (it fails safe, by blocking).
    pub fn is_worth_writing(&self, event: &SenderEvent) -> bool {
        match *event {
            SenderEvent::Success { at } => self.is_restricted() && Some(at) > self.restricted_at,
            _ => self.clone().apply(event),
        }
    }

    /// S1: restricted when a restricting failure exists and nothing strictly later lifted it.
    pub fn is_restricted(&self) -> bool {
        self.restricted_at.is_some() && self.cleared_at <= self.restricted_at
    }

    /// T4: records that a webhook received at `at` named this number under `account`; a
    /// last-writer-wins register by receive time, at equal times the greater account id
    /// (compared as numbers). Returns whether it changed.
    pub fn link_account(&mut self, account: &crate::id::AccountId, at: Timestamp) -> bool {
        let wins = match &self.account {
            None => true,
            Some((current, t)) => (at, account.numeric_key()) > (*t, current.numeric_key()),
        };
        if wins {
            self.account = Some((account.clone(), at));
        }
        wins
    }

    /// T4: whether a link to `account` would change the account this number belongs to (a
    /// newer link to the same account is not worth a write: every webhook carries one).
    pub fn would_change_account(&self, account: &crate::id::AccountId, at: Timestamp) -> bool {
        match &self.account {
            Some((current, _)) if current == account => false,
            _ => self.clone().link_account(account, at),
        }
    }

    /// Joins another sender state into this one (the lattice join).
    pub fn merge(&mut self, other: &SenderState) {
        self.restricted_at = self.restricted_at.max(other.restricted_at);
        self.cleared_at = self.cleared_at.max(other.cleared_at);
        self.throughput_at = self.throughput_at.max(other.throughput_at);
        self.service_at = self.service_at.max(other.service_at);
        self.api_update_at = self.api_update_at.max(other.api_update_at);
        self.spam_at = self.spam_at.max(other.spam_at);
        self.api_rate_at = self.api_rate_at.max(other.api_rate_at);
        if let Some((account, at)) = &other.account {
            self.link_account(account, *at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_unix_seconds(s).unwrap()
    }

    #[test]
    fn s1_restriction_stands_at_equal_times_and_lifts_when_strictly_later() {
        let mut s = SenderState::default();
        s.apply(&SenderEvent::Failure {
            at: t(10),
            code: 368,
        });
        assert!(s.is_restricted());
        assert!(!s.is_worth_writing(&SenderEvent::Success { at: t(10) }));
        s.apply(&SenderEvent::Success { at: t(10) });
        assert!(s.is_restricted(), "equal times: the restriction stands");
        assert!(s.is_worth_writing(&SenderEvent::Success { at: t(11) }));
        s.apply(&SenderEvent::Success { at: t(11) });
        assert!(!s.is_restricted());
        assert!(!s.is_worth_writing(&SenderEvent::Success { at: t(12) }));
    }

    #[test]
    fn s2_s3_record_their_latest_failure() {
        let mut s = SenderState::default();
        assert!(s.apply(&SenderEvent::Failure {
            at: t(5),
            code: 130429
        }));
        assert!(s.apply(&SenderEvent::Failure { at: t(6), code: 2 }));
        assert!(s.apply(&SenderEvent::Failure {
            at: t(7),
            code: 131048
        }));
        assert!(s.apply(&SenderEvent::Failure { at: t(8), code: 1 }));
        assert!(!s.apply(&SenderEvent::Failure {
            at: t(9),
            code: 131047
        }));
        assert_eq!(
            (s.throughput_at, s.api_update_at, s.spam_at, s.service_at),
            (Some(t(5)), Some(t(6)), Some(t(7)), Some(t(8)))
        );
    }
}
