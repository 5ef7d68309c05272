//! How writes become durable: the `fdatasync` of sled's data file, the journal protocol
//! (append, sync, then apply), checkpoints, and the journal's replay when a store opens.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use waguard::StoreError;

use crate::journal::{self, Journal, JournalError, Op};
use crate::{backend, open_error, Durability, SledStore};

/// Group commit on one file: every writer takes a ticket once its write is in the file, and a
/// sync covers every ticket taken before it started, so concurrent callers share one
/// `fdatasync`. Used for sled's data file ([`Syncer`]) and for the journal.
pub(crate) struct GroupSync {
    tickets: AtomicU64,
    synced: Mutex<u64>,
}

impl GroupSync {
    pub(crate) fn new() -> Self {
        GroupSync {
            tickets: AtomicU64::new(0),
            synced: Mutex::new(0),
        }
    }

    /// Records that a write is in the file; returns its ticket.
    pub(crate) fn wrote(&self) -> u64 {
        self.tickets.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// The newest ticket taken so far.
    pub(crate) fn last(&self) -> u64 {
        self.tickets.load(Ordering::SeqCst)
    }

    /// Makes the writes up to ticket `mine` durable: returns at once if a sync that started
    /// after them already finished, else syncs `file` for every ticket taken so far.
    pub(crate) fn sync_to(&self, file: &File, mine: u64) -> std::io::Result<()> {
        let mut synced = self.synced.lock();
        if *synced >= mine {
            return Ok(()); // a sync that started after our write covered it
        }
        let covered = self.tickets.load(Ordering::SeqCst);
        file.sync_data()?;
        *synced = covered;
        Ok(())
    }
}

/// `fdatasync` of sled's data file, shared by concurrent callers (group commit).
///
/// sled 0.34's own flush ends its log writes with `sync_file_range` on Linux, which neither
/// flushes the drive's write cache nor the file's metadata: it survives a process crash, not
/// necessarily a power loss. After sled's flush, the store calls `fdatasync` on the data file;
/// a caller whose flush finished before a sync started is covered by it.
pub(crate) struct Syncer {
    file: Option<File>,
    group: GroupSync,
}

impl Syncer {
    pub(crate) fn new(dir: Option<&Path>) -> std::io::Result<Self> {
        let file = match dir {
            Some(dir) => Some(File::open(dir.join("db"))?),
            None => None,
        };
        Ok(Syncer {
            file,
            group: GroupSync::new(),
        })
    }

    /// Makes every sled flush that completed before this call durable.
    pub(crate) fn sync(&self) -> std::io::Result<()> {
        let Some(file) = &self.file else {
            return Ok(()); // temporary store: nothing to keep
        };
        let mine = self.group.wrote();
        self.group.sync_to(file, mine)
    }
}

/// What makes a write whole after a crash, for the code that applies it to sled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Covered {
    /// The journal holds the whole write and a reopen replays it, so sled may apply it one key
    /// at a time.
    ByJournal,
    /// Nothing else holds it (no journal, or a write larger than the journal): sled must
    /// apply a multi-key write atomically itself.
    BySled,
}

impl SledStore {
    /// Opens the journal, applies what it holds of writes sled may have lost in a crash,
    /// makes that durable in sled and starts the journal over.
    pub(crate) fn open_journal(mut self, path: &Path, capacity: u64) -> Result<Self, StoreError> {
        let journal_error = |source: JournalError| StoreError::Open {
            path: path.to_path_buf(),
            source: Box::new(source),
        };
        let (journal, replay) = Journal::open(path, capacity).map_err(journal_error)?;
        if !replay.is_empty() {
            for payload in &replay {
                // Checked by `Journal::open`.
                for op in journal::parse(payload).unwrap_or_default() {
                    let tree = match op.tree {
                        journal::Tree::Contacts => &self.contacts,
                        journal::Tree::Senders => &self.senders,
                    };
                    match op.value {
                        Some(value) => tree.insert(op.key, value).map(drop),
                        None => tree.remove(op.key).map(drop),
                    }
                    .map_err(|e| open_error(path, e))?;
                }
            }
            self.flush_sled("open").map_err(|e| StoreError::Open {
                path: path.to_path_buf(),
                source: Box::new(e),
            })?;
            journal.restart().map_err(journal_error)?;
        }
        self.recovered_writes = replay.len();
        self.journal = Some(journal);
        Ok(self)
    }

    /// Whether single-key writes must be durable on return.
    pub(crate) fn single_writes_durable(&self) -> bool {
        matches!(self.durability, Durability::EachWrite)
    }

    /// sled's flush and the `fdatasync` of its data file. Synchronous on purpose: not sled's
    /// `flush_async`, which runs on sled's own small thread pool that also writes the log
    /// buffers, so enough concurrent `flush_async` calls occupy every pool thread waiting for
    /// a write no thread is left to do (a deadlock seen with 8 tasks).
    pub(crate) fn flush_sled(&self, operation: &'static str) -> Result<(), StoreError> {
        self.db.flush().map_err(|e| backend(operation, None, e))?;
        self.syncer
            .sync()
            .map_err(|e| StoreError::backend(operation, None, e))
    }

    /// Writes `ops` through the journal, then runs `apply` (which makes the same change in
    /// sled), telling it whether the journal holds the write; `durable`: the journal is
    /// synced before `apply`. Call with the locks that order writes to these keys held.
    /// Without a journal, `apply` then (if `durable`) a sled flush.
    ///
    /// If `apply` fails after the journal took the record, the write is still replayed when
    /// the store is next opened: like any commit that fails at the last step, its outcome is
    /// unknown to the caller.
    pub(crate) fn journaled<T>(
        &self,
        ops: &[Op<'_>],
        durable: bool,
        operation: &'static str,
        apply: impl FnOnce(Covered) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let journal_error = |e: JournalError| StoreError::backend(operation, None, e);
        let Some(journal) = &self.journal else {
            let out = apply(Covered::BySled)?;
            if durable {
                self.flush_sled(operation)?;
            }
            return Ok(out);
        };
        if !journal.fits_when_empty(ops) {
            // Larger than the whole journal: straight into sled, then a checkpoint, with every
            // other journaled write kept out meanwhile.
            let _gate = self.checkpoint_gate.write();
            let out = apply(Covered::BySled)?;
            self.checkpoint_locked(operation)?;
            return Ok(out);
        }
        loop {
            let gate = self.checkpoint_gate.read();
            if journal.append(ops).map_err(journal_error)?.is_ok() {
                if durable {
                    journal.sync().map_err(journal_error)?;
                }
                let out = apply(Covered::ByJournal);
                drop(gate);
                return out;
            }
            drop(gate);
            self.checkpoint(operation)?;
        }
    }

    /// Makes sled hold every journaled write durably and starts the journal over.
    pub(crate) fn checkpoint(&self, operation: &'static str) -> Result<(), StoreError> {
        let _gate = self.checkpoint_gate.write();
        self.checkpoint_locked(operation)
    }

    pub(crate) fn checkpoint_locked(&self, operation: &'static str) -> Result<(), StoreError> {
        self.flush_sled(operation)?;
        if let Some(journal) = &self.journal {
            journal
                .restart()
                .map_err(|e| StoreError::backend(operation, None, e))?;
        }
        Ok(())
    }
}

/// A clean close checkpoints: sled is flushed and the journal starts over, so the next open
/// has nothing to replay. Errors are ignored here: the journal still holds every write then,
/// and the next open replays it.
impl Drop for SledStore {
    fn drop(&mut self) {
        if self.journal.is_some() {
            let _ = self.checkpoint("close");
        }
    }
}
