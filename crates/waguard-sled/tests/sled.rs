//! SledStore specifics: persistence across reopening, the directory lock, unreadable paths,
//! corrupt records, and records of the previous encoding version (golden fixtures).

use std::time::Duration;

use waguard::{
    ContactKey, DecodeError, Event, Guard, GuardError, KeyedEvent, Outgoing, Policy, RecordKey,
    Store, StoreError, Timestamp, UpdateAction, WamidHash,
};
use waguard_sled::{Durability, SledOptions, SledStore};

fn t(seconds: i64) -> Timestamp {
    // 2026-03-01T00:00:00Z plus `seconds`.
    Timestamp::from_unix_seconds(1_772_323_200 + seconds).unwrap()
}

fn key(n: u32) -> ContactKey {
    format!("100000001/p:3361{n:07}").parse().unwrap()
}

fn inbound(k: &ContactKey, at: Timestamp) -> KeyedEvent {
    KeyedEvent::Contact {
        key: k.clone(),
        event: Event::Inbound {
            at,
            text: None,
            referral: false,
        },
    }
}

async fn plant(store: &SledStore, k: &ContactKey, bytes: &[u8]) {
    // Stores never decode: an update can plant any bytes.
    store
        .update(k, &mut |_, _| Ok(UpdateAction::Write(bytes.to_vec())))
        .await
        .unwrap();
}

#[tokio::test]
async fn state_survives_closing_and_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    for durability in [
        Durability::EachWrite,
        Durability::GroupCommit {
            every: Duration::from_millis(10),
        },
    ] {
        let _ = std::fs::remove_dir_all(&path);
        {
            let store =
                SledStore::open_with(&path, SledOptions::default().with_durability(durability))
                    .unwrap();
            assert_eq!(store.durability(), durability);
            assert_eq!(store.path(), Some(path.as_path()));
            let guard = Guard::new(store, Policy::default()).unwrap();
            guard.ingest([inbound(&key(1), t(10))]).await.unwrap();
            guard
                .record_send_error(&key(2), 368, None, t(20))
                .await
                .unwrap();
            guard.store().flush().await.unwrap();
        }
        let guard = Guard::new(SledStore::open(&path).unwrap(), Policy::default()).unwrap();
        let (state, sender) = guard.state(&key(1)).await.unwrap();
        assert_eq!(state.last_inbound, Some(t(10)), "{durability:?}");
        assert!(sender.is_restricted(), "{durability:?}");
        // The 368 is a sender-level code: it writes the sender record, not the contact's.
        assert_eq!(guard.store().contact_count(), 1);
        assert!(guard.store().size_on_disk().unwrap() > 0);
    }
}

/// A small journal fills up many times over (each time a checkpoint), and a batch larger than
/// the whole journal goes to sled directly with a checkpoint: nothing is lost either way, in
/// both durability modes, and a clean close leaves nothing to replay.
#[tokio::test]
async fn writes_survive_journal_checkpoints_and_oversized_batches() {
    let dir = tempfile::tempdir().unwrap();
    for (n, durability) in [
        Durability::EachWrite,
        Durability::GroupCommit {
            every: Duration::from_millis(10),
        },
    ]
    .into_iter()
    .enumerate()
    {
        let path = dir.path().join(format!("db{n}"));
        let options = SledOptions::default()
            .with_durability(durability)
            .with_journal_capacity(64 * 1024);
        {
            let guard = Guard::new(
                SledStore::open_with(&path, options.clone()).unwrap(),
                Policy::default(),
            )
            .unwrap();
            // ~60 bytes per one-event record: 3 000 single writes are ~3 journals' worth.
            for i in 0..3_000u32 {
                guard
                    .ingest([inbound(&key(i % 500), t(i64::from(i)))])
                    .await
                    .unwrap();
            }
            // One batch of 2 000 contacts: ~100 KiB of records, more than the journal holds.
            let big: Vec<KeyedEvent> = (0..2_000u32)
                .map(|i| inbound(&key(10_000 + i), t(5_000)))
                .collect();
            guard.ingest(big).await.unwrap();
            // And a few more single writes after it.
            for i in 0..10u32 {
                guard.ingest([inbound(&key(i), t(6_000))]).await.unwrap();
            }
            guard.store().flush().await.unwrap();
        }
        let store = SledStore::open_with(&path, options).unwrap();
        assert_eq!(
            store.recovered_writes(),
            0,
            "a clean close leaves nothing to replay"
        );
        let guard = Guard::new(store, Policy::default()).unwrap();
        assert_eq!(guard.store().contact_count(), 2_500, "{durability:?}");
        for i in 0..500u32 {
            let (state, _) = guard.state(&key(i)).await.unwrap();
            let last = if i < 10 {
                6_000
            } else {
                // The last of the single writes for this key: i + 500 * k, the largest below 3000.
                i64::from(i + 500 * ((2_999 - i) / 500))
            };
            assert_eq!(state.last_inbound, Some(t(last)), "key {i}, {durability:?}");
        }
        let (state, _) = guard.state(&key(11_999)).await.unwrap();
        assert_eq!(state.last_inbound, Some(t(5_000)), "{durability:?}");
    }
}

