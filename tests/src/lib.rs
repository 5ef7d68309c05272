//! End-to-end tests of waguard; see `tests/` and `scenarios/`.
//!
//! The library holds one module, [`fuzz`]: the bodies of the cargo-fuzz targets of `fuzz/`,
//! shared with the stable test `tests/fuzz_corpus.rs` that replays every committed
//! corpus file through them. The soak program (SIGKILL cycles on sled, a PostgreSQL restart,
//! a corrupt record) is `examples/soak.rs`; see `docs/reliability.md`.

pub mod fuzz;
