//! What waguard's tests, benches and fuzz targets share, in one crate that is never published,
//! so that no test-only code ships in a library's public API and no test reaches into another
//! crate's files.
//!
//! | module | feature | used by |
//! | --- | --- | --- |
//! | [`fuzz`] | `fuzz` | the cargo-fuzz targets of `fuzz/`, and this crate's `tests/fuzz_corpus.rs` that replays their corpora under stable |
//! | [`workload`] | `workload` | the store benches of `waguard` and `waguard-sled`, so that both measure the same workload |
//! | [`crash`] | `crash` | the crash test of `waguard-sled` and the soak program of `tests/` |
//! | [`http`] | `http` | the HTTP tests of `waguard-server` and the end-to-end `serve` test of `tests/` |
//!
//! Every feature is on by default; a crate that needs one module asks for that feature alone
//! (`default-features = false`), so that its tests do not build the others' dependencies.

#[cfg(feature = "crash")]
pub mod crash;
#[cfg(feature = "fuzz")]
pub mod fuzz;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "workload")]
pub mod workload;
