//! `waguard check`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use waguard::{Outgoing, TemplateCategory};

use crate::answer::decision_answer;
use crate::{store, KeyArgs, PolicyArgs, StoreArgs};

/// The kind of message.
#[derive(Clone, Copy, Debug, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum MessageKind {
    /// Anything that is not a template.
    FreeForm,
    /// An approved template (give `--category`).
    Template,
}

/// A template's category.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Category {
    /// Marketing.
    Marketing,
    /// Utility.
    Utility,
    /// Authentication.
    Authentication,
}

/// Flags of `waguard check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    policy: PolicyArgs,
    #[command(flatten)]
    key: KeyArgs,
    /// The kind of message.
    #[arg(long, value_enum)]
    message: MessageKind,
    /// The template's category (templates only).
    #[arg(long, value_enum)]
    category: Option<Category>,
    /// The instant to decide at (RFC 3339); default: now.
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
}

/// The message the flags describe.
pub fn outgoing(message: MessageKind, category: Option<Category>) -> Result<Outgoing> {
    Ok(match (message, category) {
        (MessageKind::FreeForm, None) => Outgoing::FreeForm,
        (MessageKind::FreeForm, Some(_)) => bail!("--category is for templates only"),
        (MessageKind::Template, None) => {
            bail!("--category is required for a template (marketing, utility or authentication)")
        }
        (MessageKind::Template, Some(c)) => Outgoing::Template(match c {
            Category::Marketing => TemplateCategory::Marketing,
            Category::Utility => TemplateCategory::Utility,
            Category::Authentication => TemplateCategory::Authentication,
        }),
    })
}

/// Prints one decision as a JSON line.
pub async fn run(args: CheckArgs) -> Result<ExitCode> {
    let key = args.key.key()?;
    let outgoing = outgoing(args.message, args.category)?;
    let at = store::instant(args.at.as_deref())?;
    let guard = store::guard_read_only(&args.store, &args.policy).await?;
    let decision = guard.check(&key, outgoing, at).await?;
    let mut out = std::io::stdout().lock();
    decision_answer(&mut out, None, &decision, outgoing)?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
