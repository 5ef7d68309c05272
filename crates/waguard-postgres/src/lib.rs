//! # waguard-postgres
//!
//! [`PostgresStore`]: the waguard [`Store`] on PostgreSQL, for services that run several
//! instances (replicas behind a load balancer, workers on several machines) and must all see
//! the same windows, budgets and opt-outs.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use waguard::{ContactKey, Event, Guard, KeyedEvent, Outgoing, Policy, Timestamp};
//! use waguard_postgres::{PostgresOptions, PostgresStore};
//!
//! // Connects, and creates or upgrades the schema `waguard` if it is missing or behind.
//! let store = PostgresStore::connect("postgres://postgres@127.0.0.1:5432/postgres").await?;
//! // Or with options:
//! let _other = PostgresStore::connect_with(
//!     "postgres://app:secret@db.internal/app?sslmode=verify-full&sslrootcert=/etc/ssl/db-ca.pem",
//!     PostgresOptions::default().with_pool_size(32).with_schema("waguard_eu"),
//! )
//! .await?;
//!
//! let guard = Guard::new(store, Policy::default())?;
//! let key: ContactKey = "100000001/p:33612345678".parse()?;
//! let at = Timestamp::parse_rfc3339("2026-03-01T12:00:00Z")?;
//! let inbound = Event::Inbound { at, text: None, referral: false };
//! // When `ingest` returns, the events are committed: acknowledge the webhook now.
//! guard.ingest([KeyedEvent::Contact { key: key.clone(), event: inbound }]).await?;
//! // Every instance sharing the database now sees the open window.
//! assert!(guard.check(&key, Outgoing::FreeForm, at).await?.permits(Outgoing::FreeForm));
//! # Ok(())
//! # }
//! ```
//!
//! # Why tokio-postgres and deadpool-postgres
//! [tokio-postgres](https://docs.rs/tokio-postgres) is the maintained asynchronous client
//! underneath most of the Rust PostgreSQL ecosystem. It speaks the binary protocol with
//! prepared statements and **pipelines** the statements a task sends on one connection without
//! waiting for each answer, which is what keeps a batch to a few round trips.
//! [deadpool-postgres](https://docs.rs/deadpool-postgres) adds a small, fast pool and a
//! per-connection cache of prepared statements (`prepare_cached`), so a `check` is exactly one
//! round trip: one `Execute` of an already prepared statement. sqlx was the alternative: it
//! would bring compile-time checked queries (which need a database at build time, or an
//! offline cache to maintain) and a heavier per-query path, and this crate has a dozen fixed
//! statements that its tests run against a real server anyway.
//!
//! # TLS
//! Connections use TLS through rustls as libpq's `sslmode` says (the URL's `sslmode`
//! parameter, or [`PostgresOptions::with_ssl_mode`], which wins): `disable`, `prefer` (the
//! default: TLS when the server offers it, certificate not checked), `require` (TLS, not
//! checked), `verify-ca` (signed by a trusted CA) and `verify-full` (signed by a trusted CA and
//! naming the host). The trusted CAs are those of the CA file (`sslrootcert=PATH` in the URL, or
//! [`PostgresOptions::with_ca_file`]; with `require`, a CA file makes it check as `verify-ca`,
//! as libpq does), else the bundled Mozilla roots (webpki-roots). Managed PostgreSQL wants
//! `sslmode=verify-full&sslrootcert=PROVIDER-CA.pem`. Failures are [`ErrorKind::Tls`].
//! [`RustlsConnect`] is the connector, usable with pools of your own.
//!
//! # Time-outs
//! Every wait is bounded, with the defaults of [`PostgresOptions`] (its documentation has the
//! table): the pool's wait for a free connection (5 s, [`ErrorKind::PoolTimeout`]), connecting
//! (5 s), the check of a returned connection (5 s), and per session `statement_timeout` (30 s,
//! [`ErrorKind::StatementTimeout`]) and `lock_timeout` (5 s, [`ErrorKind::LockTimeout`]), plus
//! TCP keepalives. A write that meets a row locked by another session (a long transaction
//! holding `FOR UPDATE`) fails after the lock time-out instead of hanging, and the server
//! stops waiting too. None of these expiries leaves a write half done: the server rolls the
//! statement back, and [`PostgresError::write_may_have_happened`] is `false`.
//!
//! # Migrations and least privilege
//! Connecting reads the schema's version with one read-only query. When it is current, that
//! is all: a role with only `USAGE` on the schema, `SELECT, INSERT, UPDATE, DELETE` on its
//! tables and `USAGE` on its sequence ([`PostgresStore::grant_statements`]) connects and runs
//! every operation. When the schema is missing or behind, connecting migrates it
//! ([`Migrations::OnConnect`], the default) if the role may; a role that may not gets
//! [`ErrorKind::MigrationNeeded`], saying to run [`PostgresStore::migrate`] as the schema's
//! owner and listing the grants. [`Migrations::Never`] keeps connecting free of DDL
//! altogether.
//!
//! # Your own pool
//! [`PostgresStore::from_pool`] takes a deadpool-postgres pool you built (your TLS connector,
//! hooks, tracing); [`PostgresStore::connect_config`] a `tokio_postgres::Config` and any TLS
//! connector. [`PostgresOptions::configure`] and [`PostgresOptions::pool_timeouts`] give such a
//! pool the store's session settings and time-outs.
//!
//! # Schema
//! Everything lives in one PostgreSQL schema (default `waguard`; see
//! [`PostgresOptions::with_schema`]), created and upgraded by embedded migrations (on connect
//! when needed and allowed, or by [`PostgresStore::migrate`]):
//!
//! ```sql
//! CREATE TABLE waguard.contacts (
//!     business   text COLLATE "C" NOT NULL,   -- the business phone number id
//!     contact    text COLLATE "C" NOT NULL,   -- TAG:ID, e.g. p:33612345678
//!     state      bytea NOT NULL,              -- the core's encoded ConversationState
//!     version    bigint NOT NULL,             -- from waguard.record_version, never reused
//!     updated_at timestamptz NOT NULL DEFAULT now(),
//!     PRIMARY KEY (business, contact)
//! );
//! CREATE TABLE waguard.senders (
//!     business   text COLLATE "C" NOT NULL PRIMARY KEY,
//!     state      bytea NOT NULL,              -- the core's encoded SenderState
//!     version    bigint NOT NULL,
//!     updated_at timestamptz NOT NULL DEFAULT now()
//! );
//! CREATE SEQUENCE waguard.record_version;
//! CREATE TABLE waguard.schema_version (id integer PRIMARY KEY, version integer, applied_at timestamptz);
//! ```
//!
//! Migrations run in one transaction under `pg_advisory_xact_lock` (a key derived from the
//! schema name) and use `IF NOT EXISTS`: instances starting together migrate one after the
//! other, and the later ones find the work done. A schema written by a newer waguard-postgres
//! is refused with [`ErrorKind::NewerSchema`] rather than misread.
//!
//! # Concurrency and locking
//! - A read ([`load`](Store::load), and so `Guard::check`) is one prepared `SELECT` that
//!   returns the contact record **and** its business's sender record (two scalar subselects,
//!   each a primary-key lookup), in one round trip.
//! - [`update`](Store::update) (so `Guard::reserve`, `forget`, ...) is an optimistic
//!   **compare-and-swap** on the row's `version`: read (one `SELECT` of both records and the
//!   contact row's version, through `LEFT JOIN`s), run the closure, then
//!   `UPDATE ... WHERE version = $seen` (or `INSERT ... ON CONFLICT DO NOTHING`
//!   when there was no row, or `DELETE ... WHERE version = $seen`). If another writer got there
//!   first, no row is affected and the closure runs again on the new record. Two round trips,
//!   no transaction held open while the closure runs, nothing lost. Versions come from a
//!   sequence, so a record deleted and created again never reuses a version a slow writer may
//!   still hold (no ABA).
//! - [`apply_batch`](Store::apply_batch) (so `Guard::ingest`) is one transaction: it locks the
//!   existing rows of the batch with `SELECT ... ORDER BY business, contact FOR UPDATE` (a
//!   stable key order, contacts before senders, so that concurrent batches cannot deadlock),
//!   reads the sender records its contact closures need (without locking those: a busy business
//!   number does not serialise its contacts), runs every closure, then writes with one
//!   pipelined `UPDATE`/`INSERT`/`DELETE` per kind over `unnest`ed arrays and commits. The
//!   transaction plans its statements for the arrays it carries (`SET LOCAL plan_cache_mode =
//!   force_custom_plan`): a plan cached while the table was small would otherwise scan the
//!   whole table on every batch. A row
//!   that was missing when locked but was created concurrently makes the `INSERT ... ON
//!   CONFLICT DO NOTHING` fall short: the transaction is rolled back and the batch runs again
//!   (as it does on a deadlock or serialization failure).
//! - Writers of other processes and machines take part in exactly the same protocol through the
//!   database, so two instances sharing a schema lose no update and never over-grant a
//!   reservation.
//!
//! # Durability
//! With the default, [`Durability::EachWrite`], every write is a committed PostgreSQL
//! transaction when its call returns `Ok` (with the server's default `synchronous_commit =
//! on`: on the server's disk, and on its synchronous standbys if any), and
//! [`flush`](Store::flush) has nothing left to do. `apply_batch` is one commit: all of the
//! batch or none of it. The price is one WAL flush (`fsync`) of the server per single-key
//! write: on a slow disk that, not the two round trips, is most of a `reserve`'s latency
//! (docs/performance.md has figures).
//!
//! [`Durability::Deferred`] commits single-key writes (`reserve`, `forget`, ...) with
//! `synchronous_commit = off`: still atomic, at once visible to every instance, and kept
//! across a clean server restart, but a server crash may lose the last few hundred
//! milliseconds of them. Batches stay durable on return, and `flush` makes every write that
//! returned before it durable (one synchronous commit, which flushes the server's WAL up to
//! it).
//!
//! # When an outcome is unknown
//! If the connection breaks **after** a write was sent (server restart, network cut), the
//! store cannot know whether the server committed it: the error's source is a
//! [`PostgresError`] of kind [`ErrorKind::OutcomeUnknown`]. It never retries such a write
//! itself.
//! - For `ingest` (and `opt_out`, `record_send_error`, `forget`, ...), call again: applying an
//!   event twice changes nothing (rule E1).
//! - For `reserve`, which is not idempotent: count the reservation as **taken** (a slot of the
//!   pair budget may be spent) and do **not** send on that reservation; reserve again (and
//!   send only on an allowed decision) when the store answers again. With an idempotency key,
//!   the resend cap (G1) then counts the lost attempt too, which errs on the side of sending
//!   less.
//!
//! Broken or refused connections before anything was written (getting a connection, the read
//! of an update, any statement of a batch before its commit) are retried a few times, with a
//! short back-off, then returned with kind [`ErrorKind::ConnectionLost`] or
//! [`ErrorKind::Unreachable`]. Time-outs are returned at once: their wait was the bound.
//!
//! # Errors
//! Every failure of the server or the connection is a [`StoreError::Backend`] naming the
//! operation (`connect`, `load`, `update`, `apply_batch`, ...) and, where there is one, the
//! record (contact key or business number); its source is a [`PostgresError`] whose message
//! names the server (URL, password replaced by `***`), quotes the server's own message and says
//! what to do ("is PostgreSQL running at URL?" for a refused connection, the user and
//! `pg_hba.conf` for a refused password, `createdb` for a missing database, the CA file and
//! host for a TLS failure, the grants for a missing privilege, "upgrade" for a schema of a
//! newer version), with advice that fits its kind: only [`ErrorKind::OutcomeUnknown`] says the
//! write may have happened. Downcast the source to branch on [`PostgresError::kind`] or
//! [`PostgresError::write_may_have_happened`]. (The `StoreError::Backend` wrapping it appends
//! a generic "the operation was not applied, retry it"; for an outcome-unknown failure, the
//! source's advice is the one to follow.)
//! Records that cannot be decoded are the guard's [`StoreError::Decode`], naming the key, as
//! with every store.
//!
//! # Tests
//! The crate's tests need a real server: they read its URL from `WAGUARD_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and fail, saying how to start one, when
//! nothing answers; `scripts/ensure-postgres` starts the local cluster (installing PostgreSQL
//! first if needed). Each conformance case (`waguard::testing`, with this crate's feature
//! `testing`, which implements its `RawAccess` hook) runs in a schema of its own, dropped
//! afterwards: `cargo test -p waguard-postgres --all-features`.

