//! Round trips of every kind of record, updates under concurrency and batch atomicity.

use std::sync::Arc;

use crate::{Batch, ContactKey, RecordKey, Store, StoreError, UpdateAction};

use super::{aborted, business, counter, key, write};

/// Writes, reads, keeps, deletes and removes records of every kind of key.
pub async fn round_trips<S: Store + 'static>(store: Arc<S>) {
    let k = key(1, 1);
    let b = business(1);
    let loaded = store.load(&k).await.unwrap();
    assert_eq!(
        (loaded.contact, loaded.sender),
        (None, None),
        "a fresh store is empty"
    );
    assert_eq!(store.load_sender(&b).await.unwrap(), None);

    store
        .update(&k, &mut |c, s| {
            assert_eq!((c, s), (None, None), "the closure sees the absent records");
            Ok(write(b"contact-1"))
        })
        .await
        .unwrap();
    store
        .update_sender(&b, &mut |s| {
            assert_eq!(s, None);
            Ok(write(b"sender-1"))
        })
        .await
        .unwrap();
    let loaded = store.load(&k).await.unwrap();
    assert_eq!(loaded.contact.as_deref(), Some(&b"contact-1"[..]));
    assert_eq!(
        loaded.sender.as_deref(),
        Some(&b"sender-1"[..]),
        "a load returns the sender record of the key's business"
    );
    let mut seen = None;
    store
        .load_with(&k, &mut |c, s| {
            seen = Some((c.map(<[u8]>::to_vec), s.map(<[u8]>::to_vec)))
        })
        .await
        .unwrap();
    assert_eq!(
        seen,
        Some((Some(b"contact-1".to_vec()), Some(b"sender-1".to_vec())))
    );
    let mut seen_now = None;
    if let Some(result) = store.load_now(&k, &mut |c, s| {
        seen_now = Some((c.map(<[u8]>::to_vec), s.map(<[u8]>::to_vec)))
    }) {
        result.unwrap();
        assert_eq!(seen_now, seen, "load_now agrees with load_with");
    }
    store
        .update(&k, &mut |c, s| {
            assert_eq!(c, Some(&b"contact-1"[..]));
            assert_eq!(
                s,
                Some(&b"sender-1"[..]),
                "an update sees the sender record"
            );
            Ok(UpdateAction::Keep)
        })
        .await
        .unwrap();
    assert_eq!(
        store.load(&k).await.unwrap().contact.as_deref(),
        Some(&b"contact-1"[..]),
        "Keep leaves the record"
    );

    // Other keys are independent: another contact kind, another business.
    let user: ContactKey = format!("{}/u:US.13491208655302741918", business(1))
        .parse()
        .unwrap();
    let group: ContactKey = format!("{}/g:120363@g.us", business(2)).parse().unwrap();
    let big: Vec<u8> = (0..4096u32).map(|i| (i % 251) as u8).collect();
    store
        .update(&user, &mut |_, _| Ok(write(&[0, 1, 0, 255])))
        .await
        .unwrap();
    store
        .update(&group, &mut |_, s| {
            assert_eq!(s, None, "business 2 has no sender record");
            Ok(write(&big))
        })
        .await
        .unwrap();
    assert_eq!(
        store.load(&user).await.unwrap().contact.as_deref(),
        Some(&[0, 1, 0, 255][..])
    );
    assert_eq!(store.load(&group).await.unwrap().contact, Some(big.clone()));
    assert_eq!(
        store.load(&k).await.unwrap().contact.as_deref(),
        Some(&b"contact-1"[..])
    );

    // A closure error aborts and is handed back unchanged.
    let err = store
        .update(&k, &mut |_, _| Err(aborted(RecordKey::Contact(key(1, 1)))))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Aborted { .. }), "{err}");
    assert_eq!(
        store.load(&k).await.unwrap().contact.as_deref(),
        Some(&b"contact-1"[..])
    );

    // Delete, remove.
    store
        .update(&user, &mut |_, _| Ok(UpdateAction::Delete))
        .await
        .unwrap();
    assert_eq!(
        store.load(&user).await.unwrap().contact,
        None,
        "Delete deletes"
    );
    assert!(
        store.remove(&k).await.unwrap(),
        "remove reports an existing record"
    );
    assert!(
        !store.remove(&k).await.unwrap(),
        "remove reports an absent record"
    );
    let loaded = store.load(&k).await.unwrap();
    assert_eq!(loaded.contact, None);
    assert_eq!(
        loaded.sender.as_deref(),
        Some(&b"sender-1"[..]),
        "remove keeps the sender record"
    );
    store
        .update_sender(&b, &mut |_| Ok(UpdateAction::Delete))
        .await
        .unwrap();
    assert_eq!(store.load_sender(&b).await.unwrap(), None);
    store.flush().await.unwrap();
}

