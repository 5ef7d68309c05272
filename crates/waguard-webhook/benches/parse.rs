//! Parse + conversion throughput of a typical inbound text-message webhook (goal: ≥ 500 MB/s).
//!
//! Run: `cargo bench -p waguard-webhook -- --warm-up-time 1 --measurement-time 3`

// criterion's macros generate undocumented items.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use waguard_core::Timestamp;
use waguard_webhook::{parse, parse_signed, sign, Limits};

/// A typical inbound text message as Meta sends it (compact JSON, as on the wire), with the
/// 2026 business-scoped user id fields: about 0.8 KB.
const INBOUND: &str = r#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":"Sheena Nelson","username":"@sheena"},"wa_id":"16505551234","user_id":"US.13491208655302741918","parent_user_id":"US.ENT.11815799212886844830"}],"messages":[{"from":"16505551234","from_user_id":"US.13491208655302741918","from_parent_user_id":"US.ENT.11815799212886844830","id":"wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=","timestamp":"1749416383","type":"text","text":{"body":"Hello! Does the blue jacket from your summer collection come in another color, and could you ship it to Lisbon before the end of next week? Thanks a lot."},"context":{"from":"15550783881","id":"wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"}}]},"field":"messages"}]}]}"#;

fn bench(c: &mut Criterion) {
    let body = INBOUND.as_bytes();
    let received_at = Timestamp::from_unix_seconds(1_749_416_390).unwrap();
    let limits = Limits::default();
    let parsed = parse(body, received_at, &limits).unwrap();
    assert!(parsed.is_clean() && parsed.events.len() == 1);

    let mut group = c.benchmark_group("webhook");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function(format!("parse_inbound_text_{}B", body.len()), |b| {
        b.iter(|| parse(black_box(body), received_at, &limits).unwrap())
    });
    let header = sign(body, b"app-secret");
    group.bench_function(format!("parse_signed_inbound_text_{}B", body.len()), |b| {
        b.iter(|| {
            parse_signed(
                black_box(body),
                Some(&header),
                b"app-secret",
                received_at,
                &limits,
            )
            .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
