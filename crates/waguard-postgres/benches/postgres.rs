#![allow(missing_docs)]
//! PostgresStore benches, against the server at `WAGUARD_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`), in a schema of their own dropped afterwards.
//!
//! - `check`: `Guard::check` on uniformly random keys over N = 10 000 pre-populated contacts,
//!   versus the floor: a bare prepared primary-key `SELECT` of one contact record on the same
//!   server, over a connection of the same pool (both pay the pool check-out), side by side.
//! - `reserve` on random keys (two round trips: the read and the compare-and-swap write).
//! - batched ingest, in events per second.
//!
//! Besides criterion's report, a timing loop interleaving `check`, the store's read, the floor
//! and the same `SELECT` on a dedicated connection (taken out of the pool: same server, TLS and
//! settings, no check-out), each read on a random key of its own and the figures in rotating
//! order (a first read of a key costs the server more than a repeat), prints p50 and p99 of
//! each, with the same `SELECT` on a plain-TCP connection (`sslmode=disable`: what TLS costs
//! when the store's URL leads to TLS); then the same with a second instance (another pool, as
//! another process would have) running checks on the same tables at the same time.
//!
//! `cargo bench -p waguard-postgres --bench postgres`; with `WAGUARD_PG_BENCH_CHECK_ONLY=1`, the
//! check figures alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use waguard::{
    ContactKey, DeliveryStatus, Event, Guard, KeyedEvent, Outgoing, Policy, Store,
    TemplateCategory, Timestamp, WamidHash,
};
use waguard_postgres::{
    deadpool_postgres, tokio_postgres, Durability, PostgresOptions, PostgresStore,
};

const CONTACTS: usize = 10_000;
const BUSINESSES: usize = 10;
const INGEST_BATCH: usize = 1_000;

