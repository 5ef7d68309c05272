//! One test (at least) per rule id of `docs/rules.md`, named after it.
//!
//! (Over 700 lines on purpose: the file follows the rule table line by line, so that a rule's
//! tests are found by its id in one place.)

use std::time::Duration;

use waguard_core::*;

const BIZ: &str = "100000001";
const FR: &str = "33612345678";

fn t(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).unwrap()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A key, its state, its sender state and a policy: a small world to play rules in.
struct World {
    key: ContactKey,
    state: ConversationState,
    sender: SenderState,
    policy: Policy,
}

impl World {
    fn new(contact: &str) -> Self {
        World {
            key: format!("{BIZ}/{contact}").parse().unwrap(),
            state: ConversationState::default(),
            sender: SenderState::default(),
            policy: Policy::default(),
        }
    }

    fn phone() -> Self {
        World::new(&format!("p:{FR}"))
    }

    fn apply(&mut self, e: Event) -> &mut Self {
        if let Some(s) = e.sender_event() {
            self.sender.apply(&s);
        }
        self.state.apply(&e, &self.policy);
        self
    }

    fn inbound(&mut self, at: &str) -> &mut Self {
        self.apply(Event::Inbound {
            at: t(at),
            text: Some("hello".into()),
            referral: false,
        })
    }

    fn text(&mut self, at: &str, text: &str) -> &mut Self {
        self.apply(Event::Inbound {
            at: t(at),
            text: Some(text.into()),
            referral: false,
        })
    }

    fn fail(&mut self, at: &str, code: u32, wamid: &str) -> &mut Self {
        self.apply(Event::Failure {
            at: t(at),
            code,
            wamid: Some(WamidHash::of(wamid)),
        })
    }

    fn status(&mut self, at: &str, status: DeliveryStatus, wamid: &str) -> &mut Self {
        self.apply(Event::Status {
            at: t(at),
            status,
            wamid: Some(WamidHash::of(wamid)),
        })
    }

    fn template(&mut self, at: &str) -> &mut Self {
        self.apply(Event::TemplateSent { at: t(at) })
    }

    fn decide(&self, outgoing: Outgoing, now: &str) -> Decision {
        let subject = Subject {
            key: &self.key,
            state: &self.state,
            sender: &self.sender,
        };
        decide(subject, outgoing, t(now), &self.policy)
    }

    fn reserve(&mut self, outgoing: Outgoing, idem: Option<&str>, now: &str) -> Decision {
        reserve(
            &self.key,
            &mut self.state,
            &self.sender,
            outgoing,
            idem,
            t(now),
            &self.policy,
        )
    }
}

const FREE: Outgoing = Outgoing::FreeForm;
const UTIL: Outgoing = Outgoing::Template(TemplateCategory::Utility);
const MKT: Outgoing = Outgoing::Template(TemplateCategory::Marketing);
const AUTH: Outgoing = Outgoing::Template(TemplateCategory::Authentication);

fn template_required(reason: TemplateReason) -> Decision {
    Decision::TemplateRequired { reason }
}

fn blocked(reason: BlockReason, until: Option<&str>) -> Decision {
    Decision::Blocked {
        reason,
        until: until.map(t),
    }
}

fn free(closes_at: &str) -> Decision {
    Decision::FreeForm {
        closes_at: t(closes_at),
    }
}

// ---- K: keys ----

#[test]
fn k1_invalid_phone_is_an_error_not_a_decision() {
    let err = PhoneNumber::parse("12345").unwrap_err().with_field("to");
    assert_eq!(err.field, "to");
    assert!(err.to_string().contains("12345"));
}

#[test]
fn k2_alias_spellings_share_state() {
    let a: ContactKey = format!("{BIZ}/p:5215512345678").parse().unwrap();
    let b: ContactKey = format!("{BIZ}/p:525512345678").parse().unwrap();
    assert_eq!(a.storage_key(), b.storage_key());
    let c: ContactKey = format!("{BIZ}/p:551198765432").parse().unwrap();
    let d: ContactKey = format!("{BIZ}/p:5511998765432").parse().unwrap();
    assert_eq!(c, d);
}

