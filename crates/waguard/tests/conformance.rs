//! The store conformance suite on [`MemoryStore`], plus guard-level tests.

use std::sync::Arc;
use std::time::Duration;

use waguard::{
    BusinessId, Guard, MemoryStore, Outgoing, PairRate, Policy, TemplateCategory, Timestamp,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_passes_the_conformance_suite() {
    waguard::testing::run_all(|| async { MemoryStore::new() }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_with_one_shard_passes_the_conformance_suite() {
    // Every key in one shard: the most contention.
    waguard::testing::run_all(|| async { MemoryStore::with_shards(1) }).await;
}

/// Counts the store operations it sees.
#[derive(Default)]
struct Counted(std::sync::atomic::AtomicUsize);

impl waguard::observe::StoreObserver for Counted {
    fn observe(&self, _: &'static str, _: std::time::Duration, _: bool) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_observed_store_passes_the_conformance_suite() {
    // The wrapper forwards every method, so the store inside keeps what it can do (a
    // method left to the trait's default would lose its registry records, for one).
    waguard::testing::run_all(|| async {
        waguard::observe::Observed::new(MemoryStore::new(), Counted::default())
    })
    .await;
}

mod lossy {
    //! A memory store altered for the suite's own tests: lossy (its updates read, then write,
    //! to prove the suite catches lost updates) or slow (its paired updates take a while).

    use async_trait::async_trait;
    use waguard::testing::RawAccess;
    use waguard::*;

    /// A memory store altered for a test: `lossy` (reads, then writes: a race between the two
    /// loses updates) or `slow` (its paired updates take 2 ms, so groups form and tasks can be
    /// cancelled in the middle of one). The third field holds the keys of every paired update,
    /// in the order they began.
    pub struct LossyStore(
        pub MemoryStore,
        pub bool,
        pub std::sync::Mutex<Vec<Vec<ContactKey>>>,
    );

    impl LossyStore {
        pub fn lossy() -> Self {
            LossyStore(MemoryStore::new(), true, Default::default())
        }
        pub fn slow() -> Self {
            LossyStore(MemoryStore::new(), false, Default::default())
        }
    }

    #[async_trait]
    impl Store for LossyStore {
        async fn update(
            &self,
            key: &ContactKey,
            update: &mut ContactUpdate<'_>,
        ) -> Result<(), StoreError> {
            if !self.1 {
                return self.0.update(key, update).await;
            }
            let records = self.0.load(key).await?;
            tokio::task::yield_now().await;
            let action = update(records.contact.as_deref(), records.sender.as_deref())?;
            self.0.update(key, &mut |_, _| Ok(action.clone())).await
        }
        async fn update_sender(
            &self,
            business: &BusinessId,
            update: &mut SenderUpdate<'_>,
        ) -> Result<(), StoreError> {
            self.0.update_sender(business, update).await
        }
        async fn load_with(
            &self,
            key: &ContactKey,
            read: &mut ReadFn<'_>,
        ) -> Result<(), StoreError> {
            self.0.load_with(key, read).await
        }
        async fn load_sender(&self, business: &BusinessId) -> Result<Option<Vec<u8>>, StoreError> {
            self.0.load_sender(business).await
        }
        async fn remove(&self, key: &ContactKey) -> Result<bool, StoreError> {
            self.0.remove(key).await
        }
        fn scan(&self) -> ScanStream<'_> {
            self.0.scan()
        }
        async fn all_senders(&self) -> Result<Vec<(BusinessId, Vec<u8>)>, StoreError> {
            self.0.all_senders().await
        }
        async fn apply_batch(&self, batch: &mut Batch<'_>) -> Result<(), StoreError> {
            self.0.apply_batch(batch).await
        }
        async fn flush(&self) -> Result<(), StoreError> {
            Ok(())
        }
        async fn update_registry(
            &self,
            key: &RegistryKey,
            update: &mut SenderUpdate<'_>,
        ) -> Result<(), StoreError> {
            self.0.update_registry(key, update).await
        }
        async fn update_with_registry(
            &self,
            keys: &[ContactKey],
            registry: &RegistryKey,
            update: &mut ContactRegistryUpdate<'_>,
        ) -> Result<(), StoreError> {
            self.2.lock().unwrap().push(keys.to_vec());
            if !self.1 {
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                return self.0.update_with_registry(keys, registry, update).await;
            }
            // Reads every record first, decides, then writes: a race between the two loses
            // updates.
            let mut actions = Vec::new();
            let mut record = self.0.load_registry(registry).await?;
            let mut staged = std::collections::HashMap::new();
            for (i, key) in keys.iter().enumerate() {
                let records = self.0.load(key).await?;
                tokio::task::yield_now().await;
                let contact = staged.get(key).cloned().unwrap_or(records.contact);
                let (contact_action, registry_action) = update(
                    i,
                    contact.as_deref(),
                    records.sender.as_deref(),
                    record.as_deref(),
                )?;
                match &contact_action {
                    UpdateAction::Write(bytes) => {
                        staged.insert(key.clone(), Some(bytes.clone()));
                    }
                    UpdateAction::Delete => {
                        staged.insert(key.clone(), None);
                    }
                    UpdateAction::Keep => {}
                }
                match &registry_action {
                    UpdateAction::Write(bytes) => record = Some(bytes.clone()),
                    UpdateAction::Delete => record = None,
                    UpdateAction::Keep => {}
                }
                actions.push((contact_action, registry_action));
            }
            self.0
                .update_with_registry(keys, registry, &mut |i, _, _, _| Ok(actions[i].clone()))
                .await
        }
        async fn load_registry(&self, key: &RegistryKey) -> Result<Option<Vec<u8>>, StoreError> {
            self.0.load_registry(key).await
        }
        async fn registry_records(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
            self.0.registry_records().await
        }
    }

    #[async_trait]
    impl RawAccess for LossyStore {
        async fn put_raw_contact(&self, key: &ContactKey, bytes: &[u8]) -> Result<(), StoreError> {
            self.0.put_raw_contact(key, bytes).await
        }
        async fn put_raw_sender(
            &self,
            business: &BusinessId,
            bytes: &[u8],
        ) -> Result<(), StoreError> {
            self.0.put_raw_sender(business, bytes).await
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[should_panic(expected = "lost under concurrency")]
async fn the_suite_catches_a_store_that_loses_updates() {
    let store = std::sync::Arc::new(lossy::LossyStore::lossy());
    waguard::testing::no_lost_updates(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[should_panic(expected = "exactly")]
async fn the_suite_catches_a_store_that_lets_reservations_race() {
    let store = std::sync::Arc::new(lossy::LossyStore::lossy());
    waguard::testing::reserve_races_take_exactly_the_free_slots(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[should_panic(expected = "exactly the free units")]
async fn the_suite_catches_a_store_that_lets_counting_reservations_race() {
    let store = std::sync::Arc::new(lossy::LossyStore::lossy());
    waguard::testing::counting_reservations_race(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[should_panic(expected = "lost under concurrency")]
async fn the_suite_catches_a_store_whose_paired_updates_race() {
    let store = std::sync::Arc::new(lossy::LossyStore::lossy());
    waguard::testing::paired_updates(store).await;
}

#[tokio::test]
#[should_panic(expected = "multi-thread runtime")]
async fn the_suite_refuses_a_current_thread_runtime() {
    waguard::testing::run_all(|| async { MemoryStore::new() }).await;
}

/// The n-th contact of the one business number (and so the one portfolio) of these tests.
fn counting_key(n: u32) -> waguard::ContactKey {
    format!("100000001/p:336123{n:05}").parse().unwrap()
}

/// A guard on a slow store (paired updates take 2 ms, so groups form) whose number's pace
/// never refuses, the template its counting tests reserve, and the instant they reserve at.
fn counting_guard() -> (Arc<Guard<lossy::LossyStore>>, Outgoing, Timestamp) {
    let policy = Policy {
        throughput: PairRate {
            interval: Duration::from_nanos(1),
            burst: 100_000,
        },
        ..Policy::default()
    };
    let guard = Arc::new(Guard::new(lossy::LossyStore::slow(), policy).unwrap());
    let tpl = Outgoing::Template(TemplateCategory::Utility);
    let now = Timestamp::parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
    (guard, tpl, now)
}

/// Counting reservations (rule L3) of one portfolio run in groups; a task cancelled while it
/// leads a group or waits for one never leaves the portfolio without a leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancelled_tasks_never_stall_a_portfolio() {
    let (guard, tpl, now) = counting_guard();
    for round in 0..20u32 {
        let mut handles = Vec::new();
        for n in 0..16 {
            let guard = Arc::clone(&guard);
            handles.push(tokio::spawn(async move {
                guard
                    .reserve(&counting_key(round * 100 + n), tpl, None, now)
                    .await
            }));
        }
        // Cancel some while they lead, wait or write.
        tokio::time::sleep(Duration::from_micros(500 + u64::from(round) * 150)).await;
        for (n, handle) in handles.iter().enumerate() {
            if n % 3 == 0 {
                handle.abort();
            }
        }
        for handle in handles {
            match handle.await {
                Ok(result) => {
                    // Done, or told that its group's leader went away: never stuck.
                    let _ = result;
                }
                Err(e) => assert!(e.is_cancelled(), "a task panicked: {e}"),
            }
        }
        // The portfolio still answers.
        let next = tokio::time::timeout(
            Duration::from_secs(5),
            guard.reserve(&counting_key(round * 100 + 99), tpl, None, now),
        )
        .await
        .expect("a reservation after cancelled ones answers (the portfolio has a leader)")
        .unwrap();
        assert!(next.permits(tpl), "{next:?}");
    }
    // Every count the portfolio holds has its reservation.
    let (_, portfolio) = guard
        .portfolio(&BusinessId::parse("100000001").unwrap())
        .await
        .unwrap();
    let mut reserved = 0;
    for n in 0..2_000 {
        let (state, _) = guard.state(&counting_key(n)).await.unwrap();
        if state.counted_at.is_some() {
            reserved += 1;
        }
    }
    assert_eq!(portfolio.live_count(now, guard.policy()), reserved);
}

/// The case a stress test cannot reach reliably: the lead of the next group is handed to a
/// waiting task that is cancelled before it runs. Its channel still holds the lead; dropping it
/// must pass the lead on, or every later counting reservation of the portfolio waits forever.
/// On a current-thread runtime the order is exact: A leads and writes; B and C queue; A's
/// group ends and hands the lead to B; A cancels B before B is polled again.
#[tokio::test(flavor = "current_thread")]
async fn a_lead_handed_to_a_cancelled_waiter_goes_on() {
    let (guard, tpl, now) = counting_guard();
    let cancel_b: Arc<std::sync::Mutex<Option<tokio::task::AbortHandle>>> = Arc::default();
    let a = tokio::spawn({
        let (guard, cancel_b) = (Arc::clone(&guard), Arc::clone(&cancel_b));
        async move {
            let answer = guard.reserve(&counting_key(1), tpl, None, now).await;
            // A's group has ended and handed the lead to B, which has not run since.
            cancel_b
                .lock()
                .unwrap()
                .take()
                .expect("B was spawned")
                .abort();
            answer
        }
    });
    // A starts, leads a group of its own and waits in the store's 2 ms write.
    tokio::task::yield_now().await;
    let spawn = |n| {
        let guard = Arc::clone(&guard);
        tokio::spawn(async move { guard.reserve(&counting_key(n), tpl, None, now).await })
    };
    let b = spawn(2);
    let c = spawn(3);
    *cancel_b.lock().unwrap() = Some(b.abort_handle());
    let a = a.await.unwrap().unwrap();
    assert!(a.permits(tpl), "{a:?}");
    assert!(b.await.unwrap_err().is_cancelled());
    let c = tokio::time::timeout(Duration::from_secs(5), c)
        .await
        .expect("C answers: the lead B never took went on to it")
        .unwrap()
        .expect("C's reservation is written by C's own group, not lost with B");
    assert!(c.permits(tpl), "{c:?}");
    // B never wrote: the groups were A alone, then C alone.
    let written = guard.store().2.lock().unwrap().clone();
    assert_eq!(written, vec![vec![counting_key(1)], vec![counting_key(3)]]);
    let (_, portfolio) = guard
        .portfolio(&BusinessId::parse("100000001").unwrap())
        .await
        .unwrap();
    assert_eq!(portfolio.live_count(now, guard.policy()), 2);
}
