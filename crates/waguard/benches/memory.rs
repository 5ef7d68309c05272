//! MemoryStore benches: `Guard::check` on uniform random keys over N contacts, beside its
//! floor, a bare `std::collections::HashMap` lookup of the same keys, in the same run.
//!
//! `cargo bench -p waguard --bench memory` (`WAGUARD_BENCH_SIZES=10000,100000,1000000` to pick
//! the sizes).

// criterion_group! generates undocumented functions.
#![allow(missing_docs)]

// The allocator a service embedding waguard should pick (sled allocates on every write); the
// floors run in the same binary, with the same allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use waguard::*;

use waguard_test_support::workload::{
    keys, loaded_len, next_check, now_or_never, populate, sizes, t, typical_state,
};

fn bench_check(c: &mut Criterion) {
    let policy = Policy::default();
    let mut group = c.benchmark_group("memory");
    group
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for n in sizes() {
        let keys = keys(n);
        let record = typical_state(&keys[0], &policy).encode();
        eprintln!("typical contact record: {} bytes", record.len());
        let store = MemoryStore::new();
        let mut map: HashMap<ContactKey, Vec<u8>> = HashMap::with_capacity(n);
        populate(&store, &keys, &record);
        for key in &keys {
            map.insert(key.clone(), record.clone());
        }
        let guard = Guard::new(store, policy.clone()).unwrap();
        let mut rng = fastrand::Rng::with_seed(42);
        let order: Vec<usize> = (0..1 << 16).map(|_| rng.usize(..n)).collect();
        let now = t(0);

        group.bench_function(BenchmarkId::new("hashmap_get_floor", n), |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) & (order.len() - 1);
                black_box(map.get(black_box(&keys[order[i]])).map(Vec::len))
            })
        });
        group.bench_function(BenchmarkId::new("decode_decide_only", n), |b| {
            let mut i = 0;
            let sender = SenderState::default();
            b.iter(|| {
                i = (i + 1) & (order.len() - 1);
                let key = &keys[order[i]];
                let state = ConversationState::decode(black_box(&record)).unwrap();
                let subject = Subject {
                    key,
                    state: &state,
                    sender: &sender,
                };
                decide(subject, Outgoing::FreeForm, now, &policy)
            })
        });
        // The store's read alone (no decode, no decision), for the breakdown.
        group.bench_function(BenchmarkId::new("load_only", n), |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) & (order.len() - 1);
                loaded_len(guard.store(), black_box(&keys[order[i]]))
            })
        });
        // Latency rather than throughput: the next key's index depends on this lookup's
        // result (through a zero the compiler cannot see), so the processor cannot start the
        // next lookup's cache misses before this one is done. In the throughput loops it can,
        // and a bare lookup overlaps several of them where a check, with its decode and
        // decision in between, cannot. A service does one check per request: latency is its
        // measure.
        let zero = black_box(0usize);
        group.bench_function(BenchmarkId::new("hashmap_get_floor_latency", n), |b| {
            let mut i = 0;
            b.iter(|| {
                let len = map.get(&keys[order[i]]).map_or(0, Vec::len);
                i = (i + 1 + (len & zero)) & (order.len() - 1);
                len
            })
        });
        group.bench_function(BenchmarkId::new("check_latency", n), |b| {
            let mut i = 0;
            b.iter(|| {
                let decision =
                    now_or_never(guard.check(&keys[order[i]], Outgoing::FreeForm, now)).unwrap();
                let permits = decision.permits(Outgoing::FreeForm) as usize;
                i = (i + 1 + (permits & zero)) & (order.len() - 1);
                decision
            })
        });
        group.bench_function(BenchmarkId::new("check", n), |b| {
            b.iter(next_check(&guard, &keys, &order, now))
        });
        group.bench_function(BenchmarkId::new("reserve", n), |b| {
            let mut i = 0;
            let mut now = now;
            b.iter(|| {
                i = (i + 1) & (order.len() - 1);
                // Time moves on so that the pair budget refills.
                now = now.saturating_add(Duration::from_millis(1));
                now_or_never(guard.reserve(&keys[order[i]], Outgoing::FreeForm, None, now)).unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_check);
criterion_main!(benches);
