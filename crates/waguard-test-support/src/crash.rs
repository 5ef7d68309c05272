//! The SIGKILL crash harness of the sled store, shared by its crash test
//! (`crates/waguard-sled/tests/crash.rs`, 20 cycles in every test run) and the soak program
//! (`tests/examples/soak.rs`, `soak sled N`): one implementation of the child, the kills and
//! the check, so that the quick test and the long soak cannot drift apart.
//!
//! A child process (the caller's own executable, started by the caller's `spawn`) opens the
//! store, records webhook batches and reservations, and prints an acknowledgement line for
//! each event after its durable commit. The parent kills it with `SIGKILL` after a random
//! number of acknowledgements plus a random spin, so the kill lands anywhere in the next
//! commit; then it reopens the store and checks that every event acknowledged so far, in
//! every cycle, is in its key's state. Odd cycles run in group-commit mode, where a
//! reservation is acknowledged only after an explicit flush.
//!
//! Before each webhook batch the child also announces its events (`begin` lines), so the
//! parent knows the batch a kill interrupted: after the reopen, either all of its events or
//! none are in the store (a batch is all or nothing across a crash, though the store applies
//! it to sled one key at a time).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use waguard::rules::resend::hash_key;
use waguard::{
    ContactKey, ConversationState, Event, Guard, KeyedEvent, Outgoing, Policy, Store,
    TemplateCategory, Timestamp, WamidHash,
};
use waguard_sled::{Durability, SledOptions, SledStore};

/// Events one child records at most.
const PER_CYCLE: u64 = 4_000;

/// Events in a large webhook batch (over about as many contacts: three parts of at least 128).
const LARGE_BATCH: usize = 400;

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
    // Three threads for large batches whatever the machine's cores, so that kills also land
    // while several threads write one batch.
    let options = SledOptions::default().with_batch_threads(3);
    if cycle & 1 == 0 {
        options
    } else {
        options.with_durability(Durability::GroupCommit {
            every: Duration::from_millis(200),
        })
    }
}

/// A 131047 failure of message `wamid` to `key`: the event the checks look for by its id.
pub fn failure(key: &ContactKey, at: Timestamp, wamid: &str) -> KeyedEvent {
    KeyedEvent::Contact {
        key: key.clone(),
        event: Event::Failure {
            at,
            code: 131047,
            wamid: Some(WamidHash::of(wamid)),
        },
    }
}

/// The child: records events until killed (at most `PER_CYCLE`), printing `ready`, one
/// `begin ...` line per event of a batch before recording it, one `ack ...` line per durable
/// event, and `done`. Never returns.
pub fn child(dir: &Path, cycle: u64) -> ! {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let store = SledStore::open_with(dir, options(cycle)).unwrap();
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
                // Now and then a large one, over many contacts, which the store writes to
                // sled from several threads (`SledOptions::batch_threads`).
                let large = rng.u8(0..16) == 0;
                let n = if large {
                    LARGE_BATCH as u64
                } else {
                    rng.u64(1..=32)
                };
                let n = n.min(PER_CYCLE - seq);
                let mut events = Vec::new();
                let mut acks = Vec::new();
                for _ in 0..n {
                    let key = failure_key(if large {
                        200 + rng.u32(0..5_000)
                    } else {
                        rng.u32(0..200)
                    });
                    let wamid = format!("wamid.c{cycle}s{seq}");
                    events.push(failure(&key, at(cycle, seq), &wamid));
                    acks.push(format!("ack f {key} {wamid}"));
                    seq += 1;
                }
                for ack in &acks {
                    writeln!(out, "begin {}", &ack["ack ".len()..]).unwrap();
                }
                out.flush().unwrap();
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
    unreachable!("the child parks until it is killed")
}

/// What a run found.
pub struct Report {
    /// Events acknowledged by the children.
    pub acknowledged: usize,
    /// Journal records the reopens recovered.
    pub recovered: usize,
    /// Batches a kill interrupted (announced, not all acknowledged) that were found whole
    /// after the reopen, and found absent. A batch found in part fails the run.
    pub interrupted_whole: usize,
    /// See `interrupted_whole`.
    pub interrupted_absent: usize,
    /// Of those, the large batches (written to sled by several threads).
    pub interrupted_large: usize,
    /// Wall time.
    pub elapsed: Duration,
}

