//! [`MemoryStore`]: a concurrent, sharded, in-process store.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};

use async_trait::async_trait;
use hashbrown::HashTable;
use parking_lot::{RwLock, RwLockWriteGuard};

use crate::store::{
    with_storage_key, Batch, BatchOp, ContactRegistryUpdate, ContactUpdate, ReadFn, ScanStream,
    SenderUpdate, Store, StoreError, UpdateAction,
};
use crate::{BusinessId, ContactKey, KeyedRecord};

type Contacts = HashTable<KeyedRecord>;
type Senders = HashTable<(BusinessId, Vec<u8>)>;
/// Write guards of locked shards, by shard index.
type ShardGuards<'g, T> = HashMap<usize, RwLockWriteGuard<'g, T>>;

/// A store in process memory: nothing survives a restart.
///
/// Records live in `N` shards (64 by default), each a hash table behind a reader-writer lock,
/// chosen by a hash of the key; sender records live in their own shards. A contact entry holds
/// its storage key and record in one allocation, so a lookup touches one heap block. An update holds the
/// key's shard for the time of its closure, so concurrent updates of one key are serialised
/// and none is lost, while keys of other shards proceed in parallel. Reads of one shard
/// proceed in parallel. A batch locks every shard it touches (in a fixed order, so batches
/// cannot deadlock), runs its closures on a staged copy and applies everything only when all
/// of them succeeded.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use waguard::{MemoryStore, Store, UpdateAction};
/// let store = MemoryStore::new();
/// let key = "100000001/p:33612345678".parse().unwrap();
/// store.update(&key, &mut |old, _sender| {
///     assert!(old.is_none());
///     Ok(UpdateAction::Write(b"bytes".to_vec()))
/// }).await.unwrap();
/// assert_eq!(store.load(&key).await.unwrap().contact.as_deref(), Some(&b"bytes"[..]));
/// # });
/// ```
pub struct MemoryStore {
    hasher: foldhash::fast::RandomState,
    mask: usize,
    contacts: Box<[RwLock<Contacts>]>,
    senders: Box<[RwLock<Senders>]>,
    /// Registry records (templates), few and rarely written: one lock.
    registry: RwLock<std::collections::HashMap<String, Vec<u8>>>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("shards", &self.contacts.len())
            .finish_non_exhaustive()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store with 64 shards.
    pub fn new() -> Self {
        Self::with_shards(64)
    }

    /// An empty store with `shards` shards, rounded up to a power of two (at least 1, at most
    /// 65536). More shards mean less contention between tasks writing different keys.
    pub fn with_shards(shards: usize) -> Self {
        let n = shards.clamp(1, 1 << 16).next_power_of_two();
        MemoryStore {
            hasher: foldhash::fast::RandomState::default(),
            mask: n - 1,
            contacts: (0..n).map(|_| RwLock::new(HashTable::new())).collect(),
            senders: (0..n).map(|_| RwLock::new(HashTable::new())).collect(),
            registry: RwLock::new(std::collections::HashMap::new()),
        }
    }

    /// How many contact records the store holds (locks every shard in turn).
    pub fn len(&self) -> usize {
        self.contacts.iter().map(|s| s.read().len()).sum()
    }

