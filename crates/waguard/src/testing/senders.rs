//! Sender records (S1), send errors (D5) and the template registry (T1-T3).

use std::sync::Arc;

use crate::{
    BlockReason, CodeEffect, Decision, DeliveryStatus, Event, Guard, KeyedEvent, Outgoing, Policy,
    SenderEvent, Store, TemplateCategory, UpdateAction,
};

use super::{guard, key, t};

/// Sender records: written for a restricting failure, not for a success that changes nothing
/// (S1), lifted by a strictly newer success or `clear_sender`.
pub async fn sender_records<S: Store + 'static>(store: Arc<S>) {
    let guard = guard(&store, Policy::default());
    let (k, other) = (key(9, 1), key(9, 2));
    let b = k.business.clone();
    let status = |at| KeyedEvent::Contact {
        key: k.clone(),
        event: Event::Status {
            at,
            status: DeliveryStatus::Delivered,
            wamid: None,
        },
    };
    let report = guard.ingest([status(t(10))]).await.unwrap();
    assert_eq!(
        report.senders_written, 0,
        "a success with no restriction is not written"
    );
    assert_eq!(store.load_sender(&b).await.unwrap(), None);

    let failure = KeyedEvent::Contact {
        key: k.clone(),
        event: Event::Failure {
            at: t(20),
            code: 368,
            wamid: None,
        },
    };
    let report = guard.ingest([failure]).await.unwrap();
    assert_eq!(report.senders_written, 1);
    let d = guard
        .check(&other, Outgoing::FreeForm, t(30))
        .await
        .unwrap();
    assert!(
        matches!(
            d,
            Decision::Blocked {
                reason: BlockReason::SenderRestricted,
                ..
            }
        ),
        "S1 blocks every contact of the business: {d:?}"
    );

    let report = guard.ingest([status(t(15)), status(t(20))]).await.unwrap();
    assert_eq!(
        report.senders_written, 0,
        "older or equal successes leave the restriction"
    );
    assert!(guard.sender_state(&b).await.unwrap().is_restricted());

    guard.clear_sender(&b, t(40)).await.unwrap();
    assert!(!guard.sender_state(&b).await.unwrap().is_restricted());

    // Within one batch, a failure and a later success end as if applied in time order.
    let mut events = vec![KeyedEvent::Sender {
        business: b.clone(),
        event: SenderEvent::Success { at: t(60) },
    }];
    events.push(KeyedEvent::Sender {
        business: b.clone(),
        event: SenderEvent::Failure {
            at: t(50),
            code: 131031,
        },
    });
    guard.ingest(events).await.unwrap();
    assert!(!guard.sender_state(&b).await.unwrap().is_restricted());
}

/// Send errors: contact codes are recorded, request errors (D5) and unknown codes are not.
pub async fn send_errors<S: Store + 'static>(store: Arc<S>) {
    let guard = guard(&store, Policy::default());
    let k = key(10, 1);
    let effect = guard
        .record_send_error(&k, 132000, None, t(10))
        .await
        .unwrap();
    assert_eq!(effect, CodeEffect::NotRetryable);
    assert!(!effect.retryable());
    assert_eq!(
        guard
            .record_send_error(&k, 999_999, None, t(10))
            .await
            .unwrap(),
        CodeEffect::Unknown
    );
    assert_eq!(
        store.load(&k).await.unwrap().contact,
        None,
        "D5: nothing is recorded"
    );

    let effect = guard
        .record_send_error(&k, 131026, Some("wamid.A"), t(10))
        .await
        .unwrap();
    assert_eq!(effect, CodeEffect::Undeliverable);
    let d = guard
        .check(&k, Outgoing::Template(TemplateCategory::Utility), t(20))
        .await
        .unwrap();
    assert!(
        matches!(
            d,
            Decision::Blocked {
                reason: BlockReason::Undeliverable,
                ..
            }
        ),
        "{d:?}"
    );
    // D2: the delivery of the same message voids the failure.
    let delivered = KeyedEvent::Contact {
        key: k.clone(),
        event: Event::Status {
            at: t(11),
            status: DeliveryStatus::Delivered,
            wamid: Some(crate::WamidHash::of("wamid.A")),
        },
    };
    guard.ingest([delivered]).await.unwrap();
    let d = guard
        .check(&k, Outgoing::Template(TemplateCategory::Utility), t(20))
        .await
        .unwrap();
    assert!(
        d.permits(Outgoing::Template(TemplateCategory::Utility)),
        "{d:?}"
    );
}