#[test]
fn k3_bsuid_keys_are_their_own_keys() {
    let w = World::new("u:BR.13491208655302741918");
    assert_eq!(
        w.decide(FREE, "2026-03-01T00:00:00Z"),
        template_required(TemplateReason::FirstContact)
    );
}

#[test]
fn k4_business_and_group_ids_are_validated() {
    assert!(BusinessId::parse("12x").is_err());
    assert!("1/g:has space".parse::<ContactKey>().is_err());
}

// ---- W: the window ----

#[test]
fn w1_inbound_opens_and_only_inbound_opens() {
    let mut w = World::phone();
    w.template("2026-03-01T00:00:00Z");
    w.status("2026-03-01T00:00:01Z", DeliveryStatus::Read, "m1");
    assert_eq!(
        w.decide(FREE, "2026-03-01T00:00:02Z"),
        template_required(TemplateReason::AwaitingReply)
    );
    w.inbound("2026-03-01T10:00:00Z");
    // max register: an older inbound arriving late does not shorten the window
    w.inbound("2026-03-01T09:00:00Z");
    assert_eq!(
        w.decide(FREE, "2026-03-01T11:00:00Z"),
        free("2026-03-02T10:00:00Z")
    );
}

#[test]
fn w2_window_is_open_strictly_before_24h_and_margin_shortens_it() {
    let mut w = World::phone();
    w.inbound("2026-03-01T00:00:00Z");
    let closes = t("2026-03-02T00:00:00Z");
    let just_before = Timestamp::from_unix_nanos(closes.unix_nanos() - 1);
    let s = Subject {
        key: &w.key,
        state: &w.state,
        sender: &w.sender,
    };
    assert!(decide(s, FREE, just_before, &w.policy).permits(FREE));
    assert_eq!(
        decide(s, FREE, closes, &w.policy),
        template_required(TemplateReason::WindowExpired)
    );
    w.policy.window_margin = secs(600);
    assert_eq!(
        w.decide(FREE, "2026-03-01T23:50:00Z"),
        template_required(TemplateReason::WindowExpired)
    );
    assert_eq!(
        w.decide(FREE, "2026-03-01T23:49:59Z"),
        free("2026-03-01T23:50:00Z")
    );
}

#[test]
fn w3_reasons_in_order() {
    let mut w = World::phone();
    assert_eq!(
        w.decide(FREE, "2026-03-01T00:00:00Z"),
        template_required(TemplateReason::FirstContact)
    );
    w.template("2026-03-01T00:00:00Z");
    assert_eq!(
        w.decide(FREE, "2026-03-01T00:00:00Z"),
        template_required(TemplateReason::AwaitingReply)
    );
    w.inbound("2026-03-01T01:00:00Z");
    assert_eq!(
        w.decide(FREE, "2026-03-03T00:00:00Z"),
        template_required(TemplateReason::WindowExpired)
    );
    // A re-engagement template after the window closed waits for its answer.
    w.template("2026-03-03T00:00:00Z");
    assert_eq!(
        w.decide(FREE, "2026-03-03T00:00:01Z"),
        template_required(TemplateReason::AwaitingReply)
    );
}

#[test]
fn w3_template_inside_the_window_does_not_make_awaiting_reply() {
    let mut w = World::phone();
    w.inbound("2026-03-01T00:00:00Z");
    w.template("2026-03-01T12:00:00Z");
    assert_eq!(
        w.decide(FREE, "2026-03-02T00:00:00Z"),
        template_required(TemplateReason::WindowExpired)
    );
}

#[test]
fn w4_platform_closes_the_window_until_a_newer_inbound() {
    let mut w = World::phone();
    w.inbound("2026-03-01T00:00:00Z");
    w.fail("2026-03-01T05:00:00Z", 131047, "m1");
    assert_eq!(
        w.decide(FREE, "2026-03-01T06:00:00Z"),
        template_required(TemplateReason::WindowClosedByPlatform)
    );
    // After the 24h would have been up: plain expiry.
    assert_eq!(
        w.decide(FREE, "2026-03-02T01:00:00Z"),
        template_required(TemplateReason::WindowExpired)
    );
    // A template after the platform closed it waits for a reply.
    w.template("2026-03-01T07:00:00Z");
    assert_eq!(
        w.decide(FREE, "2026-03-01T08:00:00Z"),
        template_required(TemplateReason::AwaitingReply)
    );
    w.inbound("2026-03-01T09:00:00Z");
    assert_eq!(
        w.decide(FREE, "2026-03-01T10:00:00Z"),
        free("2026-03-02T09:00:00Z")
    );
}

