//! Tests of the `durable` module.

use std::sync::atomic::Ordering;
use std::time::Duration;

use waguard::{Batch, ContactKey, Store, StoreError, UpdateAction};

use crate::{SledOptions, SledStore};

fn run<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

fn keys() -> Vec<ContactKey> {
    (0..8)
        .map(|i| format!("100000001/p:3361234560{i}").parse().unwrap())
        .collect()
}

fn batch_writing(keys: &[ContactKey], value: &'static [u8]) -> Batch<'static> {
    let mut batch = Batch::new();
    for key in keys {
        batch.contact(key.clone(), move |_, _| {
            Ok(UpdateAction::Write(value.to_vec()))
        });
    }
    batch
}

/// Writes `old` to every key, then a batch of `new` whose apply fails after the first key
/// of one of its parts (the store must stop); returns how many keys sled then holds `new`
/// for. The store is left stopped.
async fn fail_a_batch_midway(store: &SledStore, keys: &[ContactKey]) -> usize {
    store
        .apply_batch(&mut batch_writing(keys, b"old"))
        .await
        .unwrap();
    *store.fail_next_apply.lock() = Some(Duration::ZERO);
    let failed = store.apply_batch(&mut batch_writing(keys, b"new")).await;
    assert!(
        matches!(failed, Err(ref e) if e.kind() == waguard::StoreErrorKind::MustReopen),
        "{failed:?}"
    );
    let message = failed.unwrap_err().to_string();
    assert!(message.contains("reopen the store"), "{message}");
    assert!(message.contains("apply failed midway"), "{message}");
    assert!(!message.contains("retry"), "{message}");
    // The store refuses to show what sled holds now.
    assert!(matches!(
        store.load(&keys[0]).await,
        Err(ref e) if e.kind() == waguard::StoreErrorKind::MustReopen
    ));
    keys.iter()
        .filter(|k| store.contacts.get(k.storage_key()).unwrap().as_deref() == Some(b"new"))
        .count()
}

/// Reopens the store at `path` and checks that the replay applied the failed batch whole.
fn assert_the_reopen_applies_it_whole(
    path: &std::path::Path,
    options: SledOptions,
    keys: &[ContactKey],
) {
    let store = SledStore::open_with(path, options).unwrap();
    assert!(
        store.recovered_writes() >= 1,
        "the reopen replays the journal"
    );
    run(async {
        for key in keys {
            let loaded = store.load(key).await.unwrap();
            assert_eq!(loaded.contact.as_deref(), Some(&b"new"[..]), "{key}");
        }
    });
}

/// A batch that reached the journal but failed midway in sled stops the store: nothing
/// reads its half or writes over it, the close keeps the journal, and the next open
/// applies the batch whole.
#[test]
fn a_batch_failing_midway_stops_the_store_until_a_reopen_applies_it_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let keys = keys();
    run(async {
        let store = SledStore::open(&path).unwrap();
        let applied = fail_a_batch_midway(&store, &keys).await;
        assert_eq!(applied, 1, "the hook fails after the first key");
        // Nor does it let anything build on it.
        let mut write =
            |_: Option<&[u8]>, _: Option<&[u8]>| Ok(UpdateAction::Write(b"later".to_vec()));
        assert!(matches!(
            store.update(&keys[1], &mut write).await,
            Err(ref e) if e.kind() == waguard::StoreErrorKind::MustReopen
        ));
        assert!(matches!(
            store.flush().await,
            Err(ref e) if e.kind() == waguard::StoreErrorKind::MustReopen
        ));
    });
    assert_the_reopen_applies_it_whole(&path, SledOptions::default(), &keys);
}

fn many_keys(n: usize) -> Vec<ContactKey> {
    (0..n)
        .map(|i| format!("100000001/p:336{i:08}").parse().unwrap())
        .collect()
}

