//! Batches: staged under the stripes of their keys, journaled as one record, then applied to
//! sled key by key (or, where no journal holds them, as one atomic sled write).

use std::cell::RefCell;
use std::collections::HashMap;

use sled::transaction::TransactionError;
use sled::{IVec, Transactional};
use waguard::{Batch, BatchOp, BusinessId, ContactKey, RecordKey, StoreError};

use crate::durable::Covered;
use crate::journal::{self, Op};
use crate::manifest::Delta;
use crate::{backend, SledStore};

/// The fewest contact writes a batch gives each thread writing it: below that, starting a
/// thread (tens of microseconds) costs more than it saves (sled writes a key in 5-20 µs).
pub(crate) const MIN_KEYS_PER_THREAD: usize = 128;

impl SledStore {
    /// Runs a batch all or nothing, durably; returns whether anything was written.
    ///
    /// The batch holds the stripes of its keys (and, with sender operations, the sender
    /// lock), runs every closure on what the earlier operations of the batch staged or on the
    /// trees, and writes the staged result through the journal as one record. The stripes keep
    /// every other store write away from these keys meanwhile, so no closure runs twice.
    /// See [`apply_staged`](SledStore::apply_staged) for how sled then applies it.
    pub(crate) fn batch_sync(&self, batch: &mut Batch<'_>) -> Result<bool, StoreError> {
        // One contact operation alone (a webhook with one event, the common case) is atomic by
        // itself: the compare-and-swap path.
        if let [BatchOp::Contact { key, update }] = batch.ops_mut() {
            return self.update_sync(key, update.as_mut(), true);
        }
        // (`update_sync` checks this itself.)
        self.usable()?;
        // Each contact operation's storage key and its record-cache hash, built once.
        let storage_keys: Vec<Option<(Vec<u8>, u64)>> = batch
            .ops_mut()
            .iter()
            .map(|op| match op {
                BatchOp::Contact { key, .. } => {
                    let k = key.storage_key();
                    let hash = self.records.hash(&k);
                    Some((k, hash))
                }
                _ => None,
            })
            .collect();
        let mut stripes: Vec<usize> = storage_keys
            .iter()
            .flatten()
            .map(|&(_, hash)| Self::stripe_of(hash))
            .collect();
        stripes.sort_unstable();
        stripes.dedup();
        let _stripes: Vec<_> = stripes.iter().map(|&i| self.stripes[i].lock()).collect();
        let has_sender_ops = storage_keys.iter().any(Option::is_none);
        let _writing = has_sender_ops.then(|| self.sender_write.lock());
        // The records as they stand under the stripes; it keeps each key's record before the
        // batch, for the change to the manifest's sums.
        let committed = Striped {
            store: self,
            storage_keys: &storage_keys,
            has_sender_ops,
            contact_originals: RefCell::new(HashMap::new()),
            sender_originals: RefCell::new(HashMap::new()),
        };
        let staged = waguard::staging::stage(batch, &committed)?;
        if staged.is_empty() {
            return Ok(false);
        }
        let contact_originals = committed.contact_originals.into_inner();
        let sender_originals = committed.sender_originals.into_inner();
        // What the batch writes, by key (`None`: deleted).
        let contacts: HashMap<&[u8], Option<IVec>> = staged
            .contacts
            .into_iter()
            .map(|((k, _), v)| (k, v.map(IVec::from)))
            .collect();
        let senders: HashMap<BusinessId, Option<IVec>> = staged
            .senders
            .into_iter()
            .map(|(b, v)| (b.clone(), v.map(IVec::from)))
            .collect();
        let ops: Vec<Op<'_>> = contacts
            .iter()
            .map(|(k, v)| Op {
                tree: journal::Tree::Contacts,
                key: k,
                value: v.as_deref(),
            })
            .chain(senders.iter().map(|(b, v)| Op {
                tree: journal::Tree::Senders,
                key: b.as_str().as_bytes(),
                value: v.as_deref(),
            }))
            .collect();
        let mut delta = Delta::default();
        for (k, v) in &contacts {
            let original = contact_originals.get(k).and_then(|o| o.as_deref());
            delta = delta.plus(self.delta(journal::Tree::Contacts, k, original, v.as_deref()));
        }
        for (b, v) in &senders {
            let original = sender_originals.get(b).and_then(|o| o.as_deref());
            let key = b.as_str().as_bytes();
            delta = delta.plus(self.delta(journal::Tree::Senders, key, original, v.as_deref()));
        }
        self.journaled(&ops, delta, true, "apply_batch", |covered| {
            self.apply_staged(&contacts, &senders, covered)
        })?;
        Ok(true)
    }

