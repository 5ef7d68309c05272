//! Erasure and its tombstone (rule E4), scans, and records that cannot be decoded.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::StreamExt;

use crate::{
    BusinessId, ContactKey, Decision, DecodeError, Event, GuardError, KeyedEvent, Outgoing, Policy,
    RecordKey, Store, StoreError, TemplateReason,
};

use super::{business, guard, key, t, write, RawAccess};

/// Rule E4: `forget` erases and leaves a tombstone; older events are ignored afterwards, newer
/// ones apply.
pub async fn forget_leaves_a_tombstone<S: Store + 'static>(store: Arc<S>) {
    let guard = guard(&store, Policy::default());
    let k = key(4, 1);
    let inbound = |at| KeyedEvent::Contact {
        key: k.clone(),
        event: Event::Inbound {
            at,
            text: None,
            referral: false,
        },
    };
    guard.ingest([inbound(t(100))]).await.unwrap();
    let d = guard.check(&k, Outgoing::FreeForm, t(110)).await.unwrap();
    assert!(matches!(d, Decision::FreeForm { .. }), "{d:?}");

    guard.forget(&k, t(200)).await.unwrap();
    let (state, _) = guard.state(&k).await.unwrap();
    assert_eq!(state.erased_at, Some(t(200)), "forget leaves a tombstone");
    assert_eq!(state.last_inbound, None, "forget erases");
    let first = Decision::TemplateRequired {
        reason: TemplateReason::FirstContact,
    };
    assert_eq!(
        guard.check(&k, Outgoing::FreeForm, t(210)).await.unwrap(),
        first
    );

    // A late retry of an older event is ignored.
    let report = guard
        .ingest([inbound(t(150)), inbound(t(200))])
        .await
        .unwrap();
    assert_eq!(
        report.contacts_written, 0,
        "events at or before the erasure write nothing"
    );
    assert_eq!(
        guard.check(&k, Outgoing::FreeForm, t(210)).await.unwrap(),
        first
    );

    // A newer event applies.
    guard.ingest([inbound(t(300))]).await.unwrap();
    let d = guard.check(&k, Outgoing::FreeForm, t(310)).await.unwrap();
    assert!(matches!(d, Decision::FreeForm { .. }), "{d:?}");

    // Forgetting a key never seen still leaves a tombstone. With `include_opt_out` even a
    // late opt-out older than the erasure stays out (without it, consent always applies, E4).
    let fresh = key(4, 2);
    guard
        .forget_including_opt_out(&fresh, t(500))
        .await
        .unwrap();
    assert!(
        store.load(&fresh).await.unwrap().contact.is_some(),
        "the tombstone is stored"
    );
    let late = KeyedEvent::Contact {
        key: fresh.clone(),
        event: Event::OptOut {
            at: t(400),
            scope: crate::Scope::All,
        },
    };
    guard.ingest([late]).await.unwrap();
    let d = guard
        .check(&fresh, Outgoing::FreeForm, t(600))
        .await
        .unwrap();
    assert_eq!(d, first, "an opt-out older than the erasure came back");

    // `remove` deletes the record outright.
    assert!(store.remove(&fresh).await.unwrap());
    assert_eq!(store.load(&fresh).await.unwrap().contact, None);
}

/// `scan` yields every contact record once, and no sender record; `all_senders` yields every
/// sender record once.
pub async fn scan_returns_every_contact_record<S: Store + 'static>(store: Arc<S>) {
    let mut expected = BTreeMap::new();
    for b in 0..3 {
        for n in 0..20 {
            let k = key(b, n);
            let bytes = format!("record {b} {n}").into_bytes();
            store
                .update(&k, &mut |_, _| Ok(write(&bytes)))
                .await
                .unwrap();
            expected.insert(k, bytes);
        }
        store
            .update_sender(&business(b), &mut |_| Ok(write(b"sender")))
            .await
            .unwrap();
    }
    for n in 0..5 {
        let k = key(1, n * 3);
        assert!(store.remove(&k).await.unwrap());
        expected.remove(&k);
    }
    let mut found = BTreeMap::new();
    let mut stream = store.scan();
    while let Some(item) = stream.next().await {
        let (k, bytes) = item.unwrap();
        assert!(
            found.insert(k.clone(), bytes).is_none(),
            "scan yielded {k} twice"
        );
    }
    assert_eq!(
        found, expected,
        "scan must yield exactly the contact records"
    );
    // And the sender records, each once, through `all_senders`.
    let mut senders = store.all_senders().await.unwrap();
    senders.sort();
    let expected: Vec<(BusinessId, Vec<u8>)> =
        (0..3).map(|b| (business(b), b"sender".to_vec())).collect();
    assert_eq!(
        senders, expected,
        "all_senders must yield exactly the sender records"
    );
}