mod error;
mod schema;
mod tls;

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{
    Manager, ManagerConfig, Pool, PoolError, QueueMode, RecyclingMethod, Runtime, TimeoutType,
};
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Socket};
use waguard::{
    Batch, BatchOp, BusinessId, ContactKey, ContactUpdate, ReadFn, RecordKey, ScanStream,
    SenderUpdate, Store, StoreError, UpdateAction,
};

/// The pool crate, re-exported: [`PostgresStore::pool`] returns its `Pool`.
pub use deadpool_postgres;
pub use error::{redact_url, ErrorKind, PostgresError};
pub use schema::SCHEMA_VERSION;
pub use tls::{RustlsConnect, RustlsConnector, RustlsStream, SslMode, TlsSetupError};
/// The client crate, re-exported: [`PostgresError::driver_error`] returns its `Error`.
pub use tokio_postgres;

/// When a write is durable (see the crate documentation, "Durability").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// The default. Every write is committed with the server's `synchronous_commit` setting
    /// (`on` unless the server says otherwise): when a call returns `Ok`, its write is on the
    /// server's disk. Each single-key write (`reserve`, `forget`, `update`, ...) waits for one
    /// WAL flush of the server; concurrent writers share flushes.
    #[default]
    EachWrite,
    /// Single-key writes ([`update`](Store::update), [`update_sender`](Store::update_sender),
    /// [`remove`](Store::remove), so `reserve`, `forget`, `opt_out` with one key...) commit
    /// with `synchronous_commit = off`: they are visible to every instance at once, atomic and
    /// never lost by a server *restart*, but a server *crash* (or power loss) may lose the last
    /// few hundred milliseconds of them (PostgreSQL's `wal_writer_delay` times three at most).
    /// Batches ([`apply_batch`](Store::apply_batch), so `Guard::ingest`) stay durable on return,
    /// and [`flush`](Store::flush) makes every write that returned before it durable.
    Deferred,
}

/// Whether connecting may create or upgrade the schema (see the crate documentation,
/// "Migrations and least privilege").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Migrations {
    /// The default. Connecting reads the schema's version (read-only); only when the schema is
    /// missing or older than this build does it run the migrations, which needs a role that
    /// may create the schema. A role without that privilege connects to an up-to-date schema
    /// all the same.
    #[default]
    OnConnect,
    /// Connecting never changes the schema: a schema that is missing or behind is an error of
    /// kind [`ErrorKind::MigrationNeeded`]. Migrations then run explicitly, with
    /// [`PostgresStore::migrate`] (for instance from a deployment job with an owner role).
    Never,
}

/// How to connect a [`PostgresStore`]. Every time-out is a default that the URL can override
/// where PostgreSQL has a URL parameter for it (`connect_timeout`, `keepalives_idle`,
/// `options=-c lock_timeout=...`).
///
/// | option | default | what expires |
/// |---|---|---|
/// | [`pool_wait_timeout`](Self::pool_wait_timeout) | 5 s | waiting for a free connection of the pool ([`ErrorKind::PoolTimeout`]) |
/// | [`connect_timeout`](Self::connect_timeout) | 5 s | opening a connection, TLS and authentication included ([`ErrorKind::Unreachable`]) |
/// | [`recycle_timeout`](Self::recycle_timeout) | 5 s | checking a returned connection before reuse (the connection is replaced) |
/// | [`statement_timeout`](Self::statement_timeout) | 30 s | one statement on the server ([`ErrorKind::StatementTimeout`]) |
/// | [`lock_timeout`](Self::lock_timeout) | 5 s | waiting for a row lock held by another session ([`ErrorKind::LockTimeout`]) |
/// | [`keepalives_idle`](Self::keepalives_idle) | 60 s | TCP keepalives: a silent peer is dropped after this plus 3 probes 10 s apart |
///
/// None of these expiries leaves a write half done: the server rolls the statement back, and
/// the error says "nothing was written" ([`PostgresError::write_may_have_happened`] is
/// `false`).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PostgresOptions {
    /// The most connections the store's pool opens (default 16). Each concurrent store call
    /// holds one connection while it runs.
    pub pool_size: usize,
    /// The PostgreSQL schema holding the tables (default `waguard`): lower-case ASCII letters,
    /// digits and `_`, at most 63 bytes. Services sharing a schema share their state.
    pub schema: String,
    /// How long to wait for a new connection (TCP, TLS and authentication) before giving up
    /// (default 5 s), unless the URL sets `connect_timeout` itself.
    pub connect_timeout: Duration,
    /// How long a call waits for a free connection when all of the pool's are busy (default
    /// 5 s; `None` waits for ever).
    pub pool_wait_timeout: Option<Duration>,
    /// How long the check of a returned connection may take before it is replaced (default
    /// 5 s).
    pub recycle_timeout: Option<Duration>,
    /// The session's `statement_timeout` (default 30 s; `None` keeps the server's or role's
    /// setting).
    pub statement_timeout: Option<Duration>,
    /// The session's `lock_timeout` (default 5 s; `None` keeps the server's or role's setting,
    /// by default to wait for ever).
    pub lock_timeout: Option<Duration>,
    /// TCP keepalives: idle time before the first probe (default 60 s, then 3 probes 10 s
    /// apart); `None` turns them off.
    pub keepalives_idle: Option<Duration>,
    /// TLS: `None` (the default) takes the URL's `sslmode`, else [`SslMode::Prefer`]; a mode
    /// set here wins over the URL's.
    pub ssl_mode: Option<SslMode>,
    /// A PEM file of the CA certificates to trust (libpq's `sslrootcert`, which the URL can
    /// also give). Without one, `verify-ca` and `verify-full` trust the bundled Mozilla roots
    /// (webpki-roots).
    pub ca_file: Option<PathBuf>,
    /// Whether connecting may create or upgrade the schema (default
    /// [`Migrations::OnConnect`]).
    pub migrations: Migrations,
    /// How many times an update or a batch runs again after losing a race before it gives up
    /// with [`ErrorKind::Contention`] (default 10 000; each try backs off a little more, up to
    /// 5 ms).
    pub max_conflicts: u32,
    /// When writes are durable (default [`Durability::EachWrite`]).
    pub durability: Durability,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            pool_size: 16,
            schema: "waguard".to_owned(),
            connect_timeout: Duration::from_secs(5),
            pool_wait_timeout: Some(Duration::from_secs(5)),
            recycle_timeout: Some(Duration::from_secs(5)),
            statement_timeout: Some(Duration::from_secs(30)),
            lock_timeout: Some(Duration::from_secs(5)),
            keepalives_idle: Some(Duration::from_secs(60)),
            ssl_mode: None,
            ca_file: None,
            migrations: Migrations::OnConnect,
            max_conflicts: 10_000,
            durability: Durability::EachWrite,
        }
    }
}

