//! Every payload shape of `tests/fixtures/` (written from Meta's webhook references) and the
//! events it must produce. Test names carry the rule ids they check.

use waguard_core::{DeliveryStatus, Event, KeyedEvent, Preference, Timestamp, WamidHash};
use waguard_webhook::{parse, ItemProblem, Limits, Parsed};

const BIZ: &str = "106540352242922";
const PHONE_KEY: &str = "106540352242922/p:16505551234";
const GROUP: &str = "Y2FwaV9ncm91cDoxNzA1NTU1MDEzOToxMjAzNjM0MDQ2OTQyMzM4MjAZD";

fn received_at() -> Timestamp {
    Timestamp::from_unix_seconds(1_800_000_000).unwrap()
}

fn t(seconds: i64) -> Timestamp {
    Timestamp::from_unix_seconds(seconds).unwrap()
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn load(name: &str) -> Parsed {
    parse(&fixture(name), received_at(), &Limits::default()).unwrap()
}

/// A clean fixture's events as (key text, event).
fn events(name: &str) -> Vec<(String, Event)> {
    let parsed = load(name);
    assert!(parsed.is_clean(), "{name}: {:?}", parsed.errors);
    parsed
        .events
        .into_iter()
        .filter_map(|e| match e {
            KeyedEvent::Contact { key, event } => Some((key.to_string(), event)),
            // K5 and T4 links are checked by their own tests.
            KeyedEvent::Link { .. } | KeyedEvent::AccountLink { .. } => None,
            other => panic!("{name}: unexpected {other:?}"),
        })
        .collect()
}

fn inbound(at: i64, text: Option<&str>, referral: bool) -> Event {
    Event::Inbound {
        at: t(at),
        text: text.map(str::to_owned),
        referral,
    }
}

fn key(contact: &str) -> String {
    format!("{BIZ}/{contact}")
}

#[test]
fn w1_text_message_opens_the_window_with_its_raw_text() {
    assert_eq!(
        events("text"),
        [(
            PHONE_KEY.into(),
            inbound(1_749_416_383, Some("Does it come in another color?"), false)
        )]
    );
}

#[test]
fn w1_media_messages_of_every_kind_are_inbound_without_text() {
    let got = events("media");
    let want: Vec<_> = (1_749_416_401..=1_749_416_405)
        .map(|at| (PHONE_KEY.to_string(), inbound(at, None, false)))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn w1_interactive_replies_are_inbound_and_not_keyword_text() {
    assert_eq!(
        events("interactive"),
        [
            (PHONE_KEY.into(), inbound(1_749_416_410, None, false)),
            (PHONE_KEY.into(), inbound(1_749_416_411, None, false)),
        ]
    );
}

#[test]
fn o1_quick_reply_button_text_is_handed_to_the_policy() {
    assert_eq!(
        events("button"),
        [(
            PHONE_KEY.into(),
            inbound(1_749_416_420, Some("Stop promotions"), false)
        )]
    );
}

#[test]
fn w1_reaction_location_contacts_order_are_inbound() {
    for (name, at) in [
        ("reaction", 1_749_416_430),
        ("location", 1_749_416_440),
        ("contacts_message", 1_749_416_450),
        ("order", 1_749_416_460),
    ] {
        assert_eq!(
            events(name),
            [(PHONE_KEY.into(), inbound(at, None, false))],
            "{name}"
        );
    }
}

#[test]
fn w1_system_messages_open_nothing_k6_a_changed_number_moves_its_consent() {
    let parsed = load("system");
    assert!(parsed.is_clean(), "{:?}", parsed.errors);
    match &parsed.events[..] {
        [KeyedEvent::NumberChanged { from, to, at, .. }, KeyedEvent::AccountLink { .. }] => {
            assert_eq!(from.digits(), "16505551234");
            assert_eq!(to.digits(), "16505559999");
            assert_eq!(*at, t(1_749_416_470));
        }
        other => panic!("only the number change, no inbound: {other:?}"),
    }
}

#[test]
fn h1_unsupported_and_unknown_types_still_count_as_inbound() {
    assert_eq!(
        events("unsupported"),
        [(PHONE_KEY.into(), inbound(1_749_416_480, None, false))]
    );
    // Also: an integer timestamp in a message, unknown fields at every level.
    assert_eq!(
        events("unknown_type"),
        [(PHONE_KEY.into(), inbound(1_749_416_490, None, false))]
    );
}

#[test]
fn w5_click_to_whatsapp_referral_is_flagged() {
    assert_eq!(
        events("referral"),
        [(
            PHONE_KEY.into(),
            inbound(1_749_416_500, Some("Can I get more info about this?"), true)
        )]
    );
}

#[test]
fn w5_referral_without_click_id_is_not_a_ctwa_referral() {
    let body = String::from_utf8(fixture("referral"))
        .unwrap()
        .replace("\"ctwa_clid\"", "\"other_clid\"");
    let parsed = parse(body.as_bytes(), received_at(), &Limits::default()).unwrap();
    assert!(matches!(
        &parsed.events[0],
        KeyedEvent::Contact {
            event: Event::Inbound {
                referral: false,
                ..
            },
            ..
        }
    ));
}

#[test]
fn w7_group_message_opens_the_groups_window_not_the_senders() {
    assert_eq!(
        events("group_message"),
        [(
            key(&format!("g:{GROUP}")),
            inbound(1_749_416_510, Some("Hello group"), false)
        )]
    );
}

#[test]
fn k3_bsuid_alone_is_the_key() {
    assert_eq!(
        events("bsuid_message"),
        [(
            key("u:US.13491208655302741918"),
            inbound(1_749_416_520, Some("hi from a username"), false)
        )]
    );
}

#[test]
fn k3_phone_wins_over_bsuid_also_through_contacts() {
    assert_eq!(
        events("bsuid_with_phone"),
        [
            (
                key("p:33612345678"),
                inbound(1_749_416_530, Some("phone and id"), false)
            ),
            (
                key("p:4915112345678"),
                inbound(1_749_416_531, Some("id only, phone in contacts"), false)
            ),
        ]
    );
}

fn status(at: i64, status: DeliveryStatus, wamid: &str) -> Event {
    Event::Status {
        at: t(at),
        status,
        wamid: Some(WamidHash::of(wamid)),
    }
}

fn failure(at: i64, code: u32, wamid: &str) -> Event {
    Event::Failure {
        at: t(at),
        code,
        wamid: Some(WamidHash::of(wamid)),
    }
}

#[test]
fn w3_marketing_status_records_a_template_sent() {
    assert_eq!(
        events("status_sent_marketing"),
        [
            (
                PHONE_KEY.into(),
                status(1_749_416_600, DeliveryStatus::Sent, "wamid.tpl1")
            ),
            (
                PHONE_KEY.into(),
                Event::TemplateSent {
                    at: t(1_749_416_600)
                }
            ),
        ]
    );
}

#[test]
fn w3_service_status_says_nothing_about_templates() {
    assert_eq!(
        events("status_delivered_service"),
        [(
            PHONE_KEY.into(),
            status(1_749_416_610, DeliveryStatus::Delivered, "wamid.svc1")
        )]
    );
}

#[test]
fn w3_k3_read_utility_status_keyed_by_phone_despite_recipient_user_id() {
    assert_eq!(
        events("status_read_utility"),
        [
            (
                PHONE_KEY.into(),
                status(1_749_416_620, DeliveryStatus::Read, "wamid.utl1")
            ),
            (
                PHONE_KEY.into(),
                Event::TemplateSent {
                    at: t(1_749_416_620)
                }
            ),
        ]
    );
}

#[test]
fn w3_every_template_category_counts_and_no_other() {
    let body = String::from_utf8(fixture("status_sent_marketing")).unwrap();
    for (category, template) in [
        ("marketing", true),
        ("marketing_lite", true),
        ("utility", true),
        ("authentication", true),
        ("authentication_international", true),
        ("service", false),
        ("referral_conversion", false),
        ("something_new", false),
    ] {
        let body = body.replace(
            "\"category\": \"marketing\"",
            &format!("\"category\": \"{category}\""),
        );
        let parsed = parse(body.as_bytes(), received_at(), &Limits::default()).unwrap();
        let sent = parsed.events.iter().any(|e| {
            matches!(
                e,
                KeyedEvent::Contact {
                    event: Event::TemplateSent { .. },
                    ..
                }
            )
        });
        assert_eq!(sent, template, "{category}");
    }
}

#[test]
fn w4_failed_status_gives_one_failure_per_error() {
    assert_eq!(
        events("status_failed"),
        [(
            PHONE_KEY.into(),
            failure(1_749_416_630, 131_047, "wamid.fail1")
        )]
    );
    assert_eq!(
        events("status_bsuid"),
        [
            (
                key("u:US.13491208655302741918"),
                failure(1_749_416_650, 131_050, "wamid.bs1")
            ),
            (
                key("u:US.13491208655302741918"),
                failure(1_749_416_650, 131_049, "wamid.bs1")
            ),
        ]
    );
}

#[test]
fn h1_played_counts_as_read() {
    assert_eq!(
        events("status_played"),
        [(
            "106540352242922/p:16505551234".to_string(),
            Event::Status {
                at: t(1_749_416_635),
                status: DeliveryStatus::Read,
                wamid: Some(WamidHash::of("wamid.voice1")),
            }
        )]
    );
}

#[test]
fn w7_group_statuses_are_keyed_by_the_group_and_codes_may_be_strings() {
    let group = key(&format!("g:{GROUP}"));
    assert_eq!(
        events("status_group"),
        [
            (
                group.clone(),
                status(1_749_416_640, DeliveryStatus::Sent, "wamid.grp1")
            ),
            (
                group.clone(),
                Event::TemplateSent {
                    at: t(1_749_416_640)
                }
            ),
            (group, failure(1_749_416_641, 131_026, "wamid.grp2")),
        ]
    );
}

#[test]
fn h1_value_level_errors_change_nothing_and_are_counted_as_ignored() {
    let parsed = load("value_errors");
    assert!(parsed.is_clean());
    // Only the number's account link (T4), which every `messages` change carries.
    assert!(
        matches!(&parsed.events[..], [KeyedEvent::AccountLink { .. }]),
        "{:?}",
        parsed.events
    );
    assert_eq!(parsed.ignored, 1);
}

#[test]
fn o2_user_preferences_stop_and_resume_with_integer_or_string_times() {
    let pref = |at, value| Event::MarketingPreference { at: t(at), value };
    assert_eq!(
        events("user_preferences"),
        [
            (PHONE_KEY.into(), pref(1_749_416_700, Preference::Stop)),
            (PHONE_KEY.into(), pref(1_749_416_760, Preference::Resume)),
            // `interested` and other categories are ignored, not errors.
            (
                key("u:US.13491208655302741918"),
                pref(1_749_416_790, Preference::Stop)
            ),
        ]
    );
}

#[test]
fn w1_user_initiated_call_connect_opens_the_window_only() {
    // terminate, business-initiated calls and call statuses add nothing.
    assert_eq!(
        events("calls"),
        [(PHONE_KEY.into(), inbound(1_749_416_800, None, false))]
    );
}

#[test]
fn h1_batches_ignore_other_fields_and_key_each_change_by_its_number() {
    let got = events("batch");
    assert_eq!(
        got,
        [
            (
                PHONE_KEY.into(),
                inbound(1_749_416_383, Some("Does it come in another color?"), false)
            ),
            (
                PHONE_KEY.into(),
                failure(1_749_416_630, 131_047, "wamid.fail1")
            ),
            (
                "200000000000001/p:447700900123".into(),
                inbound(1_749_416_950, Some("hello second number"), false)
            ),
        ]
    );
}

#[test]
fn h1_bad_items_are_reported_with_their_paths_and_the_rest_applied() {
    let parsed = load("bad_items");
    let paths: Vec<&str> = parsed.errors.iter().map(|e| e.path.as_str()).collect();
    let v = "entry[0].changes[0].value";
    assert_eq!(
        paths,
        [
            format!("{v}.messages[1]"),
            format!("{v}.messages[2]"),
            format!("{v}.messages[3]"),
            format!("{v}.messages[4]"),
            // messages[5] names no sender and its value has two contacts (K3).
            format!("{v}.messages[5]"),
            format!("{v}.statuses[1].errors[1]"),
            format!("{v}.statuses[1].errors[2]"),
            format!("{v}.statuses[2]"),
            format!("{v}.statuses[3]"),
            format!("{v}.statuses[4]"),
            format!("{v}.errors[0]"),
        ]
    );
    // The problems are typed and name the field.
    match &parsed.errors[0].problem {
        ItemProblem::Id(e) => assert_eq!(e.field, format!("{v}.messages[1].from")),
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(&parsed.errors[1].problem, ItemProblem::Missing { field } if field.ends_with("messages[2].timestamp"))
    );
    assert!(matches!(
        &parsed.errors[2].problem,
        ItemProblem::WrongType { .. }
    ));
    assert!(matches!(
        &parsed.errors[3].problem,
        ItemProblem::BadTimestamp { .. }
    ));
    assert!(matches!(
        &parsed.errors[4].problem,
        ItemProblem::NoContact { .. }
    ));
    assert!(matches!(
        &parsed.errors[5].problem,
        ItemProblem::BadCode { .. }
    ));
    assert!(matches!(
        &parsed.errors[10].problem,
        ItemProblem::BadCode { .. }
    ));
    // Every message explains itself with the path first.
    assert!(parsed.errors[3]
        .to_string()
        .starts_with(&format!("{v}.messages[4]: ")));

    // The good items around the bad ones are all there, in order.
    let got: Vec<_> = parsed
        .events
        .iter()
        .filter_map(|e| match e {
            KeyedEvent::Contact { event, .. } => Some(format!("{event:?}")),
            KeyedEvent::Sender { event, .. } => Some(format!("sender {event:?}")),
            KeyedEvent::AccountLink { .. } => None,
            other => panic!("{other:?}"),
        })
        .collect();
    let want = [
        format!("{:?}", inbound(1_749_417_000, Some("good one"), false)),
        format!("{:?}", inbound(1_749_417_003, Some("good two"), false)),
        format!(
            "{:?}",
            status(1_749_417_010, DeliveryStatus::Delivered, "wamid.s1")
        ),
        format!("{:?}", failure(1_749_417_011, 131_026, "wamid.s2")),
        format!("{:?}", failure(1_749_417_011, 131_056, "wamid.s2")),
    ];
    assert_eq!(got, want);
    // The good value-level error changes nothing (H1) and is counted as ignored.
    assert_eq!(parsed.ignored, 1);
}

#[test]
fn h4_duplicated_items_give_duplicated_events_not_errors() {
    let body = r#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{
        "metadata":{"phone_number_id":"1"},
        "messages":[
          {"from":"16505551234","id":"wamid.d","timestamp":"100","type":"text","text":{"body":"x"}},
          {"from":"16505551234","id":"wamid.d","timestamp":"100","type":"text","text":{"body":"x"}}]}}]}]}"#;
    let parsed = parse(body.as_bytes(), received_at(), &Limits::default()).unwrap();
    assert!(parsed.is_clean());
    assert_eq!(parsed.events.len(), 2);
    assert_eq!(parsed.events[0], parsed.events[1]);
}