#[test]
fn w4_voided_by_delivery_of_the_same_message() {
    let mut w = World::phone();
    w.inbound("2026-03-01T00:00:00Z");
    w.fail("2026-03-01T05:00:00Z", 131047, "m1");
    w.status("2026-03-01T05:00:01Z", DeliveryStatus::Delivered, "m1");
    assert!(w.decide(FREE, "2026-03-01T06:00:00Z").permits(FREE));
}

#[test]
fn w5_referral_changes_price_not_permission() {
    let mut w = World::phone();
    w.apply(Event::Inbound {
        at: t("2026-03-01T00:00:00Z"),
        text: None,
        referral: true,
    });
    assert_eq!(w.state.referral_at, Some(t("2026-03-01T00:00:00Z")));
    assert_eq!(
        w.decide(FREE, "2026-03-01T01:00:00Z"),
        free("2026-03-02T00:00:00Z")
    );
}

#[test]
fn w6_templates_are_never_refused_by_the_window() {
    let mut w = World::phone();
    w.inbound("2026-03-01T00:00:00Z");
    for d in [
        w.decide(UTIL, "2026-03-05T00:00:00Z"),
        w.decide(MKT, "2026-03-05T00:00:00Z"),
    ] {
        assert!(d.permits(UTIL));
    }
}

#[test]
fn w7_group_windows_follow_group_messages() {
    let mut w = World::new("g:120363025246125486@g.us");
    w.inbound("2026-03-01T00:00:00Z");
    assert_eq!(
        w.decide(FREE, "2026-03-01T01:00:00Z"),
        free("2026-03-02T00:00:00Z")
    );
    // Groups have no region: even a sanctioned-looking id is not R1.
    let g = World::new("g:5351234567");
    assert!(g.decide(UTIL, "2026-03-01T00:00:00Z").permits(UTIL));
}

// ---- O: opt-out and consent ----

#[test]
fn o1_stop_keyword_blocks_everything_and_still_opens_the_window() {
    let mut w = World::phone();
    w.text("2026-03-01T00:00:00Z", " Stop! ");
    assert_eq!(w.state.last_inbound, Some(t("2026-03-01T00:00:00Z")));
    for m in [FREE, UTIL, MKT] {
        assert_eq!(
            w.decide(m, "2026-03-01T00:01:00Z"),
            blocked(BlockReason::OptedOut, None)
        );
    }
    w.text("2026-03-01T00:02:00Z", "start");
    assert!(w.decide(FREE, "2026-03-01T00:03:00Z").permits(FREE));
    // A keyword inside a sentence is not an opt-out.
    w.text("2026-03-01T00:04:00Z", "please stop sending me promos");
    assert!(w.decide(FREE, "2026-03-01T00:05:00Z").permits(FREE));
}

#[test]
fn o1_explicit_opt_out_and_opt_in() {
    let mut w = World::phone();
    w.inbound("2026-03-01T00:00:00Z");
    w.apply(Event::OptOut {
        at: t("2026-03-01T00:01:00Z"),
        scope: Scope::All,
    });
    assert_eq!(
        w.decide(UTIL, "2026-03-01T00:02:00Z"),
        blocked(BlockReason::OptedOut, None)
    );
    w.apply(Event::OptIn {
        at: t("2026-03-01T00:03:00Z"),
        scope: Scope::All,
    });
    assert!(w.decide(UTIL, "2026-03-01T00:04:00Z").permits(UTIL));
}