/// A batch large enough for several threads writes every key, to sled and to the record
/// cache alike, in as many parts as threads; a small batch stays in one part.
#[test]
fn a_large_batch_written_by_several_threads_writes_every_key() {
    let dir = tempfile::tempdir().unwrap();
    let options = SledOptions::default().with_batch_threads(4);
    let store = SledStore::open_with(dir.path().join("db"), options).unwrap();
    let keys = many_keys(4 * crate::batch::MIN_KEYS_PER_THREAD + 37);
    run(async {
        store
            .apply_batch(&mut batch_writing(&keys, b"one"))
            .await
            .unwrap();
        store
            .apply_batch(&mut batch_writing(&keys, b"two"))
            .await
            .unwrap();
        for key in &keys {
            let tree = store.contacts.get(key.storage_key()).unwrap();
            assert_eq!(tree.as_deref(), Some(&b"two"[..]), "{key} in sled");
            let loaded = store.load(key).await.unwrap();
            assert_eq!(loaded.contact.as_deref(), Some(&b"two"[..]), "{key} read");
        }
    });
    assert_eq!(store.record_cache_usage().records, keys.len());
    assert_eq!(store.last_batch_parts.load(Ordering::Relaxed), 4);
    // A webhook-sized batch stays on the calling thread.
    run(store.apply_batch(&mut batch_writing(&keys[..200], b"three"))).unwrap();
    assert_eq!(store.last_batch_parts.load(Ordering::Relaxed), 1);
}

/// When one part of a batch written by several threads fails, the store stops as for a
/// single thread, and the reopen applies the batch whole.
#[test]
fn a_large_batch_failing_in_one_part_stops_the_store_until_a_reopen_applies_it_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let keys = many_keys(3 * crate::batch::MIN_KEYS_PER_THREAD);
    let options = SledOptions::default().with_batch_threads(3);
    run(async {
        let store = SledStore::open_with(&path, options.clone()).unwrap();
        let applied = fail_a_batch_midway(&store, &keys).await;
        // One part stopped after its first key; the other two ran to their end.
        assert_eq!(store.last_batch_parts.load(Ordering::Relaxed), 3);
        assert_eq!(applied, 1 + 2 * crate::batch::MIN_KEYS_PER_THREAD);
    });
    assert_the_reopen_applies_it_whole(&path, options, &keys);
}

/// A writer that passed the stop check before a batch failed, then waited for that
/// batch's stripe, is refused when it gets there: it must not write over the batch's
/// unapplied keys (its record would follow the batch's in the journal and win at the
/// replay).
#[test]
fn a_writer_queued_behind_a_failing_batch_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let keys = keys();
    let store = SledStore::open(&path).unwrap();
    run(store.apply_batch(&mut batch_writing(&keys, b"old"))).unwrap();
    // The batch fails 300 ms into its apply, holding its stripes all that time.
    *store.fail_next_apply.lock() = Some(Duration::from_millis(300));
    let last = keys.last().unwrap().clone();
    let (batch, queued) = std::thread::scope(|scope| {
        let batch = scope.spawn(|| run(store.apply_batch(&mut batch_writing(&keys, b"new"))));
        std::thread::sleep(Duration::from_millis(100));
        let queued = scope.spawn(|| {
            let mut write =
                |_: Option<&[u8]>, _: Option<&[u8]>| Ok(UpdateAction::Write(b"later".to_vec()));
            run(store.update(&last, &mut write))
        });
        (batch.join().unwrap(), queued.join().unwrap())
    });
    assert!(
        matches!(batch, Err(ref e) if e.kind() == waguard::StoreErrorKind::MustReopen),
        "{batch:?}"
    );
    assert!(
        matches!(queued, Err(ref e) if e.kind() == waguard::StoreErrorKind::MustReopen),
        "{queued:?}"
    );
    drop(store);
    let store = SledStore::open(&path).unwrap();
    run(async {
        for key in &keys {
            let loaded = store.load(key).await.unwrap();
            assert_eq!(loaded.contact.as_deref(), Some(&b"new"[..]), "{key}");
        }
    });
}

fn write(
    value: &'static [u8],
) -> impl FnMut(Option<&[u8]>, Option<&[u8]>) -> Result<UpdateAction, StoreError> {
    move |_, _| Ok(UpdateAction::Write(value.to_vec()))
}