impl PostgresOptions {
    /// These options with another pool size (at least 1).
    pub fn with_pool_size(mut self, connections: usize) -> Self {
        self.pool_size = connections.max(1);
        self
    }

    /// These options with another schema name (checked by [`PostgresStore::connect_with`]).
    pub fn with_schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// These options with another connect time-out.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// These options with another wait for a free connection of the pool.
    pub fn with_pool_wait_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.pool_wait_timeout = timeout;
        self
    }

    /// These options with another time-out for checking a returned connection.
    pub fn with_recycle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.recycle_timeout = timeout;
        self
    }

    /// These options with another `statement_timeout`.
    pub fn with_statement_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.statement_timeout = timeout;
        self
    }

    /// These options with another `lock_timeout`.
    pub fn with_lock_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// These options with other TCP keepalives (`None`: off).
    pub fn with_keepalives_idle(mut self, idle: Option<Duration>) -> Self {
        self.keepalives_idle = idle;
        self
    }

    /// These options with a TLS mode, which wins over the URL's `sslmode`.
    pub fn with_ssl_mode(mut self, mode: SslMode) -> Self {
        self.ssl_mode = Some(mode);
        self
    }

    /// These options trusting the CA certificates of a PEM file.
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// These options with another migration policy.
    pub fn with_migrations(mut self, migrations: Migrations) -> Self {
        self.migrations = migrations;
        self
    }

    /// These options with another durability.
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// These options with another bound on retries after conflicts.
    pub fn with_max_conflicts(mut self, tries: u32) -> Self {
        self.max_conflicts = tries;
        self
    }

    /// Sets up a connection configuration as the store's own pool does, for a pool of your
    /// own ([`PostgresStore::from_pool`]): the connect time-out and keepalives (unless already
    /// set), the application name `waguard` (unless set), and the session settings
    /// (`statement_timeout`, `lock_timeout`, and `synchronous_commit = off` for
    /// [`Durability::Deferred`]) as startup `options`, before any the configuration already
    /// has (so that those win). TLS is the connector's business, not the configuration's.
    pub fn configure(&self, config: &mut tokio_postgres::Config) {
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(self.connect_timeout);
        }
        if config.get_application_name().is_none() {
            config.application_name("waguard");
        }
        match self.keepalives_idle {
            Some(idle) => {
                if config.get_keepalives()
                    && config.get_keepalives_idle() == KEEPALIVES_IDLE_DEFAULT
                {
                    config
                        .keepalives_idle(idle)
                        .keepalives_interval(Duration::from_secs(10))
                        .keepalives_retries(3);
                }
            }
            None => {
                config.keepalives(false);
            }
        }
        let mut session = Vec::new();
        if let Some(t) = self.statement_timeout {
            session.push(format!("-c statement_timeout={}", t.as_millis().max(1)));
        }
        if let Some(t) = self.lock_timeout {
            session.push(format!("-c lock_timeout={}", t.as_millis().max(1)));
        }
        if self.durability == Durability::Deferred {
            // Session default of the pool's connections; batches and flush turn it back on.
            session.push("-c synchronous_commit=off".to_owned());
        }
        if let Some(own) = config.get_options() {
            if !own.is_empty() {
                session.push(own.to_owned());
            }
        }
        if !session.is_empty() {
            config.options(session.join(" "));
        }
    }

    /// The pool time-outs of these options ([`pool_wait_timeout`](Self::pool_wait_timeout),
    /// [`connect_timeout`](Self::connect_timeout) for creating a connection,
    /// [`recycle_timeout`](Self::recycle_timeout)), for a pool of your own.
    pub fn pool_timeouts(&self) -> deadpool_postgres::Timeouts {
        let mut timeouts = deadpool_postgres::Timeouts::new();
        timeouts.wait = self.pool_wait_timeout;
        // Connecting resolves, opens, negotiates TLS and authenticates: the connect time-out
        // bounds each address tried, this bounds the whole.
        timeouts.create = Some(self.connect_timeout.saturating_mul(2));
        timeouts.recycle = self.recycle_timeout;
        timeouts
    }
}

/// tokio-postgres's default idle time before keepalive probes (2 hours).
const KEEPALIVES_IDLE_DEFAULT: Duration = Duration::from_secs(2 * 60 * 60);

/// What [`PostgresStore::migrate`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Migrated {
    /// The schema's version before (0: it did not exist).
    pub from_version: i32,
    /// The schema's version now ([`SCHEMA_VERSION`]).
    pub to_version: i32,
}

/// The SQL of every statement, with the schema name filled in (the keys of the statement
/// cache).
struct Sql {
    read: String,
    load: String,
    load_sender: String,
    all_senders: String,
    insert_contact: String,
    update_contact: String,
    delete_contact: String,
    remove_contact: String,
    insert_sender: String,
    update_sender: String,
    delete_sender: String,
    lock_contacts: String,
    lock_senders: String,
    read_senders: String,
    batch_update_contacts: String,
    batch_insert_contacts: String,
    batch_delete_contacts: String,
    batch_update_senders: String,
    batch_insert_senders: String,
    batch_delete_senders: String,
    scan_first: String,
    scan_next: String,
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    put_contact: String,
    #[cfg_attr(not(feature = "testing"), allow(dead_code))]
    put_sender: String,
}

