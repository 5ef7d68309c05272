//! The bodies of the cargo-fuzz targets of `fuzz/fuzz_targets/`, one function per
//! target. Each checks invariants that must hold whatever the input, not just "no panic".
//!
//! The targets are one-liners calling these functions, and the stable test
//! `tests/tests/fuzz_corpus.rs` replays every committed corpus file (`fuzz/corpus/<target>/`)
//! through them, so the targets build and run even where no nightly toolchain exists, and every
//! finding, once added to its corpus, stays a regression test.
//!
//! | target | function | input |
//! |---|---|---|
//! | `replay_line` | [`replay_line`] | NDJSON replay lines, applied to a guard over a `MemoryStore` |
//! | `contact_parse` | [`contact_parse`] | phone, BSUID, group, business ids and contact keys (K1-K4) |
//! | `record_decode` | [`record_decode`] | stored contact and sender records (the sled and PostgreSQL bytes) |
//! | `signature_verify` | [`signature_verify`] | secret, header and body of an `X-Hub-Signature-256` check (H2) |
//! | `webhook_limits` | [`webhook_limits`] | webhook bodies under tight size, depth and item limits |
//! | `core_sequence` | [`core_sequence`] | a structured run: policy, key, events, instants (E1, section 7, D3) |
//! | `journal_replay` | [`journal_replay`] | a sled store's write-ahead journal, as a crash leaves it |
//!
//! The webhook parser has its own target, `webhook_parse`, whose body is
//! `waguard_webhook::fuzz::exercise`.

use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use futures::executor::block_on;
use waguard::{
    decide, reserve, BlockReason, Bsuid, BusinessId, CodeEffect, ContactId, ContactKey,
    ConversationState, Decision, DeliveryStatus, Event, GroupId, Guard, MemoryStore, Outgoing,
    PairRate, PhoneNumber, Policy, Preference, Scope, SenderState, Subject, TemplateCategory,
    Timestamp, WamidHash,
};
use waguard_cli::replay::{self, Line, Timed};
use waguard_webhook::Limits;

mod journal;
pub use journal::{
    journal_outcome, journal_replay, JournalOutcome, Plan, PlannedOp, PlannedRecord, SmallKey,
};

/// The app secret `webhook_raw` replay lines are verified with.
pub const REPLAY_SECRET: &[u8] = b"fuzz-app-secret";

/// Every outgoing message kind.
pub const OUTGOING: [Outgoing; 4] = [
    Outgoing::FreeForm,
    Outgoing::Template(TemplateCategory::Marketing),
    Outgoing::Template(TemplateCategory::Utility),
    Outgoing::Template(TemplateCategory::Authentication),
];

/// Checks that `decision.permits(outgoing)` agrees with the decision's kind (rules.md
/// section 0): `free_form` permits everything, `template_required` only templates, `blocked`
/// nothing; and that the kind, reason and `until` accessors agree with the variant.
pub fn check_permits(decision: &Decision, outgoing: Outgoing) {
    let want = match decision {
        Decision::FreeForm { .. } => true,
        Decision::TemplateRequired { .. } => outgoing.is_template(),
        Decision::Blocked { .. } => false,
        other => panic!("a decision this check does not know: {other:?}"),
    };
    assert_eq!(
        decision.permits(outgoing),
        want,
        "{decision:?} for {outgoing:?}"
    );
    match decision {
        Decision::FreeForm { closes_at } => {
            assert_eq!(decision.kind(), "free_form");
            assert_eq!(decision.reason(), None);
            assert_eq!(decision.until(), Some(*closes_at));
        }
        Decision::TemplateRequired { .. } => {
            assert_eq!(decision.kind(), "template_required");
            assert!(decision.reason().is_some());
            assert_eq!(
                decision.until(),
                None,
                "template_required has no until (W3)"
            );
        }
        Decision::Blocked { until, .. } => {
            assert_eq!(decision.kind(), "blocked");
            assert!(decision.reason().is_some());
            assert_eq!(decision.until(), *until);
        }
        other => panic!("a decision this check does not know: {other:?}"),
    }
    if let Some(reason) = decision.reason() {
        assert!(!reason.as_str().is_empty());
    }
}

// ---------------------------------------------------------------------------------------------
// replay_line

/// Target `replay_line`: every line of `data` (UTF-8 only; split on `\n`) through
/// [`waguard_cli::replay::parse`]; every valid line is applied, in order, to one [`Guard`] over
/// a [`MemoryStore`] with the default policy, the way `waguard replay` applies it.
///
/// Checks: nothing panics; an invalid line gives a non-empty message; a `check` decision's
/// `permits` agrees with its kind and a second `check` gives the same answer (read-only); a
/// `reserve` without an idempotency key answers exactly what a `check` just before it answered
/// (the reservation only adds bookkeeping), and its `permits` agrees with its kind.
pub fn replay_line(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let guard =
        Guard::new(MemoryStore::new(), Policy::default()).expect("the default policy is valid");
    for line in text.split('\n') {
        match replay::parse(line) {
            Ok(timed) => block_on(apply_line(&guard, timed)),
            Err(message) => assert!(!message.is_empty(), "an empty error message for {line:?}"),
        }
    }
}

