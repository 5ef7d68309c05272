//! Reads and writes of single records (contacts, senders, registry) and the [`Store`]
//! implementation that the guard calls.

use async_trait::async_trait;
use sled::IVec;
use waguard::{
    with_storage_key, Batch, BusinessId, ContactKey, ContactUpdate, ReadFn, RecordKey, ScanStream,
    SenderUpdate, Store, StoreError, UpdateAction,
};

use crate::cache::Cached;
use crate::journal::{self, Op};
use crate::{backend, durable, SledStore, SENDER_CACHE_LIMIT, STRIPES};

impl SledStore {
    /// The sender record of `business`, from the cache or the tree.
    pub(crate) fn sender_bytes(&self, business: &BusinessId) -> Result<Option<IVec>, StoreError> {
        if let Some(hit) = self.sender_cache.read().get(business) {
            return Ok(hit.clone());
        }
        // A miss fills the cache under the write lock, so that no sender write can slip in
        // between the tree read and the cache fill.
        let _writing = self.sender_write.lock();
        if let Some(hit) = self.sender_cache.read().get(business) {
            return Ok(hit.clone());
        }
        let value = self
            .senders
            .get(business.as_str())
            .map_err(|e| backend("load", Some(RecordKey::Sender(business.clone())), e))?;
        self.cache_sender(business, value.clone());
        Ok(value)
    }

    /// Sets a cache entry; call with `sender_write` held.
    pub(crate) fn cache_sender(&self, business: &BusinessId, value: Option<IVec>) {
        let mut cache = self.sender_cache.write();
        if cache.len() >= SENDER_CACHE_LIMIT && !cache.contains_key(business) {
            cache.clear();
        }
        cache.insert(business.clone(), value);
    }

    pub(crate) fn read_sync(
        &self,
        key: &ContactKey,
        read: &mut ReadFn<'_>,
    ) -> Result<(), StoreError> {
        self.usable()?;
        let sender = self.sender_bytes(&key.business)?;
        with_storage_key(key, |k| {
            let hash = self.records.hash(k);
            let ticket = match self
                .records
                .read(k, hash, |c| read(Some(c), sender.as_deref()))
            {
                Cached::Hit(()) => return Ok(()),
                Cached::Miss(ticket) => ticket,
            };
            let contact = self
                .contacts
                .get(k)
                .map_err(|e| backend("load", Some(RecordKey::Contact(key.clone())), e))?;
            if let Some(record) = &contact {
                self.records.fill(k, hash, ticket, record);
            }
            read(contact.as_deref(), sender.as_deref());
            Ok(())
        })
    }

    /// The contact record under `k` (of record-cache hash `hash`), from the record cache or the
    /// tree (filling the cache).
    /// Under the key's stripe, a cached record is the tree's: every write of the key holds
    /// the stripe and updates the cache before letting go of it.
    pub(crate) fn contact_bytes(&self, k: &[u8], hash: u64) -> Result<Option<IVec>, sled::Error> {
        let ticket = match self.records.read(k, hash, |record| IVec::from(record)) {
            Cached::Hit(record) => return Ok(Some(record)),
            Cached::Miss(ticket) => ticket,
        };
        let record = self.contacts.get(k)?;
        if let Some(record) = &record {
            self.records.fill(k, hash, ticket, record);
        }
        Ok(record)
    }

    /// The stripe of a storage key, from its record-cache hash (one hash per operation).
    pub(crate) fn stripe_of(hash: u64) -> usize {
        hash as usize % STRIPES
    }