/// Registry records (templates, rules T1-T3): absent until written, written and read back,
/// kept apart per key, `Keep` writes nothing, concurrent updates lose nothing, and the guard's
/// template rules work on top (a template disabled by a send error is refused).
pub async fn registry_records<S: Store + 'static>(store: Arc<S>) {
    use crate::{AccountId, RegistryKey, TemplateId, TemplateName};
    let id = |name: &str| {
        RegistryKey::Template(TemplateId {
            account: AccountId::parse("900000001").unwrap(),
            template: TemplateName::new(name, "en_US").unwrap(),
        })
    };
    assert_eq!(store.load_registry(&id("a")).await.unwrap(), None);
    store
        .update_registry(&id("a"), &mut |current| {
            assert_eq!(current, None);
            Ok(UpdateAction::Write(b"one".to_vec()))
        })
        .await
        .unwrap();
    store
        .update_registry(&id("a"), &mut |_| Ok(UpdateAction::Keep))
        .await
        .unwrap();
    assert_eq!(
        store.load_registry(&id("a")).await.unwrap().as_deref(),
        Some(&b"one"[..])
    );
    assert_eq!(store.load_registry(&id("b")).await.unwrap(), None);
    let both = store.load_registries(&[id("b"), id("a")]).await.unwrap();
    assert_eq!(
        both,
        vec![None, Some(b"one".to_vec())],
        "in the order asked"
    );
    store
        .update_registry(&id("a"), &mut |_| Ok(UpdateAction::Delete))
        .await
        .unwrap();
    // Concurrent appends to one record: none is lost.
    let mut tasks = Vec::new();
    for i in 0..8u8 {
        let store = Arc::clone(&store);
        let key = id("c");
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                store
                    .update_registry(&key, &mut |current| {
                        let mut v = current.map(<[u8]>::to_vec).unwrap_or_default();
                        v.push(i);
                        Ok(UpdateAction::Write(v))
                    })
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(
        store.load_registry(&id("c")).await.unwrap().unwrap().len(),
        80
    );
    store
        .update_registry(&id("c"), &mut |_| Ok(UpdateAction::Delete))
        .await
        .unwrap();
    assert_eq!(store.load_registry(&id("c")).await.unwrap(), None);

    // Through the guard: the number's account from policy, a 132016 disables the template.
    let mut policy = Policy::default();
    policy
        .accounts
        .insert("900000001".into(), vec![key(0, 0).business.to_string()]);
    let guard = Guard::new(Arc::clone(&store), policy).unwrap();
    let tpl = TemplateName::new("receipt", "en_US").unwrap();
    let utility = Outgoing::Template(crate::TemplateCategory::Utility);
    guard
        .record_send_error_named(&key(0, 0), 132016, None, Some(&tpl), t(10))
        .await
        .unwrap();
    let d = guard
        .check_named(&key(0, 1), utility, Some(&tpl), t(20))
        .await
        .unwrap();
    assert_eq!(d.reason().map(|r| r.as_str()), Some("template_disabled"));
    // The listing holds it, with the record's key and bytes.
    let listed = guard.templates().await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].0.template, tpl);
    let all = store.registry_records().await.unwrap();
    assert_eq!(all.len(), 1, "only the template record is left: {all:?}");
    assert!(all[0].0.ends_with("/en_US/receipt"), "{all:?}");
}
