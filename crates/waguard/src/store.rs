//! The store seam: one object-safe async trait every backend implements.
//!
//! A store persists two kinds of opaque records, both encoded by the core
//! ([`ConversationState::encode`](crate::ConversationState::encode),
//! [`SenderState::encode`](crate::SenderState::encode)):
//! - a **contact record** per [`ContactKey`], and
//! - a **sender record** per [`BusinessId`] (the business number's own state, rules S1-S3).
//!
//! Stores never decode, never decide and never read a clock: they move bytes and run the
//! caller's closure atomically. Every read of a contact record also returns its business's
//! sender record, because every decision needs both.

use std::fmt;
use std::pin::Pin;

use async_trait::async_trait;
use futures_core::Stream;

use crate::{BusinessId, ContactKey, DecodeError, KeyParseError};

mod forward;

/// What an update closure wants done with the record it was shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpdateAction {
    /// Leave the record as it is (nothing is written, nothing is flushed).
    Keep,
    /// Replace the record (or create it) with these bytes.
    Write(Vec<u8>),
    /// Delete the record.
    Delete,
}

/// The closure of a contact update: it sees the contact record and, read-only, the sender
/// record of the key's business, and says what to do with the contact record.
///
/// It must be pure with respect to the store: a store may run it several times (after a
/// conflict) and only the last run's answer counts. Returning an error aborts the update (or
/// the whole batch) and the store hands that error back unchanged.
pub type ContactUpdate<'a> =
    dyn FnMut(Option<&[u8]>, Option<&[u8]>) -> Result<UpdateAction, StoreError> + Send + 'a;

/// The closure of a sender update: it sees the sender record and says what to do with it.
/// Same contract as [`ContactUpdate`]: pure, may run more than once, an error aborts.
pub type SenderUpdate<'a> =
    dyn FnMut(Option<&[u8]>) -> Result<UpdateAction, StoreError> + Send + 'a;

/// The closure of [`Store::load_with`]: it sees the contact record and its sender record,
/// borrowed from the store, so reading costs no copy. In-process stores run it under a read
/// lock of the record: keep it short, and do not call the store from it (a recursive read
/// lock can deadlock behind a waiting writer).
pub type ReadFn<'a> = dyn FnMut(Option<&[u8]>, Option<&[u8]>) + Send + 'a;

/// The closure of [`Store::load_with_registries`]: the contact record, its sender record and
/// the registry records asked for (in the order of the keys, `None` for an absent one), all
/// borrowed from the store. Same rules as [`ReadFn`].
pub type RegistryReadFn<'a> = dyn FnMut(Option<&[u8]>, Option<&[u8]>, &[Option<&[u8]>]) + Send + 'a;

/// The closure of [`Store::update_with_registry`], run once per contact key in the order of
/// the keys: it sees the key's index, the contact record, the sender record of the key's
/// business (read-only) and the registry record, each as the earlier runs of the same update
/// left them, and says what to do with the contact record and with the registry record, in
/// that order. Same contract as [`ContactUpdate`]: pure, may run again (from the first key)
/// after a conflict, an error aborts the whole update and writes nothing.
pub type ContactRegistryUpdate<'a> = dyn FnMut(
        usize,
        Option<&[u8]>,
        Option<&[u8]>,
        Option<&[u8]>,
    ) -> Result<(UpdateAction, UpdateAction), StoreError>
    + Send
    + 'a;

/// The two records a decision needs, as [`Store::load`] returns them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Records {
    /// The contact record of the key, if any.
    pub contact: Option<Vec<u8>>,
    /// The sender record of the key's business, if any.
    pub sender: Option<Vec<u8>>,
}

/// One operation of a [`Batch`].
#[non_exhaustive]
pub enum BatchOp<'a> {
    /// A contact update (see [`Store::update`]).
    Contact {
        /// The key.
        key: ContactKey,
        /// The closure.
        update: Box<ContactUpdate<'a>>,
    },
    /// A sender update (see [`Store::update_sender`]).
    Sender {
        /// The business number.
        business: BusinessId,
        /// The closure.
        update: Box<SenderUpdate<'a>>,
    },
}

