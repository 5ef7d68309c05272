//! # waguard-sled
//!
//! [`SledStore`]: the embedded, persistent default [`Store`](waguard::Store) of waguard, on
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
//! - [`update`](waguard::Store::update) is a compare-and-swap loop around the closure: read, run, swap
//!   if the record is still what the closure saw, else run again. No update is lost.
//! - Sender records are few and read by every decision, so the store keeps a write-through
//!   cache of them in memory: a decision costs one sled read (the contact record). Every
//!   sender write goes through this store and updates the cache under one lock, which is
//!   coherent because sled lets only one process open a directory (see below).
//! - Contact records are cached too ([`SledOptions::record_cache`], 128 MiB by default): a
//!   read of a cached contact is a hash-table lookup instead of sled's tree walk, several
//!   times faster. Every contact write updates the cache after sled, with the key's stripe
//!   held, and a read that missed fills it only if no write reached that part of the cache
//!   meanwhile, so a read never returns a record older than the last write that returned.
//! - [`apply_batch`](waguard::Store::apply_batch) holds the stripes of its keys, runs every closure
//!   once, and writes the result as one journal record, then applies it to sled one key at a
//!   time, in key order (a batch of hundreds of contacts or more in contiguous parts on up to
//!   [`SledOptions::batch_threads`] threads at once): all or nothing, also across a crash,
//!   because a reopen replays the journal record whole. No writer sees a batch half applied
//!   (its keys' stripes are held); a reader may see some of its keys changed and others not
//!   yet, each key changing atomically. The store avoids sled's own `apply_batch` and
//!   transactions where it can, because they take a lock shared by every sled tree of the
//!   process: every read, so every `check`, would wait for
//!   a whole batch (milliseconds for a thousand events). Where no journal holds the batch (a
//!   store from [`SledStore::from_sled`] or [`SledStore::temporary`], or a batch larger than
//!   the whole journal), sled's atomic `sled::Batch` (or a transaction, with sender
//!   operations) is used. A batch of a single contact operation takes the compare-and-swap
//!   path instead.
//!
//! # Durability: the journal
//! See [`Durability`]. The default, [`Durability::EachWrite`], makes every write durable
//! before its call returns: once `ingest`, `reserve`, `opt_out`, ... return `Ok`, a crash (even
//! `SIGKILL` or power loss, given a disk that honours `fdatasync`) cannot lose it.
//!
//! A store opened on a directory keeps a write-ahead journal there (`waguard-journal`, 4 MiB
//! by default, see [`SledOptions::journal_capacity`]): every write appends the records it
//! produces (the new bytes of each key, or its deletion) to that file, `fdatasync`s it when it
//! must be durable, and only then applies them to sled, which writes its own log in the
//! background. The journal file is zero-filled when it is created, so a durable write is one
//! small overwrite in place and one `fdatasync`, the cheapest durable write a disk offers
//! (sled's own flush would cost two device round trips and a file-size update). Concurrent
//! callers share one `fdatasync`. When the journal is full, a checkpoint flushes sled and
//! starts the journal over. Opening the store applies the journal's records to sled again, in
//! order ([`SledStore::recovered_writes`] says how many); records hold whole new values, so
//! applying one twice changes nothing. [`Durability::GroupCommit`] journals single-key writes
//! without waiting for the disk; batches stay durable on return. A temporary store
//! ([`SledStore::temporary`]) has no journal and is never synced. If sled fails to apply a
//! write the journal already holds (a backend error midway through a batch), the store stops:
//! every later call returns a [`StoreError`] of kind
//! [`MustReopen`](waguard::StoreErrorKind::MustReopen) ([`StoreUnavailable::Stopped`]) and the close leaves the journal as it
//! is, so nothing reads or builds on the half-applied write, and the next open applies it
//! whole. A failed `fdatasync` (of the journal or of sled's data file) stops the store the
//! same way: the kernel may have dropped the pages it could not write and reports that once,
//! so a later `fdatasync` could succeed without them; the store never reports a success after
//! it, and the reopen replays what the journal holds on disk. The crash test of this crate
//! (`tests/crash.rs`) kills a writer with `SIGKILL` at random moments, finds every
//! acknowledged write, and fails unless some reopen had to recover writes from the journal.
//!
//! # Damage
//! A store on a directory knows what it acknowledged: a manifest (`waguard-manifest`) holds
//! the count of its records and an order-independent checksum of them (a wrapping sum of a
//! 64-bit hash of each record's tree, key and bytes). Every write adds the change it makes and
//! carries that change in its journal record; each checkpoint writes the manifest durably with
//! the journal generation it starts. Opening the store replays the journal, works out what the
//! store acknowledged, walks every record and compares ([`Integrity::Check`], the default): a
//! store whose files hold other records, whose journal is damaged before its tail (its header,
//! or a record followed by intact ones), or whose manifest is unreadable or from another time,
//! refuses to open with a [`StoreError`] of kind [`Damaged`](waguard::StoreErrorKind::Damaged)
//! ([`StoreUnavailable::Damaged`]), whose source, a [`DamageReport`], says what
//! was found and the ways out: restore from a backup or an export, or open with
//! [`Integrity::Accept`] (`waguard verify --repair`) to accept the loss. A refused open
//! writes nothing of its own, so every later open refuses too. A torn journal tail after a
//! crash stays normal recovery. [`Integrity::Trust`] skips the walk, [`Integrity::Report`]
//! opens a damaged store read-only to inspect it ([`SledStore::damage`]), and
//! [`Integrity::Off`] keeps no manifest. `docs/reliability.md` lists what is detected and what
//! is not, with the test that shows it.
//!
//! # Blocking
//! sled is a synchronous engine: the async methods of `SledStore` do their work, including the
//! `fsync` of a durable write (about a millisecond or more, depending on the disk), on the
//! calling task's thread. On a multi-thread tokio runtime that is usually fine; a service that
//! cannot afford it may call the guard from `spawn_blocking`.
//!
//! # One process at a time
//! sled takes an exclusive lock on its directory: a second process (or a second `SledStore`
//! in the same process) opening it gets a [`StoreError`] of kind
//! [`Locked`](waguard::StoreErrorKind::Locked) ([`StoreUnavailable::Locked`]), naming the path and, on Linux,
//! the process holding it ("already open by process N"). Stop that process, or share one
//! `SledStore` (it is `Sync`; wrap it in an `Arc`) between the tasks of one process. For
//! several processes or machines, use the PostgreSQL store.

