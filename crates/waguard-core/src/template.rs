//! The template registry (rules T1-T3): what Meta said about each template, per template
//! identity (account, name, language), as two last-writer-wins registers.

use serde::{Deserialize, Serialize};

use crate::decision::{BlockReason, Decision};
use crate::error::{IdError, IdProblem};
use crate::event::TemplateCategory;
use crate::id::AccountId;
use crate::policy::Policy;
use crate::time::Timestamp;

/// A template as a send names it: its name and language code, compared exactly as given (T1).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TemplateName {
    /// The template's name, e.g. `order_update`.
    pub name: String,
    /// Its language code, e.g. `en_US`.
    pub language: String,
}

impl TemplateName {
    /// A name and a language: each 1 to 512 bytes without control characters or `/`.
    ///
    /// ```
    /// use waguard_core::TemplateName;
    /// assert!(TemplateName::new("order_update", "en_US").is_ok());
    /// assert!(TemplateName::new("", "en_US").is_err());
    /// ```
    pub fn new(name: &str, language: &str) -> Result<Self, IdError> {
        for (what, value) in [("template name", name), ("template language", language)] {
            let ok = !value.is_empty()
                && value.len() <= 512
                && !value.chars().any(|c| c.is_control() || c == '/');
            if !ok {
                return Err(IdError::new(what, value, IdProblem::TemplateShape));
            }
        }
        Ok(TemplateName {
            name: name.to_owned(),
            language: language.to_owned(),
        })
    }
}

/// A template identity: the account it belongs to, its name and its language (T1).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TemplateId {
    /// The account (WABA).
    pub account: AccountId,
    /// Name and language.
    pub template: TemplateName,
}

impl TemplateId {
    /// The identity as one string, `account/language/name`, for stores to key its record by.
    pub fn storage_id(&self) -> String {
        format!(
            "{}/{}/{}",
            self.account, self.template.language, self.template.name
        )
    }
}

/// Which pause (T1): each has its own end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PauseKind {
    /// A first pause (or one without a title, or 132015): `Policy::template_first_pause`.
    First,
    /// A second pause: `Policy::template_second_pause`.
    Second,
    /// A rate-limiting pause: no end (Meta unpauses those by hand).
    RateLimiting,
}

/// A template's status as the registry knows it (T1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TemplateStatus {
    /// Approved (also reinstated, unarchived).
    Approved,
    /// Paused from the event's time.
    Paused(PauseKind),
    /// Rejected, pending, deleted, archived, in appeal: not approved.
    NotApproved,
    /// Disabled.
    Disabled,
}

impl TemplateStatus {
    /// T1's tie order: the more restrictive status wins at equal times.
    fn restrictiveness(self) -> u8 {
        match self {
            TemplateStatus::Approved => 0,
            TemplateStatus::Paused(PauseKind::First) => 1,
            TemplateStatus::Paused(PauseKind::Second) => 2,
            TemplateStatus::Paused(PauseKind::RateLimiting) => 3,
            TemplateStatus::NotApproved => 4,
            TemplateStatus::Disabled => 5,
        }
    }
}

/// T3's tie order: marketing, then utility, then authentication wins at equal times.
fn category_rank(c: TemplateCategory) -> u8 {
    match c {
        TemplateCategory::Marketing => 2,
        TemplateCategory::Utility => 1,
        TemplateCategory::Authentication => 0,
    }
}

/// Something Meta said about a template.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum TemplateEvent {
    /// T1/T2: a status, from a status update or a send error naming the template.
    Status {
        /// The event's time.
        at: Timestamp,
        /// The status it sets.
        status: TemplateStatus,
    },
    /// T3: the category Meta gives the template.
    Category {
        /// The event's time.
        at: Timestamp,
        /// The category.
        category: TemplateCategory,
    },
}

impl TemplateEvent {
    /// When it happened.
    pub fn at(&self) -> Timestamp {
        match *self {
            TemplateEvent::Status { at, .. } | TemplateEvent::Category { at, .. } => at,
        }
    }

    /// E5: the event with its instant moved back to `limit` if it was later.
    pub fn clamped(mut self, limit: Timestamp) -> Self {
        let (TemplateEvent::Status { at, .. } | TemplateEvent::Category { at, .. }) = &mut self;
        *at = (*at).min(limit);
        self
    }

    /// T2: what a send error naming a template says about it, if anything: 132015 paused (a
    /// first pause), 132016 disabled, 132001 not approved.
    pub fn of_send_error(code: u32, at: Timestamp) -> Option<TemplateEvent> {
        let status = match code {
            132015 => TemplateStatus::Paused(PauseKind::First),
            132016 => TemplateStatus::Disabled,
            132001 => TemplateStatus::NotApproved,
            _ => return None,
        };
        Some(TemplateEvent::Status { at, status })
    }
}

/// The registry's record of one template: a status register and a category register, each
/// last-writer-wins by event time (T1, T3), so events apply in any order (E1).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TemplateState {
    /// The latest status and its time.
    pub status: Option<(Timestamp, TemplateStatus)>,
    /// The latest category and its time.
    pub category: Option<(Timestamp, TemplateCategory)>,
}

impl TemplateState {
    /// Applies an event; returns whether the state changed.
    pub fn apply(&mut self, event: &TemplateEvent) -> bool {
        match *event {
            TemplateEvent::Status { at, status } => {
                let wins = match self.status {
                    None => true,
                    Some((t, s)) => (at, status.restrictiveness()) > (t, s.restrictiveness()),
                };
                if wins {
                    self.status = Some((at, status));
                }
                wins
            }
            TemplateEvent::Category { at, category } => {
                let wins = match self.category {
                    None => true,
                    Some((t, c)) => (at, category_rank(category)) > (t, category_rank(c)),
                };
                if wins {
                    self.category = Some((at, category));
                }
                wins
            }
        }
    }

