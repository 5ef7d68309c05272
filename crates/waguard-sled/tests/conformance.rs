//! The store conformance suite on [`SledStore`], unchanged.

use waguard_sled::{Durability, SledOptions, SledStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sled_store_passes_the_conformance_suite() {
    waguard::testing::run_all(|| async { SledStore::temporary().unwrap() }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sled_store_in_group_commit_mode_passes_the_conformance_suite() {
    let options = SledOptions::default().with_durability(Durability::GroupCommit {
        every: std::time::Duration::from_millis(50),
    });
    waguard::testing::run_all(|| async { SledStore::temporary_with(options.clone()).unwrap() })
        .await;
}

/// Stores opened on a directory have the write-ahead journal (temporary stores do not):
/// the suite again, in both modes, with a 64 KiB journal so that the concurrent cases also
/// run through checkpoints. Each case gets a fresh directory under one temporary parent.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sled_store_with_its_journal_passes_the_conformance_suite() {
    let parent = tempfile::tempdir().unwrap();
    let mut n = 0;
    for durability in [
        Durability::EachWrite,
        Durability::GroupCommit {
            every: std::time::Duration::from_millis(50),
        },
    ] {
        let options = SledOptions::default()
            .with_durability(durability)
            .with_journal_capacity(64 * 1024);
        waguard::testing::run_all(|| {
            n += 1;
            let path = parent.path().join(format!("db{n}"));
            let options = options.clone();
            async move {
                let store = SledStore::open_with(path, options).unwrap();
                assert!(store.path().is_some());
                store
            }
        })
        .await;
    }
}

/// The concurrent cases again on stores with the smallest journal, several times: each run
/// fills the journal, so checkpoints happen while tasks race on the same keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_updates_lose_nothing_across_journal_checkpoints() {
    let parent = tempfile::tempdir().unwrap();
    for n in 0..8 {
        let options = SledOptions::default().with_journal_capacity(64 * 1024);
        let open = |name: String| {
            std::sync::Arc::new(
                SledStore::open_with(parent.path().join(name), options.clone()).unwrap(),
            )
        };
        waguard::testing::no_lost_updates(open(format!("updates{n}"))).await;
        waguard::testing::reserve_races_take_exactly_the_free_slots(open(format!("reserve{n}")))
            .await;
    }
}

#[tokio::test]
async fn a_stored_key_that_is_not_a_contact_key_is_a_typed_scan_error() {
    use futures_util::StreamExt;
    use waguard::{Store, StoreError};
    let store = SledStore::temporary().unwrap();
    store.put_raw_contact_key(b"not a key", b"x").unwrap();
    let items: Vec<_> = store.scan().collect().await;
    assert_eq!(items.len(), 1);
    match &items[0] {
        Err(e @ StoreError::BadStoredKey { key, .. }) => {
            assert_eq!(key, "not a key");
            assert!(e.to_string().contains("not a key"), "{e}");
        }
        other => panic!("expected BadStoredKey, got {other:?}"),
    }
}

/// The suite with the contact record cache off, and with one so small that its shards keep
/// emptying: what the suite checks must not depend on the cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sled_store_passes_the_conformance_suite_whatever_its_record_cache() {
    for bytes in [0, 64 * 200] {
        let options = SledOptions::default().with_record_cache(bytes);
        waguard::testing::run_all(|| async { SledStore::temporary_with(options.clone()).unwrap() })
            .await;
    }
}