impl Sql {
    fn new(schema: &str) -> Self {
        let s = format!("\"{schema}\"");
        let next = format!("nextval('{s}.record_version')");
        Sql {
            read: format!(
                "SELECT (SELECT state FROM {s}.contacts WHERE business = $1 AND contact = $2),
                        (SELECT state FROM {s}.senders WHERE business = $1)"
            ),
            load: format!(
                "SELECT c.state, c.version, s.state FROM (SELECT 1) AS one
                 LEFT JOIN {s}.contacts c ON c.business = $1 AND c.contact = $2
                 LEFT JOIN {s}.senders s ON s.business = $1"
            ),
            load_sender: format!("SELECT state, version FROM {s}.senders WHERE business = $1"),
            all_senders: format!("SELECT business, state FROM {s}.senders ORDER BY business"),
            insert_contact: format!(
                "INSERT INTO {s}.contacts (business, contact, state, version)
                 VALUES ($1, $2, $3, {next}) ON CONFLICT DO NOTHING"
            ),
            update_contact: format!(
                "UPDATE {s}.contacts SET state = $3, version = {next}, updated_at = now()
                 WHERE business = $1 AND contact = $2 AND version = $4"
            ),
            delete_contact: format!(
                "DELETE FROM {s}.contacts WHERE business = $1 AND contact = $2 AND version = $3"
            ),
            remove_contact: format!(
                "DELETE FROM {s}.contacts WHERE business = $1 AND contact = $2"
            ),
            insert_sender: format!(
                "INSERT INTO {s}.senders (business, state, version)
                 VALUES ($1, $2, {next}) ON CONFLICT DO NOTHING"
            ),
            update_sender: format!(
                "UPDATE {s}.senders SET state = $2, version = {next}, updated_at = now()
                 WHERE business = $1 AND version = $3"
            ),
            delete_sender: format!(
                "DELETE FROM {s}.senders WHERE business = $1 AND version = $2"
            ),
            lock_contacts: format!(
                "SELECT c.business, c.contact, c.state FROM {s}.contacts c
                 JOIN unnest($1::text[], $2::text[]) AS k(business, contact)
                   ON c.business = k.business AND c.contact = k.contact
                 ORDER BY c.business, c.contact FOR UPDATE OF c"
            ),
            lock_senders: format!(
                "SELECT business, state FROM {s}.senders WHERE business = ANY($1::text[])
                 ORDER BY business FOR UPDATE"
            ),
            read_senders: format!(
                "SELECT business, state FROM {s}.senders WHERE business = ANY($1::text[])"
            ),
            batch_update_contacts: format!(
                "UPDATE {s}.contacts c SET state = u.state, version = {next}, updated_at = now()
                 FROM unnest($1::text[], $2::text[], $3::bytea[]) AS u(business, contact, state)
                 WHERE c.business = u.business AND c.contact = u.contact"
            ),
            batch_insert_contacts: format!(
                "INSERT INTO {s}.contacts (business, contact, state, version)
                 SELECT u.business, u.contact, u.state, {next}
                 FROM unnest($1::text[], $2::text[], $3::bytea[]) AS u(business, contact, state)
                 ORDER BY 1, 2
                 ON CONFLICT DO NOTHING"
            ),
            batch_delete_contacts: format!(
                "DELETE FROM {s}.contacts c USING unnest($1::text[], $2::text[]) AS u(business, contact)
                 WHERE c.business = u.business AND c.contact = u.contact"
            ),
            batch_update_senders: format!(
                "UPDATE {s}.senders r SET state = u.state, version = {next}, updated_at = now()
                 FROM unnest($1::text[], $2::bytea[]) AS u(business, state)
                 WHERE r.business = u.business"
            ),
            batch_insert_senders: format!(
                "INSERT INTO {s}.senders (business, state, version)
                 SELECT u.business, u.state, {next}
                 FROM unnest($1::text[], $2::bytea[]) AS u(business, state)
                 ORDER BY 1
                 ON CONFLICT DO NOTHING"
            ),
            batch_delete_senders: format!(
                "DELETE FROM {s}.senders r WHERE r.business = ANY($1::text[])"
            ),
            scan_first: format!(
                "SELECT business, contact, state FROM {s}.contacts
                 ORDER BY business, contact LIMIT $1"
            ),
            scan_next: format!(
                "SELECT business, contact, state FROM {s}.contacts
                 WHERE (business, contact) > ($1, $2)
                 ORDER BY business, contact LIMIT $3"
            ),
            put_contact: format!(
                "INSERT INTO {s}.contacts (business, contact, state, version)
                 VALUES ($1, $2, $3, {next})
                 ON CONFLICT (business, contact) DO UPDATE
                 SET state = EXCLUDED.state, version = EXCLUDED.version, updated_at = now()"
            ),
            put_sender: format!(
                "INSERT INTO {s}.senders (business, state, version)
                 VALUES ($1, $2, {next})
                 ON CONFLICT (business) DO UPDATE
                 SET state = EXCLUDED.state, version = EXCLUDED.version, updated_at = now()"
            ),
        }
    }
}

/// How many times a failure before any write (getting a connection, a read) is retried.
const READ_RETRIES: u32 = 3;
/// Records per page of [`Store::scan`].
const SCAN_PAGE: i64 = 500;

/// The waguard [`Store`] on PostgreSQL: one state shared by every instance of a service. See
/// the [crate] documentation for the schema, the locking strategy and durability.
///
/// Cheap to share: wrap it in an `Arc` (or give it to a `Guard`, which is `Clone`); it holds a
/// pool of connections.
pub struct PostgresStore {
    pool: Pool,
    url: String,
    schema: String,
    sql: Sql,
    max_conflicts: u32,
    durability: Durability,
    pool_wait: Option<Duration>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.pool.status();
        f.debug_struct("PostgresStore")
            .field("url", &self.url)
            .field("schema", &self.schema)
            .field("durability", &self.durability)
            .field("pool_size", &status.max_size)
            .field("connections", &status.size)
            .finish_non_exhaustive()
    }
}

/// Why an attempt of a write failed.
enum Attempt {
    /// Lost a race (or a deadlock, or the connection broke before anything was written): run
    /// again.
    Again(Option<PostgresError>),
    /// Give up with this error.
    Fail(StoreError),
}

/// A connection configuration read from a URL, and the TLS it asks for.
struct Target {
    config: tokio_postgres::Config,
    redacted: String,
    mode: SslMode,
    ca_file: Option<PathBuf>,
}

impl Target {
    fn parse(url: &str, options: &PostgresOptions) -> Result<Self, PostgresError> {
        let redacted = redact_url(url);
        let split = tls::split_tls_params(url);
        let url_mode = match &split.sslmode {
            None => None,
            Some(text) => Some(SslMode::parse(text).ok_or_else(|| {
                PostgresError::new(
                    ErrorKind::Config,
                    format!(
                        "the PostgreSQL URL {redacted} has sslmode={text}: use disable, prefer, \
                         require, verify-ca or verify-full"
                    ),
                )
            })?),
        };
        let ca_file = options
            .ca_file
            .clone()
            .or_else(|| split.sslrootcert.as_ref().map(PathBuf::from));
        let mode = options.ssl_mode.or(url_mode).unwrap_or_default();
        let mut config: tokio_postgres::Config = split.rest.parse().map_err(|e| {
            PostgresError::new(
                ErrorKind::Config,
                format!(
                    "cannot read the PostgreSQL URL {redacted}: {e}; expected \
                     postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=verify-full]"
                ),
            )
        })?;
        config.ssl_mode(mode.negotiation());
        options.configure(&mut config);
        Ok(Target {
            config,
            redacted,
            mode,
            ca_file,
        })
    }

    /// A pool manager for this target, with its TLS connector.
    fn manager(self, url: &str) -> Result<(Manager, String), PostgresError> {
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = if self.mode == SslMode::Disable {
            Manager::from_config(self.config, NoTls, manager_config)
        } else {
            let tls = RustlsConnect::new(self.mode, self.ca_file.as_deref()).map_err(|e| {
                PostgresError::with_source(
                    ErrorKind::Tls,
                    format!(
                        "cannot set up TLS for PostgreSQL at {}: {e}",
                        redact_url(url)
                    ),
                    Box::new(e),
                )
            })?;
            Manager::from_config(self.config, tls, manager_config)
        };
        Ok((manager, self.redacted))
    }
}

fn check_schema_name(schema: &str) -> Result<(), PostgresError> {
    if schema::valid_schema_name(schema) {
        return Ok(());
    }
    Err(PostgresError::new(
        ErrorKind::Config,
        format!(
            "`{schema}` is not a usable schema name: use lower-case ASCII letters, digits and \
             `_`, not starting with a digit or `pg_`, at most 63 bytes"
        ),
    ))
}

fn build_pool(
    manager: Manager,
    options: &PostgresOptions,
    url: &str,
) -> Result<Pool, PostgresError> {
    Pool::builder(manager)
        .max_size(options.pool_size.max(1))
        .timeouts(options.pool_timeouts())
        // The most recently used connection first: its server process and connection task are
        // warm, and idle ones stay idle.
        .queue_mode(QueueMode::Lifo)
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| {
            PostgresError::new(
                ErrorKind::Config,
                format!("cannot build the connection pool for {url}: {e}"),
            )
        })
}

