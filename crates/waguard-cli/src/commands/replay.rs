//! `waguard replay`.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;

use crate::replay::{self, Options};
use crate::{store, PolicyArgs, StoreArgs};

/// Flags of `waguard replay`.
#[derive(Args, Debug)]
pub struct ReplayArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    policy: PolicyArgs,
    /// The app secret that signs `webhook_raw` bodies (rule H2).
    #[arg(
        long,
        env = "WAGUARD_APP_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    app_secret: Option<String>,
    /// Print lines read and lines per second on stderr at the end.
    #[arg(long)]
    stats: bool,
    /// The NDJSON input; `-` or nothing reads stdin.
    #[arg(value_name = "FILE")]
    file: Option<PathBuf>,
}

/// Runs a replay; exit status 0 when every line applied, 1 when some line failed.
pub async fn run(args: ReplayArgs) -> Result<ExitCode> {
    let input: Box<dyn BufRead> = match args.file.as_deref() {
        None => Box::new(BufReader::new(io::stdin().lock())),
        Some(p) if p.as_os_str() == "-" => Box::new(BufReader::new(io::stdin().lock())),
        Some(path) => Box::new(BufReader::with_capacity(
            1 << 16,
            File::open(path).with_context(|| format!("cannot read {}", path.display()))?,
        )),
    };
    let guard =
        store::guard_with(&args.store, &args.policy, store::Durability::GroupCommit).await?;
    let options = Options {
        app_secret: args.app_secret.map(String::into_bytes),
        ..Options::default()
    };
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let bar = progress_bar();
    let started = Instant::now();
    let summary = replay::run(&guard, input, &mut out, &options, |n| {
        if let Some(bar) = &bar {
            if n % 1024 == 0 {
                bar.set_position(n as u64);
            }
        }
    })
    .await
    .context("replay stopped")?;
    out.flush().context("cannot write answers")?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    guard
        .flush_successes()
        .await
        .context("cannot write the coalesced sender successes")?;
    guard
        .store()
        .flush()
        .await
        .context("cannot make the replayed state durable")?;
    if args.stats {
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "waguard: {} lines in {:.3} s ({:.0} lines/s), {} failed",
            summary.lines,
            secs,
            summary.lines as f64 / secs.max(1e-9),
            summary.failed
        );
    }
    Ok(if summary.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// A spinner on stderr when it is a terminal; nothing otherwise.
fn progress_bar() -> Option<indicatif::ProgressBar> {
    if !io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {pos} lines ({per_sec})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    Some(bar)
}
