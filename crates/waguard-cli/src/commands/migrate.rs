//! `waguard migrate`: creates or upgrades the PostgreSQL store's schema, as the operator's
//! explicit step, so that services can connect with a role that may not create anything.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

/// Flags of `waguard migrate`.
#[derive(Args, Debug)]
pub struct MigrateArgs {
    /// The PostgreSQL server, as a role that may create the schema (the database owner).
    #[arg(long, value_name = "URL")]
    postgres: String,
    /// The PostgreSQL schema holding waguard's tables.
    #[arg(long, value_name = "NAME", default_value = "waguard")]
    pg_schema: String,
    /// Also print the statements that give this role what the store needs, and nothing more.
    #[arg(long, value_name = "ROLE")]
    grants_for: Option<String>,
}

/// Migrates the schema and says from which version to which.
pub async fn run(args: MigrateArgs) -> Result<ExitCode> {
    let options = waguard_postgres::PostgresOptions::default().with_schema(args.pg_schema.clone());
    let migrated = waguard_postgres::PostgresStore::migrate(&args.postgres, options)
        .await
        .context("cannot migrate the PostgreSQL store")?;
    if migrated.from_version == migrated.to_version {
        eprintln!(
            "waguard: the schema `{}` at {} is up to date (version {})",
            args.pg_schema,
            waguard_postgres::redact_url(&args.postgres),
            migrated.to_version
        );
    } else {
        eprintln!(
            "waguard: migrated the schema `{}` at {} from version {} to {}",
            args.pg_schema,
            waguard_postgres::redact_url(&args.postgres),
            migrated.from_version,
            migrated.to_version
        );
    }
    if let Some(role) = &args.grants_for {
        println!(
            "{}",
            waguard_postgres::PostgresStore::grant_statements(&args.pg_schema, role)
        );
    }
    Ok(ExitCode::SUCCESS)
}
