//! Meta error codes and what each does to the state (rules D1-D5, S1-S3, W4, O2).
//!
//! This table is the one place that maps a code to an effect. Codes not listed are safe:
//! they change nothing and are reported as [`CodeEffect::Unknown`].

use serde::{Deserialize, Serialize};

/// What a failure with a given error code does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CodeEffect {
    /// D1 (131026, 131030): the contact cannot receive messages for a while.
    Undeliverable,
    /// D3 (131056): too many messages to this contact; a short penalty.
    PairRateLimited,
    /// D4 (131049, 130472): marketing templates to this contact are held back for 24h.
    MarketingLimited,
    /// W4 (131047): Meta says the customer-service window is closed.
    WindowClosed,
    /// O2 (131050): the user stopped marketing messages.
    MarketingOptOut,
    /// S1 (368, 131031, 133010, 131042, 131045): the business number may not send at all.
    SenderRestricted,
    /// S2 (130429): the business number's throughput was exceeded.
    ThroughputLimited,
    /// S2 (131057, 131016, 131000, 1): service trouble on Meta's side.
    ServiceUnavailable,
    /// S2 (2): an API update may take the service away for a few minutes.
    ApiUpdate,
    /// S2 (4, 80007): the app's or the account's API call limit.
    ApiRateLimited,
    /// S3 (131048): the business number hit a spam rate limit.
    SpamRateLimited,
    /// D5: the request itself was wrong (the caller's bug); retrying cannot help.
    NotRetryable,
    /// A code this table does not know: no state change.
    Unknown,
}

/// Whether a code's effect lands on the contact key or on the business number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodeScope {
    /// The (business, contact) key.
    Contact,
    /// The business number (sender state).
    Sender,
    /// Nothing is recorded.
    None,
}

impl CodeEffect {
    /// The effect of a Meta error code.
    ///
    /// ```
    /// use waguard_core::CodeEffect;
    /// assert_eq!(CodeEffect::of(131047), CodeEffect::WindowClosed);
    /// assert_eq!(CodeEffect::of(132000), CodeEffect::NotRetryable);
    /// assert_eq!(CodeEffect::of(999_999), CodeEffect::Unknown);
    /// ```
    pub fn of(code: u32) -> CodeEffect {
        match code {
            131026 | 131030 => CodeEffect::Undeliverable,
            131056 => CodeEffect::PairRateLimited,
            131049 | 130472 => CodeEffect::MarketingLimited,
            131047 => CodeEffect::WindowClosed,
            131050 => CodeEffect::MarketingOptOut,
            368 | 131031 | 133010 | 131042 | 131045 => CodeEffect::SenderRestricted,
            130429 => CodeEffect::ThroughputLimited,
            131057 | 131016 | 131000 | 1 => CodeEffect::ServiceUnavailable,
            4 | 80007 => CodeEffect::ApiRateLimited,
            2 => CodeEffect::ApiUpdate,
            131048 => CodeEffect::SpamRateLimited,
            // D5: malformed request, bad parameter, template or media problems of the caller.
            100 | 131008 | 131009 | 131021 | 131051 | 131052 | 131053 | 132000 | 132001
            | 132005 | 132007 | 132012 | 132015 | 132016 | 132068 | 132069 | 133004 | 135000 => {
                CodeEffect::NotRetryable
            }
            _ => CodeEffect::Unknown,
        }
    }

    /// Where the effect lands.
    pub fn scope(self) -> CodeScope {
        match self {
            CodeEffect::Undeliverable
            | CodeEffect::PairRateLimited
            | CodeEffect::MarketingLimited
            | CodeEffect::WindowClosed
            | CodeEffect::MarketingOptOut => CodeScope::Contact,
            CodeEffect::SenderRestricted
            | CodeEffect::ThroughputLimited
            | CodeEffect::ServiceUnavailable
            | CodeEffect::ApiUpdate
            | CodeEffect::ApiRateLimited
            | CodeEffect::SpamRateLimited => CodeScope::Sender,
            CodeEffect::NotRetryable | CodeEffect::Unknown => CodeScope::None,
        }
    }

    /// Whether the caller may retry the same send later. False for [`CodeEffect::NotRetryable`]
    /// (fix the request) and [`CodeEffect::Undeliverable`] (the user cannot receive it now);
    /// for the others, retry no earlier than the guard allows.
    pub fn retryable(self) -> bool {
        !matches!(self, CodeEffect::NotRetryable | CodeEffect::Undeliverable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_of_the_rules_has_its_effect() {
        let table = [
            (131026, CodeEffect::Undeliverable, CodeScope::Contact),
            (131030, CodeEffect::Undeliverable, CodeScope::Contact),
            (131056, CodeEffect::PairRateLimited, CodeScope::Contact),
            (131049, CodeEffect::MarketingLimited, CodeScope::Contact),
            (130472, CodeEffect::MarketingLimited, CodeScope::Contact),
            (131047, CodeEffect::WindowClosed, CodeScope::Contact),
            (131050, CodeEffect::MarketingOptOut, CodeScope::Contact),
            (368, CodeEffect::SenderRestricted, CodeScope::Sender),
            (131031, CodeEffect::SenderRestricted, CodeScope::Sender),
            (133010, CodeEffect::SenderRestricted, CodeScope::Sender),
            (131042, CodeEffect::SenderRestricted, CodeScope::Sender),
            (131045, CodeEffect::SenderRestricted, CodeScope::Sender),
            (130429, CodeEffect::ThroughputLimited, CodeScope::Sender),
            (131057, CodeEffect::ServiceUnavailable, CodeScope::Sender),
            (131000, CodeEffect::ServiceUnavailable, CodeScope::Sender),
            (131016, CodeEffect::ServiceUnavailable, CodeScope::Sender),
            (4, CodeEffect::ApiRateLimited, CodeScope::Sender),
            (80007, CodeEffect::ApiRateLimited, CodeScope::Sender),
            (1, CodeEffect::ServiceUnavailable, CodeScope::Sender),
            (2, CodeEffect::ApiUpdate, CodeScope::Sender),
            (131048, CodeEffect::SpamRateLimited, CodeScope::Sender),
            (100, CodeEffect::NotRetryable, CodeScope::None),
            (131008, CodeEffect::NotRetryable, CodeScope::None),
            (131009, CodeEffect::NotRetryable, CodeScope::None),
            (131021, CodeEffect::NotRetryable, CodeScope::None),
            (132000, CodeEffect::NotRetryable, CodeScope::None),
            (132001, CodeEffect::NotRetryable, CodeScope::None),
            (132012, CodeEffect::NotRetryable, CodeScope::None),
            (0, CodeEffect::Unknown, CodeScope::None),
            (4_000_000_000, CodeEffect::Unknown, CodeScope::None),
        ];
        for (code, effect, scope) in table {
            assert_eq!(CodeEffect::of(code), effect, "code {code}");
            assert_eq!(effect.scope(), scope, "code {code}");
        }
        assert!(!CodeEffect::NotRetryable.retryable());
        assert!(CodeEffect::ThroughputLimited.retryable());
    }
}
