//! Registry records (templates and portfolios, rules T and L): the `registry` tree.
//!
//! Every registry write goes through the journal like a contact write, so that a counting
//! reservation can write the contact record and the portfolio record as one journal record
//! (both or neither after a crash), and so that a replay of the journal never puts back an
//! older registry record over a newer one written beside it. Registry writes hold
//! `sender_write` (they are few: template webhooks and portfolio counts).

use std::collections::HashMap;

use sled::IVec;
use waguard::{
    BusinessId, ContactKey, ContactRegistryUpdate, RecordKey, RegistryKey, SenderUpdate,
    StoreError, UpdateAction,
};

use crate::journal::{self, Op};
use crate::{backend, SledStore};

/// What an update closure's answer does to a record: `None` keeps it as it is, `Some(value)`
/// writes `value` (`None` deletes).
fn change(action: UpdateAction, current: Option<&IVec>) -> Option<Option<IVec>> {
    match action {
        UpdateAction::Keep => None,
        UpdateAction::Delete if current.is_none() => None,
        UpdateAction::Write(bytes) => Some(Some(IVec::from(bytes))),
        UpdateAction::Delete => Some(None),
    }
}

impl SledStore {
    /// [`Store::update_registry`](waguard::Store::update_registry).
    pub(crate) fn update_registry_sync(
        &self,
        key: &RegistryKey,
        update: &mut SenderUpdate<'_>,
    ) -> Result<(), StoreError> {
        const OP: &str = "update_registry";
        self.usable()?;
        let k = key.storage_key();
        let err = |e| backend(OP, None, e);
        let _writing = self.sender_write.lock();
        loop {
            let current = self.registry.get(&k).map_err(err)?;
            let Some(new) = change(update(current.as_deref())?, current.as_ref()) else {
                return Ok(());
            };
            let op = Op {
                tree: journal::Tree::Registry,
                key: k.as_bytes(),
                value: new.as_deref(),
            };
            let swapped = self.journaled(&[op], Default::default(), true, OP, |_| {
                Ok(self
                    .registry
                    .compare_and_swap(&k, current.clone(), new.clone())
                    .map_err(err)?
                    .is_ok())
            })?;
            if swapped {
                return Ok(());
            }
        }
    }

    /// [`Store::update_with_registry`](waguard::Store::update_with_registry): the stripes of
    /// the contacts (ascending), then `sender_write` for the registry record, then one
    /// journal record for every write.
    pub(crate) fn update_with_registry_sync(
        &self,
        keys: &[ContactKey],
        registry_key: &RegistryKey,
        update: &mut ContactRegistryUpdate<'_>,
    ) -> Result<(), StoreError> {
        const OP: &str = "update_with_registry";
        self.usable()?;
        let r = registry_key.storage_key();
        let err = |record: Option<RecordKey>| move |e| backend(OP, record, e);
        let storage: Vec<(Vec<u8>, u64)> = keys
            .iter()
            .map(|key| {
                let k = key.storage_key();
                let hash = self.records.hash(&k);
                (k, hash)
            })
            .collect();
        let mut stripes: Vec<usize> = storage.iter().map(|&(_, h)| Self::stripe_of(h)).collect();
        stripes.sort_unstable();
        stripes.dedup();
        let _stripes: Vec<_> = stripes.iter().map(|&i| self.stripes[i].lock()).collect();
        // Read before `sender_write`: a sender cache miss takes that lock itself.
        let mut senders: HashMap<&BusinessId, Option<IVec>> = HashMap::new();
        for key in keys {
            if !senders.contains_key(&key.business) {
                senders.insert(&key.business, self.sender_bytes(&key.business)?);
            }
        }
        let _writing = self.sender_write.lock();
        // After a write from outside the store (`sled_db()`) changed a record under us, its
        // cached copy is stale: read the trees.
        let mut fresh = false;
        loop {
            let registry = self.registry.get(&r).map_err(err(None))?;
            let mut originals: HashMap<&[u8], Option<IVec>> = HashMap::new();
            let mut staged: HashMap<&[u8], Option<IVec>> = HashMap::new();
            let mut staged_registry: Option<Option<IVec>> = None;
            for (index, (key, (k, hash))) in keys.iter().zip(&storage).enumerate() {
                let record = || Some(RecordKey::Contact(key.clone()));
                if !originals.contains_key(&k[..]) {
                    let original = if fresh {
                        self.contacts.get(k).map_err(err(record()))?
                    } else {
                        self.contact_bytes(k, *hash).map_err(err(record()))?
                    };
                    originals.insert(k, original);
                }
                let contact = staged.get(&k[..]).unwrap_or(&originals[&k[..]]);
                let current_registry = staged_registry.as_ref().unwrap_or(&registry);
                let (contact_action, registry_action) = update(
                    index,
                    contact.as_deref(),
                    senders[&key.business].as_deref(),
                    current_registry.as_deref(),
                )?;
                if let Some(value) = change(contact_action, contact.as_ref()) {
                    staged.insert(k, value);
                }
                if let Some(value) = change(registry_action, current_registry.as_ref()) {
                    staged_registry = Some(value);
                }
            }
            let mut ops = Vec::with_capacity(staged.len() + 1);
            let mut delta = crate::manifest::Delta::default();
            for (k, value) in &staged {
                ops.push(Op {
                    tree: journal::Tree::Contacts,
                    key: k,
                    value: value.as_deref(),
                });
                delta = delta.plus(self.delta(
                    journal::Tree::Contacts,
                    k,
                    originals[k].as_deref(),
                    value.as_deref(),
                ));
            }
            if let Some(value) = &staged_registry {
                ops.push(Op {
                    tree: journal::Tree::Registry,
                    key: r.as_bytes(),
                    value: value.as_deref(),
                });
            }
            if ops.is_empty() {
                return Ok(());
            }
            let durable = self.single_writes_durable();
            let applied = self
                .journaled(&ops, delta, durable, OP, |_| {
                    // Under the stripes and `sender_write` no store write races these; a
                    // write from outside the store makes this check fail and the closures run
                    // again.
                    for (k, original) in &originals {
                        if self.contacts.get(k).map_err(err(None))? != *original {
                            return Ok(false);
                        }
                    }
                    if self.registry.get(&r).map_err(err(None))? != registry {
                        return Ok(false);
                    }
                    let mut contacts = sled::Batch::default();
                    for (k, value) in &staged {
                        match value {
                            Some(v) => contacts.insert(*k, v.clone()),
                            None => contacts.remove(*k),
                        }
                    }
                    self.contacts.apply_batch(contacts).map_err(err(None))?;
                    match &staged_registry {
                        Some(Some(v)) => {
                            self.registry.insert(&r, v.clone()).map_err(err(None))?;
                        }
                        Some(None) => {
                            self.registry.remove(&r).map_err(err(None))?;
                        }
                        None => {}
                    }
                    Ok(true)
                })
                .inspect_err(|_| {
                    for (k, hash) in &storage {
                        self.records.put(k, *hash, None);
                    }
                })?;
            if applied {
                for (k, hash) in &storage {
                    if let Some(value) = staged.get(&k[..]) {
                        self.records.put(k, *hash, value.as_deref());
                    }
                }
                return Ok(());
            }
            for (k, hash) in &storage {
                self.records.put(k, *hash, None);
            }
            fresh = true;
        }
    }
}