    /// Writes a batch's staged records to sled. With senders, call with `sender_write` held.
    ///
    /// When the journal holds the batch, one key at a time: a crash midway is repaired by the
    /// replay, and the batch's keys are held by their stripes, so no writer sees a half-applied
    /// batch. Readers may (each key changes atomically; nothing a decision reads spans two
    /// contacts). This avoids sled's `apply_batch` and transactions, which hold a lock shared by
    /// every sled tree in the process for the whole batch: every read (every `check`) would wait
    /// for a batch of a thousand writes to finish, several milliseconds.
    ///
    /// Otherwise (a store without a journal, or a batch larger than the whole journal) sled
    /// must make the batch atomic itself: one `sled::Batch` for contacts alone, one transaction
    /// over both trees with senders.
    pub(crate) fn apply_staged(
        &self,
        contacts: &HashMap<&[u8], Option<IVec>>,
        senders: &HashMap<BusinessId, Option<IVec>>,
        covered: Covered,
    ) -> Result<(), StoreError> {
        let err = |e| backend("apply_batch", None, e);
        if covered == Covered::ByJournal {
            // In key order: consecutive inserts then walk the same upper levels of sled's tree
            // and often reach the same leaf, still in the processor's cache (+5-22% batched
            // ingest at 1e5-1e6 random keys, docs/performance.md).
            let mut in_order: Vec<(&[u8], &Option<IVec>)> =
                contacts.iter().map(|(k, v)| (*k, v)).collect();
            in_order.sort_unstable_by_key(|(k, _)| *k);
            self.write_contacts_in_parts(&in_order)?;
            for (business, value) in senders {
                match value {
                    Some(v) => self.senders.insert(business.as_str(), v.clone()).map(drop),
                    None => self.senders.remove(business.as_str()).map(drop),
                }
                .map_err(err)?;
                self.cache_sender(business, value.clone());
            }
            return Ok(());
        }
        if senders.is_empty() {
            let mut writes = sled::Batch::default();
            for (k, v) in contacts {
                match v {
                    Some(v) => writes.insert(*k, v.clone()),
                    None => writes.remove(*k),
                }
            }
            let written = self.contacts.apply_batch(writes);
            self.cache_batch(contacts, written.is_ok());
            return written.map_err(err);
        }
        let result: Result<(), TransactionError<()>> =
            (&self.contacts, &self.senders).transaction(|(tc, ts)| {
                for (k, v) in contacts {
                    match v {
                        Some(v) => tc.insert(*k, v.clone()).map(drop)?,
                        None => tc.remove(*k).map(drop)?,
                    }
                }
                for (b, v) in senders {
                    match v {
                        Some(v) => ts.insert(b.as_str(), v.clone()).map(drop)?,
                        None => ts.remove(b.as_str()).map(drop)?,
                    }
                }
                Ok(())
            });
        self.cache_batch(contacts, result.is_ok());
        match result {
            Ok(()) => {}
            Err(TransactionError::Storage(e)) => return Err(err(e)),
            Err(TransactionError::Abort(())) => unreachable!("the transaction never aborts"),
        }
        for (business, value) in senders {
            self.cache_sender(business, value.clone());
        }
        Ok(())
    }
}

impl SledStore {
    /// Writes a journaled batch's contacts (sorted by key) to sled and the record cache, in
    /// up to [`SledOptions::batch_threads`](crate::SledOptions::batch_threads) contiguous
    /// parts at once, each on its own thread: sled takes inserts from several threads side by
    /// side, and the batch's stripes, held by the caller, keep every other writer of these
    /// keys out meanwhile. Every part runs to its end or its first failure; the first
    /// failure is returned (the caller then stops the store, and the reopen replays the
    /// batch whole).
    fn write_contacts_in_parts(
        &self,
        in_order: &[(&[u8], &Option<IVec>)],
    ) -> Result<(), StoreError> {
        let parts = self
            .batch_threads
            .min(in_order.len() / MIN_KEYS_PER_THREAD)
            .max(1);
        #[cfg(test)]
        self.last_batch_parts
            .store(parts, std::sync::atomic::Ordering::Relaxed);
        if parts == 1 {
            return self.write_contacts(in_order);
        }
        let per_part = in_order.len().div_ceil(parts);
        std::thread::scope(|scope| {
            let mut chunks = in_order.chunks(per_part);
            let first = chunks.next().unwrap_or_default();
            let helpers: Vec<_> = chunks
                .map(|chunk| {
                    std::thread::Builder::new()
                        .name("waguard-sled-batch".into())
                        .spawn_scoped(scope, move || self.write_contacts(chunk))
                        // No thread to be had (a process limit): this thread writes the part.
                        .map_err(|_| chunk)
                })
                .collect();
            let mut result = self.write_contacts(first);
            for helper in helpers {
                let part = match helper {
                    Ok(handle) => handle
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                    Err(chunk) => self.write_contacts(chunk),
                };
                if result.is_ok() {
                    result = part;
                }
            }
            result
        })
    }

