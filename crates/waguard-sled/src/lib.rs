//! # waguard-sled
//!
//! [`SledStore`]: the embedded, persistent default [`Store`] of waguard, on
//! [sled](https://docs.rs/sled/0.34) 0.34 (the only stable line of sled).
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! use waguard::{Guard, Policy, ContactKey, Event, KeyedEvent, Outgoing, Timestamp};
//! use waguard_sled::SledStore;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let store = SledStore::open(dir.path().join("waguard.db")).unwrap();
//! let guard = Guard::new(store, Policy::default()).unwrap();
//! let key: ContactKey = "100000001/p:33612345678".parse().unwrap();
//! let at = Timestamp::parse_rfc3339("2026-03-01T12:00:00Z").unwrap();
//! let inbound = Event::Inbound { at, text: None, referral: false };
//! // When `ingest` returns, the events are on disk: acknowledge the webhook now.
//! guard.ingest([KeyedEvent::Contact { key: key.clone(), event: inbound }]).await.unwrap();
//! assert!(guard.check(&key, Outgoing::FreeForm, at).await.unwrap().permits(Outgoing::FreeForm));
//! # });
//! ```
//!
//! # Layout
//! One sled database (a directory) with two trees: `contacts` (key: the contact key's
//! [`storage_key`](waguard::ContactKey::storage_key), `BUSINESS/TAG:ID`, so records sort by
//! business; value: the core's encoded record) and `senders` (key: the business id; value:
//! the encoded sender record). Records are the core's versioned bytes: this crate never looks
//! inside them.
//!
//! # Concurrency
//! - [`update`](Store::update) is a compare-and-swap loop around the closure: read, run, swap
//!   if the record is still what the closure saw, else run again. No update is lost.
//! - Sender records are few and read by every decision, so the store keeps a write-through
//!   cache of them in memory: a decision costs one sled read (the contact record). Every
//!   sender write goes through this store and updates the cache under one lock, which is
//!   coherent because sled lets only one process open a directory (see below).
//! - [`apply_batch`](Store::apply_batch) is one sled transaction over both trees (all or
//!   nothing, also across a crash), followed by one flush; a batch of a single contact
//!   operation takes the compare-and-swap path instead (one key is atomic by itself, and a
//!   sled transaction costs more than the write).
//!
//! # Durability
//! See [`Durability`]. The default, [`Durability::EachWrite`], makes every write durable
//! before its call returns: once `ingest`, `reserve`, `opt_out`, ... return `Ok`, a crash (even
//! `SIGKILL` or power loss, given a disk that honours `fdatasync`) cannot lose it. Concurrent
//! callers share one `fdatasync`. [`Durability::GroupCommit`] defers single-key writes to a
//! periodic flush for throughput; batches stay durable on return. A temporary store
//! ([`SledStore::temporary`]) is never synced. The crash test of this crate (`tests/crash.rs`)
//! kills a writer with `SIGKILL` at random moments and finds every acknowledged write.
//!
//! # Blocking
//! sled is a synchronous engine: the async methods of `SledStore` do their work, including the
//! `fsync` of a durable write (about a millisecond or more, depending on the disk), on the
//! calling task's thread. On a multi-thread tokio runtime that is usually fine; a service that
//! cannot afford it may call the guard from `spawn_blocking`.
//!
//! # One process at a time
//! sled takes an exclusive lock on its directory: a second process (or a second `SledStore`
//! in the same process) opening it gets [`StoreError::Locked`], naming the path and, on Linux,
//! the process holding it ("already open by process N"). Stop that process, or share one
//! `SledStore` (it is `Sync`; wrap it in an `Arc`) between the tasks of one process. For
//! several processes or machines, use the PostgreSQL store.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::{Mutex, RwLock};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::{IVec, Transactional};
use waguard::{
    with_storage_key, Batch, BatchOp, BusinessId, ContactKey, ContactUpdate, ReadFn, RecordKey,
    Records, ScanStream, SenderUpdate, Store, StoreError, UpdateAction,
};

