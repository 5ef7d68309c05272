//! Two OS processes share one PostgreSQL schema: 8 tasks each update the same 100 keys through
//! the `Guard` (ingest of known events, reserve calls at one instant). Afterwards every event
//! is reflected in the stored state and the pair budget (D3, burst 45) was never over-granted
//! across the two processes.
//!
//! This test binary has its own `main` (`harness = false`): run without
//! `WAGUARD_PG_WORKER`, it is the coordinator and re-executes itself twice as workers.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;

use waguard::{
    BlockReason, ContactKey, Decision, DeliveryStatus, Event, Guard, KeyedEvent, Outgoing, Policy,
    TemplateCategory, Timestamp, WamidHash,
};

const PROCESSES: usize = 2;
const TASKS: usize = 8;
const KEYS: usize = 100;
/// Rounds per task; each round ingests one event for one key and reserves on one key.
const ROUNDS: usize = 400;
/// Every fourth round also ingests a batch of events for several keys.
const BATCH_EVERY: usize = 4;
const BATCH_KEYS: usize = 5;

fn key(n: usize) -> ContactKey {
    format!("100000042/p:3361{n:07}")
        .parse()
        .expect("valid key")
}

fn t(seconds: i64) -> Timestamp {
    Timestamp::from_unix_seconds(1_772_323_200 + seconds).expect("in range")
}

/// The instant of every reservation (all events are earlier).
fn reserve_at() -> Timestamp {
    t(100_000)
}

/// The events process `p`, task `task`, round `round` ingests: `(key index, wamid, at)`.
/// Every wamid is distinct, and so is every timestamp.
fn events_of(p: usize, task: usize, round: usize) -> Vec<(usize, String, i64)> {
    let base = ((p * TASKS + task) * ROUNDS + round) as i64 * (BATCH_KEYS as i64 + 1);
    let first = (task * 7 + round * 3 + p) % KEYS;
    let mut events = vec![(first, format!("wamid.{p}.{task}.{round}.0"), base)];
    if round % BATCH_EVERY == 0 {
        for j in 1..=BATCH_KEYS {
            let k = (first + j * 11) % KEYS;
            events.push((k, format!("wamid.{p}.{task}.{round}.{j}"), base + j as i64));
        }
    }
    events
}

/// The key process `p`, task `task` reserves on in round `round`.
fn reserve_key(p: usize, task: usize, round: usize) -> usize {
    (task * 13 + round + p * 50) % KEYS
}

fn to_keyed(events: &[(usize, String, i64)]) -> Vec<KeyedEvent> {
    let mut keyed = Vec::new();
    for (k, wamid, at) in events {
        keyed.push(KeyedEvent::Contact {
            key: key(*k),
            event: Event::Status {
                at: t(*at),
                status: DeliveryStatus::Delivered,
                wamid: Some(WamidHash::of(wamid)),
            },
        });
        keyed.push(KeyedEvent::Contact {
            key: key(*k),
            event: Event::Inbound {
                at: t(*at),
                text: None,
                referral: false,
            },
        });
    }
    keyed
}

/// A worker process: connects, says `ready`, waits for `go` on stdin, runs its tasks, prints
/// `granted KEY COUNT` per key and `done`.
fn worker(p: usize, schema: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = common::connect(schema, TASKS).await;
        let guard = Guard::new(store, unpaced()).unwrap();
        println!("ready");
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "go");
        let tpl = Outgoing::Template(TemplateCategory::Utility);
        let mut handles = Vec::new();
        for task in 0..TASKS {
            let guard = guard.clone();
            handles.push(tokio::spawn(async move {
                let mut granted = vec![0usize; KEYS];
                for round in 0..ROUNDS {
                    guard
                        .ingest(to_keyed(&events_of(p, task, round)))
                        .await
                        .expect("ingest");
                    let k = reserve_key(p, task, round);
                    let d = guard
                        .reserve(&key(k), tpl, None, reserve_at())
                        .await
                        .expect("reserve");
                    if d.permits(tpl) {
                        granted[k] += 1;
                    } else {
                        assert!(
                            matches!(
                                d,
                                Decision::Blocked {
                                    reason: BlockReason::PairRateLimited,
                                    ..
                                }
                            ),
                            "unexpected refusal: {d:?}"
                        );
                    }
                }
                granted
            }));
        }
        let mut granted = vec![0usize; KEYS];
        for h in handles {
            for (total, g) in granted.iter_mut().zip(h.await.expect("a task panicked")) {
                *total += g;
            }
        }
        for (k, g) in granted.iter().enumerate() {
            println!("granted {k} {g}");
        }
        println!("done");
    });
}

