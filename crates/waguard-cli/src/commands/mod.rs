//! One module per subcommand.

pub mod check;
pub mod export;
pub mod ingest;
pub mod policy;
pub mod replay;
pub mod show;
