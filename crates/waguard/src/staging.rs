//! Batch staging for store adapters: runs each operation of a [`Batch`] in order against the
//! committed records plus what the earlier operations staged, and returns what the batch
//! writes. Every store runs batches through [`stage`], so adding a kind of
//! [`BatchOp`] (a new record kind) changes this module and no adapter's copy of the algorithm.
//!
//! An adapter locks the batch's records its own way (shards, stripes, row locks), implements
//! [`Committed`] to show the records as they stand under those locks, calls [`stage`], and
//! writes the [`Staged`] result all together.
//!
//! ```
//! use std::collections::HashMap;
//! use waguard::staging::{stage, Committed};
//! use waguard::{Batch, BusinessId, ContactKey, StoreError, UpdateAction};
//!
//! /// Committed records held in two maps, named by their storage keys.
//! struct Maps {
//!     contacts: HashMap<Vec<u8>, Vec<u8>>,
//!     senders: HashMap<String, Vec<u8>>,
//! }
//!
//! impl Committed<'_> for Maps {
//!     type Contact = Vec<u8>;
//!     type Sender = String;
//!     fn contact_name(&self, _index: usize, key: &ContactKey) -> Vec<u8> {
//!         key.storage_key()
//!     }
//!     fn sender_name(&self, _index: usize, business: &BusinessId) -> String {
//!         business.as_str().to_owned()
//!     }
//!     fn read_contact<R>(
//!         &self,
//!         name: &Vec<u8>,
//!         _key: &ContactKey,
//!         read: impl FnOnce(Option<&[u8]>) -> R,
//!     ) -> Result<R, StoreError> {
//!         Ok(read(self.contacts.get(name).map(Vec::as_slice)))
//!     }
//!     fn read_sender<R>(
//!         &self,
//!         name: &String,
//!         _business: &BusinessId,
//!         read: impl FnOnce(Option<&[u8]>) -> R,
//!     ) -> Result<R, StoreError> {
//!         Ok(read(self.senders.get(name).map(Vec::as_slice)))
//!     }
//! }
//!
//! let key: ContactKey = "100000001/p:33612345678".parse().unwrap();
//! let maps = Maps { contacts: HashMap::new(), senders: HashMap::new() };
//! let mut batch = Batch::new();
//! batch
//!     .contact(key.clone(), |_, _| Ok(UpdateAction::Write(b"first".to_vec())))
//!     .contact(key.clone(), |contact, _| {
//!         assert_eq!(contact, Some(&b"first"[..]), "sees the earlier operation's write");
//!         Ok(UpdateAction::Write(b"second".to_vec()))
//!     });
//! let staged = stage(&mut batch, &maps).unwrap();
//! assert_eq!(staged.contacts[&key.storage_key()].as_deref(), Some(&b"second"[..]));
//! ```

use std::collections::HashMap;
use std::hash::Hash;

use crate::{
    Batch, BatchOp, BusinessId, ContactKey, ContactRegistryUpdate, StoreError, UpdateAction,
};

