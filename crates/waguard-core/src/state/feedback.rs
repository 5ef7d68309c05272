//! Recent delivery feedback of one key (rule D2): failures and delivered/read statuses, kept so
//! that a `delivered` for the same message voids a failure whichever arrives first.
//!
//! Both lists are kept sorted and deduplicated, so equal sets of events give equal bytes
//! (rule E1). Entries are grouped by message; a group leaves when its newest entry is older than
//! the horizon before the key's newest event, and an unvoided failure that leaves folds its
//! lasting effect into a plain register (see [`Folded`]).

use serde::{Deserialize, Serialize};

use crate::code::CodeEffect;
use crate::event::WamidHash;
use crate::time::Timestamp;

/// One recorded failure with a contact-level code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FailureEntry {
    /// The message, if known; failures without one cannot be voided.
    pub wamid: Option<WamidHash>,
    /// When it failed.
    pub at: Timestamp,
    /// Meta's error code.
    pub code: u32,
}

/// The latest delivered/read status of one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DeliveryEntry {
    /// The message.
    pub wamid: WamidHash,
    /// Its latest delivered or read status.
    pub at: Timestamp,
}

/// The bounded sets of rule D2.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Feedback {
    /// Failures, sorted by (message, time, code).
    pub failures: Vec<FailureEntry>,
    /// Deliveries, sorted by message, one per message.
    pub deliveries: Vec<DeliveryEntry>,
}

/// Lasting effects of unvoided failures that left the feedback set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Folded {
    /// The latest 131050 that left (O2: joins the marketing opt-out register).
    pub marketing_out: Option<Timestamp>,
    /// The latest 131047 that left (W4: joins the closed mark).
    pub closed_mark: Option<Timestamp>,
}

impl Feedback {
    /// Records a failure; returns whether anything changed.
    pub(crate) fn add_failure(&mut self, entry: FailureEntry) -> bool {
        match self.failures.binary_search(&entry) {
            Ok(_) => false,
            Err(pos) => {
                self.failures.insert(pos, entry);
                true
            }
        }
    }

    /// Records a delivered/read status of a message; returns whether anything changed.
    pub(crate) fn add_delivery(&mut self, wamid: WamidHash, at: Timestamp) -> bool {
        match self.deliveries.binary_search_by_key(&wamid, |d| d.wamid) {
            Ok(pos) if self.deliveries[pos].at >= at => false,
            Ok(pos) => {
                self.deliveries[pos].at = at;
                true
            }
            Err(pos) => {
                self.deliveries.insert(pos, DeliveryEntry { wamid, at });
                true
            }
        }
    }

    /// Whether a delivered/read status exists for the failure's message (D2).
    pub fn is_voided(&self, failure: &FailureEntry) -> bool {
        failure.wamid.is_some_and(|w| {
            self.deliveries
                .binary_search_by_key(&w, |d| d.wamid)
                .is_ok()
        })
    }

    /// The latest unvoided failure whose code has `effect`.
    #[inline]
    pub fn latest_unvoided(&self, effect: CodeEffect) -> Option<Timestamp> {
        // Most contacts have no failure, and a decision asks up to four times.
        if self.failures.is_empty() {
            return None;
        }
        self.failures
            .iter()
            .filter(|f| CodeEffect::of(f.code) == effect && !self.is_voided(f))
            .map(|f| f.at)
            .max()
    }

    /// The earliest unvoided failure whose code has `effect`, at or after `since`.
    pub fn earliest_unvoided_since(
        &self,
        effect: CodeEffect,
        since: Timestamp,
    ) -> Option<Timestamp> {
        self.failures
            .iter()
            .filter(|f| f.at >= since && CodeEffect::of(f.code) == effect && !self.is_voided(f))
            .map(|f| f.at)
            .min()
    }

    /// Joins another set into this one.
    pub(crate) fn join(&mut self, other: &Feedback) {
        for f in &other.failures {
            self.add_failure(*f);
        }
        for d in &other.deliveries {
            self.add_delivery(d.wamid, d.at);
        }
    }