fn url() -> String {
    std::env::var("WAGUARD_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

fn key(n: usize) -> ContactKey {
    format!("{}/p:3361{:07}", 100_000_000 + n % BUSINESSES, n)
        .parse()
        .unwrap()
}

fn t(seconds: i64) -> Timestamp {
    Timestamp::from_unix_seconds(1_772_323_200 + seconds).unwrap()
}

fn now() -> Timestamp {
    t(3_600)
}

struct Fixture {
    rt: tokio::runtime::Runtime,
    guard: Guard<Arc<PostgresStore>>,
    store: Arc<PostgresStore>,
    floor_sql: String,
    keys: Vec<ContactKey>,
    /// (business, contact) text of each key, as the floor binds them.
    texts: Vec<(String, String)>,
    /// A connection taken out of the store's pool (same server, TLS and settings), used alone:
    /// the floor without any pool.
    direct: deadpool_postgres::ClientWrapper,
    direct_statement: tokio_postgres::Statement,
    /// A dedicated plain-TCP connection (`sslmode=disable`), to show what TLS costs per round
    /// trip when the store's connections use it.
    plain: tokio_postgres::Client,
    plain_statement: tokio_postgres::Statement,
}

impl Fixture {
    fn new() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let schema = format!("waguard_bench_{}", std::process::id());
        let store = rt
            .block_on(PostgresStore::connect_with(
                &url(),
                PostgresOptions::default()
                    .with_schema(&schema)
                    .with_pool_size(8),
            ))
            .unwrap_or_else(|e| {
                panic!("the bench needs PostgreSQL (scripts/ensure-postgres starts it): {e}")
            });
        let store = Arc::new(store);
        let guard = Guard::new(Arc::clone(&store), Policy::default()).unwrap();
        let keys: Vec<ContactKey> = (0..CONTACTS).map(key).collect();
        // Pre-populate: an inbound message and a delivered status per contact.
        rt.block_on(async {
            for chunk in keys.chunks(500) {
                let events: Vec<KeyedEvent> = chunk
                    .iter()
                    .enumerate()
                    .flat_map(|(i, k)| {
                        [
                            KeyedEvent::Contact {
                                key: k.clone(),
                                event: Event::Inbound {
                                    at: t(i as i64),
                                    text: None,
                                    referral: false,
                                },
                            },
                            KeyedEvent::Contact {
                                key: k.clone(),
                                event: Event::Status {
                                    at: t(i as i64 + 1),
                                    status: DeliveryStatus::Delivered,
                                    wamid: Some(WamidHash::of(&format!("wamid.pre.{i}"))),
                                },
                            },
                        ]
                    })
                    .collect();
                guard.ingest(events).await.unwrap();
            }
        });
        let texts = keys
            .iter()
            .map(|k| (k.business.as_str().to_owned(), k.contact.to_string()))
            .collect();
        let floor_sql =
            format!("SELECT state FROM \"{schema}\".contacts WHERE business = $1 AND contact = $2");
        // A service has concurrent calls: the pool holds several connections, as after a burst
        // of concurrent requests.
        rt.block_on(async {
            let held: Vec<_> = futures_util::future::join_all((0..8).map(|_| store.pool().get()))
                .await
                .into_iter()
                .map(Result::unwrap)
                .collect();
            drop(held);
        });
        let (direct, direct_statement) = rt.block_on(async {
            let direct = deadpool_postgres::Object::take(store.pool().get().await.unwrap());
            let statement = direct.prepare(&floor_sql).await.unwrap();
            (direct, statement)
        });
        let (plain, plain_statement) = rt.block_on(async {
            let mut config: tokio_postgres::Config = url()
                .parse()
                .expect("the bench reads WAGUARD_PG_URL with tokio-postgres for its plain floor");
            config.ssl_mode(tokio_postgres::config::SslMode::Disable);
            let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
            tokio::spawn(connection);
            let statement = client.prepare(&floor_sql).await.unwrap();
            (client, statement)
        });
        Fixture {
            rt,
            guard,
            floor_sql,
            direct,
            direct_statement,
            plain,
            plain_statement,
            store,
            keys,
            texts,
        }
    }

    async fn check(&self, i: usize) {
        let d = self
            .guard
            .check(&self.keys[i], Outgoing::FreeForm, now())
            .await
            .unwrap();
        std::hint::black_box(d);
    }

    /// The store's read alone (the same statement as `check`, without the guard's decoding and
    /// decision).
    async fn load(&self, i: usize) {
        let mut len = 0;
        self.store
            .load_with(&self.keys[i], &mut |c, s| {
                len = c.map_or(0, <[u8]>::len) + s.map_or(0, <[u8]>::len)
            })
            .await
            .unwrap();
        std::hint::black_box(len);
    }

    async fn floor(&self, i: usize) {
        let (b, c) = &self.texts[i];
        let client = self.store.pool().get().await.unwrap();
        let statement = client.prepare_cached(&self.floor_sql).await.unwrap();
        let row = client
            .query_opt(&statement, &[&b.as_str(), &c.as_str()])
            .await
            .unwrap();
        std::hint::black_box(row.map(|r| r.get::<_, Vec<u8>>(0)));
    }
}

impl Fixture {
    /// The floor on a dedicated plain-TCP connection.
    async fn plain(&self, i: usize) {
        let (b, c) = &self.texts[i];
        let row = self
            .plain
            .query_opt(&self.plain_statement, &[&b.as_str(), &c.as_str()])
            .await
            .unwrap();
        std::hint::black_box(row.map(|r| r.get::<_, Vec<u8>>(0)));
    }

    /// The floor on a dedicated connection: no pool check-out.
    async fn direct(&self, i: usize) {
        let (b, c) = &self.texts[i];
        let row = self
            .direct
            .query_opt(&self.direct_statement, &[&b.as_str(), &c.as_str()])
            .await
            .unwrap();
        std::hint::black_box(row.map(|r| r.get::<_, Vec<u8>>(0)));
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn summary(name: &str, mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort_unstable();
    let (p50, p99) = (percentile(&samples, 0.50), percentile(&samples, 0.99));
    println!(
        "  {name:<28} p50 {:>7.1} us   p99 {:>7.1} us   ({} samples)",
        p50.as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6,
        samples.len()
    );
    (p50, p99)
}

/// Interleaved timing loop: check, floors and store read in turns, each read on a random key.
fn percentiles(fx: &Fixture) {
    const N: usize = 20_000;
    let (check, load, floor, direct, plain) = fx.rt.block_on(async {
        for i in 0..2_000 {
            fx.check(i % CONTACTS).await;
            fx.load(i % CONTACTS).await;
            fx.floor(i % CONTACTS).await;
            fx.direct(i % CONTACTS).await;
            fx.plain(i % CONTACTS).await;
        }
        // Each read takes a key of its own, and the figures take turns in a rotating order:
        // the first read of a key costs the server more than a repeat, so reading one key
        // five times in a row would favour the later reads.
        let mut samples: [Vec<Duration>; 5] = std::array::from_fn(|_| Vec::with_capacity(N));
        for n in 0..N {
            for k in 0..5 {
                let which = (n + k) % 5;
                let i = fastrand::usize(..CONTACTS);
                let start = Instant::now();
                match which {
                    0 => fx.check(i).await,
                    1 => fx.floor(i).await,
                    2 => fx.load(i).await,
                    3 => fx.direct(i).await,
                    _ => fx.plain(i).await,
                }
                samples[which].push(start.elapsed());
            }
        }
        let [check, floor, load, direct, plain] = samples;
        (check, load, floor, direct, plain)
    });
    println!("\nPostgresStore, one instance, one task, {N} interleaved samples each:");
    let (c50, c99) = summary("check (Guard::check)", check);
    summary("store read (load_with)", load);
    let (f50, f99) = summary("floor (prepared PK SELECT)", floor);
    let (d50, d99) = summary("floor, dedicated connection", direct);
    summary("floor, dedicated, plain TCP", plain);
    println!(
        "  ratio check/floor          p50 {:.2}x      p99 {:.2}x",
        c50.as_secs_f64() / f50.as_secs_f64(),
        c99.as_secs_f64() / f99.as_secs_f64()
    );
    println!(
        "  ratio check/dedicated      p50 {:.2}x      p99 {:.2}x",
        c50.as_secs_f64() / d50.as_secs_f64(),
        c99.as_secs_f64() / d99.as_secs_f64()
    );
    if std::env::var_os("WAGUARD_PG_BENCH_CHECK_ONLY").is_some() {
        return;
    }

    // reserve: read + compare-and-swap write (two round trips) on random keys, at instants
    // far apart so the pair budget never refuses.
    let reserve = fx.rt.block_on(async {
        let mut samples = Vec::with_capacity(5_000);
        for n in 0..5_000i64 {
            let i = fastrand::usize(..CONTACTS);
            let start = Instant::now();
            let d = fx
                .guard
                .reserve(
                    &fx.keys[i],
                    Outgoing::Template(TemplateCategory::Utility),
                    None,
                    t(100_000 + n * 60),
                )
                .await
                .unwrap();
            samples.push(start.elapsed());
            std::hint::black_box(d);
        }
        samples
    });
    summary("reserve (2 round trips)", reserve);

    // The same in the deferred mode (single-key writes commit without waiting for the WAL
    // flush).
    let deferred = fx.rt.block_on(async {
        let store = PostgresStore::connect_with(
            &url(),
            PostgresOptions::default()
                .with_schema(fx.store.schema())
                .with_pool_size(8)
                .with_durability(Durability::Deferred),
        )
        .await
        .unwrap();
        let guard = Guard::new(store, Policy::default()).unwrap();
        let mut samples = Vec::with_capacity(5_000);
        for n in 0..5_000i64 {
            let i = fastrand::usize(..CONTACTS);
            let start = Instant::now();
            let d = guard
                .reserve(
                    &fx.keys[i],
                    Outgoing::Template(TemplateCategory::Utility),
                    None,
                    t(1_000_000 + n * 60),
                )
                .await
                .unwrap();
            samples.push(start.elapsed());
            std::hint::black_box(d);
        }
        samples
    });
    summary("reserve, Durability::Deferred", deferred);

    // A second instance (its own pool, as another process has) checking the same tables at the
    // same time: what does it add to the first one's latency?
    let second = fx.rt.block_on(async {
        PostgresStore::connect_with(
            &url(),
            PostgresOptions::default()
                .with_schema(fx.store.schema())
                .with_pool_size(8),
        )
        .await
        .unwrap()
    });
    let second = Guard::new(second, Policy::default()).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let background = {
        let stop = Arc::clone(&stop);
        let keys = fx.keys.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let k = &keys[fastrand::usize(..CONTACTS)];
                    std::hint::black_box(second.check(k, Outgoing::FreeForm, now()).await.unwrap());
                    n += 1;
                }
                n
            })
        })
    };
    let (shared, elapsed) = fx.rt.block_on(async {
        let start = Instant::now();
        let mut samples = Vec::with_capacity(N / 2);
        for _ in 0..N / 2 {
            let i = fastrand::usize(..CONTACTS);
            let start = Instant::now();
            fx.check(i).await;
            samples.push(start.elapsed());
        }
        (samples, start.elapsed())
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let other = background.join().unwrap();
    println!("With a second instance checking the same tables at the same time:");
    let (s50, s99) = summary("check, first instance", shared);
    println!(
        "  ratio to one instance      p50 {:.2}x      p99 {:.2}x   (second instance: {:.0} checks/s)",
        s50.as_secs_f64() / c50.as_secs_f64(),
        s99.as_secs_f64() / c99.as_secs_f64(),
        other as f64 / elapsed.as_secs_f64()
    );
    let _ = f99;
}

/// Batched ingest: batches of INGEST_BATCH events (an inbound message and a delivered status
/// for each of INGEST_BATCH / 2 random keys), one transaction each.
fn ingest_throughput(fx: &Fixture) {
    let mut at = 10_000i64;
    let mut batch = || {
        let mut events = Vec::with_capacity(INGEST_BATCH);
        for _ in 0..INGEST_BATCH / 2 {
            at += 1;
            let k = &fx.keys[fastrand::usize(..CONTACTS)];
            events.push(KeyedEvent::Contact {
                key: k.clone(),
                event: Event::Inbound {
                    at: t(at),
                    text: None,
                    referral: false,
                },
            });
            events.push(KeyedEvent::Contact {
                key: k.clone(),
                event: Event::Status {
                    at: t(at),
                    status: DeliveryStatus::Delivered,
                    wamid: Some(WamidHash::of(&format!("wamid.bench.{at}"))),
                },
            });
        }
        events
    };
    let batches: Vec<_> = (0..40).map(|_| batch()).collect();
    let events: usize = batches.iter().map(Vec::len).sum();
    let elapsed = fx.rt.block_on(async {
        let start = Instant::now();
        for b in batches {
            fx.guard.ingest(b).await.unwrap();
        }
        start.elapsed()
    });
    println!(
        "Batched ingest, one task, batches of {INGEST_BATCH} events: {events} events in {elapsed:.2?}: {:.0} events/s",
        events as f64 / elapsed.as_secs_f64()
    );
    // Four tasks at once (four webhook receivers).
    let batches: Vec<Vec<_>> = (0..4).map(|_| (0..10).map(|_| batch()).collect()).collect();
    let events: usize = batches.iter().flatten().map(Vec::len).sum();
    let elapsed = fx.rt.block_on(async {
        let start = Instant::now();
        let handles: Vec<_> = batches
            .into_iter()
            .map(|bs| {
                let guard = fx.guard.clone();
                tokio::spawn(async move {
                    for b in bs {
                        guard.ingest(b).await.unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
        start.elapsed()
    });
    println!(
        "Batched ingest, four tasks, batches of {INGEST_BATCH} events: {events} events in {elapsed:.2?}: {:.0} events/s\n",
        events as f64 / elapsed.as_secs_f64()
    );
}

fn benches(c: &mut Criterion) {
    let fx = Fixture::new();
    percentiles(&fx);
    if std::env::var_os("WAGUARD_PG_BENCH_CHECK_ONLY").is_some() {
        // The check figures alone (`WAGUARD_PG_BENCH_CHECK_ONLY=1`): no writes, no criterion.
        fx.rt.block_on(fx.store.drop_schema()).unwrap();
        return;
    }
    ingest_throughput(&fx);

    let mut group = c.benchmark_group("postgres");
    group.sample_size(50);
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("check", |b| {
        b.to_async(&fx.rt)
            .iter(|| fx.check(fastrand::usize(..CONTACTS)))
    });
    group.bench_function("floor_pk_select", |b| {
        b.to_async(&fx.rt)
            .iter(|| fx.floor(fastrand::usize(..CONTACTS)))
    });
    group.throughput(Throughput::Elements(INGEST_BATCH as u64));
    let mut at = 1_000_000i64;
    group.bench_with_input(
        BenchmarkId::new("ingest_batch", INGEST_BATCH),
        &INGEST_BATCH,
        |b, &size| {
            b.to_async(&fx.rt).iter(|| {
                let events: Vec<KeyedEvent> = (0..size)
                    .map(|_| {
                        at += 1;
                        KeyedEvent::Contact {
                            key: fx.keys[fastrand::usize(..CONTACTS)].clone(),
                            event: Event::Inbound {
                                at: t(at),
                                text: None,
                                referral: false,
                            },
                        }
                    })
                    .collect();
                let guard = fx.guard.clone();
                async move { guard.ingest(events).await.unwrap() }
            })
        },
    );
    group.finish();
    fx.rt.block_on(fx.store.drop_schema()).unwrap();
}

criterion_group!(postgres, benches);
criterion_main!(postgres);