impl fmt::Debug for BatchOp<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchOp::Contact { key, .. } => f.debug_struct("Contact").field("key", key).finish(),
            BatchOp::Sender { business, .. } => f
                .debug_struct("Sender")
                .field("business", business)
                .finish(),
        }
    }
}

/// A group of updates applied by [`Store::apply_batch`] all together or not at all, and made
/// durable with one commit.
///
/// Operations run in the order they were added; when a key appears twice, the second closure
/// sees what the first one wrote. A contact closure sees its business's sender record as it
/// stands at that point of the batch. [`Guard::ingest`](crate::Guard::ingest) groups events so
/// that each key appears once.
///
/// ```
/// use waguard::{Batch, ContactKey, UpdateAction};
/// let key: ContactKey = "100000001/p:33612345678".parse().unwrap();
/// let mut batch = Batch::new();
/// batch.contact(key, |_contact, _sender| Ok(UpdateAction::Write(b"opaque".to_vec())));
/// assert_eq!(batch.len(), 1);
/// ```
#[derive(Debug, Default)]
pub struct Batch<'a> {
    ops: Vec<BatchOp<'a>>,
}

impl<'a> Batch<'a> {
    /// An empty batch.
    pub fn new() -> Self {
        Batch { ops: Vec::new() }
    }

    /// Adds a contact update.
    pub fn contact(
        &mut self,
        key: ContactKey,
        update: impl FnMut(Option<&[u8]>, Option<&[u8]>) -> Result<UpdateAction, StoreError> + Send + 'a,
    ) -> &mut Self {
        self.ops.push(BatchOp::Contact {
            key,
            update: Box::new(update),
        });
        self
    }

    /// Adds a sender update.
    pub fn sender(
        &mut self,
        business: BusinessId,
        update: impl FnMut(Option<&[u8]>) -> Result<UpdateAction, StoreError> + Send + 'a,
    ) -> &mut Self {
        self.ops.push(BatchOp::Sender {
            business,
            update: Box::new(update),
        });
        self
    }

    /// How many operations the batch holds.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the batch holds no operation.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The operations, in order, for a store to run.
    pub fn ops_mut(&mut self) -> &mut [BatchOp<'a>] {
        &mut self.ops
    }
}

/// A boxed stream of contact records, as [`Store::scan`] returns it.
pub type ScanStream<'a> =
    Pin<Box<dyn Stream<Item = Result<(ContactKey, Vec<u8>), StoreError>> + Send + 'a>>;

/// A record of the registry (rules T1-T3): keyed by something else than a contact or a business
/// number. Stores persist its bytes under [`storage_key`](RegistryKey::storage_key).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum RegistryKey {
    /// A template's record (status and category), per template identity.
    Template(crate::TemplateId),
    /// A portfolio's record (messaging limit and counts, rules L1-L3), by the portfolio's
    /// name as the guard forms it (`p/NAME`, `a/ACCOUNT` or `n/NUMBER`).
    Portfolio(String),
}

impl RegistryKey {
    /// The key a store files the record under: `t/account/language/name` for a template.
    pub fn storage_key(&self) -> String {
        match self {
            RegistryKey::Template(id) => format!("t/{}", id.storage_id()),
            RegistryKey::Portfolio(name) => format!("l/{name}"),
        }
    }
}

impl fmt::Display for RegistryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistryKey::Template(id) => write!(f, "template record `{}`", id.storage_id()),
            RegistryKey::Portfolio(name) => write!(f, "portfolio record `{name}`"),
        }
    }
}

/// The store keeps no registry records (an adapter written before rules T).
#[derive(Debug, thiserror::Error)]
#[error("this store keeps no registry records (template rules T1-T3); use an adapter that implements Store::update_registry")]
pub struct NoRegistry;

