//! How writes become durable: the `fdatasync` of sled's data file, the journal protocol
//! (append, sync, then apply), checkpoints, and the journal's replay when a store opens.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use parking_lot::Mutex;
use waguard::StoreError;

use crate::error::{Damage, DamageReport};
use crate::journal::{self, Journal, JournalError, Op};
use crate::manifest::{self, Delta};
use crate::{backend, open_error, Durability, Integrity, SledOptions, SledStore, StoreUnavailable};

/// Group commit on one file: every writer takes a ticket once its write is in the file, and a
/// sync covers every ticket taken before it started, so concurrent callers share one
/// `fdatasync`. Used for sled's data file ([`Syncer`]) and for the journal.
///
/// A failed `fdatasync` is final: the kernel may have dropped the dirty pages it could not
/// write and reports the failure once, so a later `fdatasync` can succeed without them on
/// disk. The first failure is kept and every later sync fails with it; only a reopen of the
/// store (which replays what the journal holds on disk) clears it.
pub(crate) struct GroupSync {
    tickets: AtomicU64,
    synced: Mutex<u64>,
    /// Why the first failed sync failed.
    failed: OnceLock<String>,
    /// Test hook: the next sync fails with this error instead of calling `fdatasync`.
    #[cfg(test)]
    pub(crate) fail_next: Mutex<Option<std::io::ErrorKind>>,
}

