//! Property tests of the core's invariants (rules E1, E2, section 7, W2, K1, K2) and totality.
//!
//! Event times are drawn from a span shorter than the feedback horizon, the situation Meta's
//! 7-day retry window guarantees; pruning beyond the horizon is covered by unit tests.

use std::time::Duration;

use proptest::prelude::*;
use waguard_core::*;

const BASE: i64 = 1_772_323_200; // 2026-03-01T00:00:00Z
const SPAN: i64 = 7 * 24 * 3600;

fn at(offset: i64) -> Timestamp {
    Timestamp::from_unix_seconds(BASE + offset).unwrap()
}

fn time() -> impl Strategy<Value = Timestamp> {
    (0..SPAN).prop_map(at)
}

fn wamid() -> impl Strategy<Value = Option<WamidHash>> {
    prop_oneof![
        Just(None),
        (0u64..4).prop_map(|w| Some(WamidHash::from_raw(w)))
    ]
}

fn code() -> impl Strategy<Value = u32> {
    prop::sample::select(vec![
        131026, 131030, 131056, 131049, 130472, 131047, 131050, 368, 131031, 130429, 131057, 1, 2,
        131048, 100, 132000, 7,
    ])
}

fn event() -> impl Strategy<Value = Event> {
    let text = prop::option::of(prop::sample::select(vec![
        "STOP".to_string(),
        "start!".to_string(),
        "hello".to_string(),
        " unsubscribe. ".to_string(),
    ]));
    let scope = prop_oneof![Just(Scope::All), Just(Scope::Marketing)];
    prop_oneof![
        (time(), text, any::<bool>()).prop_map(|(at, text, referral)| Event::Inbound {
            at,
            text,
            referral
        }),
        time().prop_map(|at| Event::TemplateSent { at }),
        (
            time(),
            prop_oneof![
                Just(DeliveryStatus::Sent),
                Just(DeliveryStatus::Delivered),
                Just(DeliveryStatus::Read)
            ],
            wamid()
        )
            .prop_map(|(at, status, wamid)| Event::Status { at, status, wamid }),
        (time(), code(), wamid()).prop_map(|(at, code, wamid)| Event::Failure { at, code, wamid }),
        (time(), any::<bool>()).prop_map(|(at, stop)| Event::MarketingPreference {
            at,
            value: if stop {
                Preference::Stop
            } else {
                Preference::Resume
            }
        }),
        (time(), scope.clone()).prop_map(|(at, scope)| Event::OptOut { at, scope }),
        (time(), scope).prop_map(|(at, scope)| Event::OptIn { at, scope }),
    ]
}

fn events() -> impl Strategy<Value = Vec<Event>> {
    prop::collection::vec(event(), 0..24)
}

fn state_of(events: &[Event], policy: &Policy) -> ConversationState {
    let mut s = ConversationState::default();
    for e in events {
        s.apply(e, policy);
    }
    s
}

fn sender_of(events: &[Event]) -> SenderState {
    let mut s = SenderState::default();
    for e in events.iter().filter_map(Event::sender_event) {
        s.apply(&e);
    }
    s
}

fn outgoing() -> impl Strategy<Value = Outgoing> {
    prop_oneof![
        Just(Outgoing::FreeForm),
        Just(Outgoing::Template(TemplateCategory::Marketing)),
        Just(Outgoing::Template(TemplateCategory::Utility)),
        Just(Outgoing::Template(TemplateCategory::Authentication)),
    ]
}

fn key() -> impl Strategy<Value = ContactKey> {
    prop::sample::select(vec![
        "1/p:33612345678",
        "1/p:14155550123",
        "1/p:5351234567",
        "1/p:905321234567",
        "1/u:US.123",
        "1/u:IR.abc",
        "1/u:BR.ENT.9",
        "1/g:group-1",
    ])
    .prop_map(|k| k.parse().unwrap())
}

fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::MAX),
        (0u64..10 * 24 * 3600).prop_map(Duration::from_secs),
        any::<u64>().prop_map(Duration::from_nanos),
    ]
}