    /// Whether the store holds no contact record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn hash<T: Hash + ?Sized>(&self, value: &T) -> u64 {
        self.hasher.hash_one(value)
    }

    /// Shard of a hash. hashbrown uses the low bits (bucket) and the top 7 bits (tag); the
    /// middle bits pick the shard so that the two do not correlate.
    fn shard(&self, hash: u64) -> usize {
        (hash >> 40) as usize & self.mask
    }

    fn contact_slot<'t>(table: &'t Contacts, hash: u64, key: &[u8]) -> Option<&'t [u8]> {
        table
            .find(hash, |e| e.key() == key)
            .map(KeyedRecord::record)
    }

    fn sender_slot<'t>(table: &'t Senders, hash: u64, business: &BusinessId) -> Option<&'t [u8]> {
        table
            .find(hash, |(b, _)| b == business)
            .map(|(_, v)| v.as_slice())
    }

    fn write_contact(&self, table: &mut Contacts, hash: u64, key: &[u8], value: Option<&[u8]>) {
        let hasher = |e: &KeyedRecord| self.hash(e.key());
        match (table.find_entry(hash, |e| e.key() == key), value) {
            (Ok(mut entry), Some(bytes)) => *entry.get_mut() = KeyedRecord::new(key, bytes),
            (Ok(entry), None) => {
                entry.remove();
            }
            (Err(_), Some(bytes)) => {
                table.insert_unique(hash, KeyedRecord::new(key, bytes), hasher);
            }
            (Err(_), None) => {}
        }
    }

    fn write_sender(
        &self,
        table: &mut Senders,
        hash: u64,
        business: &BusinessId,
        value: Option<Vec<u8>>,
    ) {
        let hasher = |(b, _): &(BusinessId, Vec<u8>)| self.hash(b);
        match (table.find_entry(hash, |(b, _)| b == business), value) {
            (Ok(mut entry), Some(bytes)) => entry.get_mut().1 = bytes,
            (Ok(entry), None) => {
                entry.remove();
            }
            (Err(_), Some(bytes)) => {
                table.insert_unique(hash, (business.clone(), bytes), hasher);
            }
            (Err(_), None) => {}
        }
    }

    /// Shows the contact record and its sender record to `read`, under both shards' read locks.
    fn read_sync(&self, key: &ContactKey, read: &mut ReadFn<'_>) {
        let bh = self.hash(&key.business);
        with_storage_key(key, |k| {
            let ch = self.hash(k);
            let contacts = self.contacts[self.shard(ch)].read();
            let senders = self.senders[self.shard(bh)].read();
            read(
                Self::contact_slot(&contacts, ch, k),
                Self::sender_slot(&senders, bh, &key.business),
            );
        })
    }

    /// Write-locks the shards of `contacts` and of `senders` in the store's lock order:
    /// contact shards ascending, then sender shards ascending (so no two multi-shard
    /// operations deadlock).
    fn lock_shards(
        &self,
        mut contacts: Vec<usize>,
        mut senders: Vec<usize>,
    ) -> (ShardGuards<'_, Contacts>, ShardGuards<'_, Senders>) {
        contacts.sort_unstable();
        contacts.dedup();
        senders.sort_unstable();
        senders.dedup();
        let contact_guards = contacts
            .iter()
            .map(|&i| (i, self.contacts[i].write()))
            .collect();
        let sender_guards = senders
            .iter()
            .map(|&i| (i, self.senders[i].write()))
            .collect();
        (contact_guards, sender_guards)
    }

    /// Writes staged contact records (`None` deletes) into their locked shards.
    fn write_staged<'k>(
        &self,
        guards: &mut ShardGuards<'_, Contacts>,
        staged: impl IntoIterator<Item = (&'k [u8], Option<Vec<u8>>)>,
    ) {
        for (key, value) in staged {
            let h = self.hash(key);
            let table = guards
                .get_mut(&self.shard(h))
                .expect("every touched shard is locked");
            self.write_contact(table, h, key, value.as_deref());
        }
    }

    fn batch_sync(&self, batch: &mut Batch<'_>) -> Result<(), StoreError> {
        // Which shards the batch touches, locked in ascending order: contacts, then senders
        // (the order every operation of this store takes locks in).
        let mut contact_shards: Vec<usize> = Vec::new();
        let mut sender_shards: Vec<usize> = Vec::new();
        // The storage key of each operation (empty for sender operations), built once.
        let mut storage_keys: Vec<Vec<u8>> = Vec::with_capacity(batch.len());
        for op in batch.ops_mut().iter() {
            match op {
                BatchOp::Contact { key, .. } => {
                    let k = key.storage_key();
                    contact_shards.push(self.shard(self.hash(&k[..])));
                    storage_keys.push(k);
                    sender_shards.push(self.shard(self.hash(&key.business)));
                }
                BatchOp::Sender { business, .. } => {
                    sender_shards.push(self.shard(self.hash(business)));
                    storage_keys.push(Vec::new());
                }
            }
        }
        let (mut contact_guards, mut sender_guards) =
            self.lock_shards(contact_shards, sender_shards);

        // Run every closure against the committed state plus what earlier operations staged.
        let staged = crate::staging::stage(
            batch,
            &LockedShards {
                store: self,
                contacts: &contact_guards,
                senders: &sender_guards,
                storage_keys: &storage_keys,
            },
        )?;

        // Every closure succeeded: apply.
        self.write_staged(&mut contact_guards, staged.contacts);
        for (business, value) in staged.senders {
            let h = self.hash(business);
            let table = sender_guards
                .get_mut(&self.shard(h))
                .expect("every touched shard is locked");
            self.write_sender(table, h, business, value);
        }
        Ok(())
    }
}