/// Which record an error is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RecordKey {
    /// The contact record of a key.
    Contact(ContactKey),
    /// The sender record of a business number.
    Sender(BusinessId),
}

impl fmt::Display for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordKey::Contact(key) => write!(f, "contact record `{key}`"),
            RecordKey::Sender(business) => write!(f, "sender record `{business}`"),
        }
    }
}

/// The boxed source of a backend error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A store failed. Refusing to send is never a `StoreError`: it is a
/// [`Decision`](crate::Decision).
///
/// The error is backend-neutral: a variant says what kind of failure it is
/// ([`kind`](StoreError::kind)), what the store was doing or which record it is about, and
/// holds the cause as its source. Backend details (a path, a process id, a server's error
/// code) live in the adapter's own error type, which is that source. Every message says what
/// to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A stored record could not be decoded: damaged bytes, or a record written by a newer
    /// waguard. Other keys are unaffected.
    #[error("cannot read {record}: {source}")]
    Decode {
        /// The record.
        record: RecordKey,
        /// What the decoder found.
        #[source]
        source: DecodeError,
    },
    /// A stored key could not be read back as a [`ContactKey`] (found by a scan).
    #[error("the store holds a contact record under a key that is not a contact key ({key:?}): {source}; delete that record with the backend's own tools")]
    BadStoredKey {
        /// The stored key, lossy UTF-8.
        key: String,
        /// Why it is not a key.
        #[source]
        source: KeyParseError,
    },
    /// The backend failed while reading or writing. The source (the adapter's own error) says
    /// why, whether the operation was applied when the backend can tell, and what to do.
    #[error("store backend failed during {operation}{}: {source}", record.as_ref().map(|r| format!(" on {r}")).unwrap_or_default())]
    Backend {
        /// What the store was doing (`update`, `load`, `flush`, ...).
        operation: &'static str,
        /// The record concerned, when there is one.
        record: Option<RecordKey>,
        /// The backend's error.
        #[source]
        source: BoxError,
    },
    /// The store as a whole serves nothing until something outside the call changes: another
    /// process holds it ([`StoreErrorKind::Locked`]), it cannot be opened
    /// ([`StoreErrorKind::Open`]), it stopped until it is reopened
    /// ([`StoreErrorKind::MustReopen`]), or its data does not match what it acknowledged
    /// ([`StoreErrorKind::Damaged`]).
    ///
    /// The message is the source's: the adapter's own error (for example
    /// `waguard_sled::StoreUnavailable`) names the store's location and what to do. Downcast
    /// the source to that type for the backend's details.
    #[error("{source}")]
    Unavailable {
        /// Which of the four kinds above this is.
        kind: StoreErrorKind,
        /// The adapter's error: where, why, and what to do.
        #[source]
        source: BoxError,
    },
    /// A closure aborted the update for a reason of its own.
    #[error("update of {record} aborted: {source}")]
    Aborted {
        /// The record.
        record: RecordKey,
        /// Why.
        #[source]
        source: BoxError,
    },
}

/// What kind of failure a [`StoreError`] is, for callers that branch on it (retry, reopen,
/// restore) without matching the variants' fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// [`StoreError::Decode`]: one record is unreadable; other keys are fine.
    Decode,
    /// [`StoreError::BadStoredKey`].
    BadStoredKey,
    /// [`StoreError::Unavailable`]: another process holds the store (embedded stores lock
    /// their directory exclusively); stop that process or use another location.
    Locked,
    /// [`StoreError::Unavailable`]: the store could not be opened (missing permissions, not a
    /// directory, unreadable files); the source says why.
    Open,
    /// [`StoreError::Backend`]: a read or write failed.
    Backend,
    /// [`StoreError::Unavailable`]: the store stopped and refuses every operation until it is
    /// reopened (a write failed midway, or a sync failed); reopening recovers every
    /// acknowledged write.
    MustReopen,
    /// [`StoreError::Unavailable`]: the store's data does not match what it acknowledged (a
    /// damaged, truncated or deleted file), so it refuses to open; restore it from a backup or
    /// an export, or accept the loss explicitly.
    Damaged,
    /// [`StoreError::Aborted`]: a closure aborted the update.
    Aborted,
}

