//! What the store benches share: the keys, the typical record, the sizes, and a poll for
//! futures that never wait. Used by the benches of `waguard` (`benches/memory.rs`) and of
//! `waguard-sled` (`benches/sled.rs` and the others), so that both measure the same workload.

use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Wake, Waker};

use waguard::*;

/// Polls a future that never waits (the in-process stores' reads do not) to completion,
/// without a runtime, so that no executor's cost is measured.
pub fn now_or_never<F: Future>(future: F) -> F::Output {
    struct NoopWake;
    impl Wake for NoopWake {
        fn wake(self: Arc<Self>) {}
    }
    // One waker for the whole run: making an `Arc`-backed waker per call cost about 20 ns
    // (allocation, reference counts, free), which the floors beside these benches do not pay.
    // (`Waker::noop` needs Rust 1.85, above the workspace's minimum.)
    static WAKER: OnceLock<Waker> = OnceLock::new();
    let waker = WAKER.get_or_init(|| Waker::from(Arc::new(NoopWake)));
    let mut future = pin!(future);
    let mut cx = Context::from_waker(waker);
    match future.as_mut().poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a store future waited"),
    }
}

/// The body of the `check` benches: each call checks a free-form message to the next key of
/// `order` (walked round and round; its length a power of two), polled once.
pub fn next_check<'a, S: Store>(
    guard: &'a Guard<S>,
    keys: &'a [ContactKey],
    order: &'a [usize],
    now: Timestamp,
) -> impl FnMut() -> Decision + 'a {
    let mut i = 0;
    move || {
        i = (i + 1) & (order.len() - 1);
        let key = std::hint::black_box(&keys[order[i]]);
        now_or_never(guard.check(key, Outgoing::FreeForm, now)).unwrap()
    }
}

/// The store's read alone, without decode or decision: the lengths of the contact and sender
/// records of `key` (stores whose reads never wait; `load_only` in both store benches).
pub fn loaded_len<S: Store>(store: &S, key: &ContactKey) -> usize {
    let mut len = 0;
    store
        .load_now(key, &mut |c, s| {
            len = c.map_or(0, <[u8]>::len) + s.map_or(0, <[u8]>::len)
        })
        .expect("a store whose reads never wait")
        .unwrap();
    len
}

/// An instant `seconds` after the benches' epoch (2026-03-01).
pub fn t(seconds: i64) -> Timestamp {
    Timestamp::from_unix_seconds(1_772_323_200 + seconds).unwrap()
}

/// A typical contact: wrote two hours ago, got a template earlier, one delivered message, one
/// reservation.
pub fn typical_state(key: &ContactKey, policy: &Policy) -> ConversationState {
    let mut state = ConversationState::default();
    state.apply(&Event::TemplateSent { at: t(-3 * 3600) }, policy);
    state.apply(
        &Event::Status {
            at: t(-3 * 3600 + 30),
            status: DeliveryStatus::Delivered,
            wamid: Some(WamidHash::of(
                "wamid.HBgLMzM2MTIzNDU2NzgVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA",
            )),
        },
        policy,
    );
    state.apply(
        &Event::Inbound {
            at: t(-2 * 3600),
            text: Some("hello".into()),
            referral: false,
        },
        policy,
    );
    let sender = SenderState::default();
    reserve(
        key,
        &mut state,
        &sender,
        Outgoing::FreeForm,
        None,
        t(-3600),
        policy,
    );
    state
}

/// The store sizes to measure: `WAGUARD_BENCH_SIZES` (comma-separated), default 1e4, 1e5, 1e6.
pub fn sizes() -> Vec<usize> {
    std::env::var("WAGUARD_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000, 1_000_000])
}

/// The typical record with one more inbound message, a minute ago: a second valid value for
/// benches whose writes must change the stored bytes (sled skips a write of equal bytes).
pub fn other_typical_record(key: &ContactKey, policy: &Policy) -> Vec<u8> {
    let mut state = typical_state(key, policy);
    state.apply(
        &Event::Inbound {
            at: t(-60),
            text: None,
            referral: false,
        },
        policy,
    );
    state.encode()
}

/// Writes `record` for every key through the store's batches of 10 000 (stores whose
/// writes never wait).
pub fn populate<S: Store>(store: &S, keys: &[ContactKey], record: &[u8]) {
    for chunk in keys.chunks(10_000) {
        let mut batch = Batch::new();
        for key in chunk {
            let record = record.to_vec();
            batch.contact(key.clone(), move |_, _| {
                Ok(UpdateAction::Write(record.clone()))
            });
        }
        now_or_never(store.apply_batch(&mut batch)).unwrap();
    }
}

/// `n` distinct phone-number contacts of one business number.
pub fn keys(n: usize) -> Vec<ContactKey> {
    (0..n)
        .map(|i| {
            format!("100000001/p:336{:08}", 10_000_000 + i)
                .parse()
                .unwrap()
        })
        .collect()
}
