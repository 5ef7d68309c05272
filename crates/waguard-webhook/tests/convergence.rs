//! Rule H4 with E1: Meta delivers the same payloads twice, late and out of order; applying the
//! events of the fixtures in any order, with any duplicates, gives the same core state.

use std::collections::BTreeMap;

use proptest::prelude::*;
use waguard_core::{
    BusinessId, ContactKey, ConversationState, KeyedEvent, Policy, SenderState, Timestamp,
};
use waguard_webhook::{parse, Limits};

fn payloads() -> Vec<Vec<KeyedEvent>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|path| {
            let body = std::fs::read(path).unwrap();
            let received_at = Timestamp::from_unix_seconds(1_749_500_000).unwrap();
            parse(&body, received_at, &Limits::default())
                .unwrap()
                .events
        })
        .collect()
}

#[derive(Debug, Default, PartialEq)]
struct World {
    contacts: BTreeMap<ContactKey, ConversationState>,
    senders: BTreeMap<BusinessId, SenderState>,
}

impl World {
    fn apply(&mut self, event: &KeyedEvent, policy: &Policy) {
        match event {
            KeyedEvent::Contact { key, event } => {
                self.contacts
                    .entry(key.clone())
                    .or_default()
                    .apply(event, policy);
                if let Some(sender) = event.sender_event() {
                    self.senders
                        .entry(key.business.clone())
                        .or_default()
                        .apply(&sender);
                }
            }
            KeyedEvent::Sender { business, event } => {
                self.senders
                    .entry(business.clone())
                    .or_default()
                    .apply(event);
            }
            // K5 links and K6 moves cross keys: the guard's own tests cover their convergence.
            _ => {}
        }
    }
}

fn in_order(payloads: &[Vec<KeyedEvent>], policy: &Policy) -> World {
    let mut world = World::default();
    for event in payloads.iter().flatten() {
        world.apply(event, policy);
    }
    world
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whole payloads redelivered and reordered (what Meta's retries do).
    #[test]
    fn h4_e1_redelivered_reordered_payloads_converge(
        extra in prop::collection::vec(any::<prop::sample::Index>(), 0..30),
        seed in any::<u64>(),
    ) {
        let policy = Policy::default();
        let payloads = payloads();
        let expected = in_order(&payloads, &policy);
        let mut order: Vec<usize> = (0..payloads.len()).collect();
        order.extend(extra.iter().map(|i| i.index(payloads.len())));
        shuffle(&mut order, seed);
        let mut world = World::default();
        for i in order {
            for event in &payloads[i] {
                world.apply(event, &policy);
            }
        }
        prop_assert_eq!(world, expected);
    }

    /// Single events duplicated and shuffled across payloads.
    #[test]
    fn h4_e1_shuffled_duplicated_events_converge(
        extra in prop::collection::vec(any::<prop::sample::Index>(), 0..60),
        seed in any::<u64>(),
    ) {
        let policy = Policy::default();
        let payloads = payloads();
        let expected = in_order(&payloads, &policy);
        let mut events: Vec<&KeyedEvent> = payloads.iter().flatten().collect();
        let n = events.len();
        let dups: Vec<&KeyedEvent> = extra.iter().map(|i| events[i.index(n)]).collect();
        events.extend(dups);
        let mut order: Vec<usize> = (0..events.len()).collect();
        shuffle(&mut order, seed);
        let mut world = World::default();
        for i in order {
            world.apply(events[i], &policy);
        }
        prop_assert_eq!(world, expected);
    }
}

/// Fisher-Yates with a small xorshift generator, so proptest shrinks the seed, not a vector.
fn shuffle(v: &mut [usize], mut seed: u64) {
    seed |= 1;
    for i in (1..v.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let j = (seed % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}
