//! Registry records (templates and portfolios, rules T and L): the `registry` tree.
//!
//! Every registry write goes through the journal like a contact write, so that a counting
//! reservation can write the contact record and the portfolio record as one journal record
//! (both or neither after a crash), and so that a replay of the journal never puts back an
//! older registry record over a newer one written beside it. Registry writes hold
//! `registry_write`, after the stripes of the contacts they write with.

use std::cell::RefCell;
use std::collections::HashMap;

use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
use sled::IVec;
use waguard::staging::stage_with_registry;
use waguard::{
    ContactKey, ContactRegistryUpdate, RecordKey, RegistryKey, SenderUpdate, StoreError,
    UpdateAction,
};

use crate::batch::Striped;
use crate::durable::Covered;
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
        let _writing = self.registry_write.lock();
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
    /// the contacts (ascending), then `registry_write`, the closures through the one staging
    /// routine, then one journal record for every write.
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
        let storage: Vec<Option<(Vec<u8>, u64)>> = keys
            .iter()
            .map(|key| {
                let k = key.storage_key();
                let hash = self.records.hash(&k);
                Some((k, hash))
            })
            .collect();
        let mut stripes: Vec<usize> = storage
            .iter()
            .flatten()
            .map(|&(_, h)| Self::stripe_of(h))
            .collect();
        stripes.sort_unstable();
        stripes.dedup();
        let _stripes: Vec<_> = stripes.iter().map(|&i| self.stripes[i].lock()).collect();
        let _writing = self.registry_write.lock();
        loop {
            let registry = self.registry.get(&r).map_err(err(None))?;
            let committed = Striped {
                store: self,
                storage_keys: &storage,
                has_sender_ops: false,
                contact_originals: RefCell::new(HashMap::new()),
                sender_originals: RefCell::new(HashMap::new()),
            };
            let staged = stage_with_registry(keys, registry.as_deref(), update, &committed)?;
            if staged.is_empty() {
                return Ok(());
            }
            let originals = committed.contact_originals.into_inner();
            let mut ops = Vec::with_capacity(staged.contacts.len() + 1);
            let mut delta = crate::manifest::Delta::default();
            for (&(k, _), value) in &staged.contacts {
                ops.push(Op {
                    tree: journal::Tree::Contacts,
                    key: k,
                    value: value.as_deref(),
                });
                let original = originals.get(k).cloned().flatten();
                delta = delta.plus(self.delta(
                    journal::Tree::Contacts,
                    k,
                    original.as_deref(),
                    value.as_deref(),
                ));
            }
            if let Some(value) = &staged.registry {
                ops.push(Op {
                    tree: journal::Tree::Registry,
                    key: r.as_bytes(),
                    value: value.as_deref(),
                });
            }
            let durable = self.single_writes_durable();
            let applied = self
                .journaled(&ops, delta, durable, OP, |covered| {
                    // Under the stripes and `registry_write` no store write races these; a
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
                    if covered == Covered::BySled {
                        // No journal record makes the writes one: a sled transaction does.
                        (&self.contacts, &self.registry)
                            .transaction(|(contacts, registries)| {
                                for (&(k, _), value) in &staged.contacts {
                                    match value {
                                        Some(v) => contacts.insert(k, v.clone()).map(drop)?,
                                        None => contacts.remove(k).map(drop)?,
                                    }
                                }
                                match &staged.registry {
                                    Some(Some(v)) => {
                                        registries.insert(r.as_bytes(), v.clone()).map(drop)?
                                    }
                                    Some(None) => registries.remove(r.as_bytes()).map(drop)?,
                                    None => {}
                                }
                                Ok::<(), ConflictableTransactionError<sled::Error>>(())
                            })
                            .map_err(|e| match e {
                                TransactionError::Abort(e) | TransactionError::Storage(e) => e,
                            })
                            .map_err(err(None))?;
                        return Ok(true);
                    }
                    // Key by key: the journal record makes the writes one across a crash, and
                    // sled's own batches would stall every reader of the store meanwhile.
                    for (&(k, _), value) in &staged.contacts {
                        match value {
                            Some(v) => self.contacts.insert(k, v.clone()).map(drop),
                            None => self.contacts.remove(k).map(drop),
                        }
                        .map_err(err(None))?;
                    }
                    match &staged.registry {
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
                    for (k, hash) in storage.iter().flatten() {
                        self.records.put(k, *hash, None);
                    }
                })?;
            if applied {
                for (&(k, hash), value) in &staged.contacts {
                    self.records.put(k, hash, value.as_deref());
                }
                return Ok(());
            }
            // A write from outside the store: its cached copies are stale, read the tree.
            for (k, hash) in storage.iter().flatten() {
                self.records.put(k, *hash, None);
            }
        }
    }
}