mod batch;
mod cache;
mod durable;
mod error;
mod journal;
mod manifest;
mod options;
#[cfg(feature = "testing")]
mod raw;
mod records;
mod registry;
mod sync;

pub use cache::CacheUsage;
pub use error::{Damage, DamageReport, SledError, SledErrorKind, StoreUnavailable};
pub use options::{Durability, Integrity, SledOptions};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cache::RecordCache;
use journal::Journal;
use parking_lot::{Mutex, RwLock};
use sled::IVec;
use sync::Syncer;
use waguard::{BusinessId, RecordKey, StoreError};

/// How many contact-key stripes a store has (see `SledStore::stripes`).
const STRIPES: usize = 256;

/// Bound of the sender cache: past this many business numbers it starts over.
const SENDER_CACHE_LIMIT: usize = 65_536;

/// The embedded, persistent [`Store`](waguard::Store) on sled 0.34. See the [crate] documentation.
pub struct SledStore {
    db: sled::Db,
    contacts: sled::Tree,
    senders: sled::Tree,
    /// Registry records (templates and portfolios, rules T and L): journaled like contact
    /// records, not cached (see `registry.rs`).
    registry: sled::Tree,
    path: Option<PathBuf>,
    durability: Durability,
    /// Write-through cache of the `senders` tree (`None`: known absent).
    sender_cache: RwLock<HashMap<BusinessId, Option<IVec>, foldhash::fast::RandomState>>,
    /// Held by every sender write and cache fill, so the cache never goes stale.
    sender_write: Mutex<()>,
    /// Held by every registry write (see `registry.rs`); taken after the stripes, and before
    /// `sender_write` when both are held.
    registry_write: Mutex<()>,
    /// Recent contact records, updated by every contact write (see `cache.rs`).
    records: RecordCache,
    /// Contact-key stripes: a single-key update holds its key's stripe, a batch every stripe
    /// of its keys (ascending), so a batch can read, decide and write without a sled
    /// transaction and no update slips in between. Always taken before `sender_write`.
    stripes: Box<[Mutex<()>]>,
    syncer: Syncer,
    /// The write-ahead journal (`None` for temporary stores and [`SledStore::from_sled`]).
    journal: Option<Journal>,
    /// Held shared by every journaled write from its append until sled has applied it, and
    /// exclusively by a checkpoint, so a checkpoint's sled flush covers every record it
    /// retires.
    checkpoint_gate: RwLock<()>,
    /// Threads a large journaled batch is written to sled with (at least 1).
    batch_threads: usize,
    /// Journal records applied to sled when the store was opened.
    recovered_writes: usize,
    /// The count and checksum of every record, kept by every journaled write (`None`: no
    /// journal, or [`Integrity::Off`]).
    manifest: Option<manifest::Live>,
    /// Damage the open found and reported instead of refusing ([`Integrity::Report`],
    /// [`Integrity::Accept`]).
    damage: Vec<Damage>,
    /// Set for [`Integrity::Report`] and for an open that found damage: every write is
    /// refused and the close writes nothing.
    read_only: bool,
    /// Set when a journaled write failed to apply to sled: why. Every operation then fails
    /// with [`StoreUnavailable::Stopped`] (see [`SledStore::stop`]).
    stopped: std::sync::OnceLock<String>,
    /// Test hook: the next journaled batch fails after applying its first key, after
    /// waiting this long (with the batch's stripes held).
    #[cfg(test)]
    fail_next_apply: Mutex<Option<Duration>>,
    /// Test record: how many parts the last journaled batch was written in.
    #[cfg(test)]
    last_batch_parts: std::sync::atomic::AtomicUsize,
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
    StoreError::backend(operation, record, SledError::running(source))
}

