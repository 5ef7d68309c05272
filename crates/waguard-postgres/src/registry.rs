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
use futures_util::future::{try_join, try_join4};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use waguard::staging::{stage_with_registry, StagedWithRegistry};
use waguard::{
    ContactKey, ContactRegistryUpdate, RecordKey, RegistryKey, RegistryReadFn, SenderUpdate,
    StoreError, UpdateAction,
};

use crate::batch::Rows;
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
        let mut paired = |_, _: Option<&[u8]>, _: Option<&[u8]>, registry: Option<&[u8]>| {
            Ok((UpdateAction::Keep, update(registry)?))
        };
        let mut retries = Retries::default();
        loop {
            match self.try_paired(OP, &[], key, &mut paired).await {
                Ok(()) => return Ok(()),
                Err(failed) => self.again(&mut retries, failed, OP, None).await?,
            }
        }
    }

    /// [`Store::update_with_registry`](waguard::Store::update_with_registry): one transaction
    /// that locks the registry record, then the contacts' rows.
    pub(crate) async fn contact_registry_update(
        &self,
        keys: &[ContactKey],
        registry: &RegistryKey,
        update: &mut ContactRegistryUpdate<'_>,
    ) -> Result<(), StoreError> {
        const OP: &str = "update_with_registry";
        let mut retries = Retries::default();
        loop {
            match self.try_paired(OP, keys, registry, update).await {
                Ok(()) => return Ok(()),
                Err(failed) => {
                    let record = keys.first().map(|k| RecordKey::Contact(k.clone()));
                    self.again(&mut retries, failed, OP, record).await?
                }
            }
        }
    }

    /// One attempt of a registry write with the contact records of `keys` (none for a
    /// registry record alone).
    async fn try_paired(
        &self,
        operation: &'static str,
        keys: &[ContactKey],
        registry: &RegistryKey,
        update: &mut ContactRegistryUpdate<'_>,
    ) -> Result<(), Attempt> {
        let record = || keys.first().map(|k| RecordKey::Contact(k.clone()));
        let read_failed = self.read_failed(operation, record);
        let r = registry.storage_key();
        let businesses: Vec<&str> = keys.iter().map(|k| k.business.as_str()).collect();
        let contacts: Vec<String> = keys.iter().map(|k| k.contact.to_string()).collect();
        let client = self
            .client(operation, record().as_ref())
            .await
            .map_err(Attempt::Fail)?;
        let mut prepared = Vec::with_capacity(4);
        for sql in [
            &self.sql.registry_lock,
            &self.sql.registry_read,
            &self.sql.lock_contacts,
            &self.sql.read_senders,
        ] {
            prepared.push(client.prepare_cached(sql).await.map_err(&read_failed)?);
        }
        let tx = Open(Some(client));
        let c = tx.client();
        let lock_id = lock_key(&r);
        // One pipeline: BEGIN, the registry lock, then the reads (each statement takes its
        // snapshot once the lock is held).
        let reads = async {
            if keys.is_empty() {
                return Ok((Vec::new(), Vec::new()));
            }
            try_join(
                c.query(&prepared[2], &[&businesses, &contacts]),
                c.query(&prepared[3], &[&businesses]),
            )
            .await
        };
        let (_, _, registry_row, (contact_rows, sender_rows)) = try_join4(
            c.batch_execute("BEGIN"),
            c.execute(&prepared[0], &[&lock_id]),
            c.query_opt(&prepared[1], &[&r]),
            reads,
        )
        .await
        .map_err(&read_failed)?;
        let stored: HashMap<(&str, &str), &[u8]> = contact_rows
            .iter()
            .map(|row| ((row.get(0), row.get(1)), row.get(2)))
            .collect();
        let senders: HashMap<&str, &[u8]> = sender_rows
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        let current_registry: Option<&[u8]> = registry_row.as_ref().map(|row| row.get(0));
        let per_op: Vec<(String, String)> = businesses
            .iter()
            .zip(&contacts)
            .map(|(b, c)| ((*b).to_owned(), c.clone()))
            .collect();
        let rows = Rows {
            per_op: &per_op,
            contacts: stored,
            senders,
        };
        let staged = match stage_with_registry(keys, current_registry, update, &rows) {
            Ok(staged) => staged,
            Err(e) => {
                if c.batch_execute("ROLLBACK").await.is_ok() {
                    tx.close();
                }
                return Err(Attempt::Fail(e));
            }
        };
        let writes = writes(&self.sql, staged, &rows.contacts, &r);
        if writes.is_empty() {
            // Nothing to write: end the transaction (it only read).
            return match c.batch_execute("ROLLBACK").await {
                Ok(()) => {
                    tx.close();
                    Ok(())
                }
                Err(e) => Err(read_failed(e)),
            };
        }
        let mut statements = Vec::with_capacity(writes.len());
        for (sql, params) in &writes {
            // On failure nothing is written yet; the dropped transaction closes its connection.
            let statement = c.prepare_cached(sql).await.map_err(&read_failed)?;
            statements.push((statement, params));
        }
        // One pipeline: the writes, then COMMIT (which becomes a rollback if a write failed).
        let written = futures_util::future::try_join_all(
            statements
                .iter()
                .map(|(statement, params)| execute(c, statement, params)),
        );
        let (written, committed) =
            futures_util::future::join(written, c.batch_execute("COMMIT")).await;
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

/// The write statements of a staged paired update, each failing loudly when it cannot apply
/// whole (see the module documentation): rows that exist are locked by this transaction, and
/// a row another writer inserted meanwhile makes the insert fail with a unique violation.
fn writes<'s>(
    sql: &'s crate::sql::Sql,
    staged: StagedWithRegistry<(&str, &str)>,
    stored: &HashMap<(&str, &str), &[u8]>,
    registry_key: &str,
) -> Vec<(&'s String, Params)> {
    let mut updates = (Vec::new(), Vec::new(), Vec::new());
    let mut inserts = (Vec::new(), Vec::new(), Vec::new());
    let mut deletes = (Vec::new(), Vec::new());
    for ((business, contact), value) in staged.contacts {
        let (b, c) = (business.to_owned(), contact.to_owned());
        match (stored.contains_key(&(business, contact)), value) {
            (true, Some(v)) => {
                updates.0.push(b);
                updates.1.push(c);
                updates.2.push(v);
            }
            (false, Some(v)) => {
                inserts.0.push(b);
                inserts.1.push(c);
                inserts.2.push(v);
            }
            (true, None) => {
                deletes.0.push(b);
                deletes.1.push(c);
            }
            // Created and deleted within the update: nothing to write.
            (false, None) => {}
        }
    }
    let mut out: Vec<(&String, Params)> = Vec::new();
    if !updates.0.is_empty() {
        out.push((
            &sql.batch_update_contacts,
            vec![
                Box::new(updates.0),
                Box::new(updates.1),
                Box::new(updates.2),
            ],
        ));
    }
    if !inserts.0.is_empty() {
        out.push((
            &sql.insert_contacts_or_fail,
            vec![
                Box::new(inserts.0),
                Box::new(inserts.1),
                Box::new(inserts.2),
            ],
        ));
    }
    if !deletes.0.is_empty() {
        out.push((
            &sql.batch_delete_contacts,
            vec![Box::new(deletes.0), Box::new(deletes.1)],
        ));
    }
    match staged.registry {
        None => {}
        Some(Some(bytes)) => out.push((
            &sql.registry_upsert,
            vec![Box::new(registry_key.to_owned()), Box::new(bytes)],
        )),
        // Deleting an absent row deletes nothing, as it should.
        Some(None) => out.push((
            &sql.registry_delete,
            vec![Box::new(registry_key.to_owned())],
        )),
    }
    out
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
