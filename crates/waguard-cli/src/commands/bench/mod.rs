//! `waguard bench`: every figure beside its floor, measured in one run on the same data.
//!
//! (Over 700 lines on purpose: `measure_size` is the one ordered sequence of a run, each
//! figure beside its floor on the same data set; split, the order and the sharing of that data
//! would be spread over files. Separate concerns live in `counting`, `msglog` and `workload`.)
//!
//! Keys are drawn uniformly at random over the generated contacts. Each store figure is
//! measured next to the floor of its backend (a bare map lookup, a bare sled get, a bare
//! prepared primary-key SELECT), and the message-log baselines answer from the same history
//! waguard was fed; their answers are compared with waguard's and the run fails if they differ.

mod counting;
mod msglog;
mod workload;

use std::collections::HashMap;
use std::hint::black_box;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;
use waguard::{
    decide, Clock, ContactKey, ConversationState, Guard, KeyedEvent, MemoryStore, Outgoing, Policy,
    SenderState, Store, Subject,
};

use workload::{Contact, Rng};

/// Flags of `waguard bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// A short run (under a minute on 2 cores): 10 000 contacts, fewer samples.
    #[arg(long)]
    quick: bool,
    /// Print one JSON object per figure instead of a table.
    #[arg(long)]
    json: bool,
    /// Contact counts to measure (repeatable); default 10 000 with --quick, else 10 000,
    /// 100 000 and 1 000 000.
    #[arg(long = "contacts", value_name = "N")]
    contacts: Vec<usize>,
    /// The PostgreSQL server for the PostgreSQL figures and the message-log baselines.
    #[arg(
        long,
        value_name = "URL",
        env = "WAGUARD_PG_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    postgres: String,
    /// Skip the PostgreSQL figures and baselines.
    #[arg(long)]
    no_postgres: bool,
    /// Only the figures of the portfolio's hot record and the template registry: counting
    /// reservations per second on one portfolio and the check of a named template (sled and
    /// PostgreSQL).
    #[arg(long)]
    counting: bool,
}

/// One measured figure.
#[derive(Serialize, Debug, Clone)]
pub struct Figure {
    /// What was measured.
    pub name: String,
    /// The value.
    pub value: f64,
    /// Its unit.
    pub unit: &'static str,
    /// Contacts in the data set.
    pub contacts: usize,
    /// How it was measured.
    pub note: String,
}

/// Samples per figure.
#[derive(Clone, Copy)]
struct Samples {
    /// Lookups for per-operation figures of in-process stores.
    lookups: usize,
    /// Round trips for PostgreSQL percentiles.
    round_trips: usize,
    /// Events ingested one by one, durably.
    durable_events: usize,
}

/// Runs the benchmark and prints the figures.
pub async fn run(args: BenchArgs) -> Result<ExitCode> {
    let sizes = if !args.contacts.is_empty() {
        args.contacts.clone()
    } else if args.quick {
        vec![10_000]
    } else {
        vec![10_000, 100_000, 1_000_000]
    };
    let samples = if args.quick {
        Samples {
            lookups: 200_000,
            round_trips: 3_000,
            durable_events: 300,
        }
    } else {
        Samples {
            lookups: 1_000_000,
            round_trips: 20_000,
            durable_events: 2_000,
        }
    };
    let mut figures = Vec::new();
    let stdout = std::io::stdout();
    for &n in &sizes {
        let before = figures.len();
        if args.counting {
            counting_figures(n, samples, &args, &mut figures).await?;
        } else {
            measure_size(n, samples, &args, &mut figures).await?;
        }
        let mut out = stdout.lock();
        for f in &figures[before..] {
            if args.json {
                serde_json::to_writer(&mut out, f)?;
                writeln!(out)?;
            } else {
                writeln!(
                    out,
                    "{:<40} {:>14.3} {:<8} n={:<8} {}",
                    f.name, f.value, f.unit, f.contacts, f.note
                )?;
            }
        }
        out.flush()?;
    }
    Ok(ExitCode::SUCCESS)
}

fn figure(
    figures: &mut Vec<Figure>,
    name: &str,
    value: f64,
    unit: &'static str,
    contacts: usize,
    note: impl Into<String>,
) -> f64 {
    figures.push(Figure {
        name: name.to_owned(),
        value,
        unit,
        contacts,
        note: note.into(),
    });
    value
}