    /// Removes every group whose newest entry is before `cutoff`, returning the lasting effects
    /// of the unvoided failures that left.
    pub(crate) fn prune(&mut self, cutoff: Timestamp) -> Folded {
        let mut folded = Folded::default();
        let newest_of = |this: &Feedback, wamid: Option<WamidHash>, own: Timestamp| -> Timestamp {
            let Some(w) = wamid else { return own };
            let failures = this
                .failures
                .iter()
                .filter(|f| f.wamid == Some(w))
                .map(|f| f.at);
            let delivery = this
                .deliveries
                .binary_search_by_key(&w, |d| d.wamid)
                .ok()
                .map(|i| this.deliveries[i].at);
            failures.chain(delivery).max().unwrap_or(own)
        };
        if self.failures.iter().all(|f| f.at >= cutoff)
            && self.deliveries.iter().all(|d| d.at >= cutoff)
        {
            return folded;
        }
        let leaving: Vec<FailureEntry> = self
            .failures
            .iter()
            .filter(|f| newest_of(self, f.wamid, f.at) < cutoff)
            .copied()
            .collect();
        for f in &leaving {
            if self.is_voided(f) {
                continue;
            }
            match CodeEffect::of(f.code) {
                CodeEffect::MarketingOptOut => {
                    folded.marketing_out = folded.marketing_out.max(Some(f.at))
                }
                CodeEffect::WindowClosed => folded.closed_mark = folded.closed_mark.max(Some(f.at)),
                // D1, D3 and D4 expire long before the horizon (policy validation).
                _ => {}
            }
        }
        let keep: Vec<bool> = self
            .deliveries
            .iter()
            .map(|d| newest_of(self, Some(d.wamid), d.at) >= cutoff)
            .collect();
        let mut keep = keep.into_iter();
        self.deliveries.retain(|_| keep.next().unwrap_or(false));
        self.failures.retain(|f| !leaving.contains(f));
        folded
    }

    /// Drops entries at or before an erasure instant (rule E4).
    pub(crate) fn erase_upto(&mut self, erased: Timestamp) {
        self.failures.retain(|f| f.at > erased);
        self.deliveries.retain(|d| d.at > erased);
    }

    /// Whether there is nothing recorded.
    pub fn is_empty(&self) -> bool {
        self.failures.is_empty() && self.deliveries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_unix_seconds(s).unwrap()
    }

    fn fail(w: u64, at: i64, code: u32) -> FailureEntry {
        FailureEntry {
            wamid: Some(WamidHash::from_raw(w)),
            at: t(at),
            code,
        }
    }

    #[test]
    fn d2_delivery_voids_failure_in_either_order() {
        let mut a = Feedback::default();
        a.add_failure(fail(1, 10, 131026));
        a.add_delivery(WamidHash::from_raw(1), t(9));
        let mut b = Feedback::default();
        b.add_delivery(WamidHash::from_raw(1), t(9));
        b.add_failure(fail(1, 10, 131026));
        assert_eq!(a, b);
        assert_eq!(a.latest_unvoided(CodeEffect::Undeliverable), None);
        let mut c = Feedback::default();
        c.add_failure(fail(2, 10, 131026));
        assert_eq!(c.latest_unvoided(CodeEffect::Undeliverable), Some(t(10)));
    }

    #[test]
    fn d2_groups_leave_by_their_newest_entry_and_fold_lasting_effects() {
        let mut f = Feedback::default();
        f.add_failure(fail(1, 10, 131050)); // unvoided, old: folds into O2
        f.add_failure(fail(2, 10, 131047)); // old failure but a recent delivery keeps the group
        f.add_delivery(WamidHash::from_raw(2), t(100));
        f.add_failure(fail(3, 10, 131047)); // voided and old: leaves without effect
        f.add_delivery(WamidHash::from_raw(3), t(11));
        let folded = f.prune(t(50));
        assert_eq!(folded.marketing_out, Some(t(10)));
        assert_eq!(folded.closed_mark, None);
        assert_eq!(f.failures, vec![fail(2, 10, 131047)]);
        assert_eq!(f.deliveries.len(), 1);
    }

    #[test]
    fn duplicates_change_nothing() {
        let mut f = Feedback::default();
        assert!(f.add_failure(fail(1, 10, 131056)));
        assert!(!f.add_failure(fail(1, 10, 131056)));
        assert!(f.add_delivery(WamidHash::from_raw(1), t(10)));
        assert!(!f.add_delivery(WamidHash::from_raw(1), t(9)));
    }
}
