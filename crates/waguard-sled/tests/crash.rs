//! Crash safety: a child process records events and prints an acknowledgement for each one
//! after its durable commit; the parent SIGKILLs it at random moments, reopens the store and
//! checks that every acknowledged event is reflected in the state.
//!
//! The child is this very test binary, re-executed with `WAGUARD_CRASH_CHILD` set (the
//! `crash_child` test is a no-op otherwise). Cycles: 20 by default; a soak by hand:
//! `WAGUARD_CRASH_CYCLES=500 cargo test -p waguard-sled --release --test crash -- --nocapture`.
//! `WAGUARD_CRASH_SEED` replays a run (the seed is printed).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use waguard::rules::resend::hash_key;
use waguard::{
    ContactKey, Event, Guard, KeyedEvent, Outgoing, Policy, Store, TemplateCategory, Timestamp,
    WamidHash,
};
use waguard_sled::{Durability, SledOptions, SledStore};

const CHILD_DIR: &str = "WAGUARD_CRASH_CHILD";
const CHILD_CYCLE: &str = "WAGUARD_CRASH_CHILD_CYCLE";
const CHILD_SEED: &str = "WAGUARD_CRASH_CHILD_SEED";
/// Events one child records at most.
const PER_CYCLE: u64 = 4_000;

fn at(cycle: u64, seq: u64) -> Timestamp {
    // 2026-03-01T00:00:00Z, one millisecond per event: a soak of 1000 cycles stays within 70
    // minutes, so no acknowledged fact expires legitimately (G1 attempts live 24h, feedback 8
    // days).
    let ms = 1_772_323_200_000 + (cycle * PER_CYCLE + seq) as i64;
    Timestamp::from_unix_nanos(ms * 1_000_000)
}

fn failure_key(n: u32) -> ContactKey {
    format!("100000001/p:3361{n:07}").parse().unwrap()
}

fn reserve_key(n: u32) -> ContactKey {
    format!("100000001/p:3362{n:07}").parse().unwrap()
}

/// Odd cycles run in group-commit mode, where a reservation is acknowledged only after an
/// explicit flush.
fn options(cycle: u64) -> SledOptions {
    if cycle % 2 == 0 {
        SledOptions::default()
    } else {
        SledOptions::default().with_durability(Durability::GroupCommit {
            every: Duration::from_millis(200),
        })
    }
}

/// The child's entry point; does nothing in a normal test run.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let cycle: u64 = std::env::var(CHILD_CYCLE).unwrap().parse().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let store = SledStore::open_with(&dir, options(cycle)).unwrap();
        let group_commit = store.durability() != Durability::EachWrite;
        let guard = Guard::new(store, Policy::default()).unwrap();
        let mut out = std::io::stdout().lock();
        writeln!(out, "ready").unwrap();
        out.flush().unwrap();
        let mut rng = fastrand::Rng::with_seed(
            cycle.wrapping_mul(0x9e37_79b9) ^ u64::from(std::process::id()),
        );
        let mut seq = 0u64;
        let tpl = Outgoing::Template(TemplateCategory::Utility);
        while seq < PER_CYCLE {
            if rng.u8(0..4) < 3 {
                // A webhook batch: acknowledged after `ingest` returns (one durable commit).
                let n = rng.u64(1..=32).min(PER_CYCLE - seq);
                let mut events = Vec::new();
                let mut acks = Vec::new();
                for _ in 0..n {
                    let key = failure_key(rng.u32(0..200));
                    let wamid = format!("wamid.c{cycle}s{seq}");
                    events.push(KeyedEvent::Contact {
                        key: key.clone(),
                        event: Event::Failure {
                            at: at(cycle, seq),
                            code: 131047,
                            wamid: Some(WamidHash::of(&wamid)),
                        },
                    });
                    acks.push(format!("ack f {key} {wamid}"));
                    seq += 1;
                }
                guard.ingest(events).await.unwrap();
                for ack in acks {
                    writeln!(out, "{ack}").unwrap();
                }
            } else {
                // A reservation (a compare-and-swap update): acknowledged once durable.
                let key = reserve_key((seq % 10_000) as u32);
                let idempotency = format!("r{cycle}s{seq}");
                let d = guard
                    .reserve(&key, tpl, Some(&idempotency), at(cycle, seq))
                    .await
                    .unwrap();
                seq += 1;
                assert!(d.permits(tpl), "{d:?}");
                if group_commit {
                    guard.store().flush().await.unwrap();
                }
                writeln!(out, "ack r {key} {idempotency}").unwrap();
            }
            out.flush().unwrap();
        }
        writeln!(out, "done").unwrap();
        out.flush().unwrap();
        // Wait for the kill.
        loop {
            std::thread::park();
        }
    });
}

