//! SledStore benches.
fn main() {}
