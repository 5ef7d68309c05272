//! The `waguard` binary; everything is in the `waguard_cli` library.

fn main() -> std::process::ExitCode {
    waguard_cli::main()
}
