//! `waguard show` and `waguard forget`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde::Serialize;
use waguard::{ConversationState, Outgoing, SenderState, TemplateCategory};

use crate::answer::{write_line, DecisionAnswer};
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

#[derive(Serialize)]
struct Shown {
    key: String,
    at: String,
    state: ConversationState,
    sender: SenderState,
    decisions: Decisions,
}

#[derive(Serialize)]
struct Decisions {
    free_form: DecisionAnswer,
    marketing: DecisionAnswer,
    utility: DecisionAnswer,
    authentication: DecisionAnswer,
}

/// Prints the key's state (times in RFC 3339) and a decision per kind of message.
pub async fn run(args: ShowArgs) -> Result<ExitCode> {
    let key = args.key.key()?;
    let at = store::instant(args.at.as_deref())?;
    let guard = store::guard_read_only(&args.store, &args.policy).await?;
    let (state, sender) = guard.state(&key).await?;
    let decide = |outgoing| {
        let guard = &guard;
        let key = &key;
        async move {
            let d = guard.check(key, outgoing, at).await?;
            Ok::<_, anyhow::Error>(DecisionAnswer::new(None, &d, outgoing))
        }
    };
    let decisions = Decisions {
        free_form: decide(Outgoing::FreeForm).await?,
        marketing: decide(Outgoing::Template(TemplateCategory::Marketing)).await?,
        utility: decide(Outgoing::Template(TemplateCategory::Utility)).await?,
        authentication: decide(Outgoing::Template(TemplateCategory::Authentication)).await?,
    };
    let mut out = std::io::stdout().lock();
    write_line(
        &mut out,
        &Shown {
            key: key.to_string(),
            at: at.to_string(),
            state,
            sender,
            decisions,
        },
    )?;
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