/// When a write survives a crash.
///
/// "Durable" here means: sled's log is written and flushed, then the data file is
/// `fdatasync`ed. The second step is the store's own: sled 0.34 ends its flush with
/// `sync_file_range` on Linux, which survives a process crash (`SIGKILL`, panic, OOM kill) but
/// does not flush the drive's write cache or the file's metadata, so alone it does not promise
/// survival of a power loss or kernel crash. Concurrent callers share one `fdatasync`
/// (group commit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// The default. Every call that writes ([`update`](Store::update),
    /// [`update_sender`](Store::update_sender), [`remove`](Store::remove),
    /// [`apply_batch`](Store::apply_batch), and so every `Guard` method that records
    /// something) is durable when it returns `Ok`, against process crashes and power loss
    /// alike. A batch is one flush whatever its size; concurrent callers share flushes. Calls
    /// that changed nothing do not flush. Cost: about one `fdatasync` per call (see
    /// `docs/performance.md`).
    #[default]
    EachWrite,
    /// Group commit for throughput. Batches ([`apply_batch`](Store::apply_batch), so
    /// `Guard::ingest`) and [`flush`](Store::flush) are still durable on return, as above.
    /// Single-key writes (`reserve`, `opt_out`, `forget`, `record_send_error`, ...) return
    /// before their flush: sled's background flush writes them every `every` (then they
    /// survive a process crash), and the next batch or `flush` makes them durable against
    /// power loss too. A crash loses at most the single-key writes of the last `every`.
    GroupCommit {
        /// How often sled's background flush runs.
        every: Duration,
    },
}

/// How to open a [`SledStore`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SledOptions {
    /// When writes survive a crash (default [`Durability::EachWrite`]).
    pub durability: Durability,
    /// sled's page cache, in bytes (default 256 MiB).
    pub cache_capacity: u64,
}

impl Default for SledOptions {
    fn default() -> Self {
        SledOptions {
            durability: Durability::default(),
            cache_capacity: 256 * 1024 * 1024,
        }
    }
}

impl SledOptions {
    /// The default options with another durability.
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// The default options with another page cache size.
    pub fn with_cache_capacity(mut self, bytes: u64) -> Self {
        self.cache_capacity = bytes;
        self
    }
}

/// `fdatasync` of sled's data file, shared by concurrent callers (group commit).
///
/// sled 0.34's own flush ends its log writes with `sync_file_range` on Linux, which neither
/// flushes the drive's write cache nor the file's metadata: it survives a process crash, not
/// necessarily a power loss. After sled's flush, the store calls `fdatasync` on the data file;
/// a caller whose flush finished before a sync started is covered by it, so concurrent callers
/// share one `fdatasync`.
struct Syncer {
    file: Option<std::fs::File>,
    tickets: std::sync::atomic::AtomicU64,
    synced: Mutex<u64>,
}

impl Syncer {
    fn new(dir: Option<&Path>) -> std::io::Result<Self> {
        let file = match dir {
            Some(dir) => Some(std::fs::File::open(dir.join("db"))?),
            None => None,
        };
        Ok(Syncer {
            file,
            tickets: std::sync::atomic::AtomicU64::new(0),
            synced: Mutex::new(0),
        })
    }

    /// Makes every sled flush that completed before this call durable.
    fn sync(&self) -> std::io::Result<()> {
        use std::sync::atomic::Ordering;
        let Some(file) = &self.file else {
            return Ok(()); // temporary store: nothing to keep
        };
        let mine = self.tickets.fetch_add(1, Ordering::SeqCst) + 1;
        let mut synced = self.synced.lock();
        if *synced >= mine {
            return Ok(()); // a sync that started after our flush covered us
        }
        let covered = self.tickets.load(Ordering::SeqCst);
        file.sync_data()?;
        *synced = covered;
        Ok(())
    }
}

/// How many contact-key stripes a store has (see `SledStore::stripes`).
const STRIPES: usize = 256;

/// Bound of the sender cache: past this many business numbers it starts over.
const SENDER_CACHE_LIMIT: usize = 65_536;