impl PostgresStore {
    /// Connects to the PostgreSQL server at `url` (`postgres://user:password@host:port/db`, or
    /// the `key=value` form; `sslmode` and `sslrootcert` as libpq reads them) with default
    /// [`PostgresOptions`], and creates or upgrades the schema `waguard` if it is missing or
    /// behind (see [`Migrations`]).
    ///
    /// Fails with a [`StoreError::Backend`] (operation `connect`) whose source is a
    /// [`PostgresError`] naming the URL (password redacted) and what to do: nothing listening
    /// ("is PostgreSQL running at URL?"), authentication refused, missing database, TLS
    /// refused or not trusted, a schema to migrate that this role may not migrate, a schema
    /// of a newer version.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, PostgresOptions::default()).await
    }

    /// Like [`connect`](PostgresStore::connect), with options (pool size, schema name,
    /// time-outs, TLS, ...).
    pub async fn connect_with(url: &str, options: PostgresOptions) -> Result<Self, StoreError> {
        let fail = |e: PostgresError| e.into_store("connect", None);
        check_schema_name(&options.schema).map_err(fail)?;
        let (manager, redacted) = Target::parse(url, &options)
            .and_then(|target| target.manager(url))
            .map_err(fail)?;
        let pool = build_pool(manager, &options, &redacted).map_err(fail)?;
        Self::open(pool, Some(redacted), options).await
    }

    /// Connects with a connection configuration and a TLS connector of your own (any
    /// tokio-postgres `MakeTlsConnect`: [`RustlsConnect`], `postgres-native-tls`, a connector
    /// that traces, ...). `options` adds what [`PostgresOptions::configure`] sets, and sizes
    /// the pool; its TLS fields are not used.
    pub async fn connect_config<T>(
        mut config: tokio_postgres::Config,
        tls: T,
        options: PostgresOptions,
    ) -> Result<Self, StoreError>
    where
        T: MakeTlsConnect<Socket> + Clone + Sync + Send + 'static,
        T::Stream: Sync + Send,
        T::TlsConnect: Sync + Send,
        <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
    {
        let fail = |e: PostgresError| e.into_store("connect", None);
        check_schema_name(&options.schema).map_err(fail)?;
        options.configure(&mut config);
        let label = describe_config(&config);
        let manager = Manager::from_config(
            config,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = build_pool(manager, &options, &label).map_err(fail)?;
        Self::open(pool, Some(label), options).await
    }

    /// A store on a deadpool-postgres pool of your own: its TLS connector, its hooks, its
    /// tracing, its sizing and time-outs. `options` gives the schema, the durability, the
    /// migration policy and the conflict bound; its pool and connection fields are not used.
    ///
    /// The session settings are the pool's business: build its `tokio_postgres::Config` with
    /// [`PostgresOptions::configure`] (which sets `statement_timeout`, `lock_timeout` and, for
    /// [`Durability::Deferred`], `synchronous_commit = off`) and its pool with
    /// [`PostgresOptions::pool_timeouts`] to get the store's defaults.
    pub async fn from_pool(pool: Pool, options: PostgresOptions) -> Result<Self, StoreError> {
        check_schema_name(&options.schema).map_err(|e| e.into_store("connect", None))?;
        Self::open(pool, None, options).await
    }

    /// Creates or upgrades the schema of `options` at `url` to [`SCHEMA_VERSION`], as the
    /// operator's explicit step when services connect with [`Migrations::Never`] or with a role
    /// that may not create the schema. Run it as a role that may create schemas in the
    /// database (its owner). Instances running it together migrate one after the other; on an
    /// up-to-date schema it changes nothing.
    pub async fn migrate(url: &str, options: PostgresOptions) -> Result<Migrated, StoreError> {
        let fail = |e: PostgresError| e.into_store("migrate", None);
        check_schema_name(&options.schema).map_err(fail)?;
        let options = options.with_pool_size(1);
        let (manager, redacted) = Target::parse(url, &options)
            .and_then(|target| target.manager(url))
            .map_err(fail)?;
        let pool = build_pool(manager, &options, &redacted).map_err(fail)?;
        Self::migrate_pool(&pool, &options.schema).await
    }

    /// Like [`migrate`](PostgresStore::migrate), through a pool of your own.
    pub async fn migrate_pool(pool: &Pool, schema: &str) -> Result<Migrated, StoreError> {
        let fail = |e: PostgresError| e.into_store("migrate", None);
        check_schema_name(schema).map_err(fail)?;
        let mut client = pool.get().await.map_err(|e| {
            pool_error(e, "the given pool", None)
                .0
                .into_store("migrate", None)
        })?;
        let url = server_label(&client).await;
        let from_version = schema::migrate(&mut client, &url, schema)
            .await
            .map_err(fail)?;
        Ok(Migrated {
            from_version,
            to_version: SCHEMA_VERSION,
        })
    }

    /// The statements that give `role` what the store needs on `schema` and nothing more (no
    /// `CREATE`), to run as the schema's owner after [`migrate`](PostgresStore::migrate).
    pub fn grant_statements(schema: &str, role: &str) -> String {
        schema::grants(schema, role)
    }

    /// Checks the schema (and migrates it when allowed) and makes the store.
    async fn open(
        pool: Pool,
        label: Option<String>,
        options: PostgresOptions,
    ) -> Result<Self, StoreError> {
        let fail = |e: PostgresError| e.into_store("connect", None);
        let mut store = PostgresStore {
            pool,
            sql: Sql::new(&options.schema),
            schema: options.schema,
            url: label.unwrap_or_else(|| "the given pool".to_owned()),
            max_conflicts: options.max_conflicts,
            durability: options.durability,
            pool_wait: options.pool_wait_timeout,
        };
        let mut client = store.client("connect", None).await?;
        if store.url == "the given pool" {
            store.url = server_label(&client).await;
        }
        // Read-only first: a role with no privilege to create anything connects to an
        // up-to-date schema without trying to.
        let current = schema::current_version(&client, &store.url, &store.schema)
            .await
            .map_err(fail)?;
        if current > SCHEMA_VERSION {
            return Err(fail(schema::newer(&store.url, &store.schema, current)));
        }
        if current < SCHEMA_VERSION {
            match options.migrations {
                Migrations::OnConnect => {
                    schema::migrate(&mut client, &store.url, &store.schema)
                        .await
                        .map_err(fail)?;
                }
                Migrations::Never => {
                    return Err(fail(schema::migration_needed(
                        &store.url,
                        &store.schema,
                        current,
                        "migrations on connect are off (Migrations::Never)",
                        None,
                    )));
                }
            }
        }
        Ok(store)
    }

    /// The server's URL, password redacted.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The PostgreSQL schema holding this store's tables.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// When this store's writes are durable.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// The connection pool, for statements of your own on the same server (e.g. monitoring or
    /// a baseline in a benchmark). Connections go back to the pool when dropped.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Drops the store's schema with every record in it (`DROP SCHEMA ... CASCADE`): for tests
    /// and tear-down. Other instances using the schema fail from then on.
    pub async fn drop_schema(&self) -> Result<(), StoreError> {
        let client = self.client("drop_schema", None).await?;
        client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS \"{}\" CASCADE",
                self.schema
            ))
            .await
            .map_err(|e| PostgresError::query(&self.url, e, false).into_store("drop_schema", None))
    }

    /// A connection from the pool; connection failures are retried a few times, a pool that
    /// stays busy is not (its wait was the time-out).
    async fn client(
        &self,
        operation: &'static str,
        record: Option<&RecordKey>,
    ) -> Result<deadpool_postgres::Client, StoreError> {
        let mut tries = 0;
        loop {
            let error = match self.pool.get().await {
                Ok(client) => return Ok(client),
                Err(e) => {
                    let (error, retry) = pool_error(e, &self.url, self.pool_wait);
                    if !retry {
                        return Err(error.into_store(operation, record.cloned()));
                    }
                    error
                }
            };
            tries += 1;
            if tries > READ_RETRIES || operation == "connect" {
                return Err(error.into_store(operation, record.cloned()));
            }
            tokio::time::sleep(Duration::from_millis(50 << tries)).await;
        }
    }

    fn query_error(
        &self,
        operation: &'static str,
        record: Option<RecordKey>,
        error: tokio_postgres::Error,
        written: bool,
    ) -> StoreError {
        PostgresError::query(&self.url, error, written).into_store(operation, record)
    }

    /// How a failure before an update's write ends the attempt: a lost connection is tried
    /// again (nothing was written), any other error fails the update.
    fn read_failed<'a>(
        &'a self,
        operation: &'static str,
        record: impl Fn() -> Option<RecordKey> + 'a,
    ) -> impl Fn(tokio_postgres::Error) -> Attempt + 'a {
        move |e| {
            if error::is_connection_error(&e) {
                Attempt::Again(Some(PostgresError::query(&self.url, e, false)))
            } else {
                Attempt::Fail(self.query_error(operation, record(), e, false))
            }
        }
    }

    fn contention(&self, operation: &'static str, record: Option<RecordKey>) -> StoreError {
        PostgresError::new(
            ErrorKind::Contention,
            format!(
                "gave up after {} conflicting tries on PostgreSQL at {}: other writers keep \
                 changing the same records; nothing was written: retry later, or raise \
                 PostgresOptions::max_conflicts",
                self.max_conflicts, self.url
            ),
        )
        .into_store(operation, record)
    }

    /// One read (with retries): runs `read` on the row of `sql` with `params`.
    async fn read_one<T>(
        &self,
        operation: &'static str,
        record: impl Fn() -> Option<RecordKey>,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        read: impl FnOnce(Option<&tokio_postgres::Row>) -> T,
    ) -> Result<T, StoreError> {
        let mut tries = 0;
        loop {
            let client = self.client(operation, record().as_ref()).await?;
            let result = match client.prepare_cached(sql).await {
                Ok(statement) => client.query_opt(&statement, params).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(row) => return Ok(read(row.as_ref())),
                Err(e) if error::is_connection_error(&e) && tries < READ_RETRIES => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(20 << tries)).await;
                }
                Err(e) => return Err(self.query_error(operation, record(), e, false)),
            }
        }
    }

    /// Back-off after the `n`th conflict: none at first, then a growing random pause.
    async fn back_off(n: u32) {
        if n < 2 {
            tokio::task::yield_now().await;
        } else {
            let cap = 100u64 << n.min(6);
            let micros = fastrand::u64(0..=cap.min(5_000));
            tokio::time::sleep(Duration::from_micros(micros)).await;
        }
    }

    async fn try_update(
        &self,
        key: &ContactKey,
        contact: &str,
        update: &mut ContactUpdate<'_>,
    ) -> Result<(), Attempt> {
        let business = key.business.as_str();
        let record = || Some(RecordKey::Contact(key.clone()));
        let client = self
            .client("update", record().as_ref())
            .await
            .map_err(Attempt::Fail)?;
        let read_failed = self.read_failed("update", record);
        let load = client
            .prepare_cached(&self.sql.load)
            .await
            .map_err(&read_failed)?;
        let row = client
            .query_one(&load, &[&business, &contact])
            .await
            .map_err(&read_failed)?;
        let version: Option<i64> = row.get(1);
        let action = update(row.get(0), row.get(2)).map_err(Attempt::Fail)?;
        let (sql, written) = match (&action, &version) {
            (UpdateAction::Keep, _) | (UpdateAction::Delete, None) => return Ok(()),
            (UpdateAction::Write(bytes), Some(v)) => (
                &self.sql.update_contact,
                [&business as &(dyn ToSql + Sync), &contact, bytes, v].to_vec(),
            ),
            (UpdateAction::Write(bytes), None) => (
                &self.sql.insert_contact,
                [&business as &(dyn ToSql + Sync), &contact, bytes].to_vec(),
            ),
            (UpdateAction::Delete, Some(v)) => (
                &self.sql.delete_contact,
                [&business as &(dyn ToSql + Sync), &contact, v].to_vec(),
            ),
        };
        let statement = client.prepare_cached(sql).await.map_err(&read_failed)?;
        match client.execute(&statement, &written).await {
            Ok(1) => Ok(()),
            Ok(_) => Err(Attempt::Again(None)),
            Err(e) => Err(Attempt::Fail(self.query_error("update", record(), e, true))),
        }
    }

    async fn try_update_sender(
        &self,
        business: &BusinessId,
        update: &mut SenderUpdate<'_>,
    ) -> Result<(), Attempt> {
        let b = business.as_str();
        let record = || Some(RecordKey::Sender(business.clone()));
        let client = self
            .client("update_sender", record().as_ref())
            .await
            .map_err(Attempt::Fail)?;
        let read_failed = self.read_failed("update_sender", record);
        let load = client
            .prepare_cached(&self.sql.load_sender)
            .await
            .map_err(&read_failed)?;
        let row = client.query_opt(&load, &[&b]).await.map_err(&read_failed)?;
        let current: Option<&[u8]> = row.as_ref().map(|r| r.get(0));
        let version: Option<i64> = row.as_ref().map(|r| r.get(1));
        let action = update(current).map_err(Attempt::Fail)?;
        let (sql, params) = match (&action, &version) {
            (UpdateAction::Keep, _) | (UpdateAction::Delete, None) => return Ok(()),
            (UpdateAction::Write(bytes), Some(v)) => (
                &self.sql.update_sender,
                [&b as &(dyn ToSql + Sync), bytes, v].to_vec(),
            ),
            (UpdateAction::Write(bytes), None) => (
                &self.sql.insert_sender,
                [&b as &(dyn ToSql + Sync), bytes].to_vec(),
            ),
            (UpdateAction::Delete, Some(v)) => (
                &self.sql.delete_sender,
                [&b as &(dyn ToSql + Sync), v].to_vec(),
            ),
        };
        let statement = client.prepare_cached(sql).await.map_err(&read_failed)?;
        match client.execute(&statement, &params).await {
            Ok(1) => Ok(()),
            Ok(_) => Err(Attempt::Again(None)),
            Err(e) => Err(Attempt::Fail(self.query_error(
                "update_sender",
                record(),
                e,
                true,
            ))),
        }
    }

    /// One attempt at a batch, in one transaction.
    async fn try_batch(&self, batch: &mut Batch<'_>, keys: &BatchKeys) -> Result<(), Attempt> {
        let mut client = self
            .client("apply_batch", None)
            .await
            .map_err(Attempt::Fail)?;
        // Failures before the commit: nothing was written (the server rolls back an unfinished
        // transaction), so a broken connection or a deadlock means "run again".
        let before_commit = |e: tokio_postgres::Error| {
            if error::is_connection_error(&e) || error::is_conflict(&e) {
                Attempt::Again(Some(PostgresError::query(&self.url, e, false)))
            } else {
                Attempt::Fail(self.query_error("apply_batch", None, e, false))
            }
        };
        let tx = client.transaction().await.map_err(before_commit)?;
        let (lock_contacts, lock_senders, read_senders) = futures_util::future::join3(
            tx.prepare_cached(&self.sql.lock_contacts),
            tx.prepare_cached(&self.sql.lock_senders),
            tx.prepare_cached(&self.sql.read_senders),
        )
        .await;
        let (lock_contacts, lock_senders, read_senders) = (
            lock_contacts.map_err(before_commit)?,
            lock_senders.map_err(before_commit)?,
            read_senders.map_err(before_commit)?,
        );
        // Pipelined, in this order: contact rows locked in key order, then sender rows.
        let no_rows = Ok(Vec::new());
        let deferred = self.durability == Durability::Deferred;
        let (synchronous, contact_rows, locked_sender_rows, read_sender_rows) =
            futures_util::future::join4(
                async {
                    // Plan this transaction's statements for their actual arrays and the table
                    // as it is now. A generic plan cached while the table was small (and never
                    // re-planned where autovacuum is off, as nothing analyses the table) joins
                    // the arrays by scanning the whole table: every batch grew with the table
                    // (17 700 events/s at 1e6 contacts, one sequential scan per batch).
                    // Batches stay durable on return in the deferred mode too.
                    tx.batch_execute(if deferred {
                        "SET LOCAL plan_cache_mode = force_custom_plan; \
                         SET LOCAL synchronous_commit = on"
                    } else {
                        "SET LOCAL plan_cache_mode = force_custom_plan"
                    })
                    .await
                },
                async {
                    if keys.contact_business.is_empty() {
                        return Ok(Vec::new());
                    }
                    tx.query(
                        &lock_contacts,
                        &[&keys.contact_business, &keys.contact_contact],
                    )
                    .await
                },
                async {
                    if keys.sender_targets.is_empty() {
                        return Ok(Vec::new());
                    }
                    tx.query(&lock_senders, &[&keys.sender_targets]).await
                },
                async {
                    if keys.sender_reads.is_empty() {
                        return no_rows;
                    }
                    tx.query(&read_senders, &[&keys.sender_reads]).await
                },
            )
            .await;
        synchronous.map_err(before_commit)?;
        let contact_rows = contact_rows.map_err(before_commit)?;
        let locked_sender_rows = locked_sender_rows.map_err(before_commit)?;
        let read_sender_rows = read_sender_rows.map_err(before_commit)?;

        let committed_contacts: HashMap<(&str, &str), &[u8]> = contact_rows
            .iter()
            .map(|r| ((r.get(0), r.get(1)), r.get(2)))
            .collect();
        let locked_senders: HashSet<&str> = locked_sender_rows.iter().map(|r| r.get(0)).collect();
        let committed_senders: HashMap<&str, &[u8]> = locked_sender_rows
            .iter()
            .chain(&read_sender_rows)
            .map(|r| (r.get(0), r.get(1)))
            .collect();

        // Run every closure in order against the committed records plus what is staged.
        let mut staged_contacts: HashMap<(&str, &str), Option<Vec<u8>>> = HashMap::new();
        let mut staged_senders: HashMap<&str, Option<Vec<u8>>> = HashMap::new();
        for (op, (b, c)) in batch.ops_mut().iter_mut().zip(&keys.per_op) {
            let (b, c) = (b.as_str(), c.as_str());
            match op {
                BatchOp::Contact { update, .. } => {
                    let action = {
                        let contact = match staged_contacts.get(&(b, c)) {
                            Some(v) => v.as_deref(),
                            None => committed_contacts.get(&(b, c)).copied(),
                        };
                        let sender = match staged_senders.get(b) {
                            Some(v) => v.as_deref(),
                            None => committed_senders.get(b).copied(),
                        };
                        update(contact, sender).map_err(Attempt::Fail)?
                    };
                    match action {
                        UpdateAction::Keep => {}
                        UpdateAction::Write(bytes) => {
                            staged_contacts.insert((b, c), Some(bytes));
                        }
                        UpdateAction::Delete => {
                            staged_contacts.insert((b, c), None);
                        }
                    }
                }
                BatchOp::Sender { update, .. } => {
                    let action = {
                        let sender = match staged_senders.get(b) {
                            Some(v) => v.as_deref(),
                            None => committed_senders.get(b).copied(),
                        };
                        update(sender).map_err(Attempt::Fail)?
                    };
                    match action {
                        UpdateAction::Keep => {}
                        UpdateAction::Write(bytes) => {
                            staged_senders.insert(b, Some(bytes));
                        }
                        UpdateAction::Delete => {
                            staged_senders.insert(b, None);
                        }
                    }
                }
                _ => {
                    return Err(Attempt::Fail(
                        PostgresError::new(
                            ErrorKind::Query,
                            "this version of waguard-postgres does not know a kind of batch \
                             operation of this waguard version: use matching versions"
                                .to_owned(),
                        )
                        .into_store("apply_batch", None),
                    ))
                }
            }
        }

        // Sort what to write (inserts in key order, as they take their locks).
        let mut staged_contacts: Vec<_> = staged_contacts.into_iter().collect();
        staged_contacts.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut staged_senders: Vec<_> = staged_senders.into_iter().collect();
        staged_senders.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut cu = Columns::default();
        let mut ci = Columns::default();
        let mut cd = Columns::default();
        for ((b, c), value) in &staged_contacts {
            let existed = committed_contacts.contains_key(&(*b, *c));
            match (value, existed) {
                (Some(bytes), true) => cu.push(b, c, bytes),
                (Some(bytes), false) => ci.push(b, c, bytes),
                (None, true) => cd.push(b, c, &[]),
                (None, false) => {}
            }
        }
        let mut su = Columns::default();
        let mut si = Columns::default();
        let mut sd = Columns::default();
        for (b, value) in &staged_senders {
            let existed = locked_senders.contains(b);
            match (value, existed) {
                (Some(bytes), true) => su.push(b, "", bytes),
                (Some(bytes), false) => si.push(b, "", bytes),
                (None, true) => sd.push(b, "", &[]),
                (None, false) => {}
            }
        }

        // Pipelined writes, in a fixed order: contacts, then senders.
        let writes: [(&str, Vec<&(dyn ToSql + Sync)>, bool); 6] = [
            (
                &self.sql.batch_update_contacts,
                vec![&cu.business, &cu.contact, &cu.state],
                !cu.is_empty(),
            ),
            (
                &self.sql.batch_insert_contacts,
                vec![&ci.business, &ci.contact, &ci.state],
                !ci.is_empty(),
            ),
            (
                &self.sql.batch_delete_contacts,
                vec![&cd.business, &cd.contact],
                !cd.is_empty(),
            ),
            (
                &self.sql.batch_update_senders,
                vec![&su.business, &su.state],
                !su.is_empty(),
            ),
            (
                &self.sql.batch_insert_senders,
                vec![&si.business, &si.state],
                !si.is_empty(),
            ),
            (
                &self.sql.batch_delete_senders,
                vec![&sd.business],
                !sd.is_empty(),
            ),
        ];
        let writes: Vec<_> = writes.into_iter().filter(|w| w.2).collect();
        if writes.is_empty() {
            // Nothing changed: end the transaction (releasing the locks) without a write.
            return tx.rollback().await.map_err(before_commit);
        }
        let mut statements = Vec::with_capacity(writes.len());
        for (sql, _, _) in &writes {
            statements.push(tx.prepare_cached(sql).await.map_err(before_commit)?);
        }
        let results = futures_util::future::join_all(
            writes
                .iter()
                .zip(&statements)
                .map(|((_, params, _), statement)| tx.execute(statement, params)),
        )
        .await;
        let mut counts = Vec::with_capacity(results.len());
        for result in results {
            counts.push(result.map_err(before_commit)?);
        }
        for ((sql, _, _), count) in writes.iter().zip(&counts) {
            let expected = if std::ptr::eq(*sql, self.sql.batch_insert_contacts.as_str()) {
                ci.len()
            } else if std::ptr::eq(*sql, self.sql.batch_insert_senders.as_str()) {
                si.len()
            } else {
                continue;
            };
            if *count != expected as u64 {
                // A record missing when locked was created meanwhile: run the batch again.
                return Err(Attempt::Again(None));
            }
        }
        match tx.commit().await {
            Ok(()) => Ok(()),
            Err(e) if error::is_conflict(&e) => Err(Attempt::Again(None)),
            Err(e) => Err(Attempt::Fail(self.query_error(
                "apply_batch",
                None,
                e,
                true,
            ))),
        }
    }
}

