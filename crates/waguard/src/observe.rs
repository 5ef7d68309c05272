//! Watching a guard at work without changing it: the time and outcome of every store
//! operation ([`Observed`], with your [`StoreObserver`] or, with the `metrics` feature,
//! [`MetricsObserver`]), and, with the `tracing` feature, a span on every [`Guard`](crate::Guard)
//! operation whose key is [hashed](KeyHash), never the phone number in clear.

use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::store::{
    Batch, ContactUpdate, ReadFn, Records, RegistryKey, ScanStream, SenderUpdate, Store, StoreError,
};
use crate::{BusinessId, ContactKey};

/// Told the duration and outcome of each store operation by [`Observed`].
pub trait StoreObserver: Send + Sync {
    /// `operation` (the name of the [`Store`] method: `update`, `update_sender`, `load`,
    /// `load_sender`, `remove`, `all_senders`, `apply_batch`, `flush`, `update_registry`,
    /// `load_registry`, `load_registries`, `registry_records`, `load_with_registries`,
    /// `update_with_registry`) took `elapsed` and succeeded or not.
    fn observe(&self, operation: &'static str, elapsed: Duration, ok: bool);
}

impl<T: StoreObserver + ?Sized> StoreObserver for std::sync::Arc<T> {
    fn observe(&self, operation: &'static str, elapsed: Duration, ok: bool) {
        (**self).observe(operation, elapsed, ok);
    }
}

/// A store whose every operation is timed and reported to an observer; otherwise the same
/// store (same records, same durability, same errors): every method of [`Store`], the
/// provided ones included, goes to the inner store. `scan` is passed through untimed.
///
/// ```
/// use std::sync::Mutex;
/// use std::time::Duration;
/// use waguard::observe::{Observed, StoreObserver};
/// use waguard::{Guard, MemoryStore, Outgoing, Policy, Timestamp};
///
/// #[derive(Default)]
/// struct Seen(Mutex<Vec<&'static str>>);
/// impl StoreObserver for Seen {
///     fn observe(&self, operation: &'static str, _: Duration, _: bool) {
///         self.0.lock().unwrap().push(operation);
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let guard = Guard::new(Observed::new(MemoryStore::new(), Seen::default()), Policy::default()).unwrap();
/// let key = "100000001/p:33612345678".parse().unwrap();
/// guard.check(&key, Outgoing::FreeForm, Timestamp::from_unix_seconds(0).unwrap()).await.unwrap();
/// assert_eq!(*guard.store().observer().0.lock().unwrap(), ["load"]);
/// # });
/// ```
#[derive(Debug)]
pub struct Observed<S, O> {
    store: S,
    observer: O,
}

impl<S, O> Observed<S, O> {
    /// `store`, reporting to `observer`.
    pub fn new(store: S, observer: O) -> Self {
        Observed { store, observer }
    }

    /// The store inside.
    pub fn inner(&self) -> &S {
        &self.store
    }

    /// The observer.
    pub fn observer(&self) -> &O {
        &self.observer
    }
}

impl<S, O: StoreObserver> Observed<S, O> {
    fn timed<T>(
        &self,
        operation: &'static str,
        started: Instant,
        result: Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.observer
            .observe(operation, started.elapsed(), result.is_ok());
        result
    }
}

#[async_trait]
impl<S: Store, O: StoreObserver> Store for Observed<S, O> {
    async fn update(
        &self,
        key: &ContactKey,
        update: &mut ContactUpdate<'_>,
    ) -> Result<(), StoreError> {
        let started = Instant::now();
        let result = self.store.update(key, update).await;
        self.timed("update", started, result)
    }

    async fn update_sender(
        &self,
        business: &BusinessId,
        update: &mut SenderUpdate<'_>,
    ) -> Result<(), StoreError> {
        let started = Instant::now();
        let result = self.store.update_sender(business, update).await;
        self.timed("update_sender", started, result)
    }

    async fn load_with(&self, key: &ContactKey, read: &mut ReadFn<'_>) -> Result<(), StoreError> {
        let started = Instant::now();
        let result = self.store.load_with(key, read).await;
        self.timed("load", started, result)
    }

    async fn load(&self, key: &ContactKey) -> Result<Records, StoreError> {
        let started = Instant::now();
        let result = self.store.load(key).await;
        self.timed("load", started, result)
    }

    fn load_now(&self, key: &ContactKey, read: &mut ReadFn<'_>) -> Option<Result<(), StoreError>> {
        let started = Instant::now();
        let result = self.store.load_now(key, read)?;
        Some(self.timed("load", started, result))
    }

