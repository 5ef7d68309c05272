//! End-to-end tests of waguard; see `tests/` and `scenarios/`. This crate has no library code.