    /// Writes contacts to sled one key at a time, each followed by its record cache update;
    /// stops at the first failure.
    fn write_contacts(&self, part: &[(&[u8], &Option<IVec>)]) -> Result<(), StoreError> {
        for &(k, v) in part {
            let written = match v {
                Some(v) => self.contacts.insert(k, v.clone()).map(drop),
                None => self.contacts.remove(k).map(drop),
            };
            // The new record once sled has it; nothing cached if the write failed.
            let hash = self.records.hash(k);
            self.records
                .put(k, hash, v.as_deref().filter(|_| written.is_ok()));
            written.map_err(|e| backend("apply_batch", None, e))?;
            self.fail_here_in_tests()?;
        }
        Ok(())
    }

    /// Records an atomic sled write of a batch's contacts in the record cache: their new
    /// records, or, when the write failed, their absence (sled's state is then unknown).
    fn cache_batch(&self, contacts: &HashMap<&[u8], Option<IVec>>, written: bool) {
        for (k, v) in contacts {
            self.records
                .put(k, self.records.hash(k), v.as_deref().filter(|_| written));
        }
    }

    /// Unit tests' failure injection: after arming `fail_next_apply`, the next journaled
    /// batch fails after applying its first key, as a backend failure midway would.
    #[cfg(test)]
    fn fail_here_in_tests(&self) -> Result<(), StoreError> {
        let armed = self.fail_next_apply.lock().take();
        if let Some(delay) = armed {
            std::thread::sleep(delay);
            let failure = sled::Error::Unsupported("test: apply failed midway".into());
            return Err(backend("apply_batch", None, failure));
        }
        Ok(())
    }

    #[cfg(not(test))]
    #[inline(always)]
    fn fail_here_in_tests(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// A batch's (or a paired update's) view of the store: the committed records of the keys whose stripes (and, with
/// sender operations, the sender lock) it holds. Records each record's bytes before the batch
/// as it reads them, for the manifest's sums.
pub(crate) struct Striped<'s, 'k, 'b> {
    pub(crate) store: &'s SledStore,
    /// Each contact operation's storage key and record-cache hash.
    pub(crate) storage_keys: &'k [Option<(Vec<u8>, u64)>],
    /// The batch holds the sender lock (it has sender operations).
    pub(crate) has_sender_ops: bool,
    pub(crate) contact_originals: RefCell<HashMap<&'k [u8], Option<IVec>>>,
    pub(crate) sender_originals: RefCell<HashMap<&'b BusinessId, Option<IVec>>>,
}

impl<'k, 'b> waguard::staging::Committed<'b> for Striped<'_, 'k, 'b> {
    /// The storage key and its record-cache hash.
    type Contact = (&'k [u8], u64);
    type Sender = &'b BusinessId;

    fn contact_name(&self, index: usize, _key: &ContactKey) -> (&'k [u8], u64) {
        match &self.storage_keys[index] {
            Some((k, hash)) => (k, *hash),
            None => unreachable!("every contact operation has a storage key"),
        }
    }

    fn sender_name(&self, _index: usize, business: &'b BusinessId) -> &'b BusinessId {
        business
    }

    fn read_contact<R>(
        &self,
        &(name, hash): &(&'k [u8], u64),
        key: &ContactKey,
        read: impl FnOnce(Option<&[u8]>) -> R,
    ) -> Result<R, StoreError> {
        let original = self
            .store
            .contact_bytes(name, hash)
            .map_err(|e| backend("apply_batch", Some(RecordKey::Contact(key.clone())), e))?;
        let answer = read(original.as_deref());
        self.contact_originals
            .borrow_mut()
            .entry(name)
            .or_insert(original);
        Ok(answer)
    }

    fn read_sender<R>(
        &self,
        &name: &&'b BusinessId,
        business: &BusinessId,
        read: impl FnOnce(Option<&[u8]>) -> R,
    ) -> Result<R, StoreError> {
        let record = || Some(RecordKey::Sender(business.clone()));
        if !self.has_sender_ops {
            // Read-only: the cache may answer (`sender_bytes` takes the sender lock on a miss).
            let sender = self.store.sender_bytes(business)?;
            return Ok(read(sender.as_deref()));
        }
        // The sender lock is held already.
        let original = self
            .store
            .senders
            .get(name.as_str())
            .map_err(|e| backend("apply_batch", record(), e))?;
        let answer = read(original.as_deref());
        self.sender_originals
            .borrow_mut()
            .entry(name)
            .or_insert(original);
        Ok(answer)
    }
}
