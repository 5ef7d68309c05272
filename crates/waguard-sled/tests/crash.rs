//! Crash safety: a child process records events and prints an acknowledgement for each one
//! after its durable commit; the parent SIGKILLs it at random moments, reopens the store and
//! checks that every acknowledged event is reflected in the state (see `waguard_test_support::crash`).
//!
//! The child is this very test binary, re-executed with `WAGUARD_CRASH_CHILD` set (the
//! `crash_child` test is a no-op otherwise). Cycles: 20 by default; a soak by hand:
//! `WAGUARD_CRASH_CYCLES=500 cargo test -p waguard-sled --release --test crash -- --nocapture`
//! (or `cargo run --release -p waguard-tests --example soak -- sled 500`, the same harness).
//! `WAGUARD_CRASH_SEED` replays a run (the seed is printed).

use waguard_test_support::crash as crash_harness;

use std::process::Command;

const CHILD_DIR: &str = "WAGUARD_CRASH_CHILD";
const CHILD_CYCLE: &str = "WAGUARD_CRASH_CHILD_CYCLE";

/// The child's entry point; does nothing in a normal test run.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let cycle: u64 = std::env::var(CHILD_CYCLE).unwrap().parse().unwrap();
    crash_harness::child(std::path::Path::new(&dir), cycle);
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
    let exe = std::env::current_exe().unwrap();
    let spawn = |dir: &std::path::Path, cycle: u64| {
        let mut command = Command::new(&exe);
        command
            .args([
                "crash_child",
                "--exact",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CHILD_DIR, dir)
            .env(CHILD_CYCLE, cycle.to_string());
        command
    };
    let report =
        crash_harness::run(cycles, seed, &spawn, &mut |_, _| {}).unwrap_or_else(|e| panic!("{e}"));
    println!(
        "crash test: {cycles} SIGKILL cycles, {} acknowledged events, 0 lost, {} writes recovered from the journal, interrupted batches found whole {} and absent {} (none torn; {} of them large), {:.1}s (seed {seed})",
        report.acknowledged,
        report.recovered,
        report.interrupted_whole,
        report.interrupted_absent,
        report.interrupted_large,
        report.elapsed.as_secs_f64()
    );
    assert!(
        report.recovered > 0,
        "no reopen replayed the journal: the kills never found a write sled had not flushed, \
         so the journal's recovery went untested"
    );
    assert!(
        report.acknowledged >= cycles as usize / 2,
        "the children acknowledged too little to prove anything"
    );
}
