//! `waguard ingest`.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;
use waguard_webhook::Limits;

use crate::answer::write_line;
use crate::{store, PolicyArgs, StoreArgs};

/// Flags of `waguard ingest`.
#[derive(Args, Debug)]
pub struct IngestArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    policy: PolicyArgs,
    /// The `X-Hub-Signature-256` header as received (`sha256=<hex>`); when given, the body is
    /// verified with the app secret before anything is parsed.
    #[arg(long, value_name = "HEADER")]
    signature: Option<String>,
    /// The app secret for `--signature`.
    #[arg(
        long,
        env = "WAGUARD_APP_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    app_secret: Option<String>,
    /// The receive time (RFC 3339) for items without their own timestamp; default: now.
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
    /// The webhook body; `-` reads stdin.
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

#[derive(Serialize)]
struct Report<'a> {
    events: usize,
    contacts_written: usize,
    senders_written: usize,
    /// Items that arrived but carry nothing the rules read (H1).
    ignored: usize,
    errors: Vec<ItemAnswer<'a>>,
}

#[derive(Serialize)]
struct ItemAnswer<'a> {
    path: &'a str,
    error: String,
}

/// Ingests one body; exit 1 when some item could not be applied.
pub async fn run(args: IngestArgs) -> Result<ExitCode> {
    let mut body = Vec::new();
    if args.file.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut body)?;
    } else {
        body = std::fs::read(&args.file)
            .with_context(|| format!("cannot read {}", args.file.display()))?;
    }
    if let Some(signature) = &args.signature {
        let Some(secret) = &args.app_secret else {
            bail!("--signature needs the app secret: pass --app-secret or set WAGUARD_APP_SECRET");
        };
        waguard_webhook::verify_signature(&body, Some(signature), secret.as_bytes())
            .context("signature check failed; nothing was applied")?;
    }
    let at = store::instant(args.at.as_deref())?;
    let parsed =
        waguard_webhook::parse(&body, at, &Limits::default()).context("webhook body refused")?;
    let guard = store::guard(&args.store, &args.policy).await?;
    let errors: Vec<ItemAnswer<'_>> = parsed
        .errors
        .iter()
        .map(|e| ItemAnswer {
            path: &e.path,
            error: e.problem.to_string(),
        })
        .collect();
    let failed = !errors.is_empty();
    let ignored = parsed.ignored;
    let report = guard.ingest_at(parsed.events, at).await?;
    guard.flush_successes().await?;
    let mut out = std::io::stdout().lock();
    write_line(
        &mut out,
        &Report {
            events: report.events,
            contacts_written: report.contacts_written,
            senders_written: report.senders_written,
            ignored,
            errors,
        },
    )?;
    out.flush()?;
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
