//! The store conformance suite (feature `testing`).
//!
//! Every [`Store`] adapter runs it unchanged in its tests, each case on a fresh store made by
//! the adapter's factory, like openraft's `testing::Suite` or object_store's `integration`
//! module:
//!
//! ```no_run
//! # use waguard::MemoryStore;
//! #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
//! async fn conformance() {
//!     // An adapter passes its own fresh store, e.g. `SledStore::temporary().unwrap()`.
//!     waguard::testing::run_all(|| async { MemoryStore::new() }).await;
//! }
//! # fn main() {}
//! ```
//!
//! The suite needs a multi-thread tokio runtime, so that its concurrent cases really race (it
//! panics with that advice otherwise), and the [`RawAccess`] hook, through which it plants raw
//! bytes to check decode errors.
//!
//! Cases ([`CASES`] lists them; each is also a public function an adapter may call alone):
//! round trips, no lost update under concurrency (tasks x updates on shared keys, exact counts
//! checked), batch atomicity, erasure with its tombstone (rule E4), scans, decode errors
//! (corrupt, empty and newer-version records: a typed error naming the key, other keys still
//! readable, `forget` repairs), reservation races (exactly the allowed number of reservations
//! succeed: the pair budget, D3, and the resend cap, G1), sender records (S1, written only when
//! worth it) and send errors (D5).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;

mod paired;
use futures_util::StreamExt;
pub use paired::paired_updates;

mod batch_staging;
pub use batch_staging::batch_staging;

use crate::{Batch, MemoryStore};
use crate::{
    BlockReason, BusinessId, CodeEffect, ContactKey, Decision, DecodeError, DeliveryStatus, Event,
    Guard, GuardError, KeyedEvent, Outgoing, Policy, RecordKey, SenderEvent, Store, StoreError,
    TemplateCategory, TemplateReason, Timestamp, UpdateAction,
};

/// The hook through which the suite plants raw bytes, bypassing any checks an adapter's normal
/// write path may do. Every adapter implements it (for its tests only, if it likes).
#[async_trait]
pub trait RawAccess {
    /// Stores `bytes` as the contact record of `key`, as they are.
    async fn put_raw_contact(&self, key: &ContactKey, bytes: &[u8]) -> Result<(), StoreError>;
    /// Stores `bytes` as the sender record of `business`, as they are.
    async fn put_raw_sender(&self, business: &BusinessId, bytes: &[u8]) -> Result<(), StoreError>;
}

#[async_trait]
impl RawAccess for MemoryStore {
    async fn put_raw_contact(&self, key: &ContactKey, bytes: &[u8]) -> Result<(), StoreError> {
        self.update(key, &mut |_, _| Ok(UpdateAction::Write(bytes.to_vec())))
            .await
    }
    async fn put_raw_sender(&self, business: &BusinessId, bytes: &[u8]) -> Result<(), StoreError> {
        self.update_sender(business, &mut |_| Ok(UpdateAction::Write(bytes.to_vec())))
            .await
    }
}

#[async_trait]
impl<S, O> RawAccess for crate::observe::Observed<S, O>
where
    S: RawAccess + Send + Sync,
    O: Send + Sync,
{
    async fn put_raw_contact(&self, key: &ContactKey, bytes: &[u8]) -> Result<(), StoreError> {
        self.inner().put_raw_contact(key, bytes).await
    }
    async fn put_raw_sender(&self, business: &BusinessId, bytes: &[u8]) -> Result<(), StoreError> {
        self.inner().put_raw_sender(business, bytes).await
    }
}

#[async_trait]
impl<T: RawAccess + Send + Sync + ?Sized> RawAccess for Arc<T> {
    async fn put_raw_contact(&self, key: &ContactKey, bytes: &[u8]) -> Result<(), StoreError> {
        (**self).put_raw_contact(key, bytes).await
    }
    async fn put_raw_sender(&self, business: &BusinessId, bytes: &[u8]) -> Result<(), StoreError> {
        (**self).put_raw_sender(business, bytes).await
    }
}

/// The names of the cases [`run_all`] runs, in order.
pub const CASES: &[&str] = &[
    "round_trips",
    "no_lost_updates",
    "batch_atomicity",
    "forget_leaves_a_tombstone",
    "scan_returns_every_contact_record",
    "decode_errors_name_the_key",
    "reserve_races_take_exactly_the_free_slots",
    "sender_records",
    "send_errors",
    "registry_records",
    "counting_reservations_race",
    "paired_updates",
    "batch_staging",
];