/// A pool's failure to hand out a connection, and whether trying again may help.
fn pool_error(error: PoolError, url: &str, wait: Option<Duration>) -> (PostgresError, bool) {
    match error {
        PoolError::Backend(e) => {
            let err = PostgresError::connect(url, e);
            let retry = matches!(
                err.kind(),
                ErrorKind::Unreachable | ErrorKind::ConnectionLost
            );
            (err, retry)
        }
        PoolError::Timeout(TimeoutType::Wait) => (
            PostgresError::new(
                ErrorKind::PoolTimeout,
                format!(
                    "every connection of the pool to PostgreSQL at {url} stayed busy for {}; \
                     nothing was sent, so nothing was written: retry, and raise \
                     PostgresOptions::pool_size (within the server's max_connections) or look \
                     for slow calls holding connections",
                    wait.map_or_else(
                        || "the pool's wait time-out".to_owned(),
                        |w| format!("{w:?}")
                    )
                ),
            ),
            false,
        ),
        PoolError::Timeout(TimeoutType::Create) => (
            PostgresError::new(
                ErrorKind::Unreachable,
                format!(
                    "opening a connection to PostgreSQL at {url} took longer than the connect \
                     time-out; nothing was written: is PostgreSQL running at that address, \
                     and does the network let the connection through?"
                ),
            ),
            true,
        ),
        PoolError::Timeout(_) => (
            PostgresError::new(
                ErrorKind::ConnectionLost,
                format!(
                    "checking a pooled connection to PostgreSQL at {url} timed out; nothing was \
                     written: retry"
                ),
            ),
            true,
        ),
        PoolError::PostCreateHook(e) => (
            PostgresError::new(
                ErrorKind::Unreachable,
                format!("a new connection to PostgreSQL at {url} failed the pool's hook: {e}"),
            ),
            false,
        ),
        e => (
            PostgresError::new(
                ErrorKind::Unreachable,
                format!("no connection to PostgreSQL at {url}: {e}"),
            ),
            false,
        ),
    }
}