#[tokio::test]
async fn a_second_open_of_a_locked_directory_names_the_path_and_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let _first = SledStore::open(&path).unwrap();
    let err = SledStore::open(&path).unwrap_err();
    assert_eq!(err.kind(), waguard::StoreErrorKind::Locked, "{err:?}");
    let Some(waguard_sled::StoreUnavailable::Locked { path: p, pid, .. }) =
        waguard_sled::StoreUnavailable::of(&err)
    else {
        panic!("expected Locked, got {err:?}");
    };
    assert_eq!(p, &path);
    let message = err.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    if cfg!(target_os = "linux") {
        assert_eq!(
            *pid,
            Some(std::process::id()),
            "/proc/locks names this process"
        );
        assert!(
            message.contains(&format!("already open by process {}", std::process::id())),
            "{message}"
        );
    }
    assert!(
        message.contains("stop that process"),
        "the message says what to do: {message}"
    );
}

#[test]
fn a_path_that_is_not_a_directory_is_an_open_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"hello").unwrap();
    let err = SledStore::open(&file).unwrap_err();
    assert_eq!(err.kind(), waguard::StoreErrorKind::Open, "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&file.display().to_string()), "{message}");
    assert!(message.contains("check that the path"), "{message}");
    let err = SledStore::open(file.join("below")).unwrap_err();
    assert_eq!(err.kind(), waguard::StoreErrorKind::Open, "{err:?}");
}

#[tokio::test]
async fn a_corrupt_record_is_a_typed_error_naming_its_key_and_other_keys_stay_readable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let store = SledStore::open(&path).unwrap();
        let guard = Guard::new(store, Policy::default()).unwrap();
        guard
            .ingest([inbound(&key(1), t(10)), inbound(&key(2), t(10))])
            .await
            .unwrap();
        plant(guard.store(), &key(1), &[1, 0xff, 0xff, 0xff]).await;
        plant(guard.store(), &key(3), &[waguard::FORMAT_VERSION + 1, 0, 0]).await;
    }
    // After reopening, too.
    let guard = Guard::new(SledStore::open(&path).unwrap(), Policy::default()).unwrap();
    for (k, what) in [(key(1), "corrupt"), (key(3), "newer")] {
        let err = guard
            .check(&k, Outgoing::FreeForm, t(20))
            .await
            .unwrap_err();
        let GuardError::Store(StoreError::Decode { record, source }) = &err else {
            panic!("expected a decode error, got {err:?}");
        };
        assert_eq!(record, &RecordKey::Contact(k.clone()));
        assert!(err.to_string().contains(&k.to_string()), "{err}");
        match (what, source) {
            ("corrupt", DecodeError::Corrupt { .. } | DecodeError::TrailingBytes { .. }) => {
                assert!(err.to_string().contains("forget"), "says what to do: {err}")
            }
            ("newer", DecodeError::NewerVersion { found, supported })
                if *found == waguard::FORMAT_VERSION + 1
                    && *supported == waguard::FORMAT_VERSION =>
            {
                assert!(
                    err.to_string().contains("upgrade waguard"),
                    "says what to do: {err}"
                )
            }
            _ => panic!("unexpected {what}: {source:?}"),
        }
    }
    let d = guard
        .check(&key(2), Outgoing::FreeForm, t(20))
        .await
        .unwrap();
    assert!(d.permits(Outgoing::FreeForm), "other keys stay readable");
}