    /// One contact's read-modify-write; `durable`: on disk when this returns.
    pub(crate) fn update_sync(
        &self,
        key: &ContactKey,
        update: &mut ContactUpdate<'_>,
        durable: bool,
    ) -> Result<bool, StoreError> {
        self.usable()?;
        let k = key.storage_key();
        let err = |e| backend("update", Some(RecordKey::Contact(key.clone())), e);
        let hash = self.records.hash(&k);
        let _stripe = self.stripes[Self::stripe_of(hash)].lock();
        // Under the stripe no store write races this one; the compare-and-swap still guards
        // against writes from outside the store (`sled_db()`): after a failed swap the record
        // is read from the tree again, not from the cache.
        let mut current = self.contact_bytes(&k, hash).map_err(err)?;
        loop {
            let sender = self.sender_bytes(&key.business)?;
            let new = match update(current.as_deref(), sender.as_deref())? {
                UpdateAction::Keep => return Ok(false),
                UpdateAction::Delete if current.is_none() => return Ok(false),
                UpdateAction::Write(bytes) => Some(bytes),
                UpdateAction::Delete => None,
            };
            let op = Op {
                tree: journal::Tree::Contacts,
                key: &k,
                value: new.as_deref(),
            };
            let delta = self.delta(op.tree, &k, current.as_deref(), op.value);
            let swapped = self
                .journaled(&[op], delta, durable, "update", |_| {
                    Ok(self
                        .contacts
                        .compare_and_swap(&k, current.clone(), new.as_deref())
                        .map_err(err)?
                        .is_ok())
                })
                .inspect_err(|_| self.records.put(&k, hash, None))?;
            if swapped {
                self.records.put(&k, hash, new.as_deref());
                return Ok(true);
            }
            // Another writer got there first: run the closure again on what it wrote (its
            // journal record then follows this attempt's, and wins at a replay).
            current = self.contacts.get(&k).map_err(err)?;
            self.records.put(&k, hash, current.as_deref());
        }
    }

    pub(crate) fn update_sender_sync(
        &self,
        business: &BusinessId,
        update: &mut SenderUpdate<'_>,
    ) -> Result<bool, StoreError> {
        self.usable()?;
        let _writing = self.sender_write.lock();
        let err = |e| {
            backend(
                "update_sender",
                Some(RecordKey::Sender(business.clone())),
                e,
            )
        };
        loop {
            let current = self.senders.get(business.as_str()).map_err(err)?;
            let new = match update(current.as_deref())? {
                UpdateAction::Keep => return Ok(false),
                UpdateAction::Delete if current.is_none() => return Ok(false),
                UpdateAction::Write(bytes) => Some(IVec::from(bytes)),
                UpdateAction::Delete => None,
            };
            let op = Op {
                tree: journal::Tree::Senders,
                key: business.as_str().as_bytes(),
                value: new.as_deref(),
            };
            let delta = self.delta(op.tree, op.key, current.as_deref(), op.value);
            let swapped = self.journaled(
                &[op],
                delta,
                self.single_writes_durable(),
                "update_sender",
                |_| {
                    Ok(self
                        .senders
                        .compare_and_swap(business.as_str(), current, new.clone())
                        .map_err(err)?
                        .is_ok())
                },
            )?;
            if swapped {
                self.cache_sender(business, new);
                return Ok(true);
            }
        }
    }
}

#[async_trait]
impl Store for SledStore {
    async fn update(
        &self,
        key: &ContactKey,
        update: &mut ContactUpdate<'_>,
    ) -> Result<(), StoreError> {
        self.update_sync(key, update, self.single_writes_durable())?;
        Ok(())
    }

    async fn update_sender(
        &self,
        business: &BusinessId,
        update: &mut SenderUpdate<'_>,
    ) -> Result<(), StoreError> {
        self.update_sender_sync(business, update)?;
        Ok(())
    }

    async fn load_with(&self, key: &ContactKey, read: &mut ReadFn<'_>) -> Result<(), StoreError> {
        self.read_sync(key, read)
    }

    fn load_now(&self, key: &ContactKey, read: &mut ReadFn<'_>) -> Option<Result<(), StoreError>> {
        Some(self.read_sync(key, read))
    }

    async fn load_sender(&self, business: &BusinessId) -> Result<Option<Vec<u8>>, StoreError> {
        self.usable()?;
        Ok(self.sender_bytes(business)?.map(|v| v.to_vec()))
    }

    async fn update_registry(
        &self,
        key: &waguard::RegistryKey,
        update: &mut SenderUpdate<'_>,
    ) -> Result<(), StoreError> {
        self.update_registry_sync(key, update)
    }