/// Runs every case of the suite, each on a fresh store from `factory`. Panics (with the case's
/// name printed to stderr first) at the first failure.
pub async fn run_all<S, F, Fut>(mut factory: F)
where
    S: Store + RawAccess + 'static,
    F: FnMut() -> Fut,
    Fut: Future<Output = S>,
{
    require_multi_thread();
    macro_rules! case {
        ($name:ident) => {{
            eprintln!("waguard conformance: {}", stringify!($name));
            $name(Arc::new(factory().await)).await;
        }};
    }
    case!(round_trips);
    case!(no_lost_updates);
    case!(batch_atomicity);
    case!(forget_leaves_a_tombstone);
    case!(scan_returns_every_contact_record);
    case!(decode_errors_name_the_key);
    case!(reserve_races_take_exactly_the_free_slots);
    case!(sender_records);
    case!(send_errors);
    case!(registry_records);
    case!(counting_reservations_race);
    case!(paired_updates);
    case!(batch_staging);
}

/// L3 on the store: many tasks reserve templates for new users of one portfolio at once;
/// exactly the limit's worth get through, the portfolio record counts exactly them, and a
/// counted user reserving again is neither refused nor counted twice.
pub async fn counting_reservations_race<S: Store + 'static>(store: Arc<S>) {
    let limit = 7;
    let policy = Policy {
        messaging_limit: Some(limit),
        throughput: crate::PairRate {
            interval: std::time::Duration::from_nanos(1),
            burst: 100_000,
        },
        ..Policy::default()
    };
    // Two guards on one store, as two processes of a service: each groups its own counting
    // reservations, and the store alone keeps the two apart.
    let guards = [
        Arc::new(guard(&store, policy.clone())),
        Arc::new(guard(&store, policy)),
    ];
    let guard = Arc::clone(&guards[0]);
    let tpl = Outgoing::Template(TemplateCategory::Utility);
    let now = t(5000);
    let mut handles = Vec::new();
    for n in 0..32 {
        let guard = Arc::clone(&guards[n as usize % 2]);
        handles.push(tokio::spawn(async move {
            guard.reserve(&key(9, n), tpl, None, now).await.unwrap()
        }));
    }
    let mut allowed = Vec::new();
    for (n, h) in handles.into_iter().enumerate() {
        let d = h.await.expect("a task panicked");
        if d.permits(tpl) {
            allowed.push(n as u32);
        } else {
            assert_eq!(
                d.reason().map(|r| r.as_str()),
                Some("messaging_limit_reached")
            );
        }
    }
    assert_eq!(
        allowed.len() as u64,
        limit,
        "exactly the free units: {allowed:?}"
    );
    let business = key(9, 0).business;
    let portfolio = crate::RegistryKey::Portfolio(format!("n/{business}"));
    let bytes = store
        .load_registry(&portfolio)
        .await
        .unwrap()
        .expect("counted");
    let state = crate::PortfolioState::decode(&bytes).unwrap();
    assert_eq!(state.live_count(now, guard.policy()), limit);
    // A counted user is not counted again within 24 hours, and is not refused.
    let again = guard
        .reserve(&key(9, allowed[0]), tpl, None, now)
        .await
        .unwrap();
    assert!(again.permits(tpl), "{again:?}");
    let bytes = store.load_registry(&portfolio).await.unwrap().unwrap();
    let state = crate::PortfolioState::decode(&bytes).unwrap();
    assert_eq!(state.live_count(now, guard.policy()), limit);
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

fn require_multi_thread() {
    let flavor = tokio::runtime::Handle::try_current()
        .expect("the conformance suite runs inside a tokio runtime")
        .runtime_flavor();
    assert!(
        flavor != tokio::runtime::RuntimeFlavor::CurrentThread,
        "the conformance suite needs a multi-thread runtime so that its concurrent cases race: \
         use #[tokio::test(flavor = \"multi_thread\", worker_threads = 4)]"
    );
}

fn business(n: u32) -> BusinessId {
    BusinessId::parse(&(100_000_000 + n).to_string()).expect("valid business id")
}

fn key(b: u32, n: u32) -> ContactKey {
    format!("{}/p:3361{:07}", business(b), n)
        .parse()
        .expect("valid key")
}

