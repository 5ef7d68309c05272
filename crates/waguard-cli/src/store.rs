//! Opening the store and loading the policy named by the command-line flags.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use waguard::{ContactKey, Guard, MemoryStore, Policy, Store};
pub use waguard_server::key::{business_from, key_from_parts};

use crate::{KeyArgs, PolicyArgs, StoreArgs};

/// The store every command works on.
pub type DynStore = Arc<dyn Store>;

/// When sled writes become durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Every write is flushed before the command goes on (the library default).
    EachWrite,
    /// Single-key writes are flushed together in the background and at the end of the command
    /// (webhook batches are still flushed before the next line): for `replay`.
    GroupCommit,
}

/// Opens the store the flags name: `--memory`, `--db PATH`, or the default sled directory
/// `./waguard.db` (or `$WAGUARD_DB`), announced on stderr.
pub async fn open(args: &StoreArgs) -> Result<DynStore> {
    open_with(args, Durability::EachWrite).await
}

/// [`open`] with a durability mode for sled.
pub async fn open_with(args: &StoreArgs, durability: Durability) -> Result<DynStore> {
    if args.memory {
        return Ok(Arc::new(MemoryStore::new()));
    }
    if let Some(url) = &args.postgres {
        let options =
            waguard_postgres::PostgresOptions::default().with_schema(args.pg_schema.clone());
        let store = waguard_postgres::PostgresStore::connect_with(url, options)
            .await
            .context("cannot open the PostgreSQL store")?;
        return Ok(Arc::new(store));
    }
    let path = match &args.db {
        Some(path) => path.clone(),
        None => {
            let path = std::env::var_os("WAGUARD_DB")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("./waguard.db"));
            eprintln!(
                "waguard: using the sled store at {} (choose with --db PATH or --memory)",
                path.display()
            );
            path
        }
    };
    open_sled(&path, durability)
}

fn open_sled(path: &Path, durability: Durability) -> Result<DynStore> {
    let options = waguard_sled::SledOptions::default().with_durability(match durability {
        Durability::EachWrite => waguard_sled::Durability::EachWrite,
        Durability::GroupCommit => waguard_sled::Durability::GroupCommit {
            every: std::time::Duration::from_millis(500),
        },
    });
    let store = waguard_sled::SledStore::open_with(path, options)
        .with_context(|| format!("cannot open the sled store at {}", path.display()))?;
    Ok(Arc::new(store))
}

/// Loads and validates the policy file, or the defaults.
pub fn policy(args: &PolicyArgs) -> Result<Policy> {
    let Some(path) = &args.policy else {
        return Ok(Policy::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the policy file {}", path.display()))?;
    let is_json =
        path.extension().is_some_and(|e| e == "json") || text.trim_start().starts_with('{');
    let policy: Policy = if is_json {
        serde_json::from_str(&text)
            .with_context(|| format!("policy file {} is not a valid JSON policy", path.display()))?
    } else {
        toml::from_str(&text)
            .with_context(|| format!("policy file {} is not a valid TOML policy", path.display()))?
    };
    policy
        .validate()
        .with_context(|| format!("policy file {}", path.display()))?;
    Ok(policy)
}

/// A guard over the flags' store and policy.
pub async fn guard(store: &StoreArgs, policy: &PolicyArgs) -> Result<Guard<DynStore>> {
    guard_with(store, policy, Durability::EachWrite).await
}

/// [`guard`] with a durability mode for sled.
pub async fn guard_with(
    store: &StoreArgs,
    policy: &PolicyArgs,
    durability: Durability,
) -> Result<Guard<DynStore>> {
    let policy = self::policy(policy)?;
    let store = open_with(store, durability).await?;
    Guard::new(store, policy).context("invalid policy")
}

impl KeyArgs {
    /// The key these flags name.
    pub fn key(&self) -> Result<ContactKey> {
        key_from_parts(
            "--",
            Some(&self.from),
            self.to.as_deref(),
            self.user_id.as_deref(),
            self.group_id.as_deref(),
        )
        .map_err(anyhow::Error::msg)
    }
}

/// The instant a command acts at: `--at`, or the wall clock (the CLI is the one place that
/// reads it; the core never does).
pub fn instant(at: Option<&str>) -> Result<waguard::Timestamp> {
    match at {
        Some(text) => waguard::Timestamp::parse_rfc3339(text).context("--at"),
        None => waguard::Timestamp::try_from(chrono::Utc::now()).context("the system clock"),
    }
}