#[test]
fn h1_repeated_keys_keep_the_last_and_escapes_are_decoded() {
    let body = r#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{
        "metadata":{"phone_number_id":"1","phone_number_id":"2"},
        "messages":[{"from":"1650555\u00312\u00334","timestamp":1,"timestamp":"2",
                     "type":"te\u0078t","text":{"body":"caf\u00e9 \"ok\""}}]}}]}]}"#;
    let parsed = parse(body.as_bytes(), received_at(), &Limits::default()).unwrap();
    assert!(parsed.is_clean(), "{:?}", parsed.errors);
    match &parsed.events[..] {
        [KeyedEvent::Contact {
            key,
            event: Event::Inbound { at, text, .. },
        }] => {
            assert_eq!(key.to_string(), "2/p:16505551234");
            assert_eq!(*at, t(2));
            assert_eq!(text.as_deref(), Some("café \"ok\""));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn h1_structural_problems_are_item_errors_with_paths() {
    let cases: &[(&str, &[&str])] = &[
        (r#"{"object":"whatsapp_business_account"}"#, &["entry"]),
        (
            r#"{"object":"whatsapp_business_account","entry":{}}"#,
            &["entry"],
        ),
        (
            r#"{"object":"whatsapp_business_account","entry":[1,{}]}"#,
            &["entry[0]", "entry[1]"],
        ),
        (
            r#"{"object":"whatsapp_business_account","entry":[{"changes":[null,{"value":{}},{"field":1},{"field":"messages"},{"field":"messages","value":[]}]}]}"#,
            &[
                "entry[0].changes[0]",
                "entry[0].changes[1]",
                "entry[0].changes[2]",
                "entry[0].changes[3]",
                "entry[0].changes[4]",
            ],
        ),
        (
            r#"{"object":"whatsapp_business_account","entry":[{"changes":[
               {"field":"messages","value":{"messages":[]}},
               {"field":"messages","value":{"metadata":{"phone_number_id":"x1"}}},
               {"field":"messages","value":{"metadata":{"phone_number_id":"1"},"messages":"no","statuses":{}}},
               {"field":"account_update","value":"anything"}]}]}"#,
            &[
                "entry[0].changes[0]",
                "entry[0].changes[1]",
                "entry[0].changes[2].value.messages",
                "entry[0].changes[2].value.statuses",
            ],
        ),
    ];
    for (body, want) in cases {
        let parsed = parse(body.as_bytes(), received_at(), &Limits::default()).unwrap();
        let paths: Vec<&str> = parsed.errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(&paths, want, "{body}");
        assert!(parsed.events.is_empty());
    }
}