/// Corrupt, empty and newer-version records are typed errors naming their key; other keys stay
/// readable; `forget` repairs a corrupt record.
pub async fn decode_errors_name_the_key<S: Store + RawAccess + 'static>(store: Arc<S>) {
    let guard = guard(&store, Policy::default());
    let (corrupt, empty, newer, fine) = (key(5, 1), key(5, 2), key(5, 3), key(5, 4));
    store
        .put_raw_contact(
            &corrupt,
            &[
                1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            ],
        )
        .await
        .unwrap();
    store.put_raw_contact(&empty, &[]).await.unwrap();
    store.put_raw_contact(&newer, &[200, 0, 0]).await.unwrap();
    let inbound = |k: &ContactKey, at| KeyedEvent::Contact {
        key: k.clone(),
        event: Event::Inbound {
            at,
            text: None,
            referral: false,
        },
    };
    guard.ingest([inbound(&fine, t(10))]).await.unwrap();

    let outgoing = Outgoing::FreeForm;
    let decode_error = |result: Result<Decision, GuardError>, k: &ContactKey| -> DecodeError {
        match result {
            Err(GuardError::Store(e @ StoreError::Decode { .. })) => {
                assert!(
                    e.to_string().contains(&k.to_string()),
                    "the message names the key: {e}"
                );
                assert_eq!(e.record(), Some(&RecordKey::Contact(k.clone())));
                let StoreError::Decode { source, .. } = e else {
                    unreachable!()
                };
                source
            }
            other => panic!("expected a decode error naming {k}, got {other:?}"),
        }
    };
    assert!(matches!(
        decode_error(guard.check(&corrupt, outgoing, t(20)).await, &corrupt),
        DecodeError::Corrupt { .. } | DecodeError::TrailingBytes { .. }
    ));
    assert!(matches!(
        decode_error(guard.check(&empty, outgoing, t(20)).await, &empty),
        DecodeError::Empty
    ));
    assert!(matches!(
        decode_error(guard.check(&newer, outgoing, t(20)).await, &newer),
        DecodeError::NewerVersion { found: 200, .. }
    ));
    assert!(
        guard
            .check(&fine, outgoing, t(20))
            .await
            .unwrap()
            .permits(outgoing),
        "other keys stay readable"
    );

    // Writes refuse too, and leave the bytes alone (never a silent reset).
    decode_error(guard.reserve(&newer, outgoing, None, t(20)).await, &newer);
    assert_eq!(
        store.load(&newer).await.unwrap().contact.as_deref(),
        Some(&[200, 0, 0][..])
    );
    let err = guard
        .ingest([inbound(&fine, t(30)), inbound(&newer, t(30))])
        .await
        .unwrap_err();
    assert!(err.to_string().contains(&newer.to_string()), "{err}");
    let (state, _) = guard.state(&fine).await.unwrap();
    assert_eq!(
        state.last_inbound,
        Some(t(10)),
        "a refused batch applied nothing"
    );

    // A corrupt sender record names its business.
    let other = key(6, 1);
    store
        .put_raw_sender(&other.business, &[1, 9, 9, 9, 9, 9, 9, 9, 9])
        .await
        .unwrap();
    match guard.check(&other, outgoing, t(20)).await {
        Err(GuardError::Store(e @ StoreError::Decode { .. })) => {
            assert_eq!(e.record(), Some(&RecordKey::Sender(other.business.clone())));
            assert!(e.to_string().contains(other.business.as_str()), "{e}");
        }
        r => panic!("expected a sender decode error, got {r:?}"),
    }
    assert!(guard.sender_state(&other.business).await.is_err());

    // `forget` is the way out.
    guard.forget(&corrupt, t(40)).await.unwrap();
    guard.forget(&newer, t(40)).await.unwrap();
    assert!(guard.check(&corrupt, outgoing, t(50)).await.is_ok());
    guard
        .ingest([inbound(&fine, t(60)), inbound(&newer, t(60))])
        .await
        .unwrap();
    assert!(guard
        .check(&newer, outgoing, t(70))
        .await
        .unwrap()
        .permits(outgoing));
}
