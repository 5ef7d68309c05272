//! A noise-free measure of `Guard::check`: a fixed number of checks inside one function per
//! store, for callgrind to count the instructions of. This machine's timings drift by 20-50%
//! between runs; instruction counts of the same binary do not, so a change to the check path
//! can be judged by them before the criterion benches confirm it in time.
//!
//! ```sh
//! cargo bench -p waguard-sled --bench check_instructions --no-run
//! B=$(ls -t target/release/deps/check_instructions-* | grep -v '\.d$' | head -1)
//! valgrind --tool=callgrind --toggle-collect='*measured_memory_checks*' $B memory
//! valgrind --tool=callgrind --toggle-collect='*measured_sled_checks*' $B sled
//! valgrind --tool=callgrind --toggle-collect='*measured_sled_gets*' $B sled-get
//! ```
//!
//! Divide the `Collected` total by the number of checks printed (`WAGUARD_CHECKS`, default
//! 100 000, on uniformly random keys over the 10 000 typical contacts of the store benches).
//! `sled-get` runs the floor of the sled bench instead: bare `get`s of the same keys.

#![allow(missing_docs)]

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;

use waguard::*;
use waguard_sled::{SledOptions, SledStore};

use waguard_test_support::workload::{keys, now_or_never, populate, t, typical_state};

fn checks<S: Store>(guard: &Guard<S>, keys: &[ContactKey], order: &[usize]) -> usize {
    let now = t(0);
    let mut permitted = 0;
    for &i in order {
        let decision =
            now_or_never(guard.check(black_box(&keys[i]), Outgoing::FreeForm, now)).unwrap();
        permitted += usize::from(decision.permits(Outgoing::FreeForm));
    }
    permitted
}

// One function per store, so that callgrind's `--toggle-collect` can name each.
#[inline(never)]
fn measured_memory_checks(g: &Guard<MemoryStore>, keys: &[ContactKey], order: &[usize]) -> usize {
    checks(g, keys, order)
}

#[inline(never)]
fn measured_sled_checks(g: &Guard<SledStore>, keys: &[ContactKey], order: &[usize]) -> usize {
    checks(g, keys, order)
}

#[inline(never)]
fn measured_sled_gets(tree: &sled::Tree, keys: &[Vec<u8>], order: &[usize]) -> usize {
    order
        .iter()
        .map(|&i| {
            tree.get(black_box(&keys[i]))
                .unwrap()
                .map_or(0, |v| v.len())
        })
        .sum()
}

fn main() {
    let which = std::env::args().nth(1).unwrap_or_else(|| "memory".into());
    let count: usize = std::env::var("WAGUARD_CHECKS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let policy = Policy::default();
    let keys = keys(10_000);
    let record = typical_state(&keys[0], &policy).encode();
    let mut rng = fastrand::Rng::with_seed(42);
    let order: Vec<usize> = (0..count).map(|_| rng.usize(..keys.len())).collect();
    let dir = tempfile::tempdir().unwrap();
    let done = match which.as_str() {
        "memory" => {
            let store = MemoryStore::new();
            populate(&store, &keys, &record);
            let guard = Guard::new(store, policy).unwrap();
            // One check before, so that the thread-local scratch state exists.
            now_or_never(guard.check(&keys[0], Outgoing::FreeForm, t(0))).unwrap();
            measured_memory_checks(&guard, &keys, &order)
        }
        "sled" | "sled-get" => {
            let store =
                SledStore::open_with(dir.path().join("db"), SledOptions::default()).unwrap();
            populate(&store, &keys, &record);
            let tree = store.sled_db().open_tree("contacts").unwrap();
            let guard = Guard::new(store, policy).unwrap();
            now_or_never(guard.check(&keys[0], Outgoing::FreeForm, t(0))).unwrap();
            if which == "sled" {
                measured_sled_checks(&guard, &keys, &order)
            } else {
                let raw: Vec<Vec<u8>> = keys.iter().map(ContactKey::storage_key).collect();
                measured_sled_gets(&tree, &raw, &order) / record.len()
            }
        }
        other => panic!("unknown store {other:?}: memory, sled or sled-get"),
    };
    assert_eq!(done, count, "every typical contact wrote within 24h");
    println!("{which}: {count} lookups of a {}-byte record", record.len());
}