fn t(seconds: i64) -> Timestamp {
    // 2026-03-01T00:00:00Z plus `seconds`.
    Timestamp::from_unix_seconds(1_772_323_200 + seconds).expect("in range")
}

fn guard<S: Store + 'static>(store: &Arc<S>, policy: Policy) -> Guard<Arc<S>> {
    Guard::new(Arc::clone(store), policy).expect("valid policy")
}

fn write(bytes: &[u8]) -> UpdateAction {
    UpdateAction::Write(bytes.to_vec())
}

fn counter(bytes: Option<&[u8]>) -> u64 {
    bytes.map_or(0, |b| {
        u64::from_le_bytes(b.try_into().expect("counter records are 8 bytes"))
    })
}

fn aborted(record: RecordKey) -> StoreError {
    StoreError::Aborted {
        record,
        source: "planned abort".into(),
    }
}

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

/// Many tasks race for the last slots of the pair budget (D3, default burst 45) and for the
/// attempts of one idempotency key (G1, default 3): exactly the allowed number succeed.
pub async fn reserve_races_take_exactly_the_free_slots<S: Store + 'static>(store: Arc<S>) {
    // The business number's pace (S4) is the guard's, not the store's: out of the way here.
    let policy = Policy {
        throughput: crate::PairRate {
            interval: std::time::Duration::from_nanos(1),
            burst: 100_000,
        },
        ..Policy::default()
    };
    let burst = policy.pair_rate.burst as usize;
    let max_attempts = policy.max_attempts as usize;
    let guard = guard(&store, policy);
    let tpl = Outgoing::Template(TemplateCategory::Utility);
    let now = t(1000);

    async fn race<S: Store + 'static>(
        guard: &Guard<Arc<S>>,
        k: &ContactKey,
        tasks: usize,
        idempotency: Option<&'static str>,
        now: Timestamp,
    ) -> (usize, Vec<Decision>) {
        let tpl = Outgoing::Template(TemplateCategory::Utility);
        let handles: Vec<_> = (0..tasks)
            .map(|_| {
                let guard = guard.clone();
                let k = k.clone();
                tokio::spawn(async move { guard.reserve(&k, tpl, idempotency, now).await.unwrap() })
            })
            .collect();
        let mut decisions = Vec::new();
        for h in handles {
            decisions.push(h.await.expect("a task panicked"));
        }
        let allowed = decisions.iter().filter(|d| d.permits(tpl)).count();
        (allowed, decisions)
    }

    // The last 5 slots: 40 taken one by one, then 32 tasks race.
    let k = key(8, 1);
    for i in 0..burst - 5 {
        let d = guard.reserve(&k, tpl, None, now).await.unwrap();
        assert!(
            d.permits(tpl),
            "reservation {i} within the burst was refused: {d:?}"
        );
    }
    let (allowed, decisions) = race(&guard, &k, 32, None, now).await;
    assert_eq!(allowed, 5, "exactly the 5 free slots may be taken");
    for d in decisions.iter().filter(|d| !d.permits(tpl)) {
        assert!(
            matches!(
                d,
                Decision::Blocked {
                    reason: BlockReason::PairRateLimited,
                    until: Some(_)
                }
            ),
            "{d:?}"
        );
    }
    let d = guard.check(&k, tpl, now).await.unwrap();
    assert!(
        matches!(
            d,
            Decision::Blocked {
                reason: BlockReason::PairRateLimited,
                ..
            }
        ),
        "check reports the spent budget: {d:?}"
    );
    let (state, _) = guard.state(&k).await.unwrap();
    assert_eq!(
        state.last_template_at,
        Some(now),
        "an allowed template reservation records a template sent"
    );

    // A whole burst from nothing.
    let (allowed, _) = race(&guard, &key(8, 2), 100, None, now).await;
    assert_eq!(
        allowed, burst,
        "exactly one burst may be taken at one instant"
    );

    // The resend cap of one idempotency key.
    let (allowed, decisions) = race(&guard, &key(8, 3), 20, Some("order-42"), now).await;
    assert_eq!(
        allowed, max_attempts,
        "exactly max_attempts reservations of one idempotency key"
    );
    for d in decisions.iter().filter(|d| !d.permits(tpl)) {
        assert!(
            matches!(
                d,
                Decision::Blocked {
                    reason: BlockReason::ResendLimit,
                    ..
                }
            ),
            "{d:?}"
        );
    }
}

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