#[test]
fn k3_statuses_preferences_and_calls_find_the_phone_in_contacts() {
    let body = r#"{"object":"whatsapp_business_account","entry":[{"changes":[
      {"field":"messages","value":{"metadata":{"phone_number_id":"1"},
        "contacts":[{"wa_id":"33612345678","user_id":"FR.1","parent_user_id":"FR.ENT.9"}],
        "statuses":[
          {"id":"w1","status":"delivered","timestamp":"10","recipient_user_id":"FR.1"},
          {"id":"w2","status":"delivered","timestamp":"11","recipient_parent_user_id":"FR.ENT.9"},
          {"id":"w3","status":"delivered","timestamp":"12","recipient_user_id":"FR.2"}]}},
      {"field":"user_preferences","value":{"metadata":{"phone_number_id":"1"},
        "contacts":[{"wa_id":"33612345678","user_id":"FR.1"}],
        "user_preferences":[{"user_id":"FR.1","category":"marketing_messages","value":"stop","timestamp":13}]}},
      {"field":"calls","value":{"metadata":{"phone_number_id":"1"},
        "calls":[{"from_user_id":"FR.3","event":"connect","direction":"user_initiated","timestamp":"14"}]}}]}]}"#;
    let parsed = parse(body.as_bytes(), received_at(), &Limits::default()).unwrap();
    assert!(parsed.is_clean(), "{:?}", parsed.errors);
    let keys: Vec<String> = parsed
        .events
        .iter()
        .filter_map(|e| match e {
            KeyedEvent::Contact { key, .. } => Some(key.to_string()),
            KeyedEvent::Link { .. } | KeyedEvent::AccountLink { .. } => None,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        keys,
        [
            "1/p:33612345678",
            "1/p:33612345678",
            "1/u:FR.2",
            "1/p:33612345678",
            "1/u:FR.3"
        ]
    );
}

