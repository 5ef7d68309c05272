//! Registry records (templates and portfolios, rules T and L): one row per record in
//! `registry`, keyed by the record's storage key.
//!
//! A registry write is a transaction serialised per key by a transaction-scoped advisory lock
//! (which also covers a record not written yet). A portfolio record is a hot row (every
//! counting reservation of the portfolio writes it), so the time the lock is held is kept to
//! about one round trip: `BEGIN`, the lock and the reads go out as one pipeline, and so do the
//! writes and `COMMIT`. The writes of such a pipeline fail loudly (a unique violation, or a
//! division by zero when a compare-and-swap matched no row) so that the `COMMIT` behind them
//! turns into a rollback instead of committing half of the transaction.

use std::collections::HashMap;

use deadpool_postgres::Client;
use futures_util::future::{try_join, try_join3, try_join4};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;
use waguard::{
    ContactKey, ContactRegistryUpdate, RecordKey, RegistryKey, RegistryReadFn, SenderUpdate,
    StoreError, UpdateAction,
};

use crate::error;
use crate::{Attempt, PostgresStore, Retries};

/// The advisory lock key of one registry record: a stable 64-bit FNV-1a hash of its key.
fn lock_key(key: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in "waguard registry ".bytes().chain(key.bytes()) {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash as i64
}

/// A connection inside a transaction opened by hand (to pipeline `BEGIN` with the first
/// statements). Dropped without [`close`](Open::close) (an error path, or a cancelled future),
/// the connection leaves the pool and closes, so its transaction dies with it instead of
/// reaching the pool's next user.
struct Open(Option<Client>);

impl Open {
    fn client(&self) -> &Client {
        self.0
            .as_ref()
            .expect("an open transaction holds its client")
    }

    /// The transaction ended (committed or rolled back): the connection may go back.
    fn close(mut self) {
        self.0.take();
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            drop(deadpool_postgres::Object::take(client));
        }
    }
}

/// The parameters of one write, owned.
type Params = Vec<Box<dyn ToSql + Sync + Send>>;

/// Runs one write (sent when first polled, so several of them pipeline).
fn execute<'a>(
    client: &'a Client,
    statement: &'a tokio_postgres::Statement,
    params: &'a Params,
) -> impl std::future::Future<Output = Result<u64, tokio_postgres::Error>> + 'a {
    client.execute_raw(
        statement,
        params.iter().map(|p| &**p as &(dyn ToSql + Sync)),
    )
}

/// Whether a write of a pipelined transaction failed because another writer got there first
/// (the transaction rolled back; run it again).
fn lost_race(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION) || e.code() == Some(&SqlState::DIVISION_BY_ZERO)
}

impl PostgresStore {
    /// [`Store::update_registry`](waguard::Store::update_registry).
    pub(crate) async fn registry_update(
        &self,
        key: &RegistryKey,
        update: &mut SenderUpdate<'_>,
    ) -> Result<(), StoreError> {
        const OP: &str = "update_registry";
        let mut paired = |_: Option<&[u8]>, _: Option<&[u8]>, registry: Option<&[u8]>| {
            Ok((UpdateAction::Keep, update(registry)?))
        };
        let mut retries = Retries::default();
        loop {
            match self.try_paired(OP, None, key, &mut paired).await {
                Ok(()) => return Ok(()),
                Err(failed) => self.again(&mut retries, failed, OP, None).await?,
            }
        }
    }

    /// [`Store::update_with_registry`](waguard::Store::update_with_registry): one transaction
    /// that locks the registry record, then the contact's row.
    pub(crate) async fn contact_registry_update(
        &self,
        key: &ContactKey,
        registry: &RegistryKey,
        update: &mut ContactRegistryUpdate<'_>,
    ) -> Result<(), StoreError> {
        const OP: &str = "update_with_registry";
        let contact = key.contact.to_string();
        let mut retries = Retries::default();
        loop {
            match self
                .try_paired(OP, Some((key, &contact)), registry, update)
                .await
            {
                Ok(()) => return Ok(()),
                Err(failed) => {
                    let record = Some(RecordKey::Contact(key.clone()));
                    self.again(&mut retries, failed, OP, record).await?
                }
            }
        }
    }