/// Any policy at all, valid or not: `decide` must be total over it.
fn any_policy() -> impl Strategy<Value = Policy> {
    (
        (duration(), duration(), duration(), duration()),
        (duration(), duration(), duration(), duration()),
        (duration(), any::<u32>(), any::<u32>()),
        (any::<bool>(), any::<bool>(), any::<bool>()),
    )
        .prop_map(
            |(
                (window_margin, undeliverable_cooldown, pair_penalty, throughput_penalty),
                (service_penalty, api_update_penalty, spam_penalty, feedback_horizon),
                (interval, burst, max_attempts),
                (require_opt_in, restrict_turkey, block_us_marketing),
            )| Policy {
                window_margin,
                undeliverable_cooldown,
                pair_penalty,
                throughput_penalty,
                service_penalty,
                api_update_penalty,
                spam_penalty,
                feedback_horizon,
                pair_rate: PairRate { interval, burst },
                max_attempts,
                require_opt_in,
                restrict_turkey,
                block_us_marketing,
                ..Policy::default()
            },
        )
}

fn registers(s: &ConversationState) -> [Option<Timestamp>; 8] {
    [
        s.latest_event,
        s.last_inbound,
        s.last_template_at,
        s.last_delivered_at,
        s.opt_all.out_at,
        s.opt_all.in_at,
        s.opt_marketing.out_at,
        s.opt_marketing.in_at,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// E1: any permutation of the events, with any duplicates, gives the same state.
    #[test]
    fn e1_permutations_and_duplicates_converge(
        evs in events(),
        seed in any::<u64>(),
        dups in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let policy = Policy::default();
        let mut shuffled = evs.clone();
        for d in &dups {
            if !evs.is_empty() {
                shuffled.push(evs[d.index(evs.len())].clone());
            }
        }
        // A deterministic shuffle from the seed.
        let mut rng = seed;
        for i in (1..shuffled.len()).rev() {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (rng >> 33) as usize % (i + 1));
        }
        let a = state_of(&evs, &policy);
        let b = state_of(&shuffled, &policy);
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(a.encode(), b.encode());
        prop_assert_eq!(sender_of(&evs), sender_of(&shuffled));
    }

    /// Decoding into a state that already holds another contact (a reused scratch state)
    /// gives exactly what a fresh decode gives: nothing of the old contact survives.
    #[test]
    fn decode_into_a_used_state_equals_decode(a in events(), b in events()) {
        let policy = Policy::default();
        let (sa, sb) = (state_of(&a, &policy), state_of(&b, &policy));
        let mut scratch = sa.clone();
        scratch.decode_into(&sb.encode()).unwrap();
        prop_assert_eq!(&scratch, &sb);
        scratch.clear();
        prop_assert_eq!(&scratch, &ConversationState::default());
    }

    /// The lattice laws of merge: commutative, associative, idempotent; and merging the states
    /// of two halves equals applying all events.
    #[test]
    fn merge_is_a_join(a in events(), b in events(), c in events()) {
        let p = Policy::default();
        let (sa, sb, sc) = (state_of(&a, &p), state_of(&b, &p), state_of(&c, &p));
        let join = |x: &ConversationState, y: &ConversationState| {
            let mut m = x.clone();
            m.merge(y, &p);
            m
        };
        prop_assert_eq!(join(&sa, &sb), join(&sb, &sa));
        prop_assert_eq!(join(&join(&sa, &sb), &sc), join(&sa, &join(&sb, &sc)));
        prop_assert_eq!(join(&sa, &sa), sa.clone());
        let all: Vec<Event> = a.iter().chain(b.iter()).cloned().collect();
        prop_assert_eq!(join(&sa, &sb), state_of(&all, &p));
    }

    /// SenderState merge is a join too.
    #[test]
    fn sender_merge_is_a_join(a in events(), b in events()) {
        let (sa, sb) = (sender_of(&a), sender_of(&b));
        let mut ab = sa.clone();
        ab.merge(&sb);
        let mut ba = sb.clone();
        ba.merge(&sa);
        prop_assert_eq!(&ab, &ba);
        let mut aa = sa.clone();
        aa.merge(&sa);
        prop_assert_eq!(aa, sa);
    }

    /// E2: no register ever moves backwards.
    #[test]
    fn e2_registers_are_monotonic(evs in events()) {
        let p = Policy::default();
        let mut s = ConversationState::default();
        for e in &evs {
            let before = registers(&s);
            s.apply(e, &p);
            let after = registers(&s);
            for (b, a) in before.iter().zip(after.iter()) {
                prop_assert!(a >= b);
            }
        }
    }

    /// decide (and reserve) never panic over arbitrary states, policies, messages and instants.
    #[test]
    fn decide_is_total(
        evs in events(),
        policy in any_policy(),
        key in key(),
        out in outgoing(),
        now in any::<i64>(),
        idem in prop::option::of("[a-z]{0,4}"),
    ) {
        let mut state = state_of(&evs, &policy);
        let sender = sender_of(&evs);
        let now = Timestamp::from_unix_nanos(now);
        let d = decide(Subject { key: &key, state: &state, sender: &sender }, out, now, &policy);
        let _ = d.permits(out);
        let _ = reserve(&key, &mut state, &sender, out, idem.as_deref(), now, &policy);
        for extreme in [Timestamp::MIN, Timestamp::MAX] {
            decide(Subject { key: &key, state: &state, sender: &sender }, out, extreme, &policy);
        }
    }

    /// Section 7: when a sender restriction, a region, an opt-out and a delivery problem all
    /// hold, the earliest in the order is the answer; removing it reveals the next.
    #[test]
    fn precedence_of_section_7(
        restricted in any::<bool>(),
        region in any::<bool>(),
        opted_out in any::<bool>(),
        undeliverable in any::<bool>(),
        pair in any::<bool>(),
        marketing_out in any::<bool>(),
        us in any::<bool>(),
        held in any::<bool>(),
    ) {
        let p = Policy::default();
        let contact = match (region, us) {
            (true, _) => "p:5351234567",
            (false, true) => "p:14155550123",
            _ => "p:33612345678",
        };
        let key: ContactKey = format!("1/{contact}").parse().unwrap();
        let mut evs = vec![];
        if restricted { evs.push(Event::Failure { at: at(0), code: 368, wamid: None }); }
        if opted_out { evs.push(Event::OptOut { at: at(0), scope: Scope::All }); }
        if undeliverable { evs.push(Event::Failure { at: at(0), code: 131026, wamid: None }); }
        if pair { evs.push(Event::Failure { at: at(0), code: 131056, wamid: None }); }
        if marketing_out { evs.push(Event::MarketingPreference { at: at(0), value: Preference::Stop }); }
        if held { evs.push(Event::Failure { at: at(0), code: 131049, wamid: None }); }
        let state = state_of(&evs, &p);
        let sender = sender_of(&evs);
        let d = decide(Subject { key: &key, state: &state, sender: &sender },
            Outgoing::Template(TemplateCategory::Marketing), at(10), &p);
        let expected = [
            (restricted, BlockReason::SenderRestricted),
            (region, BlockReason::RestrictedRegion),
            (opted_out, BlockReason::OptedOut),
            (undeliverable, BlockReason::Undeliverable),
            (pair, BlockReason::PairRateLimited),
            (marketing_out, BlockReason::MarketingOptedOut),
            (us && !region, BlockReason::MarketingUnavailableInRegion),
            (held, BlockReason::MarketingLimited),
        ].into_iter().find(|(holds, _)| *holds).map(|(_, r)| r);
        match expected {
            Some(reason) => prop_assert_eq!(d.reason(), Some(Reason::Blocked(reason))),
            None => prop_assert_eq!(d, Decision::TemplateRequired { reason: TemplateReason::FirstContact }),
        }
    }

    /// W2: one nanosecond before closes_at the window is open; at closes_at it is closed.
    #[test]
    fn w2_window_edge(inbound in time(), margin in 0u64..86_399) {
        let p = Policy { window_margin: Duration::from_secs(margin), ..Policy::default() };
        let key: ContactKey = "1/p:33612345678".parse().unwrap();
        let state = state_of(&[Event::Inbound { at: inbound, text: None, referral: false }], &p);
        let sender = SenderState::default();
        let s = Subject { key: &key, state: &state, sender: &sender };
        let open = decide(s, Outgoing::FreeForm, inbound, &p);
        let Decision::FreeForm { closes_at } = open else { panic!("open at the inbound: {open:?}") };
        let before = Timestamp::from_unix_nanos(closes_at.unix_nanos() - 1);
        prop_assert!(decide(s, Outgoing::FreeForm, before, &p).permits(Outgoing::FreeForm));
        prop_assert!(!decide(s, Outgoing::FreeForm, closes_at, &p).permits(Outgoing::FreeForm));
    }

    /// K1: canonicalisation is idempotent and ignores separators.
    #[test]
    fn k1_canonical_form_is_idempotent(raw in "\\+?[1-9][0-9 ().-]{6,20}") {
        if let Ok(p) = PhoneNumber::parse(&raw) {
            let again = PhoneNumber::parse(p.digits()).unwrap();
            prop_assert_eq!(again.digits(), p.digits());
            prop_assert!(p.digits().bytes().all(|b| b.is_ascii_digit()));
        }
    }

    /// K2: every alias pair lands on one key.
    #[test]
    fn k2_alias_pairs_land_on_one_key(mx in "[1-9][0-9]{9}", area in "[1-9]{2}", sub in "[6-9][0-9]{7}") {
        let a = PhoneNumber::parse(&format!("521{mx}")).unwrap();
        let b = PhoneNumber::parse(&format!("52{mx}")).unwrap();
        prop_assert_eq!(&a, &b);
        let c = PhoneNumber::parse(&format!("55{area}{sub}")).unwrap();
        let d = PhoneNumber::parse(&format!("55{area}9{sub}")).unwrap();
        prop_assert_eq!(c, d);
    }

    /// Nothing in the identifier constructors panics on any input.
    #[test]
    fn identifier_parsers_are_total(raw in ".{0,40}") {
        let _ = PhoneNumber::parse(&raw);
        let _ = Bsuid::parse(&raw);
        let _ = GroupId::parse(&raw);
        let _ = BusinessId::parse(&raw);
        let _ = raw.parse::<ContactKey>();
        let _ = Timestamp::parse_rfc3339(&raw);
    }

    /// The stored form and serde forms round-trip losslessly; decode never panics.
    #[test]
    fn state_round_trips(evs in events(), junk in prop::collection::vec(any::<u8>(), 0..64)) {
        let p = Policy::default();
        let s = state_of(&evs, &p);
        prop_assert_eq!(ConversationState::decode(&s.encode()).unwrap(), s.clone());
        let json = serde_json::to_string(&s).unwrap();
        prop_assert_eq!(serde_json::from_str::<ConversationState>(&json).unwrap(), s);
        let sender = sender_of(&evs);
        prop_assert_eq!(SenderState::decode(&sender.encode()).unwrap(), sender);
        let _ = ConversationState::decode(&junk);
        let _ = SenderState::decode(&junk);
    }

    /// A damaged record (one byte changed, or cut short) never panics the decoder; whatever it
    /// still decodes to is a state that round-trips. Records of format 1 keep decoding to the
    /// same state.
    #[test]
    fn damaged_records_never_panic(evs in events(), at in any::<prop::sample::Index>(), byte in any::<u8>(), cut in any::<bool>()) {
        let p = Policy::default();
        let s = state_of(&evs, &p);
        let mut bytes = s.encode();
        let i = at.index(bytes.len());
        if cut {
            bytes.truncate(i);
        } else {
            bytes[i] = byte;
        }
        if let Ok(decoded) = ConversationState::decode(&bytes) {
            prop_assert_eq!(ConversationState::decode(&decoded.encode()).unwrap(), decoded);
        }
        prop_assert_eq!(ConversationState::decode(&s.encode()).unwrap(), s);
    }

    /// Policies round-trip through their file form.
    #[test]
    fn policy_round_trips(p in any_policy()) {
        let json = serde_json::to_string(&p).unwrap();
        prop_assert_eq!(serde_json::from_str::<Policy>(&json).unwrap(), p);
    }
}
