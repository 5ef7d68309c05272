//! The answer for one outgoing message, one key, one instant.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::event::Outgoing;
use crate::time::Timestamp;

/// Why a template is required (rule W3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TemplateReason {
    /// No inbound was ever recorded and no template was ever sent.
    FirstContact,
    /// A template went out to re-engage and no inbound came after it.
    AwaitingReply,
    /// Meta reported the window closed (131047) before its 24 hours were up.
    WindowClosedByPlatform,
    /// The last inbound's 24 hours have passed.
    WindowExpired,
}

/// Why nothing of this kind may go (rules S, R, O, D, G in the order of section 7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BlockReason {
    /// S1: the business number is restricted.
    SenderRestricted,
    /// S2: the business number's throughput was exceeded.
    ThroughputLimited,
    /// S2: Meta's service is unavailable.
    ServiceUnavailable,
    /// S2: the app's or the account's API call limit was hit (codes 4, 80007).
    ApiRateLimited,
    /// T1: the named template is paused.
    TemplatePaused,
    /// T1: the named template is disabled.
    TemplateDisabled,
    /// T1: the named template is not approved (rejected, pending, deleted, ...).
    TemplateNotApproved,
    /// T1: the named template is not known and the policy requires known templates.
    TemplateUnknown,
    /// L3: the portfolio's messaging limit is reached.
    MessagingLimitReached,
    /// S3: the business number hit a spam rate limit.
    SpamRateLimited,
    /// R1: the contact is in a sanctioned region.
    RestrictedRegion,
    /// O1: the contact opted out of everything.
    OptedOut,
    /// D1: the contact cannot receive messages for now.
    Undeliverable,
    /// D3: the pair rate limit (Meta's penalty or the local budget).
    PairRateLimited,
    /// G1: this idempotency key was attempted too often.
    ResendLimit,
    /// O2: the contact opted out of marketing.
    MarketingOptedOut,
    /// R3: Meta does not deliver marketing templates to this region.
    MarketingUnavailableInRegion,
    /// D4: Meta is holding marketing templates to this contact back.
    MarketingLimited,
    /// O4: no recorded opt-in while the policy requires one.
    NoOptIn,
}

/// Every reason of any decision, as a flat `snake_case` string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum Reason {
    /// A reason a template is required.
    Template(TemplateReason),
    /// A reason nothing of this kind may go.
    Blocked(BlockReason),
}

impl Reason {
    /// The `snake_case` name used in every serialised form.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Template(r) => match r {
                TemplateReason::FirstContact => "first_contact",
                TemplateReason::AwaitingReply => "awaiting_reply",
                TemplateReason::WindowClosedByPlatform => "window_closed_by_platform",
                TemplateReason::WindowExpired => "window_expired",
            },
            Reason::Blocked(r) => match r {
                BlockReason::SenderRestricted => "sender_restricted",
                BlockReason::ThroughputLimited => "throughput_limited",
                BlockReason::ServiceUnavailable => "service_unavailable",
                BlockReason::ApiRateLimited => "api_rate_limited",
                BlockReason::TemplatePaused => "template_paused",
                BlockReason::TemplateDisabled => "template_disabled",
                BlockReason::TemplateNotApproved => "template_not_approved",
                BlockReason::TemplateUnknown => "template_unknown",
                BlockReason::MessagingLimitReached => "messaging_limit_reached",
                BlockReason::SpamRateLimited => "spam_rate_limited",
                BlockReason::RestrictedRegion => "restricted_region",
                BlockReason::OptedOut => "opted_out",
                BlockReason::Undeliverable => "undeliverable",
                BlockReason::PairRateLimited => "pair_rate_limited",
                BlockReason::ResendLimit => "resend_limit",
                BlockReason::MarketingOptedOut => "marketing_opted_out",
                BlockReason::MarketingUnavailableInRegion => "marketing_unavailable_in_region",
                BlockReason::MarketingLimited => "marketing_limited",
                BlockReason::NoOptIn => "no_opt_in",
            },
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The guard's answer. Refusing is a decision, never an error.
///
/// ```
/// use waguard_core::{BlockReason, Decision, Outgoing, TemplateCategory, TemplateReason};
/// let d = Decision::TemplateRequired { reason: TemplateReason::FirstContact };
/// assert!(d.permits(Outgoing::Template(TemplateCategory::Utility)));
/// assert!(!d.permits(Outgoing::FreeForm));
/// assert_eq!(d.kind(), "template_required");
/// let b = Decision::Blocked { reason: BlockReason::OptedOut, until: None };
/// assert!(!b.permits(Outgoing::Template(TemplateCategory::Utility)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Decision {
    /// The window is open: free-form messages and templates may go until `closes_at`.
    FreeForm {
        /// When the window closes (W2).
        closes_at: Timestamp,
    },
    /// Only a template may go; free-form would be dropped by Meta (131047). Only an event (an
    /// inbound message) changes this answer.
    TemplateRequired {
        /// Why (W3).
        reason: TemplateReason,
    },
    /// Nothing of this kind may go.
    Blocked {
        /// Why.
        reason: BlockReason,
        /// When the rule that refused stops applying by time alone (the next answer may be
        /// another refusal); `None` when only an event can change it.
        until: Option<Timestamp>,
    },
}

impl Decision {
    /// Whether `outgoing` may be sent under this decision.
    pub fn permits(&self, outgoing: Outgoing) -> bool {
        match self {
            Decision::FreeForm { .. } => true,
            Decision::TemplateRequired { .. } => outgoing.is_template(),
            Decision::Blocked { .. } => false,
        }
    }

    /// `free_form`, `template_required` or `blocked`.
    pub fn kind(&self) -> &'static str {
        match self {
            Decision::FreeForm { .. } => "free_form",
            Decision::TemplateRequired { .. } => "template_required",
            Decision::Blocked { .. } => "blocked",
        }
    }

    /// The reason, absent for `free_form`.
    pub fn reason(&self) -> Option<Reason> {
        match *self {
            Decision::FreeForm { .. } => None,
            Decision::TemplateRequired { reason } => Some(Reason::Template(reason)),
            Decision::Blocked { reason, .. } => Some(Reason::Blocked(reason)),
        }
    }

    /// When this answer changes by time alone: `closes_at` for `free_form`, the end of the
    /// penalty for `blocked`, `None` for `template_required` and for blocks only an event lifts.
    pub fn until(&self) -> Option<Timestamp> {
        match *self {
            Decision::FreeForm { closes_at } => Some(closes_at),
            Decision::TemplateRequired { .. } => None,
            Decision::Blocked { until, .. } => until,
        }
    }
}
