//! Registry records (templates and portfolios, rules T and L): the `registry` tree.
//!
//! Every registry write goes through the journal like a contact write, so that a counting
//! reservation can write the contact record and the portfolio record as one journal record
//! (both or neither after a crash), and so that a replay of the journal never puts back an
//! older registry record over a newer one written beside it. Registry writes hold
//! `sender_write` (they are few: template webhooks and portfolio counts).

use sled::IVec;
use waguard::{
    with_storage_key, ContactKey, ContactRegistryUpdate, RecordKey, RegistryKey, SenderUpdate,
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

    /// [`Store::update_with_registry`](waguard::Store::update_with_registry): the contact's
    /// stripe, then `sender_write` for the registry record, then one journal record for both
    /// writes.
    pub(crate) fn update_with_registry_sync(
        &self,
        key: &ContactKey,
        registry_key: &RegistryKey,
        update: &mut ContactRegistryUpdate<'_>,
    ) -> Result<(), StoreError> {
        const OP: &str = "update_with_registry";
        self.usable()?;
        let r = registry_key.storage_key();
        let err = |e| backend(OP, Some(RecordKey::Contact(key.clone())), e);
        with_storage_key(key, |k| {
            let hash = self.records.hash(k);
            let _stripe = self.stripes[Self::stripe_of(hash)].lock();
            let mut contact = self.contact_bytes(k, hash).map_err(err)?;
            loop {
                // Read before `sender_write`: a sender cache miss takes that lock itself.
                let sender = self.sender_bytes(&key.business)?;
                let _writing = self.sender_write.lock();
                let registry = self.registry.get(&r).map_err(err)?;
                let (contact_action, registry_action) =
                    update(contact.as_deref(), sender.as_deref(), registry.as_deref())?;
                let new_contact = change(contact_action, contact.as_ref());
                let new_registry = change(registry_action, registry.as_ref());
                let mut ops = Vec::with_capacity(2);
                let mut delta = Default::default();
                if let Some(value) = &new_contact {
                    ops.push(Op {
                        tree: journal::Tree::Contacts,
                        key: k,
                        value: value.as_deref(),
                    });
                    delta = self.delta(
                        journal::Tree::Contacts,
                        k,
                        contact.as_deref(),
                        value.as_deref(),
                    );
                }
                if let Some(value) = &new_registry {
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
                // Both swaps or neither: under the stripe and `sender_write` no store write
                // races these; a write from outside the store (`sled_db()`) makes the first
                // swap fail and the closure run again.
                let swapped = self
                    .journaled(&ops, delta, durable, OP, |_| {
                        let mut batch = sled::Batch::default();
                        let mut registry_batch = sled::Batch::default();
                        match &new_contact {
                            Some(Some(v)) => batch.insert(k, v.clone()),
                            Some(None) => batch.remove(k),
                            None => {}
                        }
                        match &new_registry {
                            Some(Some(v)) => registry_batch.insert(r.as_bytes(), v.clone()),
                            Some(None) => registry_batch.remove(r.as_bytes()),
                            None => {}
                        }
                        let unchanged = self.contacts.get(k).map_err(err)? == contact
                            && self.registry.get(&r).map_err(err)? == registry;
                        if !unchanged {
                            return Ok(false);
                        }
                        self.contacts.apply_batch(batch).map_err(err)?;
                        self.registry.apply_batch(registry_batch).map_err(err)?;
                        Ok(true)
                    })
                    .inspect_err(|_| self.records.put(k, hash, None))?;
                if swapped {
                    if let Some(value) = &new_contact {
                        self.records.put(k, hash, value.as_deref());
                    }
                    return Ok(());
                }
                contact = self.contacts.get(k).map_err(err)?;
                self.records.put(k, hash, contact.as_deref());
            }
        })
    }
}
