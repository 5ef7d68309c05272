//! Every tunable of the rules, with the defaults of `docs/rules.md`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::PolicyError;

const HOUR: Duration = Duration::from_secs(3600);

/// Meta's pair limit, enforced before it is hit (rule D3): on average one message per
/// `interval` to one contact, with bursts of up to `burst` messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairRate {
    /// Average spacing of messages to one contact (default 6 s).
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Messages that may go back to back before the spacing applies (default 45).
    pub burst: u32,
}

impl Default for PairRate {
    fn default() -> Self {
        PairRate {
            interval: Duration::from_secs(6),
            burst: 45,
        }
    }
}

/// The settings the rules decide by. `Policy::default()` is the documented behaviour; every
/// field can be changed in a policy file (TOML or JSON, durations written like `"24h"` or
/// `"90s"`). Call [`Policy::validate`] after building one by hand; deserialising does not
/// validate, so loaders should call it too.
///
/// ```
/// use waguard_core::Policy;
/// let policy: Policy = serde_json::from_str(r#"{"window_margin": "5m"}"#).unwrap();
/// policy.validate().unwrap();
/// assert_eq!(policy.window_margin.as_secs(), 300);
/// assert_eq!(policy.max_attempts, 3); // everything else keeps its default
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// W2: how long before the 24 hours are up the guard treats the window as closed (default 0).
    #[serde(with = "humantime_serde")]
    pub window_margin: Duration,
    /// O1: inbound texts that are a full opt-out (default `STOP`, `UNSUBSCRIBE`).
    pub stop_keywords: Vec<String>,
    /// O1: inbound texts that lift a full opt-out (default `START`).
    pub start_keywords: Vec<String>,
    /// O4: refuse templates to contacts with no recorded opt-in (default off).
    pub require_opt_in: bool,
    /// D1: how long 131026/131030 block the contact (default 24h).
    #[serde(with = "humantime_serde")]
    pub undeliverable_cooldown: Duration,
    /// D3: how long 131056 blocks the contact (default 60s).
    #[serde(with = "humantime_serde")]
    pub pair_penalty: Duration,
    /// D3: the pair budget enforced by `reserve`.
    pub pair_rate: PairRate,
    /// S2: how long 130429 blocks the business number (default 1s).
    #[serde(with = "humantime_serde")]
    pub throughput_penalty: Duration,
    /// S2: how long 131057, 131000 and code 1 block the business number (default 60s).
    #[serde(with = "humantime_serde")]
    pub service_penalty: Duration,
    /// S2: how long code 2 (API update) blocks the business number (default 5m).
    #[serde(with = "humantime_serde")]
    pub api_update_penalty: Duration,
    /// S2: how long codes 4 and 80007 (API call limits) block the business number (default
    /// 60s).
    #[serde(with = "humantime_serde")]
    pub api_rate_penalty: Duration,
    /// S4: the pace `reserve` keeps per business number, kept by each running guard (default
    /// one message per 12.5 ms with bursts of 80: Meta's 80 messages per second).
    pub throughput: PairRate,
    /// T1: how long a first pause (and a pause reported by 132015) lasts (default 3h).
    #[serde(with = "humantime_serde")]
    pub template_first_pause: Duration,
    /// T1: how long a second pause lasts (default 6h).
    #[serde(with = "humantime_serde")]
    pub template_second_pause: Duration,
    /// T1: refuse templates the registry does not know (default off).
    pub require_known_templates: bool,
    /// T4: account (WABA) id -> its business numbers; pins the number-to-account links.
    pub accounts: std::collections::BTreeMap<String, Vec<String>>,
    /// L1: portfolio name -> its account ids; an account not listed is a portfolio of its own.
    pub portfolios: std::collections::BTreeMap<String, Vec<String>>,
    /// L2: the messaging limit while no webhook has set one (default none: not enforced).
    pub messaging_limit: Option<u64>,
    /// L3: the width of the count buckets (default 1h).
    #[serde(with = "humantime_serde")]
    pub messaging_limit_bucket: Duration,
    /// S3: how long 131048 blocks the business number (default 1h).
    #[serde(with = "humantime_serde")]
    pub spam_penalty: Duration,
    /// D2/E4: how long delivery feedback and tombstones are kept (default 8 days, beyond Meta's
    /// 7-day webhook retry window).
    #[serde(with = "humantime_serde")]
    pub feedback_horizon: Duration,
    /// G1: reservations with one idempotency key allowed within 24h of the first (default 3).
    pub max_attempts: u32,
    /// R1: phone prefixes (country code first) that cannot receive messages.
    pub restricted_prefixes: Vec<String>,
    /// R2: also restrict Turkey (`90`). Default off: Meta's current rate cards price Turkey as a
    /// normal market.
    pub restrict_turkey: bool,
    /// R1: BSUID country prefixes that cannot receive messages (default `CU`, `IR`, `KP`, `SY`).
    pub restricted_countries: Vec<String>,
    /// R3: refuse marketing templates to US numbers and `US.` user ids (default on).
    pub block_us_marketing: bool,
    /// E5: how far ahead of the receive time a webhook item's own timestamp may be (default 5
    /// minutes). A later timestamp is clamped to the receive time plus this; an imported record
    /// holding an instant beyond the import time plus this is refused.
    #[serde(with = "humantime_serde")]
    pub max_clock_skew: Duration,
}

