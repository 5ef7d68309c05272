//! NDJSON replay lines (design.md section 7), applied to a guard over a MemoryStore: decisions keep their invariants, `reserve` answers as `check`, nothing panics.
//! The body is `waguard_test_support::fuzz::replay_line`, which `cargo test -p waguard-test-support --test
//! fuzz_corpus` also runs over `corpus/replay_line/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    waguard_test_support::fuzz::replay_line(data);
});