fn coordinator() -> Result<(), String> {
    let schemas = common::Schemas::default();
    let schema = schemas.fresh();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // Create the schema first (the workers then find it migrated; the migration race itself is
    // covered by `connects_race_on_migration` below).
    let store = Arc::new(rt.block_on(common::connect(&schema, 4)));

    let exe = std::env::current_exe().unwrap();
    let mut children = Vec::new();
    for p in 0..PROCESSES {
        let child = Command::new(&exe)
            .env("WAGUARD_PG_WORKER", p.to_string())
            .env("WAGUARD_PG_WORKER_SCHEMA", &schema)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start worker {p}: {e}"))?;
        children.push(child);
    }
    let mut readers: Vec<_> = children
        .iter_mut()
        .map(|c| BufReader::new(c.stdout.take().unwrap()))
        .collect();
    for (p, r) in readers.iter_mut().enumerate() {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        if line.trim() != "ready" {
            return Err(format!("worker {p} did not start: {line:?}"));
        }
    }
    let started = std::time::Instant::now();
    for c in &mut children {
        writeln!(c.stdin.as_mut().unwrap(), "go").unwrap();
    }
    let mut granted = vec![0usize; KEYS];
    for (p, r) in readers.iter_mut().enumerate() {
        let mut done = false;
        for line in r.lines() {
            let line = line.unwrap();
            let parts: Vec<&str> = line.split_whitespace().collect();
            match parts.as_slice() {
                ["granted", k, g] => {
                    granted[k.parse::<usize>().unwrap()] += g.parse::<usize>().unwrap()
                }
                ["done"] => done = true,
                _ => eprintln!("worker {p}: {line}"),
            }
        }
        if !done {
            return Err(format!("worker {p} did not finish"));
        }
    }
    for (p, mut c) in children.into_iter().enumerate() {
        let status = c.wait().unwrap();
        if !status.success() {
            return Err(format!("worker {p} failed: {status}"));
        }
    }
    let elapsed = started.elapsed();

    // Expected: every event of every process, and reservation attempts per key.
    let mut wamids: BTreeMap<usize, Vec<WamidHash>> = BTreeMap::new();
    let mut latest: BTreeMap<usize, i64> = BTreeMap::new();
    let mut attempts = vec![0usize; KEYS];
    let mut events = 0;
    for p in 0..PROCESSES {
        for task in 0..TASKS {
            for round in 0..ROUNDS {
                for (k, wamid, at) in events_of(p, task, round) {
                    wamids.entry(k).or_default().push(WamidHash::of(&wamid));
                    let l = latest.entry(k).or_default();
                    *l = (*l).max(at);
                    events += 2;
                }
                attempts[reserve_key(p, task, round)] += 1;
            }
        }
    }
    let burst = Policy::default().pair_rate.burst as usize;
    let guard = Guard::new(Arc::clone(&store), unpaced()).unwrap();
    rt.block_on(async {
        for k in 0..KEYS {
            let (state, _) = guard.state(&key(k)).await.map_err(|e| e.to_string())?;
            let mut expected = wamids.remove(&k).unwrap_or_default();
            expected.sort_unstable();
            let mut found: Vec<WamidHash> =
                state.feedback.deliveries.iter().map(|d| d.wamid).collect();
            found.sort_unstable();
            if found != expected {
                return Err(format!(
                    "key {k}: {} delivered events stored, {} ingested: updates were lost",
                    found.len(),
                    expected.len()
                ));
            }
            if state.last_inbound != latest.get(&k).map(|at| t(*at)) {
                return Err(format!("key {k}: the latest inbound event was lost"));
            }
            if granted[k] > burst {
                return Err(format!(
                    "key {k}: {} reservations granted at one instant across the two processes, \
                     more than the burst of {burst}",
                    granted[k]
                ));
            }
            let want = attempts[k].min(burst);
            if granted[k] != want {
                return Err(format!(
                    "key {k}: {} reservations granted of {} attempts, expected {want}",
                    granted[k], attempts[k]
                ));
            }
            if attempts[k] >= burst {
                let d = guard
                    .check(
                        &key(k),
                        Outgoing::Template(TemplateCategory::Utility),
                        reserve_at(),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                if !matches!(
                    d,
                    Decision::Blocked {
                        reason: BlockReason::PairRateLimited,
                        ..
                    }
                ) {
                    return Err(format!("key {k}: the spent budget is not stored: {d:?}"));
                }
            }
        }
        Ok::<_, String>(())
    })?;
    let reserves = PROCESSES * TASKS * ROUNDS;
    eprintln!(
        "two processes x {TASKS} tasks: {events} events and {reserves} reservations on {KEYS} \
         keys in {elapsed:.2?}; granted {} reservations (burst {burst} per key)",
        granted.iter().sum::<usize>()
    );
    drop(guard);
    drop(store);
    drop(rt);
    drop(schemas);
    Ok(())
}

/// Several stores connect to one fresh schema at the same instant: the migration runs once,
/// none fails.
fn connects_race_on_migration() -> Result<(), String> {
    let schemas = common::Schemas::default();
    let schema = schemas.fresh();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let schema = schema.clone();
                tokio::spawn(async move {
                    waguard_postgres::PostgresStore::connect_with(
                        &common::url(),
                        waguard_postgres::PostgresOptions::default()
                            .with_schema(schema)
                            .with_pool_size(1),
                    )
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
                })
            })
            .collect();
        for h in handles {
            h.await.map_err(|e| e.to_string())??;
        }
        Ok::<_, String>(())
    })?;
    // And from two OS processes.
    let exe = std::env::current_exe().unwrap();
    let other = schemas.fresh();
    let children: Vec<_> = (0..2)
        .map(|_| {
            Command::new(&exe)
                .env("WAGUARD_PG_CONNECT_ONLY", &other)
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        let status = c.wait().unwrap();
        if !status.success() {
            return Err(format!("a connecting process failed: {status}"));
        }
    }
    drop(rt);
    Ok(())
}