#[test]
fn o2_marketing_opt_out_blocks_marketing_only() {
    let mut w = World::phone();
    w.apply(Event::MarketingPreference {
        at: t("2026-03-01T00:00:00Z"),
        value: Preference::Stop,
    });
    assert_eq!(
        w.decide(MKT, "2026-03-01T00:01:00Z"),
        blocked(BlockReason::MarketingOptedOut, None)
    );
    assert!(w.decide(UTIL, "2026-03-01T00:01:00Z").permits(UTIL));
    assert!(w.decide(AUTH, "2026-03-01T00:01:00Z").permits(AUTH));
    // Scopes are separate registers: an `all` opt-in does not lift the marketing opt-out.
    w.apply(Event::OptIn {
        at: t("2026-03-01T00:02:00Z"),
        scope: Scope::All,
    });
    assert!(!w.decide(MKT, "2026-03-01T00:03:00Z").permits(MKT));
    w.apply(Event::MarketingPreference {
        at: t("2026-03-01T00:04:00Z"),
        value: Preference::Resume,
    });
    assert!(w.decide(MKT, "2026-03-01T00:05:00Z").permits(MKT));
}

#[test]
fn o2_failure_131050_is_a_marketing_opt_out_unless_delivered() {
    let mut w = World::phone();
    w.fail("2026-03-01T00:00:00Z", 131050, "m1");
    assert_eq!(
        w.decide(MKT, "2026-03-01T00:01:00Z"),
        blocked(BlockReason::MarketingOptedOut, None)
    );
    w.status("2026-03-01T00:00:30Z", DeliveryStatus::Delivered, "m1");
    assert!(w.decide(MKT, "2026-03-01T00:01:00Z").permits(MKT));
}

#[test]
fn o3_last_writer_wins_in_any_arrival_order_and_opt_out_wins_ties() {
    let out = Event::OptOut {
        at: t("2026-03-01T00:00:10Z"),
        scope: Scope::All,
    };
    let inn = Event::OptIn {
        at: t("2026-03-01T00:00:05Z"),
        scope: Scope::All,
    };
    let mut a = World::phone();
    a.apply(out.clone()).apply(inn.clone());
    let mut b = World::phone();
    b.apply(inn).apply(out);
    assert_eq!(a.state, b.state);
    assert!(!a.decide(UTIL, "2026-03-01T00:01:00Z").permits(UTIL));
    let mut tie = World::phone();
    tie.apply(Event::OptIn {
        at: t("2026-03-01T00:00:10Z"),
        scope: Scope::All,
    })
    .apply(Event::OptOut {
        at: t("2026-03-01T00:00:10Z"),
        scope: Scope::All,
    });
    assert_eq!(
        tie.decide(UTIL, "2026-03-01T00:01:00Z"),
        blocked(BlockReason::OptedOut, None)
    );
}

#[test]
fn o4_require_opt_in_needs_recorded_consent_for_templates() {
    let mut w = World::phone();
    w.policy.require_opt_in = true;
    w.inbound("2026-03-01T00:00:00Z");
    // Free-form inside the window is unaffected: the contact wrote first.
    assert!(w.decide(FREE, "2026-03-01T00:01:00Z").permits(FREE));
    assert_eq!(
        w.decide(UTIL, "2026-03-01T00:01:00Z"),
        blocked(BlockReason::NoOptIn, None)
    );
    w.apply(Event::OptIn {
        at: t("2026-03-01T00:02:00Z"),
        scope: Scope::Marketing,
    });
    assert!(w.decide(MKT, "2026-03-01T00:03:00Z").permits(MKT));
    assert_eq!(
        w.decide(UTIL, "2026-03-01T00:03:00Z"),
        blocked(BlockReason::NoOptIn, None)
    );
    w.text("2026-03-01T00:04:00Z", "START");
    assert!(w.decide(UTIL, "2026-03-01T00:05:00Z").permits(UTIL));
}

// ---- D: delivery feedback ----

#[test]
fn d1_undeliverable_cools_down_and_clears_early() {
    let mut w = World::phone();
    w.fail("2026-03-01T00:00:00Z", 131026, "m1");
    assert_eq!(
        w.decide(UTIL, "2026-03-01T01:00:00Z"),
        blocked(BlockReason::Undeliverable, Some("2026-03-02T00:00:00Z"))
    );
    assert!(w.decide(UTIL, "2026-03-02T00:00:00Z").permits(UTIL));
    // A later delivered status of another message clears it early.
    w.status("2026-03-01T02:00:00Z", DeliveryStatus::Delivered, "m2");
    assert!(w.decide(UTIL, "2026-03-01T03:00:00Z").permits(UTIL));
    let mut w = World::phone();
    w.fail("2026-03-01T00:00:00Z", 131030, "m1");
    w.inbound("2026-03-01T00:30:00Z");
    assert!(w.decide(FREE, "2026-03-01T01:00:00Z").permits(FREE));
}

