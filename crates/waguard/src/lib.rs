//! # waguard
//!
//! The pre-send guard for WhatsApp Business messages sent through Meta's Cloud API, as a
//! service embeds it: before each send, ask the [`Guard`] whether this message may go to this
//! contact now; feed it what webhooks and send errors report; it remembers per contact and per
//! business number, in a [`Store`] of your choice.
//!
//! This crate re-exports the pure rules of `waguard-core` (every item at the root: keys,
//! events, [`Policy`], [`Decision`], ...) and adds:
//! - the [`Store`] trait, the seam every backend implements (this crate's [`MemoryStore`];
//!   `waguard-sled` for the embedded persistent default; PostgreSQL for several machines);
//! - the [`Guard`]: [`check`](Guard::check), [`reserve`](Guard::reserve),
//!   [`ingest`](Guard::ingest), [`record_send_error`](Guard::record_send_error),
//!   [`opt_out`](Guard::opt_out) / [`opt_in`](Guard::opt_in),
//!   [`clear_sender`](Guard::clear_sender), [`forget`](Guard::forget);
//! - a [`Clock`] for the `*_now` conveniences ([`SystemClock`], [`ManualClock`] for tests);
//! - with the `testing` feature, `waguard::testing`: the conformance suite every store adapter
//!   runs unchanged; and `waguard::fixture`: a guard with a manual clock and event builders for the
//!   unit tests of a service that embeds it;
//! - [`observe`]: store operations timed for your metrics ([`observe::Observed`]; with the
//!   `metrics` feature, through the `metrics` facade), and with the `tracing` feature a span on
//!   every guard operation, the key hashed.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use waguard::*;
//!
//! let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
//! let guard = Guard::new(store, Policy::default()).unwrap();
//! let key: ContactKey = "100000001/p:+33 6 12 34 56 78".parse().unwrap();
//! let now = Timestamp::parse_rfc3339("2026-03-01T12:00:00Z").unwrap();
//!
//! // First contact: a template may go, free-form may not.
//! let utility = Outgoing::Template(TemplateCategory::Utility);
//! let d = guard.reserve(&key, utility, Some("order-42"), now).await.unwrap();
//! assert!(d.permits(utility));
//!
//! // The send failed because the user cannot receive messages (rule D1).
//! let effect = guard.record_send_error(&key, 131026, Some("wamid.x"), now).await.unwrap();
//! assert_eq!(effect, CodeEffect::Undeliverable);
//! let d = guard.check(&key, utility, now).await.unwrap();
//! assert_eq!(d.reason().unwrap().as_str(), "undeliverable");
//! # });
//! ```
//!
//! What the guard cannot know (user blocks show up only as 131026; Meta's daily limit of
//! unique users, quality ratings and template approval are not visible to it) is listed in the
//! rules document: it reports what it was told.

mod clock;
#[cfg(feature = "testing")]
pub mod fixture;
mod guard;
mod keyed_record;
mod memory;
pub mod observe;
pub mod staging;
mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use waguard_core::*;

pub use clock::{Clock, ManualClock, SystemClock};
pub use guard::{Guard, GuardError, IngestReport};
pub use keyed_record::KeyedRecord;
pub use memory::MemoryStore;
pub use store::{
    with_storage_key, Batch, BatchOp, BoxError, ContactRegistryUpdate, ContactUpdate, NoRegistry,
    ReadFn, RecordKey, Records, RegistryKey, RegistryReadFn, ScanStream, SenderUpdate, Store,
    StoreError, StoreErrorKind, UpdateAction,
};