impl StoreError {
    /// What kind of failure this is.
    ///
    /// ```
    /// use waguard::{StoreError, StoreErrorKind};
    /// let e = StoreError::backend("load", None, "disk on fire");
    /// assert_eq!(e.kind(), StoreErrorKind::Backend);
    /// ```
    pub fn kind(&self) -> StoreErrorKind {
        match self {
            StoreError::Decode { .. } => StoreErrorKind::Decode,
            StoreError::BadStoredKey { .. } => StoreErrorKind::BadStoredKey,
            StoreError::Backend { .. } => StoreErrorKind::Backend,
            StoreError::Unavailable { kind, .. } => *kind,
            StoreError::Aborted { .. } => StoreErrorKind::Aborted,
        }
    }

    /// The record this error is about, if it is about one.
    pub fn record(&self) -> Option<&RecordKey> {
        match self {
            StoreError::Decode { record, .. } | StoreError::Aborted { record, .. } => Some(record),
            StoreError::Backend { record, .. } => record.as_ref(),
            _ => None,
        }
    }

    /// A backend error.
    pub fn backend(
        operation: &'static str,
        record: Option<RecordKey>,
        source: impl Into<BoxError>,
    ) -> Self {
        StoreError::Backend {
            operation,
            record,
            source: source.into(),
        }
    }

    /// The store as a whole is unavailable (see [`StoreError::Unavailable`]): `kind` is one of
    /// [`Locked`](StoreErrorKind::Locked), [`Open`](StoreErrorKind::Open),
    /// [`MustReopen`](StoreErrorKind::MustReopen) or [`Damaged`](StoreErrorKind::Damaged), and
    /// `source` the adapter's own error, whose message names the store and what to do.
    ///
    /// ```
    /// use waguard::{StoreError, StoreErrorKind};
    /// let e = StoreError::unavailable(StoreErrorKind::Locked, "the store at /data is already open; stop that process");
    /// assert_eq!(e.kind(), StoreErrorKind::Locked);
    /// assert_eq!(e.to_string(), "the store at /data is already open; stop that process");
    /// ```
    pub fn unavailable(kind: StoreErrorKind, source: impl Into<BoxError>) -> Self {
        StoreError::Unavailable {
            kind,
            source: source.into(),
        }
    }
}

/// Runs `f` on the [storage key](ContactKey::storage_key) of `key`, written into a reused
/// per-thread buffer instead of a new allocation. For adapters that index by the storage key
/// and build it on every read.
///
/// ```
/// let key: waguard::ContactKey = "100000001/p:33612345678".parse().unwrap();
/// waguard::with_storage_key(&key, |bytes| assert_eq!(bytes, b"100000001/p:33612345678"));
/// ```
pub fn with_storage_key<R>(key: &ContactKey, f: impl FnOnce(&[u8]) -> R) -> R {
    use std::cell::RefCell;
    thread_local! {
        static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    }
    BUFFER.with(|buffer| match buffer.try_borrow_mut() {
        Ok(mut buffer) => {
            buffer.clear();
            key.write_storage_key(&mut buffer);
            f(&buffer)
        }
        // Re-entered from `f` (a closure that calls the store again): allocate instead.
        Err(_) => f(&key.storage_key()),
    })
}