#[test]
fn d2_delivered_wins_whichever_arrives_first() {
    for order in [true, false] {
        let mut w = World::phone();
        if order {
            w.fail("2026-03-01T00:00:05Z", 131026, "m1");
            w.status("2026-03-01T00:00:01Z", DeliveryStatus::Read, "m1");
        } else {
            w.status("2026-03-01T00:00:01Z", DeliveryStatus::Read, "m1");
            w.fail("2026-03-01T00:00:05Z", 131026, "m1");
        }
        assert!(w.decide(UTIL, "2026-03-01T00:01:00Z").permits(UTIL));
    }
}

#[test]
fn d2_feedback_is_bounded_by_the_horizon_and_lasting_effects_fold() {
    let mut w = World::phone();
    w.fail("2026-03-01T00:00:00Z", 131050, "m1");
    w.fail("2026-03-01T00:00:00Z", 131056, "m2");
    assert_eq!(w.state.feedback.failures.len(), 2);
    w.inbound("2026-03-20T00:00:00Z");
    assert!(w.state.feedback.is_empty());
    // The marketing opt-out outlives the entry; the pair penalty had long lapsed.
    assert_eq!(
        w.decide(MKT, "2026-03-20T00:01:00Z"),
        blocked(BlockReason::MarketingOptedOut, None)
    );
    assert!(w.decide(UTIL, "2026-03-20T00:01:00Z").permits(UTIL));
}

#[test]
fn d3_pair_penalty_and_budget_later_until_wins() {
    let mut w = World::phone();
    w.inbound("2026-03-01T00:00:00Z");
    w.fail("2026-03-01T00:00:10Z", 131056, "m1");
    assert_eq!(
        w.decide(FREE, "2026-03-01T00:00:20Z"),
        blocked(BlockReason::PairRateLimited, Some("2026-03-01T00:01:10Z"))
    );
    assert!(w.decide(FREE, "2026-03-01T00:01:10Z").permits(FREE));
}

#[test]
fn d3_budget_allows_a_burst_of_45_then_one_per_6s() {
    let mut w = World::phone();
    w.inbound("2026-03-01T00:00:00Z");
    let now = "2026-03-01T00:00:01Z";
    for i in 0..45 {
        assert!(w.reserve(FREE, None, now).permits(FREE), "reservation {i}");
    }
    let refused = w.reserve(FREE, None, now);
    assert_eq!(
        refused,
        blocked(BlockReason::PairRateLimited, Some("2026-03-01T00:00:07Z"))
    );
    // check reports the exhausted budget too, read-only; a refusal consumed nothing.
    assert_eq!(w.decide(FREE, now), refused);
    assert!(w.reserve(FREE, None, "2026-03-01T00:00:07Z").permits(FREE));
    assert!(!w.reserve(FREE, None, "2026-03-01T00:00:07Z").permits(FREE));
}

#[test]
fn d4_marketing_limit_holds_marketing_for_24h() {
    let mut w = World::phone();
    w.fail("2026-03-01T00:00:00Z", 131049, "m1");
    assert_eq!(
        w.decide(MKT, "2026-03-01T01:00:00Z"),
        blocked(BlockReason::MarketingLimited, Some("2026-03-02T00:00:00Z"))
    );
    assert!(w.decide(UTIL, "2026-03-01T01:00:00Z").permits(UTIL));
    let mut w = World::phone();
    w.fail("2026-03-01T00:00:00Z", 130472, "m1");
    assert!(!w.decide(MKT, "2026-03-01T01:00:00Z").permits(MKT));
    assert!(w.decide(MKT, "2026-03-02T00:00:00Z").permits(MKT));
}

