//! Target `core_sequence`.

use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use waguard::{
    decide, reserve, BlockReason, CodeEffect, ContactKey, ConversationState, Decision,
    DeliveryStatus, Event, Outgoing, PairRate, Policy, Preference, Scope, SenderState, Subject,
    TemplateCategory, Timestamp, WamidHash,
};

use super::{check_permits, OUTGOING};

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
