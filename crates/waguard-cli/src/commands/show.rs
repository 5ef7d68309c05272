//! `waguard show` and `waguard forget`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use waguard_server::answer::ContactView;

use crate::answer::write_line;
use crate::{store, KeyArgs, PolicyArgs, StoreArgs};

/// Flags of `waguard show`.
#[derive(Args, Debug)]
pub struct ShowArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    policy: PolicyArgs,
    #[command(flatten)]
    key: KeyArgs,
    /// The instant to decide at (RFC 3339); default: now.
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
}

/// Prints the key's state (times in RFC 3339) and a decision per kind of message.
pub async fn run(args: ShowArgs) -> Result<ExitCode> {
    let key = args.key.key()?;
    let at = store::instant(args.at.as_deref())?;
    let guard = store::guard_read_only(&args.store, &args.policy).await?;
    let view = ContactView::load(&guard, &key, at).await?;
    let mut out = std::io::stdout().lock();
    write_line(&mut out, &view)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Flags of `waguard forget`.
#[derive(Args, Debug)]
pub struct ForgetArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    policy: PolicyArgs,
    #[command(flatten)]
    key: KeyArgs,
    /// The erasure instant (RFC 3339); default: now. Events at or before it are ignored later.
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
}

/// Erases one key, leaving a tombstone.
pub async fn forget(args: ForgetArgs) -> Result<ExitCode> {
    let key = args.key.key()?;
    let at = store::instant(args.at.as_deref())?;
    let guard = store::guard(&args.store, &args.policy).await?;
    guard.forget(&key, at).await?;
    guard.store().flush().await?;
    eprintln!("waguard: erased {key} at {at}");
    Ok(ExitCode::SUCCESS)
}
