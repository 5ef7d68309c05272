//! Connections and retries: a connection from the pool, reads retried after a broken
//! connection, writes retried after a lost race (with a growing random pause) up to
//! `PostgresOptions::max_conflicts`, and the errors that say which happened.

use std::time::Duration;

use tokio_postgres::types::ToSql;
use waguard::{RecordKey, StoreError};

use crate::connect::pool_error;
use crate::error::{self, ErrorKind, PostgresError};
use crate::{PostgresStore, READ_RETRIES};

/// Why an attempt of a write failed.
pub(crate) enum Attempt {
    /// Lost a race (or a deadlock, or the connection broke before anything was written): run
    /// again.
    Again(Option<PostgresError>),
    /// Give up with this error.
    Fail(StoreError),
}

/// How many times a write was tried again, by cause (see [`PostgresStore::again`]).
#[derive(Default)]
pub(crate) struct Retries {
    conflicts: u32,
    broken: u32,
}

impl PostgresStore {
    /// A connection from the pool; connection failures are retried a few times, a pool that
    /// stays busy is not (its wait was the time-out).
    pub(crate) async fn client(
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

    pub(crate) fn query_error(
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
    pub(crate) fn read_failed<'a>(
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

    pub(crate) fn contention(
        &self,
        operation: &'static str,
        record: Option<RecordKey>,
    ) -> StoreError {
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
    pub(crate) async fn read_one<T>(
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

    /// After a failed attempt of a write: returns when it should run again (after a pause),
    /// or the error to give up with.
    pub(crate) async fn again(
        &self,
        retries: &mut Retries,
        failed: Attempt,
        operation: &'static str,
        record: Option<RecordKey>,
    ) -> Result<(), StoreError> {
        match failed {
            Attempt::Fail(e) => Err(e),
            Attempt::Again(Some(e)) => {
                retries.broken += 1;
                if retries.broken > READ_RETRIES {
                    return Err(e.into_store(operation, record));
                }
                tokio::time::sleep(Duration::from_millis(20 << retries.broken)).await;
                Ok(())
            }
            Attempt::Again(None) => {
                retries.conflicts += 1;
                if retries.conflicts > self.max_conflicts {
                    return Err(self.contention(operation, record));
                }
                Self::back_off(retries.conflicts).await;
                Ok(())
            }
        }
    }

    /// One read of several rows (with retries).
    pub(crate) async fn read_rows(
        &self,
        operation: &'static str,
        record: impl Fn() -> Option<RecordKey>,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        let mut tries = 0;
        loop {
            let client = self.client(operation, record().as_ref()).await?;
            let result = match client.prepare_cached(sql).await {
                Ok(statement) => client.query(&statement, params).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(rows) => return Ok(rows),
                Err(e) if error::is_connection_error(&e) && tries < READ_RETRIES => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(20 << tries)).await;
                }
                Err(e) => return Err(self.query_error(operation, record(), e, false)),
            }
        }
    }

    /// Back-off after the `n`th conflict: none at first, then a growing random pause.
    pub(crate) async fn back_off(n: u32) {
        if n < 2 {
            tokio::task::yield_now().await;
        } else {
            let cap = 100u64 << n.min(6);
            let micros = fastrand::u64(0..=cap.min(5_000));
            tokio::time::sleep(Duration::from_micros(micros)).await;
        }
    }
}