/// The embedded, persistent [`Store`] on sled 0.34. See the [crate] documentation.
pub struct SledStore {
    db: sled::Db,
    contacts: sled::Tree,
    senders: sled::Tree,
    path: Option<PathBuf>,
    durability: Durability,
    /// Write-through cache of the `senders` tree (`None`: known absent).
    sender_cache: RwLock<HashMap<BusinessId, Option<IVec>, foldhash::fast::RandomState>>,
    /// Held by every sender write and cache fill, so the cache never goes stale.
    sender_write: Mutex<()>,
    /// Contact-key stripes: a single-key update holds its key's stripe, a batch every stripe
    /// of its keys (ascending), so a batch can read, decide and write without a sled
    /// transaction and no update slips in between. Always taken before `sender_write`.
    stripes: Box<[Mutex<()>]>,
    stripe_hasher: foldhash::fast::RandomState,
    syncer: Syncer,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.path)
            .field("durability", &self.durability)
            .finish_non_exhaustive()
    }
}

fn backend(operation: &'static str, record: Option<RecordKey>, source: sled::Error) -> StoreError {
    StoreError::backend(operation, record, source)
}

impl SledStore {
    /// Opens (or creates) the store in directory `path` with the default options.
    ///
    /// Errors: [`StoreError::Locked`] when another process (or another `SledStore` of this
    /// process) has the directory open; [`StoreError::Open`] when it cannot be created or read.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, SledOptions::default())
    }

    /// Opens (or creates) the store in directory `path`.
    pub fn open_with(path: impl AsRef<Path>, options: SledOptions) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let mut pause = Duration::from_millis(5);
        let mut waited = Duration::ZERO;
        let db = loop {
            match Self::config(&options).path(path).open() {
                Ok(db) => break db,
                Err(e) => match open_error(path, e) {
                    // A store of this very process that was just dropped releases its lock
                    // when sled's background threads let go of the files, a moment later:
                    // wait for that (up to 2 s), never for another process.
                    StoreError::Locked { pid, .. }
                        if pid.map_or(true, |p| p == std::process::id())
                            && waited < Duration::from_secs(2) =>
                    {
                        std::thread::sleep(pause);
                        waited += pause;
                        pause = (pause * 2).min(Duration::from_millis(100));
                    }
                    other => return Err(other),
                },
            }
        };
        Self::from_db(db, Some(path.to_path_buf()), options.durability)
            .map_err(|e| open_error(path, e))
    }

    /// A store in a temporary directory that sled deletes when the store is dropped (tests,
    /// benches).
    pub fn temporary() -> Result<Self, StoreError> {
        Self::temporary_with(SledOptions::default())
    }

    /// A temporary store with the given options.
    pub fn temporary_with(options: SledOptions) -> Result<Self, StoreError> {
        let db = Self::config(&options)
            .temporary(true)
            .open()
            .map_err(|e| open_error(Path::new("<temporary>"), e))?;
        Self::from_db(db, None, options.durability)
            .map_err(|e| open_error(Path::new("<temporary>"), e))
    }

    /// A store on an already open sled database (trees `contacts` and `senders`), e.g. one
    /// configured by hand. Nothing else may write those trees while the store lives: the
    /// store caches sender records. `durability` decides when single-key writes flush; the
    /// database's own `flush_every_ms` is left as configured. The directory is not known, so
    /// flushes are sled's own (no extra `fdatasync`, see [`Durability`]); prefer
    /// [`open_with`](SledStore::open_with).
    pub fn from_sled(db: sled::Db, durability: Durability) -> Result<Self, StoreError> {
        Self::from_db(db, None, durability).map_err(|e| backend("open", None, e))
    }

    fn config(options: &SledOptions) -> sled::Config {
        let every = match options.durability {
            Durability::EachWrite => Some(500),
            Durability::GroupCommit { every } => {
                Some(u64::try_from(every.as_millis()).unwrap_or(u64::MAX).max(1))
            }
        };
        sled::Config::new()
            .cache_capacity(options.cache_capacity)
            .flush_every_ms(every)
            .mode(sled::Mode::HighThroughput)
    }

    fn from_db(
        db: sled::Db,
        path: Option<PathBuf>,
        durability: Durability,
    ) -> Result<Self, sled::Error> {
        let syncer = Syncer::new(path.as_deref())?;
        Ok(SledStore {
            syncer,
            contacts: db.open_tree("contacts")?,
            senders: db.open_tree("senders")?,
            db,
            path,
            durability,
            sender_cache: RwLock::new(HashMap::default()),
            sender_write: Mutex::new(()),
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            stripe_hasher: foldhash::fast::RandomState::default(),
        })
    }

    /// The directory, unless the store is temporary.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The underlying sled database, for inspection (statistics, a bare read). Writing to the
    /// store's trees behind its back would leave its sender cache stale.
    pub fn sled_db(&self) -> &sled::Db {
        &self.db
    }

    /// The durability mode.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// Bytes the database occupies on disk (sled's own count).
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.db
            .size_on_disk()
            .map_err(|e| backend("size_on_disk", None, e))
    }

    /// How many contact records the store holds (walks the tree).
    pub fn contact_count(&self) -> usize {
        self.contacts.len()
    }

    /// The sender record of `business`, from the cache or the tree.
    fn sender_bytes(&self, business: &BusinessId) -> Result<Option<IVec>, StoreError> {
        if let Some(hit) = self.sender_cache.read().get(business) {
            return Ok(hit.clone());
        }
        // A miss fills the cache under the write lock, so that no sender write can slip in
        // between the tree read and the cache fill.
        let _writing = self.sender_write.lock();
        if let Some(hit) = self.sender_cache.read().get(business) {
            return Ok(hit.clone());
        }
        let value = self
            .senders
            .get(business.as_str())
            .map_err(|e| backend("load", Some(RecordKey::Sender(business.clone())), e))?;
        self.cache_sender(business, value.clone());
        Ok(value)
    }

    /// Sets a cache entry; call with `sender_write` held.
    fn cache_sender(&self, business: &BusinessId, value: Option<IVec>) {
        let mut cache = self.sender_cache.write();
        if cache.len() >= SENDER_CACHE_LIMIT && !cache.contains_key(business) {
            cache.clear();
        }
        cache.insert(business.clone(), value);
    }

    /// Flushes when single-key writes must be durable on return.
    async fn after_single_write(&self, operation: &'static str) -> Result<(), StoreError> {
        match self.durability {
            Durability::EachWrite => self.flush_now(operation).await,
            Durability::GroupCommit { .. } => Ok(()),
        }
    }

    /// A synchronous flush. Not sled's `flush_async`: that runs on sled's own small thread
    /// pool, which also writes the log buffers, so enough concurrent `flush_async` calls
    /// occupy every pool thread waiting for a write no thread is left to do (a deadlock seen
    /// with 8 tasks).
    async fn flush_now(&self, operation: &'static str) -> Result<(), StoreError> {
        self.db.flush().map_err(|e| backend(operation, None, e))?;
        self.syncer
            .sync()
            .map_err(|e| StoreError::backend(operation, None, e))
    }

    fn read_sync(&self, key: &ContactKey, read: &mut ReadFn<'_>) -> Result<(), StoreError> {
        let contact = with_storage_key(key, |k| self.contacts.get(k))
            .map_err(|e| backend("load", Some(RecordKey::Contact(key.clone())), e))?;
        let sender = self.sender_bytes(&key.business)?;
        read(contact.as_deref(), sender.as_deref());
        Ok(())
    }

    fn stripe_of(&self, storage_key: &[u8]) -> usize {
        use std::hash::BuildHasher;
        self.stripe_hasher.hash_one(storage_key) as usize % STRIPES
    }

    fn update_sync(
        &self,
        key: &ContactKey,
        update: &mut ContactUpdate<'_>,
    ) -> Result<bool, StoreError> {
        let k = key.storage_key();
        let err = |e| backend("update", Some(RecordKey::Contact(key.clone())), e);
        let _stripe = self.stripes[self.stripe_of(&k)].lock();
        // Under the stripe no store write races this one; the compare-and-swap still guards
        // against writes from outside the store (`sled_db()`).
        loop {
            let current = self.contacts.get(&k).map_err(err)?;
            let sender = self.sender_bytes(&key.business)?;
            let new = match update(current.as_deref(), sender.as_deref())? {
                UpdateAction::Keep => return Ok(false),
                UpdateAction::Delete if current.is_none() => return Ok(false),
                UpdateAction::Write(bytes) => Some(bytes),
                UpdateAction::Delete => None,
            };
            if self
                .contacts
                .compare_and_swap(&k, current, new)
                .map_err(err)?
                .is_ok()
            {
                return Ok(true);
            }
            // Another writer got there first: run the closure again on what it wrote.
        }
    }

    fn update_sender_sync(
        &self,
        business: &BusinessId,
        update: &mut SenderUpdate<'_>,
    ) -> Result<bool, StoreError> {
        let _writing = self.sender_write.lock();
        let err = |e| {
            backend(
                "update_sender",
                Some(RecordKey::Sender(business.clone())),
                e,
            )
        };
        loop {
            let current = self.senders.get(business.as_str()).map_err(err)?;
            let new = match update(current.as_deref())? {
                UpdateAction::Keep => return Ok(false),
                UpdateAction::Delete if current.is_none() => return Ok(false),
                UpdateAction::Write(bytes) => Some(IVec::from(bytes)),
                UpdateAction::Delete => None,
            };
            if self
                .senders
                .compare_and_swap(business.as_str(), current, new.clone())
                .map_err(err)?
                .is_ok()
            {
                self.cache_sender(business, new);
                return Ok(true);
            }
        }
    }

    /// Runs a batch all or nothing; returns whether anything was written.
    ///
    /// A batch of contact operations only (every webhook batch without a sender event) holds
    /// the stripes of its keys, runs its closures and writes the result as one `sled::Batch`,
    /// which sled recovers all or nothing after a crash. A batch with sender operations runs
    /// as one sled transaction over both trees. A sled transaction costs more than the writes
    /// it guards, and the stripes already keep every other store write away from these keys.
    fn batch_sync(&self, batch: &mut Batch<'_>) -> Result<bool, StoreError> {
        // One contact operation alone (a webhook with one event, the common case) is atomic by
        // itself: the compare-and-swap path.
        if let [BatchOp::Contact { key, update }] = batch.ops_mut() {
            return self.update_sync(key, update.as_mut());
        }
        let storage_keys: Vec<Option<Vec<u8>>> = batch
            .ops_mut()
            .iter()
            .map(|op| match op {
                BatchOp::Contact { key, .. } => Some(key.storage_key()),
                _ => None,
            })
            .collect();
        let mut stripes: Vec<usize> = storage_keys
            .iter()
            .flatten()
            .map(|k| self.stripe_of(k))
            .collect();
        stripes.sort_unstable();
        stripes.dedup();
        let _stripes: Vec<_> = stripes.iter().map(|&i| self.stripes[i].lock()).collect();
        let has_sender_ops = storage_keys.iter().any(Option::is_none);
        if !has_sender_ops {
            return self.contact_batch_sync(batch, &storage_keys);
        }
        let _writing = self.sender_write.lock();
        let ops = std::cell::RefCell::new(batch.ops_mut());
        type Abort = ConflictableTransactionError<StoreError>;
        let result = (&self.contacts, &self.senders).transaction(|(tc, ts)| {
            let mut ops = ops.borrow_mut();
            let mut wrote = false;
            let mut senders_written: Vec<(BusinessId, Option<IVec>)> = Vec::new();
            // Sender records read by contact operations, read once per batch run.
            let mut sender_reads: HashMap<BusinessId, Option<IVec>> = HashMap::new();
            for op in ops.iter_mut() {
                match op {
                    BatchOp::Contact { key, update } => {
                        let k = key.storage_key();
                        let current = tc.get(&k)?;
                        let sender = match sender_reads.get(&key.business) {
                            Some(v) => v.clone(),
                            None => {
                                let v = ts.get(key.business.as_str())?;
                                sender_reads.insert(key.business.clone(), v.clone());
                                v
                            }
                        };
                        match update(current.as_deref(), sender.as_deref()).map_err(Abort::Abort)? {
                            UpdateAction::Keep => {}
                            UpdateAction::Write(bytes) => {
                                tc.insert(k, bytes)?;
                                wrote = true;
                            }
                            UpdateAction::Delete => {
                                wrote |= tc.remove(k)?.is_some();
                            }
                        }
                    }
                    BatchOp::Sender { business, update } => {
                        sender_reads.remove(business);
                        let current = ts.get(business.as_str())?;
                        match update(current.as_deref()).map_err(Abort::Abort)? {
                            UpdateAction::Keep => {}
                            UpdateAction::Write(bytes) => {
                                let value = IVec::from(bytes);
                                ts.insert(business.as_str(), value.clone())?;
                                senders_written.push((business.clone(), Some(value)));
                                wrote = true;
                            }
                            UpdateAction::Delete => {
                                wrote |= ts.remove(business.as_str())?.is_some();
                                senders_written.push((business.clone(), None));
                            }
                        }
                    }
                    #[allow(unreachable_patterns)]
                    _ => {}
                }
            }
            Ok((wrote, senders_written))
        });
        match result {
            Ok((wrote, senders_written)) => {
                // Later entries win, as later operations did in the batch.
                for (business, value) in senders_written {
                    self.cache_sender(&business, value);
                }
                Ok(wrote)
            }
            Err(TransactionError::Abort(e)) => Err(e),
            Err(TransactionError::Storage(e)) => Err(backend("apply_batch", None, e)),
        }
    }
}