    /// One attempt of a registry write, with the contact's record when `contact` is given
    /// (else the closure sees no contact or sender, and its contact answer is ignored).
    async fn try_paired(
        &self,
        operation: &'static str,
        contact: Option<(&ContactKey, &String)>,
        registry: &RegistryKey,
        update: &mut ContactRegistryUpdate<'_>,
    ) -> Result<(), Attempt> {
        let record = || contact.map(|(k, _)| RecordKey::Contact(k.clone()));
        let read_failed = self.read_failed(operation, record);
        let r = registry.storage_key();
        let client = self
            .client(operation, record().as_ref())
            .await
            .map_err(Attempt::Fail)?;
        let lock = client
            .prepare_cached(&self.sql.registry_lock)
            .await
            .map_err(&read_failed)?;
        let read = client
            .prepare_cached(&self.sql.registry_read)
            .await
            .map_err(&read_failed)?;
        let lock_contact = client
            .prepare_cached(&self.sql.lock_contact)
            .await
            .map_err(&read_failed)?;
        let read_sender = client
            .prepare_cached(&self.sql.load_sender)
            .await
            .map_err(&read_failed)?;
        let tx = Open(Some(client));
        let c = tx.client();
        let lock_id = lock_key(&r);
        // One pipeline: BEGIN, the registry lock, then the reads (each statement takes its
        // snapshot after the lock is held).
        let (registry_row, contact_row, sender_row) = match contact {
            Some((key, contact)) => {
                let business = key.business.as_str();
                let (_, _, registry_row, (contact_row, sender_row)) = try_join4(
                    c.batch_execute("BEGIN"),
                    c.execute(&lock, &[&lock_id]),
                    c.query_opt(&read, &[&r]),
                    try_join(
                        c.query_opt(&lock_contact, &[&business, contact]),
                        c.query_opt(&read_sender, &[&business]),
                    ),
                )
                .await
                .map_err(&read_failed)?;
                (registry_row, contact_row, sender_row)
            }
            None => {
                let (_, _, registry_row) = try_join3(
                    c.batch_execute("BEGIN"),
                    c.execute(&lock, &[&lock_id]),
                    c.query_opt(&read, &[&r]),
                )
                .await
                .map_err(&read_failed)?;
                (registry_row, None, None)
            }
        };
        let bytes = |row: &Option<Row>| row.as_ref().map(|r| r.get::<_, &[u8]>(0).to_vec());
        let current_contact = bytes(&contact_row);
        let version: Option<i64> = contact_row.as_ref().map(|r| r.get(1));
        let current_registry = bytes(&registry_row);
        let (contact_action, registry_action) = match update(
            current_contact.as_deref(),
            bytes(&sender_row).as_deref(),
            current_registry.as_deref(),
        ) {
            Ok(actions) => actions,
            Err(e) => {
                if c.batch_execute("ROLLBACK").await.is_ok() {
                    tx.close();
                }
                return Err(Attempt::Fail(e));
            }
        };
        let contact_write = match (contact, contact_action, version) {
            (None, ..) | (_, UpdateAction::Keep, _) | (_, UpdateAction::Delete, None) => None,
            (Some((key, contact)), UpdateAction::Write(bytes), Some(v)) => Some((
                &self.sql.update_contact_or_fail,
                vec![
                    Box::new(key.business.as_str().to_owned()) as Box<dyn ToSql + Sync + Send>,
                    Box::new(contact.clone()),
                    Box::new(bytes),
                    Box::new(v),
                ],
            )),
            (Some((key, contact)), UpdateAction::Write(bytes), None) => Some((
                &self.sql.insert_contact_or_fail,
                vec![
                    Box::new(key.business.as_str().to_owned()) as Box<dyn ToSql + Sync + Send>,
                    Box::new(contact.clone()),
                    Box::new(bytes),
                ],
            )),
            (Some((key, contact)), UpdateAction::Delete, Some(v)) => Some((
                &self.sql.delete_contact_or_fail,
                vec![
                    Box::new(key.business.as_str().to_owned()) as Box<dyn ToSql + Sync + Send>,
                    Box::new(contact.clone()),
                    Box::new(v),
                ],
            )),
        };
        let registry_write = match (registry_action, &current_registry) {
            (UpdateAction::Keep, _) | (UpdateAction::Delete, None) => None,
            (UpdateAction::Write(bytes), _) => Some((
                &self.sql.registry_upsert,
                vec![
                    Box::new(r.clone()) as Box<dyn ToSql + Sync + Send>,
                    Box::new(bytes),
                ],
            )),
            (UpdateAction::Delete, Some(_)) => Some((
                &self.sql.registry_delete,
                vec![Box::new(r.clone()) as Box<dyn ToSql + Sync + Send>],
            )),
        };
        if contact_write.is_none() && registry_write.is_none() {
            // Nothing to write: end the transaction (it only read).
            return match c.batch_execute("ROLLBACK").await {
                Ok(()) => {
                    tx.close();
                    Ok(())
                }
                Err(e) => Err(read_failed(e)),
            };
        }
        let mut statements = Vec::with_capacity(2);
        for (sql, params) in contact_write.iter().chain(registry_write.iter()) {
            let statement = c.prepare_cached(sql).await.map_err(|e| {
                // Nothing written yet; the dropped transaction closes its connection.
                read_failed(e)
            })?;
            statements.push((statement, params));
        }
        // One pipeline: the writes, then COMMIT (which becomes a rollback if a write failed).
        let writes = futures_util::future::try_join_all(
            statements
                .iter()
                .map(|(statement, params)| execute(c, statement, params)),
        );
        let (written, committed) =
            futures_util::future::join(writes, c.batch_execute("COMMIT")).await;
        match (written, committed) {
            (Ok(_), Ok(())) => {
                tx.close();
                Ok(())
            }
            (Err(e), Ok(())) if lost_race(&e) => {
                tx.close();
                Err(Attempt::Again(None))
            }
            (Err(e), Ok(())) if !error::is_connection_error(&e) => {
                tx.close();
                Err(Attempt::Fail(self.query_error(
                    operation,
                    record(),
                    e,
                    false,
                )))
            }
            // The connection broke with COMMIT sent: it may have been applied.
            (Err(e), _) | (_, Err(e)) => Err(Attempt::Fail(self.query_error(
                operation,
                record(),
                e,
                true,
            ))),
        }
    }

