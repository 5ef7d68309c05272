//! The webhook crate's input limits (maximum body size, nesting depth and items), checked
//! against a reference scan: enforced before parsing, with the exact error and offset.
//! The body is `waguard_test_support::fuzz::webhook_limits`, which `cargo test -p waguard-test-support --test
//! fuzz_corpus` also runs over `corpus/webhook_limits/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    waguard_test_support::fuzz::webhook_limits(data);
});
