//! Stored contact and sender records, the bytes the sled and PostgreSQL stores persist: decoding never panics, decoded records round-trip and stay usable.
//! The body is `waguard_test_support::fuzz::record_decode`, which `cargo test -p waguard-test-support --test
//! fuzz_corpus` also runs over `corpus/record_decode/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    waguard_test_support::fuzz::record_decode(data);
});