    /// [`Store::load_with_registries`](waguard::Store::load_with_registries): one statement.
    pub(crate) async fn registry_load_with(
        &self,
        key: &ContactKey,
        keys: &[RegistryKey],
        read: &mut RegistryReadFn<'_>,
    ) -> Result<(), StoreError> {
        let contact = key.contact.to_string();
        let wanted: Vec<String> = keys.iter().map(RegistryKey::storage_key).collect();
        let rows = self
            .read_rows(
                "load",
                || Some(RecordKey::Contact(key.clone())),
                &self.sql.read_with_registries,
                &[&key.business.as_str(), &contact, &wanted],
            )
            .await?;
        let (mut contact, mut sender) = (None, None);
        let mut found: HashMap<&str, &[u8]> = HashMap::new();
        for row in &rows {
            match row.get::<_, i32>(0) {
                0 => contact = Some(row.get::<_, &[u8]>(2)),
                1 => sender = Some(row.get::<_, &[u8]>(2)),
                _ => {
                    found.insert(row.get(1), row.get(2));
                }
            }
        }
        let registries: Vec<Option<&[u8]>> = wanted
            .iter()
            .map(|k| found.get(k.as_str()).copied())
            .collect();
        read(contact, sender, &registries);
        Ok(())
    }

    /// Several records in one statement.
    pub(crate) async fn registry_load_many(
        &self,
        keys: &[RegistryKey],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let wanted: Vec<String> = keys.iter().map(RegistryKey::storage_key).collect();
        let rows = self
            .read_rows(
                "load_registry",
                || None,
                &self.sql.registry_read_many,
                &[&wanted],
            )
            .await?;
        let mut found: HashMap<String, Vec<u8>> =
            rows.into_iter().map(|r| (r.get(0), r.get(1))).collect();
        Ok(wanted.iter().map(|k| found.remove(k)).collect())
    }

    pub(crate) async fn registry_all(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let q = format!("\"{}\"", self.schema());
        let rows = self
            .read_rows(
                "registry_records",
                || None,
                &format!("SELECT key, state FROM {q}.registry ORDER BY key"),
                &[],
            )
            .await?;
        Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    pub(crate) async fn registry_load(
        &self,
        key: &RegistryKey,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let k = key.storage_key();
        self.read_one(
            "load_registry",
            || None,
            &self.sql.registry_read,
            &[&k],
            |row| row.map(|r| r.get(0)),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_are_stable_and_differ() {
        assert_eq!(lock_key("p/a"), lock_key("p/a"));
        assert_ne!(lock_key("p/a"), lock_key("p/b"));
    }
}
