//! How a store is opened, and when its writes survive a crash.

use std::time::Duration;

/// When a write survives a crash.
///
/// "Durable" here means: the write's records are in the store's journal and the journal file
/// is `fdatasync`ed (see the crate documentation): that survives a process crash (`SIGKILL`,
/// panic, OOM kill) and, given a disk that honours `fdatasync`, a power loss. Concurrent
/// callers share one `fdatasync` (group commit). A store made by [`SledStore::from_sled`](crate::SledStore::from_sled)
/// knows no directory, so it has no journal and relies on sled's own flush, which on Linux
/// ends with `sync_file_range`: that survives a process crash, not necessarily a power loss.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// The default. Every call that writes ([`update`](waguard::Store::update),
    /// [`update_sender`](waguard::Store::update_sender), [`remove`](waguard::Store::remove),
    /// [`apply_batch`](waguard::Store::apply_batch), and so every `Guard` method that records
    /// something) is durable when it returns `Ok`, against process crashes and power loss
    /// alike. A batch is one journal record and one `fdatasync` whatever its size; concurrent
    /// callers share them. Calls that changed nothing write nothing. Cost: one `fdatasync` of
    /// a small overwrite per call (see `docs/performance.md`).
    #[default]
    EachWrite,
    /// Group commit for throughput. Batches ([`apply_batch`](waguard::Store::apply_batch), so
    /// `Guard::ingest`) and [`flush`](waguard::Store::flush) are still durable on return, as above.
    /// Single-key writes (`reserve`, `opt_out`, `forget`, `record_send_error`, ...) are
    /// written to the journal but return without waiting for the disk: they survive a
    /// process crash (the file's pages belong to the kernel by then), and the next batch or
    /// `flush` makes them durable against power loss too. A power loss can lose the
    /// single-key writes since the last durable one. (Without a journal, single-key writes
    /// wait for sled's background flush, every `every`, to survive even a process crash.)
    GroupCommit {
        /// How often sled's background flush runs.
        every: Duration,
    },
}

/// How a store opened on a directory keeps and checks its manifest: the count and checksum of
/// every record it acknowledged (see the crate documentation, "Damage").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Integrity {
    /// Keep the manifest, and check it when the store opens by walking every record: a store
    /// whose files hold other records than it acknowledged, or whose journal is damaged
    /// before its tail, refuses to open with a [`StoreError`](waguard::StoreError) of kind
    /// [`Damaged`](waguard::StoreErrorKind::Damaged).
    #[default]
    Check,
    /// Keep the manifest and check what needs no walk (the manifest and the journal are
    /// readable and agree), but do not walk the records when the store opens: a faster open
    /// that misses damage in sled's own files.
    Trust,
    /// Keep no manifest and check nothing beyond sled's own checksums (the store as it was
    /// before the manifest; for measurements). An open in this mode deletes the manifest, and
    /// the next open in another mode builds a new one from what sled holds then.
    Off,
    /// Check as [`Integrity::Check`] does, but open anyway and report what was found
    /// ([`SledStore::damage`](crate::SledStore::damage)); the store then refuses every write
    /// and the close writes nothing (for `waguard verify`).
    Report,
    /// Check as [`Integrity::Check`] does, open anyway, and accept the records the files hold
    /// now as what the store holds: a new manifest is written and a damaged journal is
    /// replaced (for `waguard verify --repair`, which says what it accepted). What the
    /// damage lost stays lost.
    Accept,
}

/// How to open a [`SledStore`](crate::SledStore).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SledOptions {
    /// When writes survive a crash (default [`Durability::EachWrite`]).
    pub durability: Durability,
    /// sled's page cache, in bytes (default 256 MiB).
    pub cache_capacity: u64,
    /// Size of the write-ahead journal file (`waguard-journal` in the store's directory;
    /// default 4 MiB, at least 64 KiB). It is zero-filled once, when the file is created, and
    /// keeps that size afterwards (delete the file after a clean close to resize it); a full
    /// journal costs one checkpoint (a sled flush and two `fdatasync`s) and starts over. A
    /// write larger than the whole journal goes to sled directly, followed by a checkpoint.
    pub journal_capacity: u64,
    /// The contact record cache, in bytes (default 128 MiB; 0 turns it off): contact records
    /// read or written recently, kept in memory in front of sled, so that a `check` of a
    /// cached contact skips sled's tree walk. Every write of the store updates it, so it is
    /// always exact. A typical contact costs about 100 bytes in it (a million contacts: about
    /// 100 MiB); past the budget, parts of it start over empty.
    pub record_cache: u64,
    /// How many threads write a large batch to sled at once (default: the machine's cores,
    /// at most 4; 1: the calling thread alone). sled takes inserts from several threads side
    /// by side, so a batch of thousands of contacts (a replay, an import, a busy webhook
    /// stream) is applied up to about that many times faster; each thread gets at least 128
    /// of the batch's contacts, so webhook-sized batches stay on the calling thread. Applies
    /// to batches the journal covers (stores opened on a directory); others are written as
    /// one atomic `sled::Batch`.
    pub batch_threads: usize,
    /// How the store keeps and checks its manifest (default [`Integrity::Check`]).
    pub integrity: Integrity,
}

impl Default for SledOptions {
    fn default() -> Self {
        SledOptions {
            durability: Durability::default(),
            cache_capacity: 256 * 1024 * 1024,
            journal_capacity: 4 * 1024 * 1024,
            record_cache: 128 * 1024 * 1024,
            batch_threads: std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(4),
            integrity: Integrity::default(),
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

    /// The default options with another journal size (raised to 64 KiB if smaller).
    pub fn with_journal_capacity(mut self, bytes: u64) -> Self {
        self.journal_capacity = bytes;
        self
    }

    /// The default options with another contact record cache size (0: no cache).
    pub fn with_record_cache(mut self, bytes: u64) -> Self {
        self.record_cache = bytes;
        self
    }

    /// The default options with another number of threads for large batches (0 counts as
    /// 1: the calling thread alone).
    pub fn with_batch_threads(mut self, threads: usize) -> Self {
        self.batch_threads = threads;
        self
    }

    /// Sets how the manifest is kept and checked ([`integrity`](SledOptions::integrity)).
    pub fn with_integrity(mut self, integrity: Integrity) -> Self {
        self.integrity = integrity;
        self
    }
}
