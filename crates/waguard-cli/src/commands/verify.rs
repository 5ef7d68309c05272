//! `waguard verify`: checks a sled store in full, and with `--repair` accepts what it holds.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Args;
use futures::StreamExt;
use serde::Serialize;
use waguard::{ConversationState, SenderState, Store, UpdateAction};
use waguard_sled::{Integrity, SledOptions, SledStore};

use crate::answer::write_line;
use crate::{store, StoreArgs};

/// Flags of `waguard verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Accept what the store holds now: write a new manifest, replace a damaged journal and
    /// drop the records that cannot be read, saying what is accepted and dropped. What the
    /// damage lost stays lost: restore it from a backup or an `export` instead if you can.
    #[arg(long)]
    repair: bool,
}

/// The report, one JSON line on stdout.
#[derive(Serialize)]
struct Report {
    /// Contact records the store holds (after a repair: kept).
    contacts: usize,
    /// Sender records the store holds.
    senders: usize,
    /// Damage the open found (manifest, journal), in words.
    damage: Vec<String>,
    /// Records whose bytes cannot be read (their keys).
    unreadable: Vec<String>,
    /// Whether `--repair` accepted the store as it is now.
    repaired: bool,
}

/// Checks the store: the manifest against every record, the journal, and that every record
/// decodes. Exit 0 when the store is sound (or was repaired), 1 when damage was found.
pub async fn run(args: VerifyArgs) -> Result<ExitCode> {
    if args.store.memory || args.store.postgres.is_some() {
        bail!(
            "verify checks a sled store (--db PATH); PostgreSQL checks its own pages (see \
             amcheck) and a memory store holds nothing to check"
        );
    }
    let Some(path) = store::sled_path(&args.store) else {
        bail!("verify needs a sled store: give --db PATH");
    };
    store::existing_sled(&path)?;
    let integrity = if args.repair {
        Integrity::Accept
    } else {
        Integrity::Report
    };
    let store = match SledStore::open_with(&path, SledOptions::default().with_integrity(integrity))
    {
        Ok(store) => store,
        // Damage that keeps even a tolerant open out (sled cannot read its own files).
        Err(e) if e.kind() == waguard::StoreErrorKind::Damaged => {
            eprintln!("waguard: {}", crate::answer::one_line(&e));
            return Ok(ExitCode::from(1));
        }
        Err(e) => return Err(e.into()),
    };
    let damage: Vec<String> = store.damage().iter().map(ToString::to_string).collect();
    let mut unreadable = Vec::new();
    let mut bad_contacts = Vec::new();
    let mut contacts = 0usize;
    let mut scan = store.scan();
    while let Some(item) = scan.next().await {
        match item {
            Ok((key, bytes)) => match ConversationState::decode(&bytes) {
                Ok(_) => contacts += 1,
                Err(e) => {
                    unreadable.push(format!("contact {key}: {e}"));
                    bad_contacts.push(key);
                }
            },
            Err(e) => unreadable.push(e.to_string()),
        }
    }
    drop(scan);
    let mut senders = 0usize;
    let mut bad_senders = Vec::new();
    for (business, bytes) in store.all_senders().await.context("verify stopped")? {
        match SenderState::decode(&bytes) {
            Ok(_) => senders += 1,
            Err(e) => {
                unreadable.push(format!("sender {business}: {e}"));
                bad_senders.push(business);
            }
        }
    }
    let sound = damage.is_empty() && unreadable.is_empty();
    if args.repair && !sound {
        for key in &bad_contacts {
            store.remove(key).await.context("repair stopped")?;
        }
        for business in &bad_senders {
            store
                .update_sender(business, &mut |_| Ok(UpdateAction::Delete))
                .await
                .context("repair stopped")?;
        }
        store.flush().await.context("repair stopped")?;
    }
    let report = Report {
        contacts,
        senders,
        damage,
        unreadable,
        repaired: args.repair && !sound,
    };
    let mut out = std::io::stdout().lock();
    write_line(&mut out, &report)?;
    out.flush()?;
    if sound {
        eprintln!(
            "waguard: the store at {} is sound: {contacts} contact records and {senders} sender \
             records, as acknowledged",
            path.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let found = report
        .damage
        .iter()
        .chain(&report.unreadable)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    if args.repair {
        eprintln!(
            "waguard: repaired the store at {}: it now holds {contacts} contact records and \
             {senders} sender records, accepted as they are; dropped {} unreadable records; \
             found: {found}. Records the damage lost cannot be named (the manifest keeps \
             counts, not keys): compare with your last `export`",
            path.display(),
            bad_contacts.len() + bad_senders.len()
        );
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "waguard: the store at {} is damaged: {found}; restore it from a backup or an \
             `export`, or accept the loss with `waguard verify --repair`",
            path.display()
        );
        Ok(ExitCode::from(1))
    }
}
