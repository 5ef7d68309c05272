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

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;

use crate::MemoryStore;
use crate::{
    BusinessId, ContactKey, Guard, Policy, RecordKey, Store, StoreError, Timestamp, UpdateAction,
};

mod batch_staging;
mod erasure;
mod paired;
mod records;
mod reservations;
mod senders;

pub use batch_staging::batch_staging;
pub use erasure::{
    decode_errors_name_the_key, forget_leaves_a_tombstone, scan_returns_every_contact_record,
};
pub use paired::paired_updates;
pub use records::{batch_atomicity, no_lost_updates, round_trips};
pub use reservations::{counting_reservations_race, reserve_races_take_exactly_the_free_slots};
pub use senders::{registry_records, send_errors, sender_records};

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
