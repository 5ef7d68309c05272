//! Raw writes for the conformance suite and for tests of damaged stores (feature `testing`).

use async_trait::async_trait;
use sled::IVec;
use waguard::{BusinessId, ContactKey, RecordKey, StoreError};

use crate::journal::{self, Op};
use crate::{backend, SledStore};

/// The raw-bytes hook of the conformance suite (`waguard::testing`), with feature `testing`.
#[async_trait]
impl waguard::testing::RawAccess for SledStore {
    async fn put_raw_contact(&self, key: &ContactKey, bytes: &[u8]) -> Result<(), StoreError> {
        self.put_raw_contact_key(&key.storage_key(), bytes)
            .map_err(|e| match e {
                StoreError::Backend { source, .. } => StoreError::Backend {
                    operation: "put_raw_contact",
                    record: Some(RecordKey::Contact(key.clone())),
                    source,
                },
                other => other,
            })
    }

    async fn put_raw_sender(&self, business: &BusinessId, bytes: &[u8]) -> Result<(), StoreError> {
        let _writing = self.sender_write.lock();
        let op = Op {
            tree: journal::Tree::Senders,
            key: business.as_str().as_bytes(),
            value: Some(bytes),
        };
        let old = self
            .senders
            .get(business.as_str())
            .map_err(|e| backend("put_raw_sender", None, e))?;
        let delta = self.delta(op.tree, op.key, old.as_deref(), Some(bytes));
        self.journaled(&[op], delta, true, "put_raw_sender", |_| {
            self.senders.insert(business.as_str(), bytes).map_err(|e| {
                backend(
                    "put_raw_sender",
                    Some(RecordKey::Sender(business.clone())),
                    e,
                )
            })
        })?;
        self.cache_sender(business, Some(IVec::from(bytes)));
        Ok(())
    }
}

impl SledStore {
    /// Stores raw bytes under a raw key of the contacts tree, bypassing every check (feature
    /// `testing`; for tests of damaged stores).
    pub fn put_raw_contact_key(&self, key: &[u8], bytes: &[u8]) -> Result<(), StoreError> {
        let hash = self.records.hash(key);
        let _stripe = self.stripes[Self::stripe_of(hash)].lock();
        let op = Op {
            tree: journal::Tree::Contacts,
            key,
            value: Some(bytes),
        };
        let old = self
            .contacts
            .get(key)
            .map_err(|e| backend("put_raw_contact_key", None, e))?;
        let delta = self.delta(op.tree, key, old.as_deref(), Some(bytes));
        let written = self.journaled(&[op], delta, true, "put_raw_contact_key", |_| {
            self.contacts
                .insert(key, bytes)
                .map(drop)
                .map_err(|e| backend("put_raw_contact_key", None, e))
        });
        self.records
            .put(key, hash, Some(bytes).filter(|_| written.is_ok()));
        written
    }
}