/// The default R1 prefixes: Cuba, Iran, North Korea, Syria, Crimea and Sevastopol (Russian
/// numbering), Donetsk and Luhansk mobile. See `docs/rules.md` for the sources.
pub const DEFAULT_RESTRICTED_PREFIXES: [&str; 9] = [
    "53", "98", "850", "963", "7978", "7365", "7869", "7949", "7959",
];

/// The default R1 BSUID countries.
pub const DEFAULT_RESTRICTED_COUNTRIES: [&str; 4] = ["CU", "IR", "KP", "SY"];

impl Default for Policy {
    fn default() -> Self {
        Policy {
            window_margin: Duration::ZERO,
            stop_keywords: vec!["STOP".into(), "UNSUBSCRIBE".into()],
            start_keywords: vec!["START".into()],
            require_opt_in: false,
            undeliverable_cooldown: 24 * HOUR,
            pair_penalty: Duration::from_secs(60),
            pair_rate: PairRate::default(),
            throughput_penalty: Duration::from_secs(1),
            service_penalty: Duration::from_secs(60),
            api_update_penalty: Duration::from_secs(300),
            api_rate_penalty: Duration::from_secs(60),
            throughput: PairRate {
                interval: Duration::from_micros(12_500),
                burst: 80,
            },
            template_first_pause: 3 * HOUR,
            template_second_pause: 6 * HOUR,
            require_known_templates: false,
            accounts: Default::default(),
            portfolios: Default::default(),
            messaging_limit: None,
            messaging_limit_bucket: HOUR,
            spam_penalty: HOUR,
            feedback_horizon: 8 * 24 * HOUR,
            max_attempts: 3,
            restricted_prefixes: DEFAULT_RESTRICTED_PREFIXES.map(String::from).to_vec(),
            restrict_turkey: false,
            restricted_countries: DEFAULT_RESTRICTED_COUNTRIES.map(String::from).to_vec(),
            block_us_marketing: true,
            max_clock_skew: Duration::from_secs(300),
        }
    }
}

/// A keyword an inbound text matched (rule O1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keyword {
    /// One of `stop_keywords`: a full opt-out.
    Stop,
    /// One of `start_keywords`: lifts a full opt-out.
    Start,
}

/// The window length of rule W2.
pub const WINDOW: Duration = Duration::from_secs(24 * 3600);
/// The resend period of rule G1 and the marketing hold of rule D4.
pub const DAY: Duration = Duration::from_secs(24 * 3600);

