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