impl GroupSync {
    pub(crate) fn new() -> Self {
        GroupSync {
            tickets: AtomicU64::new(0),
            synced: Mutex::new(0),
            failed: OnceLock::new(),
            #[cfg(test)]
            fail_next: Mutex::new(None),
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
    /// after them already finished, else syncs `file` for every ticket taken so far. Fails
    /// for good once a sync failed (see [`GroupSync`]).
    pub(crate) fn sync_to(&self, file: &File, mine: u64) -> std::io::Result<()> {
        let mut synced = self.synced.lock();
        if let Some(why) = self.failed.get() {
            return Err(std::io::Error::other(format!(
                "an earlier fdatasync of this file failed ({why}), so nothing written since \
                 is known to be on disk"
            )));
        }
        if *synced >= mine {
            return Ok(()); // a sync that started after our write covered it
        }
        let covered = self.tickets.load(Ordering::SeqCst);
        #[cfg(test)]
        let result = match self.fail_next.lock().take() {
            Some(kind) => Err(std::io::Error::new(
                kind,
                "test: injected fdatasync failure",
            )),
            None => file.sync_data(),
        };
        #[cfg(not(test))]
        let result = file.sync_data();
        if let Err(e) = result {
            let _ = self.failed.set(e.to_string());
            return Err(e);
        }
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
    pub(crate) group: GroupSync,
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
    /// checks the records against the manifest (see [`Integrity`]), makes the result durable
    /// in sled and starts the journal over. `fresh`: sled's data file did not exist.
    pub(crate) fn open_journal(
        mut self,
        path: &Path,
        options: &SledOptions,
        fresh: bool,
    ) -> Result<Self, StoreError> {
        let integrity = options.integrity;
        let capacity = options.journal_capacity.max(64 * 1024);
        let tolerant = matches!(integrity, Integrity::Report | Integrity::Accept);
        let read_only = integrity == Integrity::Report;
        let keeps_manifest = integrity != Integrity::Off;
        let open_io = |source: std::io::Error| {
            StoreError::from(StoreUnavailable::Open {
                path: path.to_path_buf(),
                source: Box::new(source),
            })
        };
        let journal_error = |source: JournalError| {
            StoreError::from(match source {
                JournalError::Io { .. } => StoreUnavailable::Open {
                    path: path.to_path_buf(),
                    source: Box::new(source),
                },
                damaged => StoreUnavailable::Damaged {
                    path: path.to_path_buf(),
                    source: Box::new(DamageReport::new(vec![Damage::Journal(
                        damaged.to_string(),
                    )])),
                },
            })
        };
        let mut damage = Vec::new();
        let stored = if keeps_manifest {
            manifest::read(path).map_err(open_io)?
        } else {
            // A store that keeps no manifest would let it fall behind its journal: it goes,
            // and the next open that keeps one builds it from what sled holds then.
            match std::fs::remove_file(path.join(manifest::FILE_NAME)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(open_io(e)),
                _ => {}
            }
            manifest::Found::Absent
        };
        if matches!(stored, manifest::Found::Damaged) {
            damage.push(Damage::Manifest);
        }
        let opened = Journal::open(path, capacity, tolerant, read_only).map_err(|e| {
            // Nothing of this open may be checkpointed over the evidence.
            self.read_only = true;
            journal_error(e)
        })?;
        if let Some(found) = &opened.damage {
            damage.push(Damage::Journal(found.to_string()));
        }
        let mut deltas = Some(manifest::Sums::default());
        let mut maybes = Vec::new();
        for payload in &opened.replay {
            if let Some(maybe) = journal::maybe_delta(payload) {
                maybes.push(maybe);
                continue;
            }
            // Checked by `Journal::open`.
            for op in journal::parse(payload).unwrap_or_default() {
                let tree = match op.tree {
                    journal::Tree::Contacts => &self.contacts,
                    journal::Tree::Senders => &self.senders,
                    journal::Tree::Registry => &self.registry,
                };
                match op.value {
                    Some(value) => tree.insert(op.key, value).map(drop),
                    None => tree.remove(op.key).map(drop),
                }
                .map_err(|e| open_error(path, e))?;
            }
            deltas = deltas.and_then(|d| journal::delta(payload).map(|x| d.plus(x)));
        }
        // What the store acknowledged, when the manifest and the journal tell.
        let acknowledged = match (&stored, &opened.journal) {
            (manifest::Found::Valid(m), Some(journal)) if opened.damage_free() => {
                let generation = journal.generation();
                if opened.created && !fresh {
                    damage.push(Damage::JournalMissing);
                    None
                } else if m.generation == generation {
                    deltas.map(|d| m.sums.plus(d))
                } else if m.generation == journal::next_generation(generation) {
                    // A checkpoint stopped between writing the manifest and starting the
                    // journal over: the manifest counts the records replayed.
                    Some(m.sums)
                } else {
                    damage.push(Damage::Generations {
                        manifest: m.generation,
                        journal: generation,
                    });
                    None
                }
            }
            _ => None,
        };
        // A write sled applied by itself counts or not, as sled kept it.
        let alternatives: Vec<manifest::Sums> = acknowledged
            .map(|base| {
                let all = maybes.iter().fold(base, |sum, m| sum.plus(*m));
                std::iter::once(all)
                    .chain(maybes.iter().map(|m| base.plus(*m)))
                    .collect()
            })
            .unwrap_or_default();
        let found = match acknowledged {
            Some(sums) if integrity == Integrity::Trust && maybes.is_empty() => Some(sums),
            _ if keeps_manifest => Some(
                manifest::scan(&self.contacts, &self.senders).map_err(|e| open_error(path, e))?,
            ),
            _ => None,
        };
        if let (Some(acknowledged), Some(found)) = (acknowledged, found) {
            if acknowledged != found && !alternatives.contains(&found) {
                damage.push(Damage::Records {
                    acknowledged: acknowledged.count,
                    found: found.count,
                });
            }
        }
        self.recovered_writes = opened.replay.len();
        if !damage.is_empty() && !tolerant {
            self.read_only = true;
            return Err(StoreUnavailable::Damaged {
                path: path.to_path_buf(),
                source: Box::new(DamageReport::new(damage)),
            }
            .into());
        }
        let replayed = !opened.replay.is_empty();
        self.journal = opened.journal;
        if let Some(found) = found {
            let live = manifest::Live::default();
            live.set(found);
            self.manifest = Some(live);
        }
        self.damage = damage;
        if read_only {
            self.read_only = true;
            return Ok(self);
        }
        // Make what was replayed durable in sled and record the manifest that matches it.
        let needs_manifest = keeps_manifest
            && (!matches!(stored, manifest::Found::Valid(_)) || !self.damage.is_empty());
        if replayed || needs_manifest {
            self.checkpoint("open")?;
        }
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
            .map_err(|e| self.stop(Stop::Sync, Box::new(e)))
    }

    /// Writes `ops` (which change the manifest's sums by `delta`) through the journal, then
    /// runs `apply` (which makes the same change in
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
        delta: Delta,
        durable: bool,
        operation: &'static str,
        apply: impl FnOnce(Covered) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // Checked again here, under the caller's key locks: a writer that passed the check at
        // its start may have waited for the stripe of a batch that then failed, and must not
        // write over that batch's unapplied keys.
        self.usable()?;
        if self.read_only {
            return Err(self.read_only_error(operation));
        }
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
            if self.manifest.is_some() {
                // sled may hold the write after a crash before the checkpoint, or not: the
                // journal says the delta may count.
                if journal.append_maybe(delta).map_err(journal_error)?.is_err() {
                    self.checkpoint_locked(operation)?;
                    let _ = journal.append_maybe(delta).map_err(journal_error)?;
                }
                journal
                    .sync()
                    .map_err(|e| self.stop(Stop::Sync, Box::new(e)))?;
            }
            let out = apply(Covered::BySled)?;
            if let Some(live) = &self.manifest {
                live.add(delta);
            }
            self.checkpoint_locked(operation)?;
            return Ok(out);
        }
        let kept = self.manifest.as_ref().map(|_| delta);
        loop {
            let gate = self.checkpoint_gate.read();
            if journal.append(ops, kept).map_err(journal_error)?.is_ok() {
                if let Some(live) = &self.manifest {
                    // Under the gate: a checkpoint sees every write's delta or none of it.
                    live.add(delta);
                }
                if durable {
                    journal
                        .sync()
                        .map_err(|e| self.stop(Stop::Sync, Box::new(e)))?;
                }
                let out = apply(Covered::ByJournal);
                drop(gate);
                return out.map_err(|e| self.stop(Stop::Apply, backend_source(e)));
            }
            drop(gate);
            self.checkpoint(operation)?;
        }
    }

    /// Stops the store, after a journaled write failed to apply to sled ([`Stop::Apply`]: sled
    /// may hold part of it, as a batch applies key by key, and a write built on that would be
    /// journaled after it and replayed over it, leaving the part for good) or after a failed
    /// `fdatasync` ([`Stop::Sync`]: the kernel may have dropped pages it could not write, and
    /// a later `fdatasync` would report success without them). From now on every operation
    /// fails and the close skips its checkpoint, so the journal keeps what it holds and the
    /// next open replays it.
    pub(crate) fn stop(&self, why: Stop, cause: waguard::BoxError) -> StoreError {
        let stopped = Stopped { why, cause };
        let _ = self.stopped.set(stopped.to_string());
        StoreUnavailable::Stopped {
            path: self.path.clone().unwrap_or_default(),
            source: Box::new(stopped),
        }
        .into()
    }

    /// The change a write from `old` to `new` of `key` in `tree` makes to the manifest's sums
    /// (nothing to compute when the store keeps no manifest).
    pub(crate) fn delta(
        &self,
        tree: journal::Tree,
        key: &[u8],
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Delta {
        if self.manifest.is_none() {
            return Delta::default();
        }
        let tag = match tree {
            journal::Tree::Contacts => manifest::CONTACTS,
            journal::Tree::Senders => manifest::SENDERS,
            // The manifest counts contact and sender records only.
            journal::Tree::Registry => return Delta::default(),
        };
        Delta::of_write(tag, key, old, new)
    }

    /// The error of a write to a store opened read-only.
    pub(crate) fn read_only_error(&self, operation: &'static str) -> StoreError {
        StoreError::backend(
            operation,
            None,
            "the store was opened to verify it (Integrity::Report) and takes no write; reopen \
             it with another Integrity to write",
        )
    }

    /// `Err(MustReopen)` once the store has stopped (see [`stop`](SledStore::stop)). Called
    /// once at the start of every operation, reads included (an update whose closure keeps
    /// the record is a read too), and again by [`journaled`](SledStore::journaled) under the
    /// writer's key locks.
    pub(crate) fn usable(&self) -> Result<(), StoreError> {
        match self.stopped.get() {
            None => Ok(()),
            Some(why) => Err(StoreUnavailable::Stopped {
                path: self.path.clone().unwrap_or_default(),
                source: why.clone().into(),
            }
            .into()),
        }
    }

    /// Makes sled hold every journaled write durably and starts the journal over.
    pub(crate) fn checkpoint(&self, operation: &'static str) -> Result<(), StoreError> {
        let _gate = self.checkpoint_gate.write();
        self.checkpoint_locked(operation)
    }

    pub(crate) fn checkpoint_locked(&self, operation: &'static str) -> Result<(), StoreError> {
        if self.read_only {
            return Err(self.read_only_error(operation));
        }
        self.flush_sled(operation)?;
        if let Some(journal) = &self.journal {
            // The manifest of the generation about to start describes sled as it is now; a
            // crash before the restart below leaves it one generation ahead of the journal,
            // which the next open recognises.
            if let (Some(live), Some(path)) = (&self.manifest, &self.path) {
                let manifest = manifest::Manifest {
                    generation: journal.next_generation(),
                    sums: live.get(),
                };
                manifest::write(path, manifest).map_err(|e| self.stop(Stop::Sync, Box::new(e)))?;
            }
            journal
                .restart()
                .map_err(|e| self.stop(Stop::Sync, Box::new(e)))?;
        }
        Ok(())
    }
}

/// Why a store stopped (see [`SledStore::stop`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// A journaled write failed to apply to sled.
    Apply,
    /// An `fdatasync` failed.
    Sync,
}

/// The cause of a stop, as [`StoreUnavailable::Stopped`] shows it.
#[derive(Debug, thiserror::Error)]
#[error("{}: {cause}", match why {
    Stop::Apply => "a write reached the journal but failed to apply",
    Stop::Sync => "an fdatasync failed, so recent writes may not be on disk",
})]
pub(crate) struct Stopped {
    why: Stop,
    cause: waguard::BoxError,
}