fn arm_sync_failure(store: &SledStore) {
    let journal = store
        .journal
        .as_ref()
        .expect("a store on a directory has a journal");
    *journal.group.fail_next.lock() = Some(std::io::ErrorKind::Other);
}

fn assert_stopped_by_the_sync<T: std::fmt::Debug>(result: Result<T, StoreError>) {
    let message = match &result {
        Err(e) if e.kind() == waguard::StoreErrorKind::MustReopen => e.to_string(),
        other => panic!("expected MustReopen, got {other:?}"),
    };
    assert!(message.contains("fdatasync failed"), "{message}");
    assert!(message.contains("reopen the store"), "{message}");
    assert!(!message.contains("retry"), "{message}");
}

/// A failed fdatasync of the journal stops the store: the write that waited for it fails,
/// and so does every later write, read and flush (a later fdatasync could succeed without
/// the pages the kernel dropped); the reopen replays the journal and the store works again.
#[test]
fn a_failed_fdatasync_stops_the_store_until_it_is_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let keys = keys();
    run(async {
        let store = SledStore::open(&path).unwrap();
        store.update(&keys[0], &mut write(b"before")).await.unwrap();
        arm_sync_failure(&store);
        assert_stopped_by_the_sync(store.update(&keys[1], &mut write(b"failed")).await);
        // The injected failure is spent: a real fdatasync would now succeed, and must not
        // be reached.
        assert_stopped_by_the_sync(store.update(&keys[2], &mut write(b"after")).await);
        assert_stopped_by_the_sync(store.flush().await);
        assert_stopped_by_the_sync(store.load(&keys[0]).await);
        assert_stopped_by_the_sync(store.apply_batch(&mut batch_writing(&keys, b"all")).await);
        let journal = store.journal.as_ref().unwrap();
        assert!(
            journal.sync().is_err(),
            "the journal itself refuses to sync again"
        );
    });
    let store = SledStore::open(&path).unwrap();
    run(async {
        let first = store.load(&keys[0]).await.unwrap();
        assert_eq!(first.contact.as_deref(), Some(&b"before"[..]));
        // Nothing written after the stop got in.
        assert_eq!(store.load(&keys[2]).await.unwrap().contact, None);
        store
            .update(&keys[3], &mut write(b"reopened"))
            .await
            .unwrap();
        store.flush().await.unwrap();
    });
}

/// With group commit, a failed fdatasync under `flush` stops the store the same way: the
/// next flush does not report success.
#[test]
fn a_failed_fdatasync_under_flush_stops_a_group_commit_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let keys = keys();
    let options = SledOptions::default().with_durability(crate::Durability::GroupCommit {
        every: Duration::from_secs(60),
    });
    run(async {
        let store = SledStore::open_with(&path, options.clone()).unwrap();
        store
            .update(&keys[0], &mut write(b"pending"))
            .await
            .unwrap();
        arm_sync_failure(&store);
        assert_stopped_by_the_sync(store.flush().await);
        assert_stopped_by_the_sync(store.flush().await);
        assert_stopped_by_the_sync(store.update(&keys[1], &mut write(b"x")).await);
    });
    let store = SledStore::open_with(&path, options).unwrap();
    run(async {
        store.update(&keys[1], &mut write(b"y")).await.unwrap();
        store.flush().await.unwrap();
    });
}

/// A failed fdatasync of sled's data file (a checkpoint) stops the store too.
#[test]
fn a_failed_fdatasync_of_the_data_file_stops_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path().join("db")).unwrap();
    *store.syncer.group.fail_next.lock() = Some(std::io::ErrorKind::Other);
    assert_stopped_by_the_sync(store.checkpoint("test"));
    run(async {
        assert_stopped_by_the_sync(store.load(&keys()[0]).await);
    });
}