impl SledStore {
    /// The contact-only batch of [`batch_sync`](SledStore::batch_sync), with the stripes of its
    /// keys held: read, run the closures, write one `sled::Batch`.
    fn contact_batch_sync(
        &self,
        batch: &mut Batch<'_>,
        storage_keys: &[Option<Vec<u8>>],
    ) -> Result<bool, StoreError> {
        // What earlier operations of this batch wrote, by storage key (`None`: deleted).
        let mut staged: HashMap<&[u8], Option<IVec>> = HashMap::new();
        for (op, k) in batch.ops_mut().iter_mut().zip(storage_keys) {
            let (BatchOp::Contact { key, update }, Some(k)) = (op, k) else {
                continue; // not reached: the caller sends contact-only batches
            };
            let record = || Some(RecordKey::Contact(key.clone()));
            let current = match staged.get(&k[..]) {
                Some(v) => v.clone(),
                None => self
                    .contacts
                    .get(k)
                    .map_err(|e| backend("apply_batch", record(), e))?,
            };
            let sender = self.sender_bytes(&key.business)?;
            match update(current.as_deref(), sender.as_deref())? {
                UpdateAction::Keep => {}
                UpdateAction::Write(bytes) => {
                    staged.insert(k, Some(IVec::from(bytes)));
                }
                UpdateAction::Delete => {
                    if current.is_some() {
                        staged.insert(k, None);
                    }
                }
            }
        }
        if staged.is_empty() {
            return Ok(false);
        }
        let mut writes = sled::Batch::default();
        for (k, v) in staged {
            match v {
                Some(v) => writes.insert(k, v),
                None => writes.remove(k),
            }
        }
        self.contacts
            .apply_batch(writes)
            .map_err(|e| backend("apply_batch", None, e))?;
        Ok(true)
    }
}

