//! The `waguard` command line as a library: the binary is a one-line `main` over [`main`], and
//! the replay line reader ([`replay::parse`]) is public so fuzz targets and tests can drive it.
//!
//! Subcommands: `replay` (the contract of `docs/replay.md`), `serve` (the same contract over
//! HTTP, `docs/serve.md`), `check`, `ingest`, `show`, `forget`, `export`, `import`, `verify`,
//! `migrate`, `policy`. Run `waguard --help` for each.

pub mod answer;
pub mod commands;
pub mod replay;
pub mod store;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// The pre-send guard for WhatsApp Business messages: may this message go to this contact now?
#[derive(Parser, Debug)]
#[command(name = "waguard", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the state lives. At most one of `--db`, `--memory` and `--postgres`; with none, the
/// sled directory `./waguard.db` (or `$WAGUARD_DB`).
#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// A sled directory (created if absent by the commands that write; `check`, `show`,
    /// `export` and `verify` need an existing store).
    #[arg(long, value_name = "PATH", conflicts_with_all = ["memory", "postgres"])]
    pub db: Option<PathBuf>,
    /// Keep the state in memory only (gone when the command ends).
    #[arg(long, conflicts_with = "postgres")]
    pub memory: bool,
    /// A PostgreSQL server shared by several processes (`postgres://user@host:5432/db`).
    #[arg(long, value_name = "URL")]
    pub postgres: Option<String>,
    /// The PostgreSQL schema holding waguard's tables (with `--postgres`).
    #[arg(
        long,
        value_name = "NAME",
        default_value = "waguard",
        requires = "postgres"
    )]
    pub pg_schema: String,
}

/// Settings shared by the commands that decide.
#[derive(Args, Debug, Clone)]
pub struct PolicyArgs {
    /// A policy file (TOML or JSON; start one with `waguard policy`). Default: the documented
    /// defaults.
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
}