/// `postgres://USER@HOST:PORT/DATABASE` of a configuration (no password), for messages.
fn describe_config(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{host}:{port}/{}",
        config.get_user().unwrap_or(""),
        config.get_dbname().unwrap_or("")
    )
}

/// `postgres://USER@ADDRESS:PORT/DATABASE` as the server reports it, for messages about a
/// pool of the caller's own.
async fn server_label(client: &tokio_postgres::Client) -> String {
    match client
        .query_one(
            "SELECT current_user::text, coalesce(host(inet_server_addr()), 'local socket'), \
             coalesce(inet_server_port(), 0), current_database()::text",
            &[],
        )
        .await
    {
        Ok(row) => format!(
            "postgres://{}@{}:{}/{}",
            row.get::<_, String>(0),
            row.get::<_, String>(1),
            row.get::<_, i32>(2),
            row.get::<_, String>(3)
        ),
        Err(_) => "the given pool's server".to_owned(),
    }
}

/// Keys of a batch, computed once for all its attempts.
struct BatchKeys {
    /// (business, contact) per operation (contact empty for sender operations).
    per_op: Vec<(String, String)>,
    /// Distinct contact keys, sorted, as two columns.
    contact_business: Vec<String>,
    contact_contact: Vec<String>,
    /// Businesses with a sender operation (locked), sorted.
    sender_targets: Vec<String>,
    /// Businesses only read (by contact operations), sorted.
    sender_reads: Vec<String>,
}

impl BatchKeys {
    fn of(batch: &mut Batch<'_>) -> Self {
        let mut per_op = Vec::with_capacity(batch.len());
        let mut contacts = Vec::new();
        let mut targets = Vec::new();
        let mut reads = Vec::new();
        for op in batch.ops_mut().iter() {
            match op {
                BatchOp::Contact { key, .. } => {
                    let pair = (key.business.as_str().to_owned(), key.contact.to_string());
                    contacts.push(pair.clone());
                    reads.push(pair.0.clone());
                    per_op.push(pair);
                }
                BatchOp::Sender { business, .. } => {
                    targets.push(business.as_str().to_owned());
                    per_op.push((business.as_str().to_owned(), String::new()));
                }
                _ => per_op.push((String::new(), String::new())),
            }
        }
        contacts.sort_unstable();
        contacts.dedup();
        targets.sort_unstable();
        targets.dedup();
        reads.sort_unstable();
        reads.dedup();
        reads.retain(|b| targets.binary_search(b).is_err());
        let (contact_business, contact_contact) = contacts.into_iter().unzip();
        BatchKeys {
            per_op,
            contact_business,
            contact_contact,
            sender_targets: targets,
            sender_reads: reads,
        }
    }
}

/// Column arrays of a batched write (`unnest`ed by the statement).
#[derive(Default)]
struct Columns<'a> {
    business: Vec<&'a str>,
    contact: Vec<&'a str>,
    state: Vec<&'a [u8]>,
}