impl SledStore {
    /// Opens (or creates) the store in directory `path` with the default options.
    ///
    /// Errors: a [`StoreError`] of kind [`Locked`](waguard::StoreErrorKind::Locked) when
    /// another process (or another `SledStore` of this process) has the directory open;
    /// [`Open`](waguard::StoreErrorKind::Open) when it cannot be created or read;
    /// [`Damaged`](waguard::StoreErrorKind::Damaged) when its files do not hold what it
    /// acknowledged. The source, a [`StoreUnavailable`], names the directory.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, SledOptions::default())
    }

    /// Opens (or creates) the store in directory `path`.
    pub fn open_with(path: impl AsRef<Path>, options: SledOptions) -> Result<Self, StoreError> {
        let path = path.as_ref();
        // A directory without sled's data file is a new store (or one whose file was lost:
        // the manifest tells).
        let fresh = !path.join("db").exists();
        let mut pause = Duration::from_millis(5);
        let mut waited = Duration::ZERO;
        let db = loop {
            match Self::config(&options).path(path).open() {
                Ok(db) => break db,
                Err(e) => match open_failure(path, e) {
                    // A store of this very process that was just dropped releases its lock
                    // when sled's background threads let go of the files, a moment later:
                    // wait for that (up to 2 s), never for another process.
                    StoreUnavailable::Locked { pid, .. }
                        if pid.map_or(true, |p| p == std::process::id())
                            && waited < Duration::from_secs(2) =>
                    {
                        std::thread::sleep(pause);
                        waited += pause;
                        pause = (pause * 2).min(Duration::from_millis(100));
                    }
                    other => return Err(other.into()),
                },
            }
        };
        let store = Self::from_db(db, Some(path.to_path_buf()), &options)
            .map_err(|e| open_error(path, e))?;
        store.open_journal(path, &options, fresh)
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
        Self::from_db(db, None, &options).map_err(|e| open_error(Path::new("<temporary>"), e))
    }

    /// A store on an already open sled database (trees `contacts` and `senders`), e.g. one
    /// configured by hand. Nothing else may write those trees while the store lives: the
    /// store caches records. `durability` decides when single-key writes flush; the
    /// database's own `flush_every_ms` is left as configured. The directory is not known, so
    /// flushes are sled's own (no extra `fdatasync`, see [`Durability`]); prefer
    /// [`open_with`](SledStore::open_with).
    pub fn from_sled(db: sled::Db, durability: Durability) -> Result<Self, StoreError> {
        Self::from_sled_with(db, SledOptions::default().with_durability(durability))
    }

    /// [`from_sled`](SledStore::from_sled) with options: their durability and record cache
    /// apply; the page cache and journal sizes do not (the database is open already, and a
    /// store made this way has no journal).
    pub fn from_sled_with(db: sled::Db, options: SledOptions) -> Result<Self, StoreError> {
        Self::from_db(db, None, &options).map_err(|e| backend("open", None, e))
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
        options: &SledOptions,
    ) -> Result<Self, sled::Error> {
        let syncer = Syncer::new(path.as_deref())?;
        Ok(SledStore {
            syncer,
            contacts: db.open_tree("contacts")?,
            senders: db.open_tree("senders")?,
            registry: db.open_tree("registry")?,
            db,
            path,
            durability: options.durability,
            sender_cache: RwLock::new(HashMap::default()),
            sender_write: Mutex::new(()),
            registry_write: Mutex::new(()),
            records: RecordCache::new(options.record_cache),
            batch_threads: options.batch_threads.max(1),
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            journal: None,
            manifest: None,
            damage: Vec::new(),
            read_only: false,
            checkpoint_gate: RwLock::new(()),
            recovered_writes: 0,
            stopped: std::sync::OnceLock::new(),
            #[cfg(test)]
            fail_next_apply: Mutex::new(None),
            #[cfg(test)]
            last_batch_parts: Default::default(),
        })
    }

    /// How many writes (journal records: one per single-key write or batch) opening this
    /// store recovered from its journal: writes that were durable but that sled itself had
    /// not yet written when the previous process stopped. Nonzero after a crash; zero after a
    /// clean close (dropping the store flushes sled and empties the journal).
    pub fn recovered_writes(&self) -> usize {
        self.recovered_writes
    }

    /// What the open found wrong with the store's files and reported instead of refusing
    /// (with [`Integrity::Report`] or [`Integrity::Accept`]; empty for a sound store, and
    /// always with the other modes, which refuse to open a damaged store).
    pub fn damage(&self) -> &[Damage] {
        &self.damage
    }

    /// The record count the manifest keeps (contact and sender records), `None` when the
    /// store keeps no manifest.
    pub fn acknowledged_records(&self) -> Option<u64> {
        self.manifest.as_ref().map(|m| m.get().count)
    }

    /// The directory, unless the store is temporary.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The underlying sled database, for inspection (statistics, a bare read). Do not write
    /// the store's trees behind its back: its caches of sender and contact records would go
    /// stale, and the next open may replay journaled writes over what you wrote.
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

    /// What the contact record cache holds now (see [`SledOptions::record_cache`]).
    pub fn record_cache_usage(&self) -> CacheUsage {
        self.records.usage()
    }
}

/// [`open_failure`] as a [`StoreError`].
fn open_error(path: &Path, error: sled::Error) -> StoreError {
    open_failure(path, error).into()
}

/// Maps an open failure to [`StoreUnavailable::Locked`], [`StoreUnavailable::Damaged`] (sled
/// found its files corrupt) or [`StoreUnavailable::Open`].
fn open_failure(path: &Path, error: sled::Error) -> StoreUnavailable {
    let locked =
        matches!(&error, sled::Error::Io(io) if io.to_string().contains("could not acquire lock"));
    if locked {
        StoreUnavailable::Locked {
            path: path.to_path_buf(),
            pid: lock_holder(&path.join("db")),
            source: error,
        }
    } else if matches!(error, sled::Error::Corruption { .. }) {
        StoreUnavailable::Damaged {
            path: path.to_path_buf(),
            source: Box::new(SledError::opening(error)),
        }
    } else {
        StoreUnavailable::Open {
            path: path.to_path_buf(),
            source: Box::new(SledError::opening(error)),
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
