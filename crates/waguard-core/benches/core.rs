//! Micro benchmarks of the pure core: `decide` on a warm state, `apply` of one event, and the
//! stored form. Run with `cargo bench -p waguard-core`.

// criterion's macros generate undocumented items.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use waguard_core::*;

fn t(offset: i64) -> Timestamp {
    Timestamp::from_unix_seconds(1_772_323_200 + offset).unwrap()
}

/// A typical contact: an inbound, a template before it, two delivered statuses and a
/// reservation.
fn typical() -> (ContactKey, ConversationState, SenderState, Policy) {
    let policy = Policy::default();
    let key: ContactKey = "100000001/p:33612345678".parse().unwrap();
    let mut state = ConversationState::default();
    let events = [
        Event::TemplateSent { at: t(-3600) },
        Event::Inbound {
            at: t(0),
            text: Some("hello".into()),
            referral: false,
        },
        Event::Status {
            at: t(60),
            status: DeliveryStatus::Delivered,
            wamid: Some(WamidHash::of("wamid.1")),
        },
        Event::Status {
            at: t(120),
            status: DeliveryStatus::Read,
            wamid: Some(WamidHash::of("wamid.2")),
        },
    ];
    for e in &events {
        state.apply(e, &policy);
    }
    let sender = SenderState::default();
    reserve(
        &key,
        &mut state,
        &sender,
        Outgoing::FreeForm,
        None,
        t(180),
        &policy,
    );
    (key, state, sender, policy)
}

fn benches(c: &mut Criterion) {
    let (key, state, sender, policy) = typical();
    println!("typical encoded record: {} bytes", state.encode().len());
    let subject = Subject {
        key: &key,
        state: &state,
        sender: &sender,
    };
    c.bench_function("decide_free_form_warm", |b| {
        b.iter(|| {
            decide(
                black_box(subject),
                black_box(Outgoing::FreeForm),
                black_box(t(600)),
                &policy,
            )
        })
    });
    c.bench_function("decide_marketing_template_warm", |b| {
        b.iter(|| {
            decide(
                black_box(subject),
                black_box(Outgoing::Template(TemplateCategory::Marketing)),
                black_box(t(600)),
                &policy,
            )
        })
    });
    let inbound = Event::Inbound {
        at: t(700),
        text: Some("Thanks, when is it arriving?".into()),
        referral: false,
    };
    c.bench_function("apply_inbound_text", |b| {
        b.iter_batched_ref(
            || state.clone(),
            |s| s.apply(black_box(&inbound), &policy),
            criterion::BatchSize::SmallInput,
        )
    });
    let delivered = Event::Status {
        at: t(700),
        status: DeliveryStatus::Delivered,
        wamid: Some(WamidHash::of("wamid.3")),
    };
    c.bench_function("apply_delivered_status", |b| {
        b.iter_batched_ref(
            || state.clone(),
            |s| s.apply(black_box(&delivered), &policy),
            criterion::BatchSize::SmallInput,
        )
    });
    c.bench_function("encode_typical", |b| b.iter(|| black_box(&state).encode()));
    let bytes = state.encode();
    c.bench_function("decode_typical", |b| {
        b.iter(|| ConversationState::decode(black_box(&bytes)).unwrap())
    });
    c.bench_function("encode_decode_typical", |b| {
        b.iter(|| ConversationState::decode(&black_box(&state).encode()).unwrap())
    });
}

criterion_group!(core, benches);
criterion_main!(core);