/// The backend's own error out of a `Backend` wrapper, whose advice ("not applied, retry") is
/// wrong for a write the journal holds.
fn backend_source(failure: StoreError) -> waguard::BoxError {
    match failure {
        StoreError::Backend { source, .. } => source,
        other => Box::new(other),
    }
}

/// A clean close checkpoints: sled is flushed and the journal starts over, so the next open
/// has nothing to replay. Errors are ignored here: the journal still holds every write then,
/// and the next open replays it.
impl Drop for SledStore {
    fn drop(&mut self) {
        // A stopped store keeps its journal for the next open to replay.
        if self.journal.is_some() && self.stopped.get().is_none() && !self.read_only {
            let _ = self.checkpoint("close");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use waguard::{Batch, ContactKey, Store, StoreError, UpdateAction};

    use crate::{SledOptions, SledStore};

    fn run<T>(future: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    fn keys() -> Vec<ContactKey> {
        (0..8)
            .map(|i| format!("100000001/p:3361234560{i}").parse().unwrap())
            .collect()
    }

    fn batch_writing(keys: &[ContactKey], value: &'static [u8]) -> Batch<'static> {
        let mut batch = Batch::new();
        for key in keys {
            batch.contact(key.clone(), move |_, _| {
                Ok(UpdateAction::Write(value.to_vec()))
            });
        }
        batch
    }

    /// Writes `old` to every key, then a batch of `new` whose apply fails after the first key
    /// of one of its parts (the store must stop); returns how many keys sled then holds `new`
    /// for. The store is left stopped.
    async fn fail_a_batch_midway(store: &SledStore, keys: &[ContactKey]) -> usize {
        store
            .apply_batch(&mut batch_writing(keys, b"old"))
            .await
            .unwrap();
        *store.fail_next_apply.lock() = Some(Duration::ZERO);
        let failed = store.apply_batch(&mut batch_writing(keys, b"new")).await;
        assert!(
            matches!(failed, Err(ref e) if e.kind() == waguard::StoreErrorKind::MustReopen),
            "{failed:?}"
        );
        let message = failed.unwrap_err().to_string();
        assert!(message.contains("reopen the store"), "{message}");
        assert!(message.contains("apply failed midway"), "{message}");
        assert!(!message.contains("retry"), "{message}");
        // The store refuses to show what sled holds now.
        assert!(matches!(
            store.load(&keys[0]).await,
            Err(ref e) if e.kind() == waguard::StoreErrorKind::MustReopen
        ));
        keys.iter()
            .filter(|k| store.contacts.get(k.storage_key()).unwrap().as_deref() == Some(b"new"))
            .count()
    }

    /// Reopens the store at `path` and checks that the replay applied the failed batch whole.
    fn assert_the_reopen_applies_it_whole(
        path: &std::path::Path,
        options: SledOptions,
        keys: &[ContactKey],
    ) {
        let store = SledStore::open_with(path, options).unwrap();
        assert!(
            store.recovered_writes() >= 1,
            "the reopen replays the journal"
        );
        run(async {
            for key in keys {
                let loaded = store.load(key).await.unwrap();
                assert_eq!(loaded.contact.as_deref(), Some(&b"new"[..]), "{key}");
            }
        });
    }

    /// A batch that reached the journal but failed midway in sled stops the store: nothing
    /// reads its half or writes over it, the close keeps the journal, and the next open
    /// applies the batch whole.
    #[test]
    fn a_batch_failing_midway_stops_the_store_until_a_reopen_applies_it_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let keys = keys();
        run(async {
            let store = SledStore::open(&path).unwrap();
            let applied = fail_a_batch_midway(&store, &keys).await;
            assert_eq!(applied, 1, "the hook fails after the first key");
            // Nor does it let anything build on it.
            let mut write =
                |_: Option<&[u8]>, _: Option<&[u8]>| Ok(UpdateAction::Write(b"later".to_vec()));
            assert!(matches!(
                store.update(&keys[1], &mut write).await,
                Err(ref e) if e.kind() == waguard::StoreErrorKind::MustReopen
            ));
            assert!(matches!(
                store.flush().await,
                Err(ref e) if e.kind() == waguard::StoreErrorKind::MustReopen
            ));
        });
        assert_the_reopen_applies_it_whole(&path, SledOptions::default(), &keys);
    }

    fn many_keys(n: usize) -> Vec<ContactKey> {
        (0..n)
            .map(|i| format!("100000001/p:336{i:08}").parse().unwrap())
            .collect()
    }

    /// A batch large enough for several threads writes every key, to sled and to the record
    /// cache alike, in as many parts as threads; a small batch stays in one part.
    #[test]
    fn a_large_batch_written_by_several_threads_writes_every_key() {
        let dir = tempfile::tempdir().unwrap();
        let options = SledOptions::default().with_batch_threads(4);
        let store = SledStore::open_with(dir.path().join("db"), options).unwrap();
        let keys = many_keys(4 * crate::batch::MIN_KEYS_PER_THREAD + 37);
        run(async {
            store
                .apply_batch(&mut batch_writing(&keys, b"one"))
                .await
                .unwrap();
            store
                .apply_batch(&mut batch_writing(&keys, b"two"))
                .await
                .unwrap();
            for key in &keys {
                let tree = store.contacts.get(key.storage_key()).unwrap();
                assert_eq!(tree.as_deref(), Some(&b"two"[..]), "{key} in sled");
                let loaded = store.load(key).await.unwrap();
                assert_eq!(loaded.contact.as_deref(), Some(&b"two"[..]), "{key} read");
            }
        });
        assert_eq!(store.record_cache_usage().records, keys.len());
        assert_eq!(store.last_batch_parts.load(Ordering::Relaxed), 4);
        // A webhook-sized batch stays on the calling thread.
        run(store.apply_batch(&mut batch_writing(&keys[..200], b"three"))).unwrap();
        assert_eq!(store.last_batch_parts.load(Ordering::Relaxed), 1);
    }

    /// When one part of a batch written by several threads fails, the store stops as for a
    /// single thread, and the reopen applies the batch whole.
    #[test]
    fn a_large_batch_failing_in_one_part_stops_the_store_until_a_reopen_applies_it_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let keys = many_keys(3 * crate::batch::MIN_KEYS_PER_THREAD);
        let options = SledOptions::default().with_batch_threads(3);
        run(async {
            let store = SledStore::open_with(&path, options.clone()).unwrap();
            let applied = fail_a_batch_midway(&store, &keys).await;
            // One part stopped after its first key; the other two ran to their end.
            assert_eq!(store.last_batch_parts.load(Ordering::Relaxed), 3);
            assert_eq!(applied, 1 + 2 * crate::batch::MIN_KEYS_PER_THREAD);
        });
        assert_the_reopen_applies_it_whole(&path, options, &keys);
    }

    /// A writer that passed the stop check before a batch failed, then waited for that
    /// batch's stripe, is refused when it gets there: it must not write over the batch's
    /// unapplied keys (its record would follow the batch's in the journal and win at the
    /// replay).
    #[test]
    fn a_writer_queued_behind_a_failing_batch_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let keys = keys();
        let store = SledStore::open(&path).unwrap();
        run(store.apply_batch(&mut batch_writing(&keys, b"old"))).unwrap();
        // The batch fails 300 ms into its apply, holding its stripes all that time.
        *store.fail_next_apply.lock() = Some(Duration::from_millis(300));
        let last = keys.last().unwrap().clone();
        let (batch, queued) = std::thread::scope(|scope| {
            let batch = scope.spawn(|| run(store.apply_batch(&mut batch_writing(&keys, b"new"))));
            std::thread::sleep(Duration::from_millis(100));
            let queued = scope.spawn(|| {
                let mut write =
                    |_: Option<&[u8]>, _: Option<&[u8]>| Ok(UpdateAction::Write(b"later".to_vec()));
                run(store.update(&last, &mut write))
            });
            (batch.join().unwrap(), queued.join().unwrap())
        });
        assert!(
            matches!(batch, Err(ref e) if e.kind() == waguard::StoreErrorKind::MustReopen),
            "{batch:?}"
        );
        assert!(
            matches!(queued, Err(ref e) if e.kind() == waguard::StoreErrorKind::MustReopen),
            "{queued:?}"
        );
        drop(store);
        let store = SledStore::open(&path).unwrap();
        run(async {
            for key in &keys {
                let loaded = store.load(key).await.unwrap();
                assert_eq!(loaded.contact.as_deref(), Some(&b"new"[..]), "{key}");
            }
        });
    }

    fn write(
        value: &'static [u8],
    ) -> impl FnMut(Option<&[u8]>, Option<&[u8]>) -> Result<UpdateAction, StoreError> {
        move |_, _| Ok(UpdateAction::Write(value.to_vec()))
    }

    fn arm_sync_failure(store: &SledStore) {
        let journal = store
            .journal
            .as_ref()
            .expect("a store on a directory has a journal");
        *journal.group.fail_next.lock() = Some(std::io::ErrorKind::Other);
    }

    fn assert_stopped_by_the_sync<T: std::fmt::Debug>(result: Result<T, StoreError>) {
        let message = match &result {
            Err(e) if e.kind() == waguard::StoreErrorKind::MustReopen => e.to_string(),
            other => panic!("expected MustReopen, got {other:?}"),
        };
        assert!(message.contains("fdatasync failed"), "{message}");
        assert!(message.contains("reopen the store"), "{message}");
        assert!(!message.contains("retry"), "{message}");
    }

    /// A failed fdatasync of the journal stops the store: the write that waited for it fails,
    /// and so does every later write, read and flush (a later fdatasync could succeed without
    /// the pages the kernel dropped); the reopen replays the journal and the store works again.
    #[test]
    fn a_failed_fdatasync_stops_the_store_until_it_is_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let keys = keys();
        run(async {
            let store = SledStore::open(&path).unwrap();
            store.update(&keys[0], &mut write(b"before")).await.unwrap();
            arm_sync_failure(&store);
            assert_stopped_by_the_sync(store.update(&keys[1], &mut write(b"failed")).await);
            // The injected failure is spent: a real fdatasync would now succeed, and must not
            // be reached.
            assert_stopped_by_the_sync(store.update(&keys[2], &mut write(b"after")).await);
            assert_stopped_by_the_sync(store.flush().await);
            assert_stopped_by_the_sync(store.load(&keys[0]).await);
            assert_stopped_by_the_sync(store.apply_batch(&mut batch_writing(&keys, b"all")).await);
            let journal = store.journal.as_ref().unwrap();
            assert!(
                journal.sync().is_err(),
                "the journal itself refuses to sync again"
            );
        });
        let store = SledStore::open(&path).unwrap();
        run(async {
            let first = store.load(&keys[0]).await.unwrap();
            assert_eq!(first.contact.as_deref(), Some(&b"before"[..]));
            // Nothing written after the stop got in.
            assert_eq!(store.load(&keys[2]).await.unwrap().contact, None);
            store
                .update(&keys[3], &mut write(b"reopened"))
                .await
                .unwrap();
            store.flush().await.unwrap();
        });
    }