/// Uniform random key indices.
fn sample_indices(n: usize, count: usize, seed: u64) -> Vec<usize> {
    let mut rng = Rng::new(seed);
    (0..count).map(|_| rng.below(n as u64) as usize).collect()
}

/// Nanoseconds per call of `f` over `indices`.
fn ns_per_op(indices: &[usize], mut f: impl FnMut(usize)) -> f64 {
    let started = Instant::now();
    for &i in indices {
        f(i);
    }
    started.elapsed().as_nanos() as f64 / indices.len() as f64
}

/// Nanoseconds per call of `check` and of `floor` over the same `indices`, measured in
/// alternating chunks so that both see the same machine load (a busy neighbour or a cache
/// state slows both alike instead of whichever ran second).
async fn interleaved_ns<F, Fut>(
    indices: &[usize],
    mut check: F,
    mut floor: impl FnMut(usize),
) -> Result<(f64, f64)>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let (mut checks, mut floors) = (Duration::ZERO, Duration::ZERO);
    for chunk in indices.chunks(10_000) {
        let started = Instant::now();
        for &i in chunk {
            floor(i);
        }
        floors += started.elapsed();
        let started = Instant::now();
        for &i in chunk {
            check(i).await?;
        }
        checks += started.elapsed();
    }
    let n = indices.len() as f64;
    Ok((checks.as_nanos() as f64 / n, floors.as_nanos() as f64 / n))
}

/// The p-th percentile (0..=100) of durations, in microseconds.
/// The `p`th percentile (in percent: 50.0 is the median) of sorted samples, in microseconds.
pub(crate) fn percentile_us(sorted: &[Duration], p: f64) -> f64 {
    assert!(
        (1.0..=100.0).contains(&p),
        "a percentile is given in percent (50.0 for the median), not {p}"
    );
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[idx].as_nanos() as f64 / 1000.0
}

async fn ingest_all<S: Store>(
    guard: &Guard<S>,
    contacts: &[Contact],
    batch: usize,
) -> Result<(usize, Duration)> {
    let started = Instant::now();
    let mut total = 0;
    let mut pending: Vec<KeyedEvent> = Vec::with_capacity(batch + 64);
    for c in contacts {
        pending.extend(workload::events(c));
        if pending.len() >= batch {
            total += pending.len();
            guard.ingest(std::mem::take(&mut pending)).await?;
        }
    }
    total += pending.len();
    if !pending.is_empty() {
        guard.ingest(pending).await?;
    }
    guard.store().flush().await?;
    Ok((total, started.elapsed()))
}

/// S1: how many sender records a busy number writes: 10 000 delivered statuses of one business
/// number, each in its own ingest call (one webhook per status, the worst case), the guard's
/// clock 1 ms further at each. Returns (sender records written, statuses).
async fn sender_writes(keys: &[ContactKey], start: waguard::Timestamp) -> Result<(usize, usize)> {
    let clock = Arc::new(waguard::ManualClock::new(start));
    let guard = Guard::with_clock(MemoryStore::new(), Policy::default(), clock.clone())?;
    let statuses = 10_000;
    let mut written = 0;
    for i in 0..statuses {
        let key = &keys[i % keys.len()];
        let at = clock.now();
        let event = waguard::Event::Status {
            at,
            status: waguard::DeliveryStatus::Delivered,
            wamid: None,
        };
        let report = guard
            .ingest([KeyedEvent::Contact {
                key: ContactKey::new(keys[0].business.clone(), key.contact.clone()),
                event,
            }])
            .await?;
        written += report.senders_written;
        clock.advance(Duration::from_millis(1));
    }
    Ok((written, statuses))
}

/// Rules L3 and T1: counting reservations on one portfolio, and the check of a named template,
/// on sled and PostgreSQL.
async fn counting_figures(
    n: usize,
    samples: Samples,
    args: &BenchArgs,
    figures: &mut Vec<Figure>,
) -> Result<()> {
    let counting_dir = tempfile::tempdir().context("temporary directory for sled")?;
    let counting_store = waguard_sled::SledStore::open(counting_dir.path().join("db"))?;
    let counting_store = Arc::new(counting_store);
    counting::measure(
        counting_store.clone(),
        "sled",
        samples.durable_events / 4 + 25,
        n,
        figures,
    )
    .await?;
    counting::named_template_check(counting_store, "sled", samples.round_trips, n, figures).await?;
    if !args.no_postgres {
        let schema = format!("waguard_bench_counting_{}", std::process::id());
        let options = waguard_postgres::PostgresOptions::default().with_schema(schema);
        let store = waguard_postgres::PostgresStore::connect_with(&args.postgres, options).await?;
        let store = Arc::new(store);
        let measured = async {
            counting::measure(store.clone(), "postgres", 250, n, figures).await?;
            counting::named_template_check(
                store.clone(),
                "postgres",
                samples.round_trips,
                n,
                figures,
            )
            .await
        }
        .await;
        store.drop_schema().await?;
        measured?;
    }

    Ok(())
}