impl Policy {
    /// Checks every setting; the error names the first bad one.
    ///
    /// Penalties and cooldowns must be shorter than `feedback_horizon` (so that a failure
    /// leaving the bounded feedback set has no effect left, rule D2), the window margin shorter
    /// than 24h, rates and counts positive, prefixes digits, countries two uppercase letters.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let bad = |field, value: String, expected| {
            Err(PolicyError {
                field,
                value,
                expected,
            })
        };
        if self.window_margin >= WINDOW {
            return bad(
                "window_margin",
                format!("{:?}", self.window_margin),
                "shorter than 24h",
            );
        }
        if self.feedback_horizon < WINDOW + DAY {
            return bad(
                "feedback_horizon",
                format!("{:?}", self.feedback_horizon),
                "at least 48h (Meta retries webhooks for up to 7 days; the default is 8 days)",
            );
        }
        for (field, value) in [
            ("undeliverable_cooldown", self.undeliverable_cooldown),
            ("pair_penalty", self.pair_penalty),
            ("throughput_penalty", self.throughput_penalty),
            ("service_penalty", self.service_penalty),
            ("api_update_penalty", self.api_update_penalty),
            ("api_rate_penalty", self.api_rate_penalty),
            ("spam_penalty", self.spam_penalty),
        ] {
            if value >= self.feedback_horizon {
                return bad(
                    field,
                    format!("{value:?}"),
                    "shorter than feedback_horizon, or the penalty would outlive its evidence",
                );
            }
        }
        if self.pair_rate.interval.is_zero() || self.pair_rate.interval > DAY {
            return bad(
                "pair_rate.interval",
                format!("{:?}", self.pair_rate.interval),
                "more than zero and at most 24h",
            );
        }
        if self.pair_rate.burst == 0 || self.pair_rate.burst > 10_000 {
            return bad(
                "pair_rate.burst",
                self.pair_rate.burst.to_string(),
                "1 to 10000 messages",
            );
        }
        if self.max_attempts == 0 || self.max_attempts > 255 {
            return bad(
                "max_attempts",
                self.max_attempts.to_string(),
                "1 to 255 attempts",
            );
        }
        if self.throughput.interval.is_zero() || self.throughput.interval > DAY {
            return bad(
                "throughput.interval",
                format!("{:?}", self.throughput.interval),
                "more than zero and at most 24h",
            );
        }
        if self.throughput.burst == 0 || self.throughput.burst > 100_000 {
            return bad(
                "throughput.burst",
                self.throughput.burst.to_string(),
                "1 to 100000 messages",
            );
        }
        if self.messaging_limit_bucket.is_zero() || self.messaging_limit_bucket > DAY {
            return bad(
                "messaging_limit_bucket",
                format!("{:?}", self.messaging_limit_bucket),
                "more than zero and at most 24h (the default is 1h)",
            );
        }
        for (field, ids) in [
            ("accounts", &self.accounts),
            ("portfolios", &self.portfolios),
        ] {
            for id in ids.values().flatten() {
                if id.is_empty() || id.len() > 32 || !id.bytes().all(|b| b.is_ascii_digit()) {
                    return bad(field, format!("{id:?}"), "ids of 1 to 32 digits");
                }
            }
        }
        if self.max_clock_skew > DAY {
            return bad(
                "max_clock_skew",
                format!("{:?}", self.max_clock_skew),
                "at most 24h (the default is 5 minutes)",
            );
        }
        for prefix in &self.restricted_prefixes {
            let ok = (1..=15).contains(&prefix.len())
                && prefix.bytes().all(|b| b.is_ascii_digit())
                && !prefix.starts_with('0');
            if !ok {
                return bad(
                    "restricted_prefixes",
                    format!("{prefix:?}"),
                    "1 to 15 digits, country code first, no `+` or leading 0",
                );
            }
        }
        for country in &self.restricted_countries {
            if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_uppercase()) {
                return bad(
                    "restricted_countries",
                    format!("{country:?}"),
                    "two uppercase letters, like CU",
                );
            }
        }
        for (field, words) in [
            ("stop_keywords", &self.stop_keywords),
            ("start_keywords", &self.start_keywords),
        ] {
            for word in words {
                if normalise_keyword(word).is_empty() {
                    return bad(
                        field,
                        format!("{word:?}"),
                        "a word with at least one letter or digit",
                    );
                }
            }
        }
        Ok(())
    }

    /// Which keyword, if any, an inbound text is (rule O1): the whole text, trimmed, without a
    /// trailing run of `.`, `!` and whitespace, compared case-insensitively.
    ///
    /// ```
    /// use waguard_core::{Keyword, Policy};
    /// let p = Policy::default();
    /// assert_eq!(p.keyword("  stop!! "), Some(Keyword::Stop));
    /// assert_eq!(p.keyword("please stop"), None);
    /// assert_eq!(p.keyword("Start."), Some(Keyword::Start));
    /// ```
    pub fn keyword(&self, text: &str) -> Option<Keyword> {
        // Keywords are short: a long text is a sentence, never a keyword. The length is
        // judged after the trailing run of `.`, `!` and whitespace is dropped (O1: a run of any
        // length), so `STOP` followed by many `!` is still a STOP.
        let text = normalise_keyword(text);
        if text.is_empty() || text.len() > 64 {
            return None;
        }
        let matches =
            |words: &[String]| words.iter().any(|w| same_word(normalise_keyword(w), text));
        if matches(&self.stop_keywords) {
            Some(Keyword::Stop)
        } else if matches(&self.start_keywords) {
            Some(Keyword::Start)
        } else {
            None
        }
    }

    /// Whether a phone number's canonical digits fall under R1 (or R2 when enabled).
    pub fn is_restricted_phone(&self, digits: &str) -> bool {
        let digits = digits.as_bytes();
        (self.restrict_turkey && digits.starts_with(b"90"))
            || self
                .restricted_prefixes
                .iter()
                .any(|p| starts_with(digits, p.as_bytes()))
    }

    /// Whether a BSUID country falls under R1.
    pub fn is_restricted_country(&self, country: &str) -> bool {
        self.restricted_countries.iter().any(|c| c == country)
    }
}

