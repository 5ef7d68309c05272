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

/// Whether a command may create the store it opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// The command writes: a missing sled directory is created.
    Write,
    /// The command only reads (`check`, `show`, `export`, `verify`): a missing sled directory,
    /// or one without sled's `db` file, is an error, so a mistyped path never answers from a
    /// new empty store.
    ReadOnly,
}

/// Opens the store the flags name: `--memory`, `--db PATH`, or the default sled directory
/// `./waguard.db` (or `$WAGUARD_DB`), announced on stderr.
pub async fn open(args: &StoreArgs) -> Result<DynStore> {
    open_with(args, Durability::EachWrite).await
}

/// [`open`] for a command that only reads: it never creates a store (see [`Access::ReadOnly`]).
pub async fn open_read_only(args: &StoreArgs) -> Result<DynStore> {
    open_as(args, Durability::EachWrite, Access::ReadOnly).await
}

/// [`open`] with a durability mode for sled.
pub async fn open_with(args: &StoreArgs, durability: Durability) -> Result<DynStore> {
    open_as(args, durability, Access::Write).await
}

/// The sled directory the flags name: `--db PATH`, or `$WAGUARD_DB`, or `./waguard.db`
/// (announced on stderr); `None` with `--memory` or `--postgres`.
pub fn sled_path(args: &StoreArgs) -> Option<PathBuf> {
    if args.memory || args.postgres.is_some() {
        return None;
    }
    Some(match &args.db {
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
    })
}

/// Fails unless `path` is a directory holding a sled database (its `db` file).
pub fn existing_sled(path: &Path) -> Result<()> {
    let hint = "commands that only read never create a store: check the path, or create the \
                store by writing to it (`replay`, `import`)";
    if !path.is_dir() {
        anyhow::bail!("no store at {}: {hint}", path.display());
    }
    if !path.join("db").is_file() {
        anyhow::bail!(
            "{} holds no sled database (no `db` file inside): {hint}; if the file was lost, \
             restore the directory from a backup or the store from an `export`",
            path.display()
        );
    }
    Ok(())
}

/// [`open`] with a durability mode for sled and the command's access.
pub async fn open_as(args: &StoreArgs, durability: Durability, access: Access) -> Result<DynStore> {
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
    let Some(path) = sled_path(args) else {
        anyhow::bail!("no store named"); // not reached: memory and postgres returned above
    };
    if access == Access::ReadOnly {
        existing_sled(&path)?;
    }
    open_sled(&path, durability)
}

fn open_sled(path: &Path, durability: Durability) -> Result<DynStore> {
    let options = waguard_sled::SledOptions::default().with_durability(match durability {
        Durability::EachWrite => waguard_sled::Durability::EachWrite,
        Durability::GroupCommit => waguard_sled::Durability::GroupCommit {
            every: std::time::Duration::from_millis(500),
        },
    });
    // The store's errors name the path and say what to do.
    let store = waguard_sled::SledStore::open_with(path, options)?;
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

/// [`guard`] for a command that only reads: it never creates a store.
pub async fn guard_read_only(store: &StoreArgs, policy: &PolicyArgs) -> Result<Guard<DynStore>> {
    guard_as(store, policy, Durability::EachWrite, Access::ReadOnly).await
}

/// [`guard`] with a durability mode for sled.
pub async fn guard_with(
    store: &StoreArgs,
    policy: &PolicyArgs,
    durability: Durability,
) -> Result<Guard<DynStore>> {
    guard_as(store, policy, durability, Access::Write).await
}

/// [`guard`] with a durability mode for sled and the command's access.
pub async fn guard_as(
    store: &StoreArgs,
    policy: &PolicyArgs,
    durability: Durability,
    access: Access,
) -> Result<Guard<DynStore>> {
    let policy = self::policy(policy)?;
    let store = open_as(store, durability, access).await?;
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