/// Runs `cycles` kill-and-reopen cycles in a fresh directory; `spawn(dir, cycle)` builds the
/// command that runs [`child`] there. `progress(cycle, acknowledged so far)` after each cycle.
/// `Err` names the cycle and the seed as soon as an acknowledged event is missing, a reopen
/// fails or a child goes silent.
pub fn run(
    cycles: u64,
    seed: u64,
    spawn: &dyn Fn(&Path, u64) -> Command,
    progress: &mut dyn FnMut(u64, usize),
) -> Result<Report, String> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut acked: Vec<Ack> = Vec::new();
    let mut recovered = 0usize;
    let (mut interrupted_whole, mut interrupted_absent) = (0usize, 0usize);
    let mut interrupted_large = 0usize;
    let started = Instant::now();
    for cycle in 0..cycles {
        let mut child = spawn(&path, cycle)
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
        let mut batch = Batch::default();
        loop {
            let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            else {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "cycle {cycle}: the child went silent (seed {seed})"
                ));
            };
            batch.see(&line);
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
        for line in rx.try_iter() {
            batch.see(&line);
            cycle_acks.extend(parse(&line));
        }
        acked.extend(cycle_acks);

        // Reopen and check every acknowledgement so far.
        let store = SledStore::open(&path)
            .map_err(|e| format!("cycle {cycle}: reopen failed: {e} (seed {seed})"))?;
        recovered += store.recovered_writes();
        let guard = Guard::new(store, Policy::default()).unwrap();
        let lost = runtime.block_on(count_lost(&guard, &acked));
        if lost > 0 {
            return Err(format!(
                "cycle {cycle}: {lost} acknowledged events lost (seed {seed})"
            ));
        }
        if batch.interrupted() {
            if batch.events.len() >= LARGE_BATCH {
                interrupted_large += 1;
            }
            let found = runtime.block_on(count_present(&guard, &batch.events));
            match found {
                0 => interrupted_absent += 1,
                n if n == batch.events.len() => interrupted_whole += 1,
                n => {
                    return Err(format!(
                        "cycle {cycle}: the interrupted batch was torn: {n} of its {} events \
                         found (seed {seed})",
                        batch.events.len()
                    ))
                }
            }
        }
        drop(guard);
        progress(cycle, acked.len());
    }
    Ok(Report {
        acknowledged: acked.len(),
        recovered,
        interrupted_whole,
        interrupted_absent,
        interrupted_large,
        elapsed: started.elapsed(),
    })
}

/// The child's latest webhook batch, from its `begin` and `ack` lines.
#[derive(Default)]
struct Batch {
    events: Vec<Ack>,
    acknowledged: usize,
    /// Whether the previous line was a `begin` (the next `begin` then continues the batch).
    announcing: bool,
}

impl Batch {
    fn see(&mut self, line: &str) {
        match line.strip_prefix("begin ") {
            Some(event) => {
                if !self.announcing {
                    *self = Batch::default();
                }
                self.announcing = true;
                self.events.extend(parse(&format!("ack {event}")));
            }
            None => {
                self.announcing = false;
                if line.starts_with("ack f ") {
                    self.acknowledged += 1;
                }
            }
        }
    }

    /// Whether a kill interrupted this batch: announced, not every event acknowledged.
    fn interrupted(&self) -> bool {
        !self.events.is_empty() && self.acknowledged < self.events.len()
    }
}

/// An acknowledged event, as the check looks for it.
pub enum Ack {
    /// A 131047 failure with this message id.
    Failure(ContactKey, String),
    /// A reservation with this idempotency key.
    Reservation(ContactKey, String),
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

/// Whether `ack`'s event is in `state`.
fn present(state: &ConversationState, ack: &Ack) -> bool {
    match ack {
        Ack::Failure(_, wamid) => {
            let hash = WamidHash::of(wamid);
            state
                .feedback
                .failures
                .iter()
                .any(|f| f.wamid == Some(hash))
        }
        Ack::Reservation(_, idempotency) => state.attempts_for(hash_key(idempotency)).is_some(),
    }
}

/// The contact state of every key of `acks`, read once each.
async fn states<S: Store>(
    guard: &Guard<S>,
    acks: &[Ack],
) -> HashMap<ContactKey, ConversationState> {
    let mut states = HashMap::new();
    for ack in acks {
        let (Ack::Failure(key, _) | Ack::Reservation(key, _)) = ack;
        if !states.contains_key(key) {
            let (state, _) = guard.state(key).await.unwrap();
            states.insert(key.clone(), state);
        }
    }
    states
}

fn key_of(ack: &Ack) -> &ContactKey {
    let (Ack::Failure(key, _) | Ack::Reservation(key, _)) = ack;
    key
}

/// How many of `events` are in the store.
async fn count_present<S: Store>(guard: &Guard<S>, events: &[Ack]) -> usize {
    let states = states(guard, events).await;
    events
        .iter()
        .filter(|e| present(&states[key_of(e)], e))
        .count()
}

/// How many acknowledged events are missing from the store (each one is printed).
pub async fn count_lost<S: Store>(guard: &Guard<S>, acked: &[Ack]) -> usize {
    let states = states(guard, acked).await;
    let mut lost = 0;
    for ack in acked {
        if !present(&states[key_of(ack)], ack) {
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
