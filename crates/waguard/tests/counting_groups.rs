//! Counting reservations (rule L3) of one portfolio run in groups; a task cancelled while it
//! leads a group or waits for one never leaves the portfolio without a leader.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use waguard::*;

/// A memory store whose paired update takes a while, so that groups form and tasks can be
/// cancelled in the middle of one.
struct Slow(MemoryStore);

#[async_trait]
impl Store for Slow {
    async fn update(
        &self,
        key: &ContactKey,
        update: &mut ContactUpdate<'_>,
    ) -> Result<(), StoreError> {
        self.0.update(key, update).await
    }
    async fn update_sender(
        &self,
        business: &BusinessId,
        update: &mut SenderUpdate<'_>,
    ) -> Result<(), StoreError> {
        self.0.update_sender(business, update).await
    }
    async fn load_with(&self, key: &ContactKey, read: &mut ReadFn<'_>) -> Result<(), StoreError> {
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
    async fn load_registry(&self, key: &RegistryKey) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.load_registry(key).await
    }
    async fn update_with_registry(
        &self,
        keys: &[ContactKey],
        registry: &RegistryKey,
        update: &mut ContactRegistryUpdate<'_>,
    ) -> Result<(), StoreError> {
        tokio::time::sleep(Duration::from_millis(2)).await;
        self.0.update_with_registry(keys, registry, update).await
    }
}

fn key(n: u32) -> ContactKey {
    format!("100000001/p:336123{n:05}").parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancelled_tasks_never_stall_a_portfolio() {
    let policy = Policy {
        throughput: PairRate {
            interval: Duration::from_nanos(1),
            burst: 100_000,
        },
        ..Policy::default()
    };
    let guard = Arc::new(Guard::new(Slow(MemoryStore::new()), policy).unwrap());
    let tpl = Outgoing::Template(TemplateCategory::Utility);
    let now = Timestamp::parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
    for round in 0..20u32 {
        let mut handles = Vec::new();
        for n in 0..16 {
            let guard = Arc::clone(&guard);
            handles.push(tokio::spawn(async move {
                guard.reserve(&key(round * 100 + n), tpl, None, now).await
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
            guard.reserve(&key(round * 100 + 99), tpl, None, now),
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
        let (state, _) = guard.state(&key(n)).await.unwrap();
        if state.counted_at.is_some() {
            reserved += 1;
        }
    }
    assert_eq!(portfolio.live_count(now, guard.policy()), reserved);
}