/// Maps an open failure to [`StoreError::Locked`] or [`StoreError::Open`].
fn open_error(path: &Path, error: sled::Error) -> StoreError {
    let locked =
        matches!(&error, sled::Error::Io(io) if io.to_string().contains("could not acquire lock"));
    if locked {
        StoreError::Locked {
            path: path.to_path_buf(),
            pid: lock_holder(&path.join("db")),
            source: Box::new(error),
        }
    } else {
        StoreError::Open {
            path: path.to_path_buf(),
            source: Box::new(error),
        }
    }
}

/// The process holding the `flock` on `file`, from `/proc/locks` (Linux); `None` elsewhere or
/// when unknown.
fn lock_holder(file: &Path) -> Option<u32> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(file).ok()?;
        let inode = meta.ino();
        let locks = std::fs::read_to_string("/proc/locks").ok()?;
        // `1: FLOCK  ADVISORY  WRITE 12345 fd:01:1234567 0 EOF`
        locks.lines().find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let pid = fields.get(4)?.parse::<u32>().ok()?;
            let ino = fields.get(5)?.rsplit(':').next()?.parse::<u64>().ok()?;
            (fields.get(1) == Some(&"FLOCK") && ino == inode).then_some(pid)
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        None
    }
}

#[async_trait]
impl Store for SledStore {
    async fn update(
        &self,
        key: &ContactKey,
        update: &mut ContactUpdate<'_>,
    ) -> Result<(), StoreError> {
        if self.update_sync(key, update)? {
            self.after_single_write("update").await?;
        }
        Ok(())
    }

