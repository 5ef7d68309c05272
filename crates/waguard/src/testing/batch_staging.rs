//! Conformance case: how a batch stages deletes (see [`crate::staging`]).

use std::sync::Arc;

use super::{business, key, write};
use crate::{Batch, Store, UpdateAction};

/// A batch's deletes: deleting an absent record changes nothing (a batch of such deletes
/// succeeds and creates nothing, and a later operation still sees no record); a record
/// created and deleted in one batch is absent after it; a record deleted and written again
/// holds the new bytes; a contact closure after a staged sender delete sees no sender record.
pub async fn batch_staging<S: Store + 'static>(store: Arc<S>) {
    let (k1, k2) = (key(12, 1), key(12, 2));
    let b = business(12);

    let mut batch = Batch::new();
    batch
        .contact(k1.clone(), |c, _| {
            assert_eq!(c, None);
            Ok(UpdateAction::Delete)
        })
        .sender(b.clone(), |s| {
            assert_eq!(s, None);
            Ok(UpdateAction::Delete)
        })
        .contact(k1.clone(), |c, s| {
            assert_eq!(c, None, "a delete of an absent record stages nothing");
            assert_eq!(
                s, None,
                "a delete of an absent sender record stages nothing"
            );
            Ok(UpdateAction::Keep)
        });
    store.apply_batch(&mut batch).await.unwrap();
    drop(batch);
    assert_eq!(store.load(&k1).await.unwrap().contact, None);
    assert_eq!(store.load_sender(&b).await.unwrap(), None);

    store
        .update(&k2, &mut |_, _| Ok(write(b"old-2")))
        .await
        .unwrap();
    let mut batch = Batch::new();
    batch
        .contact(k1.clone(), |_, _| Ok(write(b"new-1")))
        .contact(k1.clone(), |c, _| {
            assert_eq!(c, Some(&b"new-1"[..]));
            Ok(UpdateAction::Delete)
        })
        .contact(k2.clone(), |c, _| {
            assert_eq!(c, Some(&b"old-2"[..]));
            Ok(UpdateAction::Delete)
        })
        .contact(k2.clone(), |c, _| {
            assert_eq!(c, None, "a batch sees its own earlier delete");
            Ok(write(b"again-2"))
        })
        .sender(b.clone(), |_| Ok(write(b"sender")))
        .sender(b.clone(), |s| {
            assert_eq!(s, Some(&b"sender"[..]));
            Ok(UpdateAction::Delete)
        })
        .contact(k1.clone(), |c, s| {
            assert_eq!(c, None);
            assert_eq!(s, None, "a contact closure sees the staged sender delete");
            Ok(UpdateAction::Keep)
        });
    store.apply_batch(&mut batch).await.unwrap();
    drop(batch);
    assert_eq!(store.load(&k1).await.unwrap().contact, None);
    assert_eq!(
        store.load(&k2).await.unwrap().contact.as_deref(),
        Some(&b"again-2"[..])
    );
    assert_eq!(store.load_sender(&b).await.unwrap(), None);
}