async fn apply_line(guard: &Guard<MemoryStore>, Timed { at, line }: Timed<'_>) {
    match line {
        Line::Check {
            key,
            outgoing,
            template,
        } => {
            let t = template.as_ref();
            let Ok(d) = guard.check_named(&key, outgoing, t, at).await else {
                return;
            };
            check_permits(&d, outgoing);
            let again = guard
                .check_named(&key, outgoing, t, at)
                .await
                .expect("read twice");
            assert_eq!(d, again, "check is read-only");
        }
        Line::Reserve {
            key,
            outgoing,
            idempotency_key,
            template,
        } => {
            let t = template.as_ref();
            let before = guard.check_named(&key, outgoing, t, at).await;
            let Ok(d) = guard
                .reserve_named(&key, outgoing, t, idempotency_key.as_deref(), at)
                .await
            else {
                return;
            };
            check_permits(&d, outgoing);
            if idempotency_key.is_none() {
                assert_eq!(
                    before.ok(),
                    Some(d),
                    "reserve without a key answers as check"
                );
            }
        }
        Line::SendError {
            key,
            code,
            wamid,
            template,
        } => {
            let _ = guard
                .record_send_error_named(&key, code, wamid.as_deref(), template.as_ref(), at)
                .await;
        }
        Line::OptOut { key, scope } => {
            let _ = guard.opt_out(&key, scope, at).await;
        }
        Line::OptIn { key, scope } => {
            let _ = guard.opt_in(&key, scope, at).await;
        }
        Line::Forget {
            key,
            include_opt_out,
        } => {
            let _ = if include_opt_out {
                guard.forget_including_opt_out(&key, at).await
            } else {
                guard.forget(&key, at).await
            };
        }
        Line::ClearSender { business } => {
            let _ = guard.clear_sender(&business, at).await;
        }
        Line::Webhook { body } => ingest_body(guard, body.as_bytes(), at).await,
        Line::WebhookRaw { body, signature } => {
            let verified = waguard_webhook::verify_signature(
                body.as_bytes(),
                signature.as_deref(),
                REPLAY_SECRET,
            );
            if verified.is_ok() {
                ingest_body(guard, body.as_bytes(), at).await;
            }
        }
        _ => {}
    }
}

async fn ingest_body(guard: &Guard<MemoryStore>, body: &[u8], at: Timestamp) {
    if let Ok(parsed) = waguard_webhook::parse(body, at, &Limits::default()) {
        let _ = guard.ingest(parsed.events).await;
    }
}

// ---------------------------------------------------------------------------------------------
// contact_parse

/// Target `contact_parse`: the input (lossy UTF-8, and each `\n`-separated part) through
/// [`PhoneNumber::parse`], [`Bsuid::parse`], [`GroupId::parse`], [`BusinessId::parse`],
/// [`ContactKey`]'s `FromStr` and [`ContactKey::from_storage_key`] (on the raw bytes).
///
/// Checks: nothing panics; a parsed phone number is 7 to 15 ASCII digits not starting with
/// `0` (K1) and its digits re-parse to the same number (canonicalisation is idempotent, K2);
/// a BSUID, group or business id reads back from its text (K3, K4); a key's textual form and
/// its storage key both read back to the same key, and a key's parts parse on their own.
pub fn contact_parse(data: &[u8]) {
    if let Ok(key) = ContactKey::from_storage_key(data) {
        check_key(&key);
    }
    let text = String::from_utf8_lossy(data);
    contact_parse_text(&text);
    for part in text.split('\n') {
        contact_parse_text(part);
    }
}

fn contact_parse_text(text: &str) {
    if let Ok(phone) = PhoneNumber::parse(text) {
        check_phone(&phone);
    }
    if let Ok(user) = Bsuid::parse(text) {
        assert_eq!(Bsuid::parse(user.as_str()).as_ref(), Ok(&user));
        assert_eq!(user.as_str(), text, "a BSUID is kept as written");
        assert_eq!(user.country().len(), 2);
        assert!(user.country().bytes().all(|b| b.is_ascii_uppercase()));
    }
    if let Ok(group) = GroupId::parse(text) {
        assert_eq!(GroupId::parse(group.as_str()).as_ref(), Ok(&group));
        assert!(!group.as_str().is_empty() && group.as_str().len() <= 128);
    }
    if let Ok(business) = BusinessId::parse(text) {
        assert_eq!(BusinessId::parse(business.as_str()).as_ref(), Ok(&business));
        assert_eq!(business.to_string(), business.as_str());
        let b = business.as_str();
        assert!(!b.is_empty() && b.len() <= 32 && b.bytes().all(|c| c.is_ascii_digit()));
    }
    if let Ok(key) = text.parse::<ContactKey>() {
        check_key(&key);
    }
}

fn check_phone(phone: &PhoneNumber) {
    let digits = phone.digits();
    assert!(
        (7..=15).contains(&digits.len()),
        "K1: {digits} is not 7 to 15 digits"
    );
    assert!(digits.bytes().all(|b| b.is_ascii_digit()), "K1: {digits}");
    assert!(!digits.starts_with('0'), "K1: {digits} starts with 0");
    let again = PhoneNumber::parse(digits).unwrap_or_else(|e| panic!("{digits} re-parses: {e}"));
    assert_eq!(&again, phone, "K2: canonical form is a fixed point");
    assert_eq!(again.region(), phone.region());
    let plus = format!("+{digits}");
    assert_eq!(PhoneNumber::parse(&plus).as_ref(), Ok(phone));
}