/// The contact a command is about: the business number and exactly one of phone, user id or
/// group id.
#[derive(Args, Debug, Clone)]
pub struct KeyArgs {
    /// The business phone number id (`metadata.phone_number_id`).
    #[arg(long, value_name = "BUSINESS")]
    pub from: String,
    /// The contact's phone number (`+33 6 12 34 56 78` and `33612345678` are the same).
    #[arg(long, value_name = "PHONE", group = "contact", required_unless_present_any = ["user_id", "group_id"])]
    pub to: Option<String>,
    /// The contact's business-scoped user id (`US.1349…`).
    #[arg(long, value_name = "BSUID", group = "contact")]
    pub user_id: Option<String>,
    /// A group id.
    #[arg(long, value_name = "GROUP", group = "contact")]
    pub group_id: Option<String>,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
enum Command {
    /// Replay NDJSON lines (checks, reservations, webhooks, send errors, opt-outs) and print one
    /// NDJSON answer per check/reserve line and per failing line.
    ///
    /// Example:
    ///   waguard replay --db ./waguard.db examples/quickstart.ndjson
    ///
    /// Line kinds (each with "at", an RFC 3339 instant):
    ///   {"at": T, "check":   {"from": BIZ, "to": PHONE, "message": "free_form"}}
    ///   {"at": T, "reserve": {"from": BIZ, "to": PHONE, "message": "template", "category": "utility", "idempotency_key": K}}
    ///   {"at": T, "webhook": <Meta payload>}
    ///   {"at": T, "webhook_raw": "<exact body>", "signature": "sha256=<hex>"}
    ///   {"at": T, "send_error": {"from": BIZ, "to": PHONE, "code": 131047, "wamid": W}}
    ///   {"at": T, "opt_out" | "opt_in": {"from": BIZ, "to": PHONE, "scope": "all" | "marketing"}}
    ///   {"at": T, "forget": {"from": BIZ, "to": PHONE}}
    ///   {"at": T, "clear_sender": {"from": BIZ}}
    /// A contact is one of "to", "user_id" or "group_id".
    ///
    /// Exit status: 0 every line applied, 1 some line failed, 2 replay could not run.
    #[command(verbatim_doc_comment)]
    Replay(commands::replay::ReplayArgs),
    /// One decision, from flags.
    ///
    /// Example:
    ///   waguard check --from 100000001 --to +33612345678 --message template --category utility
    #[command(verbatim_doc_comment)]
    Check(commands::check::CheckArgs),
    /// Ingest one webhook body from a file (or `-` for stdin), verifying its signature when
    /// `--signature` is given.
    ///
    /// Example:
    ///   waguard ingest --app-secret s3cret --signature sha256=ab12… body.json
    #[command(verbatim_doc_comment)]
    Ingest(commands::ingest::IngestArgs),
    /// Show one contact's state and the decision for each kind of message now.
    ///
    /// Example:
    ///   waguard show --from 100000001 --to 33612345678
    #[command(verbatim_doc_comment)]
    Show(commands::show::ShowArgs),
    /// List the template registry: each template's status, category and what rule T1 answers.
    ///
    /// Example:
    ///   waguard templates --db ./waguard.db
    #[command(verbatim_doc_comment)]
    Templates(commands::templates::TemplatesArgs),
    /// Erase one contact's state, leaving a tombstone so late webhook retries cannot bring it back.
    ///
    /// Example:
    ///   waguard forget --from 100000001 --to 33612345678
    #[command(verbatim_doc_comment)]
    Forget(commands::show::ForgetArgs),
    /// Write every contact record and every sender record as NDJSON (for backup and migration).
    ///
    /// Example:
    ///   waguard export --db ./waguard.db > backup.ndjson
    #[command(verbatim_doc_comment)]
    Export(commands::export::ExportArgs),
    /// Read records written by `export` and merge them into the store, all or nothing: every
    /// line is checked first (no unknown field, valid keys, ordered lists, no instant later
    /// than the import time plus the policy's max_clock_skew, rule E5), and a file with a bad
    /// line changes nothing and names its first bad line (exit 2).
    ///
    /// Example:
    ///   waguard import --db ./other.db backup.ndjson
    #[command(verbatim_doc_comment)]
    Import(commands::export::ImportArgs),
    /// Check a sled store in full: its records against what it acknowledged (the manifest),
    /// its journal, and that every record can be read. With --repair, accept what it holds
    /// now and say what is accepted and dropped.
    ///
    /// Example:
    ///   waguard verify --db ./waguard.db
    ///
    /// Exit status: 0 sound (or repaired), 1 damage found, 2 verify could not run.
    #[command(verbatim_doc_comment)]
    Verify(commands::verify::VerifyArgs),
    /// Measure every figure beside its floor, on generated data: pure decide, MemoryStore,
    /// sled and PostgreSQL check and ingest, webhook parsing, and the message-log baselines.
    ///
    /// Example:
    ///   waguard bench --quick --json
    #[command(verbatim_doc_comment)]
    Bench(commands::bench::BenchArgs),
    /// Serve the guard over HTTP: the `/v1` calls (each body is the inner object of the replay
    /// line of that kind, answered as replay answers), the signed webhook, and `/metrics` and
    /// `/healthz` on a separate admin address. Prints both addresses when ready; SIGTERM and
    /// Ctrl-C drain the requests in flight and close the store.
    ///
    /// Example:
    ///   waguard serve --db ./waguard.db --listen 127.0.0.1:8080 --admin-listen 127.0.0.1:9090 \
    ///     --tokens-file tokens.txt --app-secret s3cret --verify-token v3rify
    ///   curl -H "Authorization: Bearer $TOKEN" -d '{"from": "100000001", "to": "+33612345678", "message": "free_form"}' http://127.0.0.1:8080/v1/check
    #[command(verbatim_doc_comment)]
    Serve(commands::serve::ServeArgs),
    /// Create or upgrade the PostgreSQL store's schema (run it as the database owner; services
    /// can then connect with a role that has only read/write grants).
    ///
    /// Example:
    ///   waguard migrate --postgres postgres://owner@db/app --grants-for app | psql ...
    #[command(verbatim_doc_comment)]
    Migrate(commands::migrate::MigrateArgs),
    /// Print the default policy, to start a policy file.
    ///
    /// Example:
    ///   waguard policy --format toml > policy.toml
    #[command(verbatim_doc_comment)]
    Policy(commands::policy::PolicyCmdArgs),
}

/// Parses the command line, runs the subcommand, and returns the exit status: 0 success, 1 some
/// input failed (replay lines, webhook items), 2 the command could not run.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The server handles requests on every core; the other commands are one task each.
    let mut builder = if matches!(cli.command, Command::Serve(_)) {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("waguard: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Replay(args) => commands::replay::run(args).await,
            Command::Check(args) => commands::check::run(args).await,
            Command::Ingest(args) => commands::ingest::run(args).await,
            Command::Show(args) => commands::show::run(args).await,
            Command::Templates(args) => commands::templates::run(args).await,
            Command::Forget(args) => commands::show::forget(args).await,
            Command::Export(args) => commands::export::export(args).await,
            Command::Import(args) => commands::export::import(args).await,
            Command::Policy(args) => commands::policy::run(args),
            Command::Bench(args) => commands::bench::run(args).await,
            Command::Serve(args) => commands::serve::run(args).await,
            Command::Migrate(args) => commands::migrate::run(args).await,
            Command::Verify(args) => commands::verify::run(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!(
                "waguard: {}",
                answer::shorten(&answer::one_line(e.as_ref()))
            );
            ExitCode::from(2)
        }
    }
}
