//! An example axum service embedding waguard (work in progress).
