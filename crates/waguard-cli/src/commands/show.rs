//! `waguard show` and `waguard forget`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde::Serialize;
use waguard::{ConversationState, MessagingLimit, Outgoing, SenderState, TemplateCategory};

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
    portfolio: PortfolioView,
    decisions: Decisions,
}

/// The business number's portfolio as rules L1-L3 see it.
#[derive(Serialize)]
struct PortfolioView {
    /// `p/NAME` (from the policy), `a/ACCOUNT` or `n/NUMBER`.
    name: String,
    /// The limit in force (`null`: not enforced).
    limit: Option<MessagingLimit>,
    /// Users counted in live buckets now.
    live_count: u64,
    /// When the earliest live bucket stops being live.
    next_expiry: Option<String>,
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
    let (name, record) = guard.portfolio(&key.business).await?;
    let policy = guard.policy();
    let portfolio = PortfolioView {
        name,
        limit: record.effective_limit(policy),
        live_count: record.live_count(at, policy),
        next_expiry: record.next_expiry(at, policy).map(|t| t.to_string()),
    };
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
            portfolio,
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
    /// Erase the opt-out registers too (rule E4): the guard then no longer knows that this
    /// person objected. Without it, the suppression list survives the erasure.
    #[arg(long)]
    include_opt_out: bool,
}

/// Erases one key, leaving a tombstone.
pub async fn forget(args: ForgetArgs) -> Result<ExitCode> {
    let key = args.key.key()?;
    let at = store::instant(args.at.as_deref())?;
    let guard = store::guard(&args.store, &args.policy).await?;
    if args.include_opt_out {
        guard.forget_including_opt_out(&key, at).await?;
    } else {
        guard.forget(&key, at).await?;
    }
    guard.store().flush().await?;
    let kept = if args.include_opt_out {
        "opt-outs included"
    } else {
        "opt-outs kept"
    };
    eprintln!("waguard: erased {key} at {at} ({kept})");
    Ok(ExitCode::SUCCESS)
}