/// Many tasks increment counters on a few shared keys, through updates and batches; every
/// increment must be there at the end.
pub async fn no_lost_updates<S: Store + 'static>(store: Arc<S>) {
    const TASKS: u64 = 8;
    const BATCH_TASKS: u64 = 2;
    const UPDATES: u64 = 200;
    const KEYS: u32 = 4;
    let b = business(7);
    let mut handles = Vec::new();
    for task in 0..TASKS {
        let store = Arc::clone(&store);
        let b = b.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..UPDATES {
                let k = key(7, ((task + i) % u64::from(KEYS)) as u32);
                let mut increment = |c: Option<&[u8]>, _: Option<&[u8]>| {
                    Ok(UpdateAction::Write((counter(c) + 1).to_le_bytes().to_vec()))
                };
                if task < BATCH_TASKS {
                    // Two keys per batch: this one and the next, plus the sender counter.
                    let k2 = key(7, ((task + i + 1) % u64::from(KEYS)) as u32);
                    let mut batch = Batch::new();
                    batch.contact(k, increment);
                    batch.contact(k2, |c, _| {
                        Ok(UpdateAction::Write((counter(c) + 1).to_le_bytes().to_vec()))
                    });
                    batch.sender(b.clone(), |s| {
                        Ok(UpdateAction::Write((counter(s) + 1).to_le_bytes().to_vec()))
                    });
                    store.apply_batch(&mut batch).await.unwrap();
                } else {
                    store.update(&k, &mut increment).await.unwrap();
                    if i % 4 == 0 {
                        store
                            .update_sender(&b, &mut |s| {
                                Ok(UpdateAction::Write((counter(s) + 1).to_le_bytes().to_vec()))
                            })
                            .await
                            .unwrap();
                    }
                }
                if i % 16 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    for h in handles {
        h.await.expect("a task panicked");
    }
    let mut total = 0;
    for n in 0..KEYS {
        total += counter(store.load(&key(7, n)).await.unwrap().contact.as_deref());
    }
    let expected = (TASKS - BATCH_TASKS) * UPDATES + BATCH_TASKS * UPDATES * 2;
    assert_eq!(
        total, expected,
        "contact updates were lost under concurrency"
    );
    let sender = counter(store.load_sender(&b).await.unwrap().as_deref());
    let expected_sender = BATCH_TASKS * UPDATES + (TASKS - BATCH_TASKS) * UPDATES / 4;
    assert_eq!(
        sender, expected_sender,
        "sender updates were lost under concurrency"
    );
}

/// A batch is applied all or nothing, in order.
pub async fn batch_atomicity<S: Store + 'static>(store: Arc<S>) {
    let (k1, k2, k3) = (key(3, 1), key(3, 2), key(3, 3));
    let b = business(3);
    store
        .update(&k1, &mut |_, _| Ok(write(b"old-1")))
        .await
        .unwrap();
    store
        .update_sender(&b, &mut |_| Ok(write(b"sender-old")))
        .await
        .unwrap();

    // The last operation fails: nothing of the batch may be applied.
    let mut batch = Batch::new();
    batch
        .contact(k1.clone(), |_, _| Ok(write(b"new-1")))
        .sender(b.clone(), |_| Ok(write(b"sender-new")))
        .contact(k2.clone(), |_, _| Ok(write(b"new-2")))
        .contact(k3.clone(), |_, _| {
            Err(aborted(RecordKey::Contact(key(3, 3))))
        });
    let err = store.apply_batch(&mut batch).await.unwrap_err();
    drop(batch);
    assert!(matches!(err, StoreError::Aborted { .. }), "{err}");
    assert_eq!(
        store.load(&k1).await.unwrap().contact.as_deref(),
        Some(&b"old-1"[..]),
        "a failed batch changed k1"
    );
    assert_eq!(
        store.load(&k2).await.unwrap().contact,
        None,
        "a failed batch created k2"
    );
    assert_eq!(
        store.load_sender(&b).await.unwrap().as_deref(),
        Some(&b"sender-old"[..]),
        "a failed batch changed the sender record"
    );

    // A good batch: applied in order; a key seen twice sees its own earlier write; a contact
    // closure sees the sender record as staged earlier in the batch.
    let mut batch = Batch::new();
    batch
        .sender(b.clone(), |s| {
            assert_eq!(s, Some(&b"sender-old"[..]));
            Ok(write(b"sender-new"))
        })
        .contact(k1.clone(), |c, s| {
            assert_eq!(c, Some(&b"old-1"[..]));
            assert_eq!(
                s,
                Some(&b"sender-new"[..]),
                "a batch's contact closure sees the staged sender record"
            );
            Ok(UpdateAction::Delete)
        })
        .contact(k2.clone(), |c, _| {
            assert_eq!(c, None);
            Ok(write(b"new-2"))
        })
        .contact(k2.clone(), |c, _| {
            assert_eq!(
                c,
                Some(&b"new-2"[..]),
                "a batch sees its own earlier writes"
            );
            Ok(write(b"new-2b"))
        })
        .contact(k3.clone(), |_, _| Ok(UpdateAction::Keep));
    store.apply_batch(&mut batch).await.unwrap();
    drop(batch);
    assert_eq!(store.load(&k1).await.unwrap().contact, None);
    let loaded = store.load(&k2).await.unwrap();
    assert_eq!(loaded.contact.as_deref(), Some(&b"new-2b"[..]));
    assert_eq!(loaded.sender.as_deref(), Some(&b"sender-new"[..]));
    assert_eq!(store.load(&k3).await.unwrap().contact, None);
    store.apply_batch(&mut Batch::new()).await.unwrap();
}