async fn measure_size(
    n: usize,
    samples: Samples,
    args: &BenchArgs,
    figures: &mut Vec<Figure>,
) -> Result<()> {
    let policy = Policy::default();
    let now = workload::now();
    eprintln!("waguard bench: generating {n} contacts");
    let contacts = workload::contacts(n, 42 + n as u64);
    let keys: Vec<ContactKey> = contacts.iter().map(|c| c.key.clone()).collect();
    let indices = sample_indices(n, samples.lookups, 7);

    // ---- pure decide ----
    let mut states: Vec<ConversationState> = Vec::with_capacity(n);
    for c in &contacts {
        let mut s = ConversationState::default();
        for e in workload::events(c) {
            if let KeyedEvent::Contact { event, .. } = e {
                s.apply(&event, &policy);
            }
        }
        states.push(s);
    }
    let sender = SenderState::default();
    let decide_ns = ns_per_op(&indices, |i| {
        black_box(decide(
            Subject {
                key: &keys[i],
                state: &states[i],
                sender: &sender,
            },
            black_box(Outgoing::FreeForm),
            now,
            &policy,
        ));
    });
    figure(
        figures,
        "decide_ns",
        decide_ns,
        "ns",
        n,
        "pure decide on a decoded state, random keys",
    );
    let mut sizes: Vec<usize> = states.iter().map(|s| s.encode().len()).collect();
    sizes.sort_unstable();
    figure(
        figures,
        "record_bytes_typical",
        sizes[sizes.len() / 2] as f64,
        "bytes",
        n,
        format!(
            "median encoded contact record (max {})",
            sizes[sizes.len() - 1]
        ),
    );

    // ---- S1: sender-record writes per 1000 statuses ----
    let (writes, statuses) = sender_writes(&keys, now).await?;
    figure(
        figures,
        "sender_writes_per_1000_statuses",
        writes as f64 * 1000.0 / statuses as f64,
        "writes",
        n,
        format!(
            "{statuses} delivered statuses of one business number, one per ingest call, 1 ms apart (goal <= 10)"
        ),
    );

    // ---- memory ----
    eprintln!("waguard bench: MemoryStore");
    let memory = Guard::new(MemoryStore::new(), policy.clone())?;
    ingest_all(&memory, &contacts, 1000).await?;
    let map: HashMap<ContactKey, Vec<u8>> = keys
        .iter()
        .cloned()
        .zip(states.iter().map(|s| s.encode()))
        .collect();
    let (memory_check, memory_floor) = interleaved_ns(
        &indices,
        |i| {
            let memory = &memory;
            let key = &keys[i];
            async move {
                black_box(memory.check(key, Outgoing::FreeForm, now).await?);
                Ok(())
            }
        },
        |i| {
            black_box(map.get(black_box(&keys[i])));
        },
    )
    .await?;
    figure(
        figures,
        "memory_check_ns",
        memory_check,
        "ns",
        n,
        "Guard::check on MemoryStore",
    );
    figure(
        figures,
        "memory_floor_ns",
        memory_floor,
        "ns",
        n,
        "bare HashMap<ContactKey, bytes> lookup, same keys",
    );
    figure(
        figures,
        "ratio_memory_check_over_floor",
        memory_check / memory_floor,
        "x",
        n,
        "same run, interleaved in chunks of 10 000",
    );
    drop(map);
    drop(memory);

    // ---- sled ----
    eprintln!("waguard bench: sled");
    let dir = tempfile::tempdir().context("temporary directory for sled")?;
    let group = waguard_sled::SledOptions::default().with_durability(
        waguard_sled::Durability::GroupCommit {
            every: Duration::from_millis(500),
        },
    );
    let sled_store = Arc::new(waguard_sled::SledStore::open_with(
        dir.path().join("store"),
        group,
    )?);
    let sled = Guard::new(sled_store.clone(), policy.clone())?;
    let (events, took) = ingest_all(&sled, &contacts, 1000).await?;
    figure(
        figures,
        "sled_ingest_group_commit_eps",
        events as f64 / took.as_secs_f64(),
        "events/s",
        n,
        "Guard::ingest in batches of ~1000 events (about 45 contacts each), one flush per batch",
    );
    let raw = sled::open(dir.path().join("floor")).context("sled floor database")?;
    let storage_keys: Vec<Vec<u8>> = keys.iter().map(|k| k.storage_key()).collect();
    for (k, s) in storage_keys.iter().zip(&states) {
        raw.insert(k, s.encode())?;
    }
    raw.flush()?;
    drop(storage_keys);
    let before = sled_store.record_cache_usage();
    let (sled_check, sled_floor) = interleaved_ns(
        &indices,
        |i| {
            let sled = &sled;
            let key = &keys[i];
            async move {
                black_box(sled.check(key, Outgoing::FreeForm, now).await?);
                Ok(())
            }
        },
        |i| {
            black_box(waguard::with_storage_key(&keys[i], |k| raw.get(k).ok()));
        },
    )
    .await?;
    figure(
        figures,
        "sled_check_ns",
        sled_check,
        "ns",
        n,
        "Guard::check on SledStore",
    );
    figure(
        figures,
        "sled_floor_ns",
        sled_floor,
        "ns",
        n,
        "bare sled get of the same keys (storage key built per lookup, as check does)",
    );
    figure(
        figures,
        "ratio_sled_check_over_floor",
        sled_check / sled_floor,
        "x",
        n,
        "same run, interleaved in chunks of 10 000",
    );
    let cached = sled_store.record_cache_usage();
    let (hits, misses) = (cached.hits - before.hits, cached.misses - before.misses);
    figure(
        figures,
        "sled_record_cache_hit_rate",
        hits as f64 / (hits + misses).max(1) as f64,
        "share",
        n,
        "share of the checks above answered from the store's record cache",
    );
    figure(
        figures,
        "sled_record_cache_share",
        cached.records as f64 / n as f64,
        "share",
        n,
        "contacts in the store's record cache after the checks (default 128 MiB budget)",
    );
    figure(
        figures,
        "sled_record_cache_mb",
        cached.bytes as f64 / (1 << 20) as f64,
        "MiB",
        n,
        "memory of the record cache after the checks, estimated by the cache",
    );
    let on_disk = sled_store.size_on_disk()?;
    figure(
        figures,
        "sled_bytes_per_contact",
        on_disk as f64 / n as f64,
        "bytes",
        n,
        "SledStore size on disk after flush / contacts",
    );
    drop(raw);
    drop(sled);
    drop(sled_store);
    manifest_figures(dir.path(), &contacts, n, figures).await?;

    // durable, one event per call
    let each = Arc::new(waguard_sled::SledStore::open(dir.path().join("durable"))?);
    let durable = Guard::new(each, policy.clone())?;
    let mut durable_events = Vec::with_capacity(samples.durable_events);
    'outer: for c in &contacts {
        for e in workload::events(c) {
            durable_events.push(e);
            if durable_events.len() == samples.durable_events {
                break 'outer;
            }
        }
    }
    // Warm up (the store's first writes allocate sled's pages), then alternate chunks of
    // durable ingests and of the disk's floor, so that both see the same disk.
    let warm_up = durable_events.len() / 10;
    for e in &durable_events[..warm_up] {
        durable.ingest([e.clone()]).await?;
    }
    let mut probe = SyncProbe::new(dir.path(), durable_events.len(), true)?;
    let (mut ingest_time, mut probe_time) = (Duration::ZERO, Duration::ZERO);
    for chunk in durable_events[warm_up..].chunks(durable_events.len().div_ceil(10)) {
        let started = Instant::now();
        for e in chunk {
            durable.ingest([e.clone()]).await?;
        }
        ingest_time += started.elapsed();
        probe_time += probe.run(chunk.len())?;
    }
    let timed = (durable_events.len() - warm_up) as f64;
    let durable_eps = timed / ingest_time.as_secs_f64();
    let fsync_rate = timed / probe_time.as_secs_f64();
    let mut append_probe = SyncProbe::new(dir.path(), durable_events.len(), false)?;
    let append_rate =
        durable_events.len() as f64 / append_probe.run(durable_events.len())?.as_secs_f64();
    figure(
        figures,
        "sled_ingest_durable_each_eps",
        durable_eps,
        "events/s",
        n,
        "Guard::ingest of one event per call, flushed before return",
    );
    figure(
        figures,
        "disk_fdatasync_per_s",
        fsync_rate,
        "syncs/s",
        n,
        "128-byte overwrite in a zero-filled file + fdatasync, same directory",
    );
    figure(
        figures,
        "disk_fdatasync_append_per_s",
        append_rate,
        "syncs/s",
        n,
        "128-byte append + fdatasync (the file grows), same directory",
    );
    figure(
        figures,
        "ratio_sled_durable_over_fdatasync",
        durable_eps / fsync_rate,
        "x",
        n,
        "same run",
    );

    // ---- webhook parse ----
    let body = workload::typical_webhook();
    let limits = waguard_webhook::Limits::default();
    let parses = samples.lookups / 4;
    // Warm up: the first `+1` number builds rule R3's area-code table, once per process.
    waguard_webhook::parse(body.as_bytes(), now, &limits)?;
    let started = Instant::now();
    for _ in 0..parses {
        black_box(waguard_webhook::parse(
            black_box(body.as_bytes()),
            now,
            &limits,
        )?);
    }
    let mb_s = (body.len() * parses) as f64 / started.elapsed().as_secs_f64() / 1e6;
    figure(
        figures,
        "webhook_parse_mb_s",
        mb_s,
        "MB/s",
        n,
        format!(
            "parse + conversion of a {}-byte inbound text payload",
            body.len()
        ),
    );

    // ---- PostgreSQL and the message-log baselines ----
    counting_figures(n, samples, args, figures).await?;

    if !args.no_postgres {
        let window_over_sled = msglog::measure(
            &args.postgres,
            &contacts,
            &indices,
            samples.round_trips,
            &policy,
            figures,
        )
        .await?;
        figure(
            figures,
            "ratio_msglog_window_over_waguard_sled",
            window_over_sled / (sled_check / 1000.0),
            "x",
            n,
            "Chatwoot-style last-inbound query p50 over SledStore check mean",
        );
    }
    Ok(())
}