/// The committed records a batch runs against, as a store shows them under the locks it holds
/// for the batch.
///
/// Records are named by the adapter's own key types ([`Contact`](Committed::Contact),
/// [`Sender`](Committed::Sender)): a storage key, a `(business, contact)` pair, whatever the
/// adapter writes by. Reads lend the bytes to a closure, so an adapter can show records it
/// holds borrowed (under a lock guard, in a fetched row) without copying them.
///
/// `'b` is the borrow of the batch while it is staged: a name may borrow the batch's own keys
/// (`&'b ContactKey`, `&'b BusinessId`) rather than copy them.
pub trait Committed<'b> {
    /// How the adapter names a contact record.
    type Contact: Eq + Hash;
    /// How the adapter names a sender record.
    type Sender: Eq + Hash;

    /// The name of the contact record of operation `index` (a contact operation on `key`).
    fn contact_name(&self, index: usize, key: &'b ContactKey) -> Self::Contact;

    /// The name of the sender record operation `index` touches: the business of a sender
    /// operation, or the business of a contact operation's key (whose sender record the
    /// contact closure reads).
    fn sender_name(&self, index: usize, business: &'b BusinessId) -> Self::Sender;

    /// Shows the committed contact record `name` (of `key`) to `read`. Called at most once
    /// per record and batch: once a record is staged, the batch reads the staged one.
    fn read_contact<R>(
        &self,
        name: &Self::Contact,
        key: &ContactKey,
        read: impl FnOnce(Option<&[u8]>) -> R,
    ) -> Result<R, StoreError>;

    /// Shows the committed sender record `name` (of `business`) to `read`. Called before the
    /// record is staged, once per operation that reads it.
    fn read_sender<R>(
        &self,
        name: &Self::Sender,
        business: &BusinessId,
        read: impl FnOnce(Option<&[u8]>) -> R,
    ) -> Result<R, StoreError>;
}

/// What a batch writes, by the adapter's record names: the new bytes of each record it
/// changes, or `None` for a record it deletes.
///
/// A record the batch leaves as it found it is absent: a [`UpdateAction::Keep`] stages
/// nothing, and neither does a [`UpdateAction::Delete`] of a record that does not exist (it
/// is no change; a batch of such deletes writes nothing). A record deleted here may still be
/// absent from the store when an earlier operation of the batch created it: deleting an
/// absent record must be a no-op for the adapter's write.
#[derive(Debug)]
pub struct Staged<C, S> {
    /// The contact records the batch changes.
    pub contacts: HashMap<C, Option<Vec<u8>>>,
    /// The sender records the batch changes.
    pub senders: HashMap<S, Option<Vec<u8>>>,
}

impl<C, S> Staged<C, S> {
    /// Whether the batch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.contacts.is_empty() && self.senders.is_empty()
    }
}

/// Runs every operation of `batch` in order against `committed` plus what the earlier
/// operations staged, and returns what the batch writes.
///
/// A contact closure sees its contact record and its business's sender record as they stand
/// at that point of the batch. The first closure that returns an error stops the batch, and
/// that error is returned unchanged: the caller writes nothing.
pub fn stage<'b, T: Committed<'b>>(
    batch: &'b mut Batch<'_>,
    committed: &T,
) -> Result<Staged<T::Contact, T::Sender>, StoreError> {
    let mut staged = Staged {
        contacts: HashMap::new(),
        senders: HashMap::new(),
    };
    for (index, op) in batch.ops_mut().iter_mut().enumerate() {
        match op {
            BatchOp::Contact { key, update } => {
                let key: &'b ContactKey = key;
                let contact_name = committed.contact_name(index, key);
                let sender_name = committed.sender_name(index, &key.business);
                let staged_sender = staged.senders.get(&sender_name);
                let mut run = |contact: Option<&[u8]>| {
                    let action = match staged_sender {
                        Some(sender) => update(contact, sender.as_deref()),
                        None => committed
                            .read_sender(&sender_name, &key.business, |sender| {
                                update(contact, sender)
                            })
                            .and_then(|action| action),
                    }?;
                    Ok::<_, StoreError>((action, contact.is_some()))
                };
                let (action, exists) = match staged.contacts.get(&contact_name) {
                    Some(contact) => run(contact.as_deref()),
                    None => committed
                        .read_contact(&contact_name, key, run)
                        .and_then(|result| result),
                }?;
                record(&mut staged.contacts, contact_name, exists, action);
            }
            BatchOp::Sender { business, update } => {
                let business: &'b BusinessId = business;
                let name = committed.sender_name(index, business);
                let (action, exists) = match staged.senders.get(&name) {
                    Some(sender) => (update(sender.as_deref())?, sender.is_some()),
                    None => committed
                        .read_sender(&name, business, |sender| {
                            update(sender).map(|action| (action, sender.is_some()))
                        })
                        .and_then(|result| result)?,
                };
                record(&mut staged.senders, name, exists, action);
            }
        }
    }
    Ok(staged)
}

