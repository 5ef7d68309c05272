//! One module per subcommand.

pub mod bench;
pub mod check;
pub mod export;
pub mod ingest;
pub mod migrate;
pub mod policy;
pub mod replay;
pub mod serve;
pub mod show;
pub mod templates;
pub mod verify;
