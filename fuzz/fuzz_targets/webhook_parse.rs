//! Webhook bodies from the network (rules H1, H2): parsing, signature checks and the verify
//! handshake must never panic, and must keep their invariants, whatever the bytes. The body
//! is `waguard_test_support::fuzz::webhook_parse`, which `cargo test -p waguard-test-support
//! --test fuzz_corpus` also runs over `corpus/webhook_parse/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    waguard_test_support::fuzz::webhook_parse(data);
});