/// `digits.starts_with(prefix)` as an inline byte loop: prefixes are a few bytes and most
/// differ at the first one, where a `memcmp` call would cost more than the comparison.
#[inline]
fn starts_with(digits: &[u8], prefix: &[u8]) -> bool {
    prefix.len() <= digits.len() && prefix.iter().zip(digits).all(|(a, b)| a == b)
}

/// Case-insensitive equality; allocation-free for ASCII, Unicode lowercase otherwise.
fn same_word(a: &str, b: &str) -> bool {
    // Most inbound texts are not keywords and differ in length: `eq_ignore_ascii_case` rejects
    // those at once, before any scan of the text.
    if a.eq_ignore_ascii_case(b) {
        return true;
    }
    if a.is_ascii() && b.is_ascii() {
        return false;
    }
    a.to_lowercase() == b.to_lowercase()
}

fn normalise_keyword(text: &str) -> &str {
    text.trim()
        .trim_end_matches(|c: char| c == '.' || c == '!' || c.is_whitespace())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn o1_keywords_match_case_insensitively_also_beyond_ascii() {
        let p = Policy {
            stop_keywords: vec!["ARRÊT".into(), "STOP".into()],
            ..Policy::default()
        };
        assert_eq!(p.keyword("arrêt"), Some(Keyword::Stop));
        let shouted = format!("STOP{}", "!".repeat(70));
        assert_eq!(
            p.keyword(&shouted),
            Some(Keyword::Stop),
            "O1: any trailing run"
        );
        assert_eq!(p.keyword("Stop!"), Some(Keyword::Stop));
        assert_eq!(p.keyword("arret"), None);
        assert_eq!(p.keyword("stopp"), None);
    }

    #[test]
    fn defaults_are_valid_and_match_the_rules() {
        let p = Policy::default();
        p.validate().unwrap();
        assert_eq!(p.undeliverable_cooldown, 24 * HOUR);
        assert_eq!(p.pair_penalty.as_secs(), 60);
        assert_eq!(
            p.pair_rate,
            PairRate {
                interval: Duration::from_secs(6),
                burst: 45
            }
        );
        assert_eq!(p.feedback_horizon.as_secs(), 8 * 24 * 3600);
        assert!(p.block_us_marketing && !p.restrict_turkey && !p.require_opt_in);
    }

    #[test]
    fn o1_keywords_match_the_whole_text_only() {
        let p = Policy::default();
        assert_eq!(p.keyword("STOP"), Some(Keyword::Stop));
        assert_eq!(p.keyword("unsubscribe ."), Some(Keyword::Stop));
        assert_eq!(p.keyword("\tStop! !\n"), Some(Keyword::Stop));
        assert_eq!(p.keyword("stop it"), None);
        assert_eq!(p.keyword("!stop"), None);
        assert_eq!(p.keyword("START"), Some(Keyword::Start));
        assert_eq!(p.keyword(""), None);
    }

    #[test]
    fn r1_prefixes_and_r2_turkey() {
        let mut p = Policy::default();
        assert!(p.is_restricted_phone("5351234567"));
        assert!(p.is_restricted_phone("79781234567"));
        assert!(!p.is_restricted_phone("79161234567"));
        assert!(!p.is_restricted_phone("905321234567"));
        p.restrict_turkey = true;
        assert!(p.is_restricted_phone("905321234567"));
        assert!(p.is_restricted_country("KP"));
        assert!(!p.is_restricted_country("US"));
    }

    #[test]
    fn validation_names_the_bad_field() {
        let cases: Vec<(Policy, &str)> = vec![
            (
                Policy {
                    pair_penalty: 9 * 24 * HOUR,
                    ..Policy::default()
                },
                "pair_penalty",
            ),
            (
                Policy {
                    window_margin: 24 * HOUR,
                    ..Policy::default()
                },
                "window_margin",
            ),
            (
                Policy {
                    max_attempts: 0,
                    ..Policy::default()
                },
                "max_attempts",
            ),
            (
                Policy {
                    restricted_prefixes: vec!["+53".into()],
                    ..Policy::default()
                },
                "restricted_prefixes",
            ),
            (
                Policy {
                    restricted_countries: vec!["cu".into()],
                    ..Policy::default()
                },
                "restricted_countries",
            ),
            (
                Policy {
                    stop_keywords: vec![" ! ".into()],
                    ..Policy::default()
                },
                "stop_keywords",
            ),
            (
                Policy {
                    pair_rate: PairRate {
                        interval: Duration::ZERO,
                        burst: 1,
                    },
                    ..Policy::default()
                },
                "pair_rate.interval",
            ),
            (
                Policy {
                    feedback_horizon: HOUR,
                    ..Policy::default()
                },
                "feedback_horizon",
            ),
        ];
        for (policy, field) in cases {
            assert_eq!(policy.validate().unwrap_err().field, field);
        }
    }

    #[test]
    fn policy_files_use_readable_durations() {
        let p: Policy = serde_json::from_str(
            r#"{"spam_penalty":"2h","pair_rate":{"interval":"3s","burst":10}}"#,
        )
        .unwrap();
        assert_eq!(p.spam_penalty, 2 * HOUR);
        assert_eq!(p.pair_rate.burst, 10);
        assert!(serde_json::from_str::<Policy>(r#"{"no_such_setting":1}"#).is_err());
    }
}
