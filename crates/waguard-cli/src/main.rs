//! The `waguard` binary; everything is in the `waguard_cli` library.

// sled allocates on every write (copy-on-write tree nodes): with mimalloc instead of glibc's
// malloc, batched sled ingest ran about twice as fast (docs/performance.md). A library leaves
// the allocator to its binary; this is ours.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    waguard_cli::main()
}
