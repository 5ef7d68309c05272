//! The sled store's write-ahead journal as a crash leaves it: opening the store replays
//! exactly the valid prefix, refuses an unreadable record without touching the file, and
//! never panics. The body is `waguard_test_support::fuzz::journal_replay`, which `cargo test -p
//! waguard-test-support --test fuzz_corpus` also runs over `corpus/journal_replay/`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    waguard_test_support::fuzz::journal_replay(data);
});