    /// Joins another record of the same template (the lattice join).
    pub fn merge(&mut self, other: &TemplateState) {
        if let Some((at, status)) = other.status {
            self.apply(&TemplateEvent::Status { at, status });
        }
        if let Some((at, category)) = other.category {
            self.apply(&TemplateEvent::Category { at, category });
        }
    }

    /// Whether the registry knows the template: its status was set (a category alone does
    /// not make it known, T1).
    pub fn is_known(&self) -> bool {
        self.status.is_some()
    }

    /// T3: the category Meta gave the template, if any.
    pub fn effective_category(&self) -> Option<TemplateCategory> {
        self.category.map(|(_, c)| c)
    }

    /// When a pause that started at `at` ends (`None`: no end).
    fn pause_end(kind: PauseKind, at: Timestamp, policy: &Policy) -> Option<Timestamp> {
        match kind {
            PauseKind::First => Some(at.saturating_add(policy.template_first_pause)),
            PauseKind::Second => Some(at.saturating_add(policy.template_second_pause)),
            PauseKind::RateLimiting => None,
        }
    }

    /// T1: the refusal of a known template at `now`, if its status refuses: disabled and not
    /// approved without `until`, paused until the end of the pause (none for a pause without
    /// end); a pause that has ended is approved again.
    pub fn refusal(&self, now: Timestamp, policy: &Policy) -> Option<Decision> {
        let (at, status) = self.status?;
        let blocked = |reason, until| Some(Decision::Blocked { reason, until });
        match status {
            TemplateStatus::Approved => None,
            TemplateStatus::Disabled => blocked(BlockReason::TemplateDisabled, None),
            TemplateStatus::NotApproved => blocked(BlockReason::TemplateNotApproved, None),
            TemplateStatus::Paused(kind) => match Self::pause_end(kind, at, policy) {
                Some(end) if now >= end => None,
                end => blocked(BlockReason::TemplatePaused, end),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_unix_seconds(1_772_323_200 + s).unwrap()
    }

    fn status(at: i64, status: TemplateStatus) -> TemplateEvent {
        TemplateEvent::Status { at: t(at), status }
    }

    fn category(at: i64, category: TemplateCategory) -> TemplateEvent {
        TemplateEvent::Category {
            at: t(at),
            category,
        }
    }

    /// Every order of the events gives the same record (E1 for T1 and T3's registers).
    fn all_orders(events: &[TemplateEvent]) -> TemplateState {
        fn permute(items: &mut Vec<TemplateEvent>, k: usize, out: &mut Vec<TemplateState>) {
            if k == items.len() {
                let mut s = TemplateState::default();
                for e in items.iter() {
                    s.apply(e);
                }
                out.push(s);
                return;
            }
            for i in k..items.len() {
                items.swap(k, i);
                permute(items, k + 1, out);
                items.swap(k, i);
            }
        }
        let mut states = Vec::new();
        permute(&mut events.to_vec(), 0, &mut states);
        for s in &states[1..] {
            assert_eq!(s, &states[0]);
        }
        let mut merged = TemplateState::default();
        for e in events {
            let mut one = TemplateState::default();
            one.apply(e);
            merged.merge(&one);
        }
        assert_eq!(merged, states[0], "merge is the same join");
        states.swap_remove(0)
    }

    #[test]
    fn t1_t3_registers_converge_and_ties_go_to_the_more_restrictive() {
        let s = all_orders(&[
            status(10, TemplateStatus::Approved),
            status(10, TemplateStatus::Paused(PauseKind::First)),
            status(5, TemplateStatus::Disabled),
            category(3, TemplateCategory::Utility),
            category(3, TemplateCategory::Marketing),
        ]);
        assert_eq!(
            s.status,
            Some((t(10), TemplateStatus::Paused(PauseKind::First)))
        );
        assert_eq!(s.effective_category(), Some(TemplateCategory::Marketing));
        let s = all_orders(&[
            status(7, TemplateStatus::NotApproved),
            status(7, TemplateStatus::Disabled),
            status(7, TemplateStatus::Paused(PauseKind::RateLimiting)),
            category(9, TemplateCategory::Authentication),
            category(8, TemplateCategory::Marketing),
        ]);
        assert_eq!(s.status, Some((t(7), TemplateStatus::Disabled)));
        assert_eq!(
            s.effective_category(),
            Some(TemplateCategory::Authentication)
        );
    }

    #[test]
    fn t1_pauses_end_by_kind_and_a_category_alone_is_not_known() {
        let policy = Policy::default();
        let mut s = TemplateState::default();
        s.apply(&category(0, TemplateCategory::Marketing));
        assert!(!s.is_known());
        assert_eq!(s.refusal(t(0), &policy), None);
        s.apply(&status(0, TemplateStatus::Paused(PauseKind::First)));
        assert_eq!(
            s.refusal(t(10_799), &policy),
            Some(Decision::Blocked {
                reason: BlockReason::TemplatePaused,
                until: Some(t(10_800))
            })
        );
        assert_eq!(
            s.refusal(t(10_800), &policy),
            None,
            "approved again at the end"
        );
        s.apply(&status(1, TemplateStatus::Paused(PauseKind::RateLimiting)));
        assert_eq!(
            s.refusal(t(1_000_000), &policy),
            Some(Decision::Blocked {
                reason: BlockReason::TemplatePaused,
                until: None
            })
        );
        assert_eq!(
            TemplateEvent::of_send_error(132016, t(0)),
            Some(status(0, TemplateStatus::Disabled))
        );
        assert_eq!(TemplateEvent::of_send_error(131047, t(0)), None);
    }
}