enum Ack {
    Failure(ContactKey, String),
    Reservation(ContactKey, String),
}

#[test]
fn every_acknowledged_event_survives_sigkill() {
    if std::env::var(CHILD_DIR).is_ok() {
        return; // we are the child
    }
    let cycles: u64 = std::env::var("WAGUARD_CRASH_CYCLES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(20);
    let seed: u64 = std::env::var("WAGUARD_CRASH_SEED")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    let mut rng = fastrand::Rng::with_seed(seed);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let exe = std::env::current_exe().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();

    let mut acked: Vec<Ack> = Vec::new();
    let mut lost = 0usize;
    let mut recovered = 0usize;
    let started = Instant::now();
    for cycle in 0..cycles {
        let mut child = Command::new(&exe)
            .args([
                "crash_child",
                "--exact",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CHILD_DIR, &path)
            .env(CHILD_CYCLE, cycle.to_string())
            .env(CHILD_SEED, seed.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout);
            let mut line = String::new();
            loop {
                line.clear();
                match lines.read_line(&mut line) {
                    // Only whole lines count: a line cut by the kill was not acknowledged.
                    Ok(n) if n > 0 && line.ends_with('\n') => {
                        if tx.send(line.trim_end().to_owned()).is_err() {
                            break;
                        }
                    }
                    _ => break,
                }
            }
        });

        // Kill after a random number of acknowledgements (0 = right after opening), plus a
        // random spin, so the kill lands anywhere in the next commit.
        let kill_after = if rng.u8(0..5) == 0 {
            0
        } else {
            rng.usize(1..=1000)
        };
        let mut seen = 0usize;
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut cycle_acks = Vec::new();
        loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("cycle {cycle}: the child went silent (seed {seed})"));
            if let Some(ack) = parse(&line) {
                cycle_acks.push(ack);
                seen += 1;
            }
            let ready = line == "ready" && kill_after == 0;
            if ready || seen >= kill_after && kill_after > 0 || line == "done" {
                break;
            }
        }
        let spin = Instant::now() + Duration::from_micros(rng.u64(0..3000));
        while Instant::now() < spin {
            std::hint::spin_loop();
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        cycle_acks.extend(rx.try_iter().filter_map(|l| parse(&l)));
        acked.extend(cycle_acks);

        // Reopen and check every acknowledgement so far.
        let store =
            SledStore::open(&path).unwrap_or_else(|e| panic!("cycle {cycle}: reopen failed: {e}"));
        recovered += store.recovered_writes();
        let guard = Guard::new(store, Policy::default()).unwrap();
        lost = runtime.block_on(count_lost(&guard, &acked));
        assert_eq!(
            lost, 0,
            "cycle {cycle}: {lost} acknowledged events lost (seed {seed})"
        );
        drop(guard);
    }
    println!(
        "crash test: {cycles} SIGKILL cycles, {} acknowledged events, {lost} lost, {recovered} writes recovered from the journal, {:.1}s (seed {seed})",
        acked.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        recovered > 0,
        "no reopen replayed the journal: the kills never found a write sled had not flushed, \
         so the journal's recovery went untested"
    );
    assert!(
        acked.len() >= cycles as usize / 2,
        "the children acknowledged too little to prove anything"
    );
}

fn parse(line: &str) -> Option<Ack> {
    let mut parts = line.strip_prefix("ack ")?.split(' ');
    let (kind, key, id) = (parts.next()?, parts.next()?, parts.next()?);
    let key: ContactKey = key.parse().ok()?;
    match kind {
        "f" => Some(Ack::Failure(key, id.to_owned())),
        "r" => Some(Ack::Reservation(key, id.to_owned())),
        _ => None,
    }
}

async fn count_lost<S: Store>(guard: &Guard<S>, acked: &[Ack]) -> usize {
    let mut states = HashMap::new();
    let mut lost = 0;
    for ack in acked {
        let (Ack::Failure(key, _) | Ack::Reservation(key, _)) = ack;
        if !states.contains_key(key) {
            let (state, _) = guard.state(key).await.unwrap();
            states.insert(key.clone(), state);
        }
        let state = &states[key];
        let present = match ack {
            Ack::Failure(_, wamid) => {
                let hash = WamidHash::of(wamid);
                state
                    .feedback
                    .failures
                    .iter()
                    .any(|f| f.wamid == Some(hash))
            }
            Ack::Reservation(_, idempotency) => state.attempts_for(hash_key(idempotency)).is_some(),
        };
        if !present {
            eprintln!(
                "lost: {}",
                match ack {
                    Ack::Failure(k, w) => format!("failure {w} of {k}"),
                    Ack::Reservation(k, i) => format!("reservation {i} of {k}"),
                }
            );
            lost += 1;
        }
    }
    lost
}
