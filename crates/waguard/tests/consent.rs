//! Property tests of the rules that cross keys or depend on arrival time, through the guard:
//! K5 links converge whatever the order, S1 successes and failures converge, E4 keeps exactly
//! the consent registers, E5 keeps every instant within the receive time plus the skew.

use proptest::prelude::*;
use waguard::*;

const PHONE: &str = "100000001/p:447700900777";
const USER: &str = "100000001/u:GB.55501234567";
/// The receive time of every ingestion (far after every event, so nothing is clamped unless a
/// test asks for it).
const RECEIVED: i64 = 1_000_000;

fn t(s: i64) -> Timestamp {
    Timestamp::from_unix_seconds(s).unwrap()
}

fn key(text: &str) -> ContactKey {
    text.parse().unwrap()
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

/// One contact event at `at` seconds, of kind `kind`.
fn event(kind: u8, at: i64) -> Event {
    let at = t(at);
    let text = |s: &str| Event::Inbound {
        at,
        text: Some(s.into()),
        referral: false,
    };
    match kind % 7 {
        0 => text("hello"),
        1 => text("STOP"),
        2 => text("START"),
        3 => Event::OptOut {
            at,
            scope: Scope::Marketing,
        },
        4 => Event::OptIn {
            at,
            scope: Scope::Marketing,
        },
        5 => Event::Status {
            at,
            status: DeliveryStatus::Delivered,
            wamid: None,
        },
        _ => Event::MarketingPreference {
            at,
            value: Preference::Stop,
        },
    }
}

fn link(at: i64) -> KeyedEvent {
    KeyedEvent::Link {
        business: BusinessId::parse("100000001").unwrap(),
        user: Bsuid::parse("GB.55501234567").unwrap(),
        phone: PhoneNumber::parse("447700900777").unwrap(),
        at: t(at),
    }
}

/// The registers a test compares: the window, consent, and the last delivery.
type Registers = (
    Option<Timestamp>,
    OptRegister,
    OptRegister,
    Option<Timestamp>,
);

/// The registers and decisions a test compares.
fn view(guard: &Guard<MemoryStore>, name: &str) -> (Registers, Vec<Decision>) {
    block_on(async {
        let (state, _) = guard.state(&key(name)).await.unwrap();
        let mut decisions = vec![];
        for outgoing in [
            Outgoing::FreeForm,
            Outgoing::Template(TemplateCategory::Marketing),
            Outgoing::Template(TemplateCategory::Utility),
        ] {
            decisions.push(guard.check(&key(name), outgoing, t(150)).await.unwrap());
        }
        let registers = (
            state.last_inbound,
            state.opt_all,
            state.opt_marketing,
            state.last_delivered_at,
        );
        (registers, decisions)
    })
}

fn run(events: &[KeyedEvent]) -> Guard<MemoryStore> {
    let guard = Guard::new(MemoryStore::new(), Policy::default()).unwrap();
    block_on(async {
        for e in events {
            guard.ingest_at([e.clone()], t(RECEIVED)).await.unwrap();
        }
    });
    guard
}

/// Contact events for the phone or the BSUID (`true`), with kinds and times.
fn contact_events() -> impl Strategy<Value = Vec<(bool, u8, i64)>> {
    prop::collection::vec((any::<bool>(), any::<u8>(), 0i64..100), 1..10)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// K5 + E1: events for a BSUID and its phone, in any order, with the link learned at any
    /// point, give the same state under the phone key, and the BSUID answers the same.
    #[test]
    fn k5_links_converge_whatever_the_order(
        evs in contact_events(),
        link_at in 0i64..100,
        position in any::<prop::sample::Index>(),
        seed in any::<u64>(),
    ) {
        let keyed: Vec<KeyedEvent> = evs
            .iter()
            .map(|&(user, kind, at)| KeyedEvent::Contact {
                key: key(if user { USER } else { PHONE }),
                event: event(kind, at),
            })
            .collect();
        // Reference: the link first, then every event.
        let mut first = vec![link(link_at)];
        first.extend(keyed.iter().cloned());
        // Other order: shuffled, the link at a random position.
        let mut shuffled = keyed.clone();
        let mut rng = fastrand::Rng::with_seed(seed);
        rng.shuffle(&mut shuffled);
        shuffled.insert(position.index(shuffled.len() + 1), link(link_at));
        let a = run(&first);
        let b = run(&shuffled);
        prop_assert_eq!(view(&a, PHONE), view(&b, PHONE));
        prop_assert_eq!(view(&b, USER).1, view(&b, PHONE).1, "the BSUID answers as its phone");
    }

    /// S1 + E1: a success strictly newer than a restriction lifts it whichever arrives first.
    #[test]
    fn s1_successes_and_failures_converge(
        items in prop::collection::vec((any::<bool>(), 0i64..50), 1..8),
        seed in any::<u64>(),
    ) {
        let as_events = |items: &[(bool, i64)]| -> Vec<KeyedEvent> {
            items
                .iter()
                .map(|&(success, at)| KeyedEvent::Contact {
                    key: key(PHONE),
                    event: if success {
                        Event::Status { at: t(at), status: DeliveryStatus::Delivered, wamid: None }
                    } else {
                        Event::Failure { at: t(at), code: 368, wamid: None }
                    },
                })
                .collect()
        };
        let mut shuffled = items.clone();
        fastrand::Rng::with_seed(seed).shuffle(&mut shuffled);
        let restricted_at = items.iter().filter(|i| !i.0).map(|i| i.1).max();
        let cleared_at = items.iter().filter(|i| i.0).map(|i| i.1).max();
        let model = restricted_at.is_some() && cleared_at <= restricted_at;
        for order in [items.clone(), shuffled] {
            let guard = run(&as_events(&order));
            let d = block_on(guard.check(&key(PHONE), Outgoing::FreeForm, t(60))).unwrap();
            prop_assert_eq!(
                d.reason().map(|r| r.as_str()) == Some("sender_restricted"),
                model,
                "{:?}", order
            );
        }
    }

    /// E4: an erasure keeps exactly the consent registers, and they do not depend on whether a
    /// consent event arrived before or after it.
    #[test]
    fn e4_consent_registers_do_not_depend_on_the_erasure_order(
        evs in prop::collection::vec((any::<u8>(), 0i64..100), 1..10),
        split in any::<prop::sample::Index>(),
        erase_at in 0i64..120,
    ) {
        let keyed: Vec<KeyedEvent> = evs
            .iter()
            .map(|&(kind, at)| KeyedEvent::Contact { key: key(PHONE), event: event(kind, at) })
            .collect();
        let erase = |guard: &Guard<MemoryStore>| {
            block_on(guard.forget(&key(PHONE), t(erase_at))).unwrap();
        };
        let all_before = run(&keyed);
        erase(&all_before);
        let cut = split.index(keyed.len() + 1);
        let some_after = run(&keyed[..cut]);
        erase(&some_after);
        block_on(async {
            for e in &keyed[cut..] {
                some_after.ingest_at([e.clone()], t(RECEIVED)).await.unwrap();
            }
        });
        let (a, _) = block_on(all_before.state(&key(PHONE))).unwrap();
        let (b, _) = block_on(some_after.state(&key(PHONE))).unwrap();
        prop_assert_eq!(a.opt_all, b.opt_all);
        prop_assert_eq!(a.opt_marketing, b.opt_marketing);
        // Everything else is gone after the erasure that saw every event.
        prop_assert_eq!(a.last_inbound, None);
        prop_assert_eq!(a.last_delivered_at, None);
    }

    /// E5: no register ever holds an instant beyond the receive time plus the skew.
    #[test]
    fn e5_no_instant_beyond_receive_time_plus_skew(
        evs in prop::collection::vec((any::<bool>(), any::<u8>(), 0i64..10_000_000), 1..10),
        received in 0i64..5_000_000,
    ) {
        let guard = Guard::new(MemoryStore::new(), Policy::default()).unwrap();
        let limit = t(received).saturating_add(Policy::default().max_clock_skew);
        let mut keyed: Vec<KeyedEvent> = evs
            .iter()
            .map(|&(user, kind, at)| KeyedEvent::Contact {
                key: key(if user { USER } else { PHONE }),
                event: event(kind, at),
            })
            .collect();
        keyed.push(link(9_000_000));
        block_on(guard.ingest_at(keyed, t(received))).unwrap();
        for name in [PHONE, USER] {
            let (s, _) = block_on(guard.state(&key(name))).unwrap();
            for instant in [
                s.latest_event, s.last_inbound, s.last_delivered_at,
                s.opt_all.out_at, s.opt_all.in_at, s.opt_marketing.out_at, s.opt_marketing.in_at,
            ] {
                prop_assert!(instant.is_none_or(|i| i <= limit), "{:?} > {:?}", instant, limit);
            }
        }
    }
}