/// Persistent (or not) storage of contact and sender records.
///
/// Object safe: services hold an `Arc<dyn Store>` as readily as a concrete store.
///
/// # Atomicity
/// [`update`](Store::update) is an atomic read-modify-write of one contact record (in the
/// spirit of governor's `StateStore::measure_and_replace`): the store loads the contact record
/// and its business's sender record in one access, runs the closure, and writes what it
/// returns, retrying (compare-and-swap) or locking so that no concurrent update is lost. The
/// closure may run more than once; only the answer of its last run is applied. The sender
/// record is only read inside a contact update; sender records change through
/// [`update_sender`](Store::update_sender), so one busy business number does not serialise
/// all its contacts on one record.
///
/// # Durability
/// Each adapter documents when a write survives a crash. The contract every adapter keeps:
/// - when [`apply_batch`](Store::apply_batch) returns `Ok`, the whole batch is durable (one
///   commit for the whole batch); a crash before that leaves all of it or none of it;
/// - when [`flush`](Store::flush) returns `Ok`, every write that returned before it was called
///   is durable;
/// - [`update`](Store::update), [`update_sender`](Store::update_sender) and
///   [`remove`](Store::remove) are durable on return in the adapter's default mode; an adapter
///   may offer a faster mode that defers them to the next flush, and must say so.
///
/// In-memory stores ([`MemoryStore`](crate::MemoryStore)) hold nothing across a restart.
#[async_trait]
pub trait Store: Send + Sync {
    /// Atomically updates the contact record of `key` with `update`, which sees the current
    /// contact record and the sender record of `key.business`.
    ///
    /// An error returned by the closure is returned unchanged and nothing is written.
    async fn update(
        &self,
        key: &ContactKey,
        update: &mut ContactUpdate<'_>,
    ) -> Result<(), StoreError>;

    /// Atomically updates the sender record of `business`.
    async fn update_sender(
        &self,
        business: &BusinessId,
        update: &mut SenderUpdate<'_>,
    ) -> Result<(), StoreError>;

    /// Loads the contact record of `key` and the sender record of its business, and shows
    /// them to `read` borrowed, without copying them (the hot path of
    /// [`Guard::check`](crate::Guard::check)).
    async fn load_with(&self, key: &ContactKey, read: &mut ReadFn<'_>) -> Result<(), StoreError>;

    /// Like [`load_with`](Store::load_with), returning copies of the records. Provided on top
    /// of `load_with`.
    async fn load(&self, key: &ContactKey) -> Result<Records, StoreError> {
        let mut records = Records::default();
        self.load_with(key, &mut |contact, sender| {
            records.contact = contact.map(<[u8]>::to_vec);
            records.sender = sender.map(<[u8]>::to_vec);
        })
        .await?;
        Ok(records)
    }

    /// Reads without waiting, for stores that never wait (in-process ones): like
    /// [`load_with`](Store::load_with), synchronously. `None`, the default, means the store
    /// must be read through `load_with`; [`Guard::check`](crate::Guard::check) tries this first
    /// and saves the boxed future of an async call.
    fn load_now(&self, key: &ContactKey, read: &mut ReadFn<'_>) -> Option<Result<(), StoreError>> {
        let _ = (key, read);
        None
    }

    /// Loads the sender record of `business`.
    async fn load_sender(&self, business: &BusinessId) -> Result<Option<Vec<u8>>, StoreError>;

    /// Deletes the contact record of `key` outright (no tombstone; for a tombstone use
    /// [`Guard::forget`](crate::Guard::forget)). Returns whether a record existed.
    async fn remove(&self, key: &ContactKey) -> Result<bool, StoreError>;

    /// Every contact record, for export. Sender records come from
    /// [`all_senders`](Store::all_senders).
    ///
    /// The stream is not a snapshot: records written while it runs may or may not appear, but
    /// each record appears at most once. The order is the adapter's (sled: storage-key order;
    /// memory: unspecified).
    fn scan(&self) -> ScanStream<'_>;

    /// Every sender record, for export, in the adapter's order. Business numbers are few (one
    /// per WhatsApp number a service sends from), so they come as one list.
    async fn all_senders(&self) -> Result<Vec<(BusinessId, Vec<u8>)>, StoreError>;

    /// Applies every operation of `batch`, in order, all or nothing, and makes the result
    /// durable with one commit before returning (see the trait's durability contract).
    ///
    /// If any closure returns an error, nothing of the batch is applied and that error is
    /// returned.
    async fn apply_batch(&self, batch: &mut Batch<'_>) -> Result<(), StoreError>;

    /// Makes every write that returned before this call durable.
    async fn flush(&self) -> Result<(), StoreError>;

    /// Atomically updates a registry record (a template's, rules T1-T3), durable on return.
    /// Same contract as [`update_sender`](Store::update_sender). The default refuses with
    /// [`NoRegistry`]: an adapter that keeps no registry records cannot run rules T.
    async fn update_registry(
        &self,
        key: &RegistryKey,
        update: &mut SenderUpdate<'_>,
    ) -> Result<(), StoreError> {
        let _ = update;
        Err(StoreError::backend(
            "update_registry",
            None,
            NoRegistryFor(key.to_string()),
        ))
    }

    /// Loads a registry record. The default refuses like
    /// [`update_registry`](Store::update_registry).
    async fn load_registry(&self, key: &RegistryKey) -> Result<Option<Vec<u8>>, StoreError> {
        Err(StoreError::backend(
            "load_registry",
            None,
            NoRegistryFor(key.to_string()),
        ))
    }

    /// Loads several registry records at once, in the order of `keys` (`None` for an absent
    /// one): what a template decision needs, in one round trip where the backend has round
    /// trips. Provided on top of [`load_registry`](Store::load_registry).
    async fn load_registries(
        &self,
        keys: &[RegistryKey],
    ) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            out.push(self.load_registry(key).await?);
        }
        Ok(out)
    }

