//! `waguard templates`: the template registry (rules T1-T3), one line per template.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use serde::Serialize;
use waguard::{TemplateCategory, TemplateStatus};

use crate::answer::write_line;
use crate::{store, PolicyArgs, StoreArgs};

/// Flags of `waguard templates`.
#[derive(Args, Debug)]
pub struct TemplatesArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    policy: PolicyArgs,
    /// The instant to judge pauses at (RFC 3339); default: now.
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
}

/// One template as the registry knows it.
#[derive(Serialize)]
struct Listed {
    account: String,
    name: String,
    language: String,
    /// The status register (`null`: only a category is known, so the template is not known).
    status: Option<TemplateStatus>,
    status_at: Option<String>,
    /// The category Meta gave it (rule T3), if any.
    category: Option<TemplateCategory>,
    category_at: Option<String>,
    /// What a check of this template answers at `--at` because of rule T1 (`null`: T1 lets it
    /// go; other rules may still refuse a given contact).
    refusal: Option<Refusal>,
}

#[derive(Serialize)]
struct Refusal {
    reason: &'static str,
    until: Option<String>,
}

/// Prints every template of the registry as one JSON line.
pub async fn run(args: TemplatesArgs) -> Result<ExitCode> {
    let at = store::instant(args.at.as_deref())?;
    let guard = store::guard_read_only(&args.store, &args.policy).await?;
    let mut out = std::io::stdout().lock();
    for (id, state) in guard.templates().await? {
        let refusal = state.refusal(at, guard.policy()).map(|d| Refusal {
            reason: d.reason().map_or("", |r| r.as_str()),
            until: d.until().map(|t| t.to_string()),
        });
        write_line(
            &mut out,
            &Listed {
                account: id.account.to_string(),
                name: id.template.name,
                language: id.template.language,
                status: state.status.map(|(_, s)| s),
                status_at: state.status.map(|(t, _)| t.to_string()),
                category: state.category.map(|(_, c)| c),
                category_at: state.category.map(|(t, _)| t.to_string()),
                refusal,
            },
        )?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
