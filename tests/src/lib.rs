//! End-to-end tests of waguard: every rule through the built `waguard` binary on every store
//! (`tests/`, with the scenarios of `scenarios/`). The library is empty; the soak program
//! (SIGKILL cycles on sled, a PostgreSQL restart, a corrupt record) is `examples/soak.rs` and
//! the fuzz seed generator `examples/fuzz_seeds.rs`; see `docs/reliability.md`. What these
//! share with other crates' tests (the fuzz target bodies, the crash harness, an HTTP client)
//! is in `crates/waguard-test-support`.