/// A contact record written by format version 1 (version byte, then postcard), byte for byte.
/// Kept as it is when the format changes: every later waguard must read it.
const CONTACT_V1: [u8; 93] = [
    0x01, // format version 1
    0x01, 0x80, 0x80, 0x82, 0xca, 0xf9, 0xc6, 0xca, 0x98, 0x31, // latest_event: Some(02:00)
    0x00, // erased_at: None
    0x01, 0x80, 0x80, 0xbd, 0xbe, 0xb3, 0xf5, 0xc8, 0x98, 0x31, // last_inbound: Some(01:00)
    0x00, // referral_at: None
    0x01, 0x80, 0xe0, 0xb2, 0xb7, 0xac, 0xa7, 0xc7, 0x98,
    0x31, // first_template_at: Some(00:01)
    0x01, 0x80, 0xe0, 0xb2, 0xb7, 0xac, 0xa7, 0xc7, 0x98,
    0x31, // last_template_at: Some(00:01)
    0x00, // last_delivered_at: None
    0x00, // closed_mark: None
    0x00, 0x00, // opt_all: out None, in None
    0x00, 0x01, 0x80, 0x80, 0x82, 0xca, 0xf9, 0xc6, 0xca, 0x98,
    0x31, // opt_marketing: in Some(02:00)
    0x01, // feedback.failures: 1 entry
    0x01, 0xef, 0x9b, 0xaf, 0xcd, 0xf8, 0xac, 0xd1, 0x91,
    0x01, // wamid: Some(0x0123456789abcdef)
    0x80, 0xc0, 0xda, 0xb8, 0xd0, 0x8c, 0xc8, 0x98, 0x31, // at: 00:30
    0xd2, 0xff, 0x07, // code: 131026
    0x00, // feedback.deliveries: none
    0x01, 0x80, 0xe0, 0xb2, 0xb7, 0xac, 0xa7, 0xc7, 0x98,
    0x31, // pair_budget_tat: Some(00:01)
    0x00, // attempts: none
];

/// A sender record of format version 1: restricted at 00:10.
const SENDER_V1: [u8; 16] = [
    0x01, 0x01, 0x80, 0xc0, 0xc3, 0xdf, 0xe3, 0xc6, 0xc7, 0x98, 0x31, 0x00, 0x00, 0x00, 0x00, 0x00,
];

/// The same contact record in format version 2 (compact: a field bitmap, then instants
/// relative to the newest event), byte for byte. Kept as it is when the format changes.
const CONTACT_V2: [u8; 36] = [
    0x02, // format version 2
    0xaf, 0xc0,
    0x01, // bitmap 0x602f: latest, inbound, templates, pair budget, O2 in, failures
    0x80, 0xed, 0xb9, 0xb4, 0x1a, // latest_event: 02:00, whole seconds since the epoch
    0xbe, 0x70, // last_inbound: latest - 3600 s
    0x8e, 0xdf, 0x01, // last_template_at: latest - 7140 s
    0x8e, 0xdf, 0x01, // first_template_at
    0x8e, 0xdf, 0x01, // pair_budget_tat
    0x00, // opt_marketing.in_at: latest
    0x01, // failures: 1 entry
    0xa5, 0xff, 0x0f, // code 131026, with a wamid
    0xef, 0xcd, 0xab, 0x89, 0x67, 0x45, 0x23, 0x01, // wamid hash 0x0123456789abcdef
    0xde, 0xa8, 0x01, // at: latest - 5400 s
];

/// The sender record in format version 2: restricted at 00:10.
const SENDER_V2: [u8; 7] = [0x02, 0x01, 0xe0, 0x9e, 0xb8, 0xb4, 0x1a];

/// The same contact record in format version 3: the layout of version 2 with a new version
/// byte (the record has none of the fields version 3 added), byte for byte.
const CONTACT_V3: [u8; 36] = [
    0x03, // format version 3
    0xaf, 0xc0, 0x01, 0x80, 0xed, 0xb9, 0xb4, 0x1a, 0xbe, 0x70, 0x8e, 0xdf, 0x01, 0x8e, 0xdf, 0x01,
    0x8e, 0xdf, 0x01, 0x00, 0x01, 0xa5, 0xff, 0x0f, 0xef, 0xcd, 0xab, 0x89, 0x67, 0x45, 0x23, 0x01,
    0xde, 0xa8, 0x01,
];

/// The sender record in format version 3.
const SENDER_V3: [u8; 7] = [0x03, 0x01, 0xe0, 0x9e, 0xb8, 0xb4, 0x1a];

#[tokio::test]
async fn records_of_format_version_3_are_written_byte_for_byte() {
    read_fixture(&CONTACT_V3, &SENDER_V3).await;
}

#[tokio::test]
async fn records_of_format_version_1_stay_readable() {
    read_fixture(&CONTACT_V1, &SENDER_V1).await;
}

#[tokio::test]
async fn records_of_format_version_2_stay_readable() {
    read_fixture(&CONTACT_V2, &SENDER_V2).await;
}