#[test]
fn h1_integer_and_string_timestamps_are_accepted_everywhere_and_bad_ones_reported() {
    let body = r#"{"object":"whatsapp_business_account","entry":[{"changes":[
      {"field":"messages","value":{"metadata":{"phone_number_id":"1"},
        "messages":[{"from":"33612345678","timestamp":20,"type":"text","text":{"body":"a"}},
                    {"from":"33612345678","timestamp":1.5,"type":"text"},
                    {"from":"33612345678","timestamp":"99999999999999999999","type":"text"},
                    {"from":"33612345678","timestamp":"-1","type":"text"},
                    {"from":"33612345678","timestamp":"9999999999999","type":"text"}],
        "statuses":[{"id":"w","status":"read","timestamp":21,"recipient_id":"33612345678"}]}},
      {"field":"user_preferences","value":{"metadata":{"phone_number_id":"1"},
        "user_preferences":[{"wa_id":"33612345678","category":"marketing_messages","value":"resume","timestamp":"22"}]}}]}]}"#;
    let parsed = parse(body.as_bytes(), received_at(), &Limits::default()).unwrap();
    let times: Vec<i64> = parsed
        .events
        .iter()
        .map(|e| match e {
            KeyedEvent::Contact { event, .. } => event.at().unix_nanos() / 1_000_000_000,
            other => panic!("{other:?}"),
        })
        .collect();
    // E5: a negative timestamp is an item error like a fractional one.
    assert_eq!(times, [20, 21, 22]);
    let problems: Vec<String> = parsed.errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(problems.len(), 4, "{problems:?}");
    assert!(
        problems[0].contains("messages[1].timestamp` = 1.5"),
        "{}",
        problems[0]
    );
    assert!(matches!(
        parsed.errors[1].problem,
        ItemProblem::BadTimestamp { .. }
    ));
    assert!(matches!(
        parsed.errors[2].problem,
        ItemProblem::BadTimestamp { .. }
    ));
    // 9999999999999 s is past 2262: out of the supported range, with the core's error as source.
    assert!(matches!(
        parsed.errors[3].problem,
        ItemProblem::TimestampOutOfRange { .. }
    ));
    assert!(std::error::Error::source(&parsed.errors[3].problem).is_some());
}

#[test]
fn k3_a_bsuid_in_the_phone_field_is_read_as_a_bsuid() {
    let body = r#"{"object":"whatsapp_business_account","entry":[{"changes":[
      {"field":"messages","value":{"metadata":{"phone_number_id":"1"},
        "statuses":[
          {"id":"w1","status":"sent","timestamp":"10","recipient_id":"US.13491208655302741918"},
          {"id":"w2","status":"sent","timestamp":"11","recipient_id":"US.bad-id"}]}}]}]}"#;
    let parsed = parse(body.as_bytes(), received_at(), &Limits::default()).unwrap();
    match &parsed.events[..] {
        [KeyedEvent::Contact { key, .. }] => {
            assert_eq!(key.to_string(), "1/u:US.13491208655302741918")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(parsed.errors.len(), 1);
    assert!(
        matches!(&parsed.errors[0].problem, ItemProblem::Id(e) if e.field.ends_with("statuses[1].recipient_id"))
    );
}
