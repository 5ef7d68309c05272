//! Shared set-up of the PostgreSQL tests: the server's URL, fresh schemas, tear-down.

#![allow(dead_code)]

pub mod cluster;

use std::error::Error as _;
use std::sync::{Arc, Mutex};

use waguard::StoreError;
use waguard_postgres::{PostgresError, PostgresOptions, PostgresStore};

/// The [`PostgresError`] a store error carries as its source.
pub fn pg_error(e: &StoreError) -> &PostgresError {
    e.source()
        .and_then(|s| s.downcast_ref::<PostgresError>())
        .unwrap_or_else(|| panic!("the source of {e} is not a PostgresError"))
}

/// A plain connection of its own (no pool, no TLS), its connection task spawned.
pub async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot connect to {}: {e}; start PostgreSQL with scripts/ensure-postgres",
                waguard_postgres::redact_url(url)
            )
        });
    tokio::spawn(connection);
    client
}

/// The default server: this machine's cluster, trust authentication.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The server the tests use: `WAGUARD_PG_URL`, or [`DEFAULT_URL`].
pub fn url() -> String {
    std::env::var("WAGUARD_PG_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// A fresh, unique schema name.
pub fn fresh_schema() -> String {
    format!(
        "waguard_test_{}_{:016x}",
        std::process::id(),
        fastrand::u64(..)
    )
}

/// Connects to a fresh schema, or fails loudly saying how to get a server.
pub async fn connect(schema: &str, pool_size: usize) -> PostgresStore {
    let url = url();
    match PostgresStore::connect_with(
        &url,
        PostgresOptions::default()
            .with_schema(schema)
            .with_pool_size(pool_size),
    )
    .await
    {
        Ok(store) => store,
        Err(e) => panic!(
            "these tests need a PostgreSQL server at {} (set WAGUARD_PG_URL to use another): {e}\n\
             Start one with `scripts/ensure-postgres` (starts the local cluster, installing \
             PostgreSQL if needed), or `pg_ctlcluster 15 main start`.",
            waguard_postgres::redact_url(&url)
        ),
    }
}

/// Schemas created by a test, dropped when this is dropped (also when the test panics).
#[derive(Clone, Default)]
pub struct Schemas(Arc<Mutex<Vec<String>>>);

impl Schemas {
    /// A fresh schema name, remembered for dropping.
    pub fn fresh(&self) -> String {
        let name = fresh_schema();
        self.0.lock().unwrap().push(name.clone());
        name
    }
}

impl Drop for Schemas {
    fn drop(&mut self) {
        if Arc::strong_count(&self.0) > 1 {
            return;
        }
        let names: Vec<String> = std::mem::take(&mut *self.0.lock().unwrap());
        if names.is_empty() {
            return;
        }
        let url = url();
        // A thread of its own: this may run inside (or while unwinding out of) a runtime.
        let handle = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let Ok((client, connection)) =
                    tokio_postgres::connect(&url, tokio_postgres::NoTls).await
                else {
                    return;
                };
                tokio::spawn(connection);
                for name in names {
                    let _ = client
                        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
                        .await;
                }
            });
        });
        let _ = handle.join();
    }
}