/// A test of this binary: `Err` with a message on failure.
type TestFn = fn() -> Result<(), String>;

fn main() {
    if let Ok(p) = std::env::var("WAGUARD_PG_WORKER") {
        let schema = std::env::var("WAGUARD_PG_WORKER_SCHEMA").unwrap();
        worker(p.parse().unwrap(), &schema);
        return;
    }
    if let Ok(schema) = std::env::var("WAGUARD_PG_CONNECT_ONLY") {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(common::connect(&schema, 1));
        return;
    }
    let tests: [(&str, TestFn); 2] = [
        ("connects_race_on_migration", connects_race_on_migration),
        (
            "two_processes_lose_no_update_and_never_over_grant",
            coordinator,
        ),
    ];
    println!("\nrunning {} tests", tests.len());
    let mut failed = Vec::new();
    for (name, test) in tests {
        match std::panic::catch_unwind(test) {
            Ok(Ok(())) => println!("test {name} ... ok"),
            Ok(Err(e)) => {
                println!("test {name} ... FAILED\n  {e}");
                failed.push(name);
            }
            Err(_) => {
                println!("test {name} ... FAILED (panicked)");
                failed.push(name);
            }
        }
    }
    let passed = tests.len() - failed.len();
    println!(
        "\ntest result: {}. {passed} passed; {} failed; 0 ignored; 0 measured; 0 filtered out\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        failed.len()
    );
    if !failed.is_empty() {
        std::process::exit(101);
    }
}

/// The default policy without the business number's pace (S4): these tests race the store,
/// not the guard's per-process pacing.
fn unpaced() -> Policy {
    Policy {
        throughput: waguard::PairRate {
            interval: std::time::Duration::from_nanos(1),
            burst: 100_000,
        },
        ..Policy::default()
    }
}