/// The cost of the sled store's manifest: the open time of the store just measured (`n`
/// contacts) walking every record (the default check), with the manifest trusted, and
/// without one;
/// and group-commit ingest with and without keeping it, batches sent to both stores in turn
/// (on at most 200 000 contacts).
async fn manifest_figures(
    dir: &std::path::Path,
    contacts: &[Contact],
    n: usize,
    figures: &mut Vec<Figure>,
) -> Result<()> {
    use waguard_sled::{Integrity, SledOptions, SledStore};
    eprintln!("waguard bench: sled manifest");
    let path = dir.join("store");
    let open_ms = |integrity: Integrity| -> Result<f64> {
        let started = Instant::now();
        let store = SledStore::open_with(&path, SledOptions::default().with_integrity(integrity))?;
        let took = started.elapsed().as_secs_f64() * 1e3;
        drop(store);
        Ok(took)
    };
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (mut checked, mut trusted, mut off) = (Vec::new(), Vec::new(), Vec::new());
    // Check and Trust in turn; Off last (it deletes the manifest).
    for _ in 0..3 {
        checked.push(open_ms(Integrity::Check)?);
        trusted.push(open_ms(Integrity::Trust)?);
    }
    for _ in 0..3 {
        off.push(open_ms(Integrity::Off)?);
    }
    let (checked, trusted, off) = (median(checked), median(trusted), median(off));
    figure(
        figures,
        "sled_open_checked_ms",
        checked,
        "ms",
        n,
        "SledStore::open of the store above, every record walked and checked against the manifest (the default), median of 3",
    );
    figure(
        figures,
        "sled_open_trusted_ms",
        trusted,
        "ms",
        n,
        "same open, manifest and journal checked, records not walked (Integrity::Trust), median of 3",
    );
    figure(
        figures,
        "sled_open_no_manifest_ms",
        off,
        "ms",
        n,
        "same open without a manifest (Integrity::Off), median of 3",
    );
    figure(
        figures,
        "ratio_sled_open_checked_over_no_manifest",
        checked / off,
        "x",
        n,
        "same run",
    );
    let subset = &contacts[..contacts.len().min(200_000)];
    let group = |integrity| {
        SledOptions::default()
            .with_durability(waguard_sled::Durability::GroupCommit {
                every: Duration::from_millis(500),
            })
            .with_integrity(integrity)
    };
    let policy = Policy::default();
    let with = Guard::new(
        SledStore::open_with(dir.join("manifest-on"), group(Integrity::Check))?,
        policy.clone(),
    )?;
    let without = Guard::new(
        SledStore::open_with(dir.join("manifest-off"), group(Integrity::Off))?,
        policy,
    )?;
    let (mut with_time, mut without_time, mut events) = (Duration::ZERO, Duration::ZERO, 0);
    let mut pending: Vec<KeyedEvent> = Vec::with_capacity(1100);
    let mut turn = 0usize;
    let send = |batch: Vec<KeyedEvent>, turn: usize| {
        let (first, second) = if turn % 2 == 0 {
            (&with, &without)
        } else {
            (&without, &with)
        };
        async move {
            let mut times = [Duration::ZERO; 2];
            for (i, guard) in [first, second].into_iter().enumerate() {
                let events = batch.clone();
                let started = Instant::now();
                guard.ingest(events).await?;
                times[i] = started.elapsed();
            }
            Ok::<_, anyhow::Error>(if turn % 2 == 0 {
                (times[0], times[1])
            } else {
                (times[1], times[0])
            })
        }
    };
    for c in subset {
        pending.extend(workload::events(c));
        if pending.len() >= 1000 {
            events += pending.len();
            let (w, wo) = send(std::mem::take(&mut pending), turn).await?;
            with_time += w;
            without_time += wo;
            turn += 1;
        }
    }
    if !pending.is_empty() {
        events += pending.len();
        let (w, wo) = send(pending, turn).await?;
        with_time += w;
        without_time += wo;
    }
    let with_eps = events as f64 / with_time.as_secs_f64();
    let without_eps = events as f64 / without_time.as_secs_f64();
    figure(
        figures,
        "sled_ingest_manifest_eps",
        with_eps,
        "events/s",
        subset.len(),
        "Guard::ingest in batches of ~1000 events, group commit, keeping the manifest (default)",
    );
    figure(
        figures,
        "sled_ingest_no_manifest_eps",
        without_eps,
        "events/s",
        subset.len(),
        "same batches, same run, in turn, without a manifest (Integrity::Off)",
    );
    figure(
        figures,
        "ratio_sled_ingest_manifest_over_none",
        with_eps / without_eps,
        "x",
        subset.len(),
        "same run",
    );
    Ok(())
}