    async fn load_with_registries(
        &self,
        key: &ContactKey,
        keys: &[waguard::RegistryKey],
        read: &mut waguard::RegistryReadFn<'_>,
    ) -> Result<(), StoreError> {
        self.usable()?;
        let mut found = Vec::with_capacity(keys.len());
        for k in keys {
            found.push(
                self.registry
                    .get(k.storage_key())
                    .map_err(|e| backend("load_registry", None, e))?,
            );
        }
        let borrowed: Vec<Option<&[u8]>> = found.iter().map(|r| r.as_deref()).collect();
        self.read_sync(key, &mut |contact, sender| read(contact, sender, &borrowed))
    }

    async fn update_with_registry(
        &self,
        keys: &[ContactKey],
        registry: &waguard::RegistryKey,
        update: &mut waguard::ContactRegistryUpdate<'_>,
    ) -> Result<(), StoreError> {
        self.update_with_registry_sync(keys, registry, update)
    }

    async fn load_registry(
        &self,
        key: &waguard::RegistryKey,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.usable()?;
        let err = |e| backend("load_registry", None, e);
        Ok(self
            .registry
            .get(key.storage_key())
            .map_err(err)?
            .map(|v| v.to_vec()))
    }

    async fn registry_records(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.usable()?;
        let err = |e| backend("registry_records", None, e);
        let mut records = Vec::new();
        for item in self.registry.iter() {
            let (k, v) = item.map_err(err)?;
            records.push((String::from_utf8_lossy(&k).into_owned(), v.to_vec()));
        }
        Ok(records)
    }

    async fn remove(&self, key: &ContactKey) -> Result<bool, StoreError> {
        self.usable()?;
        let k = key.storage_key();
        let err = |e| backend("remove", Some(RecordKey::Contact(key.clone())), e);
        let hash = self.records.hash(&k);
        let _stripe = self.stripes[Self::stripe_of(hash)].lock();
        let Some(old) = self.contacts.get(&k).map_err(err)? else {
            return Ok(false);
        };
        let op = Op {
            tree: journal::Tree::Contacts,
            key: &k,
            value: None,
        };
        let delta = self.delta(op.tree, &k, Some(&old), None);
        let durable = self.single_writes_durable();
        let removed = self.journaled(&[op], delta, durable, "remove", |_| {
            self.contacts.remove(&k).map(drop).map_err(err)
        });
        // Removed, or unknown after a failure: either way not cached any more.
        self.records.put(&k, hash, None);
        removed?;
        Ok(true)
    }

    fn scan(&self) -> ScanStream<'_> {
        if let Err(e) = self.usable() {
            return Box::pin(futures_util::stream::iter([Err(e)]));
        }
        let items = self.contacts.iter().map(|item| {
            let (k, v) = item.map_err(|e| backend("scan", None, e))?;
            let key =
                ContactKey::from_storage_key(&k).map_err(|source| StoreError::BadStoredKey {
                    key: String::from_utf8_lossy(&k).into_owned(),
                    source,
                })?;
            Ok((key, v.to_vec()))
        });
        Box::pin(futures_util::stream::iter(items))
    }

    async fn all_senders(&self) -> Result<Vec<(BusinessId, Vec<u8>)>, StoreError> {
        self.usable()?;
        self.senders
            .iter()
            .map(|item| {
                let (k, v) = item.map_err(|e| backend("all_senders", None, e))?;
                let text = String::from_utf8_lossy(&k).into_owned();
                let business =
                    BusinessId::parse(&text).map_err(|source| StoreError::BadStoredKey {
                        key: text.clone(),
                        source: source.into(),
                    })?;
                Ok((business, v.to_vec()))
            })
            .collect()
    }

    async fn apply_batch(&self, batch: &mut Batch<'_>) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.batch_sync(batch)?;
        Ok(())
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.usable()?;
        match &self.journal {
            // Every write is in the journal: syncing it makes them all durable.
            Some(journal) => journal
                .sync()
                .map_err(|e| self.stop(durable::Stop::Sync, Box::new(e))),
            None => self.flush_sled("flush"),
        }
    }
}
