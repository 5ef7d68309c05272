//! Phone numbers, BSUIDs, group, business ids and contact keys (rules K1-K4): canonical forms are fixed points and keys round-trip through text and storage bytes.
//! The body is `waguard_test_support::fuzz::contact_parse`, which `cargo test -p waguard-test-support --test
//! fuzz_corpus` also runs over `corpus/contact_parse/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    waguard_test_support::fuzz::contact_parse(data);
});
