//! `check` latency while another thread ingests webhook batches, against the same while
//! another thread applies bare `sled::Batch`es of the same size to the same tree.
//!
//! sled 0.34's `Tree::apply_batch` and its transactions hold a lock shared by every tree of
//! the process for the whole batch, and every read waits for it; `SledStore` applies a
//! journaled batch one key at a time instead (see the crate documentation). This bench shows
//! what that is worth to a service that checks while it ingests: percentiles of single
//! `Guard::check` calls, quiet, under the store's own ingest, and under bare `sled::Batch`es.
//!
//! `cargo bench -p waguard-sled --bench check_under_ingest` (`WAGUARD_BENCH_SIZES` picks the
//! contact counts, default 10000,100000,1000000; `WAGUARD_BENCH_SECONDS` the time per phase,
//! default 3; `WAGUARD_BENCH_RECORD_CACHE_MB` the store's contact record cache, default the
//! store's: with every contact cached, checks never reach sled, so `0` is what shows sled's
//! lock at work; `WAGUARD_BENCH_BATCH_THREADS` the threads that write each batch).
//!
//! The phases run in this order on purpose: once any `sled::Batch` has been applied in a
//! process, sled routes every later read through that shared lock's read side (it never
//! switches back), so the bare-batch phase comes last.

#![allow(missing_docs)]

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use waguard::*;
use waguard_sled::{SledOptions, SledStore};

use waguard_test_support::workload::{
    keys, now_or_never, other_typical_record, populate, sizes, t, typical_state,
};

/// Events (or writes) per batch of the background thread.
const BATCH: usize = 1000;

/// The store's options, with `WAGUARD_BENCH_RECORD_CACHE_MB` and
/// `WAGUARD_BENCH_BATCH_THREADS` if set.
fn options() -> SledOptions {
    let mut options = SledOptions::default();
    if let Ok(mb) = std::env::var("WAGUARD_BENCH_RECORD_CACHE_MB") {
        options = options.with_record_cache(mb.parse::<u64>().unwrap() << 20);
    }
    if let Ok(threads) = std::env::var("WAGUARD_BENCH_BATCH_THREADS") {
        options = options.with_batch_threads(threads.parse().unwrap());
    }
    options
}

fn phase_time() -> Duration {
    let seconds = std::env::var("WAGUARD_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    Duration::from_secs_f64(seconds)
}

/// Times single checks on random keys for `time`; returns each one's latency.
fn checks(guard: &Guard<SledStore>, keys: &[ContactKey], time: Duration) -> Vec<Duration> {
    let mut rng = fastrand::Rng::with_seed(7);
    let mut latencies = Vec::with_capacity(1 << 21);
    let start = Instant::now();
    while start.elapsed() < time {
        let key = &keys[rng.usize(..keys.len())];
        let began = Instant::now();
        let decision = now_or_never(guard.check(key, Outgoing::FreeForm, t(0))).unwrap();
        latencies.push(began.elapsed());
        std::hint::black_box(decision);
    }
    latencies
}

fn report(phase: &str, n: usize, mut latencies: Vec<Duration>, background_per_s: Option<f64>) {
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    let background = background_per_s.map_or("-".to_owned(), |r| format!("{r:.0}"));
    println!(
        "n={n} {phase:<22} checks {:>9}  p50 {:>9.2?}  p99 {:>9.2?}  p99.9 {:>9.2?}  max {:>9.2?}  background writes/s {background}",
        latencies.len(),
        at(0.5),
        at(0.99),
        at(0.999),
        latencies[latencies.len() - 1],
    );
}

/// Runs `background` in a loop on another thread (each call writes `BATCH` keys) while
/// timing checks; returns the latencies and the background's writes per second.
fn under(
    guard: &Guard<SledStore>,
    keys: &[ContactKey],
    time: Duration,
    mut background: impl FnMut() + Send,
) -> (Vec<Duration>, f64) {
    let stop = AtomicBool::new(false);
    let batches = AtomicU64::new(0);
    std::thread::scope(|scope| {
        let writer = scope.spawn(|| {
            let start = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                background();
                batches.fetch_add(1, Ordering::Relaxed);
            }
            start.elapsed()
        });
        // Let the writer get going.
        std::thread::sleep(Duration::from_millis(100));
        let latencies = checks(guard, keys, time);
        stop.store(true, Ordering::Relaxed);
        let elapsed = writer.join().unwrap();
        let rate =
            (batches.load(Ordering::Relaxed) as usize * BATCH) as f64 / elapsed.as_secs_f64();
        (latencies, rate)
    })
}

fn main() {
    let policy = Policy::default();
    let time = phase_time();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for n in sizes() {
        let dir = tempfile::tempdir().unwrap();
        let keys = keys(n);
        let record = typical_state(&keys[0], &policy).encode();
        let other = other_typical_record(&keys[0], &policy);
        let store = SledStore::open_with(dir.path().join("db"), options()).unwrap();
        populate(&store, &keys, &record);
        rt.block_on(store.flush()).unwrap();
        let tree = store.sled_db().open_tree("contacts").unwrap();
        let raw_keys: Vec<Vec<u8>> = keys.iter().map(ContactKey::storage_key).collect();
        let guard = Guard::new(store, policy.clone()).unwrap();

        report("quiet", n, checks(&guard, &keys, time), None);

        let mut rng = fastrand::Rng::with_seed(11);
        let mut at = 0i64;
        let ingest_rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (latencies, rate) = under(&guard, &keys, time, || {
            let events: Vec<KeyedEvent> = (0..BATCH)
                .map(|_| {
                    at += 1;
                    KeyedEvent::Contact {
                        key: keys[rng.usize(..n)].clone(),
                        event: Event::Inbound {
                            at: t(at),
                            text: None,
                            referral: false,
                        },
                    }
                })
                .collect();
            ingest_rt.block_on(guard.ingest(events)).unwrap();
        });
        report("store ingest", n, latencies, Some(rate));

        let mut flip = false;
        let (latencies, rate) = under(&guard, &keys, time, || {
            let mut batch = sled::Batch::default();
            flip = !flip;
            let value = if flip { &other } else { &record };
            for _ in 0..BATCH {
                batch.insert(&raw_keys[rng.usize(..n)][..], &value[..]);
            }
            tree.apply_batch(batch).unwrap();
        });
        report("bare sled::Batch", n, latencies, Some(rate));
    }
}