/// What a paired update ([`Store::update_with_registry`](crate::Store::update_with_registry))
/// writes: the contact records it changes, by the adapter's names (`None` deletes), and the
/// registry record (`None`: unchanged; `Some(None)`: deleted).
#[derive(Debug)]
pub struct StagedWithRegistry<C> {
    /// The contact records the update changes.
    pub contacts: HashMap<C, Option<Vec<u8>>>,
    /// The registry record, if the update changes it.
    pub registry: Option<Option<Vec<u8>>>,
}

impl<C> StagedWithRegistry<C> {
    /// Whether the update changes nothing.
    pub fn is_empty(&self) -> bool {
        self.contacts.is_empty() && self.registry.is_none()
    }
}

/// Runs the closure of a paired update for each of `keys` in order, against `committed` and
/// the committed registry record `registry` plus what the earlier runs staged, and returns
/// what the update writes. With no keys, the closure runs once (index 0, no contact, no
/// sender) for the registry record alone, and its contact answer is ignored. The first error
/// stops the update and is returned unchanged: the caller writes nothing.
pub fn stage_with_registry<'b, T: Committed<'b>>(
    keys: &'b [ContactKey],
    registry: Option<&[u8]>,
    update: &mut ContactRegistryUpdate<'_>,
    committed: &T,
) -> Result<StagedWithRegistry<T::Contact>, StoreError> {
    let mut staged = StagedWithRegistry {
        contacts: HashMap::new(),
        registry: None,
    };
    if keys.is_empty() {
        let (_, action) = update(0, None, None, registry)?;
        stage_registry(&mut staged.registry, registry.is_some(), action);
        return Ok(staged);
    }
    for (index, key) in keys.iter().enumerate() {
        let contact_name = committed.contact_name(index, key);
        let sender_name = committed.sender_name(index, &key.business);
        let current = match &staged.registry {
            Some(value) => value.as_deref(),
            None => registry,
        };
        let mut run = |contact: Option<&[u8]>| {
            let actions = committed
                .read_sender(&sender_name, &key.business, |sender| {
                    update(index, contact, sender, current)
                })
                .and_then(|actions| actions)?;
            Ok::<_, StoreError>((actions, contact.is_some()))
        };
        let ((contact_action, registry_action), exists) = match staged.contacts.get(&contact_name) {
            Some(contact) => run(contact.as_deref()),
            None => committed
                .read_contact(&contact_name, key, run)
                .and_then(|result| result),
        }?;
        let registry_exists = current.is_some();
        record(&mut staged.contacts, contact_name, exists, contact_action);
        stage_registry(&mut staged.registry, registry_exists, registry_action);
    }
    Ok(staged)
}

/// Stages what a run decided about the registry record, which `exists` (or not) at that point.
fn stage_registry(staged: &mut Option<Option<Vec<u8>>>, exists: bool, action: UpdateAction) {
    match action {
        UpdateAction::Keep => {}
        UpdateAction::Write(bytes) => *staged = Some(Some(bytes)),
        UpdateAction::Delete if exists => *staged = Some(None),
        // Deleting what does not exist changes nothing (what an earlier run staged stays
        // absent too: it was a delete).
        UpdateAction::Delete => {}
    }
}

/// Records what one operation decided about a record that `exists` (or not) at that point of
/// the batch.
fn record<K: Eq + Hash>(
    staged: &mut HashMap<K, Option<Vec<u8>>>,
    name: K,
    exists: bool,
    action: UpdateAction,
) {
    match action {
        UpdateAction::Keep => {}
        UpdateAction::Write(bytes) => {
            staged.insert(name, Some(bytes));
        }
        UpdateAction::Delete if exists => {
            staged.insert(name, None);
        }
        // Deleting what does not exist changes nothing.
        UpdateAction::Delete => {}
    }
}