/// Small writes each followed by `fdatasync`, in a file of its own in the bench directory:
/// the ceiling for durable one-by-one writes. `in_place`: overwrite a file zero-filled
/// beforehand (no file size to journal: the fastest durable write the disk offers);
/// otherwise append.
struct SyncProbe {
    file: std::fs::File,
    in_place: bool,
    next: u64,
}

impl SyncProbe {
    const RECORD: [u8; 128] = [7u8; 128];

    fn new(dir: &std::path::Path, count: usize, in_place: bool) -> Result<SyncProbe> {
        let name = if in_place {
            "fsync-probe-in-place"
        } else {
            "fsync-probe-append"
        };
        let mut file = std::fs::File::create(dir.join(name))?;
        if in_place {
            let zeros = vec![0u8; 1 << 16];
            let mut left = (count * Self::RECORD.len()) as u64;
            while left > 0 {
                let n = left.min(zeros.len() as u64) as usize;
                file.write_all(&zeros[..n])?;
                left -= n as u64;
            }
            file.sync_all()?;
        }
        Ok(SyncProbe {
            file,
            in_place,
            next: 0,
        })
    }

    /// Time taken by `count` writes with their `fdatasync`s.
    fn run(&mut self, count: usize) -> Result<Duration> {
        use std::os::unix::fs::FileExt;
        let started = Instant::now();
        for _ in 0..count {
            if self.in_place {
                self.file.write_all_at(&Self::RECORD, self.next)?;
                self.next += Self::RECORD.len() as u64;
            } else {
                self.file.write_all(&Self::RECORD)?;
            }
            self.file.sync_data()?;
        }
        let taken = started.elapsed();
        if taken.is_zero() && count > 0 {
            bail!("could not time fdatasync");
        }
        Ok(taken)
    }
}