fn check_key(key: &ContactKey) {
    let text = key.to_string();
    assert_eq!(text.parse::<ContactKey>().as_ref(), Ok(key), "{text}");
    let stored = key.storage_key();
    assert_eq!(stored, text.as_bytes());
    assert_eq!(ContactKey::from_storage_key(&stored).as_ref(), Ok(key));
    assert_eq!(
        BusinessId::parse(key.business.as_str()).as_ref(),
        Ok(&key.business)
    );
    match &key.contact {
        ContactId::Phone(p) => check_phone(p),
        ContactId::User(u) => assert_eq!(Bsuid::parse(u.as_str()).as_ref(), Ok(u)),
        ContactId::Group(g) => assert_eq!(GroupId::parse(g.as_str()).as_ref(), Ok(g)),
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// record_decode

/// Target `record_decode`: the input as a stored contact record ([`ConversationState::decode`])
/// and as a stored sender record ([`SenderState::decode`]).
///
/// Both stores persist exactly these bytes (sled as the value under the contact key,
/// PostgreSQL in a `bytea` column) and never look inside, so this one target covers the
/// record encoding of both backends.
///
/// Checks: decoding never panics and its error has a message; a decoded record re-encodes to
/// bytes that decode to an equal state (encode/decode round trip); and a decoded record,
/// however odd its contents, can be used: `decide` and `reserve` at several instants (the
/// extremes included), applying an event and merging never panic, and decisions keep their
/// invariants ([`check_permits`]).
pub fn record_decode(data: &[u8]) {
    let policy = Policy::default();
    let key: ContactKey = "100000001/p:33612345678".parse().expect("valid key");
    let us: ContactKey = "100000001/p:12025550123".parse().expect("valid key");
    match ConversationState::decode(data) {
        Ok(state) => {
            let bytes = state.encode();
            let again = ConversationState::decode(&bytes)
                .unwrap_or_else(|e| panic!("a re-encoded record decodes: {e}"));
            assert_eq!(again, state, "contact record round trip");
            assert_eq!(again.encode(), bytes, "encoding is deterministic");
            let sender = SenderState::default();
            for now in instants_around(&state) {
                for outgoing in OUTGOING {
                    for k in [&key, &us] {
                        let d = decide(
                            Subject {
                                key: k,
                                state: &state,
                                sender: &sender,
                            },
                            outgoing,
                            now,
                            &policy,
                        );
                        check_permits(&d, outgoing);
                    }
                    let mut s = state.clone();
                    let d = reserve(&key, &mut s, &sender, outgoing, Some("idem"), now, &policy);
                    check_permits(&d, outgoing);
                }
                let mut s = state.clone();
                s.apply(
                    &Event::Inbound {
                        at: now,
                        text: Some("STOP".into()),
                        referral: false,
                    },
                    &policy,
                );
                s.merge(&state, &policy);
                let _ = s.encode();
            }
            let mut merged = ConversationState::default();
            merged.merge(&state, &policy);
            let _ = merged.erase(Timestamp::from_unix_nanos(0), false, &policy);
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    match SenderState::decode(data) {
        Ok(sender) => {
            let bytes = sender.encode();
            let again = SenderState::decode(&bytes)
                .unwrap_or_else(|e| panic!("a re-encoded sender record decodes: {e}"));
            assert_eq!(again, sender, "sender record round trip");
            let state = ConversationState::default();
            let times = [
                sender.restricted_at,
                sender.cleared_at,
                sender.throughput_at,
                sender.service_at,
                sender.api_update_at,
                sender.spam_at,
            ];
            let mut nows = vec![
                Timestamp::MIN,
                Timestamp::MAX,
                Timestamp::from_unix_nanos(0),
            ];
            nows.extend(times.iter().flatten().copied());
            for now in nows {
                let d = decide(
                    Subject {
                        key: &key,
                        state: &state,
                        sender: &sender,
                    },
                    Outgoing::FreeForm,
                    now,
                    &policy,
                );
                check_permits(&d, Outgoing::FreeForm);
                if sender.is_restricted() {
                    assert_eq!(
                        d,
                        Decision::Blocked {
                            reason: BlockReason::SenderRestricted,
                            until: None
                        },
                        "S1 comes first"
                    );
                }
            }
            let mut s = sender.clone();
            s.merge(&SenderState::default());
            assert_eq!(s, sender, "merging the empty state changes nothing");
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

/// The extremes, the epoch and every instant a state holds, give or take a second.
fn instants_around(state: &ConversationState) -> Vec<Timestamp> {
    let mut out = vec![
        Timestamp::MIN,
        Timestamp::MAX,
        Timestamp::from_unix_nanos(0),
    ];
    let held = [
        state.latest_event,
        state.erased_at,
        state.last_inbound,
        state.last_template_at,
        state.closed_mark,
        state.pair_budget_tat,
    ];
    for t in held.into_iter().flatten() {
        out.push(t);
        out.push(t.saturating_add(Duration::from_secs(1)));
    }
    out.truncate(12);
    out
}

// ---------------------------------------------------------------------------------------------
// signature_verify

/// Target `signature_verify`: the input split into an app secret, a header value and a body
/// (byte 0: secret length mod 65; byte 1: header length; then the secret, the header (lossy
/// UTF-8), the rest is the body), through [`waguard_webhook::verify_signature`] and
/// [`waguard_webhook::sign`] (rule H2).
///
/// Checks: nothing panics; an empty secret is always refused; the given header verifies only
/// if it is the body's signature (up to hex case and surrounding whitespace); `sign` then
/// `verify_signature` succeeds, also in uppercase hex and with surrounding whitespace; a
/// flipped byte of the body, a changed hex digit, another secret, a missing header and a
/// header without its `sha256=` prefix all fail.
pub fn signature_verify(data: &[u8]) {
    let (secret, header, body) = split_signature_input(data);
    let header = String::from_utf8_lossy(header);
    let given = waguard_webhook::verify_signature(body, Some(&header), secret);
    if secret.is_empty() {
        assert!(given.is_err(), "an empty secret is refused");
        assert!(waguard_webhook::verify_signature(body, None, secret).is_err());
        return;
    }
    let good = waguard_webhook::sign(body, secret);
    assert_eq!(good.len(), "sha256=".len() + 64);
    match given {
        Ok(()) => {
            let normalised = header
                .trim_matches(|c: char| c.is_ascii_whitespace())
                .to_ascii_lowercase();
            assert_eq!(normalised, good, "only the body's signature verifies");
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    let verify = |b: &[u8], h: Option<&str>, s: &[u8]| waguard_webhook::verify_signature(b, h, s);
    assert_eq!(verify(body, Some(&good), secret), Ok(()));
    let upper = format!("sha256={}", good["sha256=".len()..].to_ascii_uppercase());
    assert_eq!(verify(body, Some(&upper), secret), Ok(()));
    assert_eq!(verify(body, Some(&format!(" {good}\t")), secret), Ok(()));
    assert!(verify(body, None, secret).is_err());
    assert!(verify(body, Some(&good["sha256=".len()..]), secret).is_err());
    let mut other_secret = secret.to_vec();
    other_secret.push(b'x');
    assert!(verify(body, Some(&good), &other_secret).is_err());
    if !body.is_empty() {
        let mut flipped = body.to_vec();
        let i = usize::from(data[0]) % flipped.len();
        flipped[i] ^= 0x01;
        assert!(
            verify(&flipped, Some(&good), secret).is_err(),
            "flipped byte {i}"
        );
    }
    let mut digits = good.clone().into_bytes();
    let i = "sha256=".len() + usize::from(data.get(1).copied().unwrap_or(0)) % 64;
    digits[i] = if digits[i] == b'0' { b'1' } else { b'0' };
    let changed = String::from_utf8(digits).expect("ASCII");
    assert!(
        verify(body, Some(&changed), secret).is_err(),
        "changed digit {i}"
    );
}

/// Splits a `signature_verify` input into (secret, header, body).
pub fn split_signature_input(data: &[u8]) -> (&[u8], &[u8], &[u8]) {
    let (Some(&s), Some(&h)) = (data.first(), data.get(1)) else {
        return (b"", b"", data);
    };
    let rest = &data[2..];
    let s = (usize::from(s) % 65).min(rest.len());
    let (secret, rest) = rest.split_at(s);
    let h = usize::from(h).min(rest.len());
    let (header, body) = rest.split_at(h);
    (secret, header, body)
}

/// Builds a `signature_verify` input from its three parts (for seed corpora); the inverse of
/// [`split_signature_input`] for a secret of at most 64 bytes and a header of at most 255.
pub fn join_signature_input(secret: &[u8], header: &[u8], body: &[u8]) -> Vec<u8> {
    assert!(secret.len() <= 64 && header.len() <= 255);
    let mut out = vec![secret.len() as u8, header.len() as u8];
    out.extend_from_slice(secret);
    out.extend_from_slice(header);
    out.extend_from_slice(body);
    out
}

// ---------------------------------------------------------------------------------------------
// webhook_limits

/// Target `webhook_limits`: the input limits of the webhook crate ([`Limits`]), checked
/// against an independent reference.
///
/// The input is a body. A reference scan computes its nesting depth (brackets outside JSON
/// strings, escapes honoured, the top level counting as 1) and the offset of the first bracket
/// beyond each depth. Checks:
///
/// - size: with `max_body_bytes` one below the body's length, [`waguard_webhook::parse`] fails
///   with `TooLarge` (whatever the bytes: invalid UTF-8 or JSON included, so the limit is
///   enforced before parsing); at the body's length it never fails with `TooLarge`;
/// - depth: with `max_depth` at the reference depth, `Limits::check` passes and `parse` never
///   fails with `TooDeep`; one below, both fail with `TooDeep` at exactly the reference offset,
///   again whatever the bytes (before parsing);
/// - items: with a `max_items` budget of 0 to 3, `parse` never panics, and a body it accepts
///   gives no more events than that many items can carry (none for a budget of 0);
/// - `parse` with the default limits never panics.
pub fn webhook_limits(data: &[u8]) {
    use waguard_webhook::ParseError;
    let at = Timestamp::from_unix_seconds(1_750_000_000).expect("in range");
    let n = data.len();
    let default = Limits::default();
    let _ = waguard_webhook::parse(data, at, &default);

    if n > 0 {
        let small = default.with_max_body_bytes(n - 1);
        match waguard_webhook::parse(data, at, &small) {
            Err(ParseError::TooLarge { size, limit }) => assert_eq!((size, limit), (n, n - 1)),
            other => panic!(
                "a body of {n} bytes under a limit of {} gave {other:?}",
                n - 1
            ),
        }
    }
    let exact = default.with_max_body_bytes(n);
    assert!(!matches!(
        waguard_webhook::parse(data, at, &exact),
        Err(ParseError::TooLarge { .. })
    ));

    let (depth, offsets, terminated) = reference_depth(data);
    let at_depth = Limits::default().with_max_depth(depth);
    let checked = at_depth.check(data);
    if terminated {
        assert!(
            checked.is_ok(),
            "depth {depth} within its own limit: {checked:?}"
        );
        assert!(!matches!(
            waguard_webhook::parse(data, at, &at_depth),
            Err(ParseError::TooDeep { .. })
        ));
    }
    // With an unterminated string (invalid JSON) the parser may stop at another place than the
    // pre-scan; either way the body is never found shallower than the reference, so the limit
    // is never weaker. (The pre-scan once counted brackets inside an unterminated string; the
    // regression test is in `tests/tests/fuzz_corpus.rs`.)
    if depth > 0 {
        let below = Limits::default().with_max_depth(depth - 1);
        let want = offsets[depth - 1];
        for (what, result) in [
            ("check", below.check(data)),
            (
                "parse",
                waguard_webhook::parse(data, at, &below).map(|_| ()),
            ),
        ] {
            match result {
                Err(ParseError::TooDeep { limit, offset }) => {
                    assert_eq!(limit, depth - 1);
                    if terminated {
                        assert_eq!(offset, want, "{what}: TooDeep offset");
                    } else {
                        assert!(offset <= want, "{what}: TooDeep offset {offset} > {want}");
                    }
                }
                other => panic!(
                    "{what}: depth {depth} under a limit of {} gave {other:?}",
                    depth - 1
                ),
            }
        }
    }

    for items in 0..=3usize {
        let limits = Limits::default().with_max_items(items);
        if let Ok(parsed) = waguard_webhook::parse(data, at, &limits) {
            // Every event comes from an item read (an entry, a change, a message, a status,
            // ...): none without a budget, a few per item at most. (Item errors are not
            // bounded so: a payload without `entry` reports one with no item read.)
            assert!(
                parsed.events.len() <= 4 * items,
                "{} events from a budget of {items} items",
                parsed.events.len()
            );
        }
    }
}

/// The nesting depth of `body` as `Limits::check` documents it (brackets outside strings, the
/// top level being depth 1), for each depth `d` the offset of the first bracket that reaches
/// depth `d + 1`, and whether every string is terminated. A reference implementation: one byte
/// at a time, no shortcuts.
pub fn reference_depth(body: &[u8]) -> (usize, Vec<usize>, bool) {
    let (mut depth, mut max) = (0usize, 0usize);
    let mut first_at = Vec::new();
    let (mut in_string, mut escaped) = (false, false);
    for (i, &b) in body.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    max = depth;
                    first_at.push(i);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    (max, first_at, !in_string)
}

// ---------------------------------------------------------------------------------------------
// core_sequence

/// The keys `core_sequence` picks from: an ordinary phone, a US phone (R3), a restricted phone
/// (R1, Cuba), the Mexican alias spelling (K2), BSUIDs (plain, US, restricted country, parent)
/// and a group.
pub const KEYS: [&str; 9] = [
    "100000001/p:33612345678",
    "100000001/p:12025550123",
    "100000001/p:5355123456",
    "100000001/p:5215512345678",
    "100000001/u:FR.1234567890",
    "100000001/u:US.13491208655302741918",
    "100000001/u:CU.42",
    "100000001/u:BR.ENT.9",
    "100000001/g:120363042@g.us",
];

/// Error codes with every effect (D1-D5, S1-S3, W4, O2) and a few unknown ones.
const CODES: [u32; 22] = [
    131026, 131030, 131047, 131049, 130472, 131050, 131056, 368, 131031, 133010, 131042, 131045,
    130429, 131057, 131000, 1, 2, 131048, 100, 131008, 4, 999_999,
];

const TEXTS: [&str; 8] = [
    "hi",
    "STOP",
    " stop!! ",
    "Unsubscribe.",
    "START",
    "start",
    "stop please",
    "",
];

const SECOND: i64 = 1_000_000_000;
const SPAN_SECONDS: i64 = 7 * 24 * 3600;

/// An arbitrary policy: the default, or one with its tunables drawn from sensible ranges
/// (falling back to the default when the draw does not validate).
fn arbitrary_policy(u: &mut Unstructured<'_>) -> arbitrary::Result<Policy> {
    if u.ratio(1, 2)? {
        return Ok(Policy::default());
    }
    let secs = |u: &mut Unstructured<'_>, max: u64| -> arbitrary::Result<Duration> {
        Ok(Duration::from_secs(u.int_in_range(0..=max)?))
    };
    let policy = Policy {
        window_margin: secs(u, 6 * 3600)?,
        require_opt_in: bool::arbitrary(u)?,
        undeliverable_cooldown: secs(u, 48 * 3600)?,
        pair_penalty: secs(u, 600)?,
        pair_rate: PairRate {
            interval: Duration::from_millis(u.int_in_range(1..=60_000)?),
            burst: u.int_in_range(1..=60)?,
        },
        throughput_penalty: secs(u, 10)?,
        service_penalty: secs(u, 600)?,
        api_update_penalty: secs(u, 900)?,
        spam_penalty: secs(u, 7200)?,
        max_attempts: u.int_in_range(1..=6)?,
        restrict_turkey: bool::arbitrary(u)?,
        block_us_marketing: bool::arbitrary(u)?,
        ..Policy::default()
    };
    Ok(if policy.validate().is_ok() {
        policy
    } else {
        Policy::default()
    })
}

/// The base instant of a run: mostly 2026, sometimes the epoch or near either end of the
/// representable range (so that saturating arithmetic is exercised).
fn arbitrary_base(u: &mut Unstructured<'_>) -> arbitrary::Result<i64> {
    let span = (SPAN_SECONDS + 2 * 24 * 3600) * SECOND;
    Ok(match u.int_in_range(0..=7u8)? {
        0 => 0,
        1 => i64::MIN + span,
        2 => i64::MAX - 2 * span,
        3 => u.int_in_range(i64::MIN + span..=i64::MAX - 2 * span)?,
        _ => 1_772_323_200 * SECOND, // 2026-03-01T00:00:00Z
    })
}

fn arbitrary_wamid(u: &mut Unstructured<'_>) -> arbitrary::Result<Option<WamidHash>> {
    let n = u.int_in_range(0..=4u8)?;
    Ok((n > 0).then(|| WamidHash::of(&format!("wamid.{n}"))))
}

fn arbitrary_event(u: &mut Unstructured<'_>, base: i64) -> arbitrary::Result<Event> {
    // Seconds or milliseconds within the span, so equal instants are frequent.
    let offset = if u.ratio(1, 2)? {
        u.int_in_range(0..=SPAN_SECONDS)? * SECOND
    } else {
        u.int_in_range(0..=1_000i64)? * 1_000_000
    };
    let at = Timestamp::from_unix_nanos(base + offset);
    let scope = |u: &mut Unstructured<'_>| -> arbitrary::Result<Scope> {
        Ok(if bool::arbitrary(u)? {
            Scope::All
        } else {
            Scope::Marketing
        })
    };
    Ok(match u.int_in_range(0..=6u8)? {
        0 => Event::Inbound {
            at,
            text: if u.ratio(1, 3)? {
                None
            } else {
                Some((*u.choose(&TEXTS)?).to_owned())
            },
            referral: u.ratio(1, 4)?,
        },
        1 => Event::TemplateSent { at },
        2 => Event::Status {
            at,
            status: *u.choose(&[
                DeliveryStatus::Sent,
                DeliveryStatus::Delivered,
                DeliveryStatus::Read,
            ])?,
            wamid: arbitrary_wamid(u)?,
        },
        3 => Event::Failure {
            at,
            code: *u.choose(&CODES)?,
            wamid: arbitrary_wamid(u)?,
        },
        4 => Event::MarketingPreference {
            at,
            value: if bool::arbitrary(u)? {
                Preference::Stop
            } else {
                Preference::Resume
            },
        },
        5 => Event::OptOut {
            at,
            scope: scope(u)?,
        },
        _ => Event::OptIn {
            at,
            scope: scope(u)?,
        },
    })
}

/// One structured run of the `core_sequence` target.
#[derive(Debug)]
pub struct Run {
    /// The policy.
    pub policy: Policy,
    /// The key.
    pub key: ContactKey,
    /// The events, all within 7 days of each other (so none is pruned by the 8-day horizon).
    pub events: Vec<Event>,
    /// A permutation of the event indices, possibly with duplicates.
    pub shuffled: Vec<usize>,
    /// Instants to decide at.
    pub instants: Vec<Timestamp>,
    /// Outgoing messages with an optional idempotency key, reserved in turn at the last instant.
    pub reservations: Vec<(Outgoing, Option<&'static str>)>,
    /// An erasure (`forget`, E4) within the span, if any.
    pub erase: Option<Timestamp>,
}

impl Run {
    /// Reads a run from unstructured bytes.
    pub fn read(u: &mut Unstructured<'_>) -> arbitrary::Result<Run> {
        let policy = arbitrary_policy(u)?;
        let key = u.choose(&KEYS)?.parse().expect("KEYS are valid");
        let base = arbitrary_base(u)?;
        let n = u.int_in_range(0..=24usize)?;
        let mut events = Vec::with_capacity(n);
        for _ in 0..n {
            events.push(arbitrary_event(u, base)?);
        }
        let mut shuffled = Vec::new();
        if !events.is_empty() {
            let m = u.int_in_range(0..=2 * n)?;
            for _ in 0..m {
                shuffled.push(u.choose_index(n)?);
            }
        }
        let k = u.int_in_range(1..=6usize)?;
        let mut instants = Vec::with_capacity(k);
        for _ in 0..k {
            let offset = u.int_in_range(-24 * 3600..=SPAN_SECONDS + 2 * 24 * 3600)? * SECOND
                + u.int_in_range(0..=SECOND - 1)?;
            instants.push(Timestamp::from_unix_nanos(base + offset));
        }
        let r = u.int_in_range(0..=8usize)?;
        let mut reservations = Vec::with_capacity(r);
        for _ in 0..r {
            let idem = *u.choose(&[None, Some("order-1"), Some("order-2")])?;
            reservations.push((*u.choose(&OUTGOING)?, idem));
        }
        let erase = if u.ratio(1, 3)? {
            let offset = u.int_in_range(0..=SPAN_SECONDS)? * SECOND;
            Some(Timestamp::from_unix_nanos(base + offset))
        } else {
            None
        };
        Ok(Run {
            policy,
            key,
            events,
            shuffled,
            instants,
            reservations,
            erase,
        })
    }
}

/// Target `core_sequence`: a structured run read with [`arbitrary::Unstructured`] (see
/// [`Run`]): a valid policy, a key from [`KEYS`], up to 24 events within 7 days of each other,
/// a few instants and reservations. Checks:
///
/// - E1: applying the events in order, in reverse, in an arbitrary order with duplicates
///   (followed by all of them, so the set is the same), and as two halves merged, gives equal
///   contact and sender states (both ways of merging; merging is idempotent);
/// - records round-trip through `encode`/`decode`;
/// - `decide` never panics, and for every instant and outgoing kind:
///   [`check_permits`]; `free_form` closes after `now` and a `blocked` `until` is after `now`;
///   the order of rules.md section 7: a restricted sender (S1) always gives `sender_restricted`;
///   a restricted region (R1) or a full opt-out (O1) always blocks (never `free_form` or
///   `template_required`) with a reason of an earlier or the same step; refusals of steps 1-5
///   do not depend on the message kind; marketing-only reasons (O2, R3, D4) only for marketing
///   templates, `no_opt_in` only for templates;
/// - E4: with an erasure, erasing before, after or amid the events (in several orders) gives
///   the same decisions and the same state but for `first_template_at`;
/// - `reserve` without an idempotency key answers what `decide` answers, a refused reservation
///   changes nothing, and at one instant no more than `pair_rate.burst` reservations are granted.
pub fn core_sequence(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(run) = Run::read(&mut u) else {
        return;
    };
    check_run(&run);
}

/// Checks one run (see [`core_sequence`]).
pub fn check_run(run: &Run) {
    let policy = &run.policy;
    let apply_all = |order: &mut dyn Iterator<Item = &Event>| {
        let mut state = ConversationState::default();
        let mut sender = SenderState::default();
        for event in order {
            state.apply(event, policy);
            if let Some(se) = event.sender_event() {
                sender.apply(&se);
            }
        }
        (state, sender)
    };
    let (state, sender) = apply_all(&mut run.events.iter());
    let reversed = apply_all(&mut run.events.iter().rev());
    assert_eq!(reversed.0, state, "E1: reverse order, {:?}", run.events);
    assert_eq!(reversed.1, sender, "E1: reverse order (sender)");
    let shuffled = apply_all(
        &mut run
            .shuffled
            .iter()
            .map(|&i| &run.events[i])
            .chain(run.events.iter().rev()),
    );
    assert_eq!(
        shuffled.0, state,
        "E1: shuffled with duplicates, {:?}",
        run.events
    );
    assert_eq!(shuffled.1, sender, "E1: shuffled with duplicates (sender)");
    let twice = apply_all(&mut run.events.iter().chain(run.events.iter()));
    assert_eq!(twice.0, state, "E1: duplicated");

    // Two halves, merged either way.
    let mid = run
        .shuffled
        .first()
        .copied()
        .unwrap_or(0)
        .min(run.events.len());
    let (a, b) = run.events.split_at(mid);
    let (sa, xa) = apply_all(&mut a.iter());
    let (sb, xb) = apply_all(&mut b.iter());
    let mut ab = sa.clone();
    ab.merge(&sb, policy);
    let mut ba = sb.clone();
    ba.merge(&sa, policy);
    assert_eq!(ab, state, "E1: merge of halves");
    assert_eq!(ba, state, "E1: merge is commutative");
    let mut aa = state.clone();
    aa.merge(&state, policy);
    assert_eq!(aa, state, "merge is idempotent");
    let mut xab = xa.clone();
    xab.merge(&xb);
    assert_eq!(xab, sender, "E1: merge of sender halves");

    // E4: the consent registers do not depend on whether a consent event arrived before or
    // after an erasure (the rest of the state is erased as it stands, so it may). A 131050 is
    // left out of the marketing comparison: folded at the erasure it can no longer be voided.
    if let Some(e) = run.erase {
        let forget = |events: &mut dyn Iterator<Item = &Event>, erase_at: usize| {
            let mut state = ConversationState::default();
            for (i, event) in events.enumerate() {
                if i == erase_at {
                    state.erase(e, false, policy);
                }
                state.apply(event, policy);
            }
            state.erase(e, false, policy);
            state
        };
        let n = run.events.len();
        let variants = [
            forget(&mut run.events.iter(), 0),
            forget(&mut run.events.iter(), n),
            forget(&mut run.events.iter().rev(), n / 2),
            forget(
                &mut run
                    .shuffled
                    .iter()
                    .map(|&i| &run.events[i])
                    .chain(run.events.iter()),
                mid,
            ),
        ];
        let has_131050 = run.events.iter().any(
            |ev| matches!(ev, Event::Failure { code, .. } if CodeEffect::of(*code) == CodeEffect::MarketingOptOut),
        );
        for v in &variants[1..] {
            assert_eq!(v.opt_all, variants[0].opt_all, "E4: O1 register, erase {e}");
            if !has_131050 {
                assert_eq!(
                    v.opt_marketing, variants[0].opt_marketing,
                    "E4: O2 register, erase {e}"
                );
            }
            assert_eq!(v.last_inbound, None, "E4: the window is erased");
            assert_eq!(v.pair_budget_tat, None, "E4: the pair budget is erased");
        }
    }

    // The stored form.
    assert_eq!(
        ConversationState::decode(&state.encode()).ok().as_ref(),
        Some(&state)
    );
    assert_eq!(
        SenderState::decode(&sender.encode()).ok().as_ref(),
        Some(&sender)
    );

    for &now in &run.instants {
        check_decisions(&run.key, &state, &sender, now, policy);
    }
    // With an empty sender state too, so the contact rules are reached.
    let clear = SenderState::default();
    for &now in &run.instants {
        check_decisions(&run.key, &state, &clear, now, policy);
    }

    // Reservations at one instant: no more than the burst is granted.
    let now = *run.instants.last().expect("at least one instant");
    let mut s = state.clone();
    let mut granted = 0u64;
    for &(outgoing, idem) in &run.reservations {
        let before = s.clone();
        let decided = decide(
            Subject {
                key: &run.key,
                state: &s,
                sender: &clear,
            },
            outgoing,
            now,
            policy,
        );
        let d = reserve(&run.key, &mut s, &clear, outgoing, idem, now, policy);
        check_permits(&d, outgoing);
        if idem.is_none() {
            assert_eq!(d, decided, "reserve without a key answers as decide");
        }
        if d.permits(outgoing) {
            granted += 1;
        } else {
            assert_eq!(s, before, "a refused reservation changes nothing");
        }
    }
    let burst = u64::from(policy.pair_rate.burst);
    let extra = (0..burst + 2)
        .filter(|_| {
            reserve(
                &run.key,
                &mut s,
                &clear,
                Outgoing::Template(TemplateCategory::Utility),
                None,
                now,
                policy,
            )
            .permits(Outgoing::Template(TemplateCategory::Utility))
        })
        .count() as u64;
    assert!(
        granted + extra <= burst,
        "D3: {granted} + {extra} reservations granted at one instant, burst {burst}"
    );
}

fn is_sender_reason(r: BlockReason) -> bool {
    matches!(
        r,
        BlockReason::SenderRestricted
            | BlockReason::ThroughputLimited
            | BlockReason::ApiRateLimited
            | BlockReason::ServiceUnavailable
            | BlockReason::SpamRateLimited
    )
}

/// The step of rules.md section 7 a block reason belongs to (the template reasons of step 2
/// need a named template, which these runs never have).
fn step(r: BlockReason) -> u8 {
    match r {
        BlockReason::SenderRestricted
        | BlockReason::ThroughputLimited
        | BlockReason::ApiRateLimited
        | BlockReason::ServiceUnavailable
        | BlockReason::SpamRateLimited => 1,
        BlockReason::RestrictedRegion => 2,
        BlockReason::OptedOut => 3,
        BlockReason::Undeliverable => 4,
        BlockReason::PairRateLimited | BlockReason::ResendLimit => 5,
        _ => 6,
    }
}

fn check_decisions(
    key: &ContactKey,
    state: &ConversationState,
    sender: &SenderState,
    now: Timestamp,
    policy: &Policy,
) {
    let subject = Subject { key, state, sender };
    let region = waguard::rules::region::restricted(key, policy).is_some();
    let decisions = OUTGOING.map(|o| (o, decide(subject, o, now, policy)));
    for &(outgoing, d) in &decisions {
        check_permits(&d, outgoing);
        match d {
            Decision::FreeForm { closes_at } => {
                assert!(
                    closes_at > now,
                    "free_form closes after now: {d:?} at {now}"
                )
            }
            Decision::Blocked {
                until: Some(until), ..
            } => assert!(
                until > now || until == Timestamp::MAX,
                "blocked until after now: {d:?} at {now}"
            ),
            _ => {}
        }
        if sender.is_restricted() {
            assert_eq!(
                d,
                Decision::Blocked {
                    reason: BlockReason::SenderRestricted,
                    until: None
                },
                "S1 first"
            );
        }
        let Decision::Blocked { reason, .. } = d else {
            assert!(!region, "R1 always blocks: {d:?}");
            assert!(!state.opt_all.is_out(), "O1 always blocks: {d:?}");
            continue;
        };
        if region {
            assert!(step(reason) <= 2, "R1 before {reason:?}");
        }
        if state.opt_all.is_out() {
            assert!(step(reason) <= 3, "O1 before {reason:?}");
        }
        if step(reason) >= 2 {
            assert!(!is_sender_reason(reason));
        }
        if matches!(
            reason,
            BlockReason::MarketingOptedOut
                | BlockReason::MarketingUnavailableInRegion
                | BlockReason::MarketingLimited
        ) {
            assert!(outgoing.is_marketing(), "{reason:?} for {outgoing:?}");
        }
        if reason == BlockReason::NoOptIn {
            assert!(outgoing.is_template(), "no_opt_in for {outgoing:?}");
        }
        assert_ne!(
            reason,
            BlockReason::ResendLimit,
            "decide has no idempotency key"
        );
    }
    // Steps 1-5 do not look at the message kind: the same refusal for every kind.
    let (_, first) = decisions[0];
    if let Decision::Blocked { reason, .. } = first {
        if step(reason) <= 5 {
            for &(outgoing, d) in &decisions {
                assert_eq!(d, first, "step {} refusal for {outgoing:?}", step(reason));
            }
        }
    }
    // A template is never refused by the window (W6): if free-form is only refused by the
    // window, every non-marketing template without O4 goes.
    if matches!(
        first,
        Decision::TemplateRequired { .. } | Decision::FreeForm { .. }
    ) && !policy.require_opt_in
    {
        for &(outgoing, d) in &decisions[2..] {
            assert!(d.permits(outgoing), "W6: {d:?} for {outgoing:?}");
        }
    }
}

/// Builds a `core_sequence` input that reads back as a run of the given shape: the bytes are
/// simply handed to [`Unstructured`], so any bytes are a valid input; this helper makes seeds
/// from a fixed pseudo-random generator (for the committed seed corpus).
pub fn seed_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            // xorshift64*
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}
