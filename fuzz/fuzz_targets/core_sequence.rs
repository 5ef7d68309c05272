//! A structured run (policy, key, events within 7 days, instants, reservations) against the core: convergence (E1), the order of checks (rules.md section 7), the pair burst (D3).
//! The body is `waguard_test_support::fuzz::core_sequence`, which `cargo test -p waguard-test-support --test
//! fuzz_corpus` also runs over `corpus/core_sequence/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    waguard_test_support::fuzz::core_sequence(data);
});