#[test]
fn d5_caller_bugs_and_unknown_codes_change_nothing() {
    for code in [100, 131008, 131009, 131021, 132000, 132001, 132012, 424242] {
        let mut w = World::phone();
        let before = w.state.clone();
        let changed = w.state.apply(
            &Event::Failure {
                at: t("2026-03-01T00:00:00Z"),
                code,
                wamid: None,
            },
            &w.policy,
        );
        // Nothing moves, not even the key's newest event time (section 8).
        assert_eq!(w.state, before, "code {code}");
        assert!(!changed, "code {code}");
        assert!(w.decide(UTIL, "2026-03-01T00:00:01Z").permits(UTIL));
    }
    assert!(!CodeEffect::of(132000).retryable());
}

// ---- S: sender state ----

#[test]
fn s1_sender_restricted_until_cleared_or_strictly_newer_success() {
    let mut w = World::phone();
    w.fail("2026-03-01T00:00:00Z", 368, "m1");
    assert_eq!(
        w.decide(UTIL, "2026-03-05T00:00:00Z"),
        blocked(BlockReason::SenderRestricted, None)
    );
    w.status("2026-03-01T00:00:00Z", DeliveryStatus::Sent, "m2");
    assert!(!w.decide(UTIL, "2026-03-05T00:00:00Z").permits(UTIL));
    w.sender.apply(&SenderEvent::Clear {
        at: t("2026-03-01T00:00:01Z"),
    });
    assert!(w.decide(UTIL, "2026-03-05T00:00:00Z").permits(UTIL));
}

#[test]
fn s2_throughput_service_and_api_update_penalties() {
    let mut w = World::phone();
    w.inbound("2026-03-01T00:00:00Z");
    w.fail("2026-03-01T00:00:10Z", 130429, "m1");
    assert_eq!(
        w.decide(FREE, "2026-03-01T00:00:10Z"),
        blocked(BlockReason::ThroughputLimited, Some("2026-03-01T00:00:11Z"))
    );
    w.fail("2026-03-01T00:00:10Z", 2, "m2");
    w.fail("2026-03-01T00:00:20Z", 131057, "m3");
    assert_eq!(
        w.decide(FREE, "2026-03-01T00:00:11Z"),
        blocked(
            BlockReason::ServiceUnavailable,
            Some("2026-03-01T00:05:10Z")
        )
    );
}

#[test]
fn s3_spam_limit_for_an_hour() {
    let mut w = World::phone();
    w.fail("2026-03-01T00:00:00Z", 131048, "m1");
    assert_eq!(
        w.decide(UTIL, "2026-03-01T00:30:00Z"),
        blocked(BlockReason::SpamRateLimited, Some("2026-03-01T01:00:00Z"))
    );
}

// ---- R: regions ----

#[test]
fn r1_sanctioned_prefixes_and_countries() {
    for contact in [
        "p:5351234567",
        "p:79781234567",
        "p:8502123456",
        "u:IR.abc123",
    ] {
        let w = World::new(contact);
        assert_eq!(
            w.decide(UTIL, "2026-03-01T00:00:00Z"),
            blocked(BlockReason::RestrictedRegion, None),
            "{contact}"
        );
    }
    let mut w = World::new("p:5351234567");
    w.policy.restricted_prefixes.clear();
    assert!(w.decide(UTIL, "2026-03-01T00:00:00Z").permits(UTIL));
}

#[test]
fn r2_turkey_is_open_by_default_and_can_be_restricted() {
    let mut w = World::new("p:905321234567");
    assert!(w.decide(UTIL, "2026-03-01T00:00:00Z").permits(UTIL));
    w.policy.restrict_turkey = true;
    assert_eq!(
        w.decide(UTIL, "2026-03-01T00:00:00Z"),
        blocked(BlockReason::RestrictedRegion, None)
    );
}

#[test]
fn r3_no_marketing_to_us_numbers_but_canada_and_caribbean_are_fine() {
    let us = World::new("p:14155550123");
    assert_eq!(
        us.decide(MKT, "2026-03-01T00:00:00Z"),
        blocked(BlockReason::MarketingUnavailableInRegion, None)
    );
    assert!(us.decide(UTIL, "2026-03-01T00:00:00Z").permits(UTIL));
    let us_user = World::new("u:US.13491208655302741918");
    assert!(!us_user.decide(MKT, "2026-03-01T00:00:00Z").permits(MKT));
    for other in ["p:14165550123", "p:17875550123", "p:18765550123"] {
        let w = World::new(other);
        assert!(
            w.decide(MKT, "2026-03-01T00:00:00Z").permits(MKT),
            "{other}"
        );
    }
    let mut off = World::new("p:14155550123");
    off.policy.block_us_marketing = false;
    assert!(off.decide(MKT, "2026-03-01T00:00:00Z").permits(MKT));
}

