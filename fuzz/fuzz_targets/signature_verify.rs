//! `X-Hub-Signature-256` checks (rule H2) on an arbitrary secret, header and body: only the right signature verifies, a flipped byte fails.
//! The body is `waguard_test_support::fuzz::signature_verify`, which `cargo test -p waguard-test-support --test
//! fuzz_corpus` also runs over `corpus/signature_verify/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    waguard_test_support::fuzz::signature_verify(data);
});