    async fn update_sender(
        &self,
        business: &BusinessId,
        update: &mut SenderUpdate<'_>,
    ) -> Result<(), StoreError> {
        if self.update_sender_sync(business, update)? {
            self.after_single_write("update_sender").await?;
        }
        Ok(())
    }

    async fn load(&self, key: &ContactKey) -> Result<Records, StoreError> {
        let mut records = Records::default();
        self.load_with(key, &mut |c, s| {
            records.contact = c.map(<[u8]>::to_vec);
            records.sender = s.map(<[u8]>::to_vec);
        })
        .await?;
        Ok(records)
    }

    async fn load_with(&self, key: &ContactKey, read: &mut ReadFn<'_>) -> Result<(), StoreError> {
        self.read_sync(key, read)
    }

    fn load_now(&self, key: &ContactKey, read: &mut ReadFn<'_>) -> Option<Result<(), StoreError>> {
        Some(self.read_sync(key, read))
    }

    async fn load_sender(&self, business: &BusinessId) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.sender_bytes(business)?.map(|v| v.to_vec()))
    }

    async fn remove(&self, key: &ContactKey) -> Result<bool, StoreError> {
        let k = key.storage_key();
        let stripe = self.stripes[self.stripe_of(&k)].lock();
        let removed = self
            .contacts
            .remove(k)
            .map_err(|e| backend("remove", Some(RecordKey::Contact(key.clone())), e))?
            .is_some();
        drop(stripe);
        if removed {
            self.after_single_write("remove").await?;
        }
        Ok(removed)
    }

    fn scan(&self) -> ScanStream<'_> {
        let items = self.contacts.iter().map(|item| {
            let (k, v) = item.map_err(|e| backend("scan", None, e))?;
            let key =
                ContactKey::from_storage_key(&k).map_err(|source| StoreError::BadStoredKey {
                    key: String::from_utf8_lossy(&k).into_owned(),
                    source,
                })?;
            Ok((key, v.to_vec()))
        });
        Box::pin(futures_util::stream::iter(items))
    }

    async fn all_senders(&self) -> Result<Vec<(BusinessId, Vec<u8>)>, StoreError> {
        self.senders
            .iter()
            .map(|item| {
                let (k, v) = item.map_err(|e| backend("all_senders", None, e))?;
                let text = String::from_utf8_lossy(&k).into_owned();
                let business =
                    BusinessId::parse(&text).map_err(|source| StoreError::BadStoredKey {
                        key: text.clone(),
                        source: source.into(),
                    })?;
                Ok((business, v.to_vec()))
            })
            .collect()
    }

    async fn apply_batch(&self, batch: &mut Batch<'_>) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        if self.batch_sync(batch)? {
            self.flush_now("apply_batch").await?;
        }
        Ok(())
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.flush_now("flush").await
    }
}

