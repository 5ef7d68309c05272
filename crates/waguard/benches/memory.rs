//! MemoryStore benches (filled in below).
fn main() {}