// ---- Section 7: order ----

#[test]
fn order_first_refusal_wins() {
    let mut w = World::new("p:5351234567");
    w.text("2026-03-01T00:00:00Z", "STOP");
    assert_eq!(
        w.decide(UTIL, "2026-03-01T00:01:00Z"),
        blocked(BlockReason::RestrictedRegion, None)
    );
    w.fail("2026-03-01T00:00:30Z", 131031, "m1");
    assert_eq!(
        w.decide(UTIL, "2026-03-01T00:01:00Z"),
        blocked(BlockReason::SenderRestricted, None)
    );
}

// ---- E: events duplicated, late, out of order ----

#[test]
fn e1_same_events_any_order_same_state() {
    let events = [
        Event::Inbound {
            at: t("2026-03-01T00:00:00Z"),
            text: None,
            referral: false,
        },
        Event::TemplateSent {
            at: t("2026-03-01T02:00:00Z"),
        },
        Event::Failure {
            at: t("2026-03-01T03:00:00Z"),
            code: 131026,
            wamid: Some(WamidHash::of("m")),
        },
        Event::Status {
            at: t("2026-03-01T03:00:01Z"),
            status: DeliveryStatus::Delivered,
            wamid: Some(WamidHash::of("m")),
        },
    ];
    let policy = Policy::default();
    let mut forward = ConversationState::default();
    for e in &events {
        forward.apply(e, &policy);
    }
    let mut backward = ConversationState::default();
    for e in events.iter().rev().chain(events.iter()) {
        backward.apply(e, &policy);
    }
    assert_eq!(forward, backward);
    assert_eq!(forward.encode(), backward.encode());
}

#[test]
fn e2_late_events_never_move_registers_back() {
    let mut w = World::phone();
    w.inbound("2026-03-02T00:00:00Z");
    w.inbound("2026-03-01T00:00:00Z");
    assert_eq!(w.state.last_inbound, Some(t("2026-03-02T00:00:00Z")));
}

#[test]
fn e3_the_core_never_reads_a_clock() {
    // Decisions depend only on their arguments: the same call gives the same answer for any
    // `now` in the past or future, and the crate's clippy.toml forbids clock calls.
    let w = World::phone();
    for now in ["1970-01-01T00:00:00Z", "2262-01-01T00:00:00Z"] {
        assert_eq!(
            w.decide(FREE, now),
            template_required(TemplateReason::FirstContact)
        );
    }
}

#[test]
fn e4_erasure_leaves_a_tombstone_that_ignores_older_events() {
    let mut w = World::phone();
    w.inbound("2026-03-01T00:00:00Z");
    w.state.erase(t("2026-03-01T01:00:00Z"), false, &w.policy);
    assert_eq!(
        w.state,
        ConversationState::tombstone(t("2026-03-01T01:00:00Z"), false)
    );
    // Meta's late retry of the old inbound cannot bring the state back.
    w.inbound("2026-03-01T00:00:00Z");
    assert_eq!(
        w.decide(FREE, "2026-03-01T02:00:00Z"),
        template_required(TemplateReason::FirstContact)
    );
    // A newer event is applied.
    w.inbound("2026-03-01T02:00:00Z");
    assert!(w.decide(FREE, "2026-03-01T02:00:01Z").permits(FREE));
    // The tombstone goes once an event past the horizon arrives.
    w.inbound("2026-03-15T00:00:00Z");
    assert_eq!(w.state.erased_at, None);
}