/// A batch's view of the memory store: the committed records of the shards it locked.
struct LockedShards<'s, 'g, 'k> {
    store: &'s MemoryStore,
    contacts: &'s ShardGuards<'g, Contacts>,
    senders: &'s ShardGuards<'g, Senders>,
    /// The storage key of each operation (empty for sender operations).
    storage_keys: &'k [Vec<u8>],
}

impl<'b, 'k> crate::staging::Committed<'b> for LockedShards<'_, '_, 'k> {
    type Contact = &'k [u8];
    type Sender = &'b BusinessId;

    fn contact_name(&self, index: usize, _key: &ContactKey) -> &'k [u8] {
        &self.storage_keys[index]
    }

    fn sender_name(&self, _index: usize, business: &'b BusinessId) -> &'b BusinessId {
        business
    }

    fn read_contact<R>(
        &self,
        name: &&'k [u8],
        _key: &ContactKey,
        read: impl FnOnce(Option<&[u8]>) -> R,
    ) -> Result<R, StoreError> {
        let h = self.store.hash(*name);
        let table = &self.contacts[&self.store.shard(h)];
        Ok(read(MemoryStore::contact_slot(table, h, name)))
    }

    fn read_sender<R>(
        &self,
        name: &&'b BusinessId,
        _business: &BusinessId,
        read: impl FnOnce(Option<&[u8]>) -> R,
    ) -> Result<R, StoreError> {
        let h = self.store.hash(*name);
        let table = &self.senders[&self.store.shard(h)];
        Ok(read(MemoryStore::sender_slot(table, h, name)))
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn update(
        &self,
        key: &ContactKey,
        update: &mut ContactUpdate<'_>,
    ) -> Result<(), StoreError> {
        let bh = self.hash(&key.business);
        with_storage_key(key, |k| {
            let ch = self.hash(k);
            let mut contacts = self.contacts[self.shard(ch)].write();
            let action = {
                let senders = self.senders[self.shard(bh)].read();
                update(
                    Self::contact_slot(&contacts, ch, k),
                    Self::sender_slot(&senders, bh, &key.business),
                )?
            };
            match action {
                UpdateAction::Keep => {}
                UpdateAction::Write(bytes) => {
                    self.write_contact(&mut contacts, ch, k, Some(&bytes))
                }
                UpdateAction::Delete => self.write_contact(&mut contacts, ch, k, None),
            }
            Ok(())
        })
    }

    async fn update_sender(
        &self,
        business: &BusinessId,
        update: &mut SenderUpdate<'_>,
    ) -> Result<(), StoreError> {
        let bh = self.hash(business);
        let mut senders = self.senders[self.shard(bh)].write();
        match update(Self::sender_slot(&senders, bh, business))? {
            UpdateAction::Keep => {}
            UpdateAction::Write(bytes) => {
                self.write_sender(&mut senders, bh, business, Some(bytes))
            }
            UpdateAction::Delete => self.write_sender(&mut senders, bh, business, None),
        }
        Ok(())
    }

    async fn load_with(&self, key: &ContactKey, read: &mut ReadFn<'_>) -> Result<(), StoreError> {
        self.read_sync(key, read);
        Ok(())
    }

    fn load_now(&self, key: &ContactKey, read: &mut ReadFn<'_>) -> Option<Result<(), StoreError>> {
        self.read_sync(key, read);
        Some(Ok(()))
    }

    async fn load_sender(&self, business: &BusinessId) -> Result<Option<Vec<u8>>, StoreError> {
        let bh = self.hash(business);
        let senders = self.senders[self.shard(bh)].read();
        Ok(Self::sender_slot(&senders, bh, business).map(<[u8]>::to_vec))
    }

    async fn remove(&self, key: &ContactKey) -> Result<bool, StoreError> {
        Ok(with_storage_key(key, |k| {
            let ch = self.hash(k);
            let mut contacts = self.contacts[self.shard(ch)].write();
            match contacts.find_entry(ch, |e| e.key() == k) {
                Ok(entry) => {
                    entry.remove();
                    true
                }
                Err(_) => false,
            }
        }))
    }

    fn scan(&self) -> ScanStream<'_> {
        // One shard at a time: each shard is copied under its read lock, then yielded.
        let shards = self.contacts.iter().map(|shard| {
            let copy: Vec<_> = shard
                .read()
                .iter()
                .map(|e| {
                    let (key, record) = e.split();
                    ContactKey::from_storage_key(key)
                        .map(|key| (key, record.to_vec()))
                        .map_err(|source| StoreError::BadStoredKey {
                            key: String::from_utf8_lossy(key).into_owned(),
                            source,
                        })
                })
                .collect();
            futures_util::stream::iter(copy)
        });
        Box::pin(futures_util::stream::StreamExt::flatten(
            futures_util::stream::iter(shards),
        ))
    }

    async fn all_senders(&self) -> Result<Vec<(BusinessId, Vec<u8>)>, StoreError> {
        Ok(self
            .senders
            .iter()
            .flat_map(|shard| shard.read().iter().cloned().collect::<Vec<_>>())
            .collect())
    }

    async fn apply_batch(&self, batch: &mut Batch<'_>) -> Result<(), StoreError> {
        self.batch_sync(batch)
    }

    async fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn update_registry(
        &self,
        key: &crate::RegistryKey,
        update: &mut SenderUpdate<'_>,
    ) -> Result<(), StoreError> {
        let k = key.storage_key();
        let mut registry = self.registry.write();
        match update(registry.get(&k).map(Vec::as_slice))? {
            UpdateAction::Keep => {}
            UpdateAction::Write(bytes) => {
                registry.insert(k, bytes);
            }
            UpdateAction::Delete => {
                registry.remove(&k);
            }
        }
        Ok(())
    }

    async fn load_with_registries(
        &self,
        key: &ContactKey,
        keys: &[crate::RegistryKey],
        read: &mut crate::RegistryReadFn<'_>,
    ) -> Result<(), StoreError> {
        // Copied out first: holding the registry's lock while taking a shard's would invert
        // the lock order of `update_with_registry`.
        let found: Vec<Option<Vec<u8>>> = {
            let registry = self.registry.read();
            keys.iter()
                .map(|k| registry.get(&k.storage_key()).cloned())
                .collect()
        };
        let found: Vec<Option<&[u8]>> = found.iter().map(|r| r.as_deref()).collect();
        self.read_sync(key, &mut |contact, sender| read(contact, sender, &found));
        Ok(())
    }

    async fn update_with_registry(
        &self,
        keys: &[ContactKey],
        registry_key: &crate::RegistryKey,
        update: &mut ContactRegistryUpdate<'_>,
    ) -> Result<(), StoreError> {
        let storage_keys: Vec<Vec<u8>> = keys.iter().map(ContactKey::storage_key).collect();
        let contact_shards = storage_keys
            .iter()
            .map(|k| self.shard(self.hash(&k[..])))
            .collect();
        let sender_shards = keys
            .iter()
            .map(|k| self.shard(self.hash(&k.business)))
            .collect();
        // Then the registry: no other operation takes the registry first and a shard after.
        let (mut contact_guards, sender_guards) = self.lock_shards(contact_shards, sender_shards);
        let mut registry = self.registry.write();
        let r = registry_key.storage_key();
        let staged = crate::staging::stage_with_registry(
            keys,
            registry.get(&r).map(Vec::as_slice),
            update,
            &LockedShards {
                store: self,
                contacts: &contact_guards,
                senders: &sender_guards,
                storage_keys: &storage_keys,
            },
        )?;
        // Every closure succeeded: apply.
        self.write_staged(&mut contact_guards, staged.contacts);
        match staged.registry {
            None => {}
            Some(Some(bytes)) => {
                registry.insert(r, bytes);
            }
            Some(None) => {
                registry.remove(&r);
            }
        }
        Ok(())
    }

    async fn load_registry(&self, key: &crate::RegistryKey) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.registry.read().get(&key.storage_key()).cloned())
    }

    async fn registry_records(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut records: Vec<_> = self
            .registry
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        records.sort();
        Ok(records)
    }
}