/// Plants a fixture through one store, reopens, and checks what a guard reads and decides.
async fn read_fixture(contact: &[u8], sender_bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let k = key(1);
    {
        let store = SledStore::open(&path).unwrap();
        plant(&store, &k, contact).await;
        let sender_bytes = sender_bytes.to_vec();
        store
            .update_sender(&k.business, &mut |_| {
                Ok(UpdateAction::Write(sender_bytes.clone()))
            })
            .await
            .unwrap();
    }
    let guard = Guard::new(SledStore::open(&path).unwrap(), Policy::default()).unwrap();
    let (state, sender) = guard.state(&k).await.unwrap();
    assert_eq!(state.latest_event, Some(t(7200)));
    assert_eq!(state.erased_at, None);
    assert_eq!(state.last_inbound, Some(t(3600)));
    assert_eq!(state.first_template_at, Some(t(60)));
    assert_eq!(state.last_template_at, Some(t(60)));
    assert_eq!(state.opt_marketing.in_at, Some(t(7200)));
    assert_eq!(state.feedback.failures.len(), 1);
    let failure = state.feedback.failures[0];
    assert_eq!(
        failure.wamid,
        Some(WamidHash::from_raw(0x0123_4567_89ab_cdef))
    );
    assert_eq!((failure.at, failure.code), (t(1800), 131026));
    assert_eq!(state.pair_budget_tat, Some(t(60)));
    assert_eq!(sender.restricted_at, Some(t(600)));
    assert!(sender.is_restricted());
    // Whatever format the fixture has, this build writes the current one.
    assert_eq!(state.encode()[0], waguard::FORMAT_VERSION);
    if contact[0] == waguard::FORMAT_VERSION {
        assert_eq!(
            state.encode(),
            contact.to_vec(),
            "the current format writes these very bytes"
        );
        assert_eq!(sender.encode(), sender_bytes.to_vec());
    }
    // And decisions read them: the sender restriction of the fixture blocks.
    let d = guard.check(&k, Outgoing::FreeForm, t(7300)).await.unwrap();
    assert_eq!(d.reason().unwrap().as_str(), "sender_restricted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sender_cache_stays_coherent_under_concurrent_sender_writes() {
    // Readers fill the cache while writers change the sender record; at the end every
    // reader path agrees with the tree.
    let store = std::sync::Arc::new(SledStore::temporary().unwrap());
    let guard = Guard::new(std::sync::Arc::clone(&store), Policy::default()).unwrap();
    let mut tasks = Vec::new();
    for i in 0..4u32 {
        let guard = guard.clone();
        tasks.push(tokio::spawn(async move {
            for j in 0..50i64 {
                let at = t(i64::from(i) * 1000 + j);
                if i % 2 == 0 {
                    guard
                        .record_send_error(&key(i), 130429, None, at)
                        .await
                        .unwrap();
                } else {
                    guard.check(&key(i), Outgoing::FreeForm, at).await.unwrap();
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let business = key(0).business;
    let (_, via_cache) = guard.state(&key(7)).await.unwrap();
    drop(guard);
    let store = std::sync::Arc::try_unwrap(store).unwrap();
    let path_less = store.load_sender(&business).await.unwrap();
    assert_eq!(via_cache.throughput_at, Some(t(2049)));
    assert_eq!(path_less, Some(via_cache.encode()));
}

/// The contact record cache never serves a record older than the last write that returned.
/// One task counts up in one key through both write paths (a single-key update, a batch of
/// two keys) and publishes each value once its write returned; a second task writes and
/// removes many other keys so that the tiny cache keeps emptying its shards and readers keep
/// refilling them; readers note the published value before each read and fail if the read
/// returns less: what a write path that forgot the cache would show (both paths fail this
/// test when their cache update is removed), or a fill that lost its race with a write (a
/// narrow window here; `cache.rs` checks that rule step by step). At the end every read path
/// agrees with the tree.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_record_cache_never_serves_a_record_older_than_the_last_write() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    use waguard::Batch;

    fn counter(bytes: Option<&[u8]>) -> u64 {
        bytes.map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap()))
    }
    // About two typical entries per shard: most reads miss and fill.
    let options = SledOptions::default().with_record_cache(64 * 200);
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SledStore::open_with(dir.path().join("db"), options).unwrap());
    let published = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let counted = key(0);

    let writer = {
        let (store, published, counted) = (store.clone(), published.clone(), counted.clone());
        tokio::spawn(async move {
            for i in 1..=2_000u64 {
                let write = |old: Option<&[u8]>| {
                    assert_eq!(counter(old), i - 1, "the writer sees its own last write");
                    Ok(UpdateAction::Write(i.to_le_bytes().to_vec()))
                };
                if i % 2 == 0 {
                    store
                        .update(&counted, &mut |old, _| write(old))
                        .await
                        .unwrap();
                } else {
                    let mut batch = Batch::new();
                    batch.contact(counted.clone(), move |old, _| write(old));
                    batch.contact(key(1), move |_, _| Ok(UpdateAction::Write(vec![1; 8])));
                    store.apply_batch(&mut batch).await.unwrap();
                }
                published.store(i, Ordering::SeqCst);
            }
        })
    };
    let churn = {
        let (store, done) = (store.clone(), done.clone());
        tokio::spawn(async move {
            let mut n = 0u32;
            while !done.load(Ordering::SeqCst) {
                n += 1;
                let k = key(2 + n % 500);
                if n % 3 == 0 {
                    store.remove(&k).await.unwrap();
                } else {
                    plant(&store, &k, &u64::from(n).to_le_bytes()).await;
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let mut readers = Vec::new();
    for _ in 0..2 {
        let (store, published, done, counted) = (
            store.clone(),
            published.clone(),
            done.clone(),
            counted.clone(),
        );
        readers.push(tokio::spawn(async move {
            let mut reads = 0u64;
            while !done.load(Ordering::SeqCst) {
                let floor = published.load(Ordering::SeqCst);
                let seen = counter(store.load(&counted).await.unwrap().contact.as_deref());
                assert!(
                    seen >= floor,
                    "read {seen} after the write of {floor} returned"
                );
                reads += 1;
                tokio::task::yield_now().await;
            }
            reads
        }));
    }
    writer.await.unwrap();
    done.store(true, Ordering::SeqCst);
    churn.await.unwrap();
    for reader in readers {
        assert!(reader.await.unwrap() > 0);
    }
    let tree = store.sled_db().open_tree("contacts").unwrap();
    for n in 0..502 {
        let k = key(n);
        let from_tree = tree.get(k.storage_key()).unwrap().map(|v| v.to_vec());
        assert_eq!(store.load(&k).await.unwrap().contact, from_tree, "{k}");
    }
    assert_eq!(
        counter(tree.get(counted.storage_key()).unwrap().as_deref()),
        2_000
    );
    let usage = store.record_cache_usage();
    assert!(usage.records > 0 && usage.bytes <= 64 * 200, "{usage:?}");
}

/// A write behind the store's back (which `sled_db` says not to do) makes the cached record
/// stale, but an update still builds on what the tree holds: its compare-and-swap fails on
/// the cached record, and the retry reads the tree (and puts the cache right).
#[tokio::test]
async fn an_update_builds_on_a_write_made_behind_the_stores_back() {
    let store = SledStore::temporary().unwrap();
    let k = key(1);
    plant(&store, &k, b"through the store").await;
    let tree = store.sled_db().open_tree("contacts").unwrap();
    tree.insert(k.storage_key(), &b"behind its back"[..])
        .unwrap();
    let mut seen = Vec::new();
    store
        .update(&k, &mut |old, _| {
            seen.push(old.map(<[u8]>::to_vec));
            Ok(UpdateAction::Write(b"after".to_vec()))
        })
        .await
        .unwrap();
    assert_eq!(
        seen,
        [
            Some(b"through the store".to_vec()),
            Some(b"behind its back".to_vec())
        ]
    );
    assert_eq!(
        store.load(&k).await.unwrap().contact.as_deref(),
        Some(&b"after"[..])
    );
    assert_eq!(
        tree.get(k.storage_key()).unwrap().as_deref(),
        Some(&b"after"[..])
    );
}

/// `from_sled_with` applies the options' record cache: off, nothing is cached or counted;
/// on (the default of `from_sled`), the update's read of the existing record misses, its
/// write is cached, and the next read is a hit.
#[tokio::test]
async fn from_sled_with_applies_the_record_cache_option() {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let off = SledOptions::default().with_record_cache(0);
    let store = SledStore::from_sled_with(db.clone(), off).unwrap();
    plant(&store, &key(1), b"record").await;
    store.load(&key(1)).await.unwrap();
    let usage = store.record_cache_usage();
    assert_eq!((usage.records, usage.hits), (0, 0), "{usage:?}");
    drop(store);

    let store = SledStore::from_sled(db, Durability::EachWrite).unwrap();
    plant(&store, &key(1), b"record").await;
    let loaded = store.load(&key(1)).await.unwrap();
    assert_eq!(loaded.contact.as_deref(), Some(&b"record"[..]));
    let usage = store.record_cache_usage();
    assert_eq!(
        (usage.records, usage.misses, usage.hits),
        (1, 1, 1),
        "{usage:?}"
    );
}