#[test]
fn e4_erasure_keeps_the_objection_whichever_arrives_first() {
    // Opt-out, then erasure: the suppression list survives.
    let mut w = World::phone();
    w.text("2026-03-01T00:00:01Z", "STOP");
    w.state.erase(t("2026-03-01T01:00:00Z"), false, &w.policy);
    assert_eq!(
        w.decide(UTIL, "2026-03-01T02:00:00Z"),
        blocked(BlockReason::OptedOut, None)
    );
    // Erasure, then the late retry of the same STOP: its consent part still applies, its
    // window part does not.
    let mut late = World::phone();
    late.state
        .erase(t("2026-03-01T01:00:00Z"), false, &late.policy);
    late.text("2026-03-01T00:00:01Z", "STOP");
    assert_eq!(late.state.opt_all, w.state.opt_all);
    assert_eq!(late.state.last_inbound, None);
    // With include_opt_out the objection goes, and so do older consent events arriving late.
    let mut all = World::phone();
    all.text("2026-03-01T00:00:01Z", "STOP");
    all.state
        .erase(t("2026-03-01T01:00:00Z"), true, &all.policy);
    all.text("2026-03-01T00:00:01Z", "STOP");
    assert!(all.decide(UTIL, "2026-03-01T02:00:00Z").permits(UTIL));
}

#[test]
fn e4_erasure_takes_everything_else_whatever_its_instant() {
    let mut w = World::phone();
    // An inbound dated after the erasure instant is erased too: the state as it stands goes.
    w.inbound("2026-03-01T00:01:40Z");
    w.state.erase(t("2026-03-01T00:00:50Z"), false, &w.policy);
    assert_eq!(
        w.decide(FREE, "2026-03-01T00:03:20Z"),
        template_required(TemplateReason::FirstContact)
    );
    // The pair budget goes with it.
    let mut p = World::phone();
    for _ in 0..45 {
        p.reserve(FREE, None, "2026-03-01T00:00:00Z");
    }
    p.state.erase(t("2026-03-01T00:00:00Z"), false, &p.policy);
    assert_eq!(p.state.pair_budget_tat, None);
    // A local template record at the erasure instant is ignored like any event at it.
    let mut r = World::phone();
    r.state.erase(t("2026-03-01T00:00:00Z"), false, &r.policy);
    r.reserve(UTIL, None, "2026-03-01T00:00:00Z");
    assert_eq!(
        r.decide(FREE, "2026-03-01T00:00:00Z"),
        template_required(TemplateReason::FirstContact)
    );
}

// ---- G: resends ----

#[test]
fn g1_resend_cap_per_idempotency_key() {
    let mut w = World::phone();
    for _ in 0..3 {
        assert!(w
            .reserve(UTIL, Some("invoice-7"), "2026-03-01T00:00:00Z")
            .permits(UTIL));
    }
    assert_eq!(
        w.reserve(UTIL, Some("invoice-7"), "2026-03-01T01:00:00Z"),
        blocked(BlockReason::ResendLimit, Some("2026-03-02T00:00:00Z"))
    );
    // Another logical message is not capped; check without a key is not capped either.
    assert!(w
        .reserve(UTIL, Some("invoice-8"), "2026-03-01T01:00:00Z")
        .permits(UTIL));
    assert!(w.decide(UTIL, "2026-03-01T01:00:00Z").permits(UTIL));
    // A new 24h period starts afterwards.
    assert!(w
        .reserve(UTIL, Some("invoice-7"), "2026-03-02T00:00:00Z")
        .permits(UTIL));
}

#[test]
fn reserve_of_a_refused_free_form_records_nothing() {
    let mut w = World::phone();
    let before = w.state.clone();
    let d = w.reserve(FREE, Some("x"), "2026-03-01T00:00:00Z");
    assert_eq!(d, template_required(TemplateReason::FirstContact));
    assert_eq!(w.state, before);
    // A reserved template is recorded as sent (W3).
    w.reserve(UTIL, None, "2026-03-01T00:00:00Z");
    assert_eq!(
        w.decide(FREE, "2026-03-01T00:00:01Z"),
        template_required(TemplateReason::AwaitingReply)
    );
}

#[test]
fn typical_record_is_small() {
    let mut w = World::phone();
    w.inbound("2026-03-01T00:00:00Z");
    w.template("2026-02-28T00:00:00Z");
    w.status("2026-03-01T00:01:00Z", DeliveryStatus::Delivered, "m1");
    w.status("2026-03-01T00:02:00Z", DeliveryStatus::Read, "m2");
    w.reserve(FREE, None, "2026-03-01T00:03:00Z");
    let bytes = w.state.encode();
    assert!(bytes.len() <= 150, "{} bytes", bytes.len());
}
