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
//! TCP keepalives and a TCP user time-out (a network cut under a call in flight). A write that meets a row locked by another session (a long transaction
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

mod batch;
mod connect;
mod error;
mod options;
mod registry;
mod retry;
mod scan;
mod schema;
mod sql;
mod tls;
mod update;

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::Pool;
use waguard::{
    Batch, BusinessId, ContactKey, ContactUpdate, ReadFn, RecordKey, ScanStream, SenderUpdate,
    Store, StoreError,
};

use batch::BatchKeys;
use retry::{Attempt, Retries};
use sql::Sql;

/// The pool crate, re-exported: [`PostgresStore::pool`] returns its `Pool`.
pub use deadpool_postgres;
pub use error::{redact_url, ErrorKind, PostgresError};
pub use options::{Durability, Migrated, Migrations, PostgresOptions};
pub use schema::SCHEMA_VERSION;
pub use tls::{RustlsConnect, RustlsConnector, RustlsStream, SslMode, TlsSetupError};
/// The client crate, re-exported: [`PostgresError::driver_error`] returns its `Error`.
pub use tokio_postgres;

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

impl PostgresStore {
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
}

#[async_trait]
impl Store for PostgresStore {
    async fn update_registry(
        &self,
        key: &waguard::RegistryKey,
        update: &mut SenderUpdate<'_>,
    ) -> Result<(), StoreError> {
        self.registry_update(key, update).await
    }

    async fn load_registry(
        &self,
        key: &waguard::RegistryKey,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.registry_load(key).await
    }

    async fn registry_records(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.registry_all().await
    }

    async fn load_registries(
        &self,
        keys: &[waguard::RegistryKey],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.registry_load_many(keys).await
    }

    async fn load_with_registries(
        &self,
        key: &ContactKey,
        keys: &[waguard::RegistryKey],
        read: &mut waguard::RegistryReadFn<'_>,
    ) -> Result<(), StoreError> {
        self.registry_load_with(key, keys, read).await
    }

    async fn update_with_registry(
        &self,
        keys: &[ContactKey],
        registry: &waguard::RegistryKey,
        update: &mut waguard::ContactRegistryUpdate<'_>,
    ) -> Result<(), StoreError> {
        self.contact_registry_update(keys, registry, update).await
    }

    async fn update(
        &self,
        key: &ContactKey,
        update: &mut ContactUpdate<'_>,
    ) -> Result<(), StoreError> {
        let contact = key.contact.to_string();
        let mut retries = Retries::default();
        loop {
            match self.try_update(key, &contact, update).await {
                Ok(()) => return Ok(()),
                Err(failed) => {
                    let record = Some(RecordKey::Contact(key.clone()));
                    self.again(&mut retries, failed, "update", record).await?
                }
            }
        }
    }

    async fn update_sender(
        &self,
        business: &BusinessId,
        update: &mut SenderUpdate<'_>,
    ) -> Result<(), StoreError> {
        let mut retries = Retries::default();
        loop {
            match self.try_update_sender(business, update).await {
                Ok(()) => return Ok(()),
                Err(failed) => {
                    let record = Some(RecordKey::Sender(business.clone()));
                    self.again(&mut retries, failed, "update_sender", record)
                        .await?
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