/// The raw-bytes hook of the conformance suite (`waguard::testing`), with feature `testing`.
#[cfg(feature = "testing")]
#[async_trait]
impl waguard::testing::RawAccess for SledStore {
    async fn put_raw_contact(&self, key: &ContactKey, bytes: &[u8]) -> Result<(), StoreError> {
        self.contacts
            .insert(key.storage_key(), bytes)
            .map(drop)
            .map_err(|e| backend("put_raw_contact", Some(RecordKey::Contact(key.clone())), e))
    }

    async fn put_raw_sender(&self, business: &BusinessId, bytes: &[u8]) -> Result<(), StoreError> {
        let _writing = self.sender_write.lock();
        self.senders.insert(business.as_str(), bytes).map_err(|e| {
            backend(
                "put_raw_sender",
                Some(RecordKey::Sender(business.clone())),
                e,
            )
        })?;
        self.cache_sender(business, Some(IVec::from(bytes)));
        Ok(())
    }
}

#[cfg(feature = "testing")]
impl SledStore {
    /// Stores raw bytes under a raw key of the contacts tree, bypassing every check (feature
    /// `testing`; for tests of damaged stores).
    pub fn put_raw_contact_key(&self, key: &[u8], bytes: &[u8]) -> Result<(), StoreError> {
        self.contacts
            .insert(key, bytes)
            .map(drop)
            .map_err(|e| backend("put_raw_contact_key", None, e))
    }
}
