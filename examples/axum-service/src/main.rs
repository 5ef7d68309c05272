//! The example service binary (work in progress).

fn main() {}