    async fn load_sender(&self, business: &BusinessId) -> Result<Option<Vec<u8>>, StoreError> {
        let started = Instant::now();
        let result = self.store.load_sender(business).await;
        self.timed("load_sender", started, result)
    }

    async fn remove(&self, key: &ContactKey) -> Result<bool, StoreError> {
        let started = Instant::now();
        let result = self.store.remove(key).await;
        self.timed("remove", started, result)
    }

    fn scan(&self) -> ScanStream<'_> {
        self.store.scan()
    }

    async fn all_senders(&self) -> Result<Vec<(BusinessId, Vec<u8>)>, StoreError> {
        let started = Instant::now();
        let result = self.store.all_senders().await;
        self.timed("all_senders", started, result)
    }

    async fn apply_batch(&self, batch: &mut Batch<'_>) -> Result<(), StoreError> {
        let started = Instant::now();
        let result = self.store.apply_batch(batch).await;
        self.timed("apply_batch", started, result)
    }

    async fn flush(&self) -> Result<(), StoreError> {
        let started = Instant::now();
        let result = self.store.flush().await;
        self.timed("flush", started, result)
    }

    async fn update_registry(
        &self,
        key: &RegistryKey,
        update: &mut SenderUpdate<'_>,
    ) -> Result<(), StoreError> {
        let started = Instant::now();
        let result = self.store.update_registry(key, update).await;
        self.timed("update_registry", started, result)
    }

    async fn load_registry(&self, key: &RegistryKey) -> Result<Option<Vec<u8>>, StoreError> {
        let started = Instant::now();
        let result = self.store.load_registry(key).await;
        self.timed("load_registry", started, result)
    }

    async fn load_registries(
        &self,
        keys: &[RegistryKey],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let started = Instant::now();
        let result = self.store.load_registries(keys).await;
        self.timed("load_registries", started, result)
    }

    async fn registry_records(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let started = Instant::now();
        let result = self.store.registry_records().await;
        self.timed("registry_records", started, result)
    }

    async fn load_with_registries(
        &self,
        key: &ContactKey,
        keys: &[RegistryKey],
        read: &mut crate::store::RegistryReadFn<'_>,
    ) -> Result<(), StoreError> {
        let started = Instant::now();
        let result = self.store.load_with_registries(key, keys, read).await;
        self.timed("load_with_registries", started, result)
    }

    async fn update_with_registry(
        &self,
        keys: &[ContactKey],
        registry: &RegistryKey,
        update: &mut crate::store::ContactRegistryUpdate<'_>,
    ) -> Result<(), StoreError> {
        let started = Instant::now();
        let result = self
            .store
            .update_with_registry(keys, registry, update)
            .await;
        self.timed("update_with_registry", started, result)
    }
}

/// Reports store operations through the [`metrics`](https://docs.rs/metrics) facade, to
/// whatever recorder the application installed: the histogram
/// `waguard_store_operation_seconds{operation}` and the counter
/// `waguard_store_errors_total{operation}`.
#[cfg(feature = "metrics")]
#[derive(Clone, Copy, Debug, Default)]
pub struct MetricsObserver;

#[cfg(feature = "metrics")]
impl StoreObserver for MetricsObserver {
    fn observe(&self, operation: &'static str, elapsed: Duration, ok: bool) {
        metrics::histogram!("waguard_store_operation_seconds", "operation" => operation)
            .record(elapsed.as_secs_f64());
        if !ok {
            metrics::counter!("waguard_store_errors_total", "operation" => operation).increment(1);
        }
    }
}

/// A key as traces show it: a 64-bit hash of its storage key, keyed by a seed drawn once per
/// process, in hex. The lines of one process about one key share it; it cannot be reversed by
/// hashing every phone number without the seed, and it changes from one process to the next.
///
/// ```
/// let key: waguard::ContactKey = "100000001/p:33612345678".parse().unwrap();
/// let shown = waguard::observe::KeyHash(&key).to_string();
/// assert_eq!(shown.len(), 16);
/// assert!(!shown.contains("33612345678"));
/// assert_eq!(shown, waguard::observe::KeyHash(&key).to_string());
/// ```
#[derive(Clone, Copy, Debug)]
pub struct KeyHash<'a>(pub &'a ContactKey);

impl std::fmt::Display for KeyHash<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::hash::BuildHasher;
        static SEED: std::sync::OnceLock<foldhash::quality::RandomState> =
            std::sync::OnceLock::new();
        let hasher = SEED.get_or_init(foldhash::quality::RandomState::default);
        let hash = crate::store::with_storage_key(self.0, |bytes| hasher.hash_one(bytes));
        write!(f, "{hash:016x}")
    }
}
