//! `waguard export` and `waguard import`: NDJSON of every contact record and every sender
//! record (a business number's restrictions, rules S1-S3).

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use waguard::{BusinessId, ContactKey, ConversationState, SenderState, UpdateAction};

use crate::answer::write_line;
use crate::{store, StoreArgs};

/// Flags of `waguard export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    store: StoreArgs,
}

/// Flags of `waguard import`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// NDJSON written by `export`; `-` reads stdin.
    #[arg(value_name = "FILE")]
    file: PathBuf,
}

/// One exported contact record.
#[derive(Serialize, Deserialize)]
struct Exported {
    key: String,
    state: ConversationState,
}

/// One exported sender record.
#[derive(Serialize, Deserialize)]
struct ExportedSender {
    business: String,
    sender: SenderState,
}

/// A line of an export file.
#[derive(Deserialize)]
#[serde(untagged)]
enum Line {
    Contact(Box<Exported>),
    Sender(ExportedSender),
}

/// Writes every contact record as one JSON line.
pub async fn export(args: ExportArgs) -> Result<ExitCode> {
    let store = store::open(&args.store).await?;
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut scan = store.scan();
    let mut count = 0usize;
    while let Some(item) = scan.next().await {
        let (key, bytes) = item.context("export stopped")?;
        let state = ConversationState::decode(&bytes)
            .with_context(|| format!("record of {key} cannot be decoded"))?;
        write_line(
            &mut out,
            &Exported {
                key: key.to_string(),
                state,
            },
        )?;
        count += 1;
    }
    let mut senders = 0usize;
    for (business, bytes) in store.all_senders().await.context("export stopped")? {
        let sender = SenderState::decode(&bytes)
            .with_context(|| format!("sender record of {business} cannot be decoded"))?;
        write_line(
            &mut out,
            &ExportedSender {
                business: business.to_string(),
                sender,
            },
        )?;
        senders += 1;
    }
    out.flush()?;
    eprintln!("waguard: exported {count} contact records and {senders} sender records");
    Ok(ExitCode::SUCCESS)
}

/// Merges exported records into the store (lattice join: importing twice changes nothing).
pub async fn import(args: ImportArgs) -> Result<ExitCode> {
    let reader: Box<dyn BufRead> = if args.file.as_os_str() == "-" {
        Box::new(BufReader::new(std::io::stdin().lock()))
    } else {
        Box::new(BufReader::new(
            std::fs::File::open(&args.file)
                .with_context(|| format!("cannot read {}", args.file.display()))?,
        ))
    };
    let store = store::open(&args.store).await?;
    let policy = waguard::Policy::default();
    let mut count = 0usize;
    let mut senders = 0usize;
    for (index, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let record = match serde_json::from_str::<Line>(&line)
            .with_context(|| format!("line {}: not an exported record", index + 1))?
        {
            Line::Contact(record) => record,
            Line::Sender(record) => {
                import_sender(&*store, record, index).await?;
                senders += 1;
                continue;
            }
        };
        let key: ContactKey = record
            .key
            .parse()
            .with_context(|| format!("line {}: bad key", index + 1))?;
        let incoming = record.state;
        store
            .update(&key, &mut |current, _sender| {
                let mut state = match current {
                    Some(bytes) => ConversationState::decode(bytes).map_err(|source| {
                        waguard::StoreError::Decode {
                            record: waguard::RecordKey::Contact(key.clone()),
                            source,
                        }
                    })?,
                    None => ConversationState::default(),
                };
                state.merge(&incoming, &policy);
                Ok(UpdateAction::Write(state.encode()))
            })
            .await
            .with_context(|| format!("line {}: cannot store {key}", index + 1))?;
        count += 1;
    }
    store.flush().await?;
    eprintln!("waguard: imported {count} contact records and {senders} sender records");
    Ok(ExitCode::SUCCESS)
}

/// Merges one exported sender record into the store.
async fn import_sender(
    store: &dyn waguard::Store,
    record: ExportedSender,
    index: usize,
) -> Result<()> {
    let business = BusinessId::parse(&record.business)
        .with_context(|| format!("line {}: bad business number id", index + 1))?;
    let incoming = record.sender;
    store
        .update_sender(&business, &mut |current| {
            let mut state = match current {
                Some(bytes) => {
                    SenderState::decode(bytes).map_err(|source| waguard::StoreError::Decode {
                        record: waguard::RecordKey::Sender(business.clone()),
                        source,
                    })?
                }
                None => SenderState::default(),
            };
            state.merge(&incoming);
            Ok(UpdateAction::Write(state.encode()))
        })
        .await
        .with_context(|| format!("line {}: cannot store {business}", index + 1))
}
