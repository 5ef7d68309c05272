//! Batches: one transaction that locks the batch's rows in key order, runs every closure, and
//! writes with one pipelined statement per table and kind of write.

use std::collections::{HashMap, HashSet};

use tokio_postgres::types::ToSql;
use waguard::{Batch, BatchOp, BusinessId, ContactKey, StoreError};

use crate::error;
use crate::sql::Sql;
use crate::{Attempt, Durability, PostgresError, PostgresStore};

impl PostgresStore {
    /// One attempt at a batch, in one transaction.
    pub(crate) async fn try_batch(
        &self,
        batch: &mut Batch<'_>,
        keys: &BatchKeys,
    ) -> Result<(), Attempt> {
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

        let committed = Rows {
            per_op: &keys.per_op,
            contacts: contact_rows
                .iter()
                .map(|r| ((r.get(0), r.get(1)), r.get(2)))
                .collect(),
            senders: locked_sender_rows
                .iter()
                .chain(&read_sender_rows)
                .map(|r| (r.get(0), r.get(1)))
                .collect(),
        };
        let locked_senders: HashSet<&str> = locked_sender_rows.iter().map(|r| r.get(0)).collect();

        // Run every closure in order against the committed records plus what is staged.
        let staged = waguard::staging::stage(batch, &committed).map_err(Attempt::Fail)?;
        let committed_contacts = committed.contacts;

        // Sort what to write (inserts in key order, as they take their locks).
        let mut staged_contacts: Vec<_> = staged.contacts.into_iter().collect();
        staged_contacts.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut staged_senders: Vec<_> = staged.senders.into_iter().collect();
        staged_senders.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut set = WriteSet::default();
        for ((b, c), value) in &staged_contacts {
            let existed = committed_contacts.contains_key(&(*b, *c));
            match (value, existed) {
                (Some(bytes), true) => set.update_contacts.push(b, c, bytes),
                (Some(bytes), false) => set.insert_contacts.push(b, c, bytes),
                (None, true) => set.delete_contacts.push(b, c, &[]),
                (None, false) => {}
            }
        }
        for (b, value) in &staged_senders {
            let existed = locked_senders.contains(b);
            match (value, existed) {
                (Some(bytes), true) => set.update_senders.push(b, "", bytes),
                (Some(bytes), false) => set.insert_senders.push(b, "", bytes),
                (None, true) => set.delete_senders.push(b, "", &[]),
                (None, false) => {}
            }
        }

        // Pipelined writes, in a fixed order: contacts, then senders.
        let writes = set.statements(&self.sql);
        if writes.is_empty() {
            // Nothing changed: end the transaction (releasing the locks) without a write.
            return tx.rollback().await.map_err(before_commit);
        }
        let mut statements = Vec::with_capacity(writes.len());
        for write in &writes {
            statements.push(tx.prepare_cached(write.sql).await.map_err(before_commit)?);
        }
        let results = futures_util::future::join_all(
            writes
                .iter()
                .zip(&statements)
                .map(|(write, statement)| tx.execute(statement, &write.params)),
        )
        .await;
        for (write, result) in writes.iter().zip(results) {
            let count = result.map_err(before_commit)?;
            if write
                .inserts
                .is_some_and(|expected| count != expected as u64)
            {
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

/// A batch's (or a paired update's) view of the committed records: the rows it locked (and the sender rows it only
/// reads), named by `(business, contact)` and business.
pub(crate) struct Rows<'k, 'r> {
    /// (business, contact) per operation.
    pub(crate) per_op: &'k [(String, String)],
    pub(crate) contacts: HashMap<(&'r str, &'r str), &'r [u8]>,
    pub(crate) senders: HashMap<&'r str, &'r [u8]>,
}

impl<'k> waguard::staging::Committed<'_> for Rows<'k, '_> {
    type Contact = (&'k str, &'k str);
    type Sender = &'k str;

    fn contact_name(&self, index: usize, _key: &ContactKey) -> (&'k str, &'k str) {
        let (b, c) = &self.per_op[index];
        (b, c)
    }

    fn sender_name(&self, index: usize, _business: &BusinessId) -> &'k str {
        &self.per_op[index].0
    }

    fn read_contact<R>(
        &self,
        name: &(&'k str, &'k str),
        _key: &ContactKey,
        read: impl FnOnce(Option<&[u8]>) -> R,
    ) -> Result<R, StoreError> {
        Ok(read(self.contacts.get(name).copied()))
    }

    fn read_sender<R>(
        &self,
        name: &&'k str,
        _business: &BusinessId,
        read: impl FnOnce(Option<&[u8]>) -> R,
    ) -> Result<R, StoreError> {
        Ok(read(self.senders.get(name).copied()))
    }
}

/// Keys of a batch, computed once for all its attempts.
pub(crate) struct BatchKeys {
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
    pub(crate) fn of(batch: &mut Batch<'_>) -> Self {
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

/// What a batch writes: the records of each table, by the statement that writes them.
#[derive(Default)]
struct WriteSet<'a> {
    /// Contact records that existed and change.
    update_contacts: Columns<'a>,
    /// Contact records that did not exist when locked.
    insert_contacts: Columns<'a>,
    /// Contact records that existed and go.
    delete_contacts: Columns<'a>,
    /// Sender records that existed and change.
    update_senders: Columns<'a>,
    /// Sender records that did not exist when locked.
    insert_senders: Columns<'a>,
    /// Sender records that existed and go.
    delete_senders: Columns<'a>,
}

/// One statement of a batch's writes.
struct Write<'s, 'p> {
    sql: &'s str,
    params: Vec<&'p (dyn ToSql + Sync)>,
    /// For an insert, the rows it must insert: fewer means a record was created meanwhile.
    inserts: Option<usize>,
}

impl<'a> WriteSet<'a> {
    /// The statements to run, in a fixed order (contacts, then senders; updates, inserts,
    /// deletes), leaving out those with nothing to write.
    fn statements<'s, 'p>(&'p self, sql: &'s Sql) -> Vec<Write<'s, 'p>> {
        let write = |sql: &'s String,
                     columns: &'p Columns<'a>,
                     params: Vec<&'p (dyn ToSql + Sync)>,
                     insert: bool| {
            (!columns.is_empty()).then(|| Write {
                sql: sql.as_str(),
                params,
                inserts: insert.then(|| columns.len()),
            })
        };
        let (cu, ci, cd) = (
            &self.update_contacts,
            &self.insert_contacts,
            &self.delete_contacts,
        );
        let (su, si, sd) = (
            &self.update_senders,
            &self.insert_senders,
            &self.delete_senders,
        );
        [
            write(
                &sql.batch_update_contacts,
                cu,
                vec![&cu.business, &cu.contact, &cu.state],
                false,
            ),
            write(
                &sql.batch_insert_contacts,
                ci,
                vec![&ci.business, &ci.contact, &ci.state],
                true,
            ),
            write(
                &sql.batch_delete_contacts,
                cd,
                vec![&cd.business, &cd.contact],
                false,
            ),
            write(
                &sql.batch_update_senders,
                su,
                vec![&su.business, &su.state],
                false,
            ),
            write(
                &sql.batch_insert_senders,
                si,
                vec![&si.business, &si.state],
                true,
            ),
            write(&sql.batch_delete_senders, sd, vec![&sd.business], false),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}