fn damage_of(result: Result<SledStore, StoreError>) -> Vec<crate::Damage> {
    match result {
        Err(e) if e.kind() == waguard::StoreErrorKind::Damaged => {
            let message = e.to_string();
            assert!(message.contains("verify --repair"), "{message}");
            let unavailable = crate::StoreUnavailable::of(&e).expect("a sled failure");
            assert!(matches!(
                unavailable,
                crate::StoreUnavailable::Damaged { .. }
            ));
            let source = std::error::Error::source(unavailable).expect("a report");
            source
                .downcast_ref::<crate::DamageReport>()
                .expect("a DamageReport")
                .damage()
                .to_vec()
        }
        Err(e) => panic!("expected Damaged, got {e:?}"),
        Ok(_) => panic!("a damaged store opened"),
    }
}

fn with(integrity: crate::Integrity) -> SledOptions {
    SledOptions::default().with_integrity(integrity)
}

/// A record lost behind the store's back is found when the store opens, and every later
/// open refuses too until the loss is accepted.
#[test]
fn a_lost_record_refuses_the_open_until_the_loss_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let keys = many_keys(50);
    {
        let store = SledStore::open(&path).unwrap();
        run(store.apply_batch(&mut batch_writing(&keys, b"v"))).unwrap();
        assert_eq!(store.acknowledged_records(), Some(50));
    }
    {
        let db = sled::open(&path).unwrap();
        let tree = db.open_tree("contacts").unwrap();
        tree.remove(keys[7].storage_key()).unwrap();
        tree.flush().unwrap();
    }
    let lost = crate::Damage::Records {
        acknowledged: 50,
        found: 49,
    };
    assert_eq!(damage_of(SledStore::open(&path)), vec![lost.clone()]);
    // The refused open wrote nothing: the next one refuses the same way.
    assert_eq!(damage_of(SledStore::open(&path)), vec![lost.clone()]);
    // Report opens it to inspect, read-only.
    drop(
        SledStore::open_with(&path, with(crate::Integrity::Report)).map(|s| {
            assert_eq!(s.damage(), std::slice::from_ref(&lost));
            let mut write = |_: Option<&[u8]>, _: Option<&[u8]>| Ok(UpdateAction::Keep);
            assert!(run(s.update(&keys[0], &mut write)).is_ok(), "reads work");
            let refused = run(s.apply_batch(&mut batch_writing(&keys[..2], b"w")));
            assert!(refused.is_err(), "a report-only store takes no write");
        }),
    );
    assert_eq!(damage_of(SledStore::open(&path)), vec![lost.clone()]);
    let accepted = SledStore::open_with(&path, with(crate::Integrity::Accept)).unwrap();
    assert_eq!(accepted.damage(), [lost]);
    drop(accepted);
    let store = SledStore::open(&path).unwrap();
    assert!(store.damage().is_empty());
    assert_eq!(store.acknowledged_records(), Some(49));
}

/// A missing journal is reported, not taken for an empty one.
#[test]
fn a_missing_journal_is_damage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    drop(SledStore::open(&path).unwrap());
    std::fs::remove_file(path.join(crate::journal::FILE_NAME)).unwrap();
    assert_eq!(
        damage_of(SledStore::open(&path)),
        vec![crate::Damage::JournalMissing]
    );
}

/// A batch larger than the journal goes straight into sled, then a checkpoint. When the
/// checkpoint fails after sled has the batch, the reopen finds the batch's records and
/// counts them: the journal said the batch's delta may count.
#[test]
fn a_batch_larger_than_the_journal_interrupted_before_its_checkpoint_is_no_damage() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let options = SledOptions::default().with_journal_capacity(64 * 1024);
    let keys = many_keys(2_000);
    let big: &'static [u8] = &[7u8; 64];
    {
        let store = SledStore::open_with(&path, options.clone()).unwrap();
        *store.syncer.group.fail_next.lock() = Some(std::io::ErrorKind::Other);
        let result = run(store.apply_batch(&mut batch_writing(&keys, big)));
        assert!(
            matches!(result, Err(ref e) if e.kind() == waguard::StoreErrorKind::MustReopen),
            "{result:?}"
        );
    }
    let store = SledStore::open_with(&path, options).unwrap();
    assert_eq!(store.acknowledged_records(), Some(2_000));
    run(async {
        let loaded = store.load(&keys[1_999]).await.unwrap();
        assert_eq!(loaded.contact.as_deref(), Some(big));
    });
}
