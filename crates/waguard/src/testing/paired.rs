//! Conformance case: a contact record and a registry record read together
//! ([`Store::load_with_registries`]) and updated together ([`Store::update_with_registry`]).

use std::sync::Arc;

use crate::{BusinessId, ContactKey, RegistryKey, Store, StoreError, UpdateAction};

/// What [`Store::load_with_registries`] showed, copied.
type Seen = (Option<Vec<u8>>, Option<Vec<u8>>, Vec<Option<Vec<u8>>>);

async fn seen<S: Store>(store: &S, key: &ContactKey, keys: &[RegistryKey]) -> Seen {
    let mut out = None;
    store
        .load_with_registries(key, keys, &mut |contact, sender, found| {
            out = Some((
                contact.map(<[u8]>::to_vec),
                sender.map(<[u8]>::to_vec),
                found.iter().map(|r| r.map(<[u8]>::to_vec)).collect(),
            ));
        })
        .await
        .expect("load_with_registries");
    out.expect("the store ran the read closure")
}

fn counter(bytes: Option<&[u8]>) -> u64 {
    bytes.map_or(0, |b| {
        u64::from_le_bytes(b.try_into().expect("an 8-byte counter"))
    })
}

/// A contact record and a registry record, read in one call and updated in one atomic step:
/// the read shows the contact, its sender and the registry records in the order asked (`None`
/// for absent ones); an update writes both, either, or neither as its closure says; a closure
/// error writes nothing; concurrent paired updates and plain updates of the same records lose
/// nothing (exact counts on both records).
pub async fn paired_updates<S: Store + 'static>(store: Arc<S>) {
    let business = BusinessId::parse("100000077").unwrap();
    let key: ContactKey = "100000077/p:33612345601".parse().unwrap();
    let portfolio = RegistryKey::Portfolio("p/conformance".into());
    let other = RegistryKey::Portfolio("p/other".into());
    let keys = [other.clone(), portfolio.clone()];

    assert_eq!(
        seen(&*store, &key, &keys).await,
        (None, None, vec![None, None]),
        "a fresh store holds nothing"
    );
    store
        .update_sender(&business, &mut |_| {
            Ok(UpdateAction::Write(b"sender".to_vec()))
        })
        .await
        .unwrap();

    // Both written; the closure sees the sender record.
    store
        .update_with_registry(
            std::slice::from_ref(&key),
            &portfolio,
            &mut |_, contact, sender, record| {
                assert_eq!((contact, record), (None, None));
                assert_eq!(sender, Some(&b"sender"[..]));
                Ok((
                    UpdateAction::Write(b"c1".to_vec()),
                    UpdateAction::Write(b"r1".to_vec()),
                ))
            },
        )
        .await
        .unwrap();
    assert_eq!(
        seen(&*store, &key, &keys).await,
        (
            Some(b"c1".to_vec()),
            Some(b"sender".to_vec()),
            vec![None, Some(b"r1".to_vec())]
        )
    );
    assert_eq!(
        store.load_registry(&portfolio).await.unwrap(),
        Some(b"r1".to_vec())
    );

    // A closure error writes nothing, not even the half it would have answered first.
    let refused = store
        .update_with_registry(std::slice::from_ref(&key), &portfolio, &mut |_, _, _, _| {
            Err(StoreError::backend(
                "conformance",
                None,
                "refused on purpose",
            ))
        })
        .await;
    assert!(refused.is_err(), "the closure's error comes back");
    assert_eq!(
        seen(&*store, &key, std::slice::from_ref(&portfolio)).await,
        (
            Some(b"c1".to_vec()),
            Some(b"sender".to_vec()),
            vec![Some(b"r1".to_vec())]
        ),
        "a refused paired update wrote something"
    );

    // Either half alone, and a delete.
    store
        .update_with_registry(std::slice::from_ref(&key), &portfolio, &mut |_, _, _, _| {
            Ok((UpdateAction::Keep, UpdateAction::Write(b"r2".to_vec())))
        })
        .await
        .unwrap();
    store
        .update_with_registry(
            std::slice::from_ref(&key),
            &portfolio,
            &mut |_, _, _, record| {
                assert_eq!(record, Some(&b"r2"[..]));
                Ok((UpdateAction::Write(b"c2".to_vec()), UpdateAction::Keep))
            },
        )
        .await
        .unwrap();
    assert_eq!(
        seen(&*store, &key, std::slice::from_ref(&portfolio))
            .await
            .0,
        Some(b"c2".to_vec())
    );
    store
        .update_with_registry(std::slice::from_ref(&key), &portfolio, &mut |_, _, _, _| {
            Ok((UpdateAction::Keep, UpdateAction::Delete))
        })
        .await
        .unwrap();
    assert_eq!(store.load_registry(&portfolio).await.unwrap(), None);
    assert_eq!(
        seen(&*store, &key, std::slice::from_ref(&portfolio))
            .await
            .0,
        Some(b"c2".to_vec()),
        "deleting the registry record kept the contact's"
    );

    // Several keys in one update, one of them twice: each run sees what the earlier runs
    // staged, the registry record included; all of it is written.
    let second: ContactKey = "100000077/p:33612345602".parse().unwrap();
    let mut runs = Vec::new();
    store
        .update_with_registry(
            &[key.clone(), second.clone(), key.clone()],
            &portfolio,
            &mut |i, contact, _, record| {
                runs.push((i, contact.map(<[u8]>::to_vec), record.map(<[u8]>::to_vec)));
                let next = counter(record) + 1;
                Ok((
                    UpdateAction::Write(format!("c{i}").into_bytes()),
                    UpdateAction::Write(next.to_le_bytes().to_vec()),
                ))
            },
        )
        .await
        .unwrap();
    let last = runs.len() - 3;
    assert_eq!(
        runs[last..],
        [
            (0, Some(b"c2".to_vec()), None),
            (1, None, Some(1u64.to_le_bytes().to_vec())),
            (2, Some(b"c0".to_vec()), Some(2u64.to_le_bytes().to_vec())),
        ],
        "each run sees the records as the earlier runs left them"
    );
    assert_eq!(
        seen(&*store, &key, std::slice::from_ref(&portfolio)).await,
        (
            Some(b"c2".to_vec()),
            Some(b"sender".to_vec()),
            vec![Some(3u64.to_le_bytes().to_vec())]
        )
    );
    assert_eq!(seen(&*store, &second, &[]).await.0, Some(b"c1".to_vec()));
    store
        .update_with_registry(
            &[key.clone(), second.clone()],
            &portfolio,
            &mut |i, _, _, _| {
                if i == 1 {
                    return Err(StoreError::backend(
                        "conformance",
                        None,
                        "refused on purpose",
                    ));
                }
                Ok((UpdateAction::Delete, UpdateAction::Delete))
            },
        )
        .await
        .expect_err("the second key's error aborts the update");
    assert_eq!(
        seen(&*store, &key, std::slice::from_ref(&portfolio))
            .await
            .0,
        Some(b"c2".to_vec()),
        "the first key's write was applied although the second key's closure failed"
    );
    store
        .update_with_registry(
            &[key.clone(), second.clone()],
            &portfolio,
            &mut |_, _, _, _| Ok((UpdateAction::Delete, UpdateAction::Delete)),
        )
        .await
        .unwrap();
    assert_eq!(seen(&*store, &key, &[]).await.0, None);
    assert_eq!(seen(&*store, &second, &[]).await.0, None);
    assert_eq!(store.load_registry(&portfolio).await.unwrap(), None);

    // Concurrency: tasks add one to a shared registry counter and to their own contact's
    // counter in each paired update, while plain updates add to the same contacts and
    // registry updates to the same registry record.
    let tasks: u64 = 8;
    let rounds: u64 = 12;
    let mut handles = Vec::new();
    for task in 0..tasks {
        let store = Arc::clone(&store);
        let portfolio = portfolio.clone();
        handles.push(tokio::spawn(async move {
            let key: ContactKey = format!("100000077/p:336123457{task:02}").parse().unwrap();
            for round in 0..rounds {
                let bump =
                    |b: Option<&[u8]>| UpdateAction::Write((counter(b) + 1).to_le_bytes().to_vec());
                store
                    .update_with_registry(
                        std::slice::from_ref(&key),
                        &portfolio,
                        &mut |_, contact, _, record| Ok((bump(contact), bump(record))),
                    )
                    .await
                    .unwrap();
                if round % 3 == 0 {
                    store
                        .update(&key, &mut |contact, _| Ok(bump(contact)))
                        .await
                        .unwrap();
                    store
                        .update_registry(&portfolio, &mut |record| Ok(bump(record)))
                        .await
                        .unwrap();
                }
            }
            key
        }));
    }
    let mut keys = Vec::new();
    for handle in handles {
        keys.push(handle.await.expect("a task panicked"));
    }
    let plain = rounds.div_ceil(3);
    for key in &keys {
        let (contact, _, _) = seen(&*store, key, &[]).await;
        assert_eq!(
            counter(contact.as_deref()),
            rounds + plain,
            "a contact update was lost under concurrency ({key})"
        );
    }
    let record = store.load_registry(&portfolio).await.unwrap();
    assert_eq!(
        counter(record.as_deref()),
        tasks * (rounds + plain),
        "a registry update was lost under concurrency"
    );
}