    /// Loads the contact record of `key`, its sender record and the registry records `keys`,
    /// and shows them to `read`: what a template decision needs, in one round trip where the
    /// backend has round trips. Provided on top of [`load`](Store::load) and
    /// [`load_registries`](Store::load_registries) (two reads).
    async fn load_with_registries(
        &self,
        key: &ContactKey,
        keys: &[RegistryKey],
        read: &mut RegistryReadFn<'_>,
    ) -> Result<(), StoreError> {
        let records = self.load(key).await?;
        let registries = self.load_registries(keys).await?;
        let borrowed: Vec<Option<&[u8]>> = registries.iter().map(|r| r.as_deref()).collect();
        read(
            records.contact.as_deref(),
            records.sender.as_deref(),
            &borrowed,
        );
        Ok(())
    }

    /// Atomically updates the contact records of `keys` and the registry record `registry`
    /// together: every write happens or none does, and no concurrent update of any of these
    /// records is lost. The closure runs once per key, in order; a key may appear more than
    /// once (its later run sees what the earlier one wrote). This is the counting reservation
    /// of rule L3: each contact's reservation and the portfolio's count in one step, for
    /// several reservations at once so that they share one commit of the portfolio's record.
    /// Durable on return like [`update`](Store::update). The default refuses like
    /// [`update_registry`](Store::update_registry): separate writes would not be atomic.
    async fn update_with_registry(
        &self,
        keys: &[ContactKey],
        registry: &RegistryKey,
        update: &mut ContactRegistryUpdate<'_>,
    ) -> Result<(), StoreError> {
        let _ = (keys, update);
        Err(StoreError::backend(
            "update_with_registry",
            None,
            NoRegistryFor(registry.to_string()),
        ))
    }

    /// Every registry record, by its [`storage_key`](RegistryKey::storage_key), in the
    /// adapter's order (for listings such as `waguard templates`). Registry records are few
    /// (one per template and per portfolio), so they come as one list. The default refuses
    /// like [`update_registry`](Store::update_registry).
    async fn registry_records(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        Err(StoreError::backend(
            "registry_records",
            None,
            NoRegistryFor("every record".into()),
        ))
    }
}

/// [`NoRegistry`] with the record asked for.
#[derive(Debug, thiserror::Error)]
#[error("{0}: {NoRegistry}")]
struct NoRegistryFor(String);