    /// With group commit, a failed fdatasync under `flush` stops the store the same way: the
    /// next flush does not report success.
    #[test]
    fn a_failed_fdatasync_under_flush_stops_a_group_commit_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let keys = keys();
        let options = SledOptions::default().with_durability(crate::Durability::GroupCommit {
            every: Duration::from_secs(60),
        });
        run(async {
            let store = SledStore::open_with(&path, options.clone()).unwrap();
            store
                .update(&keys[0], &mut write(b"pending"))
                .await
                .unwrap();
            arm_sync_failure(&store);
            assert_stopped_by_the_sync(store.flush().await);
            assert_stopped_by_the_sync(store.flush().await);
            assert_stopped_by_the_sync(store.update(&keys[1], &mut write(b"x")).await);
        });
        let store = SledStore::open_with(&path, options).unwrap();
        run(async {
            store.update(&keys[1], &mut write(b"y")).await.unwrap();
            store.flush().await.unwrap();
        });
    }

    /// A failed fdatasync of sled's data file (a checkpoint) stops the store too.
    #[test]
    fn a_failed_fdatasync_of_the_data_file_stops_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path().join("db")).unwrap();
        *store.syncer.group.fail_next.lock() = Some(std::io::ErrorKind::Other);
        assert_stopped_by_the_sync(store.checkpoint("test"));
        run(async {
            assert_stopped_by_the_sync(store.load(&keys()[0]).await);
        });
    }

    fn damage_of(result: Result<SledStore, StoreError>) -> Vec<crate::Damage> {
        match result {
            Err(e) if e.kind() == waguard::StoreErrorKind::Damaged => {
                let message = e.to_string();
                assert!(message.contains("verify --repair"), "{message}");
                let unavailable = crate::StoreUnavailable::of(&e).expect("a sled failure");
                assert!(matches!(
                    unavailable,
                    crate::StoreUnavailable::Damaged { .. }
                ));
                let source = std::error::Error::source(unavailable).expect("a report");
                source
                    .downcast_ref::<crate::DamageReport>()
                    .expect("a DamageReport")
                    .damage()
                    .to_vec()
            }
            Err(e) => panic!("expected Damaged, got {e:?}"),
            Ok(_) => panic!("a damaged store opened"),
        }
    }

    fn with(integrity: crate::Integrity) -> SledOptions {
        SledOptions::default().with_integrity(integrity)
    }

    /// A record lost behind the store's back is found when the store opens, and every later
    /// open refuses too until the loss is accepted.
    #[test]
    fn a_lost_record_refuses_the_open_until_the_loss_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let keys = many_keys(50);
        {
            let store = SledStore::open(&path).unwrap();
            run(store.apply_batch(&mut batch_writing(&keys, b"v"))).unwrap();
            assert_eq!(store.acknowledged_records(), Some(50));
        }
        {
            let db = sled::open(&path).unwrap();
            let tree = db.open_tree("contacts").unwrap();
            tree.remove(keys[7].storage_key()).unwrap();
            tree.flush().unwrap();
        }
        let lost = crate::Damage::Records {
            acknowledged: 50,
            found: 49,
        };
        assert_eq!(damage_of(SledStore::open(&path)), vec![lost.clone()]);
        // The refused open wrote nothing: the next one refuses the same way.
        assert_eq!(damage_of(SledStore::open(&path)), vec![lost.clone()]);
        // Report opens it to inspect, read-only.
        drop(
            SledStore::open_with(&path, with(crate::Integrity::Report)).map(|s| {
                assert_eq!(s.damage(), std::slice::from_ref(&lost));
                let mut write = |_: Option<&[u8]>, _: Option<&[u8]>| Ok(UpdateAction::Keep);
                assert!(run(s.update(&keys[0], &mut write)).is_ok(), "reads work");
                let refused = run(s.apply_batch(&mut batch_writing(&keys[..2], b"w")));
                assert!(refused.is_err(), "a report-only store takes no write");
            }),
        );
        assert_eq!(damage_of(SledStore::open(&path)), vec![lost.clone()]);
        let accepted = SledStore::open_with(&path, with(crate::Integrity::Accept)).unwrap();
        assert_eq!(accepted.damage(), [lost]);
        drop(accepted);
        let store = SledStore::open(&path).unwrap();
        assert!(store.damage().is_empty());
        assert_eq!(store.acknowledged_records(), Some(49));
    }

    /// A missing journal is reported, not taken for an empty one.
    #[test]
    fn a_missing_journal_is_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        drop(SledStore::open(&path).unwrap());
        std::fs::remove_file(path.join(crate::journal::FILE_NAME)).unwrap();
        assert_eq!(
            damage_of(SledStore::open(&path)),
            vec![crate::Damage::JournalMissing]
        );
    }

    /// A batch larger than the journal goes straight into sled, then a checkpoint. When the
    /// checkpoint fails after sled has the batch, the reopen finds the batch's records and
    /// counts them: the journal said the batch's delta may count.
    #[test]
    fn a_batch_larger_than_the_journal_interrupted_before_its_checkpoint_is_no_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let options = SledOptions::default().with_journal_capacity(64 * 1024);
        let keys = many_keys(2_000);
        let big: &'static [u8] = &[7u8; 64];
        {
            let store = SledStore::open_with(&path, options.clone()).unwrap();
            *store.syncer.group.fail_next.lock() = Some(std::io::ErrorKind::Other);
            let result = run(store.apply_batch(&mut batch_writing(&keys, big)));
            assert!(
                matches!(result, Err(ref e) if e.kind() == waguard::StoreErrorKind::MustReopen),
                "{result:?}"
            );
        }
        let store = SledStore::open_with(&path, options).unwrap();
        assert_eq!(store.acknowledged_records(), Some(2_000));
        run(async {
            let loaded = store.load(&keys[1_999]).await.unwrap();
            assert_eq!(loaded.contact.as_deref(), Some(big));
        });
    }
}