impl<'a> Columns<'a> {
    fn push(&mut self, business: &'a str, contact: &'a str, state: &'a [u8]) {
        self.business.push(business);
        self.contact.push(contact);
        self.state.push(state);
    }
    fn len(&self) -> usize {
        self.business.len()
    }
    fn is_empty(&self) -> bool {
        self.business.is_empty()
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn update(
        &self,
        key: &ContactKey,
        update: &mut ContactUpdate<'_>,
    ) -> Result<(), StoreError> {
        let contact = key.contact.to_string();
        let mut conflicts = 0;
        let mut broken = 0;
        loop {
            match self.try_update(key, &contact, update).await {
                Ok(()) => return Ok(()),
                Err(Attempt::Fail(e)) => return Err(e),
                Err(Attempt::Again(Some(e))) => {
                    broken += 1;
                    if broken > READ_RETRIES {
                        return Err(e.into_store("update", Some(RecordKey::Contact(key.clone()))));
                    }
                    tokio::time::sleep(Duration::from_millis(20 << broken)).await;
                }
                Err(Attempt::Again(None)) => {
                    conflicts += 1;
                    if conflicts > self.max_conflicts {
                        return Err(
                            self.contention("update", Some(RecordKey::Contact(key.clone())))
                        );
                    }
                    Self::back_off(conflicts).await;
                }
            }
        }
    }

    async fn update_sender(
        &self,
        business: &BusinessId,
        update: &mut SenderUpdate<'_>,
    ) -> Result<(), StoreError> {
        let mut conflicts = 0;
        let mut broken = 0;
        loop {
            match self.try_update_sender(business, update).await {
                Ok(()) => return Ok(()),
                Err(Attempt::Fail(e)) => return Err(e),
                Err(Attempt::Again(Some(e))) => {
                    broken += 1;
                    if broken > READ_RETRIES {
                        return Err(e.into_store(
                            "update_sender",
                            Some(RecordKey::Sender(business.clone())),
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(20 << broken)).await;
                }
                Err(Attempt::Again(None)) => {
                    conflicts += 1;
                    if conflicts > self.max_conflicts {
                        return Err(self.contention(
                            "update_sender",
                            Some(RecordKey::Sender(business.clone())),
                        ));
                    }
                    Self::back_off(conflicts).await;
                }
            }
        }
    }

    async fn load_with(&self, key: &ContactKey, read: &mut ReadFn<'_>) -> Result<(), StoreError> {
        let contact = key.contact.to_string();
        self.read_one(
            "load",
            || Some(RecordKey::Contact(key.clone())),
            &self.sql.read,
            &[&key.business.as_str(), &contact],
            |row| match row {
                Some(row) => read(row.get(0), row.get(1)),
                None => read(None, None),
            },
        )
        .await
    }

    async fn load_sender(&self, business: &BusinessId) -> Result<Option<Vec<u8>>, StoreError> {
        self.read_one(
            "load_sender",
            || Some(RecordKey::Sender(business.clone())),
            &self.sql.load_sender,
            &[&business.as_str()],
            |row| row.map(|r| r.get::<_, Vec<u8>>(0)),
        )
        .await
    }

    async fn remove(&self, key: &ContactKey) -> Result<bool, StoreError> {
        let record = || Some(RecordKey::Contact(key.clone()));
        let client = self.client("remove", record().as_ref()).await?;
        let contact = key.contact.to_string();
        let statement = client
            .prepare_cached(&self.sql.remove_contact)
            .await
            .map_err(|e| self.query_error("remove", record(), e, false))?;
        let n = client
            .execute(&statement, &[&key.business.as_str(), &contact])
            .await
            .map_err(|e| self.query_error("remove", record(), e, true))?;
        Ok(n > 0)
    }

    async fn all_senders(&self) -> Result<Vec<(BusinessId, Vec<u8>)>, StoreError> {
        let client = self.client("all_senders", None).await?;
        let rows = match client.prepare_cached(&self.sql.all_senders).await {
            Ok(statement) => client.query(&statement, &[]).await,
            Err(e) => Err(e),
        }
        .map_err(|e| self.query_error("all_senders", None, e, false))?;
        rows.into_iter()
            .map(|row| {
                let text: String = row.get(0);
                let business =
                    BusinessId::parse(&text).map_err(|source| StoreError::BadStoredKey {
                        key: text.clone(),
                        source: source.into(),
                    })?;
                Ok((business, row.get::<_, Vec<u8>>(1)))
            })
            .collect()
    }

    fn scan(&self) -> ScanStream<'_> {
        struct State {
            last: Option<(String, String)>,
            page: VecDeque<(String, String, Vec<u8>)>,
            done: bool,
        }
        let state = State {
            last: None,
            page: VecDeque::new(),
            done: false,
        };
        Box::pin(futures_util::stream::unfold(
            state,
            move |mut st| async move {
                loop {
                    if let Some((b, c, bytes)) = st.page.pop_front() {
                        let text = format!("{b}/{c}");
                        let item = text
                            .parse::<ContactKey>()
                            .map(|k| (k, bytes))
                            .map_err(|source| StoreError::BadStoredKey { key: text, source });
                        return Some((item, st));
                    }
                    if st.done {
                        return None;
                    }
                    let page = self.scan_page(st.last.as_ref()).await;
                    match page {
                        Ok(rows) => {
                            if (rows.len() as i64) < SCAN_PAGE {
                                st.done = true;
                            }
                            if let Some((b, c, _)) = rows.last() {
                                st.last = Some((b.clone(), c.clone()));
                            }
                            st.page.extend(rows);
                        }
                        Err(e) => {
                            st.done = true;
                            return Some((Err(e), st));
                        }
                    }
                }
            },
        ))
    }

    async fn apply_batch(&self, batch: &mut Batch<'_>) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let keys = BatchKeys::of(batch);
        let mut conflicts = 0;
        let mut broken = 0;
        loop {
            match self.try_batch(batch, &keys).await {
                Ok(()) => return Ok(()),
                Err(Attempt::Fail(e)) => return Err(e),
                Err(Attempt::Again(Some(e))) => {
                    if e.kind() == ErrorKind::ConnectionLost {
                        broken += 1;
                        if broken > READ_RETRIES {
                            return Err(e.into_store("apply_batch", None));
                        }
                        tokio::time::sleep(Duration::from_millis(20 << broken)).await;
                    } else {
                        // A deadlock or serialization failure: rolled back, run again.
                        conflicts += 1;
                        if conflicts > self.max_conflicts {
                            return Err(self.contention("apply_batch", None));
                        }
                        Self::back_off(conflicts).await;
                    }
                }
                Err(Attempt::Again(None)) => {
                    conflicts += 1;
                    if conflicts > self.max_conflicts {
                        return Err(self.contention("apply_batch", None));
                    }
                    Self::back_off(conflicts).await;
                }
            }
        }
    }

    async fn flush(&self) -> Result<(), StoreError> {
        if self.durability == Durability::EachWrite {
            // Every write was durably committed before its call returned.
            return Ok(());
        }
        // A transaction with an id, committed synchronously: its commit flushes the server's
        // WAL up to its own record, so every earlier (asynchronous) commit with it. One round
        // trip.
        let client = self.client("flush", None).await?;
        client
            .batch_execute(
                "BEGIN; SET LOCAL synchronous_commit = on; SELECT txid_current(); COMMIT",
            )
            .await
            .map_err(|e| self.query_error("flush", None, e, true))
    }
}

impl PostgresStore {
    async fn scan_page(
        &self,
        after: Option<&(String, String)>,
    ) -> Result<Vec<(String, String, Vec<u8>)>, StoreError> {
        let collect = |rows: Vec<tokio_postgres::Row>| {
            rows.into_iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect::<Vec<_>>()
        };
        let mut tries = 0;
        loop {
            let client = self.client("scan", None).await?;
            let result = match after {
                None => match client.prepare_cached(&self.sql.scan_first).await {
                    Ok(s) => client.query(&s, &[&SCAN_PAGE]).await,
                    Err(e) => Err(e),
                },
                Some((b, c)) => match client.prepare_cached(&self.sql.scan_next).await {
                    Ok(s) => client.query(&s, &[b, c, &SCAN_PAGE]).await,
                    Err(e) => Err(e),
                },
            };
            match result {
                Ok(rows) => return Ok(collect(rows)),
                Err(e) if error::is_connection_error(&e) && tries < READ_RETRIES => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(20 << tries)).await;
                }
                Err(e) => return Err(self.query_error("scan", None, e, false)),
            }
        }
    }
}

#[cfg(feature = "testing")]
#[async_trait]
impl waguard::testing::RawAccess for PostgresStore {
    async fn put_raw_contact(&self, key: &ContactKey, bytes: &[u8]) -> Result<(), StoreError> {
        let record = || Some(RecordKey::Contact(key.clone()));
        let client = self.client("put_raw_contact", record().as_ref()).await?;
        let contact = key.contact.to_string();
        client
            .execute(
                &self.sql.put_contact,
                &[&key.business.as_str(), &contact, &bytes],
            )
            .await
            .map_err(|e| self.query_error("put_raw_contact", record(), e, true))?;
        Ok(())
    }

    async fn put_raw_sender(&self, business: &BusinessId, bytes: &[u8]) -> Result<(), StoreError> {
        let record = || Some(RecordKey::Sender(business.clone()));
        let client = self.client("put_raw_sender", record().as_ref()).await?;
        client
            .execute(&self.sql.put_sender, &[&business.as_str(), &bytes])
            .await
            .map_err(|e| self.query_error("put_raw_sender", record(), e, true))?;
        Ok(())
    }
}
